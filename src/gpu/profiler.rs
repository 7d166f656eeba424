//! GPU time of a compute pass from timestamp queries (where the adapter supports them), so
//! benchmarks can set kernel time against wall time and show the host's overhead.

use crate::error::{Error, Result};
use crate::gpu::GpuContext;

/// Two timestamps (pass begin, pass end) and the buffers to read them back.
pub struct PassTimer {
    query_set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    period_ns: f64,
}

impl PassTimer {
    /// A timer, or `None` when the device has no timestamp queries.
    pub fn new(ctx: &GpuContext) -> Option<Self> {
        // Its readback blocks, which a browser cannot: there passes are not timed.
        if cfg!(target_arch = "wasm32") || !ctx.device.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
            return None;
        }
        let query_set = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("pass timer"),
            ty: wgpu::QueryType::Timestamp,
            count: 2,
        });
        let buffer = |usage| {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("pass timer"),
                size: 16,
                usage,
                mapped_at_creation: false,
            })
        };
        Some(PassTimer {
            query_set,
            resolve: buffer(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC),
            readback: buffer(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST),
            period_ns: f64::from(ctx.queue.get_timestamp_period()),
        })
    }

    /// The pass descriptor's timestamp writes.
    pub fn writes(&self) -> wgpu::ComputePassTimestampWrites<'_> {
        wgpu::ComputePassTimestampWrites {
            query_set: &self.query_set,
            beginning_of_pass_write_index: Some(0),
            end_of_pass_write_index: Some(1),
        }
    }

    /// Records the resolve of both timestamps (after the pass, in the same encoder).
    pub fn resolve(&self, encoder: &mut wgpu::CommandEncoder) {
        encoder.resolve_query_set(&self.query_set, 0..2, &self.resolve, 0);
        encoder.copy_buffer_to_buffer(&self.resolve, 0, &self.readback, 0, 16);
    }

    /// Seconds between the two timestamps; waits for the submitted work.
    pub fn read_seconds(&self, ctx: &GpuContext) -> Result<f64> {
        let (sender, receiver) = futures_intrusive::channel::shared::oneshot_channel();
        self.readback.map_async(wgpu::MapMode::Read, .., move |r| {
            sender.send(r).ok();
        });
        ctx.wait()?;
        let failed = |reason: String| Error::Readback {
            what: "timestamps".into(),
            reason,
        };
        match pollster::block_on(receiver.receive()) {
            Some(Ok(())) => {}
            other => return Err(failed(format!("{other:?}"))),
        }
        let ticks: [u64; 2] = {
            let view = self.readback.get_mapped_range(..).map_err(|e| failed(e.to_string()))?;
            bytemuck::pod_read_unaligned(&view[..16])
        };
        self.readback.unmap();
        Ok(ticks[1].saturating_sub(ticks[0]) as f64 * self.period_ns * 1e-9)
    }
}

impl GpuContext {
    /// Like [`GpuContext::run`], timing the pass with `timer`: returns the GPU seconds the pass
    /// took (waits for it).
    pub fn run_timed(&self, dispatches: &[&crate::gpu::Dispatch], timer: &PassTimer) -> Result<f64> {
        self.scoped("submitting timed kernels", || {
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("timed") });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("timed"),
                    timestamp_writes: Some(timer.writes()),
                });
                for d in dispatches {
                    d.record(&mut pass);
                }
            }
            timer.resolve(&mut encoder);
            self.queue.submit([encoder.finish()]);
        })?;
        timer.read_seconds(self)
    }
}
