//! Amplitude/peak meter with a dBFS scale.

use crate::error::Result;
use crate::geom::{Color, Rect, palette};
use crate::shapes::ShapeRenderer;
use crate::text::{Align, TextLayer};

/// Levels of one channel, in dBFS (0 is full scale; −∞ allowed for silence).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeterLevels {
    /// Short-term RMS level.
    pub rms_dbfs: f32,
    /// Peak level (a decaying or held peak, as the pipeline reports it).
    pub peak_dbfs: f32,
}

impl MeterLevels {
    /// Levels measured from linear sample amplitudes (full scale = 1.0).
    pub fn from_linear(rms: f32, peak: f32) -> Self {
        Self {
            rms_dbfs: linear_to_dbfs(rms),
            peak_dbfs: linear_to_dbfs(peak),
        }
    }
}

/// `20·log10(amplitude)`, floored at −200 dBFS for silence.
pub fn linear_to_dbfs(amplitude: f32) -> f32 {
    20.0 * amplitude.abs().max(1e-10).log10()
}

/// The scale's tick marks, dBFS.
pub const METER_TICKS: [f32; 8] = [0.0, -6.0, -12.0, -18.0, -24.0, -36.0, -48.0, -60.0];

/// Bottom of the scale, dBFS.
pub const METER_FLOOR_DB: f32 = -60.0;

/// Above this the bar turns yellow.
pub const METER_YELLOW_DB: f32 = -18.0;
/// Above this the bar turns red.
pub const METER_RED_DB: f32 = -6.0;

/// Vertical meter bars (one per channel) with a labelled dBFS scale on the left.
#[derive(Debug)]
pub struct MeterRenderer {
    shapes: ShapeRenderer,
    text: TextLayer,
    target: (u32, u32),
    region: Option<Rect>,
}

/// Geometry of a meter inside its panel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeterGeometry {
    /// The area the bars share (the scale's 0 dBFS is its top edge, the floor its bottom edge).
    pub bars: Rect,
    /// Where the tick labels go (left of the bars).
    pub scale: Rect,
}

impl MeterGeometry {
    /// Lays out a meter in `region`.
    pub fn new(region: Rect) -> Self {
        let inner = region.inset(6.0);
        let label_w = (inner.w * 0.45).min(30.0);
        let top = inner.y + 6.0;
        let h = (inner.h - 12.0).max(0.0);
        Self {
            scale: Rect::new(inner.x, top, label_w, h),
            bars: Rect::new(
                inner.x + label_w + 4.0,
                top,
                (inner.w - label_w - 4.0).max(0.0),
                h,
            ),
        }
    }

    /// The y coordinate of a level on the scale (clamped to the scale).
    pub fn db_to_y(&self, db: f32) -> f32 {
        let db = if db.is_nan() { METER_FLOOR_DB } else { db };
        let t = ((db - METER_FLOOR_DB) / -METER_FLOOR_DB).clamp(0.0, 1.0);
        self.bars.bottom() - t * self.bars.h
    }

    /// The column of channel `ch` of `count`.
    pub fn channel_rect(&self, ch: usize, count: usize) -> Rect {
        let count = count.max(1) as f32;
        let gap = 3.0;
        let w = ((self.bars.w - gap * (count - 1.0)) / count).max(1.0);
        Rect::new(
            self.bars.x + ch as f32 * (w + gap),
            self.bars.y,
            w,
            self.bars.h,
        )
    }
}

impl MeterRenderer {
    /// Builds pipelines for targets of `format`.
    pub fn new(device: &wgpu::Device, queue: &wgpu::Queue, format: wgpu::TextureFormat) -> Self {
        Self {
            shapes: ShapeRenderer::new(device, format),
            text: TextLayer::new(device, queue, format, "meter"),
            target: (1, 1),
            region: None,
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

    /// The panel's layout.
    pub fn geometry(&self) -> MeterGeometry {
        MeterGeometry::new(
            self.region
                .unwrap_or_else(|| Rect::of_size(self.target.0, self.target.1)),
        )
    }

    /// Rebuilds the bars from one [`MeterLevels`] per channel.
    ///
    /// # Errors
    /// [`crate::VisualizerError::TextPrepare`] when the scale labels cannot be laid out.
    pub fn update(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        channels: &[MeterLevels],
    ) -> Result<()> {
        let region = self
            .region
            .unwrap_or_else(|| Rect::of_size(self.target.0, self.target.1));
        let g = MeterGeometry::new(region);
        let s = &mut self.shapes;
        s.clear();
        self.text.begin();
        s.rect(region, palette::PANEL, 4.0);
        let font = (g.bars.h / 14.0).clamp(8.0, 12.0);
        for tick in METER_TICKS {
            let y = g.db_to_y(tick);
            s.line(
                g.bars.x - 3.0,
                y,
                g.bars.right(),
                y,
                1.0,
                palette::GRID_LINE,
            );
            let label = tick_label(tick);
            self.text.label(
                label,
                g.scale.right(),
                y - font * 0.6,
                font,
                Align::Right,
                palette::LABEL,
                region,
            );
        }
        let count = channels.len();
        for (ch, lv) in channels.iter().enumerate() {
            let col = g.channel_rect(ch, count);
            s.rect(col, Color::rgb8(0x0c, 0x0d, 0x10), 2.0);
            let level_y = g.db_to_y(lv.rms_dbfs);
            // Colour zones, each clipped to the level.
            for (lo, hi, color) in [
                (METER_FLOOR_DB, METER_YELLOW_DB, palette::GREEN),
                (METER_YELLOW_DB, METER_RED_DB, palette::YELLOW),
                (METER_RED_DB, 0.0, palette::RED),
            ] {
                let zone_top = g.db_to_y(hi).max(level_y);
                let zone_bottom = g.db_to_y(lo);
                if zone_bottom > zone_top {
                    s.rect(
                        Rect::new(col.x, zone_top, col.w, zone_bottom - zone_top),
                        color,
                        0.0,
                    );
                }
            }
            if lv.peak_dbfs > METER_FLOOR_DB {
                let py = g.db_to_y(lv.peak_dbfs);
                let pc = if lv.peak_dbfs >= -0.1 {
                    palette::RED
                } else {
                    palette::WHITE
                };
                s.line(col.x, py, col.right(), py, 2.0, pc);
            }
        }
        s.upload(device, queue);
        self.text.prepare(device, queue)
    }

    /// Draws the meter.
    ///
    /// # Errors
    /// [`crate::VisualizerError::TextRender`] when the labels cannot be drawn.
    pub fn render(&self, pass: &mut wgpu::RenderPass<'_>) -> Result<()> {
        self.shapes.render(pass);
        self.text.render(pass)
    }
}

fn tick_label(db: f32) -> &'static str {
    match db as i32 {
        0 => "0",
        -6 => "-6",
        -12 => "-12",
        -18 => "-18",
        -24 => "-24",
        -36 => "-36",
        -48 => "-48",
        _ => "-60",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dbfs_of_known_amplitudes() {
        assert!((linear_to_dbfs(1.0)).abs() < 1e-6);
        assert!((linear_to_dbfs(0.5) + 6.0206).abs() < 1e-3);
        assert_eq!(linear_to_dbfs(0.0), -200.0);
    }

    #[test]
    fn scale_maps_full_scale_to_top_and_floor_to_bottom() {
        let g = MeterGeometry::new(Rect::new(0.0, 0.0, 60.0, 200.0));
        assert_eq!(g.db_to_y(0.0), g.bars.y);
        assert_eq!(g.db_to_y(6.0), g.bars.y);
        assert_eq!(g.db_to_y(-60.0), g.bars.bottom());
        assert_eq!(g.db_to_y(f32::NEG_INFINITY), g.bars.bottom());
        assert_eq!(g.db_to_y(f32::NAN), g.bars.bottom());
        let mid = g.db_to_y(-30.0);
        assert!((mid - (g.bars.y + g.bars.h / 2.0)).abs() < 1e-3);
    }
}
