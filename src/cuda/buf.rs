//! Device buffers with a logical length inside a reusable allocation.

use std::marker::PhantomData;

use super::GpuError;

/// A device address of `T` elements as a kernel argument (`.param .u64`).
#[repr(transparent)]
pub struct Ptr<T>(u64, PhantomData<*const T>);

impl<T> Clone for Ptr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Ptr<T> {}

impl<T> Ptr<T> {
    /// A pointer from a raw device address (for tests of the launchers).
    pub fn from_raw(addr: u64) -> Self {
        Ptr(addr, PhantomData)
    }
    pub fn addr(self) -> u64 {
        self.0
    }
}

/// `len` elements of `T` on the device, in an allocation of at least `len` (grown on demand).
pub struct Buf<T: Elem> {
    inner: storage::Storage<T>,
    len: usize,
}

impl<T: Elem> Buf<T> {
    /// `len` zeroed elements.
    pub fn zeros(len: usize) -> Result<Self, GpuError> {
        let mut inner = storage::Storage::alloc(len.max(1))?;
        inner.fill_u8(0)?;
        Ok(Buf { inner, len })
    }

    /// A copy of `data`.
    pub fn from_slice(data: &[T]) -> Result<Self, GpuError> {
        let mut b = Self::zeros(data.len())?;
        b.upload(data)?;
        Ok(b)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets the logical length, reallocating (contents lost) when the allocation is too small.
    pub fn resize(&mut self, len: usize) -> Result<(), GpuError> {
        if len > self.inner.capacity() {
            let cap = len.max(self.inner.capacity() + self.inner.capacity() / 2);
            self.inner = storage::Storage::alloc(cap)?;
        }
        self.len = len;
        Ok(())
    }

    /// Copies `data` in, setting the length to `data.len()`.
    pub fn upload(&mut self, data: &[T]) -> Result<(), GpuError> {
        self.resize(data.len())?;
        self.inner.write(data)
    }

    /// The first `len()` elements, copied to the host.
    pub fn download(&self) -> Result<Vec<T>, GpuError> {
        let mut out = vec![T::ZERO; self.len];
        self.download_into(&mut out)?;
        Ok(out)
    }

    /// The first `out.len()` elements into `out` (at most `len()`).
    pub fn download_into(&self, out: &mut [T]) -> Result<(), GpuError> {
        if out.len() > self.len {
            return Err(GpuError::Shape(format!(
                "download of {} elements from a buffer of {}",
                out.len(),
                self.len
            )));
        }
        self.inner.read(out)
    }

    /// Fills the whole allocation with a 32-bit pattern (4-byte `T` only), e.g. NaN to poison outputs.
    pub fn fill_u32(&mut self, bits: u32) -> Result<(), GpuError> {
        assert_eq!(
            std::mem::size_of::<T>(),
            4,
            "fill_u32 on a buffer of {}-byte elements",
            std::mem::size_of::<T>()
        );
        self.inner.fill_u32(bits)
    }

    /// Fills the whole allocation with a byte.
    pub fn fill_u8(&mut self, byte: u8) -> Result<(), GpuError> {
        self.inner.fill_u8(byte)
    }

    /// The device address, as a kernel argument.
    pub fn ptr(&self) -> Ptr<T> {
        Ptr::from_raw(self.inner.addr())
    }
}

/// Element types of device buffers: plain data (every bit pattern valid) with a zero.
#[cfg(feature = "cuda")]
pub trait Elem: cust::memory::DeviceCopy + cust::memory::bytemuck::Pod + Copy + 'static {
    const ZERO: Self;
}
/// Element types of device buffers: plain data (every bit pattern valid) with a zero.
#[cfg(not(feature = "cuda"))]
pub trait Elem: Copy + 'static {
    const ZERO: Self;
}
macro_rules! elem {
    ($($t:ty = $z:expr),*) => {$(impl Elem for $t { const ZERO: Self = $z; })*};
}
elem!(u8 = 0, u16 = 0, u32 = 0, u64 = 0, f32 = 0.0, f64 = 0.0);

/// Device memory through `cust`.
#[cfg(feature = "cuda")]
mod storage {
    use cust::memory::{CopyDestination, DeviceBuffer};

    use super::{Elem, GpuError};

    pub struct Storage<T: Elem>(DeviceBuffer<T>);

    impl<T: Elem> Storage<T> {
        pub fn alloc(n: usize) -> Result<Self, GpuError> {
            // SAFETY: plain data; every caller writes before it reads (Buf::zeros zero-fills).
            unsafe { DeviceBuffer::uninitialized(n) }
                .map(Storage)
                .map_err(GpuError::driver("cuMemAlloc"))
        }
        pub fn capacity(&self) -> usize {
            self.0.len()
        }
        pub fn write(&mut self, data: &[T]) -> Result<(), GpuError> {
            if data.is_empty() {
                return Ok(());
            }
            let mut dst = self.0.index(..data.len());
            dst.copy_from(data).map_err(GpuError::driver("cuMemcpyHtoD"))
        }
        pub fn read(&self, out: &mut [T]) -> Result<(), GpuError> {
            if out.is_empty() {
                return Ok(());
            }
            let src = self.0.index(..out.len());
            src.copy_to(out).map_err(GpuError::driver("cuMemcpyDtoH"))
        }
        pub fn fill_u32(&mut self, bits: u32) -> Result<(), GpuError> {
            self.0.set_32(bits).map_err(GpuError::driver("cuMemsetD32"))
        }
        pub fn fill_u8(&mut self, byte: u8) -> Result<(), GpuError> {
            self.0.set_8(byte).map_err(GpuError::driver("cuMemsetD8"))
        }
        pub fn addr(&self) -> u64 {
            self.0.as_device_ptr().as_raw()
        }
    }
}

/// Host memory standing in for device memory (feature `cuda-emu`). Only raw pointers
/// reach it, so the emulated kernels' writes never alias a Rust reference.
#[cfg(not(feature = "cuda"))]
mod storage {
    use std::alloc::{alloc_zeroed, dealloc, Layout};
    use std::ptr::NonNull;

    use super::{Elem, GpuError};

    pub struct Storage<T: Elem> {
        ptr: NonNull<T>,
        cap: usize,
    }

    // SAFETY: plain data owned through a raw pointer, like a device allocation.
    unsafe impl<T: Elem> Send for Storage<T> {}

    impl<T: Elem> Storage<T> {
        fn layout(n: usize) -> Layout {
            Layout::array::<T>(n)
                .expect("allocation size")
                .align_to(16)
                .expect("alignment")
        }
        pub fn alloc(n: usize) -> Result<Self, GpuError> {
            // SAFETY: nonzero size (callers ask for at least 1 element).
            let p = unsafe { alloc_zeroed(Self::layout(n)) } as *mut T;
            let ptr =
                NonNull::new(p).ok_or_else(|| GpuError::Shape(format!("host allocation of {n} elements failed")))?;
            Ok(Storage { ptr, cap: n })
        }
        pub fn capacity(&self) -> usize {
            self.cap
        }
        pub fn write(&mut self, data: &[T]) -> Result<(), GpuError> {
            assert!(data.len() <= self.cap);
            // SAFETY: in bounds, no overlap with a Rust-owned slice.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr(), data.len()) };
            Ok(())
        }
        pub fn read(&self, out: &mut [T]) -> Result<(), GpuError> {
            assert!(out.len() <= self.cap);
            // SAFETY: in bounds, no overlap.
            unsafe { std::ptr::copy_nonoverlapping(self.ptr.as_ptr(), out.as_mut_ptr(), out.len()) };
            Ok(())
        }
        pub fn fill_u32(&mut self, bits: u32) -> Result<(), GpuError> {
            let words = self.cap * std::mem::size_of::<T>() / 4;
            // SAFETY: in bounds (4-byte elements, checked by the caller), 16-byte aligned.
            unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr() as *mut u32, words).fill(bits) };
            Ok(())
        }
        pub fn fill_u8(&mut self, byte: u8) -> Result<(), GpuError> {
            // SAFETY: in bounds.
            unsafe { std::ptr::write_bytes(self.ptr.as_ptr() as *mut u8, byte, self.cap * std::mem::size_of::<T>()) };
            Ok(())
        }
        pub fn addr(&self) -> u64 {
            self.ptr.as_ptr() as u64
        }
    }

    impl<T: Elem> Drop for Storage<T> {
        fn drop(&mut self) {
            // SAFETY: allocated in `alloc` with this layout.
            unsafe { dealloc(self.ptr.as_ptr() as *mut u8, Self::layout(self.cap)) }
        }
    }
}
