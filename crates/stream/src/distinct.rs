//! Counting distinct frame numbers in fixed memory.

/// Numbers the counter remembers behind the highest one seen.
pub const WINDOW: u32 = 8192;
const WORDS: usize = (WINDOW / 64) as usize;

/// Counts distinct `u32` frame numbers in a sliding window of [`WINDOW`] numbers behind the
/// highest seen (1 KiB, allocated once): a stream of any length uses the same memory.
///
/// A number within the window is counted once however often it repeats; one more than
/// [`WINDOW`] below the highest is taken for a late duplicate and not counted. Frame numbers
/// arrive in order give or take a few frames, so within the window the count equals an exact
/// set's.
#[derive(Debug, Clone)]
pub struct DistinctCounter {
    bits: Box<[u64; WORDS]>,
    highest: Option<u32>,
    count: u64,
}

impl Default for DistinctCounter {
    fn default() -> Self {
        Self {
            bits: Box::new([0; WORDS]),
            highest: None,
            count: 0,
        }
    }
}

impl DistinctCounter {
    fn bit(n: u32) -> (usize, u64) {
        let i = n % WINDOW;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    fn set(&mut self, n: u32) -> bool {
        let (w, b) = Self::bit(n);
        let new = self.bits[w] & b == 0;
        self.bits[w] |= b;
        new
    }

    /// Notes `n`; true when it was not seen before (and is counted).
    pub fn insert(&mut self, n: u32) -> bool {
        let Some(hi) = self.highest else {
            self.highest = Some(n);
            self.set(n);
            self.count = 1;
            return true;
        };
        if n > hi {
            // Forget the numbers that slide out of the window (they share slots with the new).
            if n - hi >= WINDOW {
                self.bits.fill(0);
            } else {
                for m in hi + 1..n {
                    let (w, b) = Self::bit(m);
                    self.bits[w] &= !b;
                }
                let (w, b) = Self::bit(n);
                self.bits[w] &= !b;
            }
            self.highest = Some(n);
            self.set(n);
            self.count += 1;
            return true;
        }
        if hi - n >= WINDOW {
            return false;
        }
        let new = self.set(n);
        self.count += u64::from(new);
        new
    }

    /// Distinct numbers counted.
    pub fn count(&self) -> u64 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn counts_repeats_once_and_forgets_far_behind() {
        let mut c = DistinctCounter::default();
        assert!(c.insert(5));
        assert!(!c.insert(5));
        assert!(c.insert(3));
        assert!(c.insert(5 + WINDOW));
        // 5 slid out of the window: a late duplicate, not counted again.
        assert!(!c.insert(5));
        assert!(!c.insert(3));
        assert_eq!(c.count(), 3);
        assert!(c.insert(u32::MAX));
        assert_eq!(c.count(), 4);
    }

    proptest! {
        /// Numbers that arrive roughly in order (each within the window of the highest so far)
        /// are counted exactly as a set would.
        #[test]
        fn equals_a_set_for_near_ordered_streams(
            start in 0u32..u32::MAX / 2,
            steps in proptest::collection::vec((0u32..40, 0u32..200, any::<bool>()), 1..3000),
        ) {
            let mut c = DistinctCounter::default();
            let mut set = HashSet::new();
            let mut hi = start;
            for (fwd, back, late) in steps {
                hi += fwd;
                let n = if late { hi.saturating_sub(back) } else { hi };
                prop_assert_eq!(c.insert(n), set.insert(n));
                hi = hi.max(n);
            }
            prop_assert_eq!(c.count(), set.len() as u64);
        }

        /// Any order at all: never more than a set counts, never panics.
        #[test]
        fn never_counts_more_than_a_set(ns in proptest::collection::vec(any::<u32>(), 0..500)) {
            let mut c = DistinctCounter::default();
            let mut set = HashSet::new();
            for n in ns {
                c.insert(n);
                set.insert(n);
            }
            prop_assert!(c.count() <= set.len() as u64);
        }
    }
}
