//! Capture timestamps.

use std::ops::{Add, Sub};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A capture timestamp: microseconds since the UNIX epoch on the system clock.
///
/// The wall clock is used (not a process-local monotonic clock) so that a sender and a receiver on
/// the same machine, in different processes, can compare timestamps and measure end-to-end
/// latency. All arithmetic saturates; a timestamp never panics.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The epoch itself (zero). Used as "unknown" by sources that have no clock.
    pub const ZERO: Timestamp = Timestamp(0);

    /// A timestamp `micros` microseconds after the UNIX epoch.
    pub const fn from_micros(micros: u64) -> Self {
        Timestamp(micros)
    }

    /// Microseconds since the UNIX epoch.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// The current system time (a clock read, no allocation).
    pub fn now() -> Self {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros().min(u128::from(u64::MAX)) as u64)
            .unwrap_or(0);
        Timestamp(micros)
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, rhs: Duration) -> Timestamp {
        let add = rhs.as_micros().min(u128::from(u64::MAX)) as u64;
        Timestamp(self.0.saturating_add(add))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, rhs: Duration) -> Timestamp {
        let sub = rhs.as_micros().min(u128::from(u64::MAX)) as u64;
        Timestamp(self.0.saturating_sub(sub))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_micros(10);
        assert_eq!((t - Duration::from_secs(1)).as_micros(), 0);
        assert_eq!((t + Duration::from_millis(1)).as_micros(), 1010);
        assert_eq!(
            t.saturating_duration_since(Timestamp::from_micros(20)),
            Duration::ZERO
        );
        assert_eq!(
            Timestamp::from_micros(1_500).saturating_duration_since(t),
            Duration::from_micros(1_490)
        );
        assert!(Timestamp::now() > Timestamp::from_micros(1_600_000_000_000_000));
    }
}
