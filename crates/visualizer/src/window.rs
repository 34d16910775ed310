//! The windowed host: a winit window with a wgpu surface (vsync), F for fullscreen, Q/Esc to quit.
//!
//! The same [`Scene`] that renders headless renders here. For tests and scripts, [`WindowOptions`]
//! can stop after a number of frames, write a screenshot of the last one, and run a scripted
//! sequence of resizes (to 1×1 and back) and minimising.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use winit::application::ApplicationHandler;
use winit::dpi::PhysicalSize;
use winit::event::{ElementState, KeyEvent, WindowEvent};
use winit::event_loop::{ActiveEventLoop, EventLoop};
use winit::keyboard::{Key, NamedKey};
use winit::window::{Fullscreen, Window, WindowId};

use crate::error::{Result, VisualizerError};
use crate::gpu::{Gpu, new_instance};
use crate::headless::{HeadlessTarget, Readback};
use crate::scene::{Scene, draw_scene};

/// How to run the window.
#[derive(Clone, Debug)]
pub struct WindowOptions {
    /// Window title.
    pub title: String,
    /// Initial inner size in physical pixels.
    pub size: (u32, u32),
    /// Exit with success after this many rendered frames (`None`: run until closed).
    pub frames: Option<u64>,
    /// Write the last rendered frame here as PNG (needs `frames`).
    pub screenshot: Option<PathBuf>,
    /// Wait for vertical blank (FIFO presentation); otherwise present as fast as possible.
    pub vsync: bool,
    /// Run the resize/minimise script (see [`SCRIPT`]).
    pub resize_script: bool,
    /// Give up with an error after this long.
    pub timeout: Duration,
}

impl Default for WindowOptions {
    fn default() -> Self {
        Self {
            title: "wavecast".to_owned(),
            size: (1280, 720),
            frames: None,
            screenshot: None,
            vsync: true,
            resize_script: false,
            timeout: Duration::from_secs(600),
        }
    }
}

/// One step of the resize script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScriptAction {
    /// Ask the window system for this inner size.
    RequestSize(u32, u32),
    /// Ask for the initial size again.
    RestoreSize,
    /// Minimise (iconify) or restore the window.
    Minimize(bool),
    /// Feed the host a zero-size resize, as minimising produces on some platforms
    /// (X11 without a window manager never minimises).
    ZeroSizeResize,
}

/// The scripted sequence: `(redraw request number, action)`.
pub const SCRIPT: [(u64, ScriptAction); 7] = [
    (10, ScriptAction::RequestSize(1, 1)),
    (20, ScriptAction::RestoreSize),
    (26, ScriptAction::ZeroSizeResize),
    (30, ScriptAction::RestoreSize),
    (34, ScriptAction::Minimize(true)),
    (40, ScriptAction::Minimize(false)),
    (44, ScriptAction::RestoreSize),
];

/// What happened during a run.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    /// The adapter used.
    pub adapter: String,
    /// The surface format chosen.
    pub format: Option<wgpu::TextureFormat>,
    /// Frames rendered and presented.
    pub frames_rendered: u64,
    /// Redraws skipped (minimised, zero size, surface timeout/occluded/outdated).
    pub frames_skipped: u64,
    /// Surface reconfigurations.
    pub reconfigures: u64,
    /// Every size the surface was configured to, in order.
    pub sizes: Vec<(u32, u32)>,
    /// Wall time from the first frame to the end.
    pub elapsed: Duration,
    /// The screenshot written, if any.
    pub screenshot: Option<PathBuf>,
}

struct Running<S> {
    window: Arc<Window>,
    gpu: Gpu,
    surface: wgpu::Surface<'static>,
    config: wgpu::SurfaceConfiguration,
    copy_src: bool,
    scene: S,
    zero_size: bool,
    readback: Readback,
}

struct App<S, F> {
    options: WindowOptions,
    make: Option<F>,
    running: Option<Running<S>>,
    error: Option<VisualizerError>,
    report: RunReport,
    redraws: u64,
    started: Option<Instant>,
}

/// Opens a window, builds the scene with `make(gpu, surface_format)` and renders until closed
/// (or until `options.frames`).
///
/// # Errors
/// No display, no adapter that can present, a failing scene, a failed screenshot, or the timeout.
pub fn run<S, F>(options: WindowOptions, make: F) -> Result<RunReport>
where
    S: Scene,
    F: FnOnce(&Gpu, wgpu::TextureFormat) -> Result<S>,
{
    let win_err = |context, e: winit::error::EventLoopError| VisualizerError::Window {
        context,
        source: Box::new(e),
    };
    let event_loop = EventLoop::new().map_err(|e| win_err("opening the display", e))?;
    let mut app = App {
        options,
        make: Some(make),
        running: None,
        error: None,
        report: RunReport::default(),
        redraws: 0,
        started: None,
    };
    event_loop
        .run_app(&mut app)
        .map_err(|e| win_err("running the event loop", e))?;
    if let Some(e) = app.error {
        return Err(e);
    }
    app.report.elapsed = app.started.map(|s| s.elapsed()).unwrap_or_default();
    Ok(app.report)
}

impl<S, F> App<S, F>
where
    S: Scene,
    F: FnOnce(&Gpu, wgpu::TextureFormat) -> Result<S>,
{
    fn init(&mut self, el: &ActiveEventLoop) -> Result<()> {
        let (w, h) = self.options.size;
        let attrs = Window::default_attributes()
            .with_title(self.options.title.clone())
            .with_inner_size(PhysicalSize::new(w.max(1), h.max(1)));
        let window = Arc::new(
            el.create_window(attrs)
                .map_err(|e| VisualizerError::Window {
                    context: "creating the window",
                    source: Box::new(e),
                })?,
        );
        let instance = new_instance();
        let surface = instance
            .create_surface(window.clone())
            .map_err(VisualizerError::CreateSurface)?;
        let gpu = Gpu::from_instance(instance, Some(&surface))?;
        let caps = surface.get_capabilities(&gpu.adapter);
        let format = caps
            .formats
            .iter()
            .copied()
            .find(|f| {
                matches!(
                    f,
                    wgpu::TextureFormat::Bgra8Unorm | wgpu::TextureFormat::Rgba8Unorm
                )
            })
            .or_else(|| caps.formats.first().copied())
            .ok_or_else(|| VisualizerError::NoSurfaceFormat {
                adapter: gpu.info().name,
            })?;
        let copy_src = caps.usages.contains(wgpu::TextureUsages::COPY_SRC);
        let mut usage = wgpu::TextureUsages::RENDER_ATTACHMENT;
        if copy_src {
            usage |= wgpu::TextureUsages::COPY_SRC;
        }
        let size = window.inner_size();
        let config = wgpu::SurfaceConfiguration {
            usage,
            format,
            width: size.width.max(1),
            height: size.height.max(1),
            present_mode: if self.options.vsync {
                wgpu::PresentMode::AutoVsync
            } else {
                wgpu::PresentMode::AutoNoVsync
            },
            desired_maximum_frame_latency: 2,
            alpha_mode: caps
                .alpha_modes
                .first()
                .copied()
                .unwrap_or(wgpu::CompositeAlphaMode::Auto),
            view_formats: vec![],
            color_space: wgpu::SurfaceColorSpace::Auto,
        };
        surface.configure(&gpu.device, &config);
        let make = self
            .make
            .take()
            .expect("init runs once: make is only taken here");
        let mut scene = make(&gpu, format)?;
        scene.resize(&gpu, config.width, config.height);
        tracing::info!(
            adapter = %gpu.info().name,
            ?format,
            width = config.width,
            height = config.height,
            copy_src,
            "window ready"
        );
        self.report.adapter = gpu.info().name;
        self.report.format = Some(format);
        self.report.sizes.push((config.width, config.height));
        self.running = Some(Running {
            window,
            gpu,
            surface,
            config,
            copy_src,
            scene,
            zero_size: size.width == 0 || size.height == 0,
            readback: Readback::new(),
        });
        Ok(())
    }

    fn fail(&mut self, el: &ActiveEventLoop, e: VisualizerError) {
        tracing::error!(error = %e, "window host stopping");
        self.error.get_or_insert(e);
        el.exit();
    }

    fn resize(&mut self, width: u32, height: u32) {
        let Some(r) = &mut self.running else { return };
        if width == 0 || height == 0 {
            // Minimised (or a degenerate size): keep the old configuration, skip frames.
            r.zero_size = true;
            return;
        }
        r.zero_size = false;
        if (width, height) == (r.config.width, r.config.height) {
            return;
        }
        r.config.width = width;
        r.config.height = height;
        r.surface.configure(&r.gpu.device, &r.config);
        r.scene.resize(&r.gpu, width, height);
        self.report.reconfigures += 1;
        self.report.sizes.push((width, height));
        tracing::debug!(width, height, "surface reconfigured");
    }

    fn run_script(&mut self) {
        if !self.options.resize_script {
            return;
        }
        let Some(action) = SCRIPT
            .iter()
            .find(|(at, _)| *at == self.redraws)
            .map(|(_, a)| *a)
        else {
            return;
        };
        tracing::info!(redraw = self.redraws, ?action, "resize script");
        let (w0, h0) = self.options.size;
        match action {
            ScriptAction::ZeroSizeResize => self.resize(0, 0),
            other => {
                let Some(r) = &self.running else { return };
                match other {
                    ScriptAction::RequestSize(w, h) => {
                        if let Some(now) = r.window.request_inner_size(PhysicalSize::new(w, h)) {
                            self.resize(now.width, now.height);
                        }
                    }
                    ScriptAction::RestoreSize => {
                        let now = r.window.request_inner_size(PhysicalSize::new(w0, h0));
                        // Undo a simulated zero-size state even if the size did not change.
                        let size = now.unwrap_or_else(|| r.window.inner_size());
                        self.resize(size.width, size.height);
                    }
                    ScriptAction::Minimize(m) => r.window.set_minimized(m),
                    ScriptAction::ZeroSizeResize => {}
                }
            }
        }
    }

    fn redraw(&mut self, el: &ActiveEventLoop) {
        self.redraws += 1;
        self.run_script();
        let started = *self.started.get_or_insert_with(Instant::now);
        if started.elapsed() > self.options.timeout {
            let rendered = self.report.frames_rendered;
            self.fail(
                el,
                VisualizerError::Window {
                    context: "waiting for frames",
                    source: format!(
                        "timed out after {:?} with {rendered} frames rendered",
                        self.options.timeout
                    )
                    .into(),
                },
            );
            return;
        }
        let Some(r) = &mut self.running else { return };
        if r.zero_size {
            self.report.frames_skipped += 1;
            return;
        }
        let frame_no = self.report.frames_rendered;
        let mut suboptimal = false;
        let texture = match r.surface.get_current_texture() {
            wgpu::CurrentSurfaceTexture::Success(t) => t,
            wgpu::CurrentSurfaceTexture::Suboptimal(t) => {
                // Draw and present this one, reconfigure for the next.
                suboptimal = true;
                t
            }
            wgpu::CurrentSurfaceTexture::Timeout | wgpu::CurrentSurfaceTexture::Occluded => {
                self.report.frames_skipped += 1;
                return;
            }
            wgpu::CurrentSurfaceTexture::Outdated | wgpu::CurrentSurfaceTexture::Lost => {
                let size = r.window.inner_size();
                r.config.width = size.width.max(1);
                r.config.height = size.height.max(1);
                r.surface.configure(&r.gpu.device, &r.config);
                r.scene.resize(&r.gpu, r.config.width, r.config.height);
                self.report.reconfigures += 1;
                self.report.frames_skipped += 1;
                return;
            }
            wgpu::CurrentSurfaceTexture::Validation => {
                self.fail(el, VisualizerError::SurfaceValidation { frame: frame_no });
                return;
            }
        };
        let view = texture
            .texture
            .create_view(&wgpu::TextureViewDescriptor::default());
        let result = r
            .scene
            .update(&r.gpu, frame_no)
            .and_then(|()| draw_scene(&r.gpu, &r.scene, &view, r.config.format));
        if let Err(e) = result {
            self.fail(el, e);
            return;
        }
        let last = self.options.frames.is_some_and(|n| frame_no + 1 >= n);
        let mut shot = Ok(None);
        if last && let Some(path) = self.options.screenshot.clone() {
            shot = Self::screenshot(r, &texture.texture, &path).map(|()| Some(path));
        }
        r.window.pre_present_notify();
        r.gpu.queue.present(texture);
        self.report.frames_rendered += 1;
        if suboptimal {
            r.surface.configure(&r.gpu.device, &r.config);
            self.report.reconfigures += 1;
        }
        match shot {
            Ok(Some(path)) => self.report.screenshot = Some(path),
            Ok(None) => {}
            Err(e) => return self.fail(el, e),
        }
        if last {
            el.exit();
        }
    }

    fn screenshot(r: &mut Running<S>, texture: &wgpu::Texture, path: &PathBuf) -> Result<()> {
        let image = if r.copy_src {
            r.readback.read(&r.gpu.device, &r.gpu.queue, texture)?
        } else {
            // The surface cannot be copied: draw the same frame offscreen in the same format.
            let mut target = HeadlessTarget::with_format(
                &r.gpu.device,
                r.config.width,
                r.config.height,
                r.config.format,
            )?;
            draw_scene(&r.gpu, &r.scene, target.view(), r.config.format)?;
            target.read_rgba(&r.gpu.device, &r.gpu.queue)?
        };
        image.save_png(path)?;
        tracing::info!(path = %path.display(), "screenshot written");
        Ok(())
    }
}

impl<S, F> ApplicationHandler for App<S, F>
where
    S: Scene,
    F: FnOnce(&Gpu, wgpu::TextureFormat) -> Result<S>,
{
    fn resumed(&mut self, el: &ActiveEventLoop) {
        if self.running.is_none()
            && self.error.is_none()
            && let Err(e) = self.init(el)
        {
            self.fail(el, e);
        }
    }

    fn window_event(&mut self, el: &ActiveEventLoop, _id: WindowId, event: WindowEvent) {
        match event {
            WindowEvent::CloseRequested => el.exit(),
            WindowEvent::Resized(size) => self.resize(size.width, size.height),
            WindowEvent::KeyboardInput {
                event:
                    KeyEvent {
                        logical_key,
                        state: ElementState::Pressed,
                        repeat: false,
                        ..
                    },
                ..
            } => match logical_key.as_ref() {
                Key::Named(NamedKey::Escape) => el.exit(),
                Key::Character(c) if c.eq_ignore_ascii_case("q") => el.exit(),
                Key::Character(c) if c.eq_ignore_ascii_case("f") => {
                    if let Some(r) = &self.running {
                        let next = if r.window.fullscreen().is_some() {
                            None
                        } else {
                            Some(Fullscreen::Borderless(None))
                        };
                        r.window.set_fullscreen(next);
                    }
                }
                _ => {}
            },
            WindowEvent::RedrawRequested => self.redraw(el),
            _ => {}
        }
    }

    fn about_to_wait(&mut self, el: &ActiveEventLoop) {
        if let Some(r) = &self.running {
            if r.scene.close_requested() {
                tracing::debug!("the scene asked to close the window");
                el.exit();
                return;
            }
            r.window.request_redraw();
        }
    }
}
