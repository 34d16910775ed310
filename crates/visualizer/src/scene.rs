//! Scenes: what a host draws each frame, and the dashboard that composes every renderer.

use crate::error::Result;
use crate::geom::{Color, Rect, palette};
use crate::gpu::Gpu;
use crate::grid::{GridRenderer, ParticipantTile};
use crate::meter::{MeterLevels, MeterRenderer};
use crate::spectrum::SpectrumRenderer;
use crate::video::{ColorSpace, I420Frame, VideoRenderer};
use crate::waveform::WaveformRenderer;

/// Something a host (window or headless) can draw: built for one target format, resized when the
/// target changes, updated once per frame, then rendered into the host's pass.
pub trait Scene {
    /// The target is now `width`×`height` pixels (each at least 1).
    fn resize(&mut self, gpu: &Gpu, width: u32, height: u32);
    /// Prepares frame number `frame` (uploads data; no drawing).
    ///
    /// # Errors
    /// Whatever the scene's renderers report.
    fn update(&mut self, gpu: &Gpu, frame: u64) -> Result<()>;
    /// Records draw calls into `pass`.
    ///
    /// # Errors
    /// Whatever the scene's renderers report.
    fn render(&self, pass: &mut wgpu::RenderPass<'_>) -> Result<()>;
    /// The colour the target is cleared to.
    fn clear_color(&self) -> Color {
        palette::BACKGROUND
    }
    /// Whether the host should close (a window ends its event loop and returns normally, as
    /// when the user closed it). Polled between frames; lets an app end a windowed run from
    /// another thread — a signal, a lost connection — without ending the process.
    fn close_requested(&self) -> bool {
        false
    }
}

/// Encodes one frame of `scene` into `view` (cleared first) and submits it.
///
/// # Errors
/// Whatever [`Scene::render`] reports.
pub fn draw_scene(
    gpu: &Gpu,
    scene: &dyn Scene,
    view: &wgpu::TextureView,
    format: wgpu::TextureFormat,
) -> Result<wgpu::SubmissionIndex> {
    let mut encoder = gpu
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("scene"),
        });
    {
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("scene"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view,
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations {
                    load: wgpu::LoadOp::Clear(scene.clear_color().to_wgpu(format)),
                    store: wgpu::StoreOp::Store,
                },
            })],
            depth_stencil_attachment: None,
            timestamp_writes: None,
            occlusion_query_set: None,
            multiview_mask: None,
        });
        scene.render(&mut pass)?;
    }
    Ok(gpu.queue.submit([encoder.finish()]))
}

/// Everything the dashboard shows in one frame.
#[derive(Clone, Copy, Debug, Default)]
pub struct DashboardData<'a> {
    /// The latest video frame and how to decode it.
    pub video: Option<(I420Frame<'a>, ColorSpace)>,
    /// Waveform history, oldest first, −1..=1.
    pub waveform: &'a [f32],
    /// Meter levels, one per channel.
    pub meters: &'a [MeterLevels],
    /// Magnitude spectrum 0..=Nyquist in dBFS.
    pub spectrum: &'a [f32],
    /// Sample rate of the audio the spectrum came from.
    pub sample_rate: u32,
    /// Grid tiles.
    pub participants: &'a [ParticipantTile<'a>],
}

/// Where each dashboard panel goes in a `width`×`height` target.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DashboardLayout {
    /// Video panel.
    pub video: Rect,
    /// Participant grid.
    pub grid: Rect,
    /// Waveform.
    pub waveform: Rect,
    /// Spectrum.
    pub spectrum: Rect,
    /// Meter.
    pub meter: Rect,
}

impl DashboardLayout {
    /// Top two thirds: video left, grid right; bottom third: waveform, spectrum, meter.
    pub fn new(width: u32, height: u32) -> Self {
        let all = Rect::of_size(width, height).inset(4.0);
        let (top, bottom) = all.split_v(0.66);
        let (video, grid) = top.split_h(0.5);
        let (waveform, rest) = bottom.split_h(0.55);
        let (spectrum, meter) = rest.split_h(0.78);
        let pad = 4.0;
        Self {
            video: video.inset(pad),
            grid: grid.inset(pad),
            waveform: waveform.inset(pad),
            spectrum: spectrum.inset(pad),
            meter: meter.inset(pad),
        }
    }
}

/// Video, participant grid, waveform, spectrum and meter in one picture.
#[derive(Debug)]
pub struct Dashboard {
    /// Video renderer.
    pub video: VideoRenderer,
    /// Grid renderer.
    pub grid: GridRenderer,
    /// Waveform renderer.
    pub waveform: WaveformRenderer,
    /// Spectrum renderer.
    pub spectrum: SpectrumRenderer,
    /// Meter renderer.
    pub meter: MeterRenderer,
    layout: DashboardLayout,
}

impl Dashboard {
    /// Builds all renderers for targets of `format`.
    pub fn new(device: &wgpu::Device, queue: &wgpu::Queue, format: wgpu::TextureFormat) -> Self {
        Self {
            video: VideoRenderer::new(device, format),
            grid: GridRenderer::new(device, queue, format),
            waveform: WaveformRenderer::new(device, format),
            spectrum: SpectrumRenderer::new(device, format, 32),
            meter: MeterRenderer::new(device, queue, format),
            layout: DashboardLayout::new(1, 1),
        }
    }

    /// The current panel layout.
    pub fn layout(&self) -> DashboardLayout {
        self.layout
    }

    /// Re-lays the panels out for a `width`×`height` target.
    pub fn resize(&mut self, queue: &wgpu::Queue, width: u32, height: u32) {
        let (w, h) = (width.max(1), height.max(1));
        self.layout = DashboardLayout::new(w, h);
        self.video.resize(queue, w, h);
        self.video.set_region(queue, Some(self.layout.video));
        self.grid.resize(queue, w, h);
        self.grid.set_region(Some(self.layout.grid));
        self.waveform.resize(queue, w, h);
        self.waveform.set_region(Some(self.layout.waveform));
        self.spectrum.resize(queue, w, h);
        self.spectrum.set_region(Some(self.layout.spectrum));
        self.meter.resize(queue, w, h);
        self.meter.set_region(Some(self.layout.meter));
    }

    /// Uploads one frame's data to every renderer.
    ///
    /// # Errors
    /// An invalid video frame, or text that cannot be laid out.
    pub fn update(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        data: &DashboardData<'_>,
    ) -> Result<()> {
        if let Some((frame, cs)) = &data.video {
            self.video.update(device, queue, frame, *cs)?;
        }
        self.waveform.update(device, queue, data.waveform);
        self.spectrum
            .update(device, queue, data.spectrum, data.sample_rate);
        self.meter.update(device, queue, data.meters)?;
        self.grid.update(device, queue, data.participants)
    }

    /// Draws every panel.
    ///
    /// # Errors
    /// Text that cannot be drawn.
    pub fn render(&self, pass: &mut wgpu::RenderPass<'_>) -> Result<()> {
        self.video.render(pass);
        self.waveform.render(pass);
        self.spectrum.render(pass);
        self.meter.render(pass)?;
        self.grid.render(pass)
    }
}
