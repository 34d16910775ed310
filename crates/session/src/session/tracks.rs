//! Track handles that outlive one engine: they re-bind to the new engine's tracks after a rejoin.
//!
//! The hot path (writing or reading a frame) touches only atomics and the engine's own bounded
//! queue: a handle caches the engine track it is bound to and looks at the shared slot (one
//! `Mutex`) only when the slot's generation counter moved, which happens once per rejoin.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::watch;
use wavecast_rtc::{EncodedFrame, LocalTrack, RemoteTrack, TrackKind, TrackOptions, WriteError};

use super::e2ee::{E2ee, E2eeState, Opener, Sealer};
use wavecast_e2ee::DecryptStats;

/// Lock a mutex, recovering the data if a holder panicked (the data is plain state).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A published track as the session remembers it, shared by every handle of it.
#[derive(Debug)]
pub(crate) struct LocalSlot {
    /// What to publish again after a rejoin (mute state kept current).
    pub(crate) options: Mutex<TrackOptions>,
    /// Bumped every time `current` changes.
    generation: AtomicU64,
    /// The engine track this publication is bound to, and the engine epoch it belongs to.
    current: Mutex<(Option<LocalTrack>, u64)>,
    /// The app unpublished it: never publish again.
    unpublished: AtomicBool,
    /// Frames dropped because no engine track was bound (while reconnecting).
    dropped_unbound: AtomicU64,
    /// Encrypts every frame written, when the session has end-to-end keys.
    sealer: Option<Sealer>,
}

impl LocalSlot {
    pub(crate) fn new(
        options: TrackOptions,
        track: LocalTrack,
        epoch: u64,
        sealer: Option<Sealer>,
    ) -> Arc<Self> {
        Arc::new(Self {
            options: Mutex::new(options),
            generation: AtomicU64::new(1),
            current: Mutex::new((Some(track), epoch)),
            unpublished: AtomicBool::new(false),
            dropped_unbound: AtomicU64::new(0),
            sealer,
        })
    }

    /// The frame as it goes to the engine: encrypted when the session has keys; `None` when
    /// it must be dropped (no key to encrypt with, counted in the session's e2ee stats).
    pub(crate) fn seal(&self, frame: Vec<u8>, rtp_time: u64) -> Option<Vec<u8>> {
        match &self.sealer {
            None => Some(frame),
            Some(s) => s.seal(&frame, rtp_time),
        }
    }

    /// Bind to a new engine track (after a rejoin).
    pub(crate) fn rebind(&self, track: LocalTrack, epoch: u64) {
        *lock(&self.current) = (Some(track), epoch);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Forget the engine track (its engine is gone).
    pub(crate) fn unbind(&self) {
        lock(&self.current).0 = None;
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn epoch(&self) -> u64 {
        lock(&self.current).1
    }

    pub(crate) fn current_sid(&self) -> Option<String> {
        lock(&self.current).0.as_ref().map(|t| t.sid().to_owned())
    }

    pub(crate) fn is_unpublished(&self) -> bool {
        self.unpublished.load(Ordering::Acquire)
    }

    pub(crate) fn mark_unpublished(&self) {
        self.unpublished.store(true, Ordering::Release);
        self.unbind();
    }

    pub(crate) fn name(&self) -> String {
        lock(&self.options).name.clone()
    }

    fn kind(&self) -> TrackKind {
        lock(&self.options).kind
    }
}

/// Why a frame was not handed to the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The session is reconnecting: the frame was dropped (counted in
    /// [`PublishedTrack::dropped`]); frames flow again after the rejoin.
    #[error("reconnecting: frame dropped")]
    Reconnecting,
    /// The engine's media queue is full: the frame was dropped (newest dropped, counted).
    #[error("media queue full: frame dropped")]
    Full,
    /// The track was unpublished or the session ended.
    #[error("the track is unpublished or the session ended")]
    Closed,
    /// End-to-end encryption has no key for our frames: the frame was dropped (counted in
    /// the session's e2ee stats); frames flow again once a key is set.
    #[error("no end-to-end key to encrypt with: frame dropped")]
    NoKey,
}

/// One of our published tracks, valid across rejoins: write encoded frames into it.
///
/// After a full rejoin the session publishes the track again and this handle writes to the new
/// publication by itself (the first video frame after that should be a keyframe:
/// [`PublishedTrack::take_keyframe_request`] says so). Cloning is cheap; each clone caches the
/// engine track it writes to.
#[derive(Debug, Clone)]
pub struct PublishedTrack {
    pub(crate) slot: Arc<LocalSlot>,
    cached: Option<LocalTrack>,
    cached_generation: u64,
    kind: TrackKind,
    name: Arc<str>,
}

impl PublishedTrack {
    pub(crate) fn new(slot: Arc<LocalSlot>) -> Self {
        let kind = slot.kind();
        let name: Arc<str> = slot.name().into();
        let mut t = Self {
            slot,
            cached: None,
            cached_generation: 0,
            kind,
            name,
        };
        t.refresh();
        t
    }

    /// Re-read the slot if it changed; returns the bound engine track, if any.
    fn refresh(&mut self) -> Option<&LocalTrack> {
        let generation = self.slot.generation.load(Ordering::Acquire);
        if generation != self.cached_generation {
            let current = lock(&self.slot.current);
            self.cached = current.0.clone();
            // Read again under the lock: a rebind in between bumps it after we read `current`.
            self.cached_generation = self.slot.generation.load(Ordering::Acquire);
        }
        self.cached.as_ref()
    }

    /// The engine track this handle writes to now (`None` while reconnecting). Its sid changes
    /// with every rejoin.
    pub fn engine_track(&mut self) -> Option<LocalTrack> {
        self.refresh().cloned()
    }

    /// Whether the handle was bound to a different engine track since the last call to
    /// [`PublishedTrack::generation`]; a number that changes with every (re)binding.
    pub fn generation(&self) -> u64 {
        self.slot.generation.load(Ordering::Acquire)
    }

    /// The track name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Audio or video.
    pub fn kind(&self) -> TrackKind {
        self.kind
    }

    /// The current server track sid (`None` while reconnecting or after unpublishing).
    pub fn sid(&self) -> Option<String> {
        self.slot.current_sid()
    }

    /// Whether it was unpublished (for good).
    pub fn is_unpublished(&self) -> bool {
        self.slot.is_unpublished()
    }

    /// Queue one encoded frame (see [`LocalTrack::write`]). Never blocks.
    pub fn write(
        &mut self,
        data: Vec<u8>,
        rtp_time: u64,
        capture: Instant,
    ) -> Result<(), SendError> {
        if self.slot.is_unpublished() {
            return Err(SendError::Closed);
        }
        let slot = self.slot.clone();
        let Some(track) = self.refresh() else {
            self.slot.dropped_unbound.fetch_add(1, Ordering::Relaxed);
            return Err(SendError::Reconnecting);
        };
        let Some(data) = slot.seal(data, rtp_time) else {
            return Err(SendError::NoKey);
        };
        match track.write(data, rtp_time, capture) {
            Ok(()) => Ok(()),
            Err(WriteError::Full) => Err(SendError::Full),
            // The engine ended: the supervisor will rebind (or close) this slot.
            Err(_) => {
                self.slot.dropped_unbound.fetch_add(1, Ordering::Relaxed);
                Err(SendError::Reconnecting)
            }
        }
    }

    /// Whether the remote side asked for a keyframe since the last call (always true right
    /// after a rebind). Clears the request.
    pub fn take_keyframe_request(&mut self) -> bool {
        self.refresh().is_some_and(|t| t.take_keyframe_request())
    }

    /// Frames dropped: by the engine queue of the current binding plus every frame written
    /// while no engine track was bound.
    pub fn dropped(&self) -> u64 {
        let bound = self.cached.as_ref().map_or(0, |t| t.dropped());
        bound + self.slot.dropped_unbound.load(Ordering::Relaxed)
    }
}

/// Who published a remote track, and which one: what stays the same across rejoins (sids do
/// not when the server restarted).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrackKey {
    /// The publisher's identity.
    pub identity: String,
    /// The track name.
    pub name: String,
    /// Audio or video.
    pub kind: TrackKind,
}

impl std::fmt::Display for TrackKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} ({:?})", self.identity, self.name, self.kind)
    }
}

/// A subscription as the session remembers it.
#[derive(Debug)]
pub(crate) struct RemoteSlot {
    pub(crate) key: TrackKey,
    /// A newer engine track waiting for the handle to pick it up.
    pending: Mutex<Option<RemoteTrack>>,
    /// The sid of the newest engine track given to this slot.
    sid: Mutex<String>,
    /// The track ended for good (unpublished by its owner, or the session ended).
    ended: AtomicBool,
    /// Bumped on every hand-over or end.
    notify: watch::Sender<u64>,
    rebinds: AtomicU64,
    /// The session's end-to-end encryption (keys, counters, reports).
    e2ee: Arc<E2ee>,
}

impl RemoteSlot {
    pub(crate) fn new(key: TrackKey, sid: String, e2ee: Arc<E2ee>) -> Arc<Self> {
        Arc::new(Self {
            key,
            pending: Mutex::new(None),
            sid: Mutex::new(sid),
            ended: AtomicBool::new(false),
            notify: watch::Sender::new(0),
            rebinds: AtomicU64::new(0),
            e2ee,
        })
    }

    /// Hand a new engine track to the handle (after a rejoin).
    pub(crate) fn rebind(&self, track: RemoteTrack) {
        *lock(&self.sid) = track.sid().to_owned();
        *lock(&self.pending) = Some(track);
        self.rebinds.fetch_add(1, Ordering::Relaxed);
        self.notify.send_modify(|g| *g += 1);
    }

    pub(crate) fn sid(&self) -> String {
        lock(&self.sid).clone()
    }

    pub(crate) fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// The track is gone for good: the handle returns `None` once drained.
    pub(crate) fn end(&self) {
        self.ended.store(true, Ordering::Release);
        self.notify.send_modify(|g| *g += 1);
    }
}

/// A remote track we receive, valid across rejoins: read its encoded frames.
///
/// When the session rejoins (or the publisher rejoins and publishes the same track again), the
/// session matches the new subscription by publisher identity, track name and kind, and this
/// handle continues with the new frames — no new `TrackSubscribed` event is raised for it.
/// [`SubscribedTrack::recv`] returns `None` only when the publisher unpublished the track while
/// we were connected, or the session ended.
#[derive(Debug)]
pub struct SubscribedTrack {
    slot: Arc<RemoteSlot>,
    current: Option<RemoteTrack>,
    changes: watch::Receiver<u64>,
    /// Moves of this handle to a new engine track.
    streams: u64,
    /// End-to-end decryption of the frames read.
    opener: Opener,
    /// The reader takes encrypted frames as they are when the session has no keys.
    pass_encrypted: bool,
}

impl SubscribedTrack {
    pub(crate) fn new(slot: Arc<RemoteSlot>, track: RemoteTrack) -> Self {
        let changes = slot.notify.subscribe();
        let mut opener = Opener::new(slot.e2ee.clone(), slot.key.kind);
        opener.configure(&slot.key, track.is_encrypted(), false);
        Self {
            slot,
            current: Some(track),
            changes,
            streams: 0,
            opener,
            pass_encrypted: false,
        }
    }

    /// Hand on the encrypted frames of an end-to-end encrypted track as they are when the
    /// session has no keys (instead of withholding them): for a recorder that stores what it
    /// receives. With keys, frames are decrypted either way.
    pub fn pass_encrypted(&mut self) {
        self.pass_encrypted = true;
        let encrypted = self.current.as_ref().is_some_and(|t| t.is_encrypted());
        self.opener.configure(&self.slot.key, encrypted, true);
    }

    /// Whether its frames arrive end-to-end encrypted (the publisher announced it).
    pub fn is_encrypted(&self) -> bool {
        self.opener.encrypted()
    }

    /// Its decryption's state as last reported (`None`: not encrypted, or nothing read yet).
    pub fn e2ee_state(&self) -> Option<E2eeState> {
        self.opener.state()
    }

    /// Counters of its decryption (`None` unless it is decrypted with the session's keys).
    pub fn e2ee_stats(&self) -> Option<DecryptStats> {
        self.opener.stats()
    }

    /// The frame as handed on (decrypted), or `None` when it is dropped.
    fn open(&mut self, frame: EncodedFrame) -> Option<EncodedFrame> {
        let sid = self.current.as_ref().map(|t| t.sid()).unwrap_or_default();
        self.opener.open(&self.slot.key, sid, frame)
    }

    /// Publisher identity, track name and kind.
    pub fn key(&self) -> &TrackKey {
        &self.slot.key
    }

    /// Audio or video.
    pub fn kind(&self) -> TrackKind {
        self.slot.key.kind
    }

    /// The current track sid (changes when the server restarted).
    pub fn sid(&self) -> String {
        self.slot.sid()
    }

    /// How many times this handle moved to a new engine track.
    pub fn rebinds(&self) -> u64 {
        self.slot.rebinds.load(Ordering::Relaxed)
    }

    /// How many times this handle has moved to a new engine track so far: frames read after a
    /// move belong to a new RTP stream (its times do not continue the old one's). Decoders
    /// that follow RTP time start over when this changes.
    pub fn streams(&self) -> u64 {
        self.streams
    }

    fn take_pending(&mut self) -> bool {
        if let Some(t) = lock(&self.slot.pending).take() {
            self.opener
                .configure(&self.slot.key, t.is_encrypted(), self.pass_encrypted);
            self.current = Some(t);
            self.streams += 1;
            true
        } else {
            false
        }
    }

    /// The next frame; waits across a rejoin. `None` once the track ended for good.
    pub async fn recv(&mut self) -> Option<EncodedFrame> {
        loop {
            if let Some(t) = self.current.as_mut() {
                if let Some(f) = t.recv().await {
                    match self.open(f) {
                        Some(f) => return Some(f),
                        None => continue, // did not decrypt: dropped
                    }
                }
                self.current = None;
            }
            // Ended (engine gone or track unsubscribed): wait for a replacement or the end.
            loop {
                if self.take_pending() {
                    break;
                }
                if self.slot.ended.load(Ordering::Acquire) {
                    return None;
                }
                if self.changes.changed().await.is_err() {
                    return None;
                }
            }
        }
    }

    /// A frame if one is waiting now (does not wait across a rejoin).
    pub fn try_recv(&mut self) -> Option<EncodedFrame> {
        if self.current.is_none() {
            self.take_pending();
        }
        loop {
            match self.current.as_mut()?.try_recv() {
                Ok(f) => {
                    if let Some(f) = self.open(f) {
                        return Some(f);
                    }
                    // did not decrypt: dropped; look at the next one
                }
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => return None,
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                    self.current = None;
                    return None;
                }
            }
        }
    }

    /// Ask the publisher for a keyframe (PLI).
    pub fn request_keyframe(&self) {
        if let Some(t) = &self.current {
            t.request_keyframe();
        }
    }

    /// Frames the current engine track dropped because this reader was slow.
    pub fn dropped(&self) -> u64 {
        self.current.as_ref().map_or(0, |t| t.dropped())
    }
}
