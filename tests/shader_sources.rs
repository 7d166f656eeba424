//! The generated WGSL matches its generator, so nobody edits the output by hand by mistake.

use std::path::Path;
use std::process::Command;

#[test]
fn generated_matmul_kernel_is_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fresh = std::env::temp_dir().join(format!("matmul_cpu-{}.wgsl", std::process::id()));
    let status = Command::new("python3")
        .arg(root.join("shaders/gen_matmul_cpu.py"))
        .arg(&fresh)
        .status()
        .expect("python3 runs the shader generator");
    assert!(status.success());
    let generated = std::fs::read_to_string(&fresh).unwrap();
    let committed = std::fs::read_to_string(root.join("shaders/matmul_cpu.wgsl")).unwrap();
    let _ = std::fs::remove_file(&fresh);
    assert!(
        generated == committed,
        "shaders/matmul_cpu.wgsl differs from what shaders/gen_matmul_cpu.py writes: run the generator"
    );
}
