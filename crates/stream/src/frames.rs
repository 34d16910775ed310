//! Which stamped frame numbers a receiver saw: a bit per frame number.
//!
//! The synthetic source numbers the frames it hands to the encoder (see [`crate::publish`]), so a
//! receiver that records the numbers it decoded can say how many of the sender's frames in any
//! range arrived — the delivery ratio of a viewer, or of a load test's subscriber up to a cut-off.

/// Frame numbers further than this above the lowest one seen are not recorded (counted in
/// [`FrameSet::out_of_range`]): 2²⁴ frames is 6 days at 30 fps, 2 MiB of bits at most, so a
/// false or hostile stamp cannot make the set allocate without bound.
pub const MAX_SPAN: u32 = 1 << 24;

/// A set of frame numbers, one bit each, counted from the lowest number seen (rounded down to
/// 64).
///
/// Inserting is a few arithmetic operations; the bits grow by doubling, so a stream allocates a
/// handful of times over its life (never per frame once the numbers stop growing past the
/// reserve given to [`FrameSet::with_capacity`]).
#[derive(Debug, Clone, Default)]
pub struct FrameSet {
    /// Bit `i` of word `w` is frame number `base + 64 w + i`.
    bits: Vec<u64>,
    base: u32,
    len: u64,
    first: Option<u32>,
    last: Option<u32>,
    out_of_range: u64,
}

impl FrameSet {
    /// An empty set with room for `frames` numbers above the first one before it grows.
    pub fn with_capacity(frames: u32) -> Self {
        Self {
            bits: Vec::with_capacity(frames.div_ceil(64) as usize),
            ..Self::default()
        }
    }

    /// Records frame number `n` (again is fine: counted once).
    pub fn insert(&mut self, n: u32) {
        let Some(first) = self.first else {
            self.base = n - n % 64;
            self.first = Some(n);
            self.last = Some(n);
            self.set_bit(n);
            return;
        };
        let lowest = first.min(n);
        let highest = self.last.map_or(n, |l| l.max(n));
        if highest - lowest >= MAX_SPAN {
            self.out_of_range += 1;
            return;
        }
        if n < self.base {
            // A frame older than every one seen (reordering at the start): shift the words up.
            let new_base = n - n % 64;
            let shift = ((self.base - new_base) / 64) as usize;
            self.bits.splice(0..0, std::iter::repeat_n(0, shift));
            self.base = new_base;
        }
        self.first = Some(lowest);
        self.last = Some(highest);
        self.set_bit(n);
    }

    fn set_bit(&mut self, n: u32) {
        let offset = n - self.base;
        let word = (offset / 64) as usize;
        if word >= self.bits.len() {
            self.bits.resize((word + 1).next_power_of_two(), 0);
        }
        let bit = 1u64 << (offset % 64);
        if self.bits[word] & bit == 0 {
            self.bits[word] |= bit;
            self.len += 1;
        }
    }

    /// Whether `n` was seen.
    pub fn contains(&self, n: u32) -> bool {
        n >= self.base && {
            let offset = n - self.base;
            self.bits
                .get((offset / 64) as usize)
                .is_some_and(|w| w & (1 << (offset % 64)) != 0)
        }
    }

    /// Distinct numbers seen.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was seen.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The lowest number seen.
    pub fn first(&self) -> Option<u32> {
        self.first
    }

    /// The highest number seen.
    pub fn last(&self) -> Option<u32> {
        self.last
    }

    /// Numbers not recorded because they lay more than [`MAX_SPAN`] from the others.
    pub fn out_of_range(&self) -> u64 {
        self.out_of_range
    }

    /// How many numbers in `from..=to` were seen (whole words at a time).
    pub fn count_in(&self, from: u32, to: u32) -> u64 {
        if self.bits.is_empty() || to < from {
            return 0;
        }
        let lo = u64::from(from.max(self.base) - self.base);
        let hi = (u64::from(to.saturating_sub(self.base)) + 1).min(self.bits.len() as u64 * 64);
        if to < self.base || lo >= hi {
            return 0;
        }
        let mut count = 0u64;
        let mut i = lo;
        while i < hi {
            let word = self.bits[(i / 64) as usize] >> (i % 64);
            let take = (64 - i % 64).min(hi - i);
            let mask = if take == 64 {
                u64::MAX
            } else {
                (1u64 << take) - 1
            };
            count += u64::from((word & mask).count_ones());
            i += take;
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_arrived_in_a_range() {
        let mut s = FrameSet::with_capacity(1024);
        for n in [5, 6, 8, 200, 201, 6] {
            s.insert(n);
        }
        assert_eq!(s.len(), 5);
        assert_eq!((s.first(), s.last()), (Some(5), Some(201)));
        assert_eq!(s.count_in(5, 8), 3);
        assert_eq!(s.count_in(0, 1000), 5);
        assert_eq!(s.count_in(300, 400), 0);
        assert_eq!(s.count_in(7, 7), 0);
        assert_eq!(s.count_in(8, 200), 2);
        assert!(s.contains(200) && !s.contains(199) && !s.contains(4));
    }

    #[test]
    fn a_receiver_that_joins_late_starts_its_bits_at_its_first_frame() {
        let mut s = FrameSet::default();
        s.insert(1_000_000);
        s.insert(1_000_001);
        // Reordered: an older frame after the first one.
        s.insert(999_990);
        assert_eq!(s.first(), Some(999_990));
        assert_eq!(s.count_in(999_000, 1_000_001), 3);
        assert!(s.bits.len() <= 2, "{} words", s.bits.len());
    }

    /// Regression guard: a false stamp with a huge frame number must not allocate gigabytes.
    #[test]
    fn a_wild_frame_number_is_not_recorded() {
        let mut s = FrameSet::default();
        s.insert(10);
        s.insert(u32::MAX);
        assert_eq!(s.len(), 1);
        assert_eq!(s.out_of_range(), 1);
        assert_eq!(s.last(), Some(10));
        assert!(s.bits.len() < 16);
    }
}
