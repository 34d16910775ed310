//! The browser tests' camera file: our stamped test pattern as a Y4M that Chromium's fake camera
//! loops (frame number and capture time in the band the viewer reads back).

use std::path::Path;

use wavecast_media::{FrameRate, TestPattern, Y4mWriter};
use wavecast_pipeline::{PixelFormat, Timestamp, VideoFrameMut, VideoLayout};

/// Writes `frames` stamped frames (numbered from 0) of `size` at `fps` to `path`.
pub fn write(path: &Path, size: (u32, u32), fps: u32, frames: u32) {
    let (w, h) = size;
    let mut writer = Y4mWriter::create(path, w, h, FrameRate::new(fps, 1)).expect("create Y4M");
    let layout = VideoLayout::new(PixelFormat::I420, w, h).expect("a layout");
    let pattern = TestPattern::default();
    let start = Timestamp::now().as_micros();
    for n in 0..frames {
        let mut frame = VideoFrameMut::new(layout);
        let at = Timestamp::from_micros(start + u64::from(n) * 1_000_000 / u64::from(fps));
        pattern.render(&mut frame, n, at).expect("render");
        writer.write_frame(&frame.freeze()).expect("write a frame");
    }
    writer.finish().expect("finish the Y4M");
}
