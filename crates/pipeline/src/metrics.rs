//! Frame-age histograms and their cheap, serialisable summaries.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// Largest age recorded exactly; larger ages saturate to this value (60 s).
pub const MAX_TRACKED_AGE: Duration = Duration::from_secs(60);

/// A histogram of frame age at consumption (now − capture timestamp), in microseconds.
///
/// Owned by the consuming thread: recording is a few arithmetic operations on a pre-allocated
/// array (hdrhistogram with fixed bounds, 2 significant digits), never an allocation or a lock.
/// [`summary`](AgeHistogram::summary) produces a small `Copy` struct for overlays and JSON.
#[derive(Clone, Debug)]
pub struct AgeHistogram {
    hist: Histogram<u64>,
    saturated: u64,
    /// The largest age recorded, exact (the histogram's own max is rounded to its bucket).
    max_us: u64,
}

impl Default for AgeHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl AgeHistogram {
    /// An empty histogram covering 1 µs ..= [`MAX_TRACKED_AGE`].
    pub fn new() -> Self {
        let hist = Histogram::new_with_bounds(1, MAX_TRACKED_AGE.as_micros() as u64, 2)
            .expect("constant histogram bounds are valid");
        AgeHistogram {
            hist,
            saturated: 0,
            max_us: 0,
        }
    }

    /// Records one age.
    pub fn record(&mut self, age: Duration) {
        let micros = age.as_micros().min(u128::from(u64::MAX)) as u64;
        if micros > self.hist.high() {
            self.saturated += 1;
        }
        self.hist.saturating_record(micros.max(1));
        self.max_us = self.max_us.max(micros.min(self.hist.high()));
    }

    /// Records the age of a frame captured at `captured`, consumed at `now`.
    pub fn record_frame(&mut self, captured: Timestamp, now: Timestamp) {
        self.record(now.saturating_duration_since(captured));
    }

    /// Number of recorded ages.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Adds every age `other` recorded (for example per-stream histograms into a total).
    /// Both cover the same range, so nothing is lost; allocation-free.
    pub fn merge(&mut self, other: &AgeHistogram) {
        // Same bounds and precision on both sides (`new` is the only constructor): `add`
        // cannot fail on range, and saturating counts cannot overflow.
        let _ = self.hist.add(&other.hist);
        self.saturated += other.saturated;
        self.max_us = self.max_us.max(other.max_us);
    }

    /// Forgets everything recorded (keeps the allocation).
    pub fn reset(&mut self) {
        self.hist.reset();
        self.saturated = 0;
        self.max_us = 0;
    }

    /// The age at quantile `q` (0.0 ..= 1.0) in microseconds, within the histogram's two
    /// significant digits; 1.0 gives the exact largest age. 0 when empty.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.hist.is_empty() {
            0
        } else if q >= 1.0 {
            self.max_us
        } else {
            self.hist.value_at_quantile(q.max(0.0)).min(self.max_us)
        }
    }

    /// Count, mean, percentiles and max, in microseconds. Cost grows with the number of distinct
    /// buckets in use (a few hundred at most); call it at overlay or stats rate, not per sample.
    pub fn summary(&self) -> LatencySummary {
        let h = &self.hist;
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            min_us: h.min(),
            mean_us: h.mean().round() as u64,
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            max_us: self.max_us,
            saturated: self.saturated,
        }
    }
}

/// A snapshot of an [`AgeHistogram`]; all times in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Recorded ages.
    pub count: u64,
    /// Smallest age.
    pub min_us: u64,
    /// Mean age.
    pub mean_us: u64,
    /// Median age.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Largest age.
    pub max_us: u64,
    /// Ages above [`MAX_TRACKED_AGE`], recorded as that value.
    pub saturated: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_within_two_digits() {
        let mut h = AgeHistogram::new();
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        let s = h.summary();
        assert_eq!(s.count, 100);
        assert!((49_000..=51_000).contains(&s.p50_us), "{s:?}");
        assert!((98_000..=100_999).contains(&s.p99_us), "{s:?}");
        assert!((99_000..=101_000).contains(&s.max_us), "{s:?}");
        h.record(Duration::from_secs(3600));
        assert_eq!(h.summary().saturated, 1);
        let json = serde_json::to_string(&h.summary()).unwrap();
        assert!(json.contains("\"p99_us\""));
        h.reset();
        assert_eq!(h.summary(), LatencySummary::default());
    }

    #[test]
    fn merged_histograms_hold_both_sets_of_ages() {
        let (mut a, mut b) = (AgeHistogram::new(), AgeHistogram::new());
        for ms in 1..=50u64 {
            a.record(Duration::from_millis(ms));
        }
        for ms in 51..=100u64 {
            b.record(Duration::from_millis(ms));
        }
        b.record(Duration::from_secs(3600));
        a.merge(&b);
        let s = a.summary();
        assert_eq!(s.count, 101);
        assert!((50_000..=52_000).contains(&s.p50_us), "{s:?}");
        assert_eq!(s.saturated, 1);
        assert_eq!(s.max_us, MAX_TRACKED_AGE.as_micros() as u64);
        a.merge(&AgeHistogram::new());
        assert_eq!(a.count(), 101);
    }

    #[test]
    fn frame_age_from_timestamps() {
        let mut h = AgeHistogram::new();
        h.record_frame(
            Timestamp::from_micros(1_000),
            Timestamp::from_micros(21_000),
        );
        let s = h.summary();
        assert!((19_900..=20_100).contains(&s.p50_us), "{s:?}");
    }
}
