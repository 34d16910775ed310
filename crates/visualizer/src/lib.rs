//! wgpu visualisers for wavecast: video (I420 → RGB on the GPU), a scrolling waveform, a dBFS
//! meter, spectrum bars and a participant grid — drawn into a winit window or headless into a
//! texture that is read back as RGBA/PNG, so every picture can be tested in CI.
//!
//! ```no_run
//! use wavecast_visualizer::{Gpu, HeadlessTarget, VideoRenderer, I420Buffer, ColorSpace, Scene};
//! # fn main() -> Result<(), wavecast_visualizer::VisualizerError> {
//! let gpu = Gpu::headless()?; // hardware if present, else lavapipe
//! let mut target = HeadlessTarget::new(&gpu.device, 640, 360)?;
//! let mut video = VideoRenderer::new(&gpu.device, target.format());
//! video.resize(&gpu.queue, 640, 360);
//! let bars = I420Buffer::color_bars(320, 240, ColorSpace::BT601_LIMITED);
//! video.update(&gpu.device, &gpu.queue, &bars.as_frame(), ColorSpace::BT601_LIMITED)?;
//! let mut encoder = gpu.device.create_command_encoder(&Default::default());
//! {
//!     let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
//!         color_attachments: &[Some(wgpu::RenderPassColorAttachment {
//!             view: target.view(),
//!             depth_slice: None,
//!             resolve_target: None,
//!             ops: wgpu::Operations::default(),
//!         })],
//!         ..Default::default()
//!     });
//!     video.render(&mut pass);
//! }
//! gpu.queue.submit([encoder.finish()]);
//! target.read_rgba(&gpu.device, &gpu.queue)?.save_png("bars.png")?;
//! # Ok(()) }
//! ```
//!
//! # Design
//! Every renderer follows the wgpu examples' lifecycle: `new(device, format)` builds its pipelines
//! and bind-group layouts once; `resize` touches only size-dependent state; `update(data)` uploads
//! the frame's data (plain slices: I420 planes with strides, `&[f32]` samples, dBFS levels), reusing
//! textures and buffers while sizes are unchanged; `render(pass)` records draw calls into any pass.
//! The hosts own the targets: [`HeadlessTarget`] (offscreen texture, rows padded to 256 bytes on
//! readback) and, with the `window` feature, [`window::run`] (winit + surface, vsync). Shapes are
//! drawn by one instanced signed-distance shader ([`shapes::ShapeRenderer`]); text by glyphon with
//! the bundled DejaVu Sans. Colours are sRGB-encoded values; for sRGB targets the shaders linearise
//! them (a pipeline-overridable constant), so both kinds of target show the same picture.
//! Only the Vulkan backend is compiled in; on machines without a GPU, Mesa's lavapipe renders.
//!
//! Examples: `cargo run -p wavecast-visualizer --example headless -- --out dashboard.png` writes the
//! demo dashboard as a PNG; `xvfb-run -a cargo run -p wavecast-visualizer --example window --
//! --frames 60 --screenshot shot.png` opens it in a window (F fullscreen, Q/Esc quit).

#![deny(missing_docs)]

pub mod demo;
mod error;
mod from_pipeline;
pub mod geom;
pub mod gpu;
pub mod grid;
pub mod headless;
pub mod image;
pub mod meter;
pub mod scene;
pub mod scenes;
pub mod shapes;
pub mod spectrum;
pub mod text;
pub mod video;
pub mod waveform;
#[cfg(feature = "window")]
pub mod window;

pub use error::{Result, VisualizerError};
pub use geom::{Color, Rect};
pub use gpu::Gpu;
pub use grid::{ConnectionQuality, GridRenderer, ParticipantTile, TileLayout};
pub use headless::HeadlessTarget;
pub use image::RgbaImage;
pub use meter::{MeterLevels, MeterRenderer};
pub use scene::{Dashboard, DashboardData, Scene, draw_scene};
pub use spectrum::SpectrumRenderer;
pub use video::{ColorSpace, I420Buffer, I420Frame, Matrix, Range, VideoRenderer};
pub use wavecast_pipeline;
pub use waveform::WaveformRenderer;
pub use wgpu;

/// Renders one frame of `scene` into a fresh `width`×`height` headless target and reads it back.
///
/// # Errors
/// Invalid size, a failing scene, or a failed readback.
pub fn render_headless(
    gpu: &Gpu,
    scene: &mut dyn Scene,
    width: u32,
    height: u32,
    frame: u64,
) -> Result<RgbaImage> {
    let mut target = HeadlessTarget::new(&gpu.device, width, height)?;
    scene.resize(gpu, width, height);
    scene.update(gpu, frame)?;
    draw_scene(gpu, scene, target.view(), target.format())?;
    target.read_rgba(&gpu.device, &gpu.queue)
}
