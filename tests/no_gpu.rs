//! A machine with no GPU adapter at all: `--backend auto` (the default) trains on the CPU with a
//! one-line notice, `--backend gpu` fails naming what exists. Every adapter is hidden from wgpu
//! by pointing the Vulkan loader and GLVND's EGL at files that do not exist, in child processes
//! (this test's own binary, and the examples `cargo test` builds beside it).

mod common;

use std::process::{Command, Output};

use shadergrad::Error;
use shadergrad::train::{BackendChoice, Device};

/// The environment that hides every adapter from wgpu.
const NO_ADAPTERS: [(&str, &str); 3] = [
    ("VK_ICD_FILENAMES", "/nonexistent.json"),
    ("__EGL_VENDOR_LIBRARY_FILENAMES", "/nonexistent.json"),
    ("SHADERGRAD_CACHE_DIR", ""),
];

fn without_adapters(mut cmd: Command) -> Output {
    for (k, v) in NO_ADAPTERS {
        cmd.env(k, v);
    }
    cmd.env_remove("SHADERGRAD_BACKEND").env_remove("SHADERGRAD_ADAPTER");
    cmd.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The child's side of [`the_library_falls_back_only_when_asked_to`].
#[test]
#[ignore = "run by the_library_falls_back_only_when_asked_to in an environment without adapters"]
fn device_choice_child() {
    let (device, reason) = Device::open(BackendChoice::Auto).unwrap();
    assert!(matches!(device, Device::Cpu), "{device:?}");
    let reason = reason.expect("a reason for the fallback").to_string();
    assert_eq!(
        reason,
        "no GPU adapter found; available adapters: none (install a Vulkan driver, e.g. `apt-get install mesa-vulkan-drivers` for lavapipe)"
    );
    match Device::open(BackendChoice::Gpu) {
        Err(Error::NoAdapter { .. }) => {}
        other => panic!("--backend gpu without an adapter: {other:?}"),
    }
    let (device, reason) = Device::open(BackendChoice::Cpu).unwrap();
    assert!(matches!(device, Device::Cpu) && reason.is_none());
    println!("child checks passed");
}

#[test]
fn the_library_falls_back_only_when_asked_to() {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "device_choice_child",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads",
        "1",
    ]);
    let out = without_adapters(cmd);
    assert!(
        out.status.success() && text(&out.stdout).contains("child checks passed"),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn backend_names_parse_and_bad_ones_are_refused() {
    assert_eq!("auto".parse::<BackendChoice>().unwrap(), BackendChoice::Auto);
    assert_eq!(" GPU ".parse::<BackendChoice>().unwrap(), BackendChoice::Gpu);
    assert_eq!("cpu".parse::<BackendChoice>().unwrap(), BackendChoice::Cpu);
    let e = "cuda".parse::<BackendChoice>().unwrap_err().to_string();
    assert!(e.contains("unknown backend \"cuda\"; expected auto, gpu or cpu"), "{e}");
    assert_eq!(BackendChoice::default(), BackendChoice::Auto);
}

#[test]
#[cfg(all(feature = "download", feature = "plot", feature = "progress", feature = "png"))]
fn the_examples_run_on_the_cpu_by_default_and_fail_when_a_gpu_is_required() {
    let out_dir = common::TempDir::unmade("no-gpu");
    let run = |extra: &[&str]| {
        let mut cmd = Command::new(common::example("mnist"));
        cmd.args(["--epochs", "1", "--limit-train", "600", "--limit-test", "200", "--out"])
            .arg(&out_dir)
            .args(extra)
            .env_remove("MNIST_DIR");
        without_adapters(cmd)
    };
    let auto = run(&[]);
    let (stdout, stderr) = (text(&auto.stdout), text(&auto.stderr));
    assert!(auto.status.success(), "{stdout}\n{stderr}");
    let notices: Vec<&str> = stderr.lines().filter(|l| l.starts_with("notice:")).collect();
    assert_eq!(notices.len(), 1, "{stderr}");
    assert!(
        notices[0].contains("no GPU adapter found; available adapters: none")
            && notices[0].contains("training on the CPU backend instead (--backend gpu requires a GPU)"),
        "{stderr}"
    );
    assert!(stdout.contains("backend: cpu"), "{stdout}");
    let checkpoint = out_dir.join("checkpoint.safetensors");
    assert!(checkpoint.is_file());

    // classify: the same default, the same refusal.
    let digit = out_dir.join("digit.png");
    let mut pixels = vec![0u8; 28 * 28];
    for r in 4..24 {
        pixels[r * 28 + 14] = 255; // a vertical stroke
    }
    image::save_buffer(&digit, &pixels, 28, 28, image::ExtendedColorType::L8).unwrap();
    let classify = |backend: &str| {
        let mut cmd = Command::new(common::example("classify"));
        cmd.args(["--backend", backend, "--checkpoint"])
            .arg(&checkpoint)
            .arg(&digit);
        without_adapters(cmd)
    };
    let auto = classify("auto");
    let (stdout, stderr) = (text(&auto.stdout), text(&auto.stderr));
    assert!(auto.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with(&format!("{}: ", digit.display())) && stdout.contains('%'),
        "{stdout}"
    );
    assert!(
        stderr
            .trim()
            .starts_with("notice: no GPU adapter found; available adapters: none")
            && stderr.contains("classifying on the CPU backend instead (--backend gpu requires a GPU)")
            && stderr.trim().lines().count() == 1,
        "{stderr}"
    );
    let gpu = classify("gpu");
    assert!(!gpu.status.success());
    assert!(
        text(&gpu.stderr).contains("no GPU adapter found; available adapters: none"),
        "{}",
        text(&gpu.stderr)
    );

    let _ = std::fs::remove_dir_all(&out_dir);
    let gpu = run(&["--backend", "gpu"]);
    let stderr = text(&gpu.stderr);
    assert!(!gpu.status.success(), "--backend gpu succeeded without an adapter");
    assert!(
        stderr.contains("no GPU adapter found; available adapters: none"),
        "{stderr}"
    );
    assert!(!out_dir.join("checkpoint.safetensors").exists());

    let bad = run(&["--backend", "cuda"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("expected auto, gpu or cpu"),
        "{}",
        text(&bad.stderr)
    );
    let _ = std::fs::remove_dir_all(&out_dir);
}
