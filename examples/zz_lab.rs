// Kernel lab (not committed): times WGSL matmul variants on the current adapter.
use shadergrad::gpu::GpuContext;
use std::time::Instant;
use wgpu::util::DeviceExt;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = &args[1];
    let (m, k, n): (u32, u32, u32) = (
        args[2].parse().unwrap(),
        args[3].parse().unwrap(),
        args[4].parse().unwrap(),
    );
    let wg_x: u32 = args[5].parse().unwrap(); // columns per workgroup
    let wg_y: u32 = args[6].parse().unwrap(); // rows per workgroup
    let consts: Vec<(String, f64)> = args[7..]
        .iter()
        .map(|s| {
            let (a, b) = s.split_once('=').unwrap();
            (a.to_string(), b.parse().unwrap())
        })
        .collect();
    let ctx = GpuContext::new().unwrap();
    let dev = ctx.device();
    let src = std::fs::read_to_string(path).unwrap();
    let unchecked = std::env::var("UNCHECKED").is_ok();
    let module = if unchecked {
        unsafe {
            dev.create_shader_module_trusted(
                wgpu::ShaderModuleDescriptor {
                    label: None,
                    source: wgpu::ShaderSource::Wgsl(src.into()),
                },
                wgpu::ShaderRuntimeChecks::unchecked(),
            )
        }
    } else {
        dev.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: None,
            source: wgpu::ShaderSource::Wgsl(src.into()),
        })
    };
    let c: Vec<(&str, f64)> = consts
        .iter()
        .filter(|(a, _)| a != "FORM")
        .map(|(a, b)| (a.as_str(), *b))
        .collect();
    let t = Instant::now();
    let pipeline = dev.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: None,
        layout: None,
        module: &module,
        entry_point: Some(std::env::var("ENTRY").as_deref().unwrap_or("main")),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants: &c,
            zero_initialize_workgroup_memory: false,
        },
        cache: None,
    });
    let compile = t.elapsed().as_secs_f64();
    let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32) * 0.1 - 0.6).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32) * 0.1 - 0.5).collect();
    let mk = |d: &[f32]| {
        dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: bytemuck::cast_slice(d),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        })
    };
    let (ba, bb) = (mk(&a), mk(&b));
    let bc = mk(&vec![0.0; (m * n) as usize]);
    let full = std::env::var("FULL").is_ok();
    let params: Vec<u32> = if full {
        let form = consts.iter().find(|c| c.0 == "FORM").map(|c| c.1 as u32).unwrap_or(0);
        let lda = if form == 2 { m } else { k };
        let ldb = if form == 1 { k } else { n };
        vec![m, k, n, 0, lda, ldb, n, 0, 0, 0, 0, 0]
    } else {
        vec![m, k, n, 0u32]
    };
    let bp = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: bytemuck::cast_slice(&params),
        usage: wgpu::BufferUsages::UNIFORM,
    });
    let layout = pipeline.get_bind_group_layout(0);
    let extra = mk(&vec![0.0; 16]);
    let mut entries = vec![
        wgpu::BindGroupEntry {
            binding: 0,
            resource: ba.as_entire_binding(),
        },
        wgpu::BindGroupEntry {
            binding: 1,
            resource: bb.as_entire_binding(),
        },
        wgpu::BindGroupEntry {
            binding: 3,
            resource: bc.as_entire_binding(),
        },
        wgpu::BindGroupEntry {
            binding: 4,
            resource: bp.as_entire_binding(),
        },
    ];
    if full {
        entries.push(wgpu::BindGroupEntry {
            binding: 2,
            resource: extra.as_entire_binding(),
        });
        entries.push(wgpu::BindGroupEntry {
            binding: 5,
            resource: ba.as_entire_binding(),
        });
        entries.push(wgpu::BindGroupEntry {
            binding: 6,
            resource: bb.as_entire_binding(),
        });
    }
    let bg = dev.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &layout,
        entries: &entries,
    });
    let groups = [n.div_ceil(wg_x), m.div_ceil(wg_y), 1];
    let run = || {
        let mut enc = dev.create_command_encoder(&Default::default());
        {
            let mut p = enc.begin_compute_pass(&Default::default());
            p.set_pipeline(&pipeline);
            p.set_bind_group(0, &bg, &[]);
            p.dispatch_workgroups(groups[0], groups[1], 1);
        }
        ctx.queue().submit([enc.finish()]);
        dev.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    };
    let t0 = Instant::now();
    run();
    let first = t0.elapsed().as_secs_f64();
    eprintln!("first run (compile) {:.0} ms", first * 1e3);
    let mut times = vec![];
    for _ in 0..7 {
        let t = Instant::now();
        run();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let s = times[3];
    // check a few entries (AB form: C = A·B)
    let staging = dev.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: (m * n * 4) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = dev.create_command_encoder(&Default::default());
    enc.copy_buffer_to_buffer(&bc, 0, &staging, 0, (m * n * 4) as u64);
    ctx.queue().submit([enc.finish()]);
    staging.map_async(wgpu::MapMode::Read, .., |_| {});
    dev.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    let got: Vec<f32> = bytemuck::cast_slice(&staging.get_mapped_range(..).unwrap()).to_vec();
    let form = consts.iter().find(|c| c.0 == "FORM").map(|c| c.1 as u32).unwrap_or(0);
    let mut maxerr = 0f32;
    for &(i, j) in &[(0u32, 0u32), (m - 1, n - 1), (m / 2, n / 3), (m - 1, 0), (0, n - 1)] {
        let mut want = 0f32;
        for kk in 0..k {
            let av = if form == 2 {
                a[(kk * m + i) as usize]
            } else {
                a[(i * k + kk) as usize]
            };
            let bv = if form == 1 {
                b[(j * k + kk) as usize]
            } else {
                b[(kk * n + j) as usize]
            };
            want += av * bv;
        }
        maxerr = maxerr.max((got[(i * n + j) as usize] - want).abs() / want.abs().max(1.0));
    }
    println!(
        "{path} {m}x{k}x{n} {consts:?}: {:.2} ms, {:.1} GFLOP/s (compile {:.0} ms) maxerr {maxerr:.1e}",
        s * 1e3,
        2.0 * (m as f64) * (k as f64) * (n as f64) / s / 1e9,
        compile * 1e3
    );
}
