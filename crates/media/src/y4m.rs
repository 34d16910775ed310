//! YUV4MPEG2 (`.y4m`) files: 8-bit 4:2:0 reader and writer.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use wavecast_pipeline::{PixelFormat, VideoFrame, VideoFrameMut, VideoLayout};

use crate::error::{MediaError, Result, io_err};
use crate::source::{FrameRate, VideoSource};

const MAGIC: &str = "YUV4MPEG2";
const MAX_HEADER: usize = 1024;

/// Stream parameters from a Y4M header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Y4mInfo {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frame rate (`F` tag; 30/1 if absent).
    pub frame_rate: FrameRate,
}

/// Reads I420 frames from a `.y4m` file.
pub struct Y4mReader {
    path: PathBuf,
    reader: BufReader<File>,
    info: Y4mInfo,
    data_start: u64,
    frame: u64,
}

fn read_line(reader: &mut impl BufRead, limit: usize) -> std::io::Result<(Vec<u8>, bool)> {
    let mut line = Vec::new();
    let mut limited = reader.take(limit as u64);
    limited.read_until(b'\n', &mut line)?;
    let complete = line.last() == Some(&b'\n');
    if complete {
        line.pop();
    }
    Ok((line, complete))
}

impl Y4mReader {
    /// Opens `path` and parses its header. Only 8-bit 4:2:0 (`C420`, `C420jpeg`, `C420paldv`,
    /// `C420mpeg2` or no `C` tag) progressive or interlaced streams are accepted.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(io_err(&path, "open"))?;
        let mut reader = BufReader::new(file);
        let (line, complete) =
            read_line(&mut reader, MAX_HEADER).map_err(io_err(&path, "read header"))?;
        let header_err = |reason: String| MediaError::Y4mHeader {
            path: path.clone(),
            reason,
        };
        if !complete {
            return Err(header_err(if line.is_empty() {
                "file is empty".into()
            } else {
                format!("no end of line within {MAX_HEADER} bytes")
            }));
        }
        let text =
            std::str::from_utf8(&line).map_err(|_| header_err("header is not text".into()))?;
        let mut tokens = text.split(' ').filter(|t| !t.is_empty());
        if tokens.next() != Some(MAGIC) {
            return Err(header_err(format!("does not start with `{MAGIC}`")));
        }
        let (mut width, mut height, mut frame_rate) = (None, None, FrameRate::new(30, 1));
        for token in tokens {
            // The tag is one character; split on a character boundary so a non-ASCII tag is an
            // error, not a panic (`split_at(1)` would cut a multi-byte character).
            let mut chars = token.chars();
            let tag = chars.next().unwrap_or(' ');
            let value = chars.as_str();
            match tag {
                'W' => {
                    width = Some(
                        value
                            .parse::<u32>()
                            .map_err(|_| header_err(format!("bad width `{value}`")))?,
                    )
                }
                'H' => {
                    height = Some(
                        value
                            .parse::<u32>()
                            .map_err(|_| header_err(format!("bad height `{value}`")))?,
                    )
                }
                'F' => {
                    let (n, d) = value
                        .split_once(':')
                        .and_then(|(n, d)| Some((n.parse::<u32>().ok()?, d.parse::<u32>().ok()?)))
                        .filter(|&(n, d)| n > 0 && d > 0)
                        .ok_or_else(|| header_err(format!("bad frame rate `{value}`")))?;
                    frame_rate = FrameRate::new(n, d);
                }
                'C' => {
                    if !matches!(value, "420" | "420jpeg" | "420paldv" | "420mpeg2") {
                        return Err(MediaError::Y4mUnsupported {
                            path,
                            reason: format!(
                                "colour space `C{value}` (only 8-bit 4:2:0 is supported)"
                            ),
                        });
                    }
                }
                'I' | 'A' | 'X' => {}
                _ => return Err(header_err(format!("unknown tag `{}`", token.escape_debug()))),
            }
        }
        let (Some(width), Some(height)) = (width, height) else {
            return Err(header_err("missing W or H".into()));
        };
        VideoLayout::new(PixelFormat::I420, width, height)
            .map_err(|e| header_err(e.to_string()))?;
        let data_start = reader
            .stream_position()
            .map_err(io_err(&path, "read header"))?;
        Ok(Y4mReader {
            path,
            reader,
            info: Y4mInfo {
                width,
                height,
                frame_rate,
            },
            data_start,
            frame: 0,
        })
    }

    /// Stream parameters.
    pub fn info(&self) -> Y4mInfo {
        self.info
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the next frame into `out`, which must be I420 of the stream's size (any row
    /// alignment). Returns `false` at the end of the file; a partial frame is an error.
    pub fn read_frame(&mut self, out: &mut VideoFrameMut) -> Result<bool> {
        let layout = out.layout();
        if layout.format() != PixelFormat::I420
            || layout.width() != self.info.width
            || layout.height() != self.info.height
        {
            return Err(MediaError::FormatMismatch {
                what: self.path.display().to_string(),
                reason: format!(
                    "frames are I420 {}x{}, the buffer is {:?} {}x{}",
                    self.info.width,
                    self.info.height,
                    layout.format(),
                    layout.width(),
                    layout.height()
                ),
            });
        }
        let frame = self.frame;
        let (line, complete) = read_line(&mut self.reader, 256)
            .map_err(io_err(&self.path, format!("read frame {frame}")))?;
        if line.is_empty() && !complete {
            return Ok(false);
        }
        if !complete || !line.starts_with(b"FRAME") {
            return Err(MediaError::Y4mFrame {
                path: self.path.clone(),
                frame,
                reason: format!(
                    "expected `FRAME`, found `{}`",
                    String::from_utf8_lossy(&line[..line.len().min(16)])
                ),
            });
        }
        let expected = self.info.width as usize * self.info.height as usize
            + 2 * (self.info.width as usize).div_ceil(2) * (self.info.height as usize).div_ceil(2);
        let mut found = 0;
        let mut planes = out.planes_mut();
        for p in planes.iter_mut() {
            for y in 0..p.rows {
                let row = p.row_mut(y);
                let n = read_full(&mut self.reader, row)
                    .map_err(io_err(&self.path, format!("read frame {frame}")))?;
                found += n;
                if n < row.len() {
                    return Err(MediaError::Y4mTruncated {
                        path: self.path.clone(),
                        frame,
                        expected,
                        found,
                    });
                }
            }
        }
        out.set_sequence(frame);
        self.frame += 1;
        Ok(true)
    }

    /// Goes back to the first frame.
    pub fn rewind(&mut self) -> Result<()> {
        self.reader
            .seek(SeekFrom::Start(self.data_start))
            .map_err(io_err(&self.path, "rewind"))?;
        self.frame = 0;
        Ok(())
    }
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl VideoSource for Y4mReader {
    fn layout(&self) -> VideoLayout {
        VideoLayout::new(PixelFormat::I420, self.info.width, self.info.height)
            .expect("dimensions were validated when the header was parsed")
    }
    fn frame_rate(&self) -> FrameRate {
        self.info.frame_rate
    }
    fn read_frame(&mut self, out: &mut VideoFrameMut) -> Result<bool> {
        Y4mReader::read_frame(self, out)
    }
    fn rewind(&mut self) -> Result<()> {
        Y4mReader::rewind(self)
    }
    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// Writes I420 frames to a `.y4m` file (padding rows are stripped).
pub struct Y4mWriter {
    path: PathBuf,
    writer: BufWriter<File>,
    width: u32,
    height: u32,
    frames: u64,
}

impl Y4mWriter {
    /// Creates (or truncates) `path` for `width` × `height` frames at `frame_rate`.
    pub fn create(
        path: impl AsRef<Path>,
        width: u32,
        height: u32,
        frame_rate: FrameRate,
    ) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        VideoLayout::new(PixelFormat::I420, width, height)?;
        let file = File::create(&path).map_err(io_err(&path, "create"))?;
        let mut writer = BufWriter::new(file);
        writeln!(
            writer,
            "{MAGIC} W{width} H{height} F{}:{} Ip A1:1 C420jpeg",
            frame_rate.num, frame_rate.den
        )
        .map_err(io_err(&path, "write header"))?;
        Ok(Y4mWriter {
            path,
            writer,
            width,
            height,
            frames: 0,
        })
    }

    /// Appends a frame, which must be I420 of the file's size.
    pub fn write_frame(&mut self, frame: &VideoFrame) -> Result<()> {
        if frame.format() != PixelFormat::I420 {
            return Err(MediaError::UnsupportedPixelFormat {
                what: self.path.display().to_string(),
                format: frame.format(),
            });
        }
        if (frame.width(), frame.height()) != (self.width, self.height) {
            return Err(MediaError::FormatMismatch {
                what: self.path.display().to_string(),
                reason: format!(
                    "file is {}x{}, frame is {}x{}",
                    self.width,
                    self.height,
                    frame.width(),
                    frame.height()
                ),
            });
        }
        let action = format!("write frame {}", self.frames);
        let w = &mut self.writer;
        w.write_all(b"FRAME\n")
            .map_err(io_err(&self.path, action.clone()))?;
        for i in 0..3 {
            let p = frame.plane(i);
            for y in 0..p.rows {
                w.write_all(p.row(y))
                    .map_err(io_err(&self.path, action.clone()))?;
            }
        }
        self.frames += 1;
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Flushes buffered data to the file.
    pub fn finish(mut self) -> Result<()> {
        self.writer.flush().map_err(io_err(&self.path, "flush"))
    }
}
