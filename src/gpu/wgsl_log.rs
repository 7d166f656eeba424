//! A record of every pipeline a process compiles, for checking the crate's WGSL on other
//! compilers than naga: with `SHADERGRAD_WGSL_LOG=DIR`, each module is written once to
//! `DIR/<module>.wgsl` as a browser would be handed it (see [`Shader::wgsl_for`]) and each
//! (module, entry point, override constants) compiled is appended as one JSON line to
//! `DIR/pipelines.jsonl`, with the storage and uniform buffers it binds and the features it
//! needs. `tests/webgpu/check_modules.py` compiles them all in Chromium's WebGPU (Tint).
//!
//! Writing is best effort: the log serves a check, so a failed write is reported on stderr once
//! and never fails the compile it describes.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::gpu::kernels::{Constants, Kernel, Shader, Slot};

/// The file each module's text goes to: its name with spaces as `_`, ending in `.wgsl`.
pub(crate) fn module_file(shader: &Shader) -> String {
    let name = shader.name.replace(' ', "_");
    if name.ends_with(".wgsl") {
        name
    } else {
        format!("{name}.wgsl")
    }
}

/// Appends one compiled pipeline (and its module, the first time) to the log in `dir`.
pub(crate) fn record(dir: &Path, kernel: &Kernel, constants: &Constants) {
    if let Err(e) = try_record(dir, kernel, constants) {
        static REPORTED: AtomicBool = AtomicBool::new(false);
        if !REPORTED.swap(true, Ordering::Relaxed) {
            eprintln!("warning: SHADERGRAD_WGSL_LOG: cannot write to {}: {e}", dir.display());
        }
    }
}

fn try_record(dir: &Path, kernel: &Kernel, constants: &Constants) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let file = module_file(kernel.shader);
    let module_path = dir.join(&file);
    if !module_path.exists() {
        // Another process of the same run may write it too: a private name, then a rename.
        let tmp: PathBuf = dir.join(format!(".{file}.{}", std::process::id()));
        std::fs::write(&tmp, kernel.shader.wgsl_for(wgpu::Backend::BrowserWebGpu).as_bytes())?;
        std::fs::rename(&tmp, &module_path)?;
    }
    let count = |want: fn(Slot) -> bool| kernel.slots.iter().filter(|(_, s)| want(*s)).count();
    let line = serde_json::json!({
        "module": kernel.shader.name,
        "file": file,
        "entry": kernel.entry,
        "constants": constants.iter().map(|(n, v)| (n.to_string(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
        "storage_buffers": count(|s| s != Slot::Uniform),
        "uniform_buffers": count(|s| s == Slot::Uniform),
        // The bind-group layout the crate creates for it, so the check builds the same one.
        "slots": kernel.slots.iter().map(|(binding, slot)| serde_json::json!([binding, match slot {
            Slot::Read => "read-only-storage",
            Slot::ReadWrite => "storage",
            Slot::Uniform => "uniform",
        }])).collect::<Vec<_>>(),
        "features": if kernel.shader.subgroups { vec!["subgroups"] } else { vec![] },
    });
    // One write of one line in append mode: lines of concurrent test processes do not interleave.
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("pipelines.jsonl"))?;
    out.write_all(format!("{line}\n").as_bytes())
}
