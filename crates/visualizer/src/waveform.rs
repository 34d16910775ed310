//! Scrolling oscilloscope over the pipeline's waveform history (newest sample at the right edge).

use crate::geom::{Color, Rect, palette};
use crate::shapes::ShapeRenderer;

/// Where sample `i` of `n` with value `s` (clamped to ±1) is drawn inside `area`.
///
/// Samples are spread evenly over the width, each centred in its `area.w / n` slot; +1 is the top
/// edge, −1 the bottom edge.
pub fn trace_point(area: Rect, i: usize, n: usize, s: f32) -> (f32, f32) {
    let n = n.max(1) as f32;
    let x = area.x + (i as f32 + 0.5) * area.w / n;
    let s = if s.is_finite() {
        s.clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let y = area.y + area.h * 0.5 * (1.0 - s);
    (x, y)
}

/// Draws a waveform history as a trace: a polyline when there are at most as many samples as
/// pixel columns, otherwise one min–max stroke per column (the envelope a scope shows).
#[derive(Debug)]
pub struct WaveformRenderer {
    shapes: ShapeRenderer,
    target: (u32, u32),
    region: Option<Rect>,
    trace: Color,
    thickness: f32,
}

impl WaveformRenderer {
    /// Builds the pipeline for targets of `format`.
    pub fn new(device: &wgpu::Device, format: wgpu::TextureFormat) -> Self {
        Self {
            shapes: ShapeRenderer::new(device, format),
            target: (1, 1),
            region: None,
            trace: palette::TRACE,
            thickness: 1.5,
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

    /// Sets the trace colour and thickness in pixels.
    pub fn set_style(&mut self, trace: Color, thickness: f32) {
        self.trace = trace;
        self.thickness = thickness.max(0.5);
    }

    /// The panel the waveform occupies.
    pub fn region(&self) -> Rect {
        self.region
            .unwrap_or_else(|| Rect::of_size(self.target.0, self.target.1))
    }

    /// The area the trace spans (the panel less a 2-pixel margin); see [`trace_point`].
    pub fn trace_area(&self) -> Rect {
        self.region().inset(2.0)
    }

    /// Rebuilds the trace from `samples` (oldest first, values in −1..=1).
    pub fn update(&mut self, device: &wgpu::Device, queue: &wgpu::Queue, samples: &[f32]) {
        let region = self.region();
        let area = self.trace_area();
        let s = &mut self.shapes;
        s.clear();
        s.rect(region, palette::PANEL, 4.0);
        let mid = area.y + area.h * 0.5;
        s.line(area.x, mid, area.right(), mid, 1.0, palette::GRID_LINE);
        for q in [0.25, 0.75] {
            let y = area.y + area.h * q;
            s.line(
                area.x,
                y,
                area.right(),
                y,
                1.0,
                palette::GRID_LINE.with_alpha(0.4),
            );
        }
        let n = samples.len();
        let columns = area.w.floor().max(1.0) as usize;
        if n == 1 {
            let (x, y) = trace_point(area, 0, 1, samples[0]);
            s.circle(x, y, self.thickness, self.trace);
        } else if n <= columns {
            let mut prev = trace_point(area, 0, n, samples[0]);
            for (i, v) in samples.iter().enumerate().skip(1) {
                let p = trace_point(area, i, n, *v);
                s.line(prev.0, prev.1, p.0, p.1, self.thickness, self.trace);
                prev = p;
            }
        } else if n > 0 {
            let mut last = samples[0];
            for c in 0..columns {
                let lo = c * n / columns;
                let hi = ((c + 1) * n / columns).max(lo + 1);
                let (mut min, mut max) = (last, last);
                for v in &samples[lo..hi] {
                    let v = if v.is_finite() { *v } else { 0.0 };
                    min = min.min(v);
                    max = max.max(v);
                }
                last = samples[hi - 1];
                let (x, top) = trace_point(area, c, columns, max);
                let (_, bottom) = trace_point(area, c, columns, min);
                s.line(x, top, x, bottom, self.thickness, self.trace);
            }
        }
        s.upload(device, queue);
    }

    /// Rebuilds the trace from an amplitude envelope: `count` `(min, max)` pairs, oldest first
    /// (the pipeline's waveform history). Each pair spans `area.w / count` pixels; when there are
    /// more pairs than pixel columns, neighbouring pairs merge.
    pub fn update_envelope(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        pairs: impl Iterator<Item = (f32, f32)>,
        count: usize,
    ) {
        let region = self.region();
        let area = self.trace_area();
        let s = &mut self.shapes;
        s.clear();
        s.rect(region, palette::PANEL, 4.0);
        let mid = area.y + area.h * 0.5;
        s.line(area.x, mid, area.right(), mid, 1.0, palette::GRID_LINE);
        if count == 0 {
            s.upload(device, queue);
            return;
        }
        let columns = (area.w.floor().max(1.0) as usize).min(count);
        let col_w = area.w / columns as f32;
        let clean = |v: f32| {
            if v.is_finite() {
                v.clamp(-1.0, 1.0)
            } else {
                0.0
            }
        };
        let mut current: Option<(usize, f32, f32)> = None;
        let flush = |s: &mut ShapeRenderer, c: usize, lo: f32, hi: f32| {
            let (_, top) = trace_point(area, 0, 1, hi);
            let (_, bottom) = trace_point(area, 0, 1, lo);
            let h = (bottom - top).max(self.thickness);
            let y = ((top + bottom) * 0.5 - h * 0.5).max(area.y);
            s.rect(
                Rect::new(area.x + c as f32 * col_w, y, col_w.max(1.0), h),
                self.trace,
                0.0,
            );
        };
        for (i, (lo, hi)) in pairs.take(count).enumerate() {
            let c = i * columns / count;
            let (lo, hi) = (clean(lo.min(hi)), clean(hi.max(lo)));
            current = match current {
                Some((cc, l, h)) if cc == c => Some((c, l.min(lo), h.max(hi))),
                Some((cc, l, h)) => {
                    flush(s, cc, l, h);
                    Some((c, lo, hi))
                }
                None => Some((c, lo, hi)),
            };
        }
        if let Some((c, l, h)) = current {
            flush(s, c, l, h);
        }
        s.upload(device, queue);
    }

    /// Draws the panel and trace.
    pub fn render(&self, pass: &mut wgpu::RenderPass<'_>) {
        self.shapes.render(pass);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_points_span_the_area() {
        let a = Rect::new(10.0, 20.0, 100.0, 50.0);
        assert_eq!(trace_point(a, 0, 100, 1.0), (10.5, 20.0));
        assert_eq!(trace_point(a, 99, 100, -1.0), (109.5, 70.0));
        assert_eq!(trace_point(a, 50, 100, 0.0).1, 45.0);
        assert_eq!(trace_point(a, 0, 1, f32::NAN).1, 45.0);
        assert_eq!(trace_point(a, 0, 1, 7.0).1, 20.0);
    }
}
