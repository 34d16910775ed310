//! Reading a WebM or Matroska file's structure, and repairing one a crash cut short (the
//! codec makes no difference to either: blocks are counted, never decoded).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ebml::{self, Header, id};
use super::{Cue, Layout, finalize};
use crate::error::{MediaError, Result, io_err};

/// A track as a file declares it, with what its blocks hold.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TrackInfo {
    /// Track number.
    pub number: u64,
    /// `V_VP8`, `V_VP9`, `V_MPEG4/ISO/AVC`, `A_OPUS`, ...
    pub codec: String,
    /// CodecPrivate (H.264: the `AVCDecoderConfigurationRecord`; Opus: the OpusHead), empty
    /// when absent.
    pub codec_private: Vec<u8>,
    /// Track name.
    pub name: String,
    /// Video size from the header.
    pub size: Option<(u32, u32)>,
    /// Blocks (frames) in whole clusters.
    pub frames: u64,
    /// Keyframes among them.
    pub keyframes: u64,
    /// First and last block timestamps.
    pub first: Option<Duration>,
    /// Last block timestamp.
    pub last: Option<Duration>,
}

/// What a WebM file holds, read by [`WebmInfo::read`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct WebmInfo {
    /// The file.
    pub path: PathBuf,
    /// The EBML DocType: `webm` or `matroska`.
    pub doc_type: String,
    /// The tracks.
    pub tracks: Vec<TrackInfo>,
    /// The Info's Duration.
    pub duration: Option<Duration>,
    /// Whole clusters.
    pub clusters: u64,
    /// The Segment has a known size and Cues (a clean stop, or repaired).
    pub finalized: bool,
    /// Bytes after the last whole element (a cluster a crash cut short).
    pub partial_tail: u64,
    /// File length.
    pub bytes: u64,
}

/// What [`recover`] did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RecoverReport {
    /// The file was already finalized: nothing was changed.
    pub already_final: bool,
    /// Bytes of a partial last cluster that were cut off.
    pub dropped_bytes: u64,
    /// Whole clusters kept.
    pub clusters: u64,
    /// The Duration written.
    pub duration: Duration,
}

/// The parsed structure, with what recovery needs.
struct Scan {
    info: WebmInfo,
    layout: Option<Layout>,
    /// Offset just past the last whole top-level element.
    good_end: u64,
    cues: Vec<Cue>,
    end_ms: u64,
    has_cues: bool,
    segment_size_known: bool,
}

fn bad(path: &Path, reason: impl Into<String>) -> MediaError {
    MediaError::Webm {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn read_at(file: &File, path: &Path, pos: u64, len: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let n = file
            .read_at(&mut buf[done..], pos + done as u64)
            .map_err(io_err(path, format!("read at byte {pos}")))?;
        if n == 0 {
            break;
        }
        done += n;
    }
    buf.truncate(done);
    Ok(buf)
}

fn header_at(file: &File, path: &Path, pos: u64) -> Result<Option<Header>> {
    let buf = read_at(file, path, pos, 12)?;
    Ok(ebml::read_header(&buf))
}

fn text(payload: &[u8]) -> String {
    String::from_utf8_lossy(payload)
        .trim_end_matches('\0')
        .to_owned()
}

/// Largest element payload read into memory (clusters are ~1 s of media).
const MAX_ELEMENT: u64 = 256 << 20;

fn scan(path: &Path, file: &File) -> Result<Scan> {
    let len = file
        .metadata()
        .map_err(io_err(path, "read metadata"))?
        .len();
    let ebml_h = header_at(file, path, 0)?
        .filter(|h| h.id == id::EBML)
        .ok_or_else(|| bad(path, "not an EBML file (no EBML header)"))?;
    let ebml_size = ebml_h
        .size
        .filter(|s| *s < 4096)
        .ok_or_else(|| bad(path, "EBML header of unknown or huge size"))?;
    let body = read_at(file, path, ebml_h.len as u64, ebml_size as usize)?;
    let doc = ebml::children(&body)
        .find(|(h, _)| h.id == id::DOC_TYPE)
        .map(|(_, p)| text(p))
        .unwrap_or_default();
    if doc != "webm" && doc != "matroska" {
        return Err(bad(path, format!("DocType {doc:?} (webm or matroska)")));
    }
    let seg_at = ebml_h.len as u64 + ebml_size;
    let seg = header_at(file, path, seg_at)?
        .filter(|h| h.id == id::SEGMENT)
        .ok_or_else(|| bad(path, format!("no Segment at byte {seg_at}")))?;
    let segment_data = seg_at + seg.len as u64;
    let segment_end = seg.size.map_or(len, |s| (segment_data + s).min(len));

    let mut info = WebmInfo {
        path: path.to_path_buf(),
        doc_type: doc,
        tracks: Vec::new(),
        duration: None,
        clusters: 0,
        finalized: false,
        partial_tail: 0,
        bytes: len,
    };
    let mut reserve: Option<(u64, usize)> = None;
    let (mut info_pos, mut tracks_pos, mut duration_at) = (None, None, None);
    let mut cues = Vec::new();
    let mut has_cues = false;
    let mut end_ms = 0u64;
    let mut last_delta: Vec<u64> = Vec::new();
    let mut pos = segment_data;
    let mut good_end = segment_data;
    while pos < segment_end {
        let Some(h) = header_at(file, path, pos)? else {
            break;
        };
        let Some(size) = h.size else {
            // Unknown-size children (a live-mode cluster) are not written by this crate.
            break;
        };
        let data = pos + h.len as u64;
        let next = data + size;
        if next > segment_end {
            break; // cut short
        }
        let rel = pos - segment_data;
        match h.id {
            id::VOID if reserve.is_none() && info_pos.is_none() => {
                reserve = Some((pos, (next - pos) as usize));
            }
            id::SEEK_HEAD if reserve.is_none() => {
                reserve = Some((pos, (next - pos) as usize));
            }
            id::INFO => {
                info_pos = Some(rel);
                let body = read_at(file, path, data, size.min(MAX_ELEMENT) as usize)?;
                let mut off = 0usize;
                let mut scale = 1_000_000u64;
                for (ch, payload) in ebml::children(&body) {
                    let at = off + ch.len;
                    match ch.id {
                        id::TIMECODE_SCALE => scale = ebml::read_uint(payload).max(1),
                        id::DURATION if payload.len() == 8 => {
                            duration_at = Some(data + at as u64);
                            let v = f64::from_be_bytes(payload.try_into().unwrap_or([0; 8]));
                            info.duration = Some(Duration::from_nanos((v * scale as f64) as u64));
                        }
                        _ => {}
                    }
                    off = at + payload.len();
                }
                if scale != 1_000_000 {
                    return Err(bad(
                        path,
                        format!("TimecodeScale {scale} (only 1 ms is read)"),
                    ));
                }
            }
            id::TRACKS => {
                tracks_pos = Some(rel);
                let body = read_at(file, path, data, size.min(MAX_ELEMENT) as usize)?;
                for (eh, entry) in ebml::children(&body) {
                    if eh.id != id::TRACK_ENTRY {
                        continue;
                    }
                    let mut t = TrackInfo {
                        number: 0,
                        codec: String::new(),
                        codec_private: Vec::new(),
                        name: String::new(),
                        size: None,
                        frames: 0,
                        keyframes: 0,
                        first: None,
                        last: None,
                    };
                    for (ch, p) in ebml::children(entry) {
                        match ch.id {
                            id::TRACK_NUMBER => t.number = ebml::read_uint(p),
                            id::CODEC_ID => t.codec = text(p),
                            id::CODEC_PRIVATE => t.codec_private = p.to_vec(),
                            id::NAME => t.name = text(p),
                            id::VIDEO => {
                                let (mut w, mut hh) = (0, 0);
                                for (vh, vp) in ebml::children(p) {
                                    match vh.id {
                                        id::PIXEL_WIDTH => w = ebml::read_uint(vp) as u32,
                                        id::PIXEL_HEIGHT => hh = ebml::read_uint(vp) as u32,
                                        _ => {}
                                    }
                                }
                                t.size = Some((w, hh));
                            }
                            _ => {}
                        }
                    }
                    info.tracks.push(t);
                }
                last_delta = vec![0; info.tracks.len()];
            }
            id::CLUSTER => {
                if size > MAX_ELEMENT {
                    return Err(bad(path, format!("cluster at byte {pos}: {size} bytes")));
                }
                let body = read_at(file, path, data, size as usize)?;
                let has_video = info.tracks.iter().any(|t| t.codec.starts_with("V_"));
                let mut cluster_ms = 0u64;
                let mut cued = false;
                for (ch, p) in ebml::children(&body) {
                    match ch.id {
                        id::TIMECODE => cluster_ms = ebml::read_uint(p),
                        id::SIMPLE_BLOCK => {
                            let Some((number, n)) = ebml::read_track_number(p) else {
                                continue;
                            };
                            if p.len() < n + 3 {
                                continue;
                            }
                            let rel_ms = i16::from_be_bytes([p[n], p[n + 1]]);
                            let key = p[n + 2] & 0x80 != 0;
                            let ms = (cluster_ms as i64 + i64::from(rel_ms)).max(0) as u64;
                            let Some(ti) = info.tracks.iter().position(|t| t.number == number)
                            else {
                                continue;
                            };
                            let t = &mut info.tracks[ti];
                            let video = t.codec.starts_with("V_");
                            if let Some(last) = t.last {
                                let l = last.as_millis() as u64;
                                if ms > l {
                                    last_delta[ti] = ms - l;
                                }
                            }
                            t.frames += 1;
                            t.keyframes += u64::from(key);
                            t.first.get_or_insert(Duration::from_millis(ms));
                            t.last = Some(Duration::from_millis(ms));
                            let delta = match last_delta[ti] {
                                0 if video => 33,
                                0 => 20,
                                d => d.min(1000),
                            };
                            end_ms = end_ms.max(ms + delta);
                            if !cued && key && (video || !has_video) {
                                cues.push(Cue {
                                    time_ms: ms.max(cluster_ms),
                                    track: number,
                                    cluster_pos: rel,
                                });
                                cued = true;
                            }
                        }
                        _ => {}
                    }
                }
                info.clusters += 1;
            }
            id::CUES => has_cues = true,
            _ => {}
        }
        pos = next;
        good_end = next;
    }
    info.partial_tail = len - good_end;
    let segment_size_known = seg.size.is_some();
    info.finalized = segment_size_known && has_cues;
    let layout = match (reserve, info_pos, tracks_pos, duration_at) {
        (Some((reserve_at, reserve_len)), Some(info_pos), Some(tracks_pos), Some(duration_at))
            if seg.len == 12 =>
        {
            Some(Layout {
                segment_size_at: seg_at + 4,
                segment_data,
                reserve_at,
                reserve_len,
                info_pos,
                tracks_pos,
                duration_at,
            })
        }
        _ => None,
    };
    Ok(Scan {
        info,
        layout,
        good_end,
        cues,
        end_ms,
        has_cues,
        segment_size_known,
    })
}

impl WebmInfo {
    /// Read the structure of a WebM file: tracks, frames per track in whole clusters,
    /// Duration, whether it was finalized and how many bytes at its end are a partial cluster.
    pub fn read(path: impl AsRef<Path>) -> Result<WebmInfo> {
        let path = path.as_ref();
        let file = File::open(path).map_err(io_err(path, "open"))?;
        Ok(scan(path, &file)?.info)
    }

    /// The track with this codec id (`V_VP8`, `V_VP9`, `V_MPEG4/ISO/AVC`, `A_OPUS`).
    pub fn track(&self, codec: &str) -> Option<&TrackInfo> {
        self.tracks.iter().find(|t| t.codec == codec)
    }
}

/// Complete a WebM or Matroska file a crash cut short (as written by [`super::WebmWriter`]): cut off the
/// partial last cluster, then write Cues, Duration, SeekHead and the Segment size. A finalized
/// file is left untouched. Files from other writers are refused when they lack the parts this
/// needs (a reserved Void before Info, an 8-byte Duration, an 8-byte Segment size).
pub fn recover(path: impl AsRef<Path>) -> Result<RecoverReport> {
    let path = path.as_ref();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err(path, "open for repair"))?;
    let s = scan(path, &file)?;
    if s.segment_size_known && s.has_cues {
        return Ok(RecoverReport {
            already_final: true,
            dropped_bytes: 0,
            clusters: s.info.clusters,
            duration: s.info.duration.unwrap_or_default(),
        });
    }
    if s.has_cues {
        return Err(bad(
            path,
            "has Cues but no Segment size: not written by this crate",
        ));
    }
    let layout = s.layout.ok_or_else(|| {
        bad(
            path,
            "cannot repair: no reserved SeekHead space, Info Duration or 8-byte Segment size",
        )
    })?;
    if s.info.tracks.is_empty() {
        return Err(bad(path, "cannot repair: no Tracks"));
    }
    let dropped = s.info.bytes - s.good_end;
    file.set_len(s.good_end)
        .map_err(io_err(path, "cut the partial cluster"))?;
    finalize(&file, path, &layout, s.good_end, &s.cues, s.end_ms)?;
    Ok(RecoverReport {
        already_final: false,
        dropped_bytes: dropped,
        clusters: s.info.clusters,
        duration: Duration::from_millis(s.end_ms),
    })
}
