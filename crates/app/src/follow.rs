//! Participant following: join (the room reconnects by itself), pick the participant to watch —
//! the one named, else the first that publishes — follow the next publisher when it leaves, and
//! run one decoder thread per watched track ([`Decoders`], which hand the recorders along).
//! Who is in the room and what they publish is the [`Room`]'s roster; this module only keeps
//! the tracks waiting for their decoder.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use wavecast_session::{Room, RoomEvent, SubscribedTrack, TrackKind};

use crate::captions::{self, Captions};
use crate::chat;
use crate::connection::{Connector, Followed};

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

/// How the room task ended.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Streams.
    pub finished: Finished,
    /// Rejoins made.
    pub reconnects: u64,
    /// End-to-end encryption counters.
    pub e2ee: wavecast_session::E2eeStats,
    /// When the task ended because it could not connect: exit code and message.
    pub failure: Option<(u8, String)>,
    /// Room name.
    pub room: String,
}

/// The tracks waiting for a decoder, and whom we watch (by identity: sids change when the
/// room rejoins a restarted server, identities do not).
#[derive(Default)]
struct Following {
    /// Subscribed tracks not (yet) decoded: at most `ReceiveLimits::max_tracks`, newer ones are
    /// dropped; pruned when their track is unpublished or their owner leaves.
    parked: Vec<SubscribedTrack>,
    /// Tracks dropped because `parked` was full.
    dropped: u64,
    watched: Option<String>,
}

impl Following {
    fn watching(&self, room: &Room) -> Watching {
        let participants = room.remote_participants().len();
        let name = room.name().unwrap_or_default();
        let Some(identity) = &self.watched else {
            return Watching {
                participants,
                room: name,
                ..Default::default()
            };
        };
        let p = room.remote_participant(identity);
        let muted = |kind| {
            p.as_ref()
                .and_then(|p| p.publication_of_kind(kind))
                .is_some_and(|t| t.is_muted())
        };
        Watching {
            identity: Some(identity.clone()),
            name: p.as_ref().map(|p| p.name()).unwrap_or_default(),
            quality: p
                .as_ref()
                .and_then(|p| p.connection_quality())
                .map(|q| format!("{q:?}").to_lowercase()),
            audio_muted: muted(TrackKind::Audio),
            video_muted: muted(TrackKind::Video),
            participants,
            room: name,
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

    /// Applies one room event to the waiting tracks and the watched participant.
    fn on_event(&mut self, ev: RoomEvent, max_tracks: usize) {
        match ev {
            RoomEvent::TrackSubscribed { track, .. } => self.park(track, max_tracks),
            RoomEvent::TrackUnpublished { publication, .. } => {
                self.parked
                    .retain(|t| t.sid() != publication.sid().as_str());
            }
            RoomEvent::ParticipantDisconnected(p) => {
                tracing::info!("{} left", p.identity());
                self.parked
                    .retain(|t| t.key().identity != p.identity().as_str());
                if self.watched.as_deref() == Some(p.identity().as_str()) {
                    self.watched = None;
                    tracing::info!("the watched participant left; following the next publisher");
                }
            }
            _ => {}
        }
    }

    /// Chooses whom to watch and starts decoders for their waiting tracks.
    fn pick(&mut self, decs: &mut Decoders, out: &Outputs, want: Option<&str>) {
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
                decs.start(t, out);
                continue;
            }
            i += 1;
        }
    }
}

/// Runs until `stop` turns true or the room ends, showing chat and transcriptions in
/// `captions`.
pub async fn run(
    connector: Arc<Connector>,
    out: Outputs,
    mut decs: Decoders,
    watching: watch::Sender<Watching>,
    want: Option<String>,
    captions: Captions,
    mut stop: watch::Receiver<bool>,
) -> Outcome {
    let mut outcome = Outcome::default();
    let connected = tokio::select! {
        r = connector.connect() => Some(r),
        _ = stop.wait_for(|s| *s) => None,
    };
    match connected {
        None => {}
        Some(Err(e)) => outcome.failure = Some((e.exit_code(), e.to_string())),
        Some(Ok((room, mut events))) => {
            let mut following = Following::default();
            outcome.room = room.name().unwrap_or_default();
            watching.send_replace(following.watching(&room));
            let max_tracks = decs.limits().max_tracks;
            let mut texts = chat::listen(&room)
                .inspect_err(|e| tracing::warn!("no captions: {e}"))
                .ok();
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    Some((reader, sender)) = chat::next(&mut texts) => {
                        captions::show(&room, &captions, reader, sender);
                    }
                    ev = events.recv() => {
                        let Some(ev) = ev else { break };
                        if let Followed::Ended { failure } = connector.follow(&ev) {
                            outcome.failure = failure;
                            break;
                        }
                        following.on_event(ev, max_tracks);
                    }
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                following.pick(&mut decs, &out, want.as_deref());
                watching.send_replace(following.watching(&room));
            }
            outcome.reconnects = room.stats().rejoins;
            outcome.e2ee = room.stats().e2ee;
            drop(following);
            tracing::info!("leaving the room");
            if tokio::time::timeout(Duration::from_secs(5), room.close())
                .await
                .is_err()
            {
                tracing::warn!("the room did not close within 5 s");
            }
        }
    }
    connector.left();
    outcome.finished = tokio::task::spawn_blocking(move || decs.finish())
        .await
        .unwrap_or_default();
    outcome
}
