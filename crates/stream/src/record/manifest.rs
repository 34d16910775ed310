//! The room manifest: who was recorded, which tracks, into which files, with what gaps.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// One JSON file per recorded room, rewritten (atomically) at least once a second while
/// recording and once more at the end.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Manifest {
    /// The room.
    pub room: String,
    /// The recorder's own (hidden) identity.
    pub recorder: String,
    /// Wall-clock start (RFC 3339, UTC).
    pub started_at: String,
    /// Wall-clock end (RFC 3339, UTC); empty while recording.
    pub ended_at: String,
    /// `recording` while running, `finalized` after a clean stop, `recovered` after
    /// [`super::recover_dir`] repaired a recording that was killed.
    pub state: String,
    /// The filters in force (`*` suffix = prefix match); empty = everything.
    pub participants_filter: Vec<String>,
    /// Track-name filters.
    pub tracks_filter: Vec<String>,
    /// Everyone recorded, in order of their first frame.
    pub participants: Vec<ParticipantEntry>,
    /// Errors that did not stop the recording (a file that could not be written, ...).
    pub errors: Vec<String>,
}

/// A recorded participant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ParticipantEntry {
    /// Identity.
    pub identity: String,
    /// Display name (last seen).
    pub name: String,
    /// Participant sids seen (a rejoin gets a new one).
    pub sids: Vec<String>,
    /// Files, in time order: a new file starts when the participant (re)joins or publishes a
    /// track the open file does not have.
    pub files: Vec<FileEntry>,
}

/// One file of a participant: WebM (`.webm`: VP8, VP9, Opus), or Matroska (`.mkv`) when a track
/// is H.264.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FileEntry {
    /// File name, relative to the manifest's directory.
    pub path: String,
    /// Why this file was started: `joined`, `rejoined`, `track added`.
    pub reason: String,
    /// Wall-clock time of the file's timestamp 0 (RFC 3339, UTC).
    pub started_at: String,
    /// Wall-clock end (RFC 3339, UTC); empty while open.
    pub ended_at: String,
    /// `recording`, `finalized` (clean stop) or `recovered` (repaired after a crash).
    pub state: String,
    /// Why the file was closed: `left`, `track added`, `stopped`.
    pub closed_because: String,
    /// Duration of the media in the file, milliseconds.
    pub duration_ms: u64,
    /// The tracks, in the file's track order.
    pub tracks: Vec<TrackEntry>,
}

/// One track of a file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TrackEntry {
    /// Track name.
    pub name: String,
    /// `audio` or `video`.
    pub kind: String,
    /// The codec the file stores the track in: `opus`, `vp8`, `vp9` or `h264` (empty in
    /// manifests of recorders that only wrote VP8 and Opus, should one lack it).
    #[serde(default)]
    pub codec: String,
    /// Track sids seen.
    pub sids: Vec<String>,
    /// Frames written.
    pub frames: u64,
    /// Keyframes written.
    pub keyframes: u64,
    /// Payload bytes written (as stored: H.264 with 4-byte lengths in place of start codes).
    pub bytes: u64,
    /// First frame's timestamp in the file, ms.
    pub first_ms: Option<u64>,
    /// Last frame's timestamp in the file, ms.
    pub last_ms: Option<u64>,
    /// Video frames not written because packets were lost (skipped up to the next keyframe).
    pub skipped_frames: u64,
    /// Keyframe requests (PLI) sent after loss.
    pub keyframe_requests: u64,
    /// Frames that never arrived (packet loss; for video, also those the engine dropped up to
    /// the next keyframe), estimated from the RTP clock at each discontinuity.
    #[serde(default)]
    pub lost_frames: u64,
    /// Frames dropped because the recorder's queue was full.
    pub queue_drops: u64,
    /// Times the RTP clock was re-anchored to arrival time (a jump: the publisher restarted its
    /// stream).
    pub resyncs: u64,
    /// Video sizes, each from the keyframe where it began.
    pub resolutions: Vec<Resolution>,
    /// Stretches without frames: left as gaps in the file (no silence or frozen frames are
    /// invented).
    pub gaps: Vec<Gap>,
    /// Mute and unmute as the publisher announced them.
    pub mutes: Vec<MuteChange>,
}

/// A video size from time `at_ms` on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// File timestamp of the keyframe, ms.
    pub at_ms: u64,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// No frames from `from_ms` to `to_ms` (file timestamps).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// Last frame before the gap, ms.
    pub from_ms: u64,
    /// First frame after it, ms.
    pub to_ms: u64,
    /// `muted` (the publisher muted the track), `packet loss` or `no frames`.
    pub reason: String,
}

/// A mute state change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MuteChange {
    /// File timestamp, ms.
    pub at_ms: u64,
    /// Muted (true) or unmuted.
    pub muted: bool,
}

impl Manifest {
    /// Read a manifest file.
    pub fn read(path: impl AsRef<Path>) -> Result<Manifest, super::RecordError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| super::RecordError::Io {
            path: path.to_path_buf(),
            action: "read manifest",
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| super::RecordError::Manifest {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Every file, with its participant.
    pub fn files(&self) -> impl Iterator<Item = (&ParticipantEntry, &FileEntry)> {
        self.participants
            .iter()
            .flat_map(|p| p.files.iter().map(move |f| (p, f)))
    }

    /// The participant with this identity.
    pub fn participant(&self, identity: &str) -> Option<&ParticipantEntry> {
        self.participants.iter().find(|p| p.identity == identity)
    }
}

/// RFC 3339 with milliseconds, UTC.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Write `text` to `path` through a temporary file and a rename, so a reader (or a crash)
/// sees the old or the new manifest, never half of one.
///
/// When the file system has no room for the temporary file, the manifest is rewritten in
/// place instead when it fits in the blocks the old one holds (a full disk still takes the
/// final manifest, rarely longer than the last one); a crash during that write could leave it
/// half written.
pub(crate) fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::ErrorKind::{QuotaExceeded, StorageFull};
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = path.with_file_name(format!(".{name}.tmp"));
    match std::fs::write(&tmp, text) {
        Ok(()) => std::fs::rename(&tmp, path),
        Err(e) if matches!(e.kind(), StorageFull | QuotaExceeded) && fits(path, text.len()) => {
            let _ = std::fs::remove_file(&tmp);
            overwrite(path, text.as_bytes())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Whether `len` bytes fit in the blocks `path` already holds (then writing them over it
/// needs no space; otherwise the old manifest is kept whole).
fn fits(path: &Path, len: usize) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).is_ok_and(|m| m.blocks().saturating_mul(512) >= len as u64)
}

/// Write `bytes` over `path` from its start and cut it to their length.
fn overwrite(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all_at(bytes, 0)?;
    f.set_len(bytes.len() as u64)?;
    f.sync_data()
}
