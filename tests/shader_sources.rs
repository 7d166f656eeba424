//! The generated WGSL matches its generator, so nobody edits the output by hand by mistake.

use std::path::Path;
use std::process::Command;

/// Runs `shaders/{generator}` (with `args`) into a temporary file and compares it with
/// `shaders/{output}`.
fn assert_generated(generator: &str, args: &[&str], output: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fresh = std::env::temp_dir().join(format!("{output}-{}", std::process::id()));
    let status = Command::new("python3")
        .arg(root.join("shaders").join(generator))
        .args(args)
        .arg(&fresh)
        .status()
        .expect("python3 runs the shader generator");
    assert!(status.success());
    let generated = std::fs::read_to_string(&fresh).unwrap();
    let committed = std::fs::read_to_string(root.join("shaders").join(output)).unwrap();
    let _ = std::fs::remove_file(&fresh);
    assert!(
        generated == committed,
        "shaders/{output} differs from what shaders/{generator} writes: run the generator"
    );
}

#[test]
fn generated_matmul_kernel_is_up_to_date() {
    assert_generated("gen_matmul_cpu.py", &[], "matmul_cpu.wgsl");
    assert_generated("gen_matmul_cpu.py", &["--subgroup"], "matmul_cpu_subgroup.wgsl");
}

#[test]
fn generated_implicit_conv_kernels_are_up_to_date() {
    assert_generated("gen_conv_implicit.py", &[], "conv_implicit.wgsl");
    assert_generated("gen_conv_implicit.py", &["--subgroup"], "conv_implicit_subgroup.wgsl");
}
