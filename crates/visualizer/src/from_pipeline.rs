//! Adapters from `wavecast-pipeline` types to the renderers' inputs.
//!
//! The renderers take plain data (plane slices and strides, `(min, max)` pairs, dBFS levels);
//! these conversions borrow from the pipeline's frames and analysis without copying.

use wavecast_pipeline::analysis::{Column, Levels, SpectrumAnalyzer, WaveformHistory};
use wavecast_pipeline::{PixelFormat, VideoFrame};

use crate::error::{Result, VisualizerError};
use crate::meter::MeterLevels;
use crate::spectrum::SpectrumRenderer;
use crate::video::I420Frame;
use crate::waveform::WaveformRenderer;

impl<'a> I420Frame<'a> {
    /// Borrows the planes of a pipeline [`VideoFrame`] (which must be I420).
    ///
    /// The view carries no rotation: use [`crate::VideoRenderer::update_video_frame`] (or
    /// [`crate::VideoRenderer::set_rotation`]) to apply the frame's.
    ///
    /// # Errors
    /// [`VisualizerError::InvalidFrame`] for other pixel formats or inconsistent planes.
    pub fn from_video_frame(frame: &'a VideoFrame) -> Result<Self> {
        let (width, height) = (frame.width(), frame.height());
        if frame.format() != PixelFormat::I420 {
            return Err(VisualizerError::InvalidFrame {
                width,
                height,
                plane: "format",
                reason: format!("pixel format {:?}, the renderer takes I420", frame.format()),
            });
        }
        let stride = |plane: &'static str, s: usize| {
            u32::try_from(s).map_err(|_| VisualizerError::InvalidFrame {
                width,
                height,
                plane,
                reason: format!("stride {s} does not fit in 32 bits"),
            })
        };
        let (y, u, v) = (frame.plane(0), frame.plane(1), frame.plane(2));
        let out = I420Frame {
            width,
            height,
            y: y.data,
            y_stride: stride("Y", y.stride)?,
            u: u.data,
            u_stride: stride("U", u.stride)?,
            v: v.data,
            v_stride: stride("V", v.stride)?,
        };
        out.validate()?;
        Ok(out)
    }
}

impl From<Levels> for MeterLevels {
    fn from(l: Levels) -> Self {
        MeterLevels {
            rms_dbfs: l.rms_dbfs,
            peak_dbfs: l.peak_dbfs,
        }
    }
}

impl WaveformRenderer {
    /// Draws a pipeline [`WaveformHistory`] (oldest column at the left, newest at the right).
    pub fn update_history(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        history: &WaveformHistory,
    ) {
        let (a, b) = history.as_slices();
        let pair = |c: &Column| (c.min, c.max);
        self.update_envelope(
            device,
            queue,
            a.iter().chain(b).map(pair),
            a.len() + b.len(),
        );
    }
}

impl SpectrumRenderer {
    /// Draws the last spectrum a pipeline [`SpectrumAnalyzer`] computed (call its `compute` first).
    pub fn update_analyzer(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        analyzer: &SpectrumAnalyzer,
    ) {
        // bin_frequency(i) = i * sample_rate / fft_size.
        let sample_rate = (analyzer.bin_frequency(1) * analyzer.fft_size() as f32).round() as u32;
        self.update(device, queue, analyzer.magnitudes(), sample_rate);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wavecast_pipeline::{VideoFrameMut, VideoLayout};

    #[test]
    fn pipeline_i420_frame_borrows_its_planes() {
        let layout = VideoLayout::new(PixelFormat::I420, 33, 17).unwrap();
        let mut f = VideoFrameMut::new(layout);
        f.plane_mut(0).fill(200);
        f.plane_mut(1).fill(90);
        f.plane_mut(2).fill(240);
        let frame = f.freeze();
        let view = I420Frame::from_video_frame(&frame).unwrap();
        assert_eq!((view.width, view.height), (33, 17));
        assert_eq!(view.chroma_size(), (17, 9));
        assert_eq!(view.y[0], 200);
        assert_eq!(view.u[0], 90);
        assert_eq!(view.v[0], 240);
        assert!(view.y_stride >= 33 && view.u_stride >= 17);
    }

    #[test]
    fn other_pixel_formats_are_refused() {
        let layout = VideoLayout::new(PixelFormat::Rgba, 4, 4).unwrap();
        let frame = VideoFrameMut::new(layout).freeze();
        let err = I420Frame::from_video_frame(&frame).unwrap_err().to_string();
        assert!(err.contains("Rgba"), "{err}");
    }

    #[test]
    fn levels_convert_to_meter_levels() {
        let l = Levels::of(&[16_384, -16_384]);
        let m = MeterLevels::from(l);
        assert!((m.rms_dbfs - l.rms_dbfs).abs() < 1e-6 && (m.peak_dbfs + 6.02).abs() < 0.05);
    }
}
