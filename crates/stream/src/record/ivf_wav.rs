//! The viewer's recording of one watched participant, written by its decoder threads besides
//! decoding: the received VP8 or VP9 untouched into an IVF file (FourCC `VP80`/`VP90`; IVF has
//! no H.264 — [`TrackFile::write_video`] refuses it, the room recorder stores it in Matroska),
//! the decoded audio into a WAV file
//! (for every participant of a room, passthrough, in one playable file each, see the room
//! [`Recorder`](super::Recorder)).
//!
//! A [`TrackFile`] moves from one decoder thread to the next (one stream at a time), so it never
//! needs a lock; [`TrackFile::finish`] fixes up the file headers (dropping a recorder does too).
//! The writers keep their headers current every second on their own, so a killed process loses
//! at most the last second; an existing recording is never overwritten.

use std::path::{Path, PathBuf};

use serde::Serialize;
use wavecast_media::{IvfWriter, WavWriter};
use wavecast_pipeline::AudioFormat;
use wavecast_session::MediaCodec;

use crate::error::{Result, StreamError, media, pipeline};

/// One file being recorded: [`Decoders`](crate::decoders::Decoders) hand it from stream to stream.
pub enum TrackFile {
    /// Encoded video.
    Ivf(IvfWriter),
    /// Decoded audio.
    Wav(WavWriter),
}

impl std::fmt::Debug for TrackFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrackFile::Ivf(w) => write!(f, "TrackFile::Ivf({})", w.path().display()),
            TrackFile::Wav(_) => f.write_str("TrackFile::Wav"),
        }
    }
}

impl TrackFile {
    /// Append one received video frame to the IVF file, as it arrived, with its 90 kHz RTP
    /// time and picture size. The first frame's codec names the file's FourCC (`VP80` or
    /// `VP90`).
    ///
    /// # Errors
    /// An H.264 frame (IVF holds VP8 and VP9 only; the room recorder writes H.264 into
    /// Matroska), a frame of another codec than the file's first, a WAV file, or the write
    /// failed.
    pub fn write_video(
        &mut self,
        codec: MediaCodec,
        data: &[u8],
        rtp_time: u64,
        width: u32,
        height: u32,
    ) -> Result<()> {
        let TrackFile::Ivf(w) = self else {
            return Err(unsupported(
                "the audio recording",
                "video frames go to the IVF file",
            ));
        };
        let fourcc = match codec {
            MediaCodec::Vp8 => *b"VP80",
            MediaCodec::Vp9 => *b"VP90",
            other => {
                return Err(unsupported(
                    format!("{} into {}", other.mime(), w.path().display()),
                    "IVF holds VP8 and VP9 only (the room recorder stores H.264 in Matroska)",
                ));
            }
        };
        if w.frames() == 0 {
            w.set_fourcc(fourcc).map_err(media("video recording"))?;
        } else if w.fourcc() != fourcc {
            return Err(unsupported(
                format!("{} into {}", codec.mime(), w.path().display()),
                format!(
                    "the file holds {} (one codec per file)",
                    String::from_utf8_lossy(&w.fourcc())
                ),
            ));
        }
        w.write(data, rtp_time, width, height)
            .map_err(media("video recording"))
    }

    /// Fixes up the header and flushes.
    ///
    /// # Errors
    /// The file could not be written.
    pub fn finish(&mut self) -> Result<()> {
        match self {
            TrackFile::Ivf(w) => w.finish().map_err(media("finish the IVF recording")),
            TrackFile::Wav(w) => w.finish().map_err(media("finish the WAV recording")),
        }
    }
}

fn unsupported(what: impl Into<String>, reason: impl Into<String>) -> StreamError {
    StreamError::Unsupported {
        what: what.into(),
        reason: reason.into(),
    }
}

/// The video file's name in a recording directory.
pub const VIDEO_FILE: &str = "video.ivf";
/// The audio file's name in a recording directory.
pub const AUDIO_FILE: &str = "audio.wav";

/// The two files of a recording directory: `video.ivf` and `audio.wav`.
#[derive(Debug)]
pub struct Recording {
    /// The directory.
    pub dir: PathBuf,
    /// `DIR/video.ivf`.
    pub video: TrackFile,
    /// `DIR/audio.wav` (48 kHz, 16-bit).
    pub audio: TrackFile,
}

impl Recording {
    /// Creates `dir` and both files in it. An existing recording is never overwritten: if either
    /// file exists already, nothing is created and the error names it.
    ///
    /// # Errors
    /// A file exists already; the directory or a file cannot be created; `channels` is not 1
    /// or 2.
    pub fn create(dir: &Path, channels: u16) -> Result<Self> {
        let format = AudioFormat::new(48_000, channels)
            .map_err(pipeline(format!("{channels} audio channels")))?;
        std::fs::create_dir_all(dir).map_err(|source| StreamError::Io {
            action: "create",
            path: dir.to_owned(),
            source,
        })?;
        let (video, audio) = (dir.join(VIDEO_FILE), dir.join(AUDIO_FILE));
        for path in [&video, &audio] {
            if path.symlink_metadata().is_ok() {
                return Err(StreamError::Io {
                    action: "overwrite the existing recording",
                    path: path.clone(),
                    source: std::io::ErrorKind::AlreadyExists.into(),
                });
            }
        }
        // create_new again: whoever made one meanwhile keeps it.
        let ivf = IvfWriter::create_new(&video).map_err(media("video recording"))?;
        let wav = WavWriter::create_new(audio, format).map_err(media("audio recording"))?;
        Ok(Self {
            dir: dir.to_owned(),
            video: TrackFile::Ivf(ivf),
            audio: TrackFile::Wav(wav),
        })
    }
}

/// What recording produced.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RecordingStats {
    /// Frames in the IVF file.
    pub video_frames: Option<u64>,
    /// Samples per channel in the WAV file.
    pub audio_samples: Option<u64>,
}

/// A finished recording for a stats file: where its files are and what they hold.
#[derive(Debug, Clone, Serialize)]
pub struct RecordingSummary {
    /// The directory.
    pub dir: PathBuf,
    /// `DIR/video.ivf`.
    pub video_file: PathBuf,
    /// `DIR/audio.wav`.
    pub audio_file: PathBuf,
    /// Frames and samples written.
    #[serde(flatten)]
    pub stats: RecordingStats,
    /// Seconds of audio in the WAV file (48 kHz).
    pub audio_seconds: Option<f64>,
}

impl RecordingSummary {
    /// The summary of the recording [`Recording::create`] made in `dir`.
    pub fn new(dir: &Path, stats: &RecordingStats) -> Self {
        Self {
            dir: dir.to_owned(),
            video_file: dir.join(VIDEO_FILE),
            audio_file: dir.join(AUDIO_FILE),
            stats: stats.clone(),
            audio_seconds: stats.audio_samples.map(|s| s as f64 / 48_000.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp9_gets_its_fourcc_and_h264_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Recording::create(&dir.path().join("vp9"), 2).unwrap();
        r.video
            .write_video(MediaCodec::Vp9, &[0x82, 0x49, 0x83, 0x42], 0, 64, 48)
            .unwrap();
        let e = r
            .video
            .write_video(MediaCodec::Vp8, &[0x10, 0x02, 0x00], 3000, 64, 48)
            .unwrap_err();
        assert!(e.to_string().contains("VP90"), "{e}");
        r.video.finish().unwrap();
        let b = std::fs::read(dir.path().join("vp9").join(VIDEO_FILE)).unwrap();
        assert_eq!(&b[8..12], b"VP90");
        assert_eq!(u32::from_le_bytes([b[24], b[25], b[26], b[27]]), 1);

        let mut r = Recording::create(&dir.path().join("h264"), 2).unwrap();
        let e = r
            .video
            .write_video(MediaCodec::H264, &[0, 0, 0, 1, 0x65], 0, 64, 48)
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("video/H264") && text.contains("VP8 and VP9 only"),
            "{text}"
        );
        assert!(r.audio.write_video(MediaCodec::Vp8, &[0], 0, 1, 1).is_err());
        let mut r = Recording::create(&dir.path().join("vp8"), 2).unwrap();
        r.video
            .write_video(MediaCodec::Vp8, &[0x10, 0x02, 0x00], 0, 64, 48)
            .unwrap();
        r.video.finish().unwrap();
        let b = std::fs::read(dir.path().join("vp8").join(VIDEO_FILE)).unwrap();
        assert_eq!(&b[8..12], b"VP80");
    }
}
