//! The writer side of a room recording: frames and room events in, WebM files and the manifest
//! out. Plain state driven by [`RoomRecording::handle`] and [`RoomRecording::tick`] with the
//! time passed in, so tests drive it without a server; the recorder runs it on its own thread.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, info, warn};
use wavecast_media::webm::{TrackSpec, WebmOptions, WebmWriter, vp8_keyframe_size};
use wavecast_session::{EncodedFrame, TrackInfo, TrackKey, TrackKind};

use super::RecordError;
use super::filter::TrackFilter;
use super::manifest::{
    FileEntry, Gap, Manifest, MuteChange, ParticipantEntry, Resolution, TrackEntry, rfc3339,
    write_atomic,
};

/// How long frames of a participant are held before its file is opened, waiting for the rest of
/// its tracks (a file's tracks are fixed when it is created).
const GATHER: Duration = Duration::from_millis(1500);
/// At most this many frames are held while gathering; past it the file is opened at once.
const GATHER_MAX_FRAMES: usize = 400;
/// A frame whose RTP-derived time is further than this from its arrival re-anchors the clock.
const RESYNC: Duration = Duration::from_secs(1);
/// Silences longer than this are reported as gaps (audio sends every 20 ms; video at ≥ 1 fps).
const AUDIO_GAP: Duration = Duration::from_millis(250);
const VIDEO_GAP: Duration = Duration::from_millis(1100);
/// How often the manifest is rewritten while something changed.
const MANIFEST_EVERY: Duration = Duration::from_secs(1);
/// How often the writer thread calls [`RoomRecording::tick`]. A cluster is written one tick
/// before it reaches the cluster limit, so no frame waits in memory longer than the limit.
pub(crate) const TICK: Duration = Duration::from_millis(200);

/// What the recording reacts to.
#[derive(Debug)]
pub(crate) enum Input {
    /// A frame of a subscribed track that passed the keyframe gate.
    Frame {
        key: Arc<TrackKey>,
        sid: Arc<str>,
        /// Identifies the reading handle and its binding: a change means a new RTP stream.
        stream: (u64, u64),
        frame: EncodedFrame,
        /// Frames the gate skipped (loss) and keyframe requests it sent, since the last frame.
        skipped: u64,
        keyframe_requests: u64,
        /// Frames dropped because this queue was full, since the last frame.
        queue_drops: u64,
    },
    /// A participant joined (or was there when we joined).
    Joined {
        sid: String,
        identity: String,
        name: String,
    },
    /// A participant left.
    Left { sid: String, identity: String },
    /// A track was published.
    Published { identity: String, track: TrackInfo },
    /// A track's mute state changed.
    Muted { track_sid: String, muted: bool },
    /// Stop: finish every file and the manifest.
    Stop,
}

#[derive(Debug)]
struct Anchor {
    stream: (u64, u64),
    rtp0: u64,
    t0: Duration,
}

#[derive(Debug)]
struct Slot {
    key: TrackKey,
    anchor: Option<Anchor>,
    last: Option<Duration>,
    size: Option<(u32, u32)>,
    /// Mute state changed since the last frame (a following gap is a mute, not a loss).
    muted_since_last: bool,
    loss_since_last: bool,
    /// The previous frame's stream and RTP time, and the mean RTP step between contiguous
    /// frames (audio: one packet's duration), to count frames lost in a gap.
    last_rtp: Option<((u64, u64), u64)>,
    rtp_step: u64,
}

struct OpenFile {
    writer: WebmWriter,
    origin: Instant,
    slots: Vec<Slot>,
    /// Index into the participant's manifest files.
    entry: usize,
}

/// A frame held while a participant's tracks are gathered: track, sid, stream, frame.
type Held = (Arc<TrackKey>, Arc<str>, (u64, u64), EncodedFrame);

#[derive(Default)]
struct Gathering {
    since: Option<Instant>,
    frames: Vec<Held>,
}

struct Participant {
    /// Index into the manifest's participants.
    entry: usize,
    file: Option<OpenFile>,
    gathering: Gathering,
    /// Why the next file starts.
    next_reason: &'static str,
    /// Streams that were flowing when the participant left: their late frames (still queued
    /// when the leave was handled) are not a rejoin and are dropped. A rejoin arrives on a new
    /// stream (a new handle, or a new binding of the old one).
    departed: Vec<(u64, u64)>,
}

#[derive(Debug, Clone)]
struct Publication {
    identity: String,
    info: TrackInfo,
}

/// The recording of one room: see the module docs.
pub(crate) struct RoomRecording {
    dir: PathBuf,
    manifest_path: PathBuf,
    manifest: Manifest,
    filter: TrackFilter,
    max_cluster: Duration,
    /// Wall clock and monotonic clock read together, to date files.
    clock: (Instant, SystemTime),
    participants: HashMap<String, Participant>,
    /// Track sid → publication.
    publications: HashMap<String, Publication>,
    dirty: bool,
    last_manifest: Option<Instant>,
}

fn sanitize(identity: &str) -> String {
    let s: String = identity
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_start_matches('.').to_owned();
    if s.is_empty() {
        "participant".into()
    } else {
        s
    }
}

fn kind_name(kind: TrackKind) -> &'static str {
    match kind {
        TrackKind::Audio => "audio",
        TrackKind::Video => "video",
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl RoomRecording {
    /// Create the manifest (never overwriting: `room.json`, else `room-2.json`, ...) in `dir`.
    pub(crate) fn create(
        dir: &Path,
        room: &str,
        recorder: &str,
        filter: TrackFilter,
        max_cluster: Duration,
        now: Instant,
    ) -> Result<Self, RecordError> {
        std::fs::create_dir_all(dir).map_err(|source| RecordError::Io {
            path: dir.to_path_buf(),
            action: "create the output directory",
            source,
        })?;
        let wall = SystemTime::now();
        let manifest = Manifest {
            room: room.to_owned(),
            recorder: recorder.to_owned(),
            started_at: rfc3339(wall),
            state: "recording".into(),
            participants_filter: filter.participants().to_vec(),
            tracks_filter: filter.tracks().to_vec(),
            ..Default::default()
        };
        let text = serde_json::to_string_pretty(&manifest).expect("a manifest serialises");
        let base = sanitize(room);
        let mut n = 1;
        let manifest_path = loop {
            let name = if n == 1 {
                format!("{base}.json")
            } else {
                format!("{base}-{n}.json")
            };
            let path = dir.join(name);
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    f.write_all(text.as_bytes())
                        .map_err(|source| RecordError::Io {
                            path: path.clone(),
                            action: "write manifest",
                            source,
                        })?;
                    break path;
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists && n < 10_000 => n += 1,
                Err(source) => {
                    return Err(RecordError::Io {
                        path,
                        action: "create manifest",
                        source,
                    });
                }
            }
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest_path,
            manifest,
            filter,
            max_cluster,
            clock: (now, wall),
            participants: HashMap::new(),
            publications: HashMap::new(),
            dirty: false,
            last_manifest: Some(now),
        })
    }

    pub(crate) fn manifest_path(&self) -> &Path {
        &self.manifest_path
    }

    fn wall(&self, at: Instant) -> SystemTime {
        let (i, w) = self.clock;
        if at >= i { w + (at - i) } else { w - (i - at) }
    }

    fn error(&mut self, e: impl std::fmt::Display) {
        let text = e.to_string();
        // The same failure again (every cluster while the disk is full) is listed once.
        if self.manifest.errors.contains(&text) {
            debug!("recorder: again: {text}");
            return;
        }
        warn!("recorder: {text}");
        self.manifest.errors.push(text);
        self.dirty = true;
    }

    /// React to one input. Returns false after [`Input::Stop`].
    pub(crate) fn handle(&mut self, input: Input, now: Instant) -> bool {
        match input {
            Input::Frame {
                key,
                sid,
                stream,
                frame,
                skipped,
                keyframe_requests,
                queue_drops,
            } => {
                self.count_loss(&key, skipped, keyframe_requests, queue_drops);
                self.on_frame(key, sid, stream, frame, now);
            }
            Input::Joined {
                sid,
                identity,
                name,
            } => {
                if let Some(p) = self.participants.get(&identity) {
                    let e = &mut self.manifest.participants[p.entry];
                    if !e.sids.contains(&sid) {
                        e.sids.push(sid);
                    }
                    if !name.is_empty() {
                        e.name = name;
                    }
                    self.dirty = true;
                }
            }
            Input::Left { sid, identity } => {
                info!("recorder: {identity} ({sid}) left");
                if let Some(p) = self.participants.get_mut(&identity) {
                    let streams = p
                        .file
                        .iter()
                        .flat_map(|f| {
                            f.slots
                                .iter()
                                .filter_map(|s| Some(s.anchor.as_ref()?.stream))
                        })
                        .chain(p.gathering.frames.iter().map(|f| f.2));
                    let streams: Vec<(u64, u64)> = streams.collect();
                    p.departed.extend(streams);
                }
                self.close_participant(&identity, "left", now);
                if let Some(p) = self.participants.get_mut(&identity) {
                    p.next_reason = "rejoined";
                }
            }
            Input::Published { identity, track } => {
                self.publications.insert(
                    track.sid.clone(),
                    Publication {
                        identity,
                        info: track,
                    },
                );
            }
            Input::Muted { track_sid, muted } => self.on_muted(&track_sid, muted, now),
            Input::Stop => {
                self.stop(now);
                return false;
            }
        }
        true
    }

    fn count_loss(&mut self, key: &TrackKey, skipped: u64, pli: u64, drops: u64) {
        if skipped + pli + drops == 0 {
            return;
        }
        let Some(p) = self.participants.get_mut(&key.identity) else {
            return;
        };
        let Some(file) = &mut p.file else { return };
        let Some(i) = file.slots.iter().position(|s| &s.key == key) else {
            return;
        };
        file.slots[i].loss_since_last = true;
        let entry = &mut self.manifest.participants[p.entry].files[file.entry].tracks[i];
        entry.skipped_frames += skipped;
        entry.keyframe_requests += pli;
        entry.queue_drops += drops;
        self.dirty = true;
    }

    fn on_muted(&mut self, track_sid: &str, muted: bool, now: Instant) {
        let Some(publication) = self.publications.get_mut(track_sid) else {
            return;
        };
        publication.info.muted = muted;
        let key = TrackKey {
            identity: publication.identity.clone(),
            name: publication.info.name.clone(),
            kind: match publication.info.kind {
                Some(k) => k,
                None => return,
            },
        };
        let Some(p) = self.participants.get_mut(&key.identity) else {
            return;
        };
        let Some(file) = &mut p.file else { return };
        let Some(i) = file.slots.iter().position(|s| s.key == key) else {
            return;
        };
        file.slots[i].muted_since_last = true;
        let at_ms = ms(now.saturating_duration_since(file.origin));
        self.manifest.participants[p.entry].files[file.entry].tracks[i]
            .mutes
            .push(MuteChange { at_ms, muted });
        self.dirty = true;
    }

    fn participant_entry(&mut self, identity: &str) -> &mut Participant {
        if !self.participants.contains_key(identity) {
            let name = self
                .publications
                .values()
                .find(|p| p.identity == identity)
                .map(|_| identity.to_owned())
                .unwrap_or_else(|| identity.to_owned());
            self.manifest.participants.push(ParticipantEntry {
                identity: identity.to_owned(),
                name,
                ..Default::default()
            });
            self.participants.insert(
                identity.to_owned(),
                Participant {
                    entry: self.manifest.participants.len() - 1,
                    file: None,
                    gathering: Gathering::default(),
                    next_reason: "joined",
                    departed: Vec::new(),
                },
            );
        }
        self.participants
            .get_mut(identity)
            .expect("inserted just above")
    }

    fn on_frame(
        &mut self,
        key: Arc<TrackKey>,
        sid: Arc<str>,
        stream: (u64, u64),
        frame: EncodedFrame,
        now: Instant,
    ) {
        let p = self.participant_entry(&key.identity);
        if p.file.is_none() && p.departed.contains(&stream) {
            debug!("recorder: {key}: frame after its publisher left, dropped");
            return;
        }
        if let Some(file) = &p.file {
            if file.slots.iter().any(|s| s.key == *key) {
                self.write(&key, &sid, stream, &frame);
                return;
            }
            let identity = key.identity.clone();
            // A track the open file cannot hold: close it and start a new one.
            info!("recorder: {key} is new: {identity} continues in a new file");
            self.close_participant(&identity, "track added", now);
            if let Some(p) = self.participants.get_mut(&identity) {
                p.next_reason = "track added";
            }
        }
        let identity = key.identity.clone();
        let p = self.participants.get_mut(&identity).expect("entry exists");
        let g = &mut p.gathering;
        g.since.get_or_insert(now);
        g.frames.push((key, sid, stream, frame));
        self.maybe_open(&identity, now);
    }

    /// Tracks a participant's file should hold: every audio/video publication of theirs that
    /// passes the filter, plus the tracks frames arrived on.
    fn expected_tracks(&self, identity: &str) -> Vec<TrackKey> {
        let mut keys: Vec<TrackKey> = self
            .publications
            .values()
            .filter(|p| p.identity == identity)
            .filter_map(|p| {
                Some(TrackKey {
                    identity: identity.to_owned(),
                    name: p.info.name.clone(),
                    kind: p.info.kind?,
                })
            })
            .filter(|k| self.filter.matches(&k.identity, &k.name))
            .collect();
        keys.sort_by(|a, b| {
            (a.kind == TrackKind::Audio, &a.name).cmp(&(b.kind == TrackKind::Audio, &b.name))
        });
        keys.dedup();
        keys
    }

    fn maybe_open(&mut self, identity: &str, now: Instant) {
        let expected = self.expected_tracks(identity);
        let muted: Vec<TrackKey> = self
            .publications
            .values()
            .filter(|p| p.identity == identity && p.info.muted)
            .filter_map(|p| {
                Some(TrackKey {
                    identity: identity.to_owned(),
                    name: p.info.name.clone(),
                    kind: p.info.kind?,
                })
            })
            .collect();
        let Some(p) = self.participants.get(identity) else {
            return;
        };
        let g = &p.gathering;
        let Some(since) = g.since else { return };
        let have = |k: &TrackKey| g.frames.iter().any(|f| *f.0 == *k);
        let complete = expected.iter().all(|k| have(k) || muted.contains(k));
        let due = now.saturating_duration_since(since) >= GATHER;
        if !(complete || due || g.frames.len() >= GATHER_MAX_FRAMES) {
            return;
        }
        self.open(identity, expected, now);
    }

    fn open(&mut self, identity: &str, expected: Vec<TrackKey>, now: Instant) {
        let p = self
            .participants
            .get_mut(identity)
            .expect("participant exists");
        let frames = std::mem::take(&mut p.gathering.frames);
        let since = p.gathering.since.take().unwrap_or(now);
        let reason = p.next_reason;
        let entry_index = p.entry;
        let mut keys = expected;
        for f in &frames {
            if !keys.contains(&f.0) {
                keys.push((*f.0).clone());
            }
        }
        let specs: Vec<TrackSpec> = keys
            .iter()
            .map(|k| match k.kind {
                TrackKind::Audio => TrackSpec::opus(k.name.clone(), 2),
                TrackKind::Video => {
                    let from_frames = frames
                        .iter()
                        .filter(|f| *f.0 == *k)
                        .find_map(|f| vp8_keyframe_size(&f.3.data));
                    let from_info = self
                        .publications
                        .values()
                        .find(|p| p.identity == k.identity && p.info.name == k.name)
                        .map(|p| (p.info.width, p.info.height))
                        .filter(|(w, h)| *w > 0 && *h > 0);
                    let (w, h) = from_frames.or(from_info).unwrap_or((640, 360));
                    TrackSpec::vp8(k.name.clone(), w, h)
                }
            })
            .collect();
        // The file's time 0 is the earliest arrival among the gathered frames.
        let origin = frames
            .iter()
            .map(|f| f.3.received_at)
            .min()
            .unwrap_or(since);
        let wall = self.wall(origin);
        let base = sanitize(identity);
        let mut n = 1;
        let created = loop {
            let name = if n == 1 {
                format!("{base}.webm")
            } else {
                format!("{base}-{n}.webm")
            };
            let path = self.dir.join(&name);
            let options = WebmOptions::default()
                .date(wall)
                .title(format!("{} in {}", identity, self.manifest.room))
                .max_cluster(self.max_cluster);
            match WebmWriter::create(&path, &specs, options) {
                Ok(w) => break Ok((w, name)),
                Err(wavecast_media::MediaError::Io { source, .. })
                    if source.kind() == ErrorKind::AlreadyExists && n < 10_000 =>
                {
                    n += 1
                }
                Err(e) => break Err(e),
            }
        };
        let (writer, name) = match created {
            Ok(v) => v,
            Err(e) => {
                self.error(format!(
                    "{identity}: cannot create a file: {}",
                    wavecast_session::error_chain(&e)
                ));
                return;
            }
        };
        info!(
            "recorder: {identity} → {name} ({reason}, {} tracks)",
            keys.len()
        );
        let tracks = keys
            .iter()
            .map(|k| TrackEntry {
                name: k.name.clone(),
                kind: kind_name(k.kind).into(),
                codec: match k.kind {
                    TrackKind::Audio => "opus".into(),
                    TrackKind::Video => "vp8".into(),
                },
                ..Default::default()
            })
            .collect();
        let pe = &mut self.manifest.participants[entry_index];
        pe.files.push(FileEntry {
            path: name,
            reason: reason.into(),
            started_at: rfc3339(wall),
            state: "recording".into(),
            tracks,
            ..Default::default()
        });
        let file_entry = pe.files.len() - 1;
        let slots = keys
            .into_iter()
            .map(|key| Slot {
                key,
                anchor: None,
                last: None,
                size: None,
                muted_since_last: false,
                loss_since_last: false,
                last_rtp: None,
                rtp_step: 0,
            })
            .collect();
        let p = self
            .participants
            .get_mut(identity)
            .expect("participant exists");
        p.file = Some(OpenFile {
            writer,
            origin,
            slots,
            entry: file_entry,
        });
        self.dirty = true;
        for (key, sid, stream, frame) in frames {
            self.write(&key, &sid, stream, &frame);
        }
    }

    fn write(&mut self, key: &TrackKey, sid: &str, stream: (u64, u64), frame: &EncodedFrame) {
        // Media and signalling travel separately: frames in flight still arrive after a mute
        // was announced, and frames after an unmute can arrive before it is announced, so a
        // gap that ends while the track is still announced muted is a mute too.
        let muted_now = self.publications.get(sid).is_some_and(|p| p.info.muted);
        let Some(p) = self.participants.get_mut(&key.identity) else {
            return;
        };
        let Some(file) = &mut p.file else { return };
        let Some(index) = file.slots.iter().position(|s| &s.key == key) else {
            return;
        };
        let entry = &mut self.manifest.participants[p.entry].files[file.entry].tracks[index];
        let slot = &mut file.slots[index];
        let arrival = frame.received_at.saturating_duration_since(file.origin);
        let clock = u64::from(key.kind.clock_rate());
        // RTP time → file time, anchored at the arrival of the stream's first frame.
        let ts = match &slot.anchor {
            Some(a) if a.stream == stream && frame.rtp_time >= a.rtp0 => {
                let d = frame.rtp_time - a.rtp0;
                let t = a.t0 + Duration::from_nanos(d.saturating_mul(1_000_000_000) / clock);
                let off = t.abs_diff(arrival);
                (off <= RESYNC).then_some(t)
            }
            _ => None,
        };
        let anchored = ts.is_some();
        let ts = match ts {
            Some(t) => t,
            None => {
                if slot.anchor.is_some() {
                    entry.resyncs += 1;
                }
                // Never before the track's previous frame.
                let t0 = arrival.max(slot.last.unwrap_or_default());
                slot.anchor = Some(Anchor {
                    stream,
                    rtp0: frame.rtp_time,
                    t0,
                });
                t0
            }
        };
        if !entry.sids.iter().any(|s| s == sid) {
            entry.sids.push(sid.to_owned());
        }
        // Frames that never arrived: after a discontinuity (packets lost; video: the frames
        // the engine dropped up to a keyframe), the RTP time jumped by the missing frames'
        // durations. A mute leaves no discontinuity, so it does not count.
        if let Some((s, prev)) = slot.last_rtp
            && anchored
            && s == stream
            && frame.rtp_time > prev
        {
            let delta = frame.rtp_time - prev;
            if frame.contiguous {
                // A running mean (1/8 weight): capture times jitter on a loaded machine, and
                // one short step would count a later hole as too many frames. A step over 4×
                // the mean is a pause (a mute), not the frame rate.
                slot.rtp_step = match slot.rtp_step {
                    0 => delta,
                    step if delta > step * 4 => step,
                    step => (step * 7 + delta) / 8,
                };
            } else {
                let step = slot.rtp_step;
                let missing = (delta + step / 2).checked_div(step).unwrap_or(0);
                entry.lost_frames += missing.saturating_sub(1);
                slot.loss_since_last = true;
            }
        }
        slot.last_rtp = Some((stream, frame.rtp_time));
        // Gaps.
        if let Some(last) = slot.last {
            let limit = match key.kind {
                TrackKind::Audio => AUDIO_GAP,
                TrackKind::Video => VIDEO_GAP,
            };
            if ts > last + limit {
                let reason = if slot.muted_since_last || muted_now {
                    "muted"
                } else if slot.loss_since_last {
                    "packet loss"
                } else {
                    "no frames"
                };
                entry.gaps.push(Gap {
                    from_ms: ms(last),
                    to_ms: ms(ts),
                    reason: reason.into(),
                });
            }
        }
        slot.muted_since_last = false;
        slot.loss_since_last = false;
        // Resolution changes, from keyframe headers.
        if key.kind == TrackKind::Video
            && let Some(size) = vp8_keyframe_size(&frame.data)
            && slot.size != Some(size)
        {
            slot.size = Some(size);
            entry.resolutions.push(Resolution {
                at_ms: ms(ts),
                width: size.0,
                height: size.1,
            });
        }
        let keyframe = key.kind == TrackKind::Audio || frame.keyframe;
        match file.writer.write_frame(index, ts, keyframe, &frame.data) {
            Ok(()) => {
                slot.last = Some(ts);
                entry.frames += 1;
                entry.keyframes += u64::from(keyframe);
                entry.bytes += frame.data.len() as u64;
                entry.first_ms.get_or_insert(ms(ts));
                entry.last_ms = Some(ms(ts));
                self.dirty = true;
            }
            Err(e) => {
                let text = format!(
                    "{key}: frame not written: {}",
                    wavecast_session::error_chain(&e)
                );
                self.error(text);
            }
        }
    }

    fn close_participant(&mut self, identity: &str, because: &str, now: Instant) {
        let Some(p) = self.participants.get_mut(identity) else {
            return;
        };
        // Frames still gathering get a file first (a short visit is still recorded).
        if !p.gathering.frames.is_empty() {
            let expected = self.expected_tracks(identity);
            self.open(identity, expected, now);
        }
        let Some(p) = self.participants.get_mut(identity) else {
            return;
        };
        let Some(file) = p.file.take() else { return };
        let entry = p.entry;
        let wall = self.wall(now);
        let path = file.writer.path().to_path_buf();
        let result = file.writer.finish();
        let fe = &mut self.manifest.participants[entry].files[file.entry];
        fe.ended_at = rfc3339(wall);
        fe.closed_because = because.into();
        match result {
            Ok(summary) => {
                fe.state = "finalized".into();
                fe.duration_ms = ms(summary.duration);
                info!(
                    "recorder: {} finalized ({:.1} s)",
                    path.display(),
                    summary.duration.as_secs_f64()
                );
                if summary.lost_clusters > 0 {
                    self.error(format!(
                        "{}: finalized without {} cluster(s) that could not be written",
                        path.display(),
                        summary.lost_clusters
                    ));
                }
            }
            Err(e) => {
                fe.state = "unfinished".into();
                self.error(format!(
                    "{}: not finalized: {}",
                    path.display(),
                    wavecast_session::error_chain(&e)
                ));
            }
        }
        self.dirty = true;
    }

    /// Periodic work: open files whose gathering time is up, write clusters held longer than
    /// the cluster limit, rewrite the manifest when it changed.
    pub(crate) fn tick(&mut self, now: Instant) {
        let gathering: Vec<String> = self
            .participants
            .iter()
            .filter(|(_, p)| p.gathering.since.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        for identity in gathering {
            self.maybe_open(&identity, now);
        }
        let mut errors = Vec::new();
        for p in self.participants.values_mut() {
            if let Some(file) = &mut p.file {
                match file.writer.flush_if_older(now + TICK) {
                    Ok(_) => {
                        self.manifest.participants[p.entry].files[file.entry].duration_ms =
                            ms(file.writer.duration());
                    }
                    Err(e) => errors.push(wavecast_session::error_chain(&e)),
                }
            }
        }
        for e in errors {
            self.error(e);
        }
        let due = self
            .last_manifest
            .is_none_or(|t| now.saturating_duration_since(t) >= MANIFEST_EVERY);
        if self.dirty && due {
            self.write_manifest(now);
        }
    }

    fn write_manifest(&mut self, now: Instant) {
        self.dirty = false;
        self.last_manifest = Some(now);
        let text = serde_json::to_string_pretty(&self.manifest).expect("a manifest serialises");
        if let Err(e) = write_atomic(&self.manifest_path, &text) {
            warn!(
                "recorder: {}: write failed: {e}",
                self.manifest_path.display()
            );
        }
    }

    /// Finish every file and the manifest.
    pub(crate) fn stop(&mut self, now: Instant) {
        let ids: Vec<String> = self.participants.keys().cloned().collect();
        for identity in ids {
            self.close_participant(&identity, "stopped", now);
        }
        self.manifest.ended_at = rfc3339(self.wall(now));
        self.manifest.state = "finalized".into();
        self.write_manifest(now);
    }

    /// The manifest as it stands.
    pub(crate) fn manifest(&self) -> &Manifest {
        &self.manifest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wavecast_media::webm::WebmInfo;
    use wavecast_session::TrackSource;

    fn key(id: &str, name: &str, kind: TrackKind) -> TrackKey {
        TrackKey {
            identity: id.into(),
            name: name.into(),
            kind,
        }
    }

    fn info(sid: &str, name: &str, kind: TrackKind) -> TrackInfo {
        // TrackInfo has private-free public fields.
        TrackInfo {
            sid: sid.into(),
            name: name.into(),
            kind: Some(kind),
            source: TrackSource::Unknown,
            muted: false,
            width: 320,
            height: 180,
            encrypted: false,
            codec: None,
            layers: Vec::new(),
        }
    }

    /// A fake VP8 keyframe header of `w`×`h` (only the header is read by the recorder).
    fn vp8_key(w: u16, h: u16) -> Vec<u8> {
        let mut d = vec![0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A];
        d.extend_from_slice(&w.to_le_bytes());
        d.extend_from_slice(&h.to_le_bytes());
        d.extend_from_slice(&[0; 20]);
        d
    }

    fn frame(data: Vec<u8>, rtp: u64, at: Instant, keyframe: bool) -> EncodedFrame {
        EncodedFrame {
            codec: wavecast_session::MediaCodec::Vp8,
            data: Arc::from(data),
            rtp_time: rtp,
            received_at: at,
            keyframe,
            contiguous: true,
        }
    }

    fn send(r: &mut RoomRecording, k: &TrackKey, stream: (u64, u64), f: EncodedFrame) {
        let now = f.received_at;
        r.handle(
            Input::Frame {
                key: Arc::new(k.clone()),
                sid: Arc::from(format!("TR_{}", k.name)),
                stream,
                frame: f,
                skipped: 0,
                keyframe_requests: 0,
                queue_drops: 0,
            },
            now,
        );
        r.tick(now);
    }

    /// A recording of `room` in `dir` with no filter and manifest writes every second.
    fn recording(dir: &Path, room: &str, t0: Instant) -> RoomRecording {
        RoomRecording::create(
            dir,
            room,
            "rec",
            TrackFilter::default(),
            Duration::from_secs(1),
            t0,
        )
        .unwrap()
    }

    #[test]
    fn tracks_are_aligned_gaps_stated_and_a_rejoin_gets_a_new_file() {
        let (dir, t0) = (tempfile::tempdir().unwrap(), Instant::now());
        let mut r = recording(dir.path(), "demo", t0);
        let (a, v) = (
            key("ada", "mic", TrackKind::Audio),
            key("ada", "cam", TrackKind::Video),
        );
        for (sid, k) in [("TR_mic", &a), ("TR_cam", &v)] {
            r.handle(
                Input::Published {
                    identity: "ada".into(),
                    track: info(sid, &k.name, k.kind),
                },
                t0,
            );
        }
        // Video starts 100 ms after audio, at an unrelated RTP offset; 3 s of both with the
        // audio muted from 1.0 s to 2.0 s and a size change at 2 s. Interleaved by arrival.
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // (arrival ms, track or a mute event, payload, RTP time, keyframe)
        type Event = (u64, Option<TrackKey>, Vec<u8>, u64, bool);
        let mut timeline: Vec<Event> = Vec::new();
        for n in 0..150u64 {
            let at = n * 20;
            if at == 1000 {
                timeline.push((at, None, Vec::new(), 0, true));
            }
            if !(1000..2000).contains(&at) {
                timeline.push((at, Some(a.clone()), vec![0xF8, 1], 5_000 + at * 48, true));
            }
        }
        for n in 0..87u64 {
            let at = 100 + n * 33;
            let big = at >= 2000;
            let data = if n == 0 || (big && at < 2033) {
                vp8_key(if big { 640 } else { 320 }, if big { 360 } else { 180 })
            } else {
                vec![0x01, 0, 0, 0, 0]
            };
            let keyframe = data[0] & 1 == 0;
            timeline.push((at, Some(v.clone()), data, 900_000 + n * 2970, keyframe));
        }
        timeline.sort_by_key(|e| e.0);
        for (at, k, data, rtp, keyframe) in timeline {
            match k {
                None => {
                    r.handle(
                        Input::Muted {
                            track_sid: "TR_mic".into(),
                            muted: true,
                        },
                        ms(at),
                    );
                }
                Some(k) => {
                    let stream = if k.kind == TrackKind::Audio {
                        (1, 0)
                    } else {
                        (2, 0)
                    };
                    send(&mut r, &k, stream, frame(data, rtp, ms(at), keyframe));
                }
            }
        }
        r.handle(
            Input::Left {
                sid: "PA_1".into(),
                identity: "ada".into(),
            },
            ms(3100),
        );
        // A late frame of the old stream (queued before the leave was handled) is no rejoin.
        send(
            &mut r,
            &a,
            (1, 0),
            frame(vec![0xF8, 1], 5_000 + 3000 * 48, ms(3110), true),
        );
        // The publisher rejoins: a new stream on the same track → a second file.
        send(&mut r, &a, (3, 0), frame(vec![0xF8, 1], 77, ms(4000), true));
        r.handle(Input::Stop, ms(4100));

        let m = r.manifest().clone();
        let p = m.participant("ada").unwrap();
        assert_eq!(p.files.len(), 2, "{p:#?}");
        let f = &p.files[0];
        assert_eq!((f.path.as_str(), f.reason.as_str()), ("ada.webm", "joined"));
        assert_eq!(
            (f.state.as_str(), f.closed_because.as_str()),
            ("finalized", "left")
        );
        let audio = f.tracks.iter().find(|t| t.kind == "audio").unwrap();
        let video = f.tracks.iter().find(|t| t.kind == "video").unwrap();
        assert_eq!(audio.frames, 100);
        assert_eq!(video.frames, 87);
        // Video's first frame sits 100 ms after the audio's in the file, whatever the RTP.
        assert_eq!(audio.first_ms, Some(0));
        assert_eq!(video.first_ms, Some(100));
        assert_eq!(audio.gaps.len(), 1, "{:?}", audio.gaps);
        assert_eq!(audio.gaps[0].reason, "muted");
        assert!(
            (980..=1000).contains(&audio.gaps[0].from_ms),
            "{:?}",
            audio.gaps
        );
        assert!(
            (1990..=2010).contains(&audio.gaps[0].to_ms),
            "{:?}",
            audio.gaps
        );
        assert_eq!(
            video
                .resolutions
                .iter()
                .map(|r| (r.width, r.height))
                .collect::<Vec<_>>(),
            vec![(320, 180), (640, 360)]
        );
        assert_eq!(p.files[1].reason, "rejoined");
        assert_eq!(p.files[1].path, "ada-2.webm");
        // Only the rejoined stream's frame, not the old stream's late one.
        let rejoined = p.files[1]
            .tracks
            .iter()
            .find(|t| t.kind == "audio")
            .unwrap();
        assert_eq!((rejoined.frames, rejoined.first_ms), (1, Some(0)));
        let info = WebmInfo::read(dir.path().join("ada.webm")).unwrap();
        assert!(info.finalized);
        assert_eq!(info.track("A_OPUS").unwrap().frames, 100);
        assert_eq!(info.track("V_VP8").unwrap().size, Some((320, 180)));
        assert_eq!(m.state, "finalized");
        assert!(Manifest::read(r.manifest_path()).unwrap() == m);
    }

    #[test]
    fn a_gap_ending_before_the_unmute_is_announced_is_still_a_mute() {
        // Media and signalling race: frames in flight arrive after the mute is announced,
        // and the first frames after the unmute arrive before it is announced (seen in CI).
        let (dir, t0) = (tempfile::tempdir().unwrap(), Instant::now());
        let mut r = recording(dir.path(), "r", t0);
        let a = key("ada", "mic", TrackKind::Audio);
        r.handle(
            Input::Published {
                identity: "ada".into(),
                track: info("TR_mic", "mic", TrackKind::Audio),
            },
            t0,
        );
        let mute = |r: &mut RoomRecording, muted: bool, at: u64| {
            r.handle(
                Input::Muted {
                    track_sid: "TR_mic".into(),
                    muted,
                },
                t0 + Duration::from_millis(at),
            );
        };
        let mut unmuted = false;
        for n in 0..200u64 {
            let at = n * 20;
            if at == 1000 {
                mute(&mut r, true, at);
            }
            // Frames stop 100 ms after the mute, and again without any mute at 3000 ms.
            if (1100..2000).contains(&at) || (3000..3500).contains(&at) {
                continue;
            }
            send(
                &mut r,
                &a,
                (1, 0),
                frame(vec![0xF8], at * 48, t0 + Duration::from_millis(at), true),
            );
            if at == 2100 && !unmuted {
                mute(&mut r, false, at);
                unmuted = true;
            }
        }
        r.handle(Input::Stop, t0 + Duration::from_secs(5));
        let t = &r.manifest().participants[0].files[0].tracks[0];
        let gaps: Vec<_> = t
            .gaps
            .iter()
            .map(|g| (g.from_ms, g.to_ms, g.reason.as_str()))
            .collect();
        assert_eq!(
            gaps,
            [(1080, 2000, "muted"), (2980, 3500, "no frames")],
            "{t:#?}"
        );
    }

    #[test]
    fn lost_audio_packets_are_counted_from_the_rtp_clock() {
        let (dir, t0) = (tempfile::tempdir().unwrap(), Instant::now());
        let mut r = recording(dir.path(), "r", t0);
        let a = key("bob", "mic", TrackKind::Audio);
        // 20 ms packets; every tenth never arrives, and two in a row once.
        let lost = |n: u64| n % 10 == 5 || n == 36;
        for n in (0..50u64).filter(|n| !lost(*n)) {
            let mut f = frame(
                vec![0xF8],
                n * 960,
                t0 + Duration::from_millis(n * 20),
                true,
            );
            f.contiguous = n == 0 || !lost(n - 1);
            send(&mut r, &a, (1, 0), f);
        }
        r.handle(Input::Stop, t0 + Duration::from_secs(2));
        let t = &r.manifest().participants[0].files[0].tracks[0];
        assert_eq!((t.frames, t.lost_frames), (44, 6));
        // 40 ms holes are no gaps in the file.
        assert!(t.gaps.is_empty(), "{:?}", t.gaps);
    }

    #[test]
    fn rtp_jump_resyncs_to_arrival_and_filter_applies() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let filter = TrackFilter::new(vec!["bo*".into()], vec![]).unwrap();
        let mut r =
            RoomRecording::create(dir.path(), "r", "rec", filter, Duration::from_secs(1), t0)
                .unwrap();
        let a = key("bob", "mic", TrackKind::Audio);
        for n in 0..50u64 {
            let rtp = if n < 25 {
                n * 960
            } else {
                10_000_000 + n * 960
            };
            send(
                &mut r,
                &a,
                (1, 0),
                frame(vec![0xF8], rtp, t0 + Duration::from_millis(n * 20), true),
            );
        }
        r.handle(Input::Stop, t0 + Duration::from_secs(2));
        let t = &r.manifest().participants[0].files[0].tracks[0];
        assert_eq!((t.frames, t.resyncs), (50, 1));
        assert_eq!(t.last_ms, Some(980));
        assert!(t.gaps.is_empty(), "{:?}", t.gaps);
        // A second recording into the same directory never overwrites the first.
        let r2 = RoomRecording::create(
            dir.path(),
            "r",
            "rec",
            TrackFilter::default(),
            Duration::from_secs(1),
            t0,
        )
        .unwrap();
        assert!(r2.manifest_path().ends_with("r-2.json"));
    }
}
