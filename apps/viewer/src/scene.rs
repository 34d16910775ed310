//! What the viewer draws: the watched participant's video, a scrolling waveform, a dBFS meter and
//! a stats overlay (fps, bitrate, glass-to-glass latency from the embedded stamp, connection
//! quality), or a status card while connecting, offline or waiting for a publisher.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use wavecast_pipeline::analysis::{Levels, WaveformHistory};
use wavecast_pipeline::{AgeHistogram, Timestamp, VideoFrame};
use wavecast_visualizer::geom::palette;
use wavecast_visualizer::shapes::ShapeRenderer;
use wavecast_visualizer::text::{Align, TextLayer};
use wavecast_visualizer::{
    Color, ColorSpace, Gpu, MeterLevels, MeterRenderer, Rect, Scene, VideoRenderer,
    WaveformRenderer,
};

use wavecast_app::ConnState;
use wavecast_app::follow::Watching;
use wavecast_stream::receive::{AudioOut, VideoOut};

/// Everything the scene reads, shared with the room task and the decoders.
#[derive(Debug)]
pub struct Shared {
    /// Decoded video.
    pub video: Arc<VideoOut>,
    /// Decoded audio.
    pub audio: Arc<AudioOut>,
    /// Connection state.
    pub conn: watch::Receiver<ConnState>,
    /// Who is watched.
    pub watching: watch::Receiver<Watching>,
    /// Server URL (for the status card).
    pub url: String,
    /// Set to close the window (a signal, or the connection gave up).
    pub close: Arc<std::sync::atomic::AtomicBool>,
}

/// Rate over the last update interval.
#[derive(Debug, Default)]
struct Rate {
    at: Option<Instant>,
    last: u64,
    value: f64,
}

impl Rate {
    fn update(&mut self, total: u64, now: Instant) {
        match self.at {
            None => {
                self.at = Some(now);
                self.last = total;
            }
            Some(at) => {
                let dt = (now - at).as_secs_f64();
                if dt >= 0.5 {
                    self.value = total.saturating_sub(self.last) as f64 / dt;
                    self.last = total;
                    self.at = Some(now);
                }
            }
        }
    }
}

/// Layout of the panels.
#[derive(Debug, Clone, Copy, Default)]
pub struct ViewerLayout {
    /// Video.
    pub video: Rect,
    /// Waveform strip.
    pub waveform: Rect,
    /// Meter.
    pub meter: Rect,
}

impl ViewerLayout {
    fn new(w: u32, h: u32) -> Self {
        let all = Rect::of_size(w, h).inset(6.0);
        let (top, bottom) = all.split_v(0.8);
        let (wave, meter) = bottom.split_h(0.9);
        Self {
            video: top.inset(2.0),
            waveform: wave.inset(2.0),
            meter: meter.inset(2.0),
        }
    }
}

/// The viewer's scene.
pub struct ViewerScene {
    video: VideoRenderer,
    waveform: WaveformRenderer,
    meter: MeterRenderer,
    overlay: ShapeRenderer,
    text: TextLayer,
    shared: Arc<Shared>,
    layout: ViewerLayout,
    current: Option<VideoFrame>,
    fresh: bool,
    history: WaveformHistory,
    levels: MeterLevels,
    fps: Rate,
    kbps: Rate,
    packets: Rate,
    /// Capture-to-render ages of shown stamped frames.
    pub render_latencies: AgeHistogram,
    last_render_latency_us: Option<u64>,
    rendered: u64,
    /// Shortest time between updates (a window without vsync would otherwise spin and starve
    /// the decoders; zero headless, where the loop paces itself).
    min_interval: Duration,
    last_update: Option<Instant>,
}

impl std::fmt::Debug for ViewerScene {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewerScene")
            .field("layout", &self.layout)
            .field("rendered", &self.rendered)
            .finish_non_exhaustive()
    }
}

impl ViewerScene {
    /// Builds the renderers for targets of `format`.
    pub fn new(gpu: &Gpu, format: wgpu_format::TextureFormat, shared: Arc<Shared>) -> Self {
        let (d, q) = (&gpu.device, &gpu.queue);
        let mut video = VideoRenderer::new(d, format);
        video.set_border(q, Color::rgb8(0, 0, 0));
        Self {
            video,
            waveform: WaveformRenderer::new(d, format),
            meter: MeterRenderer::new(d, q, format),
            overlay: ShapeRenderer::new(d, format),
            text: TextLayer::new(d, q, format, "viewer overlay"),
            shared,
            layout: ViewerLayout::default(),
            current: None,
            fresh: false,
            history: WaveformHistory::new(400),
            levels: MeterLevels::from_linear(0.0, 0.0),
            fps: Rate::default(),
            kbps: Rate::default(),
            packets: Rate::default(),
            render_latencies: AgeHistogram::new(),
            last_render_latency_us: None,
            rendered: 0,
            min_interval: Duration::ZERO,
            last_update: None,
        }
    }

    /// Caps updates at `fps` per second (for windows).
    pub fn with_frame_cap(mut self, fps: u32) -> Self {
        self.min_interval = Duration::from_secs_f64(1.0 / f64::from(fps.max(1)));
        self
    }

    /// Whether the last update brought a new video frame.
    pub fn has_fresh_frame(&self) -> bool {
        self.fresh
    }

    /// The frame number (stamp) or sequence of the frame on screen.
    pub fn current_sequence(&self) -> Option<u64> {
        self.current.as_ref().map(VideoFrame::sequence)
    }

    /// Where the picture is drawn (after the first frame).
    pub fn picture_rect(&self) -> Option<Rect> {
        self.video.picture_rect()
    }

    fn status_text(&self) -> Option<String> {
        let conn = self.shared.conn.borrow().clone();
        let w = self.shared.watching.borrow().clone();
        match conn {
            ConnState::Connecting => Some(format!("Connecting to {} …", self.shared.url)),
            ConnState::Reconnecting {
                attempt,
                max,
                cause,
            } => Some(if attempt == 0 {
                format!("Offline: {cause}. Reconnecting to {} …", self.shared.url)
            } else {
                format!(
                    "Offline: cannot reach {} ({cause}). Retry {attempt} of {max} …",
                    self.shared.url
                )
            }),
            ConnState::Disconnected { reason, .. } => Some(format!("Disconnected: {reason}")),
            ConnState::Connected { room } if self.current.is_none() => Some(match &w.identity {
                Some(id) => format!("Watching {id}: waiting for video …"),
                None => format!("Connected to room {room}: waiting for someone to publish …"),
            }),
            ConnState::Connected { .. } => None,
        }
    }

    fn overlay_lines(&mut self) -> Vec<String> {
        let v = &self.shared.video;
        let w = self.shared.watching.borrow().clone();
        let now = Instant::now();
        self.fps.update(v.frames.load(Ordering::Relaxed), now);
        self.kbps.update(v.bytes.load(Ordering::Relaxed), now);
        self.packets
            .update(self.shared.audio.packets.load(Ordering::Relaxed), now);
        let size = v.size.load(Ordering::Relaxed);
        let who = match &w.identity {
            Some(id) if !w.name.is_empty() && w.name != *id => format!("{} ({id})", w.name),
            Some(id) => id.clone(),
            None => "loopback".into(),
        };
        let mut lines = vec![format!(
            "{who} · {}x{} · {:.1} fps · {:.0} kbit/s",
            size >> 16,
            size & 0xffff,
            self.fps.value,
            self.kbps.value * 8.0 / 1000.0
        )];
        if v.stamped.load(Ordering::Relaxed) {
            let last = v.last_latency_us.load(Ordering::Relaxed) as f64 / 1000.0;
            let p50 = v.p50_latency_us.load(Ordering::Relaxed) as f64 / 1000.0;
            let shown = self.last_render_latency_us.map_or(String::new(), |us| {
                format!(" · on screen {:.0} ms", us as f64 / 1000.0)
            });
            lines.push(format!(
                "glass-to-glass {last:.0} ms (p50 {p50:.0} ms){shown} · frame #{}",
                v.last_frame_number.load(Ordering::Relaxed)
            ));
        } else {
            lines.push("latency: no timestamp stamp in this video".into());
        }
        let q = w.quality.clone().unwrap_or_else(|| "n/a".into());
        let mut flags = String::new();
        if w.audio_muted {
            flags.push_str(" · audio muted");
        }
        if w.video_muted {
            flags.push_str(" · video muted");
        }
        lines.push(format!(
            "audio {:.0} pkt/s · {:.1} dBFS · quality {q}{flags}",
            self.packets.value, self.levels.rms_dbfs
        ));
        lines
    }
}

/// wgpu re-exported by the visualizer (one version everywhere).
mod wgpu_format {
    pub use wavecast_visualizer::wgpu::TextureFormat;
}

impl Scene for ViewerScene {
    fn resize(&mut self, gpu: &Gpu, width: u32, height: u32) {
        let q = &gpu.queue;
        self.layout = ViewerLayout::new(width, height);
        self.video.resize(q, width, height);
        self.video.set_region(q, Some(self.layout.video));
        self.waveform.resize(q, width, height);
        self.waveform.set_region(Some(self.layout.waveform));
        self.meter.resize(q, width, height);
        self.meter.set_region(Some(self.layout.meter));
        self.overlay.resize(q, width, height);
        self.text.resize(q, width, height);
    }

    fn update(&mut self, gpu: &Gpu, _frame: u64) -> wavecast_visualizer::Result<()> {
        let (d, q) = (&gpu.device, &gpu.queue);
        if let Some(last) = self.last_update {
            let spent = last.elapsed();
            if spent < self.min_interval {
                std::thread::sleep(self.min_interval - spent);
            }
        }
        self.last_update = Some(Instant::now());
        self.fresh = false;
        if let Some(f) = self.shared.video.mailbox.take() {
            if self.shared.video.stamped.load(Ordering::Relaxed) {
                let age = Timestamp::now().saturating_duration_since(f.timestamp());
                self.render_latencies.record(age);
                self.last_render_latency_us = Some(age.as_micros() as u64);
            }
            self.video
                .update_video_frame(d, q, &f, ColorSpace::BT601_LIMITED)?;
            self.current = Some(f);
            self.fresh = true;
            self.rendered += 1;
        }
        // Audio: every queued frame becomes one waveform column; the meter holds its peak.
        let mut peak_decay = self.levels.peak_dbfs - 1.5;
        let mut rms = None;
        while let Some(a) = self.shared.audio.render.pop() {
            self.history.push_samples(a.samples());
            let l = Levels::of(a.samples());
            peak_decay = peak_decay.max(l.peak_dbfs);
            rms = Some(l.rms_dbfs);
        }
        self.levels = MeterLevels {
            rms_dbfs: rms.unwrap_or(self.levels.rms_dbfs - 1.5).max(-120.0),
            peak_dbfs: peak_decay.max(-120.0),
        };
        self.waveform.update_history(d, q, &self.history);
        self.meter.update(d, q, &[self.levels])?;

        // Overlay: stats lines over the video's top-left corner, or a status card.
        self.overlay.clear();
        self.text.begin();
        let region = self.layout.video;
        let font = (region.h / 28.0).clamp(11.0, 18.0);
        let line_h = font * 1.35;
        if let Some(status) = self.status_text() {
            let card = Rect::new(
                region.x + region.w * 0.1,
                region.y + region.h * 0.4,
                region.w * 0.8,
                line_h * 2.2,
            );
            self.overlay.rect(card, palette::LABEL_BG, 8.0);
            let color = match *self.shared.conn.borrow() {
                ConnState::Connected { .. } => palette::WHITE,
                ConnState::Connecting => palette::YELLOW,
                _ => palette::RED,
            };
            self.text.label(
                &status,
                card.x + card.w * 0.5,
                card.y + (card.h - font * 1.2) * 0.5,
                font,
                Align::Center,
                color,
                card,
            );
        }
        if self.current.is_some() {
            let lines = self.overlay_lines();
            let pic = self.video.picture_rect().unwrap_or(region);
            let mut widths = 0.0f32;
            let x = pic.x + 8.0;
            let mut y = pic.y + pic.h * 0.12;
            for line in &lines {
                widths =
                    widths.max(
                        self.text
                            .label(line, x, y, font, Align::Left, palette::WHITE, pic),
                    );
                y += line_h;
            }
            let panel = Rect::new(
                x - 6.0,
                pic.y + pic.h * 0.12 - 4.0,
                (widths + 12.0).min(pic.w - 4.0),
                line_h * lines.len() as f32 + 8.0,
            );
            self.overlay.rect(panel, palette::LABEL_BG, 6.0);
        }
        self.overlay.upload(d, q);
        self.text.prepare(d, q)
    }

    fn close_requested(&self) -> bool {
        self.shared.close.load(Ordering::Relaxed)
    }

    fn render(
        &self,
        pass: &mut wavecast_visualizer::wgpu::RenderPass<'_>,
    ) -> wavecast_visualizer::Result<()> {
        if self.current.is_some() {
            self.video.render(pass);
        }
        self.waveform.render(pass);
        self.meter.render(pass)?;
        self.overlay.render(pass);
        self.text.render(pass)
    }
}
