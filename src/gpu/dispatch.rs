//! A prepared kernel launch: pipeline, bind group and grid, built once and recorded any
//! number of times. A training step is a list of these recorded into one compute pass.

use std::sync::Arc;

use wgpu::util::DeviceExt;

use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::gpu::buffer::Binding;
use crate::gpu::kernels::{Compiled, Constants, Kernel, Slot};

/// One kernel launch, ready to record: nothing is created when it is recorded. A launch that
/// would exceed the per-dispatch work budget is several parts, recorded back to back.
pub struct Dispatch {
    name: &'static str,
    parts: Vec<Part>,
}

/// One `dispatch_workgroups` call.
struct Part {
    compiled: Arc<Compiled>,
    bind_group: wgpu::BindGroup,
    workgroups: [u32; 3],
}

impl std::fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Dispatch({}, {:?} × {} parts)",
            self.name,
            self.workgroups(),
            self.parts.len()
        )
    }
}

impl Dispatch {
    /// Records the launch into a compute pass.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        for part in &self.parts {
            pass.set_pipeline(&part.compiled.pipeline);
            pass.set_bind_group(0, &part.bind_group, &[]);
            let [x, y, z] = part.workgroups;
            pass.dispatch_workgroups(x, y, z);
        }
    }

    /// The kernel's entry point name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Workgroups launched per dimension by the first part.
    pub fn workgroups(&self) -> [u32; 3] {
        self.parts[0].workgroups
    }

    /// How many `dispatch_workgroups` calls the launch makes (more than one when split to stay
    /// within the work budget).
    pub fn parts(&self) -> usize {
        self.parts.len()
    }

    /// One launch made of the parts of several, in order.
    pub(crate) fn merge(mut dispatches: Vec<Dispatch>) -> Dispatch {
        let mut first = dispatches.remove(0);
        for d in dispatches {
            first.parts.extend(d.parts);
        }
        first
    }
}

/// A grid covering `threads` invocations of a 1-D kernel with `workgroup_size` lanes, folded
/// into two dimensions when one would exceed the device's per-dimension limit. Returns the
/// grid and how many threads one grid row spans (the kernels' `threads_x`).
pub(crate) fn grid_1d(
    ctx: &GpuContext,
    kernel: &'static str,
    threads: usize,
    workgroup_size: u32,
) -> Result<([u32; 3], u32)> {
    let max = ctx.limits().max_compute_workgroups_per_dimension;
    let groups = threads.div_ceil(workgroup_size as usize).max(1) as u64;
    let x = groups.min(max as u64);
    let y = groups.div_ceil(x);
    if y > max as u64 {
        return Err(Error::DispatchTooLarge {
            kernel,
            workgroups: groups,
            limit: max,
        });
    }
    Ok(([x as u32, y as u32, 1], x as u32 * workgroup_size))
}

impl GpuContext {
    /// Builds a launch of `kernel` specialised by `constants`: `buffers` fill the storage slots
    /// in order, `params` becomes the uniform slot (if the kernel has one).
    pub(crate) fn prepare<'b, B: Into<Binding<'b>> + Copy>(
        &self,
        kernel: &Kernel,
        constants: &Constants,
        buffers: &[B],
        params: &[u8],
        workgroups: [u32; 3],
    ) -> Result<Dispatch> {
        let max = self.limits().max_compute_workgroups_per_dimension;
        if let Some(&too_many) = workgroups.iter().find(|&&w| w > max) {
            return Err(Error::DispatchTooLarge {
                kernel: kernel.entry,
                workgroups: too_many as u64,
                limit: max,
            });
        }
        let buffers: Vec<Binding<'_>> = buffers.iter().map(|&b| b.into()).collect();
        let binding_limit = self.limits().max_storage_buffer_binding_size;
        if let Some(b) = buffers.iter().find(|b| b.size > binding_limit) {
            return Err(Error::BufferTooLarge {
                what: format!("a binding of {} for {}", b.label, kernel.entry),
                bytes: b.size,
                limit: binding_limit,
                limit_name: "max_storage_buffer_binding_size",
            });
        }
        self.scoped(kernel.entry, || {
            self.prepare_unchecked(kernel, constants, &buffers, params, workgroups)
        })
    }

    fn prepare_unchecked(
        &self,
        kernel: &Kernel,
        constants: &Constants,
        buffers: &[Binding<'_>],
        params: &[u8],
        workgroups: [u32; 3],
    ) -> Dispatch {
        self.prepared.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let compiled = self.pipelines.get(&self.device, kernel, constants);
        let uniform = kernel.slots.iter().any(|(_, s)| *s == Slot::Uniform).then(|| {
            self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(kernel.entry),
                contents: params,
                usage: wgpu::BufferUsages::UNIFORM,
            })
        });
        let mut storage = buffers.iter();
        let entries: Vec<_> = kernel
            .slots
            .iter()
            .map(|&(binding, slot)| {
                let resource = match slot {
                    Slot::Uniform => uniform.as_ref().expect("uniform slot has a buffer").as_entire_binding(),
                    Slot::Read | Slot::ReadWrite => {
                        let b = storage
                            .next()
                            .unwrap_or_else(|| panic!("{}: fewer buffers than storage slots", kernel.entry));
                        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: b.buffer,
                            offset: b.offset,
                            size: std::num::NonZeroU64::new(b.size),
                        })
                    }
                };
                wgpu::BindGroupEntry { binding, resource }
            })
            .collect();
        assert!(
            storage.next().is_none(),
            "{}: more buffers than storage slots",
            kernel.entry
        );
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.entry),
            layout: &compiled.layout,
            entries: &entries,
        });
        Dispatch {
            name: kernel.entry,
            parts: vec![Part {
                compiled,
                bind_group,
                workgroups,
            }],
        }
    }

    /// Records `dispatches` in order into one compute pass and submits them as one command buffer.
    pub fn run(&self, dispatches: &[&Dispatch]) -> Result<()> {
        self.scoped("submitting kernels", || {
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("run") });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("run"),
                    timestamp_writes: None,
                });
                for d in dispatches {
                    d.record(&mut pass);
                }
            }
            self.queue.submit([encoder.finish()]);
        })
    }
}
