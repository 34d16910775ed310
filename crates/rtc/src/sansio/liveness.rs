//! Liveness after connect: noticing a dead media path while the signal is still up.
//!
//! A connected peer connection always receives something: media and RTCP while tracks flow,
//! and STUN keepalives from both ICE agents (every few seconds) when idle. When a connected
//! connection has received nothing for [`EngineOptions::liveness_timeout`] the UDP path is
//! taken for dead (a NAT rebinding, a firewall, Wi-Fi that lost the access point while the
//! WebSocket survived on another route) and the engine:
//! 1. resumes with an ICE restart (LiveKit's `reconnect=1` join with `RR_PUBLISHER_FAILED` /
//!    `RR_SUBSCRIBER_FAILED`; the publisher offers new ICE credentials, the server restarts the
//!    subscriber's), announcing [`EngineEvent::Resuming`];
//! 2. announces [`EngineEvent::Resumed`] once the dead connection receives again;
//! 3. when another timeout passes with nothing received, resumes once more; after
//!    [`MEDIA_RESUMES`] resumes without media it stops with
//!    [`DisconnectReason::TransportFailed`], and its owner joins afresh.

use super::resume::ResumeCause;
use super::*;

/// Resumes tried for one dead media path before the engine gives up.
pub(crate) const MEDIA_RESUMES: u32 = 2;

/// A dead media path being recovered.
#[derive(Debug)]
pub(super) struct MediaRecovery {
    /// The connection found dead.
    role: PeerRole,
    /// When it was found dead.
    noticed: Instant,
    /// When the last resume for it finished (or started, until it finishes).
    pub(super) resumed_at: Instant,
    /// Resumes tried so far.
    attempts: u32,
}

impl Core {
    /// Check both connections' liveness (see the module docs); may start a resume or stop.
    pub(super) fn check_media_path(&mut self) {
        let now = self.now;
        if let Some(r) = &self.media_recovery {
            let peer = match r.role {
                PeerRole::Publisher => &self.publisher,
                PeerRole::Subscriber => &self.subscriber,
            };
            if peer.last_rx > r.resumed_at {
                let took = now.saturating_duration_since(r.noticed);
                info!(role = %r.role, "media path back {took:?} after it was found dead");
                self.media_recovery = None;
                self.emit(EngineEvent::Resumed { took });
            }
        }
        let limit = self.options.liveness_timeout;
        if limit.is_zero() || self.link.is_resuming() || self.stop.is_some() {
            return;
        }
        let Some((role, silent)) = [&self.publisher, &self.subscriber]
            .into_iter()
            .filter(|p| p.connected && p.rtc.is_alive())
            .map(|p| (p.role, now.saturating_duration_since(p.last_rx)))
            .find(|(_, silent)| *silent >= limit)
        else {
            return;
        };
        let (noticed, attempts) = self
            .media_recovery
            .as_ref()
            .map_or((now, 0), |r| (r.noticed, r.attempts));
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
            noticed,
            resumed_at: now,
            attempts: attempts + 1,
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
            .map(|p| p.last_rx + limit)
            .min()
    }
}
