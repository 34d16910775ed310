//! WebM and Matroska files for encoded video and audio, written so that a crash loses at most
//! the last second.
//!
//! | codec | [`TrackSpec`] | CodecID | stored as | container |
//! |---|---|---|---|---|
//! | VP8 | [`TrackSpec::vp8`] | `V_VP8` | the frame | WebM (`.webm`) |
//! | VP9 | [`TrackSpec::vp9`] | `V_VP9` | the frame (superframes whole) | WebM (`.webm`) |
//! | H.264 | [`TrackSpec::h264_from_keyframe`] | `V_MPEG4/ISO/AVC` | NAL units behind 4-byte lengths, CodecPrivate from the first keyframe's SPS and PPS | Matroska (`.mkv`) |
//! | Opus | [`TrackSpec::opus`] | `A_OPUS` | the packet | WebM (`.webm`) |
//!
//! A file with an H.264 track is a Matroska file (DocType `matroska`, [`extension`] `mkv`);
//! otherwise it is WebM. Everything below holds for both. Keyframe sizes are read from each
//! codec's own header: [`vp8_keyframe_size`], [`vp9::keyframe_size`], [`h264::keyframe_size`]
//! (or [`keyframe_size`] by [`VideoCodec`]).
//!
//! - [`WebmWriter`] takes encoded frames as they arrive (passthrough, no transcoding) and writes
//!   them in clusters: each cluster is built in memory and written whole with one `write` when it
//!   is closed — at a video keyframe, when its media span reaches [`WebmOptions::max_cluster`],
//!   or when the caller's [`WebmWriter::flush_if_older`] finds it held longer than that in wall
//!   time (a muted track produces no frames, yet what was buffered still reaches the disk).
//! - The Segment is written with an *unknown* size and the Info's Duration is rewritten in place
//!   after every cluster, so a file cut at any byte (SIGKILL, power loss after the page cache
//!   reached the disk) opens in ordinary players and reads up to its last whole cluster.
//! - [`WebmWriter::finish`] (a clean stop) appends Cues (one per video keyframe cluster, or per
//!   cluster for audio-only files), writes a SeekHead into the space reserved for it, and the
//!   Segment's real size.
//! - [`recover`] does the same for a file a crash cut short: it drops the partial last cluster,
//!   then writes Cues, Duration, SeekHead and sizes. [`WebmInfo::read`] reports what a file holds.
//! - A writer never overwrites: [`WebmWriter::create`] fails when the file exists.
//!
//! ```
//! use std::time::Duration;
//! use wavecast_media::webm::{recover, TrackSpec, WebmInfo, WebmOptions, WebmWriter};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("alice.webm");
//! let tracks = [TrackSpec::opus("microphone", 2)];
//! let mut w = WebmWriter::create(&path, &tracks, WebmOptions::default())?;
//! let packet = [0xFCu8, 0xFF, 0xFE]; // an Opus packet (here: a 20 ms silent one)
//! for n in 0..100u64 {
//!     w.write_frame(0, Duration::from_millis(n * 20), true, &packet)?;
//! }
//! let summary = w.finish()?;
//! assert_eq!(summary.tracks[0].frames, 100);
//! let info = WebmInfo::read(&path)?;
//! assert!(info.finalized);
//! assert_eq!(info.duration, Some(Duration::from_secs(2)));
//! assert!(recover(&path)?.already_final);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design
//! A small EBML writer of our own: the registry's muxers either wrap libwebm's C++ (`webm`:
//! no control of cluster length or flushing, nothing to repair a cut file) or are element
//! codecs without a muxer policy, and crash safety is all policy. Timestamps are in
//! milliseconds (TimecodeScale 1 000 000 ns), relative to the file's start; blocks are
//! SimpleBlocks without lacing. A resolution change needs nothing from the container (VP8 and
//! VP9 carry the size in every keyframe; H.264 keyframes carry their SPS and PPS in-band, and
//! the stored samples keep them, so a decoder picks up a new SPS from the sample even though
//! CodecPrivate holds the first); the track header keeps the first size. Tracks are fixed when
//! the file is created. H.264 blocks are stamped with the frame's (presentation) time, which is
//! its decoding time as long as the stream has no B-frames — WebRTC's profiles have none.

mod ebml;
pub mod h264;
mod read;
pub mod vp9;

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use ebml::id;

use crate::error::{MediaError, Result, io_err};

pub use read::{RecoverReport, TrackInfo, WebmInfo, recover};

/// Bytes reserved after the Segment header for the SeekHead written at the end.
const SEEK_HEAD_RESERVE: usize = 96;
/// Matroska dates count from 2001-01-01T00:00:00 UTC.
const MATROSKA_EPOCH_UNIX_SECS: u64 = 978_307_200;

/// A track of a WebM (or, with H.264, Matroska) file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrackSpec {
    /// VP8 video.
    Vp8 {
        /// Track name.
        name: String,
        /// Width of the first picture (the stream may change size later).
        width: u32,
        /// Height of the first picture.
        height: u32,
    },
    /// VP9 video (frames as they arrive: superframes stay whole).
    Vp9 {
        /// Track name.
        name: String,
        /// Width of the first picture (the stream may change size later).
        width: u32,
        /// Height of the first picture.
        height: u32,
    },
    /// H.264 video: frames are given in Annex B and stored with 4-byte lengths; the file is a
    /// Matroska file (`.mkv`), not WebM.
    H264 {
        /// Track name.
        name: String,
        /// Width of the first picture (the stream may change size later).
        width: u32,
        /// Height of the first picture.
        height: u32,
        /// The `AVCDecoderConfigurationRecord` (CodecPrivate) declaring 4-byte NAL lengths:
        /// [`h264::avc_decoder_config`] of the first keyframe.
        avc_config: Vec<u8>,
    },
    /// Opus audio at 48 kHz.
    Opus {
        /// Track name.
        name: String,
        /// Channels the decoder should output (1 or 2; WebRTC signals 2).
        channels: u8,
    },
}

impl TrackSpec {
    /// A VP8 track.
    pub fn vp8(name: impl Into<String>, width: u32, height: u32) -> Self {
        TrackSpec::Vp8 {
            name: name.into(),
            width,
            height,
        }
    }

    /// A VP9 track.
    pub fn vp9(name: impl Into<String>, width: u32, height: u32) -> Self {
        TrackSpec::Vp9 {
            name: name.into(),
            width,
            height,
        }
    }

    /// An H.264 track with this `AVCDecoderConfigurationRecord` (4-byte NAL lengths): see
    /// [`TrackSpec::h264_from_keyframe`] to build it from a keyframe.
    pub fn h264(name: impl Into<String>, width: u32, height: u32, avc_config: Vec<u8>) -> Self {
        TrackSpec::H264 {
            name: name.into(),
            width,
            height,
            avc_config,
        }
    }

    /// An H.264 track for the stream this Annex B keyframe starts: size from its SPS,
    /// CodecPrivate from its SPS and PPS. `None` when the frame lacks a readable SPS or a PPS.
    pub fn h264_from_keyframe(name: impl Into<String>, keyframe: &[u8]) -> Option<Self> {
        let (width, height) = h264::keyframe_size(keyframe)?;
        let avc_config = h264::avc_decoder_config(keyframe)?;
        Some(Self::h264(name, width, height, avc_config))
    }

    /// An Opus track.
    pub fn opus(name: impl Into<String>, channels: u8) -> Self {
        TrackSpec::Opus {
            name: name.into(),
            channels,
        }
    }

    /// Whether it is video.
    pub fn is_video(&self) -> bool {
        !matches!(self, TrackSpec::Opus { .. })
    }

    /// The Matroska CodecID (`V_VP8`, `V_VP9`, `V_MPEG4/ISO/AVC`, `A_OPUS`), as
    /// [`TrackInfo::codec`] reads it back.
    pub fn codec_id(&self) -> &'static str {
        match self {
            TrackSpec::Vp8 { .. } => "V_VP8",
            TrackSpec::Vp9 { .. } => "V_VP9",
            TrackSpec::H264 { .. } => "V_MPEG4/ISO/AVC",
            TrackSpec::Opus { .. } => "A_OPUS",
        }
    }

    /// The video codec (`None` for audio).
    pub fn video_codec(&self) -> Option<VideoCodec> {
        match self {
            TrackSpec::Vp8 { .. } => Some(VideoCodec::Vp8),
            TrackSpec::Vp9 { .. } => Some(VideoCodec::Vp9),
            TrackSpec::H264 { .. } => Some(VideoCodec::H264),
            TrackSpec::Opus { .. } => None,
        }
    }

    /// Whether WebM allows the codec (VP8, VP9, Opus); H.264 needs Matroska.
    pub fn in_webm(&self) -> bool {
        !matches!(self, TrackSpec::H264 { .. })
    }

    fn name(&self) -> &str {
        match self {
            TrackSpec::Vp8 { name, .. }
            | TrackSpec::Vp9 { name, .. }
            | TrackSpec::H264 { name, .. }
            | TrackSpec::Opus { name, .. } => name,
        }
    }

    fn size(&self) -> Option<(u32, u32)> {
        match self {
            TrackSpec::Vp8 { width, height, .. }
            | TrackSpec::Vp9 { width, height, .. }
            | TrackSpec::H264 { width, height, .. } => Some((*width, *height)),
            TrackSpec::Opus { .. } => None,
        }
    }
}

/// The container a file of these tracks is: `webm` when WebM allows every codec (VP8, VP9,
/// Opus), else `matroska` (H.264). It is the file's EBML DocType.
pub fn doc_type(tracks: &[TrackSpec]) -> &'static str {
    if tracks.iter().all(TrackSpec::in_webm) {
        "webm"
    } else {
        "matroska"
    }
}

/// The file extension for a file of these tracks: `webm`, or `mkv` when one is H.264.
pub fn extension(tracks: &[TrackSpec]) -> &'static str {
    if doc_type(tracks) == "webm" {
        "webm"
    } else {
        "mkv"
    }
}

/// How a [`WebmWriter`] writes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WebmOptions {
    /// Longest a cluster may span in media time and be held in memory in wall time (also the
    /// most a crash can lose). Default 1 s.
    pub max_cluster: Duration,
    /// Ask the OS to write each cluster to the disk (`fdatasync`) — only needed to survive a
    /// power cut; a killed process loses nothing that was written. Default off.
    pub sync_clusters: bool,
    /// The recording's wall-clock start (Info DateUTC); default: when the file is created.
    pub date: Option<SystemTime>,
    /// Segment title.
    pub title: Option<String>,
    /// WritingApp in the Info.
    pub writing_app: String,
}

impl Default for WebmOptions {
    fn default() -> Self {
        Self {
            max_cluster: Duration::from_secs(1),
            sync_clusters: false,
            date: None,
            title: None,
            writing_app: concat!("wavecast-media ", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl WebmOptions {
    /// Set the segment title.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Set the wall-clock start.
    pub fn date(mut self, date: SystemTime) -> Self {
        self.date = Some(date);
        self
    }

    /// Set the longest cluster (clamped to 10 ms ..= 30 s).
    pub fn max_cluster(mut self, d: Duration) -> Self {
        self.max_cluster = d.clamp(Duration::from_millis(10), Duration::from_secs(30));
        self
    }
}

/// Counters of one track of a written file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrackStats {
    /// Frames written.
    pub frames: u64,
    /// Keyframes among them.
    pub keyframes: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// Timestamp of the first frame.
    pub first: Option<Duration>,
    /// Timestamp of the last frame.
    pub last: Option<Duration>,
    /// Frames whose timestamp went backwards and was clamped to the previous one.
    pub clamped: u64,
    /// Video frames not written because a cluster before them could not be (they would not
    /// decode): skipped up to the next keyframe.
    pub skipped: u64,
}

/// What [`WebmWriter::finish`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebmSummary {
    /// The file.
    pub path: PathBuf,
    /// Per track, in the order given to [`WebmWriter::create`].
    pub tracks: Vec<TrackStats>,
    /// The Duration written (end of the last frame).
    pub duration: Duration,
    /// Clusters written.
    pub clusters: u64,
    /// Clusters that could not be written (a write failed, e.g. the disk was full) and are
    /// not in the file.
    pub lost_clusters: u64,
    /// File size in bytes.
    pub bytes: u64,
}

/// Where the patchable parts of a file are (absolute offsets), shared by the writer and
/// [`recover`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    /// Offset of the Segment's 8-byte size field.
    pub segment_size_at: u64,
    /// Offset of the Segment's first payload byte.
    pub segment_data: u64,
    /// Offset and length of the Void reserved for the SeekHead.
    pub reserve_at: u64,
    pub reserve_len: usize,
    /// Segment-relative positions of Info and Tracks.
    pub info_pos: u64,
    pub tracks_pos: u64,
    /// Offset of the Duration's 8-byte float.
    pub duration_at: u64,
}

/// One cue: a cluster that starts at a keyframe of `track`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cue {
    pub time_ms: u64,
    pub track: u64,
    /// Segment-relative position of the cluster.
    pub cluster_pos: u64,
}

/// Bytes kept free before a cluster's blocks for its header: Cluster id (4), size (at most 8),
/// Timecode element (at most 10).
const CLUSTER_HEAD_ROOM: usize = 24;

/// Writes encoded VP8, VP9, H.264 and Opus frames into a WebM or Matroska file: see the
/// [module docs](self).
///
/// Dropping a writer without [`WebmWriter::finish`] writes the pending cluster and leaves the
/// file as a crash would (readable; [`recover`] completes it).
pub struct WebmWriter {
    path: PathBuf,
    file: File,
    tracks: Vec<TrackSpec>,
    options: WebmOptions,
    layout: Layout,
    /// File length (everything before is written).
    end: u64,
    /// The pending cluster: [`CLUSTER_HEAD_ROOM`] bytes kept free for its header, then its
    /// blocks. The header goes right before the blocks and the whole is written from there, so
    /// a flush neither allocates nor copies the blocks.
    cluster: Vec<u8>,
    /// Scratch for the cluster header (reused).
    cluster_head: Vec<u8>,
    cluster_ms: Option<u64>,
    last_cluster_ms: u64,
    cluster_opened: Option<Instant>,
    cluster_cued: bool,
    clusters: u64,
    /// Clusters given up because their write failed.
    lost_clusters: u64,
    cues: Vec<Cue>,
    stats: Vec<TrackStats>,
    last_delta_ms: Vec<u64>,
    end_ms: u64,
    /// `end_ms` as of the last cluster in the file.
    flushed_end_ms: u64,
    /// A cluster was lost: video frames are skipped up to the next keyframe.
    video_lost: bool,
    finished: bool,
}

impl std::fmt::Debug for WebmWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebmWriter")
            .field("path", &self.path)
            .field("tracks", &self.tracks)
            .field("clusters", &self.clusters)
            .finish()
    }
}

/// The OpusHead identification header (RFC 7845) used as Opus CodecPrivate. The pre-skip is
/// zero: WebRTC does not signal the sender's encoder delay.
fn opus_head(channels: u8) -> [u8; 19] {
    let mut h = [0u8; 19];
    h[..8].copy_from_slice(b"OpusHead");
    h[8] = 1;
    h[9] = channels;
    h[12..16].copy_from_slice(&48_000u32.to_le_bytes());
    h
}

/// Width and height of a keyframe of `codec` from its own header (VP8 frame header, VP9
/// uncompressed header, H.264 SPS), `None` for other frames or garbage.
pub fn keyframe_size(codec: VideoCodec, frame: &[u8]) -> Option<(u32, u32)> {
    match codec {
        VideoCodec::Vp8 => vp8_keyframe_size(frame),
        VideoCodec::Vp9 => vp9::keyframe_size(frame),
        VideoCodec::H264 => h264::keyframe_size(frame),
    }
}

/// The video codecs this writer stores: VP8 and VP9 in WebM, H.264 in Matroska.
pub use wavecast_codec::VideoCodec;

/// Width and height from a VP8 keyframe's header (`None` for interframes or garbage).
pub fn vp8_keyframe_size(frame: &[u8]) -> Option<(u32, u32)> {
    wavecast_codec::vp8_keyframe_size(frame).filter(|&(w, h)| w > 0 && h > 0)
}

/// Whether a VP8 frame is a keyframe (bit 0 of the frame tag is 0).
pub fn vp8_is_keyframe(frame: &[u8]) -> bool {
    vp8_keyframe_size(frame).is_some()
}

/// Whether a write failed because the file system (or the caller's quota, or the file size
/// limit) has no room left.
fn is_out_of_space(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{FileTooLarge, QuotaExceeded, StorageFull};
    matches!(e.kind(), StorageFull | QuotaExceeded | FileTooLarge)
}

fn date_ns(date: SystemTime) -> i64 {
    let unix = date
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let since = unix.saturating_sub(Duration::from_secs(MATROSKA_EPOCH_UNIX_SECS));
    i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
}

fn track_uid(number: u64) -> u64 {
    // Any non-zero value unique in the file; mixed so files do not all share the same UIDs.
    number.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
}

impl WebmWriter {
    /// Create `path` (never overwriting: an existing file is an error) and write the header for
    /// `tracks` (at least one). Frames name their track by its index in `tracks`.
    pub fn create(
        path: impl AsRef<Path>,
        tracks: &[TrackSpec],
        options: WebmOptions,
    ) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let invalid = |reason: String| MediaError::Webm {
            path: path.clone(),
            reason,
        };
        if tracks.is_empty() {
            return Err(invalid("a WebM file needs at least one track".into()));
        }
        if tracks.len() > 126 {
            return Err(invalid(format!("{} tracks (at most 126)", tracks.len())));
        }
        for t in tracks {
            match t {
                _ if t.size().is_some_and(|(w, h)| w == 0 || h == 0) => {
                    return Err(invalid(format!("video track {:?}: size 0", t.name())));
                }
                TrackSpec::H264 { avc_config, .. }
                    if avc_config.len() < 7 || avc_config[0] != 1 || avc_config[4] & 3 != 3 =>
                {
                    return Err(invalid(format!(
                        "H.264 track {:?}: CodecPrivate is no AVCDecoderConfigurationRecord \
                         with 4-byte lengths",
                        t.name()
                    )));
                }
                TrackSpec::Opus { channels, .. } if !(1..=2).contains(channels) => {
                    return Err(invalid(format!(
                        "audio track {:?}: {channels} channels (1 or 2)",
                        t.name()
                    )));
                }
                _ => {}
            }
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err(&path, "create (never overwriting)"))?;

        let mut out = Vec::with_capacity(512);
        // EBML header.
        let mut h = Vec::new();
        ebml::put_uint(&mut h, id::EBML_VERSION, 1);
        ebml::put_uint(&mut h, id::EBML_READ_VERSION, 1);
        ebml::put_uint(&mut h, id::EBML_MAX_ID_LENGTH, 4);
        ebml::put_uint(&mut h, id::EBML_MAX_SIZE_LENGTH, 8);
        ebml::put_bytes(&mut h, id::DOC_TYPE, doc_type(tracks).as_bytes());
        ebml::put_uint(&mut h, id::DOC_TYPE_VERSION, 4);
        ebml::put_uint(&mut h, id::DOC_TYPE_READ_VERSION, 2);
        ebml::put_master(&mut out, id::EBML, &h);
        // Segment of unknown size.
        ebml::put_id(&mut out, id::SEGMENT);
        let segment_size_at = out.len() as u64;
        out.extend_from_slice(&ebml::UNKNOWN_SIZE);
        let segment_data = out.len() as u64;
        let reserve_at = out.len() as u64;
        ebml::put_void(&mut out, SEEK_HEAD_RESERVE);
        // Info.
        let info_pos = out.len() as u64 - segment_data;
        let mut info = Vec::new();
        ebml::put_uint(&mut info, id::TIMECODE_SCALE, 1_000_000);
        ebml::put_bytes(&mut info, id::MUXING_APP, options.writing_app.as_bytes());
        ebml::put_bytes(&mut info, id::WRITING_APP, options.writing_app.as_bytes());
        ebml::put_int8(
            &mut info,
            id::DATE_UTC,
            date_ns(options.date.unwrap_or_else(SystemTime::now)),
        );
        if let Some(t) = &options.title {
            ebml::put_bytes(&mut info, id::TITLE, t.as_bytes());
        }
        let duration_in_info = info.len() + 3; // id (2) + size (1) precede the float
        ebml::put_float(&mut info, id::DURATION, 0.0);
        let info_header_start = out.len();
        ebml::put_master(&mut out, id::INFO, &info);
        let info_header_len = out.len() - info_header_start - info.len();
        let duration_at = (info_header_start + info_header_len + duration_in_info) as u64;
        // Tracks.
        let tracks_pos = out.len() as u64 - segment_data;
        let mut all = Vec::new();
        for (i, t) in tracks.iter().enumerate() {
            let number = i as u64 + 1;
            let mut e = Vec::new();
            ebml::put_uint(&mut e, id::TRACK_NUMBER, number);
            ebml::put_uint(&mut e, id::TRACK_UID, track_uid(number));
            ebml::put_uint(&mut e, id::FLAG_LACING, 0);
            ebml::put_bytes(&mut e, id::NAME, t.name().as_bytes());
            ebml::put_bytes(&mut e, id::CODEC_ID, t.codec_id().as_bytes());
            match t {
                TrackSpec::Vp8 { width, height, .. }
                | TrackSpec::Vp9 { width, height, .. }
                | TrackSpec::H264 { width, height, .. } => {
                    ebml::put_uint(&mut e, id::TRACK_TYPE, 1);
                    if let TrackSpec::H264 { avc_config, .. } = t {
                        ebml::put_bytes(&mut e, id::CODEC_PRIVATE, avc_config);
                    }
                    let mut v = Vec::new();
                    ebml::put_uint(&mut v, id::PIXEL_WIDTH, u64::from(*width));
                    ebml::put_uint(&mut v, id::PIXEL_HEIGHT, u64::from(*height));
                    ebml::put_master(&mut e, id::VIDEO, &v);
                }
                TrackSpec::Opus { channels, .. } => {
                    ebml::put_uint(&mut e, id::TRACK_TYPE, 2);
                    ebml::put_bytes(&mut e, id::CODEC_PRIVATE, &opus_head(*channels));
                    ebml::put_uint(&mut e, id::CODEC_DELAY, 0);
                    ebml::put_uint(&mut e, id::SEEK_PRE_ROLL, 80_000_000);
                    let mut a = Vec::new();
                    ebml::put_float(&mut a, id::SAMPLING_FREQUENCY, 48_000.0);
                    ebml::put_uint(&mut a, id::CHANNELS, u64::from(*channels));
                    ebml::put_master(&mut e, id::AUDIO, &a);
                }
            }
            ebml::put_master(&mut all, id::TRACK_ENTRY, &e);
        }
        ebml::put_master(&mut out, id::TRACKS, &all);

        let mut file = file;
        if let Err(e) = file.write_all(&out) {
            // Leave no headless file behind (the disk may be full).
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(io_err(&path, "write WebM header")(e));
        }
        Ok(Self {
            path,
            file,
            tracks: tracks.to_vec(),
            layout: Layout {
                segment_size_at,
                segment_data,
                reserve_at,
                reserve_len: SEEK_HEAD_RESERVE,
                info_pos,
                tracks_pos,
                duration_at,
            },
            options,
            end: out.len() as u64,
            cluster: {
                let mut c = Vec::with_capacity(256 * 1024);
                c.resize(CLUSTER_HEAD_ROOM, 0);
                c
            },
            cluster_head: Vec::with_capacity(CLUSTER_HEAD_ROOM),
            cluster_ms: None,
            last_cluster_ms: 0,
            cluster_opened: None,
            cluster_cued: false,
            clusters: 0,
            lost_clusters: 0,
            cues: Vec::new(),
            stats: vec![TrackStats::default(); tracks.len()],
            last_delta_ms: vec![0; tracks.len()],
            end_ms: 0,
            flushed_end_ms: 0,
            video_lost: false,
            finished: false,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tracks, in the order given at creation.
    pub fn tracks(&self) -> &[TrackSpec] {
        &self.tracks
    }

    /// Counters of track `index`.
    pub fn track_stats(&self, index: usize) -> Option<TrackStats> {
        self.stats.get(index).copied()
    }

    /// End of the last frame written so far (what Duration says after the next flush).
    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.end_ms)
    }

    /// Append one encoded frame of track `track` (index into the tracks given at creation) at
    /// `timestamp` from the start of the file. A timestamp earlier than the track's previous
    /// one is clamped to it (and counted). Video frames after packet loss should start again
    /// at a keyframe: the writer stores what it is given.
    pub fn write_frame(
        &mut self,
        track: usize,
        timestamp: Duration,
        keyframe: bool,
        data: &[u8],
    ) -> Result<()> {
        if self.finished {
            return Err(self.invalid("write after finish".into()));
        }
        let Some(spec) = self.tracks.get(track) else {
            return Err(self.invalid(format!(
                "track index {track} out of range ({} tracks)",
                self.tracks.len()
            )));
        };
        let video = spec.is_video();
        let annex_b = matches!(spec, TrackSpec::H264 { .. });
        let keyframe = keyframe || !video;
        // H.264 is stored with 4-byte lengths in place of start codes (converted straight into
        // the cluster buffer); a frame without a NAL unit is refused before anything changes.
        let payload_len = if annex_b {
            match h264::length_prefixed_len(data) {
                0 => {
                    // (No byte count in the text: callers list each distinct error once.)
                    return Err(self.invalid(format!(
                        "track {track}: an H.264 frame without an Annex B start code, not written"
                    )));
                }
                n => n,
            }
        } else {
            data.len()
        };
        if video && self.video_lost {
            if !keyframe {
                // What it refers to was in a cluster that could not be written.
                self.stats[track].skipped += 1;
                return Ok(());
            }
            self.video_lost = false;
        }
        let mut ms = u64::try_from(timestamp.as_millis()).unwrap_or(u64::MAX / 2);
        let st = &mut self.stats[track];
        if let Some(last) = st.last {
            let last_ms = last.as_millis() as u64;
            if ms < last_ms {
                ms = last_ms;
                st.clamped += 1;
            } else if ms > last_ms {
                self.last_delta_ms[track] = ms - last_ms;
            }
        }
        // A new cluster: at a video keyframe, past the span, or when the relative time does not
        // fit the block's signed 16 bits.
        let max_ms = self.options.max_cluster.as_millis() as u64;
        if let Some(c) = self.cluster_ms {
            let rel = ms as i64 - c as i64;
            let split = (video && keyframe)
                || rel >= max_ms as i64
                || !(i64::from(i16::MIN)..=i64::from(i16::MAX)).contains(&rel);
            if split {
                self.flush()?;
            }
        }
        if self.cluster_ms.is_none() {
            let c = ms.max(self.last_cluster_ms);
            self.cluster_ms = Some(c);
            self.last_cluster_ms = c;
            self.cluster_opened = Some(Instant::now());
            self.cluster_cued = false;
        }
        let c = self.cluster_ms.unwrap_or(ms);
        let rel = (ms as i64 - c as i64).clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16;
        // Cue the cluster at its first video keyframe (audio-only files: every cluster).
        let has_video = self.tracks.iter().any(TrackSpec::is_video);
        if !self.cluster_cued && keyframe && (video || !has_video) {
            self.cues.push(Cue {
                time_ms: ms.max(c),
                track: track as u64 + 1,
                cluster_pos: self.end - self.layout.segment_data,
            });
            self.cluster_cued = true;
        }
        // SimpleBlock: track number, relative time, flags, payload.
        ebml::put_id(&mut self.cluster, id::SIMPLE_BLOCK);
        ebml::put_size(&mut self.cluster, payload_len as u64 + 4);
        self.cluster.push(0x80 | (track as u8 + 1));
        self.cluster.extend_from_slice(&rel.to_be_bytes());
        self.cluster.push(if keyframe { 0x80 } else { 0 });
        if annex_b {
            h264::write_length_prefixed(data, &mut self.cluster);
        } else {
            self.cluster.extend_from_slice(data);
        }

        let st = &mut self.stats[track];
        st.frames += 1;
        st.keyframes += u64::from(keyframe);
        st.bytes += payload_len as u64;
        st.first.get_or_insert(Duration::from_millis(ms));
        st.last = Some(Duration::from_millis(ms));
        let default_delta = if video { 33 } else { 20 };
        let delta = match self.last_delta_ms[track] {
            0 => default_delta,
            d => d.min(1000),
        };
        self.end_ms = self.end_ms.max(ms + delta);
        Ok(())
    }

    /// Write the pending cluster if it was opened at least [`WebmOptions::max_cluster`] ago
    /// (call this periodically, e.g. 4 times a second: it keeps the crash loss bounded while a
    /// track sends nothing). Returns whether a cluster was written.
    pub fn flush_if_older(&mut self, now: Instant) -> Result<bool> {
        match self.cluster_opened {
            Some(t) if now.saturating_duration_since(t) >= self.options.max_cluster => {
                self.flush()?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Write the pending cluster now (whole, with one write) and update the Duration.
    pub fn flush(&mut self) -> Result<()> {
        let Some(c) = self.cluster_ms.take() else {
            return Ok(());
        };
        self.cluster_opened = None;
        let blocks = self.cluster.len() - CLUSTER_HEAD_ROOM;
        let head = &mut self.cluster_head;
        head.clear();
        // Timecode element, then Cluster id and size behind it, rotated to the front.
        ebml::put_uint(head, id::TIMECODE, c);
        let timecode_len = head.len();
        ebml::put_id(head, id::CLUSTER);
        ebml::put_size(head, (timecode_len + blocks) as u64);
        head.rotate_left(timecode_len);
        debug_assert!(head.len() <= CLUSTER_HEAD_ROOM);
        let start = CLUSTER_HEAD_ROOM - head.len();
        self.cluster[start..CLUSTER_HEAD_ROOM].copy_from_slice(head);
        // One write: the cluster is either entirely in the file or (cut) detectably partial.
        let whole = &self.cluster[start..];
        if let Err(e) = self.file.write_all(whole) {
            self.drop_cluster();
            return Err(io_err(&self.path, "write cluster")(e));
        }
        let written = whole.len();
        self.cluster.truncate(CLUSTER_HEAD_ROOM);
        self.end += written as u64;
        self.clusters += 1;
        self.flushed_end_ms = self.end_ms;
        self.write_duration()?;
        if self.options.sync_clusters {
            self.file
                .sync_data()
                .map_err(io_err(&self.path, "sync cluster"))?;
        }
        Ok(())
    }

    /// A cluster could not be written (the disk is full, say): give it up so that the file
    /// stays what it was before — cut back to its last whole cluster (shrinking needs no space),
    /// its cue and its share of the Duration gone — and the next cluster is written there.
    fn drop_cluster(&mut self) {
        if let Err(e) = self.file.set_len(self.end) {
            tracing::warn!("{}: cutting a partial cluster: {e}", self.path.display());
        }
        if let Err(e) = self.file.seek(SeekFrom::Start(self.end)) {
            tracing::warn!("{}: seeking back: {e}", self.path.display());
        }
        let pos = self.end - self.layout.segment_data;
        if self.cues.last().is_some_and(|c| c.cluster_pos == pos) {
            self.cues.pop();
        }
        self.cluster.truncate(CLUSTER_HEAD_ROOM);
        self.end_ms = self.flushed_end_ms;
        self.lost_clusters += 1;
        // Video continues at its next keyframe.
        self.video_lost = self.tracks.iter().any(TrackSpec::is_video);
    }

    fn write_duration(&self) -> Result<()> {
        self.file
            .write_all_at(&(self.end_ms as f64).to_be_bytes(), self.layout.duration_at)
            .map_err(io_err(&self.path, "update Duration"))
    }

    /// Clean stop: write the pending cluster, Cues, Duration, SeekHead and the Segment size,
    /// and sync the file to disk.
    ///
    /// A pending cluster that cannot be written (the disk is full) is given up and the file
    /// finalized without it ([`WebmSummary::lost_clusters`] counts it); when even the Cues do
    /// not fit, the file is finalized without Cues (everything else is written in place, which
    /// needs no new space). An error means the file could not be finalized.
    pub fn finish(mut self) -> Result<WebmSummary> {
        if let Err(e) = self.flush() {
            tracing::warn!("{}: last cluster lost: {e}", self.path.display());
        }
        self.finished = true;
        let end = finalize(
            &self.file,
            &self.path,
            &self.layout,
            self.end,
            &self.cues,
            self.end_ms,
        )?;
        Ok(WebmSummary {
            path: self.path.clone(),
            tracks: self.stats.clone(),
            duration: Duration::from_millis(self.end_ms),
            clusters: self.clusters,
            lost_clusters: self.lost_clusters,
            bytes: end,
        })
    }

    fn invalid(&self, reason: String) -> MediaError {
        MediaError::Webm {
            path: self.path.clone(),
            reason,
        }
    }
}

impl Drop for WebmWriter {
    fn drop(&mut self) {
        if !self.finished
            && let Err(e) = self.flush()
        {
            tracing::warn!("{}: pending cluster lost on drop: {e}", self.path.display());
        }
    }
}

/// Append Cues at `end`, then write Duration, SeekHead and the Segment size; sync. Returns the
/// file's new length.
pub(crate) fn finalize(
    file: &File,
    path: &Path,
    layout: &Layout,
    end: u64,
    cues: &[Cue],
    end_ms: u64,
) -> Result<u64> {
    let mut tail = Vec::new();
    let cues_pos = end - layout.segment_data;
    let mut cues = cues;
    if !cues.is_empty() {
        let mut body = Vec::with_capacity(cues.len() * 24);
        for cue in cues {
            let mut pos = Vec::new();
            ebml::put_uint(&mut pos, id::CUE_TRACK, cue.track);
            ebml::put_uint(&mut pos, id::CUE_CLUSTER_POSITION, cue.cluster_pos);
            let mut point = Vec::new();
            ebml::put_uint(&mut point, id::CUE_TIME, cue.time_ms);
            ebml::put_master(&mut point, id::CUE_TRACK_POSITIONS, &pos);
            ebml::put_master(&mut body, id::CUE_POINT, &point);
        }
        ebml::put_master(&mut tail, id::CUES, &body);
    }
    if let Err(e) = file.write_all_at(&tail, end) {
        if !is_out_of_space(&e) {
            return Err(io_err(path, "write Cues")(e));
        }
        // No room for the Cues: a file without them plays (players scan to seek), and all
        // that remains is written over bytes the file already has.
        tracing::warn!("{}: finalized without Cues: {e}", path.display());
        tail.clear();
        cues = &[];
    }
    let new_end = end + tail.len() as u64;
    file.set_len(new_end)
        .map_err(io_err(path, "set file length"))?;
    file.write_all_at(&(end_ms as f64).to_be_bytes(), layout.duration_at)
        .map_err(io_err(path, "write Duration"))?;

    // SeekHead into the reserved space, the rest stays Void.
    let mut seeks = Vec::new();
    let mut entries = vec![(id::INFO, layout.info_pos), (id::TRACKS, layout.tracks_pos)];
    if !cues.is_empty() {
        entries.push((id::CUES, cues_pos));
    }
    for (element, pos) in entries {
        let mut seek = Vec::new();
        let mut idb = Vec::new();
        ebml::put_id(&mut idb, element);
        ebml::put_bytes(&mut seek, id::SEEK_ID, &idb);
        ebml::put_uint8(&mut seek, id::SEEK_POSITION, pos);
        ebml::put_master(&mut seeks, id::SEEK, &seek);
    }
    let mut head = Vec::new();
    ebml::put_master(&mut head, id::SEEK_HEAD, &seeks);
    let rest = layout
        .reserve_len
        .checked_sub(head.len())
        .filter(|r| *r >= 2);
    if let Some(rest) = rest {
        ebml::put_void(&mut head, rest);
        file.write_all_at(&head, layout.reserve_at)
            .map_err(io_err(path, "write SeekHead"))?;
    } else if head.len() != layout.reserve_len {
        tracing::debug!("{}: no room for a SeekHead", path.display());
    }
    let mut size = Vec::new();
    ebml::put_size_len(&mut size, new_end - layout.segment_data, 8);
    file.write_all_at(&size, layout.segment_size_at)
        .map_err(io_err(path, "write Segment size"))?;
    file.sync_all().map_err(io_err(path, "sync"))?;
    Ok(new_end)
}
