//! One participant: their video, a scrolling waveform, a dBFS meter and a stats overlay (fps,
//! bitrate, glass-to-glass latency from the embedded stamp, connection quality), or a status
//! card while connecting, offline or waiting for a publisher. Fed by a video mailbox, an audio
//! queue and a [`ParticipantStatus`] polled once per update.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wavecast_pipeline::analysis::{Levels, WaveformHistory};
use wavecast_pipeline::{AgeHistogram, AudioFrame, FrameQueue, Mailbox, Timestamp, VideoFrame};

use super::{CaptionLine, LinkStatus, StatusFn, caption_line_height, draw_captions};
use crate::geom::palette;
use crate::shapes::ShapeRenderer;
use crate::text::{Align, TextLayer};
use crate::{
    Color, ColorSpace, Gpu, MeterLevels, MeterRenderer, Rect, Scene, VideoRenderer,
    WaveformRenderer, wgpu,
};

/// The pipeline sinks the scene drains: the newest decoded picture and the decoded audio.
#[derive(Debug, Clone)]
pub struct ParticipantFeeds {
    /// Latest-frame mailbox of decoded pictures (any size, changing at any frame).
    pub video: Arc<Mailbox<VideoFrame>>,
    /// Decoded audio for the waveform and the meter (drop-oldest).
    pub audio: Arc<FrameQueue<AudioFrame>>,
}

/// What the scene shows besides the media (a plain struct, polled once per update).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParticipantStatus {
    /// The connection.
    pub link: LinkStatus,
    /// Server URL (for the status card).
    pub url: String,
    /// Identity of the watched participant (`None`: nobody yet, or a local source).
    pub identity: Option<String>,
    /// Display name.
    pub name: String,
    /// Their connection quality, as a word.
    pub quality: Option<String>,
    /// Their audio track is muted.
    pub audio_muted: bool,
    /// Their video track is muted.
    pub video_muted: bool,
    /// Pictures decoded so far.
    pub video_frames: u64,
    /// Encoded video bytes received so far.
    pub video_bytes: u64,
    /// Size of the latest decoded picture.
    pub video_size: (u32, u32),
    /// The pictures carry a readable timestamp stamp.
    pub stamped: bool,
    /// Capture-to-decode age of the last stamped picture, µs.
    pub last_latency_us: u64,
    /// Median capture-to-decode age, µs.
    pub p50_latency_us: u64,
    /// Frame number of the last stamped picture.
    pub last_frame_number: u64,
    /// Audio packets decoded so far.
    pub audio_packets: u64,
    /// Chat and transcriptions to show under the picture, oldest first.
    pub captions: Vec<CaptionLine>,
    /// Close the window (a signal arrived, or the connection gave up).
    pub close: bool,
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

/// The participant scene (what the viewer shows).
pub struct ParticipantScene {
    video: VideoRenderer,
    waveform: WaveformRenderer,
    meter: MeterRenderer,
    overlay: ShapeRenderer,
    text: TextLayer,
    feeds: ParticipantFeeds,
    source: StatusFn<ParticipantStatus>,
    status: ParticipantStatus,
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
    captions: Vec<String>,
    /// Shortest time between updates (a window without vsync would otherwise spin and starve
    /// the decoders; zero headless, where the loop paces itself).
    min_interval: Duration,
    last_update: Option<Instant>,
}

impl std::fmt::Debug for ParticipantScene {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParticipantScene")
            .field("layout", &self.layout)
            .field("rendered", &self.rendered)
            .finish_non_exhaustive()
    }
}

impl ParticipantScene {
    /// Builds the renderers for targets of `format`; `status` is called once per update.
    pub fn new(
        gpu: &Gpu,
        format: wgpu::TextureFormat,
        feeds: ParticipantFeeds,
        status: StatusFn<ParticipantStatus>,
    ) -> Self {
        let (d, q) = (&gpu.device, &gpu.queue);
        let mut video = VideoRenderer::new(d, format);
        video.set_border(q, Color::rgb8(0, 0, 0));
        Self {
            video,
            waveform: WaveformRenderer::new(d, format),
            meter: MeterRenderer::new(d, q, format),
            overlay: ShapeRenderer::new(d, format),
            text: TextLayer::new(d, q, format, "viewer overlay"),
            feeds,
            source: status,
            status: ParticipantStatus::default(),
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
            captions: Vec::new(),
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

    /// The status polled at the last update.
    pub fn status(&self) -> &ParticipantStatus {
        &self.status
    }

    /// The caption lines drawn in the last update (after wrapping).
    pub fn captions(&self) -> &[String] {
        &self.captions
    }

    /// Where captions are drawn (the bottom of the picture), after the last update.
    pub fn caption_rect(&self) -> Rect {
        let region = self.layout.video;
        let font = caption_font(region);
        caption_area(self.video.picture_rect().unwrap_or(region), font)
    }

    fn status_text(&self) -> Option<String> {
        let w = &self.status;
        let url = &w.url;
        match w.link.clone() {
            LinkStatus::Connecting => Some(format!("Connecting to {} …", url)),
            LinkStatus::Reconnecting {
                attempt,
                max,
                cause,
            } => Some(if attempt == 0 {
                format!("Offline: {cause}. Reconnecting to {} …", url)
            } else {
                format!(
                    "Offline: cannot reach {} ({cause}). Retry {attempt} of {max} …",
                    url
                )
            }),
            LinkStatus::Disconnected { reason } => Some(format!("Disconnected: {reason}")),
            LinkStatus::Connected { room } if self.current.is_none() => Some(match &w.identity {
                Some(id) => format!("Watching {id}: waiting for video …"),
                None => format!("Connected to room {room}: waiting for someone to publish …"),
            }),
            LinkStatus::Connected { .. } => None,
        }
    }

    fn overlay_lines(&mut self) -> Vec<String> {
        let w = self.status.clone();
        let now = Instant::now();
        self.fps.update(w.video_frames, now);
        self.kbps.update(w.video_bytes, now);
        self.packets.update(w.audio_packets, now);
        let who = match &w.identity {
            Some(id) if !w.name.is_empty() && w.name != *id => format!("{} ({id})", w.name),
            Some(id) => id.clone(),
            None => "loopback".into(),
        };
        let mut lines = vec![format!(
            "{who} · {}x{} · {:.1} fps · {:.0} kbit/s",
            w.video_size.0,
            w.video_size.1,
            self.fps.value,
            self.kbps.value * 8.0 / 1000.0
        )];
        if w.stamped {
            let last = w.last_latency_us as f64 / 1000.0;
            let p50 = w.p50_latency_us as f64 / 1000.0;
            let shown = self.last_render_latency_us.map_or(String::new(), |us| {
                format!(" · on screen {:.0} ms", us as f64 / 1000.0)
            });
            lines.push(format!(
                "glass-to-glass {last:.0} ms (p50 {p50:.0} ms){shown} · frame #{}",
                w.last_frame_number
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

/// The overlay's font size for the video panel `region`.
fn caption_font(region: Rect) -> f32 {
    (region.h / 28.0).clamp(11.0, 18.0)
}

/// The caption strip at the bottom of `picture`, room for the most lines.
fn caption_area(picture: Rect, font: f32) -> Rect {
    let h = (caption_line_height(font) * super::MAX_CAPTION_LINES as f32).min(picture.h * 0.5);
    let margin = (picture.h * 0.04).max(4.0);
    Rect::new(
        picture.x + picture.w * 0.05,
        picture.bottom() - margin - h,
        picture.w * 0.9,
        h,
    )
}

impl Scene for ParticipantScene {
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

    fn update(&mut self, gpu: &Gpu, _frame: u64) -> crate::Result<()> {
        let (d, q) = (&gpu.device, &gpu.queue);
        if let Some(last) = self.last_update {
            let spent = last.elapsed();
            if spent < self.min_interval {
                std::thread::sleep(self.min_interval - spent);
            }
        }
        self.last_update = Some(Instant::now());
        self.fresh = false;
        self.status = (self.source)();
        if let Some(f) = self.feeds.video.take() {
            if self.status.stamped {
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
        while let Some(a) = self.feeds.audio.pop() {
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
        let font = caption_font(region);
        let line_h = font * 1.35;
        if let Some(status) = self.status_text() {
            let card = Rect::new(
                region.x + region.w * 0.1,
                region.y + region.h * 0.4,
                region.w * 0.8,
                line_h * 2.2,
            );
            self.overlay.rect(card, palette::LABEL_BG, 8.0);
            let color = match self.status.link {
                LinkStatus::Connected { .. } => palette::WHITE,
                LinkStatus::Connecting => palette::YELLOW,
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
        // Captions at the bottom of the picture (or of the video panel before the first one).
        let area = caption_area(self.video.picture_rect().unwrap_or(region), font);
        self.captions = draw_captions(
            &mut self.overlay,
            &mut self.text,
            &self.status.captions,
            area,
            font,
        );
        self.overlay.upload(d, q);
        self.text.prepare(d, q)
    }

    fn close_requested(&self) -> bool {
        self.status.close
    }

    fn render(&self, pass: &mut wgpu::RenderPass<'_>) -> crate::Result<()> {
        if self.current.is_some() {
            self.video.render(pass);
        }
        self.waveform.render(pass);
        self.meter.render(pass)?;
        self.overlay.render(pass);
        self.text.render(pass)
    }
}
