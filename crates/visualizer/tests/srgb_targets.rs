//! Linear (`Rgba8Unorm`) and sRGB (`Rgba8UnormSrgb`) targets show the same colours: shapes, video
//! and text all treat colours as sRGB-encoded values.

mod common;

use common::{Checks, gpu_or_skip, render};
use wavecast_visualizer::shapes::ShapeRenderer;
use wavecast_visualizer::text::{Align, TextLayer};
use wavecast_visualizer::{Color, ColorSpace, HeadlessTarget, I420Buffer, Rect, VideoRenderer};

const LABEL: Color = Color::rgb8(0xb8, 0xbe, 0xc8);
const PANEL: Color = Color::rgb8(0x40, 0x80, 0x20);

fn draw(format: wgpu::TextureFormat, name: &str) {
    let Some(gpu) = gpu_or_skip(name) else { return };
    let (w, h) = (240, 120);
    let mut target = HeadlessTarget::with_format(&gpu.device, w, h, format).unwrap();
    let mut shapes = ShapeRenderer::new(&gpu.device, format);
    shapes.resize(&gpu.queue, w, h);
    shapes.rect(Rect::new(0.0, 0.0, 80.0, 120.0), PANEL, 0.0);
    shapes.upload(&gpu.device, &gpu.queue);
    let mut video = VideoRenderer::new(&gpu.device, format);
    video.resize(&gpu.queue, w, h);
    video.set_region(&gpu.queue, Some(Rect::new(80.0, 0.0, 80.0, 120.0)));
    let cs = ColorSpace::BT709_FULL;
    let mut frame = I420Buffer::new(16, 16, 0, cs);
    frame.fill_rect(0, 0, 16, 16, [0xb8, 0x60, 0x30], cs);
    video
        .update(&gpu.device, &gpu.queue, &frame.as_frame(), cs)
        .unwrap();
    // U+2588 FULL BLOCK: a solid glyph whose middle is exactly the text colour.
    let mut text = TextLayer::new(&gpu.device, &gpu.queue, format, "test");
    text.resize(&gpu.queue, w, h);
    text.begin();
    text.label(
        "\u{2588}",
        200.0,
        20.0,
        48.0,
        Align::Center,
        LABEL,
        Rect::of_size(w, h),
    );
    text.prepare(&gpu.device, &gpu.queue).unwrap();
    let img = render(&gpu, &mut target, Color::rgb8(0, 0, 0), |pass| {
        shapes.render(pass);
        video.render(pass);
        text.render(pass).unwrap();
    });
    let mut c = Checks::new(name, &img);
    c.color("shape colour", 40.0, 60.0, [0x40, 0x80, 0x20], 2);
    let expected_video = cs.yuv_to_rgb(cs.rgb_to_yuv([0xb8, 0x60, 0x30]));
    c.color("video colour", 120.0, 60.0, expected_video, 3);
    c.color("text colour", 200.0, 45.0, [0xb8, 0xbe, 0xc8], 3);
    c.finish();
}

#[test]
fn colours_on_a_linear_format_target() {
    draw(wgpu::TextureFormat::Rgba8Unorm, "srgb_linear_target");
}

#[test]
fn colours_on_an_srgb_format_target() {
    draw(wgpu::TextureFormat::Rgba8UnormSrgb, "srgb_srgb_target");
}

#[test]
fn text_color_is_not_darkened_on_bgra_linear_targets() {
    draw(wgpu::TextureFormat::Bgra8Unorm, "srgb_bgra_target");
}
