//! Loss recovery on the publisher connection: how our sent video answers the server's NACKs.
//!
//! str0m answers a NACK with an RTX resend from a per-stream cache of sent packets, but by
//! default it drops every queued resend once resends exceed 15 % of the bytes sent
//! (`rtx_ratio_cap`). Random loss of about 13 % reaches that (each loss costs a resend, lost
//! resends cost more), and from then on the server cannot repair what it lost from us: every
//! subscriber — ours or anyone's — sees frames vanish and waits for keyframes. Measured with
//! the probe (`--leg up`, 15 % loss publisher → server): 12 fps reached both subscribers.
//!
//! We raise the cap to [`RTX_RATIO_CAP`]: resends may be up to half the bytes, which still
//! stops a peer that NACKs everything from doubling our send rate, while real loss up to about
//! 35 % is repaired. The cache keeps str0m's sizes (the configured video send buffer, 3 s).
//!
//! # The receive side's reorder stage and its latency budget
//!
//! str0m puts every received stream through a reorder stage before it hands out frames:
//!
//! - **Audio** waits at most [`AUDIO_REORDER_PACKETS`] packets or [`AUDIO_REORDER_WAIT`] for a
//!   missing packet, then moves on. LiveKit does not resend audio (no NACK is negotiated for
//!   Opus), so waiting longer only adds delay. Audio travels as RED (RFC 2198, negotiated by
//!   `peer::rtc_config` and allowed in our publish requests): every packet also carries the one
//!   before it, so str0m rebuilds a single lost packet from the next one, whatever the sound.
//!   What RED cannot rebuild, the Opus decoder rebuilds from libopus's FEC (speech only) or
//!   conceals. str0m's defaults (15 packets,
//!   1 s) held every packet after a loss for up to 300 ms: measured with the probe at 15 % loss
//!   on the server → subscriber leg, audio was held 235 ms at the median, 363 ms at p95.
//! - **Video** waits for a missing packet while str0m still NACKs it (up to 5 requests) plus
//!   three RTTs, and at most 30 packets. str0m learns no receive-side RTT from livekit-server
//!   (it ignores a DLRR whose delay is 0, which is what the server sends), so it retries a
//!   NACK after 105 ms and gives up 300 ms after the last one: a packet whose resend is lost
//!   too costs about 105 ms more. That is the p95 latency gap to libwebrtc under loss
//!   (docs/PERFORMANCE.md); it sits inside str0m 0.25.

use std::time::Duration;

use super::*;

/// Share of the sent bytes resends may take before str0m drops queued resends.
pub(crate) const RTX_RATIO_CAP: f32 = 0.5;
/// Packets kept for resends per video stream (str0m's default video send buffer).
pub(crate) const RTX_CACHE_PACKETS: usize = 1000;
/// How old a packet may be and still be resent (str0m's default).
pub(crate) const RTX_CACHE_AGE: Duration = Duration::from_secs(3);
/// Audio packets that may arrive after a missing one before it is given up (one 20 ms packet).
pub(crate) const AUDIO_REORDER_PACKETS: usize = 2;
/// The longest a received audio packet waits for a missing one before it.
pub(crate) const AUDIO_REORDER_WAIT: Duration = Duration::from_millis(30);

impl Core {
    /// Apply [`RTX_RATIO_CAP`] to every published video stream not configured yet (streams are
    /// created by negotiation; reconfiguring one would empty its cache, so each is done once).
    pub(super) fn configure_resends(&mut self) {
        let mids: Vec<Mid> = self
            .local_tracks
            .values()
            .filter(|t| t.kind == TrackKind::Video)
            .filter_map(|t| t.mid)
            .collect();
        for mid in mids {
            if let Some(ssrc) =
                configure_video_resends(&mut self.publisher.rtc, mid, &self.resend_configured)
            {
                self.resend_configured.insert(ssrc);
                debug!("resends on mid {mid}: cap {RTX_RATIO_CAP} of the bytes sent");
            }
        }
    }
}

/// Set the resend limits on the send stream of `mid` unless its SSRC is in `done`; returns the
/// SSRC it configured.
pub(crate) fn configure_video_resends(
    rtc: &mut str0m::Rtc,
    mid: Mid,
    done: &std::collections::HashSet<str0m::rtp::Ssrc>,
) -> Option<str0m::rtp::Ssrc> {
    let mut api = rtc.direct_api();
    let tx = api.stream_tx_by_mid(mid, None)?;
    let ssrc = tx.ssrc();
    if done.contains(&ssrc) {
        return None;
    }
    tx.set_rtx_cache(RTX_CACHE_PACKETS, RTX_CACHE_AGE, Some(RTX_RATIO_CAP));
    Some(ssrc)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::net::SocketAddr;
    use std::time::Instant;

    use str0m::media::{Direction, Frequency, MediaKind, MediaTime};
    use str0m::net::{Protocol, Receive};
    use str0m::{Candidate, Event, Input, Output, Rtc};

    use super::*;

    /// A deterministic coin: drops `percent` % of the calls (xorshift).
    struct Loss {
        state: u64,
        percent: u64,
    }

    impl Loss {
        fn drop(&mut self) -> bool {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            self.state % 100 < self.percent
        }
    }

    struct Peer {
        rtc: Rtc,
        addr: SocketAddr,
    }

    /// Drain `from` until it wants a timeout; its datagrams reach `to` unless lost (nothing is
    /// lost before both are connected). Returns the next timeout.
    fn drain(
        from: &mut Peer,
        to: &mut Peer,
        now: Instant,
        loss: &mut Loss,
        lossy: bool,
        events: &mut Vec<Event>,
    ) -> Instant {
        loop {
            match from.rtc.poll_output().expect("poll") {
                Output::Timeout(t) => return t,
                Output::Transmit(t) => {
                    if lossy && loss.drop() {
                        continue;
                    }
                    let input = Input::Receive(
                        now,
                        Receive {
                            proto: Protocol::Udp,
                            source: t.source,
                            destination: t.destination,
                            contents: (&*t.contents).try_into().expect("datagram"),
                        },
                    );
                    to.rtc.handle_input(input).expect("receive");
                }
                Output::Event(e) => events.push(e),
            }
        }
    }

    /// What one run over the lossy link gave.
    struct Run {
        sent: u64,
        /// Frames (or audio packets) received complete and in order.
        received: u64,
        /// First packet received → handed out, per received frame.
        held: Vec<Duration>,
    }

    /// `kind` for `seconds` from a peer built with `config` over a link dropping `percent` % of
    /// the datagrams both ways (media, NACKs, resends). Video: frames of 5 packets at 30 fps
    /// (`raise_cap`: our resend cap); audio: one 20 ms packet every 20 ms.
    fn send_over_loss(
        kind: MediaKind,
        config: fn() -> str0m::RtcConfig,
        percent: u64,
        seconds: u64,
        raise_cap: bool,
    ) -> Run {
        let mut now = Instant::now();
        let mk = |ip: &str| {
            let addr: SocketAddr = ip.parse().expect("addr");
            let mut rtc = config().build(now);
            rtc.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
            Peer { rtc, addr }
        };
        let (mut tx, mut rx) = (mk("192.0.2.1:5000"), mk("192.0.2.2:5000"));
        let mut api = tx.rtc.sdp_api();
        let mid = api.add_media(kind, Direction::SendOnly, None, None, None);
        let (offer, pending) = api.apply().expect("offer");
        let answer = rx.rtc.sdp_api().accept_offer(offer).expect("answer");
        tx.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("accept");
        rx.rtc
            .add_remote_candidate(Candidate::host(tx.addr, "udp").expect("c"));
        tx.rtc
            .add_remote_candidate(Candidate::host(rx.addr, "udp").expect("c"));
        if raise_cap {
            assert!(configure_video_resends(&mut tx.rtc, mid, &HashSet::new()).is_some());
        }
        let mut loss = Loss {
            state: 0x9e37_79b9_7f4a_7c15,
            percent,
        };
        let video = kind == MediaKind::Video;
        let interval = Duration::from_millis(if video { 33 } else { 20 });
        let (mut events_tx, mut events_rx) = (Vec::new(), Vec::new());
        let mut connected = false;
        let mut run = Run {
            sent: 0,
            received: 0,
            held: Vec::new(),
        };
        let start = now;
        let end = start + Duration::from_secs(seconds);
        let mut next_frame = start;
        while now < end + Duration::from_secs(2) {
            if connected && now >= next_frame && now < end {
                let w = tx.rtc.writer(mid).expect("writer");
                let pt = w.payload_params().next().expect("codec").pt();
                let (data, t) = if video {
                    // A VP8 payload: the keyframe bit clear (inter frame) after the first.
                    let mut data = vec![0x42u8; 5 * 1100];
                    data[0] = if run.sent == 0 { 0x10 } else { 0x11 };
                    (data, MediaTime::new(run.sent * 3000, Frequency::NINETY_KHZ))
                } else {
                    (
                        vec![0xF8; 80],
                        MediaTime::new(run.sent * 960, Frequency::FORTY_EIGHT_KHZ),
                    )
                };
                w.write(pt, now, t, data).expect("write");
                run.sent += 1;
                next_frame += interval;
            }
            let t1 = drain(&mut tx, &mut rx, now, &mut loss, connected, &mut events_tx);
            let t2 = drain(&mut rx, &mut tx, now, &mut loss, connected, &mut events_rx);
            for e in events_rx.drain(..) {
                match e {
                    Event::Connected => connected = true,
                    Event::MediaData(m) => {
                        run.held.push(now.saturating_duration_since(m.network_time));
                        run.received += u64::from(m.contiguous);
                    }
                    _ => {}
                }
            }
            events_tx.clear();
            let mut next = t1.min(t2).min(now + Duration::from_millis(5));
            if connected && now < end {
                next = next.min(next_frame);
            }
            now = next.max(now + Duration::from_micros(100));
            tx.rtc.handle_input(Input::Timeout(now)).expect("timeout");
            rx.rtc.handle_input(Input::Timeout(now)).expect("timeout");
        }
        run
    }

    /// str0m's own defaults for the reorder stage, with our codecs.
    fn str0m_defaults() -> str0m::RtcConfig {
        str0m::RtcConfig::new()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
    }

    /// Regression: with str0m's default cap, resends stopped once they were 15 % of the bytes
    /// sent, and the server lost what it could not repair.
    #[test]
    fn video_is_repaired_under_20_percent_loss_both_ways() {
        let ours = send_over_loss(
            MediaKind::Video,
            crate::sansio::peer::rtc_config,
            20,
            10,
            true,
        );
        let (sent, received) = (ours.sent, ours.received);
        let default_cap = send_over_loss(
            MediaKind::Video,
            crate::sansio::peer::rtc_config,
            20,
            10,
            false,
        )
        .received;
        eprintln!(
            "20 % loss: {received}/{sent} frames complete in order (str0m's default cap: {default_cap})"
        );
        assert!(sent >= 290, "{sent}");
        assert!(
            received * 100 >= sent * 97,
            "only {received} of {sent} frames arrived whole"
        );
    }

    /// Our configuration without RED, to see the reorder stage alone.
    fn ours_without_red() -> str0m::RtcConfig {
        crate::sansio::peer::rtc_config().enable_opus(true, false)
    }

    fn p95(run: &Run) -> Duration {
        let mut held = run.held.clone();
        held.sort();
        held[held.len() * 95 / 100]
    }

    /// Regression: str0m's default audio reorder stage held every packet after a lost one for
    /// up to 15 packets (300 ms), though nobody resends audio. Ours gives up within its budget.
    #[test]
    fn audio_after_a_loss_waits_no_longer_than_the_budget() {
        let ours = send_over_loss(MediaKind::Audio, ours_without_red, 15, 10, false);
        let default = send_over_loss(MediaKind::Audio, str0m_defaults, 15, 10, false);
        let worst = ours.held.iter().max().copied().unwrap_or_default();
        eprintln!(
            "audio at 15 % loss, no RED: {}/{} packets; held p95 {:?}, max {worst:?} (str0m's defaults: p95 {:?})",
            ours.received,
            ours.sent,
            p95(&ours),
            p95(&default)
        );
        assert!(ours.sent >= 490, "{}", ours.sent);
        // Everything that arrived is handed out (the lost ~15 % are the decoder's to rebuild).
        assert!(
            ours.held.len() as u64 * 100 >= ours.sent * 75,
            "{}",
            ours.held.len()
        );
        // The budget, plus the test loop's 5 ms step.
        assert!(
            worst <= AUDIO_REORDER_WAIT + Duration::from_millis(5),
            "held {worst:?}"
        );
        assert!(
            p95(&default) >= Duration::from_millis(100),
            "{:?}",
            p95(&default)
        );
    }

    /// With RED each audio packet also carries the one before it, so a single loss is rebuilt
    /// from the next packet whatever the sound (libopus's own FEC only covers speech).
    #[test]
    fn red_rebuilds_lost_audio_packets() {
        let red = send_over_loss(
            MediaKind::Audio,
            crate::sansio::peer::rtc_config,
            15,
            10,
            false,
        );
        let plain = send_over_loss(MediaKind::Audio, ours_without_red, 15, 10, false);
        eprintln!(
            "audio at 15 % loss: {}/{} packets in order with RED, {} without",
            red.received, red.sent, plain.received
        );
        assert!(
            red.received * 100 >= red.sent * 94,
            "{}/{}",
            red.received,
            red.sent
        );
        assert!(
            plain.received * 100 <= plain.sent * 90,
            "{}/{}",
            plain.received,
            plain.sent
        );
        assert!(p95(&red) <= AUDIO_REORDER_WAIT, "{:?}", p95(&red));
    }
}
