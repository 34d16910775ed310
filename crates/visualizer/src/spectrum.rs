//! Spectrum bars on a logarithmic frequency axis.

use std::ops::Range;

use crate::geom::{Rect, palette};
use crate::shapes::ShapeRenderer;

/// Lowest frequency shown, Hz.
pub const SPECTRUM_MIN_HZ: f32 = 30.0;
/// Level drawn as an empty bar, dBFS.
pub const SPECTRUM_FLOOR_DB: f32 = -90.0;

/// The FFT bins each of `bars` log-spaced bands covers, for `n_bins` bins spanning 0..=Nyquist
/// (a real FFT's `N/2 + 1` outputs). Every band gets at least one bin and the bands run in order;
/// they only share bins when there are fewer bins than bands.
pub fn band_bins(
    n_bins: usize,
    bars: usize,
    sample_rate: u32,
) -> impl Iterator<Item = Range<usize>> {
    let nyquist = sample_rate as f32 / 2.0;
    let hz_per_bin = if n_bins > 1 {
        nyquist / (n_bins - 1) as f32
    } else {
        nyquist.max(1.0)
    };
    let lo_hz = SPECTRUM_MIN_HZ.max(hz_per_bin).min(nyquist);
    let ratio = (nyquist / lo_hz).max(1.0);
    let last = n_bins.saturating_sub(1);
    let mut prev = ((lo_hz / hz_per_bin).floor() as usize).min(last);
    (0..bars).map(move |b| {
        let start = prev.min(last);
        let end = if b + 1 == bars {
            n_bins
        } else {
            let edge_hz = lo_hz * ratio.powf((b + 1) as f32 / bars as f32);
            ((edge_hz / hz_per_bin).round() as usize).clamp(start + 1, n_bins.max(start + 1))
        };
        prev = end;
        start..end.max(start + usize::from(n_bins > 0))
    })
}

/// Bars over a magnitude spectrum in dBFS, one bar per log-spaced band (the band's loudest bin).
#[derive(Debug)]
pub struct SpectrumRenderer {
    shapes: ShapeRenderer,
    target: (u32, u32),
    region: Option<Rect>,
    bars: usize,
    levels: Vec<f32>,
}

impl SpectrumRenderer {
    /// Builds the pipeline for targets of `format`, with `bars` bands (at least 1).
    pub fn new(device: &wgpu::Device, format: wgpu::TextureFormat, bars: usize) -> Self {
        Self {
            shapes: ShapeRenderer::new(device, format),
            target: (1, 1),
            region: None,
            bars: bars.max(1),
            levels: Vec::with_capacity(bars.max(1)),
        }
    }

    /// Records the target size.
    pub fn resize(&mut self, queue: &wgpu::Queue, width: u32, height: u32) {
        self.target = (width.max(1), height.max(1));
        self.shapes.resize(queue, width, height);
    }

    /// Draws into `region` (`None`: the whole target).
    pub fn set_region(&mut self, region: Option<Rect>) {
        self.region = region;
    }

    /// The per-band levels of the last update, dBFS.
    pub fn levels(&self) -> &[f32] {
        &self.levels
    }

    /// The rectangle of bar `i` at full height.
    pub fn bar_slot(&self, i: usize) -> Rect {
        bar_slot(
            self.region
                .unwrap_or_else(|| Rect::of_size(self.target.0, self.target.1)),
            self.bars,
            i,
        )
    }

    /// Rebuilds the bars from `bins_db` (0..=Nyquist, dBFS) sampled at `sample_rate`.
    pub fn update(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        bins_db: &[f32],
        sample_rate: u32,
    ) {
        self.levels.clear();
        if !bins_db.is_empty() {
            for r in band_bins(bins_db.len(), self.bars, sample_rate) {
                let level = bins_db[r]
                    .iter()
                    .copied()
                    .filter(|v| !v.is_nan())
                    .fold(f32::NEG_INFINITY, f32::max);
                self.levels.push(level);
            }
        }
        let region = self
            .region
            .unwrap_or_else(|| Rect::of_size(self.target.0, self.target.1));
        let s = &mut self.shapes;
        s.clear();
        s.rect(region, palette::PANEL, 4.0);
        for i in 0..self.bars {
            let slot = bar_slot(region, self.bars, i);
            let level = self.levels.get(i).copied().unwrap_or(SPECTRUM_FLOOR_DB);
            let t = ((level - SPECTRUM_FLOOR_DB) / -SPECTRUM_FLOOR_DB).clamp(0.0, 1.0);
            let h = slot.h * t;
            let color = if level > -12.0 {
                palette::RED
            } else if level > -30.0 {
                palette::YELLOW
            } else {
                palette::GREEN
            };
            s.rect(Rect::new(slot.x, slot.bottom() - h, slot.w, h), color, 1.0);
        }
        s.upload(device, queue);
    }

    /// Draws the bars.
    pub fn render(&self, pass: &mut wgpu::RenderPass<'_>) {
        self.shapes.render(pass);
    }
}

fn bar_slot(region: Rect, bars: usize, i: usize) -> Rect {
    let area = region.inset(4.0);
    let slot = area.w / bars.max(1) as f32;
    let gap = (slot * 0.2).min(3.0);
    Rect::new(
        area.x + i as f32 * slot + gap * 0.5,
        area.y,
        (slot - gap).max(1.0),
        area.h,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_cover_the_bins_in_order_without_gaps_or_empties() {
        for (n_bins, bars) in [(513, 32), (2049, 48), (9, 16), (2, 4), (1, 3)] {
            let bands: Vec<_> = band_bins(n_bins, bars, 48_000).collect();
            assert_eq!(bands.len(), bars);
            for b in &bands {
                assert!(!b.is_empty(), "{n_bins}/{bars}: empty band {b:?}");
                assert!(b.end <= n_bins.max(1), "{b:?}");
            }
            for w in bands.windows(2) {
                assert!(w[1].start >= w[0].start, "{n_bins}/{bars}: {w:?}");
                if n_bins >= bars {
                    assert_eq!(w[1].start, w[0].end, "{n_bins}/{bars}: {w:?}");
                }
            }
            assert_eq!(bands.last().unwrap().end, n_bins);
        }
    }

    #[test]
    fn low_bands_are_narrower_than_high_bands() {
        let bands: Vec<_> = band_bins(2049, 32, 48_000).collect();
        assert!(bands[0].len() < bands[31].len());
        // 30 Hz at 11.7 Hz per bin starts at bin 2.
        assert_eq!(bands[0].start, 2);
    }
}
