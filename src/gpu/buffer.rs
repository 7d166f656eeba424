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
    live: std::sync::Arc<LiveBuffers>,
    _element: PhantomData<T>,
}

/// How many [`GpuBuffer`]s of a context exist and how many bytes they hold: a training loop
/// past warm-up keeps both flat.
#[derive(Debug, Default)]
pub struct LiveBuffers {
    count: std::sync::atomic::AtomicI64,
    bytes: std::sync::atomic::AtomicI64,
}

impl LiveBuffers {
    /// `(buffers, bytes)` alive now.
    pub fn get(&self) -> (i64, i64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.count.load(Relaxed), self.bytes.load(Relaxed))
    }

    fn add(&self, count: i64, bytes: i64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.count.fetch_add(count, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
    }
}

impl<T> Drop for GpuBuffer<T> {
    fn drop(&mut self) {
        self.live.add(-1, -(self.buffer.size() as i64));
    }
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

/// A range of elements of a [`GpuBuffer`], bound to a kernel on its own: how a tensor larger
/// than one storage binding is worked on piece by piece.
pub struct GpuView<'a, T> {
    pub(crate) buffer: &'a GpuBuffer<T>,
    start: usize,
    len: usize,
}

impl<T> Clone for GpuView<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for GpuView<'_, T> {}

impl<'a, T: Pod> GpuView<'a, T> {
    /// Elements in the view.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: views hold at least one element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// First element, counted in the whole buffer.
    pub fn start(&self) -> usize {
        self.start
    }

    pub(crate) fn binding(&self) -> Binding<'a> {
        let size = std::mem::size_of::<T>() as u64;
        Binding {
            buffer: &self.buffer.buffer,
            label: &self.buffer.label,
            offset: self.start as u64 * size,
            size: self.len as u64 * size,
        }
    }
}

impl<'a, T: Pod> From<&'a GpuBuffer<T>> for GpuView<'a, T> {
    fn from(buffer: &'a GpuBuffer<T>) -> Self {
        GpuView {
            buffer,
            start: 0,
            len: buffer.len,
        }
    }
}

impl<T: Pod> GpuBuffer<T> {
    /// Elements `range` as a view. Its byte offset must be a multiple of the device's
    /// `min_storage_buffer_offset_alignment` to be bound (wgpu rejects it otherwise).
    pub fn view(&self, range: std::ops::Range<usize>) -> Result<GpuView<'_, T>> {
        if range.start >= range.end || range.end > self.len {
            return Err(Error::ShapeMismatch {
                op: "view",
                what: "range end",
                expected: self.len,
                got: range.end,
            });
        }
        Ok(GpuView {
            buffer: self,
            start: range.start,
            len: range.end - range.start,
        })
    }
}

/// One storage slot's binding: a byte range of a buffer.
#[derive(Clone, Copy)]
pub(crate) struct Binding<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub label: &'a str,
    pub offset: u64,
    pub size: u64,
}

impl<'a, T: Pod> From<&'a GpuBuffer<T>> for Binding<'a> {
    fn from(b: &'a GpuBuffer<T>) -> Self {
        GpuView::from(b).binding()
    }
}

impl<'a> From<&'a wgpu::Buffer> for Binding<'a> {
    fn from(buffer: &'a wgpu::Buffer) -> Self {
        Binding {
            buffer,
            label: "placeholder",
            offset: 0,
            size: buffer.size(),
        }
    }
}

impl GpuContext {
    fn check_buffer_size(&self, what: &str, bytes: u64) -> Result<()> {
        let limit = self.limits().max_buffer_size;
        if bytes > limit {
            return Err(Error::BufferTooLarge {
                what: what.to_string(),
                bytes,
                limit,
                limit_name: "max_buffer_size",
            });
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
        self.live.add(1, bytes as i64);
        Ok(GpuBuffer {
            buffer,
            label: label.to_string(),
            len,
            live: std::sync::Arc::clone(&self.live),
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

    /// Copies the buffer back to the host, waiting for all earlier work to finish (native; in a
    /// browser, await [`GpuContext::read_async`]).
    pub fn read<T: Pod>(&self, buffer: &GpuBuffer<T>) -> Result<Vec<T>> {
        crate::gpu::context::block_on(self.read_async(buffer))?
    }

    /// [`GpuContext::read`] as a future: the form a browser awaits.
    pub async fn read_async<T: Pod>(&self, buffer: &GpuBuffer<T>) -> Result<Vec<T>> {
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
        let mapped = receiver.receive().await;
        self.take_errors("reading a buffer")?;
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
