//! The CUDA context, stream and loaded modules (or, under the test-only feature
//! `cuda-emu`, the host emulation standing in for them).

use std::ffi::c_void;

use super::launch::PtxModule;
use super::GpuError;

#[cfg(feature = "cuda")]
pub use driver::Gpu;
#[cfg(not(feature = "cuda"))]
pub use emulated::Gpu;

#[cfg(feature = "cuda")]
mod driver {
    use super::*;
    use crate::cuda::error::DriverError;
    use cust::context::Context;
    use cust::device::Device;
    use cust::module::Module;
    use cust::stream::{Stream, StreamFlags};

    /// One GPU: a context on device 0 (or the one asked for), a stream, and every kernel module loaded.
    ///
    /// Kernels run in order on one stream; host copies ([`crate::cuda::Buf::upload`],
    /// [`crate::cuda::Buf::download`]) are synchronous and ordered with it.
    pub struct Gpu {
        modules: Vec<(PtxModule, Module)>,
        stream: Stream,
        device: Device,
        // dropped last: everything above lives in it
        _context: Context,
    }

    fn unavailable(call: &'static str) -> impl FnOnce(DriverError) -> GpuError {
        move |code| GpuError::Unavailable { call, code }
    }

    impl Gpu {
        /// Device 0. [`GpuError::Unavailable`] when the driver finds no device.
        pub fn new() -> Result<Self, GpuError> {
            Self::with_device(0)
        }

        /// The device with the given ordinal.
        pub fn with_device(ordinal: u32) -> Result<Self, GpuError> {
            cust::init(cust::CudaFlags::empty()).map_err(unavailable("cuInit"))?;
            let n = Device::num_devices().map_err(unavailable("cuDeviceGetCount"))?;
            if ordinal >= n {
                return Err(GpuError::Unavailable {
                    call: "cuDeviceGet",
                    code: DriverError::InvalidDevice,
                });
            }
            let device = Device::get_device(ordinal).map_err(unavailable("cuDeviceGet"))?;
            let context = Context::new(device).map_err(GpuError::driver("cuDevicePrimaryCtxRetain"))?;
            let stream = Stream::new(StreamFlags::DEFAULT, None).map_err(GpuError::driver("cuStreamCreate"))?;
            let modules = PtxModule::ALL
                .iter()
                .map(|&m| {
                    Module::from_ptx(m.ptx(), &[])
                        .map(|module| (m, module))
                        .map_err(GpuError::driver(format!("cuModuleLoadDataEx({})", m.file())))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Gpu {
                modules,
                stream,
                device,
                _context: context,
            })
        }

        /// The device's name, e.g. `NVIDIA H100 80GB HBM3`.
        pub fn name(&self) -> String {
            self.device
                .name()
                .unwrap_or_else(|e| format!("<name unavailable: {e:?}>"))
        }

        /// Waits until every launched kernel has finished; reports asynchronous kernel errors.
        pub fn synchronize(&self) -> Result<(), GpuError> {
            self.stream
                .synchronize()
                .map_err(GpuError::driver("cuStreamSynchronize"))
        }

        /// Launches `name` from `module`; `args` point at the argument values in order.
        pub(crate) fn launch(
            &self,
            module: PtxModule,
            name: &str,
            grid: (u32, u32),
            block: u32,
            args: &mut [*mut c_void],
        ) -> Result<(), GpuError> {
            let m = &self
                .modules
                .iter()
                .find(|(k, _)| *k == module)
                .expect("every module is loaded")
                .1;
            let f = m
                .get_function(name)
                .map_err(GpuError::driver(format!("cuModuleGetFunction({name})")))?;
            // SAFETY: the typed launcher that calls this passes exactly the kernel's parameters
            // (tested against the PTX); the pointers' validity is the launcher's contract.
            unsafe { self.stream.launch(&f, grid, block, 0, args) }
                .map_err(GpuError::driver(format!("cuLaunchKernel({name})")))
        }
    }
}

#[cfg(not(feature = "cuda"))]
mod emulated {
    use super::*;
    use crate::cuda::error::DriverError;
    use std::ffi::{c_char, CString};

    // Found through LIBRARY_PATH (scripts/emulate-kernels.sh); the stamp, a hash of the
    // library, makes cargo rebuild and relink this crate when the emulated kernels change.
    const _LIBRARY_STAMP: Option<&str> = option_env!("GFN_EMU_STAMP");

    #[link(name = "gfn_emu")]
    extern "C" {
        fn gfn_emu_launch(name: *const c_char, gx: u32, gy: u32, block: u32, args: *mut *mut c_void) -> i32;
    }
    #[link(name = "stdc++")]
    extern "C" {}

    /// The host emulation of a GPU (test-only feature `cuda-emu`): kernels run
    /// synchronously on CPU threads (kernels/emu); buffers live in host memory.
    pub struct Gpu {
        _private: (),
    }

    impl Gpu {
        /// Always available.
        pub fn new() -> Result<Self, GpuError> {
            Self::with_device(0)
        }

        pub fn with_device(ordinal: u32) -> Result<Self, GpuError> {
            if ordinal != 0 {
                return Err(GpuError::Unavailable {
                    call: "emulation",
                    code: DriverError::InvalidDevice,
                });
            }
            Ok(Gpu { _private: () })
        }

        pub fn name(&self) -> String {
            "host emulation (kernels/emu), not a GPU".into()
        }

        pub fn synchronize(&self) -> Result<(), GpuError> {
            Ok(())
        }

        pub(crate) fn launch(
            &self,
            _module: PtxModule,
            name: &str,
            grid: (u32, u32),
            block: u32,
            args: &mut [*mut c_void],
        ) -> Result<(), GpuError> {
            let cname = CString::new(name).expect("kernel names have no NUL");
            // SAFETY: as for cuLaunchKernel: `args` point at values of the kernel's parameter types.
            let rc = unsafe { gfn_emu_launch(cname.as_ptr(), grid.0, grid.1, block, args.as_mut_ptr()) };
            match rc {
                0 => Ok(()),
                1 => Err(GpuError::Driver {
                    call: format!("emulated launch of {name}"),
                    code: DriverError::UnknownKernel,
                }),
                _ => Err(GpuError::Driver {
                    call: format!("emulated launch of {name}"),
                    code: DriverError::BadLaunch,
                }),
            }
        }
    }
}
