//! Counters that stay off the hot path's cache lines.

use crate::sync::{AtomicU64, Ordering};

/// Aligns its content to 128 bytes (two cache lines, for adjacent-line prefetchers) so counters
/// written by a producer and those written by a consumer never share a line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct CacheLine<T>(pub(crate) T);

impl<T> std::ops::Deref for CacheLine<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A statistics counter written by one thread only (the owner of a ring half): a relaxed load
/// and store instead of a locked read-modify-write. Readers on other threads see a recent value.
#[derive(Debug)]
pub(crate) struct SoloCounter(AtomicU64);

impl Default for SoloCounter {
    fn default() -> Self {
        SoloCounter(AtomicU64::new(0))
    }
}

impl SoloCounter {
    /// Adds `n`. Callers guarantee a single writing thread (enforced by `&mut` on the owner).
    pub(crate) fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A statistics counter any thread may bump.
#[derive(Debug)]
pub(crate) struct SharedCounter(AtomicU64);

impl Default for SharedCounter {
    fn default() -> Self {
        SharedCounter(AtomicU64::new(0))
    }
}

impl SharedCounter {
    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::thread;

    #[test]
    fn loom_solo_counter_single_writer_is_exact_and_monotonic() {
        loom::model(|| {
            let c = crate::sync::Arc::new(SoloCounter::default());
            let reader = {
                let c = c.clone();
                thread::spawn(move || {
                    let a = c.get();
                    let b = c.get();
                    assert!(a <= b && b <= 3, "{a} {b}");
                })
            };
            for _ in 0..3 {
                c.add(1);
            }
            reader.join().unwrap();
            assert_eq!(c.get(), 3);
        });
    }

    #[test]
    fn loom_shared_counter_counts_every_writer() {
        loom::model(|| {
            let c = crate::sync::Arc::new(SharedCounter::default());
            let other = {
                let c = c.clone();
                thread::spawn(move || c.add(2))
            };
            c.add(1);
            other.join().unwrap();
            assert_eq!(c.get(), 3);
        });
    }
}
