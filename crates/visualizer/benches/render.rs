//! Headless frame rate of the dashboard (720p video + waveform + spectrum + meter + 9-tile grid),
//! and I420→RGBA for a 720p frame on the GPU against two CPU baselines, in one run.
//!
//! `CARGO_TARGET_DIR=target/visualizer cargo bench -p wavecast-visualizer --bench render`
//! Throughput is one frame per iteration, so criterion's "elem/s" is frames per second.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use wavecast_visualizer::demo::DemoScene;
use wavecast_visualizer::headless::HEADLESS_FORMAT;
use wavecast_visualizer::{
    Color, ColorSpace, Gpu, HeadlessTarget, I420Buffer, I420Frame, Scene, VideoRenderer, draw_scene,
};
use yuvutils_rs::{YuvPlanarImage, YuvRange, YuvStandardMatrix};

const W: u32 = 1280;
const H: u32 = 720;

fn gpu() -> Option<Gpu> {
    match Gpu::headless() {
        Ok(g) => {
            let i = g.info();
            eprintln!(
                "adapter: {} ({:?}, {})",
                i.name, i.device_type, i.driver_info
            );
            Some(g)
        }
        Err(e) => {
            eprintln!("SKIPPED render benches: {e}");
            None
        }
    }
}

fn dashboard(c: &mut Criterion) {
    let Some(gpu) = gpu() else { return };
    let mut target = HeadlessTarget::new(&gpu.device, W, H).expect("target");
    let mut scene = DemoScene::new(&gpu, HEADLESS_FORMAT, (W, H), 9);
    scene.resize(&gpu, W, H);
    let mut g = c.benchmark_group("dashboard_720p");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    let mut frame = 0u64;
    g.bench_function("video_waveform_9tiles", |b| {
        b.iter(|| {
            frame += 1;
            scene.update(&gpu, frame).expect("update");
            draw_scene(&gpu, &scene, target.view(), HEADLESS_FORMAT).expect("draw");
            gpu.wait_idle("bench frame").expect("wait");
        })
    });
    g.bench_function("video_waveform_9tiles_readback", |b| {
        b.iter(|| {
            frame += 1;
            scene.update(&gpu, frame).expect("update");
            draw_scene(&gpu, &scene, target.view(), HEADLESS_FORMAT).expect("draw");
            black_box(target.read_rgba(&gpu.device, &gpu.queue).expect("readback"));
        })
    });
    g.finish();
}

/// Fixed-point (Q14) BT.709 limited-range I420→RGBA, one pixel at a time: the plain CPU baseline.
fn scalar_i420_to_rgba(f: &I420Frame<'_>, out: &mut [u8]) {
    let rows = ColorSpace::BT709_LIMITED.yuv_to_rgb_rows();
    let q = |v: f32| (v * 16384.0).round() as i32;
    // rgb = m0*y + m1*u + m2*v + m3 with samples in 0..=255 (so m3 scales by 255).
    let m: [[i32; 4]; 3] = rows.map(|r| [q(r[0]), q(r[1]), q(r[2]), q(r[3] * 255.0)]);
    let clamp = |v: i32| ((v + 8192) >> 14).clamp(0, 255) as u8;
    for y in 0..f.height as usize {
        let yrow = &f.y[y * f.y_stride as usize..];
        let urow = &f.u[(y / 2) * f.u_stride as usize..];
        let vrow = &f.v[(y / 2) * f.v_stride as usize..];
        let orow = &mut out[y * f.width as usize * 4..(y + 1) * f.width as usize * 4];
        for (x, px) in orow.chunks_exact_mut(4).enumerate() {
            let (yy, uu, vv) = (
                i32::from(yrow[x]),
                i32::from(urow[x / 2]),
                i32::from(vrow[x / 2]),
            );
            for c in 0..3 {
                px[c] = clamp(m[c][0] * yy + m[c][1] * uu + m[c][2] * vv + m[c][3]);
            }
            px[3] = 255;
        }
    }
}

fn i420_to_rgba(c: &mut Criterion) {
    let cs = ColorSpace::BT709_LIMITED;
    let bars = I420Buffer::color_bars(W, H, cs);
    let frame = bars.as_frame();
    let mut rgba = vec![0u8; (W * H * 4) as usize];
    let mut g = c.benchmark_group("i420_to_rgba_720p");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);

    g.bench_function("cpu_scalar_fixed_point", |b| {
        b.iter(|| scalar_i420_to_rgba(black_box(&frame), &mut rgba))
    });
    g.bench_function("cpu_yuvutils_rs", |b| {
        let planar = YuvPlanarImage {
            y_plane: frame.y,
            y_stride: frame.y_stride,
            u_plane: frame.u,
            u_stride: frame.u_stride,
            v_plane: frame.v,
            v_stride: frame.v_stride,
            width: W,
            height: H,
        };
        b.iter(|| {
            yuvutils_rs::yuv420_to_rgba(
                black_box(&planar),
                &mut rgba,
                W * 4,
                YuvRange::Limited,
                YuvStandardMatrix::Bt709,
            )
            .expect("yuvutils conversion")
        })
    });

    if let Some(gpu) = gpu() {
        let mut target = HeadlessTarget::new(&gpu.device, W, H).expect("target");
        let mut video = VideoRenderer::new(&gpu.device, HEADLESS_FORMAT);
        video.resize(&gpu.queue, W, H);
        let draw = |video: &VideoRenderer, target: &HeadlessTarget| {
            let mut enc = gpu.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_render_pass(&wgpu::RenderPassDescriptor {
                    color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                        view: target.view(),
                        depth_slice: None,
                        resolve_target: None,
                        ops: wgpu::Operations {
                            load: wgpu::LoadOp::Clear(
                                Color::rgb8(0, 0, 0).to_wgpu(HEADLESS_FORMAT),
                            ),
                            store: wgpu::StoreOp::Store,
                        },
                    })],
                    ..Default::default()
                });
                video.render(&mut pass);
            }
            gpu.queue.submit([enc.finish()]);
        };
        g.bench_function("gpu_upload_convert", |b| {
            b.iter(|| {
                video
                    .update(&gpu.device, &gpu.queue, &frame, cs)
                    .expect("upload");
                draw(&video, &target);
                gpu.wait_idle("bench convert").expect("wait");
            })
        });
        g.bench_function("gpu_upload_convert_readback", |b| {
            b.iter(|| {
                video
                    .update(&gpu.device, &gpu.queue, &frame, cs)
                    .expect("upload");
                draw(&video, &target);
                black_box(target.read_rgba(&gpu.device, &gpu.queue).expect("readback"));
            })
        });
    }
    g.finish();
}

criterion_group!(benches, dashboard, i420_to_rgba);
criterion_main!(benches);
