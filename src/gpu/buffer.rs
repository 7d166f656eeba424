//! Typed device buffers, upload and readback.

use std::marker::PhantomData;

use bytemuck::Pod;

use crate::error::{Error, Result};
use crate::gpu::GpuContext;

/// A device-resident array of `len` elements of `T` (`f32` or `u32`), usable as a storage
/// binding and as a copy source and destination.
pub struct GpuBuffer<T> {
    pub(crate) buffer: wgpu::Buffer,
    label: String,
    len: usize,
    _element: PhantomData<T>,
}

impl<T> std::fmt::Debug for GpuBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuBuffer<{}>[{}]", std::any::type_name::<T>(), self.len)
    }
}

impl<T: Pod> GpuBuffer<T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: buffers hold at least one element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Size in bytes.
    pub fn bytes(&self) -> u64 {
        (self.len * std::mem::size_of::<T>()) as u64
    }

    /// The name given at allocation (shown in errors and GPU debuggers).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The underlying wgpu buffer.
    pub fn raw(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

impl GpuContext {
    fn check_buffer_size(&self, what: &str, bytes: u64) -> Result<()> {
        let limits = self.limits();
        let checks = [
            (limits.max_buffer_size, "max_buffer_size"),
            (
                limits.max_storage_buffer_binding_size,
                "max_storage_buffer_binding_size",
            ),
        ];
        for (limit, limit_name) in checks {
            if bytes > limit {
                return Err(Error::BufferTooLarge {
                    what: what.to_string(),
                    bytes,
                    limit,
                    limit_name,
                });
            }
        }
        Ok(())
    }

    /// A buffer of `len` zeros.
    pub fn zeros<T: Pod>(&self, label: &str, len: usize) -> Result<GpuBuffer<T>> {
        if len == 0 {
            return Err(Error::EmptyDimension {
                op: "allocate",
                dim: "len",
            });
        }
        let bytes = (len as u64) * std::mem::size_of::<T>() as u64;
        self.check_buffer_size(label, bytes)?;
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(GpuBuffer {
            buffer,
            label: label.to_string(),
            len,
            _element: PhantomData,
        })
    }

    /// A buffer holding a copy of `data`.
    pub fn upload<T: Pod>(&self, label: &str, data: &[T]) -> Result<GpuBuffer<T>> {
        let buffer = self.zeros(label, data.len())?;
        self.write(&buffer, data)?;
        Ok(buffer)
    }

    /// Overwrites the whole buffer with `data` (queued; ordered before later submissions).
    pub fn write<T: Pod>(&self, buffer: &GpuBuffer<T>, data: &[T]) -> Result<()> {
        crate::error::check_len("write", "data", data.len(), buffer.len())?;
        self.queue.write_buffer(&buffer.buffer, 0, bytemuck::cast_slice(data));
        Ok(())
    }

    /// Copies the buffer back to the host, waiting for all earlier work to finish.
    pub fn read<T: Pod>(&self, buffer: &GpuBuffer<T>) -> Result<Vec<T>> {
        let what = buffer.label.clone();
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: buffer.bytes(),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&buffer.buffer, 0, &staging, 0, buffer.bytes());
        self.queue.submit([encoder.finish()]);

        let (sender, receiver) = futures_intrusive::channel::shared::oneshot_channel();
        staging.map_async(wgpu::MapMode::Read, .., move |result| {
            sender.send(result).ok();
        });
        self.wait()?;
        let mapped = pollster::block_on(receiver.receive());
        match mapped {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                return Err(Error::Readback {
                    what,
                    reason: e.to_string(),
                });
            }
            None => {
                return Err(Error::Readback {
                    what,
                    reason: "the device dropped the map request".into(),
                });
            }
        }
        let data = {
            let view = staging.get_mapped_range(..).map_err(|e| Error::Readback {
                what: what.clone(),
                reason: e.to_string(),
            })?;
            bytemuck::cast_slice::<u8, T>(&view).to_vec()
        };
        staging.unmap();
        Ok(data)
    }
}
