//! Liveness after connect: noticing a dead media path while the signal is still up.
//!
//! A connected peer connection always receives something: media and RTCP while tracks flow,
//! and STUN keepalives from both ICE agents when idle. When a connected connection has
//! received nothing for [`EngineOptions::liveness_timeout`] (or its ICE agent has had no
//! working pair for that long) the UDP path is taken for dead (a NAT rebinding, a firewall,
//! Wi-Fi that lost the access point while the WebSocket survived on another route) and the
//! engine:
//! 1. resumes with an ICE restart (LiveKit's `reconnect=1` join with `RR_PUBLISHER_FAILED` /
//!    `RR_SUBSCRIBER_FAILED`; the publisher offers new ICE credentials, the server restarts the
//!    subscriber's), announcing [`EngineEvent::Resuming`];
//! 2. when another timeout passes with nothing received, resumes once more; after
//!    [`MEDIA_RESUMES`] resumes without media it stops with
//!    [`DisconnectReason::TransportFailed`], and its owner joins afresh;
//! 3. as soon as either connection receives again (the path is open), restarts ICE once more
//!    (an unannounced resume), then announces [`EngineEvent::Resumed`] when both connections
//!    have a working ICE pair and receive.
//!
//! Step 3 is why media comes back within a second of the path reopening: an ICE restart made
//! while the path was down gets no answer, and livekit-server's agent (the controlling one on
//! the subscriber connection) gives up on it; our checks then still get answers but nobody
//! nominates a pair, so no media flows until the server asks for a resume itself (figures in
//! docs/PERFORMANCE.md). Our checks go out at least every `peer::MAX_STUN_RTO` while the path
//! is down, which bounds how late the reopening is seen.

use super::resume::ResumeCause;
use super::*;

/// Resumes tried for one dead media path before the engine gives up.
pub(crate) const MEDIA_RESUMES: u32 = 2;

/// A dead media path being recovered.
#[derive(Debug)]
pub(super) struct MediaRecovery {
    /// The connection found dead first.
    role: PeerRole,
    /// Whether the subscriber connection was found dead (its ICE is the server's to restart).
    subscriber_dead: bool,
    /// When it was found dead.
    noticed: Instant,
    /// When the last resume for it finished (or started, until it finishes).
    pub(super) resumed_at: Instant,
    /// Resumes tried while the path was dead.
    attempts: u32,
    /// ICE was restarted once more after the path opened again.
    refreshed: bool,
}

impl Core {
    /// Check both connections' liveness (see the module docs); may start a resume or stop.
    pub(super) fn check_media_path(&mut self) {
        let now = self.now;
        if self.link.is_resuming() || self.stop.is_some() {
            return;
        }
        if let Some(r) = &mut self.media_recovery {
            let back =
                self.publisher.last_rx > r.resumed_at || self.subscriber.last_rx > r.resumed_at;
            let took = now.saturating_duration_since(r.noticed);
            if back && !r.refreshed {
                r.refreshed = true;
                let role = if r.subscriber_dead || !self.subscriber.ice_usable() {
                    PeerRole::Subscriber
                } else {
                    PeerRole::Publisher
                };
                let why = format!(
                    "the media path is back {took:?} after it was found dead; restarting ICE on it"
                );
                self.start_resume(why, ResumeCause::PathBack(role));
                return;
            }
            let usable = [&self.publisher, &self.subscriber]
                .into_iter()
                .filter(|p| p.connected && p.rtc.is_alive())
                .all(|p| p.ice_usable());
            if back && usable {
                info!(role = %r.role, "media path back {took:?} after it was found dead");
                self.media_recovery = None;
                self.emit(EngineEvent::Resumed { took });
                // Video needs a keyframe after the hole: our published video sends one at once
                // (the server's requests may have been lost or be held back by its throttle),
                // and we ask for one on every subscribed video track (a request made while ICE
                // was being restarted may have been lost, and would hold the next one back).
                for t in self.local_tracks.values() {
                    if t.kind == TrackKind::Video {
                        t.shared.keyframe_requested.store(true, Ordering::Relaxed);
                    }
                }
                let video: Vec<Mid> = self
                    .remote
                    .iter_mut()
                    .filter(|(_, r)| r.kind == TrackKind::Video)
                    .map(|(mid, r)| {
                        r.last_pli = None;
                        *mid
                    })
                    .collect();
                for mid in video {
                    if let Err(e) = self.request_keyframe(mid) {
                        warn!("engine: {e}");
                    }
                }
            }
        }
        let limit = self.options.liveness_timeout;
        if limit.is_zero() {
            return;
        }
        let Some((role, silent)) = [&self.publisher, &self.subscriber]
            .into_iter()
            .filter(|p| p.connected && p.rtc.is_alive())
            .map(|p| (p.role, dead_for(p, now)))
            .find(|(_, silent)| *silent >= limit)
        else {
            return;
        };
        let (noticed, attempts, subscriber_dead) =
            self.media_recovery.as_ref().map_or((now, 0, false), |r| {
                (r.noticed, r.attempts, r.subscriber_dead)
            });
        if attempts >= MEDIA_RESUMES {
            warn!(
                %role,
                "media path still dead {:?} after {attempts} resumes; giving up",
                now.saturating_duration_since(noticed)
            );
            self.stop = Some(DisconnectReason::TransportFailed(role));
            return;
        }
        let why = format!("the {role} connection received nothing for {silent:?}");
        warn!("{why} (signal still up)");
        self.media_recovery = Some(MediaRecovery {
            role,
            subscriber_dead: subscriber_dead || role == PeerRole::Subscriber,
            noticed,
            resumed_at: now,
            attempts: attempts + 1,
            refreshed: false,
        });
        self.start_resume(why, ResumeCause::MediaDead(role));
    }

    /// When the liveness check must look next (a connected connection's silence reaching the
    /// limit).
    pub(super) fn liveness_deadline(&self) -> Option<Instant> {
        let limit = self.options.liveness_timeout;
        if limit.is_zero() || self.link.is_resuming() {
            return None;
        }
        [&self.publisher, &self.subscriber]
            .into_iter()
            .filter(|p| p.connected && p.rtc.is_alive())
            .map(|p| self.now + limit.saturating_sub(dead_for(p, self.now)))
            .min()
    }
}

/// How long a connection has been of no use: nothing received, or no working ICE pair.
fn dead_for(p: &Peer, now: Instant) -> Duration {
    let silent = now.saturating_duration_since(p.last_rx);
    if p.ice_usable() {
        silent
    } else {
        silent.max(now.saturating_duration_since(p.ice.1))
    }
}
