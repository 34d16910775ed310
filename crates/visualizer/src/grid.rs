//! Participant grid: tiles with name label, muted-microphone icon, speaking ring,
//! connection-quality badge and screen-share badge.

use crate::error::Result;
use crate::geom::{Color, Rect, palette};
use crate::shapes::ShapeRenderer;
use crate::text::{Align, TextLayer};

/// A participant's connection quality, as LiveKit reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ConnectionQuality {
    /// Four bars.
    #[default]
    Excellent,
    /// Three bars.
    Good,
    /// Two bars, yellow.
    Poor,
    /// No bars, red badge.
    Lost,
}

impl ConnectionQuality {
    /// From a level, as stored in an atomic: 0 excellent, 1 good, 2 poor, anything else lost.
    pub fn from_level(level: u8) -> Self {
        match level {
            0 => Self::Excellent,
            1 => Self::Good,
            2 => Self::Poor,
            _ => Self::Lost,
        }
    }

    /// The level [`ConnectionQuality::from_level`] reads back.
    pub fn level(self) -> u8 {
        self as u8
    }

    /// How many of the four bars are lit, and their colour.
    pub fn bars(self) -> (usize, Color) {
        match self {
            Self::Excellent => (4, palette::GREEN),
            Self::Good => (3, palette::GREEN),
            Self::Poor => (2, palette::YELLOW),
            Self::Lost => (0, palette::RED),
        }
    }
}

/// What one tile shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ParticipantTile<'a> {
    /// Display name (falls back to the identity upstream).
    pub name: &'a str,
    /// Microphone muted (or no microphone track).
    pub muted: bool,
    /// Currently speaking (active speaker).
    pub speaking: bool,
    /// Connection quality.
    pub quality: ConnectionQuality,
    /// Sharing the screen.
    pub screen_share: bool,
    /// A video renderer draws this tile's picture underneath: skip the background and avatar.
    pub has_video: bool,
}

/// Columns for `count` tiles: 1 → 1, 2..=4 → 2, 5..=9 → 3, more → 4.
pub fn grid_columns(count: usize) -> usize {
    match count {
        0 | 1 => 1,
        2..=4 => 2,
        5..=9 => 3,
        _ => 4,
    }
}

/// Tile aspect ratio (width / height).
pub const TILE_ASPECT: f32 = 16.0 / 9.0;

/// Lays `count` equal 16:9 tiles out in `area` with `gap` pixels between them, row by row; the
/// whole block is centred and an incomplete last row is centred too. Writes into `out`.
pub fn grid_tiles(count: usize, area: Rect, gap: f32, out: &mut Vec<Rect>) {
    out.clear();
    if count == 0 || area.w <= 0.0 || area.h <= 0.0 {
        return;
    }
    let cols = grid_columns(count);
    let rows = count.div_ceil(cols);
    let cell_w = ((area.w - gap * (cols as f32 + 1.0)) / cols as f32).max(1.0);
    let cell_h = ((area.h - gap * (rows as f32 + 1.0)) / rows as f32).max(1.0);
    let tile = Rect::new(0.0, 0.0, cell_w, cell_h).fit_aspect(TILE_ASPECT);
    let (tw, th) = (tile.w, tile.h);
    let block_h = rows as f32 * th + (rows as f32 - 1.0) * gap;
    let y0 = area.y + (area.h - block_h) * 0.5;
    for i in 0..count {
        let row = i / cols;
        let col = i % cols;
        let in_row = if row + 1 == rows {
            count - row * cols
        } else {
            cols
        };
        let row_w = in_row as f32 * tw + (in_row as f32 - 1.0) * gap;
        let x0 = area.x + (area.w - row_w) * 0.5;
        out.push(Rect::new(
            x0 + col as f32 * (tw + gap),
            y0 + row as f32 * (th + gap),
            tw,
            th,
        ));
    }
}

/// Where each element of one tile is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TileLayout {
    /// The tile.
    pub tile: Rect,
    /// The name label's dark pill (bottom left).
    pub label: Rect,
    /// The name text's box inside the label.
    pub name: Rect,
    /// The muted-microphone icon (red disc, inside the label at its left end).
    pub mic: Option<Rect>,
    /// The connection-quality badge (top right).
    pub quality: Rect,
    /// The screen-share badge (top left).
    pub share: Option<Rect>,
    /// The speaking ring (the tile's outline).
    pub ring: Option<Rect>,
    /// Width of the speaking ring and other scaled strokes.
    pub stroke: f32,
    /// Font size of the name.
    pub font_size: f32,
}

impl TileLayout {
    /// Lays out a tile given how wide its name renders at [`TileLayout::font_size_for`].
    pub fn new(tile: Rect, p: &ParticipantTile<'_>, name_width: f32) -> Self {
        let s = Self::scale(tile);
        let pad = 8.0 * s;
        let badge = 22.0 * s;
        let label_h = 24.0 * s;
        let font_size = Self::font_size_for(tile);
        let mic_d = label_h - 6.0 * s;
        let inner = 6.0 * s;
        let mic_w = if p.muted { mic_d + inner } else { 0.0 };
        let max_w = (tile.w - 2.0 * pad).max(0.0);
        let label_w = (inner + mic_w + name_width + inner).min(max_w);
        let label = Rect::new(
            tile.x + pad,
            tile.bottom() - pad - label_h,
            label_w,
            label_h,
        );
        let mic = p
            .muted
            .then(|| Rect::new(label.x + inner, label.y + 3.0 * s, mic_d, mic_d));
        let name_x = label.x + inner + mic_w;
        let name = Rect::new(
            name_x,
            label.y,
            (label.right() - inner - name_x).max(0.0),
            label_h,
        );
        let quality = Rect::new(tile.right() - pad - badge, tile.y + pad, badge, badge);
        let share = p
            .screen_share
            .then(|| Rect::new(tile.x + pad, tile.y + pad, badge * 1.5, badge));
        let ring = p.speaking.then_some(tile);
        Self {
            tile,
            label,
            name,
            mic,
            quality,
            share,
            ring,
            stroke: (3.0 * s).max(2.0),
            font_size,
        }
    }

    /// Size factor for a tile (1.0 at 180 px high).
    pub fn scale(tile: Rect) -> f32 {
        (tile.h / 180.0).clamp(0.5, 1.6)
    }

    /// Name font size for a tile.
    pub fn font_size_for(tile: Rect) -> f32 {
        14.0 * Self::scale(tile)
    }
}

/// Draws a grid of participant tiles into a region of the target.
#[derive(Debug)]
pub struct GridRenderer {
    shapes: ShapeRenderer,
    text: TextLayer,
    target: (u32, u32),
    region: Option<Rect>,
    tiles: Vec<Rect>,
    layouts: Vec<TileLayout>,
}

impl GridRenderer {
    /// Builds pipelines for targets of `format`.
    pub fn new(device: &wgpu::Device, queue: &wgpu::Queue, format: wgpu::TextureFormat) -> Self {
        Self {
            shapes: ShapeRenderer::new(device, format),
            text: TextLayer::new(device, queue, format, "participant grid"),
            target: (1, 1),
            region: None,
            tiles: Vec::new(),
            layouts: Vec::new(),
        }
    }

    /// Records the target size.
    pub fn resize(&mut self, queue: &wgpu::Queue, width: u32, height: u32) {
        self.target = (width.max(1), height.max(1));
        self.shapes.resize(queue, width, height);
        self.text.resize(queue, width, height);
    }

    /// Draws into `region` (`None`: the whole target).
    pub fn set_region(&mut self, region: Option<Rect>) {
        self.region = region;
    }

    /// The layout of each tile from the last update (for hit-testing, video placement, tests).
    pub fn layouts(&self) -> &[TileLayout] {
        &self.layouts
    }

    /// The tile rectangles `count` participants would get (to place their video before updating).
    pub fn tile_rects(&self, count: usize) -> Vec<Rect> {
        let mut out = Vec::with_capacity(count);
        grid_tiles(count, self.area(), self.gap(), &mut out);
        out
    }

    fn area(&self) -> Rect {
        self.region
            .unwrap_or_else(|| Rect::of_size(self.target.0, self.target.1))
    }

    fn gap(&self) -> f32 {
        let a = self.area();
        (a.w.min(a.h) / 60.0).clamp(2.0, 10.0)
    }

    /// Lays out and draws `participants`, in order.
    ///
    /// # Errors
    /// [`crate::VisualizerError::TextPrepare`] when the names cannot be laid out.
    pub fn update(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        participants: &[ParticipantTile<'_>],
    ) -> Result<()> {
        let area = self.area();
        let gap = self.gap();
        grid_tiles(participants.len(), area, gap, &mut self.tiles);
        self.layouts.clear();
        self.shapes.clear();
        self.text.begin();
        for (i, (p, tile)) in participants.iter().zip(&self.tiles).enumerate() {
            let font = TileLayout::font_size_for(*tile);
            // Shape the name first (its width sizes the label); it is moved into place below.
            let name_w =
                self.text
                    .label(p.name, 0.0, 0.0, font, Align::Left, palette::WHITE, *tile);
            let l = TileLayout::new(*tile, p, name_w);
            let s = TileLayout::scale(*tile);
            let radius = 8.0 * s;
            let sh = &mut self.shapes;
            if !p.has_video {
                sh.rect(*tile, palette::TILES[i % palette::TILES.len()], radius);
                let (cx, cy) = tile.center();
                let r = tile.w.min(tile.h) * 0.2;
                sh.circle(cx, cy, r, Color::rgba8(0xff, 0xff, 0xff, 0x30));
            }
            if let Some(ring) = l.ring {
                sh.ring(ring, palette::SPEAKING, radius, l.stroke);
            }
            // Name label.
            sh.rect(l.label, palette::LABEL_BG, l.label.h * 0.5);
            if let Some(m) = l.mic {
                draw_muted_mic(sh, m, s);
            }
            // Quality badge: four bars of rising height on a dark square.
            let q = l.quality;
            let (lit, color) = p.quality.bars();
            let bg = if p.quality == ConnectionQuality::Lost {
                palette::RED.with_alpha(0.85)
            } else {
                palette::LABEL_BG
            };
            sh.rect(q, bg, 4.0 * s);
            let inner = q.inset(4.0 * s);
            let bw = inner.w / 4.0;
            for b in 0..4 {
                let h = inner.h * (b as f32 + 1.0) / 4.0;
                let bar = Rect::new(
                    inner.x + b as f32 * bw + bw * 0.15,
                    inner.bottom() - h,
                    bw * 0.7,
                    h,
                );
                let c = if b < lit { color } else { palette::INACTIVE };
                sh.rect(bar, c, 1.0);
            }
            // Screen-share badge: a blue plate with a white monitor outline.
            if let Some(sb) = l.share {
                sh.rect(sb, palette::SHARE, 4.0 * s);
                let screen = Rect::new(
                    sb.x + sb.w * 0.22,
                    sb.y + sb.h * 0.2,
                    sb.w * 0.56,
                    sb.h * 0.45,
                );
                sh.ring(screen, palette::WHITE, 1.5 * s, (1.5 * s).max(1.0));
                let (cx, _) = sb.center();
                let base = screen.bottom() + sb.h * 0.12;
                sh.line(
                    cx,
                    screen.bottom(),
                    cx,
                    base,
                    (1.5 * s).max(1.0),
                    palette::WHITE,
                );
                sh.line(
                    cx - sb.w * 0.14,
                    base,
                    cx + sb.w * 0.14,
                    base,
                    (1.5 * s).max(1.0),
                    palette::WHITE,
                );
            }
            // Now place the name text, vertically centred in the label and clipped to it.
            let text_top = l.label.y + (l.label.h - l.font_size * 1.2) * 0.5;
            self.text.move_last(l.name.x, text_top, Align::Left, l.name);
            self.layouts.push(l);
        }
        self.shapes.upload(device, queue);
        self.text.prepare(device, queue)
    }

    /// Draws the tiles, badges and names.
    ///
    /// # Errors
    /// [`crate::VisualizerError::TextRender`] when the names cannot be drawn.
    pub fn render(&self, pass: &mut wgpu::RenderPass<'_>) -> Result<()> {
        self.shapes.render(pass);
        self.text.render(pass)
    }
}

/// A red disc with a white microphone and a white slash through it.
fn draw_muted_mic(sh: &mut ShapeRenderer, m: Rect, s: f32) {
    let (cx, cy) = m.center();
    sh.circle(cx, cy, m.w * 0.5, palette::RED);
    let w = (1.5 * s).max(1.0);
    let capsule = Rect::new(cx - m.w * 0.12, m.y + m.h * 0.18, m.w * 0.24, m.h * 0.4);
    sh.rect(capsule, palette::WHITE, capsule.w * 0.5);
    sh.line(cx, m.y + m.h * 0.66, cx, m.y + m.h * 0.8, w, palette::WHITE);
    sh.line(
        m.x + m.w * 0.25,
        m.y + m.h * 0.25,
        m.x + m.w * 0.75,
        m.y + m.h * 0.75,
        w,
        palette::WHITE,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_levels_round_trip() {
        for q in [
            ConnectionQuality::Excellent,
            ConnectionQuality::Good,
            ConnectionQuality::Poor,
            ConnectionQuality::Lost,
        ] {
            assert_eq!(ConnectionQuality::from_level(q.level()), q);
        }
        assert_eq!(ConnectionQuality::from_level(200), ConnectionQuality::Lost);
    }

    #[test]
    fn columns_grow_with_count() {
        let cols: Vec<_> = [1, 2, 3, 4, 5, 9, 10, 16, 30]
            .iter()
            .map(|n| grid_columns(*n))
            .collect();
        assert_eq!(cols, [1, 2, 2, 2, 3, 3, 4, 4, 4]);
    }

    #[test]
    fn tiles_fit_the_area_without_overlap() {
        let area = Rect::new(10.0, 20.0, 800.0, 450.0);
        let mut out = Vec::new();
        for n in [1, 2, 3, 4, 7, 9, 13] {
            grid_tiles(n, area, 6.0, &mut out);
            assert_eq!(out.len(), n);
            for (i, a) in out.iter().enumerate() {
                assert!((a.w / a.h - TILE_ASPECT).abs() < 1e-3);
                assert!(
                    a.x >= area.x - 1e-3 && a.right() <= area.right() + 1e-3,
                    "{n}: {a:?}"
                );
                assert!(
                    a.y >= area.y - 1e-3 && a.bottom() <= area.bottom() + 1e-3,
                    "{n}: {a:?}"
                );
                for b in &out[i + 1..] {
                    let overlap =
                        a.x < b.right() && b.x < a.right() && a.y < b.bottom() && b.y < a.bottom();
                    assert!(!overlap, "{n}: {a:?} overlaps {b:?}");
                }
            }
        }
        // Three tiles: two on top, one centred below.
        grid_tiles(3, area, 6.0, &mut out);
        let (cx, _) = out[2].center();
        assert!((cx - area.center().0).abs() < 1e-3);
        assert!(out[2].y > out[0].y);
    }

    #[test]
    fn layout_places_badges_in_corners() {
        let tile = Rect::new(0.0, 0.0, 320.0, 180.0);
        let p = ParticipantTile {
            name: "Ada",
            muted: true,
            speaking: true,
            quality: ConnectionQuality::Poor,
            screen_share: true,
            has_video: false,
        };
        let l = TileLayout::new(tile, &p, 40.0);
        assert!(l.quality.x > tile.center().0 && l.quality.y < tile.center().1);
        let share = l.share.unwrap();
        assert!(share.x < tile.center().0 && share.y < tile.center().1);
        assert!(l.label.y > tile.center().1);
        let mic = l.mic.unwrap();
        assert!(mic.x >= l.label.x && mic.right() <= l.name.x);
        assert_eq!(l.ring, Some(tile));
        let quiet = ParticipantTile {
            muted: false,
            speaking: false,
            screen_share: false,
            ..p
        };
        let l = TileLayout::new(tile, &quiet, 40.0);
        assert!(l.mic.is_none() && l.ring.is_none() && l.share.is_none());
        // A very long name is clipped to the tile.
        let l = TileLayout::new(tile, &quiet, 10_000.0);
        assert!(l.label.right() <= tile.right());
    }
}
