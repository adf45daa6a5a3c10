//! The CUDA context, stream and loaded modules.

use std::ffi::c_void;

use cust::context::Context;
use cust::device::Device;
use cust::error::CudaError;
use cust::module::Module;
use cust::stream::{Stream, StreamFlags};

use super::launch::PtxModule;
use super::GpuError;

/// One GPU: a context on device 0 (or the one asked for), a stream, and every kernel module loaded.
///
/// Kernels run in order on one stream; host copies ([`super::Buf::upload`],
/// [`super::Buf::download`]) are synchronous and ordered with it.
pub struct Gpu {
    modules: Vec<(PtxModule, Module)>,
    stream: Stream,
    device: Device,
    // dropped last: everything above lives in it
    _context: Context,
}

fn unavailable(call: &'static str) -> impl FnOnce(CudaError) -> GpuError {
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
                code: CudaError::InvalidDevice,
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
