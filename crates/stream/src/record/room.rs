//! The writer side of a room recording: frames and room events in, WebM files (Matroska when a
//! track is H.264) and the manifest out. Plain state driven by [`RoomRecording::handle`] and [`RoomRecording::tick`] with the
//! time passed in, so tests drive it without a server; the recorder runs it on its own thread.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, info, warn};
use wavecast_media::webm::{self, TrackSpec, VideoCodec, WebmOptions, WebmWriter};
use wavecast_session::{EncodedFrame, MediaCodec, TrackInfo, TrackKey, TrackKind};

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
    /// The codec of the file's track (`None` for audio).
    codec: Option<VideoCodec>,
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
    /// The last video track spec of each track recorded (its codec, size and, for H.264, its
    /// CodecPrivate), for a later file of the same track that opens without a keyframe of it.
    specs: HashMap<TrackKey, TrackSpec>,
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

/// The name a publication's frames arrive under: its name, or its sid when it has none (the
/// session keys an unnamed track by sid — livekit-client publishes its camera and microphone
/// unnamed).
fn key_name(info: &TrackInfo) -> String {
    if info.name.is_empty() {
        info.sid.clone()
    } else {
        info.name.clone()
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

/// The video codec of a frame (`None` for audio and codecs the files cannot hold).
fn video_codec(codec: MediaCodec) -> Option<VideoCodec> {
    match codec {
        MediaCodec::Vp8 => Some(VideoCodec::Vp8),
        MediaCodec::Vp9 => Some(VideoCodec::Vp9),
        MediaCodec::H264 => Some(VideoCodec::H264),
        _ => None,
    }
}

/// The manifest's codec name of a file's track: `opus`, `vp8`, `vp9`, `h264`.
fn codec_name(spec: &TrackSpec) -> &'static str {
    spec.video_codec().map_or("opus", VideoCodec::name)
}

/// A video track spec of `codec` for `name`: size from the first keyframe among `frames` that
/// has one (H.264: with its SPS and PPS, which are its CodecPrivate), else from `fallback`
/// (size only). `None` for H.264 without a keyframe carrying SPS and PPS.
fn video_spec<'a>(
    name: &str,
    codec: VideoCodec,
    mut frames: impl Iterator<Item = &'a [u8]>,
    fallback: (u32, u32),
) -> Option<TrackSpec> {
    let name = name.to_owned();
    match codec {
        VideoCodec::H264 => frames.find_map(|f| TrackSpec::h264_from_keyframe(name.clone(), f)),
        VideoCodec::Vp9 => {
            let (w, h) = frames
                .find_map(|f| webm::keyframe_size(codec, f))
                .unwrap_or(fallback);
            Some(TrackSpec::vp9(name, w, h))
        }
        _ => {
            let (w, h) = frames
                .find_map(|f| webm::keyframe_size(VideoCodec::Vp8, f))
                .unwrap_or(fallback);
            Some(TrackSpec::vp8(name, w, h))
        }
    }
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
            specs: HashMap::new(),
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
            name: key_name(&publication.info),
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
        let codec = video_codec(frame.codec);
        let recordable = match key.kind {
            TrackKind::Audio => frame.codec == MediaCodec::Opus,
            TrackKind::Video => codec.is_some(),
        };
        if !recordable {
            // Listed once (errors are); no file is opened or closed for it.
            self.error(format!(
                "{key}: {} is not recorded (Opus audio; VP8, VP9 or H.264 video): frames dropped",
                frame.codec.mime()
            ));
            return;
        }
        let p = self.participant_entry(&key.identity);
        if p.file.is_none() && p.departed.contains(&stream) {
            debug!("recorder: {key}: frame after its publisher left, dropped");
            return;
        }
        let mut reason = None;
        if let Some(file) = &p.file {
            match file.slots.iter().find(|s| s.key == *key) {
                Some(s) if key.kind == TrackKind::Audio || s.codec == codec => {
                    self.write(&key, &sid, stream, &frame);
                    return;
                }
                // The publisher switched codecs (or the file guessed one for a track that had
                // sent nothing yet): the file's track cannot hold these frames.
                Some(_) => reason = Some("codec changed"),
                // A track the open file does not have.
                None => reason = Some("track added"),
            }
        }
        // The frame needs a new file. An H.264 track's file needs its SPS and PPS (its
        // CodecPrivate): its frames are held from a keyframe that carries them (or, for a track
        // recorded before, a known one); until then they are dropped, and an open file stays.
        if codec == Some(VideoCodec::H264)
            && !self
                .specs
                .get(&*key)
                .is_some_and(|s| matches!(s, TrackSpec::H264 { .. }))
        {
            let p = self.participants.get(&key.identity).expect("entry exists");
            let started = p
                .gathering
                .frames
                .iter()
                .any(|f| *f.0 == *key && f.3.codec == frame.codec);
            if !started && TrackSpec::h264_from_keyframe("", &frame.data).is_none() {
                debug!("recorder: {key}: H.264 frame before a keyframe with SPS and PPS, dropped");
                return;
            }
        }
        let identity = key.identity.clone();
        if let Some(reason) = reason {
            info!(
                "recorder: {key} ({}): {reason}: {identity} continues in a new file",
                frame.codec.mime()
            );
            self.close_participant(&identity, reason, now);
            if let Some(p) = self.participants.get_mut(&identity) {
                p.next_reason = reason;
            }
        }
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
                    name: key_name(&p.info),
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

    /// The file's track for video track `k`: in the codec of its first held frame, sized by
    /// its first keyframe. Without frames (a muted track): the track's last spec in this
    /// recording unless the server announces another codec, else VP9 at the published size
    /// when announced so, else a VP8 guess (H.264 needs a keyframe's SPS and PPS). Should the
    /// track then send another codec, its file is closed and the next one holds it.
    fn video_track(&self, k: &TrackKey, frames: &[Held]) -> TrackSpec {
        let publication = self
            .publications
            .values()
            .find(|p| p.identity == k.identity && p.info.name == k.name);
        let published = publication
            .map(|p| (p.info.width, p.info.height))
            .filter(|(w, h)| *w > 0 && *h > 0)
            .unwrap_or((640, 360));
        let announced = publication.and_then(|p| p.info.codec).and_then(video_codec);
        let known = self.specs.get(k);
        let mut own = frames.iter().filter(|f| *f.0 == *k).map(|f| &f.3);
        let spec = match own.next() {
            Some(first) => video_codec(first.codec).and_then(|codec| {
                let same = std::iter::once(first)
                    .chain(own)
                    .filter(|f| f.codec == first.codec)
                    .map(|f| &f.data[..]);
                video_spec(&k.name, codec, same, published)
                    .or_else(|| known.filter(|s| s.video_codec() == Some(codec)).cloned())
            }),
            None => known
                .filter(|s| announced.is_none_or(|c| s.video_codec() == Some(c)))
                .cloned()
                .or_else(|| {
                    (announced == Some(VideoCodec::Vp9))
                        .then(|| TrackSpec::vp9(k.name.clone(), published.0, published.1))
                }),
        };
        spec.unwrap_or_else(|| TrackSpec::vp8(k.name.clone(), published.0, published.1))
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
                    name: key_name(&p.info),
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
                TrackKind::Video => self.video_track(k, &frames),
            })
            .collect();
        for (k, spec) in keys.iter().zip(&specs) {
            if spec.is_video() {
                self.specs.insert(k.clone(), spec.clone());
            }
        }
        let ext = webm::extension(&specs);
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
            let stem = if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            // A visit's number is taken by a file of either container.
            let other = if ext == "webm" { "mkv" } else { "webm" };
            if n < 10_000 && self.dir.join(format!("{stem}.{other}")).exists() {
                n += 1;
                continue;
            }
            let name = format!("{stem}.{ext}");
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
            .zip(&specs)
            .map(|(k, spec)| TrackEntry {
                name: k.name.clone(),
                kind: kind_name(k.kind).into(),
                codec: codec_name(spec).into(),
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
            .zip(&specs)
            .map(|(key, spec)| Slot {
                codec: spec.video_codec(),
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
        if key.kind == TrackKind::Video && slot.codec != video_codec(frame.codec) {
            // Held while the file was gathered, in another codec than its track's first frame:
            // the track cannot hold it.
            debug!(
                "recorder: {key}: a {} frame in a {:?} track, not written",
                frame.codec.mime(),
                slot.codec
            );
            entry.skipped_frames += 1;
            return;
        }
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
        // Strictly after the track's previous frame in the file's millisecond timestamps: two
        // frames in one millisecond (the server switching simulcast layers, a resync anchored
        // at the previous frame) would give a player two frames with one decoding time.
        let ts = match slot.last {
            Some(last) if ts < last + Duration::from_millis(1) => last + Duration::from_millis(1),
            _ => ts,
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
        // Resolution changes, from keyframe headers (an H.264 interframe is not searched for
        // an SPS: that would scan every frame).
        if let Some(codec) = slot.codec
            && (frame.keyframe || codec != VideoCodec::H264)
            && let Some(size) = webm::keyframe_size(codec, &frame.data)
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
                // As stored (H.264: with lengths in place of start codes).
                entry.bytes = file
                    .writer
                    .track_stats(index)
                    .map_or(entry.bytes + frame.data.len() as u64, |t| t.bytes);
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

    /// A fake frame: Opus when it starts like the fake Opus packets here (`F8`), else VP8.
    fn frame(data: Vec<u8>, rtp: u64, at: Instant, keyframe: bool) -> EncodedFrame {
        let codec = if data.first() == Some(&0xF8) {
            MediaCodec::Opus
        } else {
            MediaCodec::Vp8
        };
        coded(codec, data, rtp, at, keyframe)
    }

    fn coded(
        codec: MediaCodec,
        data: Vec<u8>,
        rtp: u64,
        at: Instant,
        keyframe: bool,
    ) -> EncodedFrame {
        EncodedFrame {
            codec,
            data: Arc::from(data),
            rtp_time: rtp,
            received_at: at,
            keyframe,
            contiguous: true,
        }
    }

    /// A fake VP9 profile-0 keyframe of `w`×`h` (uncompressed header, then filler).
    fn vp9_key(w: u32, h: u32) -> Vec<u8> {
        let mut d = vec![0x82, 0x49, 0x83, 0x42];
        // Colour space and range (4 bits, 0), then width − 1 and height − 1 (16 bits each).
        let bits = (u64::from(w - 1) << 16 | u64::from(h - 1)) << 4;
        d.extend_from_slice(&bits.to_be_bytes()[3..]);
        d.extend_from_slice(&[0x5A; 20]);
        d
    }

    /// A fake VP9 interframe.
    const VP9_INTER: [u8; 6] = [0x86, 0x00, 0x40, 0x92, 0x11, 0x22];

    /// libx264's SPS of a 320×240 and a 640×360 baseline stream, and its PPS.
    const SPS_320X240: [u8; 24] = [
        0x67, 0x42, 0xC0, 0x0D, 0xD9, 0x01, 0x41, 0xFB, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
        0x00, 0x00, 0x03, 0x03, 0xC0, 0xF1, 0x42, 0xA4, 0x80,
    ];
    const SPS_640X360: [u8; 25] = [
        0x67, 0x42, 0xC0, 0x1E, 0xD9, 0x00, 0xA0, 0x2F, 0xF9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00,
        0x01, 0x00, 0x00, 0x03, 0x00, 0x3C, 0x0F, 0x16, 0x2E, 0x48,
    ];
    const PPS: [u8; 5] = [0x68, 0xCB, 0x83, 0xCB, 0x20];

    /// A fake H.264 keyframe in Annex B: SPS, PPS and an IDR slice (its start only).
    fn h264_key(sps: &[u8]) -> Vec<u8> {
        let mut d = vec![0, 0, 0, 1];
        d.extend_from_slice(sps);
        d.extend_from_slice(&[0, 0, 0, 1]);
        d.extend_from_slice(&PPS);
        d.extend_from_slice(&[0, 0, 1, 0x65, 0x88, 0x84, 0x21, 0x7F]);
        d
    }

    /// A fake H.264 interframe (a non-IDR slice).
    const H264_INTER: [u8; 8] = [0, 0, 0, 1, 0x41, 0x9A, 0x21, 0x6C];

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
    fn two_frames_of_one_instant_get_distinct_file_times() {
        // The server switching simulcast layers can hand over two pictures with one RTP time:
        // the file must still have strictly increasing timestamps (players refuse equal ones).
        let (dir, t0) = (tempfile::tempdir().unwrap(), Instant::now());
        let mut r = recording(dir.path(), "same", t0);
        let v = key("ann", "cam", TrackKind::Video);
        send(
            &mut r,
            &v,
            (1, 0),
            frame(vp8_key(320, 180), 90_000, t0, true),
        );
        for n in 1..4u64 {
            let at = t0 + Duration::from_millis(n * 33);
            send(
                &mut r,
                &v,
                (1, 0),
                frame(vec![0x01, 0, 0], 90_000 + n * 3000, at, false),
            );
            // The same picture time again, a moment later.
            let again = at + Duration::from_micros(200);
            send(
                &mut r,
                &v,
                (1, 0),
                frame(vec![0x01, 0, 0], 90_000 + n * 3000, again, false),
            );
        }
        r.handle(Input::Stop, t0 + Duration::from_secs(1));
        let f = &r.manifest().participants[0].files[0];
        let path = dir.path().join(&f.path);
        let pts = wavecast_testbed::apps::ffprobe(
            &[
                "-select_streams",
                "v",
                "-show_entries",
                "packet=pts",
                "-of",
                "csv=p=0",
            ],
            &path,
        );
        let times: Vec<u64> = pts.lines().filter_map(|l| l.trim().parse().ok()).collect();
        assert_eq!(times.len(), 7, "{pts}");
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
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

    /// `frames` video frames of `codec` at 30 fps from `start_ms` (keyframes at 0 and every
    /// `key_every`, of size `sizes[n / key_every]`), with 20 ms Opus packets alongside.
    fn camera_and_mic(
        r: &mut RoomRecording,
        identity: &str,
        codec: MediaCodec,
        t0: Instant,
        frames: u64,
        sizes: &[(u32, u32)],
    ) {
        let (a, v) = (
            key(identity, "mic", TrackKind::Audio),
            key(identity, "cam", TrackKind::Video),
        );
        let key_every = 30;
        let mut events: Vec<(u64, bool, EncodedFrame)> = Vec::new();
        for n in 0..frames {
            let at = n * 1000 / 30;
            let keyframe = n % key_every == 0;
            let (w, h) = sizes[((n / key_every) as usize).min(sizes.len() - 1)];
            let data = match (codec, keyframe) {
                (MediaCodec::Vp9, true) => vp9_key(w, h),
                (MediaCodec::Vp9, false) => VP9_INTER.to_vec(),
                (MediaCodec::H264, true) if w == 640 => h264_key(&SPS_640X360),
                (MediaCodec::H264, true) => h264_key(&SPS_320X240),
                (MediaCodec::H264, false) => H264_INTER.to_vec(),
                (_, true) => vp8_key(w as u16, h as u16),
                (_, false) => vec![0x01, 0, 0, 0, 0],
            };
            let f = coded(
                codec,
                data,
                900_000 + n * 3000,
                t0 + Duration::from_millis(at),
                keyframe,
            );
            events.push((at, true, f));
        }
        for n in 0..frames * 1000 / 30 / 20 {
            let at = n * 20;
            let f = coded(
                MediaCodec::Opus,
                vec![0xF8, 1],
                n * 960,
                t0 + Duration::from_millis(at),
                true,
            );
            events.push((at, false, f));
        }
        events.sort_by_key(|e| e.0);
        for (_, video, f) in events {
            let (k, stream) = if video { (&v, (2, 0)) } else { (&a, (1, 0)) };
            send(r, k, stream, f);
        }
    }

    fn publish(r: &mut RoomRecording, identity: &str, t0: Instant) {
        for (sid, name, kind) in [
            ("mic", "mic", TrackKind::Audio),
            ("cam", "cam", TrackKind::Video),
        ] {
            r.handle(
                Input::Published {
                    identity: identity.into(),
                    track: info(&format!("TR_{identity}_{sid}"), name, kind),
                },
                t0,
            );
        }
    }

    #[test]
    fn vp9_goes_to_webm_and_h264_to_matroska_with_codec_sizes_and_codec_private() {
        let (dir, t0) = (tempfile::tempdir().unwrap(), Instant::now());
        let mut r = recording(dir.path(), "codecs", t0);
        publish(&mut r, "vic", t0);
        publish(&mut r, "hal", t0);
        // hal's first H.264 frame is no keyframe with SPS and PPS: it cannot start a file.
        let v = key("hal", "cam", TrackKind::Video);
        send(
            &mut r,
            &v,
            (2, 0),
            coded(MediaCodec::H264, H264_INTER.to_vec(), 1, t0, false),
        );
        let sizes = [(320, 240), (640, 360)];
        camera_and_mic(&mut r, "vic", MediaCodec::Vp9, t0, 60, &sizes);
        camera_and_mic(&mut r, "hal", MediaCodec::H264, t0, 60, &sizes);
        r.handle(Input::Stop, t0 + Duration::from_secs(3));

        let m = r.manifest().clone();
        for (who, file, codec, codec_id, doc_type) in [
            ("vic", "vic.webm", "vp9", "V_VP9", "webm"),
            ("hal", "hal.mkv", "h264", "V_MPEG4/ISO/AVC", "matroska"),
        ] {
            let p = m.participant(who).unwrap();
            assert_eq!(p.files.len(), 1, "{p:#?}");
            let f = &p.files[0];
            assert_eq!((f.path.as_str(), f.state.as_str()), (file, "finalized"));
            let video = f.tracks.iter().find(|t| t.kind == "video").unwrap();
            let audio = f.tracks.iter().find(|t| t.kind == "audio").unwrap();
            assert_eq!(
                (video.codec.as_str(), audio.codec.as_str()),
                (codec, "opus")
            );
            assert_eq!((video.frames, video.keyframes), (60, 2), "{who}");
            let sizes: Vec<_> = video
                .resolutions
                .iter()
                .map(|r| (r.width, r.height))
                .collect();
            assert_eq!(sizes, [(320, 240), (640, 360)], "{who}");
            assert_eq!(video.resolutions[1].at_ms, 1000, "{who}");

            let info = WebmInfo::read(dir.path().join(file)).unwrap();
            assert!(info.finalized, "{info:?}");
            assert_eq!(info.doc_type, doc_type);
            let t = info.track(codec_id).unwrap();
            assert_eq!((t.frames, t.size), (60, Some((320, 240))), "{who}");
            if codec == "h264" {
                let config = webm::h264::avc_decoder_config(&h264_key(&SPS_320X240));
                assert_eq!(Some(t.codec_private.clone()), config);
                // Bytes as stored, each NAL unit behind a 4-byte length: two keyframes of SPS,
                // PPS and IDR slice, 58 interframes of one slice.
                assert_eq!(video.bytes, (28 + 9 + 9) + (29 + 9 + 9) + 58 * 8);
            }
        }
        assert!(Manifest::read(r.manifest_path()).unwrap() == m);
    }

    #[test]
    fn a_codec_switch_continues_in_a_new_file_of_the_right_container() {
        let (dir, t0) = (tempfile::tempdir().unwrap(), Instant::now());
        let mut r = recording(dir.path(), "switch", t0);
        let v = key("ada", "cam", TrackKind::Video);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        send(
            &mut r,
            &v,
            (1, 0),
            coded(MediaCodec::Vp8, vp8_key(320, 180), 0, at(0), true),
        );
        send(
            &mut r,
            &v,
            (1, 0),
            coded(MediaCodec::Vp8, vec![1, 0, 0], 3000, at(33), false),
        );
        // Gathering ends (the only published track has frames) at the first frame: the file is
        // open. The publisher switches to VP9, then to H.264.
        send(
            &mut r,
            &v,
            (1, 1),
            coded(MediaCodec::Vp9, vp9_key(320, 180), 6000, at(66), true),
        );
        send(
            &mut r,
            &v,
            (1, 1),
            coded(MediaCodec::Vp9, VP9_INTER.to_vec(), 9000, at(99), false),
        );
        // An H.264 frame without SPS and PPS cannot start a file: dropped, the VP9 file stays.
        send(
            &mut r,
            &v,
            (1, 2),
            coded(MediaCodec::H264, H264_INTER.to_vec(), 10500, at(116), false),
        );
        assert_eq!(r.manifest().participants[0].files.len(), 2);
        assert_eq!(r.manifest().participants[0].files[1].state, "recording");
        send(
            &mut r,
            &v,
            (1, 2),
            coded(
                MediaCodec::H264,
                h264_key(&SPS_320X240),
                12000,
                at(133),
                true,
            ),
        );
        r.handle(Input::Stop, at(1000));
        let files: Vec<_> = r.manifest().participants[0]
            .files
            .iter()
            .map(|f| {
                (
                    f.path.clone(),
                    f.reason.clone(),
                    f.tracks[0].codec.clone(),
                    f.tracks[0].frames,
                )
            })
            .collect();
        let row =
            |p: &str, why: &str, c: &str, n: u64| (p.to_owned(), why.to_owned(), c.to_owned(), n);
        assert_eq!(
            files,
            [
                row("ada.webm", "joined", "vp8", 2),
                row("ada-2.webm", "codec changed", "vp9", 2),
                row("ada-3.mkv", "codec changed", "h264", 1),
            ]
        );
        let info = WebmInfo::read(dir.path().join("ada-3.mkv")).unwrap();
        assert!(info.finalized && info.doc_type == "matroska", "{info:?}");
        // A codec the files cannot hold (here: Opus on a video track) is dropped and listed
        // once, and opens or closes no file.
        let mut r = recording(dir.path(), "odd", t0);
        for n in 0..3 {
            let f = coded(MediaCodec::Opus, vec![0xF8], n * 3000, at(n * 33), true);
            send(&mut r, &v, (1, 0), f);
        }
        r.handle(Input::Stop, at(1000));
        let m = r.manifest();
        assert!(m.participants.is_empty(), "{m:#?}");
        assert_eq!(m.errors.len(), 1, "{:?}", m.errors);
        assert!(
            m.errors[0].contains("audio/opus is not recorded"),
            "{:?}",
            m.errors
        );
        // A later visit takes the next number, whichever container holds the one before.
        let mut r2 = recording(dir.path(), "switch", t0);
        send(
            &mut r2,
            &v,
            (9, 0),
            coded(MediaCodec::H264, h264_key(&SPS_320X240), 0, at(0), true),
        );
        r2.handle(Input::Stop, at(500));
        assert_eq!(r2.manifest().participants[0].files[0].path, "ada-4.mkv");
    }

    #[test]
    fn a_killed_recording_of_h264_is_recovered() {
        let (dir, t0) = (tempfile::tempdir().unwrap(), Instant::now());
        let mut r = recording(dir.path(), "crash", t0);
        publish(&mut r, "hal", t0);
        camera_and_mic(&mut r, "hal", MediaCodec::H264, t0, 90, &[(320, 240)]);
        let path = r.manifest_path().to_path_buf();
        let m = Manifest::read(&path).unwrap();
        assert_eq!(m.participants[0].files[0].path, "hal.mkv");
        assert_eq!(m.participants[0].files[0].state, "recording");
        // Killed: no stop, no drop.
        std::mem::forget(r);
        let info = WebmInfo::read(dir.path().join("hal.mkv")).unwrap();
        assert!(!info.finalized && info.clusters >= 2, "{info:?}");
        let m = super::super::recover_dir(&path).unwrap();
        let f = &m.participants[0].files[0];
        assert_eq!(
            (f.state.as_str(), f.tracks[0].codec.as_str()),
            ("recovered", "h264")
        );
        let info = WebmInfo::read(dir.path().join("hal.mkv")).unwrap();
        assert!(info.finalized && info.doc_type == "matroska", "{info:?}");
        assert!(info.track("V_MPEG4/ISO/AVC").unwrap().frames >= 60);
    }

    #[test]
    fn manifests_without_a_codec_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.json");
        let old = r#"{"room":"r","recorder":"rec","started_at":"","ended_at":"","state":"finalized",
            "participants_filter":[],"tracks_filter":[],"errors":[],
            "participants":[{"identity":"a","name":"a","sids":[],"files":[{"path":"a.webm",
            "reason":"joined","started_at":"","ended_at":"","state":"finalized",
            "closed_because":"stopped","duration_ms":5,"tracks":[{"name":"cam","kind":"video",
            "sids":[],"frames":1,"keyframes":1,"bytes":9,"first_ms":0,"last_ms":0,
            "skipped_frames":0,"keyframe_requests":0,"queue_drops":0,"resyncs":0,
            "resolutions":[],"gaps":[],"mutes":[]}]}]}]}"#;
        std::fs::write(&path, old).unwrap();
        let m = Manifest::read(&path).unwrap();
        let t = &m.participants[0].files[0].tracks[0];
        assert_eq!((t.codec.as_str(), t.frames), ("", 1));
    }

    /// Frames ffmpeg encodes (`libx264` baseline in Annex B split at its access unit delimiters,
    /// or `libvpx-vp9` in IVF): `frames` of its test source at `w`×`h`, 30 fps, a keyframe
    /// every 30 frames.
    fn ffmpeg_frames(dir: &Path, codec: MediaCodec, w: u32, h: u32, frames: u32) -> Vec<Vec<u8>> {
        let path = dir.join(format!("{w}x{h}.{codec:?}"));
        let mut cmd = std::process::Command::new("ffmpeg");
        cmd.args(["-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc=size={w}x{h}:rate=30"))
            .args([
                "-frames:v",
                &frames.to_string(),
                "-pix_fmt",
                "yuv420p",
                "-g",
                "30",
            ]);
        if codec == MediaCodec::H264 {
            cmd.args([
                "-c:v",
                "libx264",
                "-profile:v",
                "baseline",
                "-x264-params",
                "aud=1",
            ])
            .args(["-bsf:v", "h264_mp4toannexb", "-f", "h264"]);
        } else {
            cmd.args(["-c:v", "libvpx-vp9", "-speed", "8", "-f", "ivf"]);
        }
        let out = cmd.arg(&path).output().expect("ffmpeg runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes = std::fs::read(&path).unwrap();
        if codec == MediaCodec::H264 {
            let mut starts: Vec<usize> = (0..bytes.len().saturating_sub(3))
                .filter(|&i| bytes[i..i + 3] == [0, 0, 1] && bytes[i + 3] & 0x1F == 9)
                .map(|i| if i > 0 && bytes[i - 1] == 0 { i - 1 } else { i })
                .collect();
            starts.push(bytes.len());
            starts
                .windows(2)
                .map(|w| bytes[w[0]..w[1]].to_vec())
                .collect()
        } else {
            let mut at = 32;
            let mut out = Vec::new();
            while at + 12 <= bytes.len() {
                let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
                out.push(bytes[at + 12..at + 12 + len].to_vec());
                at += 12 + len;
            }
            out
        }
    }

    /// Real H.264 and VP9 (from ffmpeg's encoders, each growing from 320×240 to 640×360 at
    /// its second keyframe) through the recording: ffprobe reads each file with its codec and
    /// first size, and ffmpeg decodes every frame at both sizes without a complaint.
    #[test]
    fn real_h264_and_vp9_frames_decode_from_the_recorded_files() {
        let (dir, t0) = (tempfile::tempdir().unwrap(), Instant::now());
        let mut r = recording(dir.path(), "real", t0);
        for (who, codec) in [("hal", MediaCodec::H264), ("vic", MediaCodec::Vp9)] {
            let v = key(who, "cam", TrackKind::Video);
            let mut frames = ffmpeg_frames(dir.path(), codec, 320, 240, 30);
            frames.extend(ffmpeg_frames(dir.path(), codec, 640, 360, 30));
            for (n, data) in frames.into_iter().enumerate() {
                let n = n as u64;
                let at = t0 + Duration::from_millis(n * 1000 / 30);
                let keyframe = n.is_multiple_of(30);
                send(
                    &mut r,
                    &v,
                    (1, 0),
                    coded(codec, data, n * 3000, at, keyframe),
                );
            }
        }
        r.handle(Input::Stop, t0 + Duration::from_secs(3));
        for (who, file, name) in [("hal", "hal.mkv", "h264"), ("vic", "vic.webm", "vp9")] {
            let m = r.manifest().participant(who).unwrap();
            assert_eq!(m.files[0].path, file);
            assert_eq!(m.files[0].tracks[0].codec, name);
            assert_eq!(m.files[0].tracks[0].frames, 60);
            let path = dir.path().join(file);
            let out = std::process::Command::new("ffprobe")
                .args([
                    "-v",
                    "error",
                    "-count_frames",
                    "-show_streams",
                    "-of",
                    "json",
                ])
                .arg(&path)
                .output()
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let s = &v["streams"][0];
            assert_eq!(s["codec_name"], name, "{v}");
            assert_eq!(
                (s["width"].as_u64(), s["height"].as_u64()),
                (Some(320), Some(240))
            );
            assert_eq!(s["nb_read_frames"].as_str(), Some("60"), "{v}");
            let out = std::process::Command::new("ffmpeg")
                .args(["-v", "error", "-nostdin", "-i"])
                .arg(&path)
                .args(["-f", "null", "-"])
                .output()
                .unwrap();
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "{}: {}",
                file,
                String::from_utf8_lossy(&out.stderr)
            );
            let out = std::process::Command::new("ffprobe")
                .args([
                    "-v",
                    "error",
                    "-show_entries",
                    "frame=width",
                    "-of",
                    "csv=p=0",
                ])
                .arg(&path)
                .output()
                .unwrap();
            let widths = String::from_utf8_lossy(&out.stdout);
            let large = widths
                .lines()
                .filter(|l| l.trim_end_matches(',') == "640")
                .count();
            assert_eq!(large, 30, "{file}: {widths}");
        }
    }

    /// A muted video track has no frames when its participant's file opens: the file's track
    /// takes the codec the server announces, so the frames after the unmute fit it.
    #[test]
    fn a_track_without_frames_gets_the_announced_codec() {
        let (dir, t0) = (tempfile::tempdir().unwrap(), Instant::now());
        let mut r = recording(dir.path(), "muted", t0);
        let mut cam = info("TR_cam", "cam", TrackKind::Video);
        cam.codec = Some(MediaCodec::Vp9);
        cam.muted = true;
        let mic = info("TR_mic", "mic", TrackKind::Audio);
        for track in [cam, mic] {
            let identity = "vic".into();
            r.handle(Input::Published { identity, track }, t0);
        }
        let (a, v) = (
            key("vic", "mic", TrackKind::Audio),
            key("vic", "cam", TrackKind::Video),
        );
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        for n in 0..10 {
            send(
                &mut r,
                &a,
                (1, 0),
                frame(vec![0xF8], n * 960, at(n * 20), true),
            );
        }
        let unmute = Input::Muted {
            track_sid: "TR_cam".into(),
            muted: false,
        };
        r.handle(unmute, at(200));
        let key_frame = coded(MediaCodec::Vp9, vp9_key(640, 360), 0, at(210), true);
        send(&mut r, &v, (2, 0), key_frame);
        let inter = coded(MediaCodec::Vp9, VP9_INTER.to_vec(), 3000, at(243), false);
        send(&mut r, &v, (2, 0), inter);
        r.handle(Input::Stop, at(1000));
        let p = r.manifest().participant("vic").unwrap();
        assert_eq!(p.files.len(), 1, "{p:#?}");
        let video = p.files[0]
            .tracks
            .iter()
            .find(|t| t.kind == "video")
            .unwrap();
        assert_eq!((video.codec.as_str(), video.frames), ("vp9", 2));
        let info = WebmInfo::read(dir.path().join("vic.webm")).unwrap();
        // The published size until the first keyframe says otherwise.
        assert_eq!(info.track("V_VP9").unwrap().size, Some((320, 180)));
    }
}
