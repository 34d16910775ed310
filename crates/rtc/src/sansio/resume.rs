//! Resuming the session on a new signal connection: LiveKit's `reconnect=1` join with our
//! participant sid, an ICE restart on the publisher (the server restarts ICE on the subscriber
//! itself when it needs to), and a `SyncState` so the server keeps our tracks and subscriptions.
//!
//! A resume is a state of the core ([`Link::Resuming`]), not a wait: datagrams, commands and
//! media keep being handled while the driver opens the new connection. Requests meant for the
//! server meanwhile are held by the signal client until [`SignalOut::Reconnected`]; the
//! publisher's offers wait for the resume's ICE restart offer, which carries them. A resume
//! makes at most [`RESUME_ATTEMPTS`] attempts of [`RESUME_ATTEMPT_TIMEOUT`] each, with a short
//! pause between them; a refusal (the server's `Leave`, an HTTP 4xx) ends it at once.

use super::*;

/// Resume attempts before the engine gives up (its owner then joins afresh).
pub(crate) const RESUME_ATTEMPTS: u32 = 3;

/// How long one resume attempt may take (signal connect + `ReconnectResponse`).
pub(crate) const RESUME_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(6);

/// The pause after failed attempt `n` (1-based) before the next.
pub(crate) fn resume_backoff(attempt: u32) -> Duration {
    Duration::from_millis(300 * u64::from(attempt))
}

/// Why a resume attempt failed, as the driver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ResumeFailure {
    /// The server refused to resume us (its `Leave`, an HTTP 4xx): no further attempt.
    Refused(String),
    /// The attempt failed (no connection, closed before the answer): try again.
    Failed(String),
}

/// What set a resume off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResumeCause {
    /// The signal connection was lost.
    SignalLost,
    /// The server's `Leave` with action RESUME.
    ServerAsked,
    /// A peer connection stopped receiving anything while the signal was up (see
    /// [`super::liveness`]). `Resumed` is then announced once media arrives again, not when
    /// the signal is back.
    MediaDead(PeerRole),
    /// A dead media path is open again: ICE is restarted once more on it (unannounced: the
    /// engine is still resuming as far as its reader knows).
    PathBack(PeerRole),
}

impl ResumeCause {
    fn reconnect_reason(self) -> proto::ReconnectReason {
        match self {
            ResumeCause::SignalLost | ResumeCause::ServerAsked => {
                proto::ReconnectReason::RrSignalDisconnected
            }
            ResumeCause::MediaDead(PeerRole::Publisher)
            | ResumeCause::PathBack(PeerRole::Publisher) => {
                proto::ReconnectReason::RrPublisherFailed
            }
            ResumeCause::MediaDead(PeerRole::Subscriber)
            | ResumeCause::PathBack(PeerRole::Subscriber) => {
                proto::ReconnectReason::RrSubscriberFailed
            }
        }
    }
}

/// The signal connection as the core sees it.
#[derive(Debug)]
pub(crate) enum Link {
    /// Up (or not known to be down).
    Up,
    /// Being resumed.
    Resuming(Resume),
}

impl Link {
    pub(crate) fn is_resuming(&self) -> bool {
        matches!(self, Link::Resuming(_))
    }
}

/// A resume in progress.
#[derive(Debug)]
pub(crate) struct Resume {
    cause: ResumeCause,
    started: Instant,
    /// The current attempt, from 1.
    attempt: u32,
    phase: Phase,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// An attempt is in flight; it counts as failed at `deadline`.
    Waiting { deadline: Instant },
    /// The pause before the next attempt.
    Pause { until: Instant },
}

impl Core {
    /// Start resuming (nothing happens when a resume is already under way).
    pub(super) fn start_resume(&mut self, why: String, cause: ResumeCause) {
        if let Link::Resuming(r) = &self.link {
            debug!("{why}; already resuming ({:?})", r.cause);
            return;
        }
        info!("{why}; resuming ({cause:?})");
        if !matches!(cause, ResumeCause::PathBack(_)) {
            self.emit(EngineEvent::Resuming { reason: why });
        }
        let now = self.now;
        self.signal_out
            .push_back(SignalOut::Resume(cause.reconnect_reason()));
        self.link = Link::Resuming(Resume {
            cause,
            started: now,
            attempt: 1,
            phase: Phase::Waiting {
                deadline: now + RESUME_ATTEMPT_TIMEOUT,
            },
        });
    }

    /// The server answered the attempt: restart ICE, tell the server what we have, release
    /// the held requests.
    pub(super) fn on_resume_response(&mut self, response: proto::ReconnectResponse) {
        let Link::Resuming(r) = &self.link else {
            debug!("reconnect response with no resume under way");
            return;
        };
        if !matches!(r.phase, Phase::Waiting { .. }) {
            debug!("reconnect response of an abandoned attempt");
            return;
        }
        let (cause, started) = (r.cause, r.started);
        self.link = Link::Up;
        debug!(
            "reconnect response: {} ICE servers",
            response.ice_servers.len()
        );
        // An offer whose answer the lost connection took with it goes again first; the ICE
        // restart follows once it is answered.
        if let Some((_, sdp)) = &self.negotiation.pending {
            let sdp = sdp.clone();
            self.send_publisher_offer(sdp);
        }
        // ICE restart on the publisher (new credentials, same candidates); the answer comes
        // back as usual.
        self.negotiation.changes.push(PubChange::IceRestart);
        if let Err(e) = self.negotiate_publisher() {
            self.stop = Some(DisconnectReason::SignalClosed(format!(
                "the publisher's ICE restart failed: {e}"
            )));
            return;
        }
        let sync = self.sync_state();
        self.send_signal(proto::signal_request::Message::SyncState(sync));
        self.signal_out.push_back(SignalOut::Reconnected);
        let now = self.now;
        let took = now.saturating_duration_since(started);
        info!("resumed in {took:?} as {}", self.local.sid);
        // The ICE restart needs a moment: give the liveness check a fresh window.
        for p in [&mut self.publisher, &mut self.subscriber] {
            p.last_rx = p.last_rx.max(now);
            p.ice.1 = p.ice.1.max(now);
        }
        match cause {
            ResumeCause::MediaDead(_) | ResumeCause::PathBack(_) => {
                if let Some(m) = &mut self.media_recovery {
                    m.resumed_at = now;
                }
            }
            _ => self.emit(EngineEvent::Resumed { took }),
        }
        while let Some(c) = self.deferred.pop_front() {
            if let Err(e) = self.on_command(c) {
                warn!("engine: {e}");
            }
        }
    }

    pub(super) fn on_resume_failed(&mut self, failure: ResumeFailure) {
        let Link::Resuming(r) = &self.link else {
            debug!("resume failure with no resume under way: {failure:?}");
            return;
        };
        if !matches!(r.phase, Phase::Waiting { .. }) {
            debug!("failure of an abandoned resume attempt: {failure:?}");
            return;
        }
        match failure {
            ResumeFailure::Refused(why) => {
                self.link = Link::Up;
                self.stop = Some(DisconnectReason::SignalClosed(why));
            }
            ResumeFailure::Failed(why) => self.resume_attempt_failed(why),
        }
    }

    fn resume_attempt_failed(&mut self, why: String) {
        let Link::Resuming(r) = &mut self.link else {
            return;
        };
        info!("resume attempt {} failed: {why}", r.attempt);
        if r.attempt >= RESUME_ATTEMPTS {
            self.link = Link::Up;
            self.stop = Some(DisconnectReason::SignalClosed(format!(
                "resume failed after {RESUME_ATTEMPTS} attempts: {why}"
            )));
        } else {
            r.phase = Phase::Pause {
                until: self.now + resume_backoff(r.attempt),
            };
        }
    }

    /// An attempt that ran out of time fails (and is abandoned); a pause that ended starts the
    /// next attempt.
    pub(super) fn resume_timers(&mut self) {
        let now = self.now;
        let Link::Resuming(r) = &mut self.link else {
            return;
        };
        match r.phase {
            Phase::Waiting { deadline } if now >= deadline => {
                self.signal_out.push_back(SignalOut::Close);
                self.resume_attempt_failed(format!("no answer within {RESUME_ATTEMPT_TIMEOUT:?}"));
            }
            Phase::Pause { until } if now >= until => {
                r.attempt += 1;
                r.phase = Phase::Waiting {
                    deadline: now + RESUME_ATTEMPT_TIMEOUT,
                };
                self.signal_out
                    .push_back(SignalOut::Resume(r.cause.reconnect_reason()));
            }
            _ => {}
        }
    }

    pub(super) fn resume_deadline(&self) -> Option<Instant> {
        match &self.link {
            Link::Resuming(r) => Some(match r.phase {
                Phase::Waiting { deadline } => deadline,
                Phase::Pause { until } => until,
            }),
            Link::Up => None,
        }
    }

    /// What we have, for the server to line up with after a resume.
    fn sync_state(&self) -> proto::SyncState {
        // As the official SDKs do: with auto-subscribe the list names the tracks we turned
        // down (none: we keep no such list), else the tracks we subscribed to.
        let auto = self.options.auto_subscribe;
        let track_sids: Vec<String> = if auto {
            Vec::new()
        } else {
            self.remote.values().map(|r| r.sid.clone()).collect()
        };
        let publish_tracks = self
            .local_tracks
            .values()
            .map(|t| proto::TrackPublishedResponse {
                cid: t.cid.to_string(),
                track: t.info.clone().or_else(|| {
                    Some(proto::TrackInfo {
                        sid: t.sid.clone(),
                        ..Default::default()
                    })
                }),
            })
            .collect();
        proto::SyncState {
            answer: self.last_sub_answer.clone(),
            subscription: Some(proto::UpdateSubscription {
                track_sids,
                subscribe: !auto,
                participant_tracks: Vec::new(),
            }),
            publish_tracks,
            ..Default::default()
        }
    }
}
