//! Participant following: connect (and reconnect), pick the participant to watch — the one named,
//! else the first that publishes — follow the next publisher when it leaves, and run one decoder
//! thread per watched track ([`Decoders`], which hand the recorders along).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::watch;
use wavecast_session::engine::Participant;
use wavecast_session::{EngineEvent, Quality, TrackKind};
use wavecast_session::{SessionEvent, SessionState, SubscribedTrack};

use crate::connection::{ConnState, Connector, end_failure};

/// Who is being watched (set by [`run`]; a plain struct a scene shows).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Watching {
    /// Identity of the watched participant.
    pub identity: Option<String>,
    /// Display name.
    pub name: String,
    /// Their connection quality as the server reports it.
    pub quality: Option<String>,
    /// Their audio track is muted.
    pub audio_muted: bool,
    /// Their video track is muted.
    pub video_muted: bool,
    /// Remote participants in the room.
    pub participants: usize,
    /// Room name.
    pub room: String,
}
use wavecast_stream::decoders::{Decoders, Finished, Outputs};
use wavecast_stream::receive;

/// How the room task ended.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Streams.
    pub finished: Finished,
    /// Rejoins made.
    pub reconnects: u64,
    /// When the task ended because it could not connect: exit code and message.
    pub failure: Option<(u8, String)>,
    /// Room name.
    pub room: String,
}

/// The room's bookkeeping. Participants are followed by identity: sids change when the server
/// restarts and the session rejoins, identities do not.
#[derive(Default)]
struct RoomState {
    /// sid → participant (current connection).
    participants: HashMap<String, Participant>,
    /// Subscribed tracks not (yet) decoded: at most `ReceiveLimits::max_tracks`, newer ones are
    /// dropped; pruned when their track is unpublished or their owner leaves.
    parked: Vec<SubscribedTrack>,
    /// Tracks dropped because `parked` was full.
    dropped: u64,
    watched: Option<String>,
    /// participant sid → quality.
    quality: HashMap<String, Quality>,
    /// track sid → (owner identity, kind, muted).
    track_muted: HashMap<String, (String, TrackKind, bool)>,
    room: String,
}

impl RoomState {
    fn watching(&self) -> Watching {
        let Some(identity) = &self.watched else {
            return Watching {
                participants: self.participants.len(),
                room: self.room.clone(),
                ..Default::default()
            };
        };
        let p = self.participants.values().find(|p| p.identity == *identity);
        let muted = |kind| {
            self.track_muted
                .values()
                .any(|(owner, k, m)| owner == identity && *k == kind && *m)
        };
        Watching {
            identity: Some(identity.clone()),
            name: p.map(|p| p.name.clone()).unwrap_or_default(),
            quality: p
                .and_then(|p| self.quality.get(&p.sid))
                .map(|q| format!("{q:?}").to_lowercase()),
            audio_muted: muted(TrackKind::Audio),
            video_muted: muted(TrackKind::Video),
            participants: self.participants.len(),
            room: self.room.clone(),
        }
    }

    fn park(&mut self, t: SubscribedTrack, max: usize) {
        if self.parked.len() < max {
            self.parked.push(t);
            return;
        }
        if self.dropped == 0 {
            tracing::warn!(
                "not keeping {}: {max} subscribed tracks wait already",
                t.key()
            );
        }
        self.dropped += 1;
    }

    /// Chooses whom to watch and starts decoders for their waiting tracks.
    fn pick(&mut self, decs: &mut Decoders, out: &Outputs, want: Option<&str>, rt: &Handle) {
        decs.reap();
        if self.watched.is_none() {
            let candidate = self.parked.iter().find(|t| match want {
                Some(w) => t.key().identity == w,
                None => true,
            });
            if let Some(t) = candidate {
                tracing::info!("watching {}", t.key().identity);
                self.watched = Some(t.key().identity.clone());
            }
        }
        let Some(w) = self.watched.clone() else {
            return;
        };
        let mut i = 0;
        while i < self.parked.len() {
            let t = &self.parked[i];
            if t.key().identity == w && !decs.busy(t.kind()) {
                let mut t = self.parked.remove(i);
                // Frames that queued while parked are stale: drop them.
                while t.try_recv().is_some() {}
                let (kind, sid) = (t.kind(), t.sid());
                tracing::info!("decoding {kind:?} track {sid} of {w}");
                let source = receive::SessionTrack {
                    track: t,
                    runtime: rt.clone(),
                };
                decs.start(kind, source, out, w.clone(), sid);
                continue;
            }
            i += 1;
        }
    }
}

/// Runs until `stop` turns true or the session ends.
pub async fn run(
    connector: Arc<Connector>,
    out: Outputs,
    mut decs: Decoders,
    watching: watch::Sender<Watching>,
    want: Option<String>,
    mut stop: watch::Receiver<bool>,
) -> Outcome {
    let mut outcome = Outcome::default();
    let rt = Handle::current();
    let connected = tokio::select! {
        r = connector.connect() => Some(r),
        _ = stop.wait_for(|s| *s) => None,
    };
    match connected {
        None => {}
        Some(Err(e)) => outcome.failure = Some((e.exit_code(), e.to_string())),
        Some(Ok((session, mut events))) => {
            let mut room = RoomState {
                room: session.join_info().map(|j| j.room).unwrap_or_default(),
                ..Default::default()
            };
            outcome.room = room.room.clone();
            if let Some(j) = session.join_info() {
                for p in j.participants {
                    room.participants.insert(p.sid.clone(), p);
                }
            }
            watching.send_replace(room.watching());
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    ev = events.recv() => {
                        let Some(ev) = ev else { break };
                        match ev {
                            SessionEvent::State(SessionState::Disconnected { reason }) => {
                                outcome.failure = end_failure(&reason, connector.url());
                                break;
                            }
                            SessionEvent::State(SessionState::Reconnecting { .. }) => {
                                // The next engine reports the room afresh.
                                room.participants.clear();
                                room.quality.clear();
                            }
                            SessionEvent::TrackSubscribed(t) => room.park(t, decs.limits().max_tracks),
                            SessionEvent::Engine(ev) => match ev {
                                EngineEvent::ParticipantJoined(p) | EngineEvent::ParticipantUpdated(p) => {
                                    room.participants.insert(p.sid.clone(), p);
                                }
                                EngineEvent::ParticipantLeft(p) => {
                                    tracing::info!("{} left", p.identity);
                                    room.participants.remove(&p.sid);
                                    room.parked.retain(|t| t.key().identity != p.identity);
                                    room.track_muted.retain(|_, (owner, _, _)| *owner != p.identity);
                                    if room.watched.as_deref() == Some(p.identity.as_str()) {
                                        room.watched = None;
                                        tracing::info!("the watched participant left; following the next publisher");
                                    }
                                }
                                EngineEvent::TrackPublished { participant, track } => {
                                    if let Some(kind) = track.kind {
                                        room.track_muted.insert(track.sid.clone(), (participant.identity.clone(), kind, track.muted));
                                    }
                                    room.participants.entry(participant.sid.clone()).or_insert(participant);
                                }
                                EngineEvent::TrackUnpublished { track_sid, .. } => {
                                    room.track_muted.remove(&track_sid);
                                    room.parked.retain(|t| t.sid() != track_sid);
                                }
                                EngineEvent::TrackMuted { track_sid, muted, .. } => {
                                    if let Some(e) = room.track_muted.get_mut(&track_sid) {
                                        e.2 = muted;
                                    }
                                }
                                EngineEvent::ConnectionQuality(list) => {
                                    for (sid, q) in list {
                                        room.quality.insert(sid, q);
                                    }
                                }
                                _ => {}
                            },
                            _ => {}
                        }
                        room.pick(&mut decs, &out, want.as_deref(), &rt);
                        watching.send_replace(room.watching());
                    }
                    _ = tick.tick() => {
                        room.pick(&mut decs, &out, want.as_deref(), &rt);
                        watching.send_replace(room.watching());
                    }
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
            outcome.reconnects = session.stats().rejoins;
            drop(room);
            tracing::info!("leaving the room");
            if tokio::time::timeout(Duration::from_secs(5), session.close())
                .await
                .is_err()
            {
                tracing::warn!("the session did not close within 5 s");
            }
        }
    }
    if outcome.failure.is_none() {
        connector.set_state(ConnState::Disconnected {
            reason: "left the room".into(),
            exit_code: 0,
        });
    }
    outcome.finished = tokio::task::spawn_blocking(move || decs.finish())
        .await
        .unwrap_or_default();
    outcome
}
