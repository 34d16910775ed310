//! The headless host: render into an offscreen texture and read it back as RGBA.

use crate::error::{Result, VisualizerError};
use crate::image::RgbaImage;

/// The default offscreen format: 8-bit RGBA, values written as they are (no sRGB encode).
pub const HEADLESS_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;

/// Bytes per row of a `width`-pixel RGBA/BGRA row, padded to wgpu's 256-byte copy alignment.
pub fn padded_bytes_per_row(width: u32) -> u32 {
    let unpadded = width * 4;
    let align = wgpu::COPY_BYTES_PER_ROW_ALIGNMENT;
    unpadded.div_ceil(align) * align
}

/// Copies a texture back to the CPU as tightly packed RGBA (BGRA formats are swizzled).
///
/// Keeps its staging buffer while the size is unchanged.
#[derive(Debug)]
pub struct Readback {
    buffer: Option<(wgpu::Buffer, u32, u32)>,
}

impl Default for Readback {
    fn default() -> Self {
        Self::new()
    }
}

impl Readback {
    /// A readback helper with no buffer yet.
    pub fn new() -> Self {
        Self { buffer: None }
    }

    /// Copies `texture` (8-bit RGBA or BGRA, `COPY_SRC` usage) and waits for the result.
    ///
    /// # Errors
    /// [`VisualizerError::UnsupportedFormat`] for other formats; [`VisualizerError::Poll`] or
    /// [`VisualizerError::Readback`] when the GPU fails.
    pub fn read(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        texture: &wgpu::Texture,
    ) -> Result<RgbaImage> {
        let format = texture.format();
        let bgra = match format {
            wgpu::TextureFormat::Rgba8Unorm | wgpu::TextureFormat::Rgba8UnormSrgb => false,
            wgpu::TextureFormat::Bgra8Unorm | wgpu::TextureFormat::Bgra8UnormSrgb => true,
            format => return Err(VisualizerError::UnsupportedFormat { format }),
        };
        let (width, height) = (texture.width(), texture.height());
        let padded = padded_bytes_per_row(width);
        let buffer = match &self.buffer {
            Some((b, w, h)) if *w == width && *h == height => b.clone(),
            _ => {
                let b = device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("readback"),
                    size: u64::from(padded) * u64::from(height),
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                self.buffer = Some((b.clone(), width, height));
                b
            }
        };
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("readback copy"),
        });
        encoder.copy_texture_to_buffer(
            texture.as_image_copy(),
            wgpu::TexelCopyBufferInfo {
                buffer: &buffer,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(padded),
                    rows_per_image: Some(height),
                },
            },
            texture.size(),
        );
        queue.submit([encoder.finish()]);
        let slice = buffer.slice(..);
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        slice.map_async(wgpu::MapMode::Read, move |r| {
            // The receiver waits below; a failed send only means it gave up already.
            let _ = tx.send(r);
        });
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|source| VisualizerError::Poll {
                what: "the readback copy",
                source,
            })?;
        let mapped = rx.recv().unwrap_or(Err(wgpu::BufferAsyncError));
        mapped.map_err(|source| VisualizerError::Readback {
            width,
            height,
            source,
        })?;
        let mut image = RgbaImage::new(width, height);
        {
            let view = slice
                .get_mapped_range()
                .map_err(|e| VisualizerError::ReadbackView {
                    width,
                    height,
                    reason: e.to_string(),
                })?;
            let row = width as usize * 4;
            for (y, out) in image.data.chunks_exact_mut(row).enumerate() {
                let start = y * padded as usize;
                out.copy_from_slice(&view[start..start + row]);
                if bgra {
                    for px in out.chunks_exact_mut(4) {
                        px.swap(0, 2);
                    }
                }
            }
        }
        buffer.unmap();
        Ok(image)
    }
}

/// An offscreen render target: a texture the renderers draw into, and its readback.
#[derive(Debug)]
pub struct HeadlessTarget {
    texture: wgpu::Texture,
    view: wgpu::TextureView,
    readback: Readback,
}

impl HeadlessTarget {
    /// A `width`×`height` target in [`HEADLESS_FORMAT`].
    ///
    /// # Errors
    /// [`VisualizerError::InvalidSize`] when a side is 0 or above the device's limit.
    pub fn new(device: &wgpu::Device, width: u32, height: u32) -> Result<Self> {
        Self::with_format(device, width, height, HEADLESS_FORMAT)
    }

    /// A target in another format (8-bit RGBA or BGRA, with or without sRGB).
    ///
    /// # Errors
    /// As [`HeadlessTarget::new`], plus [`VisualizerError::UnsupportedFormat`].
    pub fn with_format(
        device: &wgpu::Device,
        width: u32,
        height: u32,
        format: wgpu::TextureFormat,
    ) -> Result<Self> {
        if !matches!(
            format,
            wgpu::TextureFormat::Rgba8Unorm
                | wgpu::TextureFormat::Rgba8UnormSrgb
                | wgpu::TextureFormat::Bgra8Unorm
                | wgpu::TextureFormat::Bgra8UnormSrgb
        ) {
            return Err(VisualizerError::UnsupportedFormat { format });
        }
        let max = device.limits().max_texture_dimension_2d;
        if width == 0 || height == 0 || width > max || height > max {
            return Err(VisualizerError::InvalidSize {
                what: "headless target",
                width,
                height,
                max,
            });
        }
        let texture = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("headless target"),
            size: wgpu::Extent3d {
                width,
                height,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format,
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
            view_formats: &[],
        });
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        Ok(Self {
            texture,
            view,
            readback: Readback::new(),
        })
    }

    /// Recreates the texture at a new size (no-op when unchanged).
    ///
    /// # Errors
    /// As [`HeadlessTarget::new`].
    pub fn resize(&mut self, device: &wgpu::Device, width: u32, height: u32) -> Result<()> {
        if (width, height) != self.size() {
            *self = Self::with_format(device, width, height, self.format())?;
        }
        Ok(())
    }

    /// Width and height.
    pub fn size(&self) -> (u32, u32) {
        (self.texture.width(), self.texture.height())
    }

    /// The texture format renderers must be built for.
    pub fn format(&self) -> wgpu::TextureFormat {
        self.texture.format()
    }

    /// The view to render into.
    pub fn view(&self) -> &wgpu::TextureView {
        &self.view
    }

    /// The texture itself.
    pub fn texture(&self) -> &wgpu::Texture {
        &self.texture
    }

    /// Copies the rendered picture to the CPU (waits for the GPU).
    ///
    /// # Errors
    /// [`VisualizerError::Poll`] or [`VisualizerError::Readback`] when the GPU fails.
    pub fn read_rgba(&mut self, device: &wgpu::Device, queue: &wgpu::Queue) -> Result<RgbaImage> {
        self.readback.read(device, queue, &self.texture)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_pad_to_256_bytes() {
        assert_eq!(padded_bytes_per_row(1), 256);
        assert_eq!(padded_bytes_per_row(64), 256);
        assert_eq!(padded_bytes_per_row(65), 512);
        assert_eq!(padded_bytes_per_row(1280), 5120);
    }
}

/// What the caller of [`run_loop`] wants for the next turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Draw a frame now.
    Render,
    /// Nothing new to draw: wait a few milliseconds and ask again.
    Skip,
    /// End the loop; `reached` is what [`LoopReport::reached`] says.
    Stop {
        /// Whether the run reached its goal.
        reached: bool,
    },
}

/// How [`run_loop`] runs.
#[derive(Debug, Clone, Default)]
pub struct LoopOptions {
    /// Target size in pixels.
    pub size: (u32, u32),
    /// Write counted frames as PNG into this directory (created when missing).
    pub dump: Option<std::path::PathBuf>,
    /// Write every Nth counted frame (at least 1).
    pub dump_every: u64,
    /// Give up (not reached) at this instant.
    pub deadline: Option<std::time::Instant>,
    /// Shortest time between two drawn frames (`ZERO`: as fast as the caller allows).
    pub min_interval: std::time::Duration,
}

/// What a [`run_loop`] did.
#[derive(Debug, Clone, Default)]
pub struct LoopReport {
    /// The adapter that rendered.
    pub adapter: String,
    /// Frames drawn.
    pub drawn: u64,
    /// Frames the caller counted.
    pub counted: u64,
    /// PNGs written.
    pub pngs: u64,
    /// What the last [`Turn::Stop`] said (false at the deadline).
    pub reached: bool,
}

/// The one headless run loop every app uses: asks `turn` what to do, draws `scene` into an
/// offscreen target, then asks `count` whether the frame counts and under which PNG name (it
/// is written every `dump_every` counted frames). With nothing to dump, one frame at most is in
/// flight (a software rasteriser must not queue work up).
///
/// # Errors
/// A failing scene, readback or PNG write.
pub fn run_loop<S: crate::Scene>(
    gpu: &crate::Gpu,
    scene: &mut S,
    options: &LoopOptions,
    mut turn: impl FnMut(&S) -> Turn,
    mut count: impl FnMut(&S, u64) -> Option<String>,
) -> Result<LoopReport> {
    use std::time::{Duration, Instant};
    let mut report = LoopReport {
        adapter: gpu.info().name,
        ..Default::default()
    };
    tracing::info!("rendering headless on {}", report.adapter);
    let (w, h) = options.size;
    let mut target = HeadlessTarget::new(&gpu.device, w, h)?;
    scene.resize(gpu, w, h);
    if let Some(dir) = &options.dump {
        std::fs::create_dir_all(dir).map_err(|source| VisualizerError::Io {
            path: dir.clone(),
            source,
        })?;
    }
    let every = options.dump_every.max(1);
    loop {
        let tick = Instant::now();
        if options.deadline.is_some_and(|d| tick > d) {
            report.reached = false;
            break;
        }
        match turn(scene) {
            Turn::Stop { reached } => {
                report.reached = reached;
                break;
            }
            Turn::Skip => {
                std::thread::sleep(Duration::from_millis(4));
                continue;
            }
            Turn::Render => {}
        }
        scene.update(gpu, report.drawn)?;
        crate::draw_scene(gpu, scene, target.view(), target.format())?;
        report.drawn += 1;
        let name = count(scene, report.counted);
        let mut dumped = false;
        if let Some(name) = name {
            let due = report.counted.is_multiple_of(every);
            report.counted += 1;
            if let (Some(dir), true) = (&options.dump, due) {
                target
                    .read_rgba(&gpu.device, &gpu.queue)?
                    .save_png(dir.join(name))?;
                report.pngs += 1;
                dumped = true;
            }
        }
        if !dumped {
            gpu.wait_idle("frame")?;
        }
        let spent = tick.elapsed();
        if spent < options.min_interval {
            std::thread::sleep(options.min_interval - spent);
        }
    }
    Ok(report)
}
