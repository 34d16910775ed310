//! PNG snapshots of I420 frames (what a source produces, to look at by eye).

use std::path::Path;

use wavecast_pipeline::{PixelFormat, VideoFrame};

use crate::error::{MediaError, Result, io_err};

/// Writes an I420 frame as an RGB PNG (BT.601 limited range, what the sources produce).
///
/// # Errors
/// A frame that is not I420, or the file cannot be written.
pub fn write_i420_png(frame: &VideoFrame, path: &Path) -> Result<()> {
    if frame.format() != PixelFormat::I420 {
        return Err(MediaError::UnsupportedPixelFormat {
            what: format!("PNG snapshot {}", path.display()),
            format: frame.format(),
        });
    }
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let (y, u, v) = (frame.plane(0), frame.plane(1), frame.plane(2));
    let mut rgb = Vec::with_capacity(w * h * 3);
    for row in 0..h {
        let (yr, ur, vr) = (y.row(row), u.row(row / 2), v.row(row / 2));
        for x in 0..w {
            let c = 1.164 * (f32::from(yr[x]) - 16.0);
            let d = f32::from(ur[x / 2]) - 128.0;
            let e = f32::from(vr[x / 2]) - 128.0;
            let px = [c + 1.596 * e, c - 0.392 * d - 0.813 * e, c + 2.017 * d];
            rgb.extend(px.map(|p| p.round().clamp(0.0, 255.0) as u8));
        }
    }
    let file = std::fs::File::create(path).map_err(io_err(path, "create"))?;
    let png_err = |source| MediaError::Png {
        path: path.to_owned(),
        source,
    };
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w as u32, h as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut out = enc.write_header().map_err(png_err)?;
    out.write_image_data(&rgb).map_err(png_err)?;
    out.finish().map_err(png_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wavecast_pipeline::{VideoFrameMut, VideoLayout};

    #[test]
    fn writes_a_png_of_the_frame_size() {
        let mut f = VideoFrameMut::new(VideoLayout::new(PixelFormat::I420, 64, 48).unwrap());
        f.data_mut().fill(128);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.png");
        write_i420_png(&f.freeze(), &path).unwrap();
        let d = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let r = d.read_info().unwrap();
        assert_eq!((r.info().width, r.info().height), (64, 48));
    }
}
