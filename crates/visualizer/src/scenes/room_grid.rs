//! The room grid: one tile per participant — their video (or an avatar), a waveform strip and a
//! level bar, with the grid renderer's name label, muted-microphone icon, speaking ring, quality
//! and screen-share badges — under a header with the room and connection state. Fed by a
//! [`RoomStatus`] polled once per update, whose tiles carry each participant's pipeline sinks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use wavecast_pipeline::analysis::{Levels, SpeakingConfig, SpeakingDetector, WaveformHistory};
use wavecast_pipeline::{AudioFrame, FrameQueue, Mailbox, VideoFrame};

use super::{CaptionLine, LinkStatus, StatusFn, caption_line_height, draw_captions};
use crate::geom::palette;
use crate::grid::TileLayout;
use crate::shapes::ShapeRenderer;
use crate::text::{Align, TextLayer};
use crate::{
    Color, ColorSpace, ConnectionQuality, Gpu, GridRenderer, ParticipantTile, Rect, Scene,
    VideoRenderer, WaveformRenderer, wgpu,
};

/// One participant's tile: their pipeline sinks and flags.
#[derive(Debug, Clone)]
pub struct TileFeed {
    /// A stable key (the identity).
    pub key: String,
    /// Name on the label.
    pub name: String,
    /// Latest-frame mailbox of their decoded pictures.
    pub video: Arc<Mailbox<VideoFrame>>,
    /// Their decoded audio (drop-oldest).
    pub audio: Arc<FrameQueue<AudioFrame>>,
    /// A video track is decoded and not muted.
    pub video_on: bool,
    /// No microphone track, or it is muted.
    pub mic_muted: bool,
    /// The server lists them among the active speakers.
    pub speaking: bool,
    /// Connection quality.
    pub quality: ConnectionQuality,
    /// Publishes a screen share.
    pub screen_share: bool,
    /// Video frames decoded so far.
    pub video_frames: u64,
    /// Audio packets decoded so far.
    pub audio_packets: u64,
    /// Chat and transcriptions to show under the tile, oldest first.
    pub captions: Vec<CaptionLine>,
}

/// What the grid shows (a plain struct, polled once per update).
#[derive(Debug, Clone, Default)]
pub struct RoomStatus {
    /// The connection.
    pub link: LinkStatus,
    /// Server URL (for the header).
    pub url: String,
    /// One tile per remote participant, in order.
    pub tiles: Vec<TileFeed>,
    /// Close the window (a signal arrived, or the connection gave up).
    pub close: bool,
}

/// What one tile keeps between frames.
struct TileState {
    video: VideoRenderer,
    waveform: WaveformRenderer,
    history: WaveformHistory,
    speaking: Option<SpeakingDetector>,
    levels: Levels,
    last_audio: Option<std::time::Instant>,
    frame: Option<VideoFrame>,
    shown: u64,
    rect: Rect,
}

/// Where one participant was drawn in the last frame (for tests and the stats file).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TileReport {
    /// Identity.
    pub identity: String,
    /// Name on the label.
    pub name: String,
    /// Tile rectangle (x, y, w, h).
    pub tile: (f32, f32, f32, f32),
    /// Label pill rectangle.
    pub label: (f32, f32, f32, f32),
    /// Shows video (else an avatar).
    pub has_video: bool,
    /// Muted-microphone icon shown.
    pub muted: bool,
    /// Speaking ring shown.
    pub speaking: bool,
    /// Quality badge.
    pub quality: String,
    /// Video frames decoded so far.
    pub video_frames: u64,
    /// Audio packets decoded so far.
    pub audio_packets: u64,
    /// Size of the picture shown (`None`: an avatar).
    pub video_size: Option<(u32, u32)>,
    /// Pictures this tile has shown so far.
    pub frames_shown: u64,
    /// Where captions are drawn (x, y, w, h): above the waveform strip.
    pub caption_area: (f32, f32, f32, f32),
    /// The caption lines drawn, after wrapping.
    pub captions: Vec<String>,
}

/// The pixel size of each tile the grid drew last, by tile key (shared with whoever decides
/// which video layer to receive for it: a tile of 320×180 needs no 720p picture).
#[derive(Debug, Clone, Default)]
pub struct TileSizes(std::sync::Arc<std::sync::Mutex<Vec<(String, u32, u32)>>>);

impl TileSizes {
    /// The sizes now: (tile key, width, height).
    pub fn get(&self) -> Vec<(String, u32, u32)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Store `sizes` when they differ from what is stored (allocates only then: the grid
    /// calls it on every update).
    fn set_if_changed<'a>(&self, sizes: impl Iterator<Item = (&'a str, u32, u32)> + Clone) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut stored = now.iter();
        let same = sizes.clone().all(|(k, w, h)| {
            stored
                .next()
                .is_some_and(|s| (s.0.as_str(), s.1, s.2) == (k, w, h))
        }) && stored.next().is_none();
        if !same {
            *now = sizes.map(|(k, w, h)| (k.to_owned(), w, h)).collect();
        }
    }
}

/// The room grid scene (what the room visualizer shows).
pub struct RoomGridScene {
    grid: GridRenderer,
    overlay: ShapeRenderer,
    header: TextLayer,
    tiles: HashMap<String, TileState>,
    source: StatusFn<RoomStatus>,
    status: RoomStatus,
    format: wgpu::TextureFormat,
    size: (u32, u32),
    reports: Vec<TileReport>,
    /// Shortest time between updates (windows; zero headless).
    min_interval: Duration,
    last_update: Option<std::time::Instant>,
    /// Where the tiles' sizes go, when somebody wants them.
    tile_sizes: Option<TileSizes>,
}

impl std::fmt::Debug for RoomGridScene {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomGridScene")
            .field("tiles", &self.tiles.len())
            .finish_non_exhaustive()
    }
}

const HEADER_H: f32 = 34.0;

const SILENCE: Levels = Levels {
    rms: 0.0,
    peak: 0.0,
    rms_dbfs: wavecast_pipeline::analysis::MIN_DBFS,
    peak_dbfs: wavecast_pipeline::analysis::MIN_DBFS,
};

impl RoomGridScene {
    /// Builds the shared renderers for targets of `format`; `status` is called once per update.
    pub fn new(gpu: &Gpu, format: wgpu::TextureFormat, status: StatusFn<RoomStatus>) -> Self {
        let (d, q) = (&gpu.device, &gpu.queue);
        Self {
            grid: GridRenderer::new(d, q, format),
            overlay: ShapeRenderer::new(d, format),
            header: TextLayer::new(d, q, format, "room header"),
            tiles: HashMap::new(),
            source: status,
            status: RoomStatus::default(),
            format,
            size: (1, 1),
            reports: Vec::new(),
            min_interval: Duration::ZERO,
            last_update: None,
            tile_sizes: None,
        }
    }

    /// Tell `sizes` each tile's pixel size whenever the layout changes.
    pub fn with_tile_sizes(mut self, sizes: TileSizes) -> Self {
        self.tile_sizes = Some(sizes);
        self
    }

    /// Caps updates at `fps` per second (for windows, which may not wait for vsync).
    pub fn with_frame_cap(mut self, fps: u32) -> Self {
        self.min_interval = Duration::from_secs_f64(1.0 / f64::from(fps.max(1)));
        self
    }

    /// The tiles drawn in the last update.
    pub fn reports(&self) -> &[TileReport] {
        &self.reports
    }

    /// Update every tile, the overlay and the header for `members` (the current status's).
    fn draw(&mut self, gpu: &Gpu, members: &[TileFeed]) -> crate::Result<()> {
        let (d, q) = (&gpu.device, &gpu.queue);
        self.tiles
            .retain(|key, _| members.iter().any(|m| m.key == *key));
        let rects = self.grid.tile_rects(members.len());
        if let Some(sizes) = &self.tile_sizes {
            sizes.set_if_changed(
                members
                    .iter()
                    .zip(&rects)
                    .map(|(m, r)| (m.key.as_str(), r.w.max(0.0) as u32, r.h.max(0.0) as u32)),
            );
        }
        let (w, h) = self.size;
        let format = self.format;
        let mut tiles: Vec<ParticipantTile<'_>> = Vec::with_capacity(members.len());
        for (m, rect) in members.iter().zip(&rects) {
            let st = self.tiles.entry(m.key.clone()).or_insert_with(|| {
                let mut video = VideoRenderer::new(d, format);
                video.resize(q, w, h);
                video.set_border(q, Color::rgb8(0x10, 0x11, 0x14));
                let mut waveform = WaveformRenderer::new(d, format);
                waveform.resize(q, w, h);
                TileState {
                    video,
                    waveform,
                    history: WaveformHistory::new(200),
                    speaking: SpeakingDetector::new(SpeakingConfig::default()).ok(),
                    levels: SILENCE,
                    last_audio: None,
                    frame: None,
                    shown: 0,
                    rect: Rect::default(),
                }
            });
            if st.rect != *rect {
                st.rect = *rect;
                st.video.set_region(q, Some(*rect));
            }
            if let Some(f) = m.video.take() {
                st.video
                    .update_video_frame(d, q, &f, ColorSpace::BT601_LIMITED)?;
                st.frame = Some(f);
                st.shown += 1;
            }
            let mut local_speaking = false;
            let mut got = false;
            while let Some(a) = m.audio.pop() {
                st.history.push_samples(a.samples());
                st.levels = Levels::of(a.samples());
                if let Some(det) = st.speaking.as_mut() {
                    local_speaking = det.update(st.levels.rms_dbfs, Duration::from_millis(20));
                }
                got = true;
            }
            if got {
                st.last_audio = Some(std::time::Instant::now());
            } else {
                local_speaking = st
                    .speaking
                    .as_ref()
                    .is_some_and(SpeakingDetector::is_speaking);
                // No audio for a while (muted, or none published): the bar falls to silence.
                if st
                    .last_audio
                    .is_none_or(|t| t.elapsed() > Duration::from_millis(300))
                {
                    st.levels = SILENCE;
                    if let Some(det) = st.speaking.as_mut() {
                        local_speaking = det.update(SILENCE.rms_dbfs, Duration::from_millis(100));
                    }
                }
            }
            let has_video = st.frame.is_some() && m.video_on;
            tiles.push(ParticipantTile {
                name: &m.name,
                muted: m.mic_muted,
                speaking: m.speaking || local_speaking,
                quality: m.quality,
                screen_share: m.screen_share,
                has_video,
            });
        }
        self.grid.update(d, q, &tiles)?;

        // Waveform strips and level bars, placed from the grid's tile layouts; captions above
        // the strips.
        self.overlay.clear();
        self.header.begin();
        self.reports.clear();
        for ((m, tile), l) in members.iter().zip(&tiles).zip(self.grid.layouts()) {
            let Some(st) = self.tiles.get_mut(&m.key) else {
                continue;
            };
            st.waveform.set_region(Some(strip_rect(l)));
            st.waveform.update_history(d, q, &st.history);
            let bar = bar_rect(l);
            self.overlay.rect(bar, palette::LABEL_BG, 3.0);
            let db = st.levels.rms_dbfs.clamp(-60.0, 0.0);
            let frac = (db + 60.0) / 60.0;
            if frac > 0.0 {
                let fill = Rect::new(
                    bar.x + 1.0,
                    bar.bottom() - bar.h * frac,
                    bar.w - 2.0,
                    bar.h * frac,
                );
                let color = if db > -6.0 {
                    palette::RED
                } else if db > -18.0 {
                    palette::YELLOW
                } else {
                    palette::GREEN
                };
                self.overlay.rect(fill, color, 2.0);
            }
            let area = caption_rect(l);
            let font = caption_font(l);
            let captions =
                draw_captions(&mut self.overlay, &mut self.header, &m.captions, area, font);
            let r = |r: Rect| (r.x, r.y, r.w, r.h);
            self.reports.push(TileReport {
                identity: m.key.clone(),
                name: m.name.clone(),
                tile: r(l.tile),
                label: r(l.label),
                has_video: tile.has_video,
                muted: tile.muted,
                speaking: tile.speaking,
                quality: format!("{:?}", tile.quality).to_lowercase(),
                video_frames: m.video_frames,
                audio_packets: m.audio_packets,
                video_size: st
                    .frame
                    .as_ref()
                    .filter(|_| tile.has_video)
                    .map(|f| (f.width(), f.height())),
                frames_shown: st.shown,
                caption_area: r(area),
                captions,
            });
        }
        // Header: room, count and connection state; a card when nobody is here; initials on
        // the avatars.
        for (tile, l) in tiles.iter().zip(self.grid.layouts()) {
            if tile.has_video {
                continue;
            }
            let (cx, cy) = l.tile.center();
            let size = l.tile.w.min(l.tile.h) * 0.16;
            self.header.label(
                &initials(tile.name),
                cx,
                cy - size * 0.6,
                size,
                Align::Center,
                palette::WHITE,
                l.tile,
            );
        }
        let (text, color) = self.header_text(members.len());
        let bar = Rect::new(0.0, 0.0, w as f32, HEADER_H - 4.0);
        self.overlay.rect(bar, palette::PANEL, 0.0);
        self.header
            .label(&text, 12.0, 7.0, 16.0, Align::Left, color, bar);
        if members.is_empty() && matches!(self.status.link, LinkStatus::Connected { .. }) {
            let card = Rect::new(w as f32 * 0.2, h as f32 * 0.45, w as f32 * 0.6, 40.0);
            self.overlay.rect(card, palette::LABEL_BG, 8.0);
            self.header.label(
                "nobody else is here yet",
                card.x + card.w * 0.5,
                card.y + 10.0,
                16.0,
                Align::Center,
                palette::WHITE,
                card,
            );
        }
        self.overlay.upload(d, q);
        self.header.prepare(d, q)
    }

    fn header_text(&self, n: usize) -> (String, Color) {
        let url = &self.status.url;
        match self.status.link.clone() {
            LinkStatus::Connected { room } => (
                format!(
                    "room {room} · {n} participant{} · {}",
                    if n == 1 { "" } else { "s" },
                    url
                ),
                palette::LABEL,
            ),
            LinkStatus::Connecting => (format!("connecting to {} …", url), palette::YELLOW),
            LinkStatus::Reconnecting {
                attempt,
                max,
                cause,
            } => (
                if attempt == 0 {
                    format!("offline ({cause}): reconnecting to {} …", url)
                } else {
                    format!(
                        "offline: cannot reach {} ({cause}); retry {attempt} of {max} …",
                        url
                    )
                },
                palette::RED,
            ),
            LinkStatus::Disconnected { reason } => {
                (format!("disconnected: {reason}"), palette::RED)
            }
        }
    }
}

/// "Ada Lovelace" → "AL", "py" → "P".
fn initials(name: &str) -> String {
    name.split_whitespace()
        .filter_map(|w| w.chars().find(|c| c.is_alphanumeric()))
        .take(2)
        .flat_map(char::to_uppercase)
        .collect()
}

/// The waveform strip inside a tile: above the name label, left of the level bar.
fn strip_rect(l: &TileLayout) -> Rect {
    let t = l.tile;
    let s = TileLayout::scale(t);
    let pad = 8.0 * s;
    let bottom = l.label.y - 4.0 * s;
    let h = (t.h * 0.16).max(10.0);
    Rect::new(t.x + pad, bottom - h, t.w - 2.0 * pad - 14.0 * s, h)
}

/// Caption font size for a tile.
fn caption_font(l: &TileLayout) -> f32 {
    (l.font_size * 1.1).max(10.0)
}

/// Where captions go: above the waveform strip, as wide as the strip, room for the most lines.
fn caption_rect(l: &TileLayout) -> Rect {
    let strip = strip_rect(l);
    let s = TileLayout::scale(l.tile);
    let h = caption_line_height(caption_font(l)) * super::MAX_CAPTION_LINES as f32;
    let bottom = strip.y - 4.0 * s;
    let top = (bottom - h).max(l.quality.bottom() + 4.0 * s);
    Rect::new(strip.x, top, strip.w, (bottom - top).max(0.0))
}

/// The level bar at the tile's right edge.
fn bar_rect(l: &TileLayout) -> Rect {
    let t = l.tile;
    let s = TileLayout::scale(t);
    let pad = 8.0 * s;
    let w = 8.0 * s;
    let top = l.quality.bottom() + 6.0 * s;
    Rect::new(
        t.right() - pad - w,
        top,
        w,
        (l.label.bottom() - top).max(4.0),
    )
}

impl Scene for RoomGridScene {
    fn resize(&mut self, gpu: &Gpu, width: u32, height: u32) {
        let q = &gpu.queue;
        self.size = (width, height);
        self.grid.resize(q, width, height);
        self.grid.set_region(Some(Rect::new(
            4.0,
            HEADER_H,
            width as f32 - 8.0,
            (height as f32 - HEADER_H - 4.0).max(1.0),
        )));
        self.overlay.resize(q, width, height);
        self.header.resize(q, width, height);
        for t in self.tiles.values_mut() {
            t.video.resize(q, width, height);
            t.waveform.resize(q, width, height);
        }
    }

    fn update(&mut self, gpu: &Gpu, _frame: u64) -> crate::Result<()> {
        if let Some(last) = self.last_update {
            let spent = last.elapsed();
            if spent < self.min_interval {
                std::thread::sleep(self.min_interval - spent);
            }
        }
        self.last_update = Some(std::time::Instant::now());
        self.status = (self.source)();
        // The members are lent out while drawing (the tiles borrow their names) and put back
        // for `render`: no per-frame copy of the list.
        let members = std::mem::take(&mut self.status.tiles);
        let drawn = self.draw(gpu, &members);
        self.status.tiles = members;
        drawn
    }

    fn close_requested(&self) -> bool {
        self.status.close
    }

    fn render(&self, pass: &mut wgpu::RenderPass<'_>) -> crate::Result<()> {
        // Order: videos, the grid (avatars, rings, labels, badges), waveforms, level bars and
        // header, then text (header, initials) on top.
        for m in &self.status.tiles {
            if let Some(st) = self.tiles.get(&m.key)
                && st.frame.is_some()
                && m.video_on
            {
                st.video.render(pass);
            }
        }
        self.grid.render(pass)?;
        for m in &self.status.tiles {
            if let Some(st) = self.tiles.get(&m.key) {
                st.waveform.render(pass);
            }
        }
        self.overlay.render(pass);
        self.header.render(pass)
    }
}

#[cfg(test)]
mod tests {
    use super::initials;

    #[test]
    fn initials_of_names() {
        assert_eq!(initials("Ada Lovelace"), "AL");
        assert_eq!(initials("alan turing (python sdk)"), "AT");
        assert_eq!(initials("py"), "P");
        assert_eq!(initials(""), "");
    }
}
