//! Colour bars through the GPU YUV→RGB path, letterboxing, texture reuse, bad input.

mod common;

use common::{Checks, compare_golden, gpu_or_skip, render};
use wavecast_visualizer::video::COLOR_BARS;
use wavecast_visualizer::{
    Color, ColorSpace, HeadlessTarget, I420Buffer, Rect, VideoRenderer, VisualizerError,
};

const W: u32 = 640;
const H: u32 = 360;

fn render_bars(
    name: &str,
    encoded: ColorSpace,
    decoded: ColorSpace,
) -> Option<wavecast_visualizer::RgbaImage> {
    let gpu = gpu_or_skip(name)?;
    let mut target = HeadlessTarget::new(&gpu.device, W, H).unwrap();
    let mut video = VideoRenderer::new(&gpu.device, target.format());
    video.resize(&gpu.queue, W, H);
    let bars = I420Buffer::color_bars(W, H, encoded);
    video
        .update(&gpu.device, &gpu.queue, &bars.as_frame(), decoded)
        .unwrap();
    Some(render(
        &gpu,
        &mut target,
        Color::rgb8(255, 0, 255),
        |pass| video.render(pass),
    ))
}

fn check_bars(name: &str, cs: ColorSpace) {
    let Some(img) = render_bars(name, cs, cs) else {
        return;
    };
    let mut c = Checks::new(name, &img);
    for (i, rgb) in COLOR_BARS.iter().enumerate() {
        let x = (i as f32 + 0.5) * W as f32 / 8.0;
        for y in [H as f32 * 0.1, H as f32 * 0.5, H as f32 * 0.9] {
            c.color(&format!("bar {i}"), x, y, *rgb, 4);
        }
    }
    c.finish();
    compare_golden(name, &img);
}

#[test]
fn color_bars_bt601_limited() {
    check_bars("color_bars_bt601_limited", ColorSpace::BT601_LIMITED);
}

#[test]
fn color_bars_bt709_limited() {
    check_bars("color_bars_bt709_limited", ColorSpace::BT709_LIMITED);
}

#[test]
fn color_bars_bt601_full() {
    check_bars("color_bars_bt601_full", ColorSpace::BT601_FULL);
}

#[test]
fn color_bars_bt709_full() {
    check_bars("color_bars_bt709_full", ColorSpace::BT709_FULL);
}

#[test]
fn decoding_with_the_wrong_matrix_shows_wrong_colours() {
    // BT.709 bars decoded as BT.601: cyan, green, magenta and red move visibly, so the
    // bar tests above really distinguish the matrices.
    let Some(img) = render_bars(
        "wrong_matrix",
        ColorSpace::BT709_LIMITED,
        ColorSpace::BT601_LIMITED,
    ) else {
        return;
    };
    let mut c = Checks::new("wrong_matrix", &img);
    let mut off = 0;
    for (i, rgb) in COLOR_BARS.iter().enumerate() {
        let x = ((i as f32 + 0.5) * W as f32 / 8.0) as u32;
        let p = img.pixel(x, H / 2).unwrap();
        if p[..3].iter().zip(rgb).any(|(a, b)| a.abs_diff(*b) > 8) {
            off += 1;
        }
    }
    c.that(
        &format!("only {off} bars differ with the wrong matrix"),
        off >= 4,
        None,
    );
    c.finish();
}

#[test]
fn letterbox_bars_are_black_and_picture_is_centred() {
    let name = "letterbox";
    let Some(gpu) = gpu_or_skip(name) else { return };
    let (tw, th) = (800, 300);
    let mut target = HeadlessTarget::new(&gpu.device, tw, th).unwrap();
    let mut video = VideoRenderer::new(&gpu.device, target.format());
    video.resize(&gpu.queue, tw, th);
    let cs = ColorSpace::BT601_LIMITED;
    let bars = I420Buffer::color_bars(640, 480, cs);
    video
        .update(&gpu.device, &gpu.queue, &bars.as_frame(), cs)
        .unwrap();
    // 4:3 in 800x300: pillarboxed to 400x300 at x = 200.
    assert_eq!(
        video.picture_rect(),
        Some(Rect::new(200.0, 0.0, 400.0, 300.0))
    );
    let img = render(&gpu, &mut target, Color::rgb8(255, 0, 255), |pass| {
        video.render(pass)
    });
    let mut c = Checks::new(name, &img);
    c.color("left bar", 100.0, 150.0, [0, 0, 0], 0);
    c.color("right bar", 700.0, 150.0, [0, 0, 0], 0);
    c.color("first colour bar", 200.0 + 25.0, 150.0, COLOR_BARS[0], 4);
    c.color("last colour bar", 600.0 - 25.0, 150.0, COLOR_BARS[7], 4);

    // Into a sub-region, letterboxed (wide region): 16:9 frame in a tall region.
    let wide = I420Buffer::color_bars(320, 180, cs);
    video.set_region(&gpu.queue, Some(Rect::new(0.0, 0.0, 200.0, 300.0)));
    video
        .update(&gpu.device, &gpu.queue, &wide.as_frame(), cs)
        .unwrap();
    let r = video.picture_rect().unwrap();
    assert!(
        (r.w - 200.0).abs() < 1e-3 && (r.h - 112.5).abs() < 1e-3,
        "{r:?}"
    );
    let img2 = render(&gpu, &mut target, Color::rgb8(255, 0, 255), |pass| {
        video.render(pass)
    });
    let mut c2 = Checks::new("letterbox_region", &img2);
    c2.color("top bar", 100.0, 20.0, [0, 0, 0], 0);
    c2.color("bottom bar", 100.0, 280.0, [0, 0, 0], 0);
    c2.color("outside region untouched", 400.0, 150.0, [255, 0, 255], 0);
    c2.color("picture", 12.0, 150.0, COLOR_BARS[0], 4);
    c.finish();
    c2.finish();
}

#[test]
fn textures_are_reused_while_the_size_is_unchanged() {
    let Some(gpu) = gpu_or_skip("texture_reuse") else {
        return;
    };
    let mut video = VideoRenderer::new(&gpu.device, wgpu::TextureFormat::Rgba8Unorm);
    let cs = ColorSpace::BT709_LIMITED;
    let a = I420Buffer::color_bars(64, 48, cs);
    for _ in 0..5 {
        video
            .update(&gpu.device, &gpu.queue, &a.as_frame(), cs)
            .unwrap();
    }
    assert_eq!(video.texture_allocations(), 1);
    let b = I420Buffer::color_bars(66, 48, cs);
    video
        .update(&gpu.device, &gpu.queue, &b.as_frame(), cs)
        .unwrap();
    video
        .update(&gpu.device, &gpu.queue, &b.as_frame(), cs)
        .unwrap();
    assert_eq!(video.texture_allocations(), 2);
}

#[test]
fn odd_sizes_and_padded_strides_render() {
    let name = "odd_size";
    let Some(gpu) = gpu_or_skip(name) else { return };
    let mut target = HeadlessTarget::new(&gpu.device, 99, 51).unwrap();
    let mut video = VideoRenderer::new(&gpu.device, target.format());
    video.resize(&gpu.queue, 99, 51);
    let cs = ColorSpace::BT601_FULL;
    let mut frame = I420Buffer::new(33, 17, 13, cs);
    frame.fill_rect(0, 0, 33, 17, [0, 191, 0], cs);
    video
        .update(&gpu.device, &gpu.queue, &frame.as_frame(), cs)
        .unwrap();
    let img = render(&gpu, &mut target, Color::rgb8(255, 0, 255), |pass| {
        video.render(pass)
    });
    let mut c = Checks::new(name, &img);
    c.color("green centre", 49.0, 25.0, [0, 191, 0], 4);
    c.finish();
}

#[test]
fn invalid_frames_are_errors_not_panics() {
    let Some(gpu) = gpu_or_skip("invalid_frame") else {
        return;
    };
    let mut video = VideoRenderer::new(&gpu.device, wgpu::TextureFormat::Rgba8Unorm);
    let buf = I420Buffer::new(64, 64, 0, ColorSpace::default());
    let mut f = buf.as_frame();
    f.v = &f.v[..10];
    let err = video
        .update(&gpu.device, &gpu.queue, &f, ColorSpace::default())
        .unwrap_err();
    assert!(
        matches!(err, VisualizerError::InvalidFrame { plane: "V", .. }),
        "{err}"
    );
    let mut huge = buf.as_frame();
    huge.width = 100_000;
    huge.y_stride = 100_000;
    huge.y = &[];
    assert!(
        video
            .update(&gpu.device, &gpu.queue, &huge, ColorSpace::default())
            .is_err()
    );
    assert!(HeadlessTarget::new(&gpu.device, 0, 10).is_err());
}

#[test]
fn pipeline_frames_render_with_their_rotation() {
    use wavecast_visualizer::wavecast_pipeline::{
        PixelFormat, Rotation, VideoFrameMut, VideoLayout,
    };
    let name = "rotation";
    let Some(gpu) = gpu_or_skip(name) else { return };
    // A 64x32 pipeline frame: left half red, right half blue (BT.601 limited).
    let cs = ColorSpace::BT601_LIMITED;
    let layout = VideoLayout::new(PixelFormat::I420, 64, 32).unwrap();
    let mut f = VideoFrameMut::new(layout);
    for (plane, (left, right)) in [(0usize, (81u8, 41u8)), (1, (90, 240)), (2, (240, 110))] {
        let mut p = f.plane_mut(plane);
        let half = p.row_bytes / 2;
        for y in 0..p.rows {
            let row = p.row_mut(y);
            row[..half].fill(left);
            row[half..].fill(right);
        }
    }
    f.set_rotation(Rotation::R90);
    let frame = f.freeze();
    let (tw, th) = (200, 200);
    let mut target = HeadlessTarget::new(&gpu.device, tw, th).unwrap();
    let mut video = VideoRenderer::new(&gpu.device, target.format());
    video.resize(&gpu.queue, tw, th);
    video
        .update_video_frame(&gpu.device, &gpu.queue, &frame, cs)
        .unwrap();
    // Rotated 90° clockwise the 2:1 frame stands 1:2: 100x200 centred, red on top, blue below.
    assert_eq!(
        video.picture_rect(),
        Some(Rect::new(50.0, 0.0, 100.0, 200.0))
    );
    let img = render(&gpu, &mut target, Color::rgb8(255, 0, 255), |pass| {
        video.render(pass)
    });
    let mut c = Checks::new(name, &img);
    let red = cs.yuv_to_rgb([81, 90, 240]);
    let blue = cs.yuv_to_rgb([41, 240, 110]);
    c.color("top is the frame's left (red)", 100.0, 40.0, red, 4);
    c.color("bottom is the frame's right (blue)", 100.0, 160.0, blue, 4);
    c.color("pillarbox", 20.0, 100.0, [0, 0, 0], 0);
    // And back upright: left red, right blue, letterboxed 200x100.
    video.set_rotation(&gpu.queue, Rotation::R0);
    let img0 = render(&gpu, &mut target, Color::rgb8(255, 0, 255), |pass| {
        video.render(pass)
    });
    let mut c0 = Checks::new("rotation_r0", &img0);
    c0.color("left red", 40.0, 100.0, red, 4);
    c0.color("right blue", 160.0, 100.0, blue, 4);
    c0.color("letterbox", 100.0, 20.0, [0, 0, 0], 0);
    c.finish();
    c0.finish();
}
