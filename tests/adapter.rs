//! Adapter selection, limits and the errors a bad request gives.

mod common;

use shadergrad::Error;
use shadergrad::gpu::{AdapterRequest, GpuContext, parse_backend};

#[test]
fn backend_names_parse_and_bad_ones_are_errors() {
    assert_eq!(parse_backend("vulkan").unwrap(), wgpu::Backend::Vulkan);
    assert_eq!(parse_backend(" GL ").unwrap(), wgpu::Backend::Gl);
    assert_eq!(parse_backend("metal").unwrap(), wgpu::Backend::Metal);
    assert_eq!(parse_backend("dx12").unwrap(), wgpu::Backend::Dx12);
    let err = parse_backend("cuda").unwrap_err();
    assert!(
        matches!(
            err,
            Error::BadEnvVar {
                var: "SHADERGRAD_BACKEND",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("vulkan, metal, dx12, gl"), "{err}");
}

#[test]
fn unmatched_adapter_request_lists_what_exists() {
    let ctx = gpu_or_skip!();
    let request = AdapterRequest {
        backend: None,
        name_contains: Some("no-such-gpu-9000".into()),
        ..Default::default()
    };
    let err = GpuContext::with_request(&request).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::NoAdapter { .. }), "{text}");
    assert!(text.contains("no-such-gpu-9000"), "{text}");
    assert!(
        text.contains(&ctx.adapter_info().name),
        "the error should list {}: {text}",
        ctx.adapter_info().name
    );
}

#[test]
fn adapter_name_substring_selects_that_adapter() {
    let ctx = gpu_or_skip!();
    let name = &ctx.adapter_info().name;
    let part: String = name.chars().take(4).collect::<String>().to_uppercase();
    let request = AdapterRequest {
        backend: Some(ctx.adapter_info().backend),
        name_contains: Some(part),
        ..Default::default()
    };
    let chosen = GpuContext::with_request(&request).unwrap();
    assert_eq!(&chosen.adapter_info().name, name);
}

#[test]
fn device_gets_the_adapters_own_limits() {
    let ctx = gpu_or_skip!();
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let info = ctx.adapter_info();
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    let adapter = adapters
        .iter()
        .find(|a| a.get_info().name == info.name && a.get_info().backend == info.backend)
        .expect("the chosen adapter is enumerable");
    assert_eq!(ctx.device().limits(), adapter.limits());
    assert_eq!(ctx.limits(), &adapter.limits());
    eprintln!(
        "{}: max_buffer_size {} MiB, max_storage_buffer_binding_size {} MiB",
        ctx.describe(),
        ctx.limits().max_buffer_size >> 20,
        ctx.limits().max_storage_buffer_binding_size >> 20
    );
}

#[test]
fn describe_names_adapter_backend_and_type() {
    let ctx = gpu_or_skip!();
    let line = ctx.describe();
    assert!(!line.contains('\n'));
    assert!(line.contains(&ctx.adapter_info().name), "{line}");
    assert!(line.contains(ctx.adapter_info().backend.to_str()), "{line}");
    assert!(
        line.contains(&format!("{:?}", ctx.adapter_info().device_type)),
        "{line}"
    );
}

/// Prints what `AdapterRequest::from_env` makes of this process's environment: the child side
/// of `settings_from_the_environment_are_case_insensitive_and_errors_are_readable`.
#[test]
#[ignore = "run by settings_from_the_environment_are_case_insensitive_and_errors_are_readable"]
fn env_request_child() {
    match shadergrad::gpu::AdapterRequest::from_env() {
        Ok(r) => println!("\nrequest: ok {:?} {:?} {:?}", r.matmul_kernel, r.pairing, r.conv_path),
        Err(e) => println!("\nrequest: err {e}"),
    }
}

#[test]
fn settings_from_the_environment_are_case_insensitive_and_errors_are_readable() {
    use std::os::unix::ffi::OsStrExt;
    let child = |var: &str, value: &std::ffi::OsStr| {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "env_request_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env_remove("SHADERGRAD_MATMUL")
            .env_remove("SHADERGRAD_PAIRING")
            .env_remove("SHADERGRAD_CONV")
            .env(var, value)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = stdout.lines().find_map(|l| l.strip_prefix("request: "));
        line.unwrap_or_else(|| panic!("no request line: {stdout}")).to_string()
    };
    let text = |v: &str| std::ffi::OsString::from(v);
    assert!(child("SHADERGRAD_MATMUL", &text("Rows-Subgroup")).contains("Some(RowBlockSubgroup)"));
    assert!(child("SHADERGRAD_PAIRING", &text(" PAIRED ")).contains("Forced(Paired)"));
    assert!(child("SHADERGRAD_CONV", &text("Implicit")).contains("Some(Implicit)"));
    let err = child("SHADERGRAD_MATMUL", &text("fastest"));
    assert!(
        err.contains("expected one of auto, block, tiled, rows, rows-subgroup"),
        "{err}"
    );
    let long = "x".repeat(100_000);
    let err = child("SHADERGRAD_PAIRING", &text(&long));
    assert!(
        err.contains("(100000 characters)") && err.len() < 300,
        "{}",
        &err[..err.len().min(300)]
    );
    let err = child("SHADERGRAD_CONV", std::ffi::OsStr::from_bytes(b"im2col\xff"));
    assert!(err.contains("SHADERGRAD_CONV") && err.contains("UTF-8"), "{err}");
}
