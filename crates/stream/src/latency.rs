//! Latency percentiles, read from the pipeline's [`AgeHistogram`] (the one place ages are
//! counted: recording is allocation-free, so decoders and renderers keep one per stream; per-stream
//! histograms add up with [`AgeHistogram::merge`] for a total).

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
    /// 99th percentile.
    pub p99_ms: f64,
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
            p99_ms: ms(0.99),
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
        assert!((p.p99_ms - 99.0).abs() <= 1.0, "{p:?}");
        assert_eq!(p.max_ms, 100.0);
        assert!(Percentiles::of(&AgeHistogram::new()).is_none());
    }

    /// Totals over several streams are the percentiles of the merged histograms, not an
    /// average of per-stream percentiles.
    #[test]
    fn percentiles_of_merged_streams() {
        let mut total = AgeHistogram::new();
        let mut streams = [AgeHistogram::new(), AgeHistogram::new()];
        for i in 1..=99u64 {
            streams[0].record(Duration::from_millis(10));
            streams[1].record(Duration::from_millis(i * 10));
        }
        streams[1].record(Duration::from_secs(1));
        for s in &streams {
            total.merge(s);
        }
        let p = Percentiles::of(&total).unwrap();
        assert_eq!(p.count, 199);
        assert!((p.p50_ms - 10.0).abs() <= 0.1, "{p:?}");
        // Two significant digits: within about 2 % of 980 ms.
        assert!((p.p99_ms - 980.0).abs() <= 20.0, "{p:?}");
        assert_eq!(p.max_ms, 1000.0);
    }
}
