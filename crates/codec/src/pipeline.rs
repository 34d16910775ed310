//! Adapters between the codecs and `wavecast-pipeline` frames.

use wavecast_pipeline::{PixelFormat, VideoFrame, VideoFrameMut, VideoFramePool, VideoLayout};

use crate::{CodecError, DecodedImage, I420};

/// Borrow an I420 pipeline frame as encoder input.
pub fn i420_of(frame: &VideoFrame) -> Result<I420<'_>, CodecError> {
    if frame.format() != PixelFormat::I420 {
        return Err(CodecError::BadFrame {
            what: format!(
                "{:?} frame given to a video encoder (needs I420)",
                frame.format()
            ),
        });
    }
    let s = frame.strides();
    Ok(I420 {
        width: frame.width(),
        height: frame.height(),
        planes: [
            frame.plane(0).data,
            frame.plane(1).data,
            frame.plane(2).data,
        ],
        strides: s,
    })
}

/// Copy a decoded picture into a frame from `pool` (re-laid out when the size changed).
pub fn to_frame(
    image: &DecodedImage<'_>,
    pool: &VideoFramePool,
) -> Result<VideoFrameMut, CodecError> {
    let (w, h) = (image.image.width, image.image.height);
    let mut frame = if pool.layout().width() == w && pool.layout().height() == h {
        pool.acquire()?
    } else {
        pool.acquire_layout(VideoLayout::new(PixelFormat::I420, w, h)?)?
    };
    let l = *frame.layout();
    let p = l.planes();
    let strides = [p[0].stride, p[1].stride, p[2].stride];
    {
        let mut planes = frame.planes_mut();
        let mut it = planes.iter_mut();
        let (Some(y), Some(u), Some(v)) = (it.next(), it.next(), it.next()) else {
            return Err(CodecError::BadFrame {
                what: "I420 frame without three planes".into(),
            });
        };
        image.copy_to([&mut *y.data, &mut *u.data, &mut *v.data], strides)?;
    }
    Ok(frame)
}
