//! IVF (the libvpx test container) writer: VP8 or VP9 frames stored untouched, so a recording is
//! exactly what arrived. The header's frame count and picture size are rewritten by
//! [`IvfWriter::finish`] (and on drop), so a finished file always tells the truth.
//!
//! Crash safety: every frame goes to the file in one write (no user-space buffer to lose), and
//! the header is rewritten in place (a positioned write) after the first frame and then at least
//! every [`HEADER_INTERVAL`]; a process killed outright leaves a file that common readers open,
//! whose header lags its contents by at most that interval.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{MediaError, Result, io_err};

/// Size of the IVF file header.
pub const IVF_HEADER_LEN: usize = 32;
/// Size of each frame's header (length + 64-bit timestamp).
pub const IVF_FRAME_HEADER_LEN: usize = 12;
/// The header is brought up to date at least this often while frames arrive.
pub const HEADER_INTERVAL: Duration = Duration::from_secs(1);

/// VP8 frames (or VP9: [`IvfWriter::set_fourcc`]) into an IVF file with 90 kHz timestamps
/// (relative to the first frame).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("v.ivf");
/// let mut w = wavecast_media::IvfWriter::create(&path)?;
/// w.write(&[0x10, 0x02, 0x00], 9_000, 320, 180)?; // one (tiny) VP8 frame
/// w.finish()?;
/// assert_eq!(w.frames(), 1);
/// # Ok::<(), wavecast_media::MediaError>(())
/// ```
#[derive(Debug)]
pub struct IvfWriter {
    out: File,
    path: PathBuf,
    frames: u32,
    first_rtp: Option<u64>,
    size: (u16, u16),
    fourcc: [u8; 4],
    finished: bool,
    /// When the header on disk was last brought up to date.
    header_at: Option<Instant>,
    /// One frame (header + data) put together for a single write; grows to the largest frame.
    scratch: Vec<u8>,
}

impl IvfWriter {
    /// Creates (or truncates) `path` (the size in the header is taken from the first frame).
    ///
    /// # Errors
    /// The file cannot be created or written.
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).map_err(io_err(path, "create"))?;
        Self::start(file, path)
    }

    /// Creates `path`, failing if it exists (a recording is never overwritten).
    ///
    /// # Errors
    /// The file exists, or cannot be created or written.
    pub fn create_new(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io_err(path, "create (never overwriting)"))?;
        Self::start(file, path)
    }

    fn start(file: File, path: &Path) -> Result<Self> {
        let mut w = Self {
            out: file,
            path: path.to_owned(),
            frames: 0,
            first_rtp: None,
            size: (0, 0),
            fourcc: *b"VP80",
            finished: false,
            header_at: None,
            scratch: Vec::with_capacity(64 * 1024),
        };
        let h = w.header_bytes();
        w.out
            .write_all(&h)
            .map_err(io_err(&w.path, "write the IVF header"))?;
        Ok(w)
    }

    /// Rewrites the header in place (positioned write; the append position is untouched).
    fn update_header(&mut self) -> Result<()> {
        let h = self.header_bytes();
        self.out
            .write_all_at(&h, 0)
            .map_err(io_err(&self.path, "update the IVF header"))?;
        self.header_at = Some(Instant::now());
        Ok(())
    }

    fn header_bytes(&self) -> [u8; IVF_HEADER_LEN] {
        let mut h = [0u8; IVF_HEADER_LEN];
        h[0..4].copy_from_slice(b"DKIF");
        h[4..6].copy_from_slice(&0u16.to_le_bytes());
        h[6..8].copy_from_slice(&(IVF_HEADER_LEN as u16).to_le_bytes());
        h[8..12].copy_from_slice(&self.fourcc);
        h[12..14].copy_from_slice(&self.size.0.to_le_bytes());
        h[14..16].copy_from_slice(&self.size.1.to_le_bytes());
        h[16..20].copy_from_slice(&90_000u32.to_le_bytes()); // time base denominator
        h[20..24].copy_from_slice(&1u32.to_le_bytes()); // numerator: pts in 1/90000 s
        h[24..28].copy_from_slice(&self.frames.to_le_bytes());
        h
    }

    /// Appends one frame with its 90 kHz RTP time and picture size (in one write), and brings
    /// the header up to date after the first frame and every second (`HEADER_INTERVAL`).
    ///
    /// # Errors
    /// The write failed.
    pub fn write(&mut self, data: &[u8], rtp_time: u64, width: u32, height: u32) -> Result<()> {
        if self.frames == 0 {
            self.size = (width.min(65535) as u16, height.min(65535) as u16);
        }
        let first = *self.first_rtp.get_or_insert(rtp_time);
        let pts = rtp_time.saturating_sub(first);
        let frame = self.frames;
        self.scratch.clear();
        self.scratch
            .extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.scratch.extend_from_slice(&pts.to_le_bytes());
        self.scratch.extend_from_slice(data);
        self.out
            .write_all(&self.scratch)
            .map_err(|source| MediaError::Io {
                path: self.path.clone(),
                action: format!("write frame {frame}"),
                source,
            })?;
        self.frames += 1;
        self.finished = false;
        if self
            .header_at
            .is_none_or(|t| t.elapsed() >= HEADER_INTERVAL)
        {
            self.update_header()?;
        }
        Ok(())
    }

    /// Set the codec's FourCC in the header: `VP80` (the default) or `VP90` (VP9). The header
    /// on disk is rewritten at once.
    ///
    /// # Errors
    /// The header could not be rewritten.
    pub fn set_fourcc(&mut self, fourcc: [u8; 4]) -> Result<()> {
        if self.fourcc == fourcc {
            return Ok(());
        }
        self.fourcc = fourcc;
        self.update_header()
    }

    /// The codec's FourCC in the header.
    pub fn fourcc(&self) -> [u8; 4] {
        self.fourcc
    }

    /// Frames written.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rewrites the header with the frame count and size, and flushes (idempotent; writing more
    /// frames afterwards is allowed, finish again then).
    ///
    /// # Errors
    /// The seek, write or flush failed.
    pub fn finish(&mut self) -> Result<()> {
        self.update_header()?;
        self.out.flush().map_err(io_err(&self.path, "flush"))?;
        self.finished = true;
        Ok(())
    }
}

impl Drop for IvfWriter {
    fn drop(&mut self) {
        if !self.finished
            && let Err(e) = self.finish()
        {
            tracing::warn!(error = %e, "closing IVF file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ivf_header_counts_frames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.ivf");
        let mut w = IvfWriter::create(&path).unwrap();
        w.write(&[1, 2, 3], 9000, 320, 240).unwrap();
        w.write(&[4, 5], 12000, 320, 240).unwrap();
        w.finish().unwrap();
        drop(w);
        let b = std::fs::read(&path).unwrap();
        assert_eq!(&b[0..4], b"DKIF");
        assert_eq!(u16::from_le_bytes([b[12], b[13]]), 320);
        assert_eq!(u32::from_le_bytes([b[24], b[25], b[26], b[27]]), 2);
        assert_eq!(b.len(), 32 + 12 + 3 + 12 + 2);
        assert_eq!(&b[8..12], b"VP80");
        assert_eq!(u64::from_le_bytes(b[36..44].try_into().unwrap()), 0);
        assert_eq!(u64::from_le_bytes(b[51..59].try_into().unwrap()), 3000);
    }

    /// Regression: after SIGKILL the header said 0 frames and 0x0 (109 frames present) and
    /// common players read nothing. Without finish or drop, the file on disk already names the
    /// size after the first frame and counts frames up to the last second.
    #[test]
    fn the_header_is_current_without_finish() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.ivf");
        let mut w = IvfWriter::create(&path).unwrap();
        w.write(&[1, 2, 3], 0, 320, 180).unwrap();
        let b = std::fs::read(&path).unwrap();
        assert_eq!(u16::from_le_bytes([b[12], b[13]]), 320);
        assert_eq!(u16::from_le_bytes([b[14], b[15]]), 180);
        assert_eq!(u32::from_le_bytes([b[24], b[25], b[26], b[27]]), 1);
        assert_eq!(
            b.len(),
            32 + 12 + 3,
            "the frame is on disk, not in a buffer"
        );
        w.write(&[4, 5], 3000, 320, 180).unwrap();
        std::thread::sleep(HEADER_INTERVAL);
        w.write(&[6], 6000, 320, 180).unwrap();
        let b = std::fs::read(&path).unwrap();
        assert_eq!(u32::from_le_bytes([b[24], b[25], b[26], b[27]]), 3);
        assert_eq!(b.len(), 32 + 3 * 12 + 3 + 2 + 1);
        // What a killed process leaves: no finish, no drop.
        std::mem::forget(w);
    }

    #[test]
    fn vp9_files_name_their_codec() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.ivf");
        let mut w = IvfWriter::create(&path).unwrap();
        w.set_fourcc(*b"VP90").unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[8..12], b"VP90");
        w.write(&[0x82, 0x49, 0x83, 0x42], 0, 64, 48).unwrap();
        w.finish().unwrap();
        assert_eq!(w.fourcc(), *b"VP90");
        assert_eq!(&std::fs::read(&path).unwrap()[8..12], b"VP90");
    }

    #[test]
    fn create_new_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.ivf");
        std::fs::write(&path, b"precious").unwrap();
        let e = IvfWriter::create_new(&path).unwrap_err().to_string();
        assert!(e.contains("v.ivf"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    }

    #[test]
    fn dropping_an_unfinished_writer_fixes_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.ivf");
        let mut w = IvfWriter::create(&path).unwrap();
        w.write(&[1, 2, 3], 0, 64, 48).unwrap();
        drop(w);
        let b = std::fs::read(&path).unwrap();
        assert_eq!(u32::from_le_bytes([b[24], b[25], b[26], b[27]]), 1);
    }
}
