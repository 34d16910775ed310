//! The grid's task: one [`Member`] (decoded outputs and the flags a tile shows) per remote
//! participant of the [`Room`]'s roster, and a decoder for every subscribed track. Who is here,
//! what they publish, mute and quality are read from the room's handles; this module keeps only
//! what a tile needs on top (outputs, decoders, the speaking flag).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use wavecast_session::{
    Quality, RemoteParticipant, Room, RoomEvent, SubscribedTrack, TrackKind, TrackSource,
};
use wavecast_visualizer::ConnectionQuality;
use wavecast_visualizer::scenes::TileSizes;

use crate::captions::{self, Captions};
use crate::chat;
use crate::connection::{Connector, Followed};
use wavecast_stream::receive::{
    self, AudioOut, AudioStreamStats, Decoder, ReceiveLimits, ReceiveOptions, VideoOut,
    VideoStreamStats,
};

/// One remote participant as the grid shows it.
#[derive(Debug)]
pub struct Member {
    /// Server sid.
    pub sid: String,
    /// Identity.
    pub identity: String,
    /// Display name (falls back to the identity).
    pub name: String,
    /// When we first saw them.
    pub joined: Instant,
    /// Decoded video.
    pub video: Arc<VideoOut>,
    /// Decoded audio.
    pub audio: Arc<AudioOut>,
    /// A video track is subscribed and not muted.
    pub video_on: AtomicBool,
    /// No microphone track, or it is muted.
    pub mic_muted: AtomicBool,
    /// Publishes a screen share.
    pub screen_share: AtomicBool,
    /// The server lists them among the active speakers.
    pub speaking: AtomicBool,
    /// [`ConnectionQuality::level`].
    pub quality: AtomicU8,
}

/// A participant's display name: their name, else their identity.
fn display_name(p: &RemoteParticipant) -> String {
    let name = p.name();
    if name.is_empty() {
        p.identity().to_string()
    } else {
        name
    }
}

impl Member {
    fn new(identity: &str, sid: String, name: String) -> Self {
        Self {
            sid,
            identity: identity.to_owned(),
            name,
            joined: Instant::now(),
            video: Arc::new(VideoOut::default()),
            audio: Arc::new(AudioOut::new(false)),
            video_on: AtomicBool::new(false),
            mic_muted: AtomicBool::new(true),
            screen_share: AtomicBool::new(false),
            speaking: AtomicBool::new(false),
            quality: AtomicU8::new(0),
        }
    }
}

impl Member {
    /// The same member under a new display name (outputs and flags carried over).
    fn renamed(&self, name: String) -> Self {
        let b = |a: &AtomicBool| AtomicBool::new(a.load(Ordering::Relaxed));
        Self {
            sid: self.sid.clone(),
            identity: self.identity.clone(),
            name,
            joined: self.joined,
            video: self.video.clone(),
            audio: self.audio.clone(),
            video_on: b(&self.video_on),
            mic_muted: b(&self.mic_muted),
            screen_share: b(&self.screen_share),
            speaking: b(&self.speaking),
            quality: AtomicU8::new(self.quality.load(Ordering::Relaxed)),
        }
    }
}

/// The roster the scene reads: replaced (never mutated) when someone joins or leaves.
pub type Roster = Arc<Vec<Arc<Member>>>;

/// What the task returns.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Every decoded video stream.
    pub video: Vec<VideoStreamStats>,
    /// Every decoded audio stream.
    pub audio: Vec<AudioStreamStats>,
    /// Rejoins.
    pub reconnects: u64,
    /// Subscribed tracks not decoded because [`ReceiveLimits::max_tracks`] decoders were running
    /// (their forwarding is paused at the server).
    pub refused_tracks: u64,
    /// Exit code and message when connecting failed for good.
    pub failure: Option<(u8, String)>,
    /// Room name.
    pub room: String,
}

/// Members are keyed by identity (sids change when the session rejoins a restarted server).
///
/// Bounded against a hostile room: at most `limits.max_tracks` decoder threads run at once, and
/// at most one per participant and kind (the member has one picture and one sound); a second
/// track of the same kind waits (at most `max_tracks` of them, the newest beyond are dropped)
/// until the first one's decoder ended. Every map is pruned when its participant or track goes.
#[derive(Default)]
struct State {
    limits: ReceiveLimits,
    /// Tracks waiting for their member's decoder of the same kind to end.
    waiting: Vec<SubscribedTrack>,
    /// Tracks refused for want of decoder slots.
    refused: u64,
    members: Vec<Arc<Member>>,
    /// identity → kinds with a live decoder.
    decoding: HashMap<String, Vec<TrackKind>>,
    video: Vec<Decoder<VideoStreamStats>>,
    audio: Vec<Decoder<AudioStreamStats>>,
    finished_video: Vec<VideoStreamStats>,
    finished_audio: Vec<AudioStreamStats>,
    /// identity → the sid of the video track decoded for its tile.
    shown_video: HashMap<String, String>,
    /// sid → the size last asked of the server for it (adaptive stream).
    asked: HashMap<String, (u32, u32)>,
}

/// What the room task asks of the server for a track.
#[derive(Debug, PartialEq, Eq)]
enum Ask {
    /// Stop forwarding it: not shown (no decoder slot, or its member shows another).
    Pause(String),
    /// Forward it again: it is shown now.
    Resume(String),
    /// The layer for a tile of this size.
    Fit(String, u32, u32),
}

impl State {
    /// Follows the room's roster: a member for each new participant, none for those who left,
    /// a new display name kept with the member's outputs. Returns whether the list changed.
    fn sync(&mut self, room: &Room) -> bool {
        let present = room.remote_participants();
        let before = self.members.len();
        self.members
            .retain(|m| present.iter().any(|p| p.identity().as_str() == m.identity));
        let mut changed = before != self.members.len();
        let members = &self.members;
        self.waiting
            .retain(|t| members.iter().any(|m| m.identity == t.key().identity));
        for p in &present {
            let name = display_name(p);
            match self
                .members
                .iter_mut()
                .find(|m| m.identity == p.identity().as_str())
            {
                Some(m) if m.name != name => {
                    // Names can arrive after the first sighting: replace the member, keeping
                    // its outputs and flags.
                    *m = Arc::new(m.renamed(name));
                    changed = true;
                }
                Some(_) => {}
                None => {
                    tracing::info!("{} joined", p.identity());
                    let sid = p.sid().into_string();
                    self.members
                        .push(Arc::new(Member::new(p.identity(), sid, name)));
                    changed = true;
                }
            }
        }
        changed
    }

    /// The tile flags from the room's handles (mute, screen share, quality).
    fn refresh_flags(&self, room: &Room) {
        for m in &self.members {
            let Some(p) = room.remote_participant(&m.identity) else {
                continue;
            };
            let publications = p.track_publications();
            let mine = || publications.values();
            let decoding_video = self
                .decoding
                .get(&m.identity)
                .is_some_and(|k| k.contains(&TrackKind::Video));
            let video_muted = mine().any(|t| t.kind() == Some(TrackKind::Video) && t.is_muted());
            let mic_on = mine().any(|t| t.kind() == Some(TrackKind::Audio) && !t.is_muted());
            let share = mine().any(|t| t.source() == TrackSource::ScreenShare && !t.is_muted());
            m.video_on
                .store(decoding_video && !video_muted, Ordering::Relaxed);
            m.mic_muted.store(!mic_on, Ordering::Relaxed);
            m.screen_share.store(share, Ordering::Relaxed);
            if let Some(q) = p.connection_quality() {
                m.quality.store(tile_quality(q).level(), Ordering::Relaxed);
            }
        }
    }

    fn decoding(&self, identity: &str, kind: TrackKind) -> bool {
        self.decoding
            .get(identity)
            .is_some_and(|k| k.contains(&kind))
    }

    /// Starts decoding `track`, or parks it while its member already decodes that kind.
    /// Returns the sid of a track not shown (refused for want of decoder slots, or parked):
    /// its forwarding is paused.
    fn subscribe(&mut self, track: SubscribedTrack) -> Option<String> {
        if self.decoding(&track.key().identity, track.kind()) {
            if self.waiting.len() < self.limits.max_tracks {
                tracing::debug!("{} waits for the decoder of {}", track.sid(), track.key());
                let sid = track.sid();
                self.waiting.push(track);
                return Some(sid);
            }
            return self.refuse(track);
        }
        if self.video.len() + self.audio.len() >= self.limits.max_tracks {
            return self.refuse(track);
        }
        self.start(track);
        None
    }

    fn refuse(&mut self, track: SubscribedTrack) -> Option<String> {
        if self.refused == 0 {
            tracing::warn!(
                "not decoding {}: {} tracks are decoded already (the limit)",
                track.key(),
                self.limits.max_tracks
            );
        } else {
            tracing::debug!("not decoding {}: at the track limit", track.key());
        }
        self.refused += 1;
        Some(track.sid())
    }

    fn start(&mut self, track: SubscribedTrack) {
        let identity = track.key().identity.clone();
        let m = match self.members.iter().find(|m| m.identity == identity) {
            Some(m) => m.clone(),
            None => {
                // Subscribed before the roster announced them.
                let m = Arc::new(Member::new(&identity, String::new(), identity.clone()));
                self.members.push(m.clone());
                m
            }
        };
        let (kind, sid) = (track.kind(), track.sid());
        tracing::info!("decoding {kind:?} track {sid} of {identity}");
        if kind == TrackKind::Video {
            self.shown_video.insert(identity.clone(), sid.clone());
        }
        let options = ReceiveOptions::from(self.limits);
        let started = match kind {
            TrackKind::Video => receive::spawn_video(track, m.video.clone(), None, options)
                .map(|h| self.video.push(h)),
            TrackKind::Audio => receive::spawn_audio(track, m.audio.clone(), 1, None, options)
                .map(|h| self.audio.push(h)),
        };
        match started {
            Ok(()) => self.decoding.entry(identity).or_default().push(kind),
            Err(e) => tracing::error!("{e:#}"),
        }
    }

    /// Forgets decoders whose tracks ended (their video stops showing).
    fn reap(&mut self) {
        let mut ended: Vec<(String, TrackKind)> = Vec::new();
        let (done_v, live_v): (Vec<_>, Vec<_>) =
            self.video.drain(..).partition(|h| h.is_finished());
        self.video = live_v;
        for h in done_v {
            if let Ok((s, _)) = h.join() {
                ended.push((s.participant.clone(), TrackKind::Video));
                self.finished_video.push(s);
            }
        }
        let (done_a, live_a): (Vec<_>, Vec<_>) =
            self.audio.drain(..).partition(|h| h.is_finished());
        self.audio = live_a;
        for h in done_a {
            if let Ok((s, _)) = h.join() {
                ended.push((s.participant.clone(), TrackKind::Audio));
                self.finished_audio.push(s);
            }
        }
        for (who, kind) in ended {
            if kind == TrackKind::Video {
                self.shown_video.remove(&who);
            }
            if let Some(k) = self.decoding.get_mut(&who)
                && let Some(i) = k.iter().position(|x| *x == kind)
            {
                k.remove(i);
            }
        }
        self.decoding.retain(|_, k| !k.is_empty());
    }

    /// What to ask of the server now: the layer that fits each shown video's tile (only when
    /// the size changed), and forwarding again for tracks taken off the waiting list.
    fn asks(&mut self, tiles: &[(String, u32, u32)], resumed: Vec<String>) -> Vec<Ask> {
        let mut out: Vec<Ask> = resumed.into_iter().map(Ask::Resume).collect();
        self.asked
            .retain(|sid, _| self.shown_video.values().any(|s| s == sid));
        for (identity, w, h) in tiles {
            let Some(sid) = self.shown_video.get(identity) else {
                continue;
            };
            if *w == 0 || *h == 0 || self.asked.get(sid) == Some(&(*w, *h)) {
                continue;
            }
            self.asked.insert(sid.clone(), (*w, *h));
            out.push(Ask::Fit(sid.clone(), *w, *h));
        }
        out
    }

    /// Starts the waiting tracks whose member's decoder of that kind ended; returns their sids
    /// (paused while they waited).
    fn start_waiting(&mut self) -> Vec<String> {
        let mut resumed = Vec::new();
        let mut i = 0;
        while i < self.waiting.len() {
            let t = &self.waiting[i];
            let free = self.video.len() + self.audio.len() < self.limits.max_tracks;
            if free && !self.decoding(&t.key().identity, t.kind()) {
                let mut t = self.waiting.remove(i);
                // Frames that queued while waiting are stale.
                while t.try_recv().is_some() {}
                resumed.push(t.sid());
                self.start(t);
            } else {
                i += 1;
            }
        }
        resumed
    }
}

/// Runs until `stop` turns true or the session ends, decoding within `limits` and showing
/// chat and transcriptions in `captions`.
///
/// Adaptive stream: each shown video is received in the layer that fits its tile (`tiles`:
/// the grid's tile sizes by identity, as the scene last drew them), and tracks not shown —
/// no decoder slot, or a member's second video — are paused at the server.
pub async fn run(
    connector: Arc<Connector>,
    roster: watch::Sender<Roster>,
    limits: ReceiveLimits,
    captions: Captions,
    tiles: TileSizes,
    mut stop: watch::Receiver<bool>,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut st = State {
        limits,
        ..Default::default()
    };
    let connected = tokio::select! {
        r = connector.connect() => Some(r),
        _ = stop.wait_for(|s| *s) => None,
    };
    match connected {
        None => {}
        Some(Err(e)) => outcome.failure = Some((e.exit_code(), e.to_string())),
        Some(Ok((room, mut events))) => {
            outcome.room = room.name().unwrap_or_default();
            st.sync(&room);
            roster.send_replace(Arc::new(st.members.clone()));
            let mut texts = chat::listen(&room)
                .inspect_err(|e| tracing::warn!("no captions: {e}"))
                .ok();
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                let mut asks = Vec::new();
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
                        match ev {
                            RoomEvent::TrackSubscribed { track, .. } => {
                                asks.extend(st.subscribe(track).map(Ask::Pause));
                            }
                            RoomEvent::TrackUnpublished { publication, .. } => {
                                st.waiting.retain(|t| t.sid() != publication.sid().as_str());
                            }
                            RoomEvent::ActiveSpeakersChanged { speakers } => {
                                for m in &st.members {
                                    let on = speakers.iter().any(|s| !s.local && s.identity == m.identity);
                                    m.speaking.store(on, Ordering::Relaxed);
                                }
                            }
                            _ => {}
                        }
                    }
                    _ = tick.tick() => {
                        st.reap();
                        let resumed = st.start_waiting();
                        asks = st.asks(&tiles.get(), resumed);
                    }
                    _ = stop.wait_for(|s| *s) => break,
                }
                for ask in asks {
                    tell_server(&room, ask).await;
                }
                let changed = st.sync(&room);
                st.refresh_flags(&room);
                if changed {
                    roster.send_replace(Arc::new(st.members.clone()));
                }
            }
            outcome.reconnects = room.stats().rejoins;
            outcome.refused_tracks = st.refused;
            st.waiting.clear();
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
    let mut video = std::mem::take(&mut st.video);
    let mut audio = std::mem::take(&mut st.audio);
    let mut done_v = std::mem::take(&mut st.finished_video);
    let mut done_a = std::mem::take(&mut st.finished_audio);
    let joined = tokio::task::spawn_blocking(move || {
        done_v.extend(
            video
                .drain(..)
                .filter_map(|h| h.join().ok().map(|(s, _)| s)),
        );
        done_a.extend(
            audio
                .drain(..)
                .filter_map(|h| h.join().ok().map(|(s, _)| s)),
        );
        (done_v, done_a)
    })
    .await
    .unwrap_or_default();
    outcome.video = joined.0;
    outcome.audio = joined.1;
    outcome
}

/// Ask the server to pause, resume, or fit a track to its tile (1 s at most: the room task
/// goes on either way).
async fn tell_server(room: &Room, ask: Ask) {
    let sid = match &ask {
        Ask::Pause(s) | Ask::Resume(s) | Ask::Fit(s, ..) => s.clone(),
    };
    let Some(publication) = room
        .remote_participants()
        .iter()
        .find_map(|p| p.track_publication(&sid))
    else {
        tracing::debug!("{ask:?}: its publication is gone");
        return;
    };
    let sent = async {
        match ask {
            Ask::Pause(_) => room.set_enabled(&publication, false).await,
            Ask::Resume(_) => room.set_enabled(&publication, true).await,
            Ask::Fit(_, w, h) => {
                tracing::debug!("asking for the layer of {sid} that fits {w}x{h}");
                room.set_video_dimensions(&publication, w, h).await
            }
        }
    };
    match tokio::time::timeout(Duration::from_secs(1), sent).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!("asking the server about {sid}: {e}"),
        Err(_) => tracing::debug!("asking the server about {sid}: no answer in 1 s"),
    }
}

/// The grid's quality scale for the server's.
fn tile_quality(q: Quality) -> ConnectionQuality {
    match q {
        Quality::Excellent => ConnectionQuality::Excellent,
        Quality::Good => ConnectionQuality::Good,
        Quality::Poor => ConnectionQuality::Poor,
        Quality::Lost => ConnectionQuality::Lost,
    }
}
