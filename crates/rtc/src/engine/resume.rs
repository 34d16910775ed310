//! Resuming after a lost signal connection: LiveKit's `reconnect=1` join with our participant
//! sid, an ICE restart on the publisher (the server restarts ICE on the subscriber itself when
//! it needs to), and a `SyncState` so the server keeps our tracks and subscriptions.
//!
//! While a resume runs the engine's loop waits for it (sockets, commands and media are not
//! serviced: the path is down anyway). It is bounded by [`RESUME_ATTEMPTS`] ×
//! [`RESUME_ATTEMPT_TIMEOUT`]; a refusal (the server's `Leave`, an HTTP 4xx) ends it at once.

use super::*;

/// Resume attempts before the engine gives up (its owner then joins afresh).
pub(super) const RESUME_ATTEMPTS: u32 = 3;

/// How long one resume attempt may take (signal connect + `ReconnectResponse`).
pub(super) const RESUME_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(6);

/// What set a resume off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ResumeCause {
    /// The signal connection was lost.
    SignalLost,
    /// The server's `Leave` with action RESUME.
    ServerAsked,
    /// A peer connection stopped receiving anything while the signal was up (see
    /// [`super::liveness`]). `Resumed` is then announced once media arrives again, not when
    /// the signal is back.
    MediaDead(PeerRole),
}

impl ResumeCause {
    fn reconnect_reason(self) -> proto::ReconnectReason {
        match self {
            ResumeCause::SignalLost | ResumeCause::ServerAsked => {
                proto::ReconnectReason::RrSignalDisconnected
            }
            ResumeCause::MediaDead(PeerRole::Publisher) => {
                proto::ReconnectReason::RrPublisherFailed
            }
            ResumeCause::MediaDead(PeerRole::Subscriber) => {
                proto::ReconnectReason::RrSubscriberFailed
            }
        }
    }
}

impl Core {
    /// Resume the session on a new signal connection. `Err` says why it cannot be resumed.
    pub(super) async fn resume(
        &mut self,
        signal_events: &mut SignalEvents,
        why: &str,
        cause: ResumeCause,
    ) -> Result<(), String> {
        let started = Instant::now();
        info!("{why}; resuming ({cause:?})");
        self.emit(EngineEvent::Resuming {
            reason: why.to_owned(),
        });
        // Retire the old connection and whatever it left in the queue (its own close event
        // among them): nothing from it applies after the resume.
        self.signal.close().await;
        let mut stale = 0;
        while signal_events.try_recv().is_ok() {
            stale += 1;
        }
        if stale > 0 {
            debug!("dropped {stale} signal events of the lost connection");
        }

        let mut last_error = String::new();
        let mut response = None;
        for attempt in 1..=RESUME_ATTEMPTS {
            let restart = self.signal.restart(cause.reconnect_reason());
            match tokio::time::timeout(RESUME_ATTEMPT_TIMEOUT, restart).await {
                Ok(Ok(r)) => {
                    response = Some(r);
                    break;
                }
                Ok(Err(SignalError::LeaveRequest { reason, action })) => {
                    return Err(format!(
                        "the server refused the resume ({reason:?}, {action:?})"
                    ));
                }
                Ok(Err(SignalError::Client(status, message))) => {
                    let token = self.signal.token();
                    return Err(format!(
                        "the server refused the resume ({status}): {}",
                        connect::redact_token(&message, &token)
                    ));
                }
                Ok(Err(e)) => last_error = e.to_string(),
                Err(_) => last_error = format!("no answer within {RESUME_ATTEMPT_TIMEOUT:?}"),
            }
            info!("resume attempt {attempt} failed: {last_error}");
            if attempt < RESUME_ATTEMPTS {
                tokio::time::sleep(Duration::from_millis(300 * u64::from(attempt))).await;
            }
        }
        let Some(response) = response else {
            self.signal.close().await;
            return Err(format!(
                "resume failed after {RESUME_ATTEMPTS} attempts: {last_error}"
            ));
        };
        debug!(
            "reconnect response: {} ICE servers",
            response.ice_servers.len()
        );

        // ICE restart on the publisher (new credentials, same candidates); the answer comes
        // back as usual.
        self.pub_changes.push(PubChange::IceRestart);
        if let Err(e) = self.negotiate_publisher().await {
            self.signal.close().await;
            return Err(format!("the publisher's ICE restart failed: {e}"));
        }
        self.send_signal(proto::signal_request::Message::SyncState(self.sync_state()))
            .await;
        // Release what the signal client held while reconnecting (subscription changes, mutes).
        self.signal.set_reconnected().await;
        let took = started.elapsed();
        info!("resumed in {took:?} as {}", self.local.sid);
        // The loop read no datagram while resuming: give the liveness check a fresh window.
        let now = Instant::now();
        self.publisher.last_rx = now;
        self.subscriber.last_rx = now;
        if !matches!(cause, ResumeCause::MediaDead(_)) {
            self.emit(EngineEvent::Resumed { took });
        }
        Ok(())
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
