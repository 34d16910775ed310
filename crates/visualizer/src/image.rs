//! CPU-side RGBA images: PNG in and out, and tolerant comparison for golden tests.

use std::path::Path;

use crate::error::{Result, VisualizerError};

/// An 8-bit RGBA image, rows tightly packed, top row first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbaImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 4` bytes.
    pub data: Vec<u8>,
}

/// The result of comparing two images.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageDiff {
    /// Pixels whose largest channel difference exceeds the tolerance.
    pub differing_pixels: u64,
    /// All pixels compared.
    pub total_pixels: u64,
    /// The largest channel difference seen anywhere.
    pub max_channel_delta: u8,
    /// A visualisation: differing pixels red, others a dimmed grey copy of `expected`.
    pub image: RgbaImage,
}

impl ImageDiff {
    /// Fraction of differing pixels.
    pub fn fraction(&self) -> f64 {
        if self.total_pixels == 0 {
            0.0
        } else {
            self.differing_pixels as f64 / self.total_pixels as f64
        }
    }
}

impl RgbaImage {
    /// A blank (transparent black) image.
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            data: vec![0; width as usize * height as usize * 4],
        }
    }

    /// The pixel at `(x, y)` as `[r, g, b, a]`, or `None` outside the image.
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 4]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y as usize * self.width as usize + x as usize) * 4;
        let p = &self.data[i..i + 4];
        Some([p[0], p[1], p[2], p[3]])
    }

    /// Writes the image as an 8-bit RGBA PNG, creating parent directories.
    ///
    /// # Errors
    /// [`VisualizerError::Io`] or [`VisualizerError::PngEncode`], naming the file.
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let io = |source| VisualizerError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = std::fs::File::create(path).map_err(io)?;
        let enc_err = |source| VisualizerError::PngEncode {
            path: path.to_path_buf(),
            source,
        };
        let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), self.width, self.height);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(enc_err)?;
        writer.write_image_data(&self.data).map_err(enc_err)?;
        writer.finish().map_err(enc_err)
    }

    /// Reads an 8-bit RGB or RGBA PNG.
    ///
    /// # Errors
    /// [`VisualizerError::Io`] or [`VisualizerError::PngDecode`], naming the file.
    pub fn load_png(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bad = |reason: String| VisualizerError::PngDecode {
            path: path.to_path_buf(),
            reason,
        };
        let file = std::fs::File::open(path).map_err(|source| VisualizerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().map_err(|e| bad(e.to_string()))?;
        let size = reader
            .output_buffer_size()
            .ok_or_else(|| bad("image too large".into()))?;
        let mut buf = vec![0; size];
        let info = reader
            .next_frame(&mut buf)
            .map_err(|e| bad(e.to_string()))?;
        if info.bit_depth != png::BitDepth::Eight {
            return Err(bad(format!("bit depth {:?}, expected 8", info.bit_depth)));
        }
        buf.truncate(info.buffer_size());
        let data = match info.color_type {
            png::ColorType::Rgba => buf,
            png::ColorType::Rgb => buf
                .chunks_exact(3)
                .flat_map(|c| [c[0], c[1], c[2], 255])
                .collect(),
            other => return Err(bad(format!("colour type {other:?}, expected RGB or RGBA"))),
        };
        Ok(Self {
            width: info.width,
            height: info.height,
            data,
        })
    }

    /// Compares with `expected`: a pixel differs when any channel differs by more than
    /// `tolerance`. Returns `None` when the sizes differ.
    pub fn diff(&self, expected: &RgbaImage, tolerance: u8) -> Option<ImageDiff> {
        if self.width != expected.width || self.height != expected.height {
            return None;
        }
        let mut image = RgbaImage::new(self.width, self.height);
        let mut differing = 0u64;
        let mut max_delta = 0u8;
        for ((a, e), out) in self
            .data
            .chunks_exact(4)
            .zip(expected.data.chunks_exact(4))
            .zip(image.data.chunks_exact_mut(4))
        {
            let delta = a
                .iter()
                .zip(e)
                .map(|(x, y)| x.abs_diff(*y))
                .max()
                .unwrap_or(0);
            max_delta = max_delta.max(delta);
            if delta > tolerance {
                differing += 1;
                out.copy_from_slice(&[255, 0, 0, 255]);
            } else {
                let grey = ((u16::from(e[0]) + u16::from(e[1]) + u16::from(e[2])) / 6) as u8;
                out.copy_from_slice(&[grey, grey, grey, 255]);
            }
        }
        Some(ImageDiff {
            differing_pixels: differing,
            total_pixels: u64::from(self.width) * u64::from(self.height),
            max_channel_delta: max_delta,
            image,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_roundtrip_and_diff() {
        let mut img = RgbaImage::new(3, 2);
        img.data[0..4].copy_from_slice(&[10, 20, 30, 255]);
        let dir = std::env::temp_dir().join(format!("wavecast-vis-img-{}", std::process::id()));
        let path = dir.join("a.png");
        img.save_png(&path).unwrap();
        let back = RgbaImage::load_png(&path).unwrap();
        assert_eq!(back, img);
        let mut other = img.clone();
        other.data[4] = 40;
        let d = other.diff(&img, 8).unwrap();
        assert_eq!(d.differing_pixels, 1);
        assert_eq!(d.max_channel_delta, 40);
        assert!(other.diff(&img, 40).unwrap().differing_pixels == 0);
        assert!(RgbaImage::new(1, 1).diff(&img, 0).is_none());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn load_png_names_the_missing_file() {
        let err = RgbaImage::load_png("/nonexistent/x.png").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.png"));
    }
}
