//! Lists every adapter wgpu sees and opens the one shadergrad would use.
//!
//! `cargo run --example adapters` (honours SHADERGRAD_BACKEND and SHADERGRAD_ADAPTER).
//! Exits non-zero when no adapter can be opened.

use shadergrad::gpu::{GpuContext, list_adapters};

fn main() {
    println!("adapters on this machine: {}", list_adapters());
    match GpuContext::new() {
        Ok(ctx) => {
            let l = ctx.limits();
            println!("shadergrad uses: {}", ctx.describe());
            println!(
                "limits: max_buffer_size {} MiB, max_storage_buffer_binding_size {} MiB, \
                 max_compute_workgroups_per_dimension {}, max_compute_invocations_per_workgroup {}",
                l.max_buffer_size >> 20,
                l.max_storage_buffer_binding_size >> 20,
                l.max_compute_workgroups_per_dimension,
                l.max_compute_invocations_per_workgroup
            );
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
