//! Latency percentiles, read from the pipeline's [`AgeHistogram`] (the one place ages are
//! counted: recording is allocation-free, so decoders and renderers keep one per stream).

use serde::Serialize;
use wavecast_pipeline::AgeHistogram;

/// Latency percentiles, milliseconds (for stats files and logs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// Largest (exact).
    pub max_ms: f64,
}

impl Percentiles {
    /// The percentiles of `hist` (`None` when it is empty). Values carry the histogram's two
    /// significant digits; the maximum is exact.
    pub fn of(hist: &AgeHistogram) -> Option<Self> {
        if hist.count() == 0 {
            return None;
        }
        let ms = |q: f64| hist.quantile_us(q) as f64 / 1000.0;
        Some(Self {
            count: hist.count() as usize,
            p50_ms: ms(0.5),
            p95_ms: ms(0.95),
            max_ms: ms(1.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn percentiles_of_a_ramp() {
        let mut h = AgeHistogram::new();
        for i in 1..=100u64 {
            h.record(Duration::from_micros(i * 1000));
        }
        let p = Percentiles::of(&h).unwrap();
        assert_eq!(p.count, 100);
        assert!((p.p50_ms - 50.0).abs() <= 1.0, "{p:?}");
        assert!((p.p95_ms - 95.0).abs() <= 1.0, "{p:?}");
        assert_eq!(p.max_ms, 100.0);
        assert!(Percentiles::of(&AgeHistogram::new()).is_none());
    }
}
