//! The supervisor task: runs the current engine, follows its events and the connection state,
//! hands subscriptions to the app's handles, and ends the session.

use super::*;

/// How a run of the current engine ended.
pub(super) enum Drive {
    Cancelled,
    Lost(String),
    Removed(String),
}

pub(super) struct Supervisor {
    pub(super) shared: Arc<Shared>,
    pub(super) out: mpsc::Sender<SessionEvent>,
    /// Must-deliver events waiting for the reader.
    pub(super) backlog: VecDeque<SessionEvent>,
    /// Epoch of the current engine (1 for the first).
    pub(super) epoch: u64,
    pub(super) events: EngineEvents,
    /// (publisher, subscriber) connected on the current engine.
    pub(super) transports: (bool, bool),
    /// When the current engine joined.
    pub(super) since: Instant,
    pub(super) connected: bool,
    pub(super) connected_once: bool,
    /// Rejoin attempts since the last time we were connected.
    pub(super) attempt: u32,
    /// Participant sid → identity, for the current engine.
    pub(super) identities: HashMap<String, String>,
    /// Track sid → (publisher identity, name), for the current engine.
    pub(super) track_names: HashMap<String, (String, String)>,
}

impl Supervisor {
    pub(super) async fn run(mut self) {
        let end = loop {
            match self.drive().await {
                Drive::Cancelled => break EndReason::Closed,
                Drive::Removed(reason) => break EndReason::RemovedByServer { reason },
                Drive::Lost(why) => {
                    warn!("session: connection lost: {why}");
                    self.drop_engine().await;
                    if !self.connected_once {
                        let error = Arc::new(SessionError::ConnectionLost {
                            url: self.shared.options.url.clone(),
                            reason: format!(
                                "the first connection was lost before it was up: {why}"
                            ),
                        });
                        break EndReason::Fatal { error };
                    }
                    match self.rejoin(why).await {
                        Ok(()) => {}
                        Err(end) => break end,
                    }
                }
            }
        };
        self.finish(end).await;
    }

    /// Run the current engine until it ends, forwarding its events.
    pub(super) async fn drive(&mut self) -> Drive {
        loop {
            let deadline = self.since + self.shared.options.transport_timeout;
            enum Wake {
                Cancelled,
                Sent,
                ReaderGone,
                Event(Option<EngineEvent>),
                Timeout,
            }
            let wake = tokio::select! {
                biased;
                _ = self.shared.cancel.cancelled() => Wake::Cancelled,
                permit = self.out.reserve(), if !self.backlog.is_empty() => match permit {
                    Ok(p) => {
                        if let Some(ev) = self.backlog.pop_front() {
                            p.send(ev);
                        }
                        Wake::Sent
                    }
                    Err(_) => Wake::ReaderGone,
                },
                ev = self.events.recv(), if self.backlog.len() < BACKLOG_MAX => Wake::Event(ev),
                _ = tokio::time::sleep_until(deadline.into()), if !self.connected => Wake::Timeout,
            };
            match wake {
                Wake::Cancelled => return Drive::Cancelled,
                Wake::Sent => {}
                Wake::ReaderGone => self.backlog.clear(),
                Wake::Event(None) => return Drive::Lost("the engine ended".into()),
                Wake::Event(Some(EngineEvent::Disconnected(reason))) => match reason {
                    DisconnectReason::ServerLeave {
                        reason,
                        reconnect: false,
                    } => return Drive::Removed(reason),
                    other => return Drive::Lost(describe(&other)),
                },
                Wake::Event(Some(ev)) => self.on_event(ev),
                Wake::Timeout => {
                    return Drive::Lost(format!(
                        "the media connections did not come up within {:?}",
                        self.shared.options.transport_timeout
                    ));
                }
            }
        }
    }

    pub(super) fn on_event(&mut self, ev: EngineEvent) {
        match ev {
            EngineEvent::Transport { role, state } => {
                let up = state == TransportState::Connected;
                match role {
                    PeerRole::Publisher => self.transports.0 = up,
                    PeerRole::Subscriber => self.transports.1 = up,
                }
                self.push(SessionEvent::Engine(EngineEvent::Transport { role, state }));
                if self.transports == (true, true) && !self.connected {
                    self.on_connected();
                }
            }
            EngineEvent::ParticipantJoined(p) => {
                self.identities.insert(p.sid.clone(), p.identity.clone());
                self.push(SessionEvent::Engine(EngineEvent::ParticipantJoined(p)));
            }
            EngineEvent::TrackPublished { participant, track } => {
                self.identities
                    .insert(participant.sid.clone(), participant.identity.clone());
                self.track_names.insert(
                    track.sid.clone(),
                    (participant.identity.clone(), track.name.clone()),
                );
                self.push(SessionEvent::Engine(EngineEvent::TrackPublished {
                    participant,
                    track,
                }));
            }
            EngineEvent::TrackUnpublished {
                participant_sid,
                track_sid,
            } => {
                self.end_remote(&track_sid);
                self.track_names.remove(&track_sid);
                self.push(SessionEvent::Engine(EngineEvent::TrackUnpublished {
                    participant_sid,
                    track_sid,
                }));
            }
            EngineEvent::TrackUnsubscribed { track_sid } => {
                self.end_remote(&track_sid);
                self.push(SessionEvent::Engine(EngineEvent::TrackUnsubscribed {
                    track_sid,
                }));
            }
            EngineEvent::TrackSubscribed(track) => self.on_subscribed(track),
            EngineEvent::ParticipantLeft(p) => {
                // Its tracks were unpublished just before (the engine says so first).
                self.identities.remove(&p.sid);
                self.push(SessionEvent::Engine(EngineEvent::ParticipantLeft(p)));
            }
            EngineEvent::Resuming { reason } => {
                warn!("session: signal lost, resuming: {reason}");
                self.connected = false;
                self.since = Instant::now();
                self.set_state(SessionState::Reconnecting {
                    attempt: self.attempt + 1,
                });
                self.push(SessionEvent::Engine(EngineEvent::Resuming { reason }));
            }
            EngineEvent::Resumed { took } => {
                info!("session: resumed in {took:?}");
                self.shared.resumes.fetch_add(1, Ordering::Relaxed);
                self.connected = true;
                self.attempt = 0;
                self.set_state(SessionState::Connected);
                self.push(SessionEvent::Engine(EngineEvent::Resumed { took }));
            }
            other => self.push(SessionEvent::Engine(other)),
        }
    }

    pub(super) fn on_connected(&mut self) {
        self.connected = true;
        self.connected_once = true;
        if self.attempt > 0 {
            self.shared.rejoins.fetch_add(1, Ordering::Relaxed);
        }
        self.attempt = 0;
        self.set_state(SessionState::Connected);
        // Tracks the app published on the old engine while we rejoined get published by the
        // next pass; warn if any are left behind.
        let stale = lock(&self.shared.published)
            .iter()
            .filter(|s| !s.is_unpublished() && s.epoch() < self.epoch)
            .count();
        if stale > 0 {
            warn!("{stale} tracks were published on the old engine during the rejoin");
        }
    }

    pub(super) fn end_remote(&mut self, track_sid: &str) {
        let subscribed = lock(&self.shared.subscribed);
        for slot in subscribed.values().filter_map(Weak::upgrade) {
            if slot.sid() == track_sid {
                slot.end();
            }
        }
    }

    pub(super) fn on_subscribed(&mut self, track: wavecast_rtc::RemoteTrack) {
        let (mut identity, mut name) = (
            track.participant_identity().to_owned(),
            track.name().to_owned(),
        );
        if let Some((i, n)) = self.track_names.get(track.sid()) {
            if identity.is_empty() {
                identity = i.clone();
            }
            if name.is_empty() {
                name = n.clone();
            }
        }
        if identity.is_empty() {
            identity = self
                .identities
                .get(track.participant_sid())
                .cloned()
                .unwrap_or_default();
        }
        if identity.is_empty() || name.is_empty() {
            // Unnamed yet: key by sids (such a handle cannot follow a rejoin).
            debug!("track {} subscribed before it was named", track.sid());
            if identity.is_empty() {
                identity = track.participant_sid().to_owned();
            }
            if name.is_empty() {
                name = track.sid().to_owned();
            }
        }
        let key = TrackKey {
            identity,
            name,
            kind: track.kind(),
        };
        let sid = track.sid().to_owned();
        let existing = lock(&self.shared.subscribed)
            .get(&key)
            .and_then(Weak::upgrade)
            .filter(|s| !s.is_ended());
        match existing {
            Some(slot) => {
                info!("session: {key} flows again as {sid}");
                slot.rebind(track);
                self.push(SessionEvent::TrackResubscribed {
                    key,
                    track_sid: sid,
                });
            }
            None => {
                let slot = RemoteSlot::new(key.clone(), sid, self.shared.e2ee.clone());
                let mut subscribed = lock(&self.shared.subscribed);
                subscribed.retain(|_, w| w.strong_count() > 0);
                subscribed.insert(key, Arc::downgrade(&slot));
                drop(subscribed);
                self.push(SessionEvent::TrackSubscribed(SubscribedTrack::new(
                    slot, track,
                )));
            }
        }
    }

    pub(super) async fn finish(mut self, end: EndReason) {
        let engine = lock(&self.shared.engine).take();
        if let Some((_, engine)) = engine {
            shutdown_engine(engine, self.shared.options.close_grace).await;
        }
        for slot in lock(&self.shared.published).iter() {
            slot.mark_unpublished();
        }
        for slot in lock(&self.shared.subscribed)
            .values()
            .filter_map(Weak::upgrade)
        {
            slot.end();
        }
        self.set_state(SessionState::Disconnected { reason: end });
        // Best effort: hand the reader what is left, without waiting.
        while let Some(ev) = self.backlog.pop_front() {
            if self.out.try_send(ev).is_err() {
                self.shared
                    .dropped_events
                    .fetch_add(1 + self.backlog.len() as u64, Ordering::Relaxed);
                break;
            }
        }
    }
}

/// The engine's reason, in words.
pub(super) fn describe(reason: &DisconnectReason) -> String {
    match reason {
        DisconnectReason::ClientInitiated => "the engine was closed".into(),
        DisconnectReason::ServerLeave { reason, .. } => {
            format!("the server asked us to reconnect ({reason})")
        }
        DisconnectReason::SignalClosed(why) => format!("the signal connection closed ({why})"),
        DisconnectReason::TransportFailed(role) => format!("the {role} connection failed"),
    }
}

/// A supervisor on no engine, for unit tests of its pure parts.
#[cfg(test)]
pub(super) fn test_supervisor(capacity: usize) -> (Supervisor, SessionEvents) {
    let options = SessionOptions::new("ws://127.0.0.1:1", Credentials::token("t"));
    let shared = Arc::new(Shared::new(options, None));
    let (out, rx) = mpsc::channel(capacity);
    let (_engine_tx, events) = mpsc::channel(1);
    let sup = Supervisor {
        shared,
        out,
        backlog: VecDeque::new(),
        epoch: 1,
        events,
        transports: (false, false),
        since: Instant::now(),
        connected: false,
        connected_once: false,
        attempt: 0,
        identities: HashMap::new(),
        track_names: HashMap::new(),
    };
    (sup, rx)
}
