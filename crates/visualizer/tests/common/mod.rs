//! Shared helpers for the headless golden-image tests.
#![allow(dead_code)]

use std::path::PathBuf;

use wavecast_visualizer::{Color, Gpu, HeadlessTarget, RgbaImage, VisualizerError};

/// The GPU for a test, or `None` (with the reason printed) when the machine has no adapter at all.
/// With `WAVECAST_REQUIRE_GPU=1` a missing adapter fails the test instead (CI sets it: lavapipe
/// is installed there).
pub fn gpu_or_skip(test: &str) -> Option<Gpu> {
    match Gpu::headless() {
        Ok(gpu) => Some(gpu),
        Err(e @ VisualizerError::NoAdapter { .. }) => {
            if std::env::var("WAVECAST_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("{test}: WAVECAST_REQUIRE_GPU=1 but {e}");
            }
            eprintln!("SKIPPED {test}: {e}");
            None
        }
        Err(e) => panic!("{test}: {e}"),
    }
}

/// Where failing tests leave their pictures: `<target dir>/tmp/visualizer-golden/`.
pub fn out_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("visualizer-golden")
}

/// Where the committed reference pictures live.
pub fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Renders with `draw` into a cleared `width`×`height` headless target and reads it back.
pub fn render(
    gpu: &Gpu,
    target: &mut HeadlessTarget,
    clear: Color,
    draw: impl FnOnce(&mut wgpu::RenderPass<'_>),
) -> RgbaImage {
    let mut encoder = gpu
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("test"),
        });
    {
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("test"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: target.view(),
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations {
                    load: wgpu::LoadOp::Clear(clear.to_wgpu(target.format())),
                    store: wgpu::StoreOp::Store,
                },
            })],
            ..Default::default()
        });
        draw(&mut pass);
    }
    gpu.queue.submit([encoder.finish()]);
    target.read_rgba(&gpu.device, &gpu.queue).expect("readback")
}

/// Collects sampled-pixel checks; on failure writes `<name>-actual.png` and `<name>-diff.png`
/// (failed points marked) and panics listing them.
pub struct Checks<'a> {
    name: String,
    image: &'a RgbaImage,
    failures: Vec<String>,
    marks: Vec<(u32, u32)>,
}

impl<'a> Checks<'a> {
    pub fn new(name: &str, image: &'a RgbaImage) -> Self {
        Self {
            name: name.to_owned(),
            image,
            failures: Vec::new(),
            marks: Vec::new(),
        }
    }

    /// The pixel at `(x, y)` must be within `tol` of `rgb` on every channel.
    pub fn color(&mut self, what: &str, x: f32, y: f32, rgb: [u8; 3], tol: u8) {
        let (xi, yi) = (x.floor() as u32, y.floor() as u32);
        match self.image.pixel(xi, yi) {
            Some(p) if p[..3].iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= tol) => {}
            got => {
                self.failures.push(format!(
                    "{what}: at ({xi},{yi}) expected {rgb:?} ±{tol}, got {got:?}"
                ));
                self.marks.push((xi, yi));
            }
        }
    }

    /// The pixel must differ from `rgb` by more than `tol` on some channel.
    pub fn not_color(&mut self, what: &str, x: f32, y: f32, rgb: [u8; 3], tol: u8) {
        let (xi, yi) = (x.floor() as u32, y.floor() as u32);
        if let Some(p) = self.image.pixel(xi, yi)
            && p[..3].iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= tol)
        {
            self.failures.push(format!(
                "{what}: at ({xi},{yi}) expected anything but {rgb:?}, got {p:?}"
            ));
            self.marks.push((xi, yi));
        }
    }

    /// A free-form condition.
    pub fn that(&mut self, what: &str, ok: bool, at: Option<(u32, u32)>) {
        if !ok {
            self.failures.push(what.to_owned());
            if let Some(m) = at {
                self.marks.push(m);
            }
        }
    }

    /// Panics (after writing the pictures) if any check failed.
    pub fn finish(self) {
        let dir = out_dir();
        if self.failures.is_empty() {
            // Keep the latest picture around for a look even when it passes.
            self.image
                .save_png(dir.join(format!("{}.png", self.name)))
                .expect("write png");
            remove_stale(&self.name);
            return;
        }
        let actual = dir.join(format!("{}-actual.png", self.name));
        let diff = dir.join(format!("{}-diff.png", self.name));
        self.image.save_png(&actual).expect("write actual png");
        let mut marked = self.image.clone();
        for (x, y) in &self.marks {
            for dy in -3i32..=3 {
                for dx in -3i32..=3 {
                    let (px, py) = (*x as i32 + dx, *y as i32 + dy);
                    if px >= 0
                        && py >= 0
                        && (px as u32) < marked.width
                        && (py as u32) < marked.height
                    {
                        let i = (py as usize * marked.width as usize + px as usize) * 4;
                        marked.data[i..i + 4].copy_from_slice(&[255, 0, 255, 255]);
                    }
                }
            }
        }
        marked.save_png(&diff).expect("write diff png");
        panic!(
            "{}: {} check(s) failed (see {} and {}):\n  {}",
            self.name,
            self.failures.len(),
            actual.display(),
            diff.display(),
            self.failures.join("\n  ")
        );
    }
}

/// Removes `-actual.png` / `-diff.png` left by an earlier failing run of `name`.
fn remove_stale(name: &str) {
    for suffix in ["actual", "diff"] {
        let _ = std::fs::remove_file(out_dir().join(format!("{name}-{suffix}.png")));
    }
}

/// Compares with the committed reference `tests/golden/<name>.png` (writing it when missing):
/// at most 0.5 % of pixels may differ by more than 24 on any channel (renderers differ slightly
/// in anti-aliasing between GPUs). On failure writes `-actual.png` and `-diff.png` and panics.
pub fn compare_golden(name: &str, image: &RgbaImage) {
    let reference = golden_dir().join(format!("{name}.png"));
    if !reference.exists() {
        image.save_png(&reference).expect("write reference");
        eprintln!(
            "NOTE {name}: wrote missing reference {}",
            reference.display()
        );
        return;
    }
    let expected = RgbaImage::load_png(&reference).expect("load reference");
    let dir = out_dir();
    let write = |d: Option<&RgbaImage>| {
        image
            .save_png(dir.join(format!("{name}-actual.png")))
            .expect("write actual");
        if let Some(d) = d {
            d.save_png(dir.join(format!("{name}-diff.png")))
                .expect("write diff");
        }
    };
    let Some(diff) = image.diff(&expected, 24) else {
        write(None);
        panic!(
            "{name}: size {}x{} differs from reference {}x{}",
            image.width, image.height, expected.width, expected.height
        );
    };
    if diff.fraction() <= 0.005 {
        remove_stale(name);
        return;
    }
    write(Some(&diff.image));
    panic!(
        "{name}: {} of {} pixels differ from {} (max delta {}); see {}",
        diff.differing_pixels,
        diff.total_pixels,
        reference.display(),
        diff.max_channel_delta,
        dir.display()
    );
}
