//! A frame number and capture timestamp drawn into the picture, and read back after any
//! pipeline — including a lossy codec.
//!
//! The code is a 48 × 2 grid of large black (luma 16) and white (luma 235) cells across the top
//! of the frame: 96 bits = frame number (32) + capture time in µs (56) + CRC-8 (8), most
//! significant bit first. Cells scale with the frame width (`width / 48` pixels square), so a
//! 1280-wide frame has 26-pixel cells and a 54-pixel-high band; the positions are proportional,
//! so a frame scaled down (a simulcast layer) still decodes. The decoder averages the central
//! half of each cell and thresholds at mid-grey, which survives VP8 at any sane bitrate; the CRC
//! rejects frames without a stamp or with damaged cells.
//!
//! ```
//! use wavecast_media::stamp::{decode_frame, stamp_frame, Stamp};
//! use wavecast_pipeline::{PixelFormat, Timestamp, VideoFrameMut, VideoLayout};
//!
//! let mut frame = VideoFrameMut::new(VideoLayout::new(PixelFormat::I420, 640, 360)?);
//! let stamp = Stamp { frame_number: 42, timestamp: Timestamp::from_micros(1_700_000_000_123_456) };
//! stamp_frame(&mut frame, stamp)?;
//! assert_eq!(decode_frame(&frame.freeze())?, stamp);
//! # Ok::<(), wavecast_media::MediaError>(())
//! ```

use wavecast_pipeline::{PixelFormat, Timestamp, VideoFrame, VideoFrameMut};

use crate::error::{MediaError, Result};

/// Columns of the code grid.
pub const COLUMNS: u32 = 48;
/// Rows of the code grid.
pub const ROWS: u32 = 2;
/// Largest encodable timestamp: 2^56 − 1 µs (year 4253).
pub const MAX_TIMESTAMP_MICROS: u64 = (1 << 56) - 1;
/// Narrowest frame that can carry a stamp (2-pixel cells).
pub const MIN_WIDTH: u32 = COLUMNS * 2;

const BLACK: u8 = 16;
const WHITE: u8 = 235;

/// What a stamp carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Stamp {
    /// Frame number as counted by the source.
    pub frame_number: u32,
    /// Capture time.
    pub timestamp: Timestamp,
}

/// Height in pixels of the band the stamp occupies in a frame `width` pixels wide.
pub fn band_height(width: u32) -> u32 {
    cell_edge(ROWS, width)
}

fn cell_edge(index: u32, width: u32) -> u32 {
    (u64::from(index) * u64::from(width) / u64::from(COLUMNS)) as u32
}

fn crc8(bytes: &[u8]) -> u8 {
    // CRC-8 (polynomial 0x07) with the output XORed with 0x55, so an all-black or all-white band
    // is not a valid stamp.
    let mut crc = 0u8;
    for &b in bytes {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
    }
    crc ^ 0x55
}

fn payload(stamp: Stamp) -> Result<[u8; 12]> {
    let ts = stamp.timestamp.as_micros();
    if ts > MAX_TIMESTAMP_MICROS {
        return Err(MediaError::Stamp {
            reason: format!("timestamp {ts} µs does not fit 56 bits"),
        });
    }
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&stamp.frame_number.to_be_bytes());
    bytes[4..11].copy_from_slice(&ts.to_be_bytes()[1..]);
    bytes[11] = crc8(&bytes[..11]);
    Ok(bytes)
}

fn check_size(width: u32, height: u32) -> Result<()> {
    if width < MIN_WIDTH || height < band_height(width) {
        return Err(MediaError::Stamp {
            reason: format!(
                "a {width}x{height} frame is too small (needs width ≥ {MIN_WIDTH} and a {} px band)",
                band_height(width.max(1))
            ),
        });
    }
    Ok(())
}

/// Checks the plane geometry a caller passed: 1 to 4 bytes per pixel, rows at least `width`
/// pixels apart, and `len` bytes enough for the band. Arbitrary values are errors, never an
/// out-of-bounds index or an overflow.
fn check_plane(len: usize, stride: usize, bytes_per_pixel: usize, width: u32) -> Result<()> {
    if !(1..=4).contains(&bytes_per_pixel) {
        return Err(MediaError::Stamp {
            reason: format!("{bytes_per_pixel} bytes per pixel (1 to 4 are supported)"),
        });
    }
    let row = width as usize * bytes_per_pixel;
    if stride < row {
        return Err(MediaError::Stamp {
            reason: format!("stride {stride} is shorter than a row ({row} bytes)"),
        });
    }
    let needed = (band_height(width) as usize - 1)
        .checked_mul(stride)
        .and_then(|n| n.checked_add(row));
    match needed {
        Some(needed) if len >= needed => Ok(()),
        needed => Err(MediaError::Stamp {
            reason: format!(
                "plane has {len} bytes, the band needs {}",
                needed.map_or_else(|| "more than fit in memory".into(), |n| n.to_string())
            ),
        }),
    }
}

/// Draws `stamp` into an 8-bit plane of `width` × `height` pixels with `bytes_per_pixel`
/// interleaved channels (1 for a luma plane, 4 for RGBA: every colour channel is written, alpha
/// is left alone).
pub fn encode_plane(
    data: &mut [u8],
    stride: usize,
    bytes_per_pixel: usize,
    width: u32,
    height: u32,
    stamp: Stamp,
) -> Result<()> {
    check_size(width, height)?;
    check_plane(data.len(), stride, bytes_per_pixel, width)?;
    let bytes = payload(stamp)?;
    let channels = bytes_per_pixel.clamp(1, 3);
    for row in 0..ROWS {
        let (y0, y1) = (
            cell_edge(row, width) as usize,
            cell_edge(row + 1, width) as usize,
        );
        for col in 0..COLUMNS {
            let bit = row * COLUMNS + col;
            let on = bytes[(bit / 8) as usize] & (0x80 >> (bit % 8)) != 0;
            let value = if on { WHITE } else { BLACK };
            let (x0, x1) = (
                cell_edge(col, width) as usize,
                cell_edge(col + 1, width) as usize,
            );
            for y in y0..y1 {
                let line = &mut data[y * stride..];
                for x in x0..x1 {
                    line[x * bytes_per_pixel..x * bytes_per_pixel + channels].fill(value);
                }
            }
        }
    }
    Ok(())
}

/// Reads a stamp from an 8-bit plane (see [`encode_plane`] for the parameters).
pub fn decode_plane(
    data: &[u8],
    stride: usize,
    bytes_per_pixel: usize,
    width: u32,
    height: u32,
) -> Result<Stamp> {
    check_size(width, height)?;
    check_plane(data.len(), stride, bytes_per_pixel, width)?;
    let channels = bytes_per_pixel.clamp(1, 3);
    let mut bytes = [0u8; 12];
    let mut ambiguous = 0;
    for row in 0..ROWS {
        let (y0, y1) = (
            cell_edge(row, width) as usize,
            cell_edge(row + 1, width) as usize,
        );
        // Central half of the cell, at least one pixel.
        let (cy0, cy1) = (y0 + (y1 - y0) / 4, (y1 - (y1 - y0) / 4).max(y0 + 1));
        for col in 0..COLUMNS {
            let (x0, x1) = (
                cell_edge(col, width) as usize,
                cell_edge(col + 1, width) as usize,
            );
            let (cx0, cx1) = (x0 + (x1 - x0) / 4, (x1 - (x1 - x0) / 4).max(x0 + 1));
            let (mut sum, mut n) = (0u64, 0u64);
            for y in cy0..cy1 {
                let line = &data[y * stride..];
                for x in cx0..cx1 {
                    let px = &line[x * bytes_per_pixel..x * bytes_per_pixel + channels];
                    sum += px.iter().map(|&v| u64::from(v)).sum::<u64>() / channels as u64;
                    n += 1;
                }
            }
            let mean = sum / n.max(1);
            if (80..=170).contains(&mean) {
                ambiguous += 1;
            }
            if mean >= 126 {
                let bit = row * COLUMNS + col;
                bytes[(bit / 8) as usize] |= 0x80 >> (bit % 8);
            }
        }
    }
    if bytes[11] != crc8(&bytes[..11]) {
        return Err(MediaError::Stamp {
            reason: format!(
                "checksum mismatch ({ambiguous} of {} cells were neither black nor white)",
                ROWS * COLUMNS
            ),
        });
    }
    let frame_number = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let mut ts = [0u8; 8];
    ts[1..].copy_from_slice(&bytes[4..11]);
    Ok(Stamp {
        frame_number,
        timestamp: Timestamp::from_micros(u64::from_be_bytes(ts)),
    })
}

/// Draws `stamp` into a frame being written (luma for I420/NV12, RGB for RGBA; chroma under the
/// band is set neutral).
pub fn stamp_frame(frame: &mut VideoFrameMut, stamp: Stamp) -> Result<()> {
    let layout = *frame.layout();
    let (w, h) = (layout.width(), layout.height());
    match layout.format() {
        PixelFormat::Rgba => {
            let p = frame.plane_mut(0);
            encode_plane(p.data, p.stride, 4, w, h, stamp)
        }
        _ => {
            {
                let p = frame.plane_mut(0);
                encode_plane(p.data, p.stride, 1, w, h, stamp)?;
            }
            let chroma_rows = band_height(w).div_ceil(2) as usize;
            for i in 1..layout.planes().len() {
                let mut p = frame.plane_mut(i);
                for y in 0..chroma_rows.min(p.rows) {
                    p.row_mut(y).fill(128);
                }
            }
            Ok(())
        }
    }
}

/// Reads the stamp of a frame (any of the three pixel formats).
pub fn decode_frame(frame: &VideoFrame) -> Result<Stamp> {
    let p = frame.plane(0);
    let bpp = if frame.format() == PixelFormat::Rgba {
        4
    } else {
        1
    };
    decode_plane(p.data, p.stride, bpp, frame.width(), frame.height())
}

/// A stamped moving-bar test picture in I420 planes, drawn in place frame after frame: the
/// stamp band at the top (frame number and capture time), below it a grey field with a bright
/// bar that moves 8 pixels a frame (so an encoder has motion to code). For publishers in tests
/// and bench examples that feed an encoder directly.
///
/// ```
/// use wavecast_media::stamp::{StampedBars, decode_plane};
///
/// let mut bars = StampedBars::new(320, 180)?;
/// let (planes, strides, stamp) = bars.next_frame();
/// assert_eq!(decode_plane(planes[0], strides[0], 1, 320, 180)?, stamp);
/// assert_eq!(stamp.frame_number, 0);
/// # Ok::<(), wavecast_media::MediaError>(())
/// ```
#[derive(Debug, Clone)]
pub struct StampedBars {
    width: u32,
    height: u32,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
    n: u32,
}

impl StampedBars {
    /// Pictures of `width` × `height` (large enough for a stamp: see [`MIN_WIDTH`] and
    /// [`band_height`]).
    pub fn new(width: u32, height: u32) -> Result<Self> {
        check_size(width, height)?;
        let (w, h) = (width as usize, height as usize);
        let chroma = w.div_ceil(2) * h.div_ceil(2);
        Ok(Self {
            width,
            height,
            y: vec![60; w * h],
            u: vec![90; chroma],
            v: vec![160; chroma],
            n: 0,
        })
    }

    /// Picture width.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Picture height.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Draw the next picture, stamped with its frame number and the time now: the Y, U and V
    /// planes, their strides, and the stamp.
    pub fn next_frame(&mut self) -> ([&[u8]; 3], [usize; 3], Stamp) {
        let (w, h) = (self.width as usize, self.height as usize);
        let band = band_height(self.width) as usize;
        let bar = (self.n as usize * 8) % w;
        for row in band..h {
            let line = &mut self.y[row * w..(row + 1) * w];
            line.fill(60);
            line[bar..(bar + 16).min(w)].fill(200);
        }
        let stamp = Stamp {
            frame_number: self.n,
            timestamp: Timestamp::now(),
        };
        // The size was checked in `new` and the plane is `width` wide: this cannot fail.
        let _ = encode_plane(&mut self.y, w, 1, self.width, self.height, stamp);
        self.n = self.n.wrapping_add(1);
        let cw = w.div_ceil(2);
        ([&self.y, &self.u, &self.v], [w, cw, cw], stamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wavecast_pipeline::{GPU_ROW_ALIGNMENT, VideoLayout};

    fn stamp(n: u32) -> Stamp {
        Stamp {
            frame_number: n,
            timestamp: Timestamp::from_micros(1_763_000_000_000_000 + u64::from(n) * 33_333),
        }
    }

    #[test]
    fn round_trip_every_format_and_size() {
        for format in [PixelFormat::I420, PixelFormat::Nv12, PixelFormat::Rgba] {
            for (w, h) in [(1280, 720), (640, 360), (320, 180), (96, 8), (1921, 1081)] {
                let layout =
                    VideoLayout::with_row_alignment(format, w, h, GPU_ROW_ALIGNMENT).unwrap();
                let mut f = VideoFrameMut::new(layout);
                let s = stamp(w * 7 + h);
                stamp_frame(&mut f, s).unwrap();
                assert_eq!(decode_frame(&f.freeze()).unwrap(), s, "{format:?} {w}x{h}");
            }
        }
    }

    #[test]
    fn survives_noise_and_blur() {
        let (w, h) = (640u32, 360u32);
        let mut plane = vec![100u8; (w * h) as usize];
        let s = stamp(123_456);
        encode_plane(&mut plane, w as usize, 1, w, h, s).unwrap();
        // ±40 of deterministic noise and a 3-tap horizontal blur.
        let mut seed = 1u32;
        for v in plane.iter_mut() {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            *v = (i32::from(*v) + (seed >> 16) as i32 % 81 - 40).clamp(0, 255) as u8;
        }
        let blurred: Vec<u8> = (0..plane.len())
            .map(|i| {
                let (a, b) = (
                    plane[i.saturating_sub(1)],
                    plane[(i + 1).min(plane.len() - 1)],
                );
                ((u32::from(a) + u32::from(plane[i]) * 2 + u32::from(b)) / 4) as u8
            })
            .collect();
        assert_eq!(decode_plane(&blurred, w as usize, 1, w, h).unwrap(), s);
    }

    #[test]
    fn survives_downscaling_to_a_simulcast_layer() {
        // Stamped at 1280x720, received as the half- and quarter-size layers (box filter).
        let (w, h) = (1280usize, 720usize);
        let mut full = vec![128u8; w * h];
        let s = stamp(77);
        encode_plane(&mut full, w, 1, w as u32, h as u32, s).unwrap();
        for factor in [2usize, 4] {
            let (sw, sh) = (w / factor, h / factor);
            let small: Vec<u8> = (0..sw * sh)
                .map(|i| {
                    let (x, y) = (i % sw * factor, i / sw * factor);
                    let sum: u32 = (0..factor)
                        .flat_map(|dy| (0..factor).map(move |dx| (dx, dy)))
                        .map(|(dx, dy)| u32::from(full[(y + dy) * w + x + dx]))
                        .sum();
                    (sum / (factor * factor) as u32) as u8
                })
                .collect();
            assert_eq!(
                decode_plane(&small, sw, 1, sw as u32, sh as u32).unwrap(),
                s,
                "1/{factor} size"
            );
        }
    }

    #[test]
    fn unstamped_or_tiny_frames_are_errors() {
        let plane = vec![16u8; 640 * 360];
        let err = decode_plane(&plane, 640, 1, 640, 360).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
        let white = vec![235u8; 640 * 360];
        assert!(decode_plane(&white, 640, 1, 640, 360).is_err());
        let grey = vec![128u8; 640 * 360];
        assert!(decode_plane(&grey, 640, 1, 640, 360).is_err());
        assert!(
            decode_plane(&plane, 64, 1, 64, 64)
                .unwrap_err()
                .to_string()
                .contains("too small")
        );
        let mut f = VideoFrameMut::new(VideoLayout::new(PixelFormat::I420, 640, 360).unwrap());
        let huge = Stamp {
            frame_number: 0,
            timestamp: Timestamp::from_micros(u64::MAX),
        };
        assert!(stamp_frame(&mut f, huge).is_err());
    }
}
