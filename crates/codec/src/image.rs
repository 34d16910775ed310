//! The picture types every video codec shares: borrowed I420 planes in, a decoded picture out.

use crate::CodecError;

/// Borrowed I420 planes (Y full size, U and V at half width and height, rounded up).
#[derive(Debug, Clone, Copy)]
pub struct I420<'a> {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Y, U, V planes.
    pub planes: [&'a [u8]; 3],
    /// Bytes per row of each plane.
    pub strides: [usize; 3],
}

impl I420<'_> {
    /// Width and height of plane `i` (0 = Y; chroma planes are half size, rounded up).
    pub fn plane_size(&self, i: usize) -> (usize, usize) {
        if i == 0 {
            (self.width as usize, self.height as usize)
        } else {
            (
                self.width.div_ceil(2) as usize,
                self.height.div_ceil(2) as usize,
            )
        }
    }

    /// Whether the planes and strides hold a whole picture of the announced size.
    pub(crate) fn check(&self) -> Result<(), CodecError> {
        for i in 0..3 {
            let (w, h) = self.plane_size(i);
            let need = self.strides[i] * (h.saturating_sub(1)) + w;
            if self.strides[i] < w || self.planes[i].len() < need {
                return Err(CodecError::BadFrame {
                    what: format!(
                        "I420 plane {i} of a {}x{} frame: stride {} and {} bytes, need stride ≥ {w} and ≥ {need} bytes",
                        self.width,
                        self.height,
                        self.strides[i],
                        self.planes[i].len()
                    ),
                });
            }
        }
        Ok(())
    }
}

/// A decoded picture, borrowed from the decoder until the next call.
#[derive(Debug, Clone, Copy)]
pub struct DecodedImage<'a> {
    /// The planes.
    pub image: I420<'a>,
}

impl DecodedImage<'_> {
    /// Copy the picture into tightly or otherwise strided destination planes.
    pub fn copy_to(&self, dst: [&mut [u8]; 3], dst_strides: [usize; 3]) -> Result<(), CodecError> {
        let cw = self.image.width.div_ceil(2) as usize;
        let ch = self.image.height.div_ceil(2) as usize;
        let dims = [
            (self.image.width as usize, self.image.height as usize),
            (cw, ch),
            (cw, ch),
        ];
        for (i, plane) in dst.into_iter().enumerate() {
            let (w, h) = dims[i];
            let need = dst_strides[i] * h.saturating_sub(1) + w;
            if dst_strides[i] < w || plane.len() < need {
                return Err(CodecError::BadFrame {
                    what: format!("destination plane {i} too small for {w}x{h}"),
                });
            }
            for y in 0..h {
                let src = &self.image.planes[i][y * self.image.strides[i]..][..w];
                plane[y * dst_strides[i]..][..w].copy_from_slice(src);
            }
        }
        Ok(())
    }
}
