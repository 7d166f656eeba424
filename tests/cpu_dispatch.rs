//! The CPU path's matmul (gemm, whose AVX-512 kernels are compiled in) on every instruction set:
//! checked here against a plain loop, then re-run under qemu-user emulating CPUs without
//! AVX-512 (Haswell: AVX2) and without AVX at all (Nehalem), so the run-time kernel choice is
//! exercised on machines this one is not. Under `CI` a missing `qemu-x86_64` fails the run.

mod common;

use shadergrad::cpu;
use shadergrad::ops::{Epilogue, MatmulDims, MatmulForm};

/// `op(A)·op(B)` in f64 by the definition.
fn plain(form: MatmulForm, d: MatmulDims, a: &[f32], b: &[f32]) -> Vec<f32> {
    let at = |i: usize, p: usize| {
        if form.transposes_a() {
            a[p * d.m + i]
        } else {
            a[i * d.k + p]
        }
    };
    let bt = |p: usize, j: usize| {
        if form.transposes_b() {
            b[j * d.k + p]
        } else {
            b[p * d.n + j]
        }
    };
    let mut c = vec![0.0; d.m * d.n];
    for i in 0..d.m {
        for j in 0..d.n {
            c[i * d.n + j] = (0..d.k).map(|p| f64::from(at(i, p)) * f64::from(bt(p, j))).sum::<f64>() as f32;
        }
    }
    c
}

#[test]
fn cpu_matmul_matches_a_plain_loop() {
    #[cfg(target_arch = "x86_64")]
    eprintln!(
        "instruction sets: avx512f {}, avx2 {}, fma {}",
        std::is_x86_feature_detected!("avx512f"),
        std::is_x86_feature_detected!("avx2"),
        std::is_x86_feature_detected!("fma")
    );
    let mut r = common::rng("cpu dispatch");
    // The last three run threaded, split across the threads in some forms (see `cpu::matmul`);
    // the last in every form, into uneven parts.
    let shapes = [
        (1, 1, 1),
        (3, 17, 127),
        (17, 3, 1),
        (33, 785, 17),
        (128, 784, 64),
        (64, 300, 200),
        (130, 129, 131),
    ];
    // Three threads whatever the machine has, so the split is uneven and exercised everywhere.
    let threads = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    for &(m, k, n) in &shapes {
        for form in MatmulForm::ALL {
            let d = MatmulDims::new(m, k, n);
            let a = common::random_vec(&mut r, m * k, 1.0);
            let b = common::random_vec(&mut r, k * n, 1.0);
            let mut c = vec![f32::NAN; m * n];
            threads
                .install(|| cpu::matmul(form, d, &a, &b, &mut c, Epilogue::None))
                .unwrap();
            common::assert_close(&format!("{form:?} {m}x{k}x{n}"), &c, &plain(form, d, &a, &b), 1e-5);
        }
    }
}

#[test]
#[cfg(target_arch = "x86_64")]
fn cpu_matmul_is_right_on_cpus_without_avx512_or_avx() {
    let qemu = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("qemu-x86_64"))
            .find(|p| p.exists())
    });
    let Some(qemu) = qemu else {
        assert!(
            std::env::var_os("CI").is_none(),
            "qemu-x86_64 is missing (apt-get install qemu-user); CI needs it for this test"
        );
        eprintln!("SKIPPED: qemu-x86_64 not installed (apt-get install qemu-user)");
        return;
    };
    let exe = std::env::current_exe().unwrap();
    for (model, avx512, avx2) in [("Haswell", false, true), ("Nehalem", false, false)] {
        let out = std::process::Command::new(&qemu)
            .args(["-cpu", model])
            .arg(&exe)
            .args(["cpu_matmul_matches_a_plain_loop", "--exact", "--nocapture"])
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{model}: {log}");
        let wanted = format!("avx512f {avx512}, avx2 {avx2}");
        assert!(log.contains(&wanted), "{model} should report {wanted}: {log}");
        eprintln!("{model}: passed ({wanted})");
    }
}
