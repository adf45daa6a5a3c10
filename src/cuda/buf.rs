//! Device buffers with a logical length inside a reusable allocation.

use std::marker::PhantomData;

use cust::memory::{CopyDestination, DeviceBuffer, DeviceCopy};

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
    inner: DeviceBuffer<T>,
    len: usize,
}

impl<T: Elem> Buf<T> {
    /// `len` zeroed elements.
    pub fn zeros(len: usize) -> Result<Self, GpuError> {
        let mut b = Buf {
            // SAFETY: T is plain data (every bit pattern valid); zeroed below.
            inner: unsafe { DeviceBuffer::uninitialized(len.max(1)) }.map_err(GpuError::driver("cuMemAlloc"))?,
            len,
        };
        b.inner.set_zero().map_err(GpuError::driver("cuMemsetD8"))?;
        Ok(b)
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
        if len > self.inner.len() {
            let cap = len.max(self.inner.len() + self.inner.len() / 2);
            // SAFETY: plain data; callers write before they read.
            self.inner = unsafe { DeviceBuffer::uninitialized(cap) }.map_err(GpuError::driver("cuMemAlloc"))?;
        }
        self.len = len;
        Ok(())
    }

    /// Copies `data` in, setting the length to `data.len()`.
    pub fn upload(&mut self, data: &[T]) -> Result<(), GpuError> {
        self.resize(data.len())?;
        if !data.is_empty() {
            let mut dst = self.inner.index(..data.len());
            dst.copy_from(data).map_err(GpuError::driver("cuMemcpyHtoD"))?;
        }
        Ok(())
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
        if !out.is_empty() {
            let src = self.inner.index(..out.len());
            src.copy_to(out).map_err(GpuError::driver("cuMemcpyDtoH"))?;
        }
        Ok(())
    }

    /// Fills the whole allocation with a 32-bit pattern (4-byte `T` only), e.g. NaN to poison outputs.
    pub fn fill_u32(&mut self, bits: u32) -> Result<(), GpuError> {
        assert_eq!(
            std::mem::size_of::<T>(),
            4,
            "fill_u32 on a buffer of {}-byte elements",
            std::mem::size_of::<T>()
        );
        self.inner.set_32(bits).map_err(GpuError::driver("cuMemsetD32"))
    }

    /// Fills the whole allocation with a byte.
    pub fn fill_u8(&mut self, byte: u8) -> Result<(), GpuError> {
        self.inner.set_8(byte).map_err(GpuError::driver("cuMemsetD8"))
    }

    /// The device address, as a kernel argument.
    pub fn ptr(&self) -> Ptr<T> {
        Ptr::from_raw(self.inner.as_device_ptr().as_raw())
    }
}

/// Element types of device buffers: plain data (every bit pattern valid) with a zero.
pub trait Elem: DeviceCopy + cust::memory::bytemuck::Pod + Copy + 'static {
    const ZERO: Self;
}
macro_rules! elem {
    ($($t:ty = $z:expr),*) => {$(impl Elem for $t { const ZERO: Self = $z; })*};
}
elem!(u8 = 0, u16 = 0, u32 = 0, u64 = 0, f32 = 0.0, f64 = 0.0);
