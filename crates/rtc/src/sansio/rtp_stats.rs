//! Loss-recovery counters (NACKs, keyframe requests, packets) summed from str0m's per-stream
//! statistics events, which the engine asks for once a second.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use str0m::media::{Mid, Rid};

use crate::error::PeerRole;

/// How often str0m reports per-stream statistics (the counters below move at this pace).
pub(crate) const STATS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// RTP loss-recovery counters of one engine (both connections), updated once a second.
///
/// Subscriber side: `nacks_sent` and `plis_sent` are our requests to the server (retransmission
/// of lost packets, a keyframe), `packets_received` includes the retransmissions. Publisher
/// side: `nacks_received` and `plis_received` are the server's requests to us, answered from
/// str0m's send buffer (NACK, with RTX) or by the encoder (PLI); `packets_sent` includes those
/// resends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RtpStats {
    /// NACK packets we sent for subscribed streams.
    pub nacks_sent: u64,
    /// PLI packets we sent for subscribed streams.
    pub plis_sent: u64,
    /// RTP packets received on subscribed streams (retransmissions included).
    pub packets_received: u64,
    /// NACK packets the server sent us for published streams.
    pub nacks_received: u64,
    /// PLI packets the server sent us for published streams.
    pub plis_received: u64,
    /// RTP packets sent on published streams (retransmissions included).
    pub packets_sent: u64,
    /// The round trip str0m last measured on a subscribed stream (RTCP XR); `None` until one
    /// was measured. NACK retries wait this long (100 ms when unknown).
    pub subscribed_rtt: Option<std::time::Duration>,
    /// The round trip str0m last measured on a published stream (receiver reports).
    pub published_rtt: Option<std::time::Duration>,
}

/// The shared totals (read by [`crate::Engine::rtp_stats`]).
#[derive(Debug, Default)]
pub(crate) struct RtpTotals {
    nacks_sent: AtomicU64,
    plis_sent: AtomicU64,
    packets_received: AtomicU64,
    nacks_received: AtomicU64,
    plis_received: AtomicU64,
    packets_sent: AtomicU64,
    /// µs, 0 = unknown.
    subscribed_rtt_us: AtomicU64,
    /// µs, 0 = unknown.
    published_rtt_us: AtomicU64,
}

impl RtpTotals {
    /// Note the round trip a stream report carried (kept until a newer one).
    pub(crate) fn note_rtt(&self, way: Way, rtt: Option<std::time::Duration>) {
        let Some(rtt) = rtt else { return };
        let us = (rtt.as_micros() as u64).max(1);
        match way {
            Way::In => self.subscribed_rtt_us.store(us, Ordering::Relaxed),
            Way::Out => self.published_rtt_us.store(us, Ordering::Relaxed),
        }
    }

    pub(crate) fn snapshot(&self) -> RtpStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RtpStats {
            nacks_sent: l(&self.nacks_sent),
            plis_sent: l(&self.plis_sent),
            packets_received: l(&self.packets_received),
            nacks_received: l(&self.nacks_received),
            plis_received: l(&self.plis_received),
            packets_sent: l(&self.packets_sent),
            subscribed_rtt: Some(l(&self.subscribed_rtt_us))
                .filter(|&us| us > 0)
                .map(std::time::Duration::from_micros),
            published_rtt: Some(l(&self.published_rtt_us))
                .filter(|&us| us > 0)
                .map(std::time::Duration::from_micros),
        }
    }
}

/// Which way a stream flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Way {
    /// We receive it (str0m's ingress stats).
    In,
    /// We send it (egress stats).
    Out,
}

/// One stream's cumulative counters as str0m reports them: (nacks, plis, packets).
type Cumulative = [u64; 3];

/// Turns str0m's cumulative per-stream counters into deltas added to the totals, so totals
/// only grow even when a stream is replaced (a reused mid starts again from 0).
#[derive(Debug, Default)]
pub(crate) struct RtpAccumulator {
    last: HashMap<(PeerRole, Way, Mid, Option<Rid>), Cumulative>,
}

impl RtpAccumulator {
    /// Record one stream's report; returns what it adds to the totals.
    pub(crate) fn delta(
        &mut self,
        key: (PeerRole, Way, Mid, Option<Rid>),
        now: Cumulative,
    ) -> Cumulative {
        let before = self.last.insert(key, now).unwrap_or([0; 3]);
        std::array::from_fn(|i| {
            if now[i] >= before[i] {
                now[i] - before[i]
            } else {
                // The stream restarted its count: everything it reports is new.
                now[i]
            }
        })
    }

    /// Add a report to `totals`.
    pub(crate) fn add(
        &mut self,
        totals: &RtpTotals,
        key: (PeerRole, Way, Mid, Option<Rid>),
        now: Cumulative,
    ) {
        let way = key.1;
        let [nacks, plis, packets] = self.delta(key, now);
        let (n, p, k) = match way {
            Way::In => (
                &totals.nacks_sent,
                &totals.plis_sent,
                &totals.packets_received,
            ),
            Way::Out => (
                &totals.nacks_received,
                &totals.plis_received,
                &totals.packets_sent,
            ),
        };
        n.fetch_add(nacks, Ordering::Relaxed);
        p.fetch_add(plis, Ordering::Relaxed);
        k.fetch_add(packets, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_reports_become_growing_totals() {
        let totals = RtpTotals::default();
        let mut acc = RtpAccumulator::default();
        let sub = (PeerRole::Subscriber, Way::In, Mid::from("1"), None);
        let publ = (PeerRole::Publisher, Way::Out, Mid::from("1"), None);
        acc.add(&totals, sub, [2, 1, 100]);
        acc.add(&totals, sub, [5, 1, 250]);
        acc.add(&totals, publ, [7, 0, 300]);
        let s = totals.snapshot();
        assert_eq!((s.nacks_sent, s.plis_sent, s.packets_received), (5, 1, 250));
        assert_eq!(
            (s.nacks_received, s.plis_received, s.packets_sent),
            (7, 0, 300)
        );
        // The mid is reused for a new stream that counts from 0 again.
        acc.add(&totals, sub, [1, 0, 10]);
        let s = totals.snapshot();
        assert_eq!((s.nacks_sent, s.packets_received), (6, 260));
    }
}
