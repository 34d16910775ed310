//! Video frames: layouts (I420, NV12, RGBA; tight or GPU-padded rows), pooled buffers, and
//! zero-copy plane access.

use crate::sync::Arc;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, Result};
use crate::pool::{Lease, PoolStats, SlotPool};
use crate::time::Timestamp;

/// Row alignment wgpu requires for buffer-to-texture copies (`COPY_BYTES_PER_ROW_ALIGNMENT`).
pub const GPU_ROW_ALIGNMENT: usize = 256;

/// Largest accepted frame side, in pixels.
pub const MAX_DIMENSION: u32 = 16_384;

/// Pixel layout of a video frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PixelFormat {
    /// Planar 4:2:0: Y plane, then U and V planes at half width and height. What VP8 uses.
    I420,
    /// Semi-planar 4:2:0: Y plane, then one plane of interleaved U,V pairs.
    Nv12,
    /// Packed 8-bit R, G, B, A.
    Rgba,
}

impl PixelFormat {
    /// Number of planes.
    pub const fn plane_count(self) -> usize {
        match self {
            PixelFormat::I420 => 3,
            PixelFormat::Nv12 => 2,
            PixelFormat::Rgba => 1,
        }
    }
}

/// Clockwise rotation the renderer should apply when displaying the frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Rotation {
    /// Upright.
    #[default]
    R0,
    /// 90 degrees clockwise.
    R90,
    /// 180 degrees.
    R180,
    /// 270 degrees clockwise.
    R270,
}

/// Where one plane lives inside a frame buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaneLayout {
    /// Byte offset of the first row.
    pub offset: usize,
    /// Bytes from one row to the next (≥ `row_bytes`).
    pub stride: usize,
    /// Meaningful bytes per row.
    pub row_bytes: usize,
    /// Number of rows.
    pub rows: usize,
}

impl PlaneLayout {
    /// Bytes the plane spans in the buffer, from its offset to the end of its last row.
    pub const fn span(&self) -> usize {
        if self.rows == 0 {
            0
        } else {
            self.stride * (self.rows - 1) + self.row_bytes
        }
    }
}

/// Geometry of a video frame: format, size and where each plane lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoLayout {
    format: PixelFormat,
    width: u32,
    height: u32,
    planes: [PlaneLayout; 3],
    len: usize,
}

const fn round_up(value: usize, align: usize) -> usize {
    (value + align - 1) & !(align - 1)
}

impl VideoLayout {
    /// A tightly packed layout: each stride equals the row width, planes follow each other.
    pub fn new(format: PixelFormat, width: u32, height: u32) -> Result<Self> {
        Self::with_row_alignment(format, width, height, 1)
    }

    /// A layout whose strides and plane offsets are multiples of `align` bytes (a power of two).
    /// With [`GPU_ROW_ALIGNMENT`] each plane can be copied to a GPU texture as is, without
    /// repacking rows.
    pub fn with_row_alignment(
        format: PixelFormat,
        width: u32,
        height: u32,
        align: usize,
    ) -> Result<Self> {
        if align == 0 || !align.is_power_of_two() {
            return Err(PipelineError::InvalidAlignment(align));
        }
        if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
            return Err(PipelineError::InvalidDimensions {
                format,
                width,
                height,
                max: MAX_DIMENSION,
            });
        }
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let dims: [(usize, usize); 3] = match format {
            PixelFormat::I420 => [(w, h), (cw, ch), (cw, ch)],
            PixelFormat::Nv12 => [(w, h), (cw * 2, ch), (0, 0)],
            PixelFormat::Rgba => [(w * 4, h), (0, 0), (0, 0)],
        };
        let mut planes = [PlaneLayout::default(); 3];
        let mut offset = 0;
        for (plane, &(row_bytes, rows)) in planes.iter_mut().zip(&dims).take(format.plane_count()) {
            offset = round_up(offset, align);
            let stride = round_up(row_bytes, align);
            *plane = PlaneLayout {
                offset,
                stride,
                row_bytes,
                rows,
            };
            offset += stride * rows;
        }
        Ok(VideoLayout {
            format,
            width,
            height,
            planes,
            len: offset,
        })
    }

    /// Pixel format.
    pub const fn format(&self) -> PixelFormat {
        self.format
    }
    /// Width in pixels.
    pub const fn width(&self) -> u32 {
        self.width
    }
    /// Height in pixels.
    pub const fn height(&self) -> u32 {
        self.height
    }
    /// Bytes the whole frame occupies, padding included.
    pub const fn len(&self) -> usize {
        self.len
    }
    /// Always false: a layout has at least one pixel.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The planes, in order (Y, U, V for I420; Y, UV for NV12; RGBA).
    pub fn planes(&self) -> &[PlaneLayout] {
        &self.planes[..self.format.plane_count()]
    }
}

/// A read-only view of one plane.
#[derive(Clone, Copy)]
pub struct Plane<'a> {
    /// The plane's bytes from its first row to the end of its last row (strided).
    pub data: &'a [u8],
    /// Bytes from one row to the next.
    pub stride: usize,
    /// Meaningful bytes per row.
    pub row_bytes: usize,
    /// Number of rows.
    pub rows: usize,
}

impl<'a> Plane<'a> {
    /// Row `y` without its padding. Returns an empty slice past the last row.
    pub fn row(&self, y: usize) -> &'a [u8] {
        let start = y * self.stride;
        if y >= self.rows {
            return &[];
        }
        &self.data[start..start + self.row_bytes]
    }
}

/// A mutable view of one plane.
pub struct PlaneMut<'a> {
    /// The plane's bytes from its first row to the end of its last row (strided).
    pub data: &'a mut [u8],
    /// Bytes from one row to the next.
    pub stride: usize,
    /// Meaningful bytes per row.
    pub row_bytes: usize,
    /// Number of rows.
    pub rows: usize,
}

impl PlaneMut<'_> {
    /// Row `y` without its padding, mutable. Returns an empty slice past the last row.
    pub fn row_mut(&mut self, y: usize) -> &mut [u8] {
        if y >= self.rows {
            return &mut [];
        }
        let start = y * self.stride;
        &mut self.data[start..start + self.row_bytes]
    }

    /// Sets every meaningful byte of the plane to `value`.
    pub fn fill(&mut self, value: u8) {
        for y in 0..self.rows {
            self.row_mut(y).fill(value);
        }
    }
}

/// Storage of one video frame (a pool slot).
struct VideoBuffer {
    data: Box<[u8]>,
    layout: VideoLayout,
    rotation: Rotation,
    timestamp: Timestamp,
    sequence: u64,
}

impl VideoBuffer {
    fn plane(&self, index: usize) -> Plane<'_> {
        let p = self.layout.planes()[index];
        Plane {
            data: &self.data[p.offset..p.offset + p.span()],
            stride: p.stride,
            row_bytes: p.row_bytes,
            rows: p.rows,
        }
    }
}

/// A decoded or captured video frame, shared read-only.
///
/// Cloning is cheap (an atomic increment): every consumer of a fan-out holds the same pixels.
/// When the last clone is dropped the buffer is free again in its [`VideoFramePool`].
#[derive(Clone)]
pub struct VideoFrame {
    buf: Arc<VideoBuffer>,
}

impl VideoFrame {
    /// Geometry of the frame.
    pub fn layout(&self) -> &VideoLayout {
        &self.buf.layout
    }
    /// Pixel format.
    pub fn format(&self) -> PixelFormat {
        self.buf.layout.format
    }
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.buf.layout.width
    }
    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.buf.layout.height
    }
    /// Rotation to apply at display time.
    pub fn rotation(&self) -> Rotation {
        self.buf.rotation
    }
    /// Capture timestamp.
    pub fn timestamp(&self) -> Timestamp {
        self.buf.timestamp
    }
    /// Producer-assigned sequence number.
    pub fn sequence(&self) -> u64 {
        self.buf.sequence
    }
    /// Plane `index` (0 = Y or RGBA). Panics if `index` ≥ the format's plane count.
    pub fn plane(&self, index: usize) -> Plane<'_> {
        self.buf.plane(index)
    }
    /// Number of planes.
    pub fn plane_count(&self) -> usize {
        self.buf.layout.format.plane_count()
    }
    /// Strides of the planes, in plane order (unused entries are 0).
    pub fn strides(&self) -> [usize; 3] {
        let p = &self.buf.layout.planes;
        [p[0].stride, p[1].stride, p[2].stride]
    }
    /// The whole buffer, planes and padding, as laid out by [`VideoFrame::layout`]. With a
    /// GPU-aligned layout this can be uploaded directly.
    pub fn data(&self) -> &[u8] {
        &self.buf.data[..self.buf.layout.len]
    }
    /// Whether two handles share the same pixels (true for clones of one frame).
    pub fn ptr_eq(&self, other: &VideoFrame) -> bool {
        Arc::ptr_eq(&self.buf, &other.buf)
    }
}

impl fmt::Debug for VideoFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VideoFrame")
            .field("format", &self.format())
            .field("width", &self.width())
            .field("height", &self.height())
            .field("strides", &self.strides())
            .field("rotation", &self.rotation())
            .field("timestamp", &self.timestamp())
            .field("sequence", &self.sequence())
            .finish()
    }
}

/// A video frame being written: exclusive access to a pooled (or one-off) buffer.
///
/// Fill the planes, set the metadata, then [`freeze`](VideoFrameMut::freeze) it into a shareable
/// [`VideoFrame`]. Dropping it unfrozen returns the buffer to its pool.
pub struct VideoFrameMut {
    lease: Lease<VideoBuffer>,
}

impl VideoFrameMut {
    /// A one-off frame outside any pool (allocates; for tests, tools and cold paths).
    /// The contents are zeroed.
    pub fn new(layout: VideoLayout) -> Self {
        VideoFrameMut {
            lease: Lease::unpooled(VideoBuffer {
                data: vec![0; layout.len].into_boxed_slice(),
                layout,
                rotation: Rotation::R0,
                timestamp: Timestamp::ZERO,
                sequence: 0,
            }),
        }
    }

    /// Geometry of the frame.
    pub fn layout(&self) -> &VideoLayout {
        &self.lease.get().layout
    }
    /// Capture timestamp.
    pub fn timestamp(&self) -> Timestamp {
        self.lease.get().timestamp
    }
    /// Sets the capture timestamp.
    pub fn set_timestamp(&mut self, timestamp: Timestamp) -> &mut Self {
        self.lease.get_mut().timestamp = timestamp;
        self
    }
    /// Sets the display rotation.
    pub fn set_rotation(&mut self, rotation: Rotation) -> &mut Self {
        self.lease.get_mut().rotation = rotation;
        self
    }
    /// Sets the producer's sequence number.
    pub fn set_sequence(&mut self, sequence: u64) -> &mut Self {
        self.lease.get_mut().sequence = sequence;
        self
    }
    /// Plane `index`, read-only. Panics if `index` ≥ the format's plane count.
    pub fn plane(&self, index: usize) -> Plane<'_> {
        self.lease.get().plane(index)
    }
    /// Plane `index`, mutable. Panics if `index` ≥ the format's plane count.
    pub fn plane_mut(&mut self, index: usize) -> PlaneMut<'_> {
        let buf = self.lease.get_mut();
        let p = buf.layout.planes()[index];
        PlaneMut {
            data: &mut buf.data[p.offset..p.offset + p.span()],
            stride: p.stride,
            row_bytes: p.row_bytes,
            rows: p.rows,
        }
    }
    /// All planes at once, mutable (Y, U, V / Y, UV / RGBA).
    pub fn planes_mut(&mut self) -> Vec3<PlaneMut<'_>> {
        let buf = self.lease.get_mut();
        let layout = buf.layout;
        let mut rest: &mut [u8] = &mut buf.data[..];
        let mut consumed = 0;
        let mut out = Vec3::default();
        for p in layout.planes() {
            let (_, tail) = std::mem::take(&mut rest).split_at_mut(p.offset - consumed);
            let (plane, tail) = tail.split_at_mut(p.span());
            consumed = p.offset + p.span();
            rest = tail;
            out.push(PlaneMut {
                data: plane,
                stride: p.stride,
                row_bytes: p.row_bytes,
                rows: p.rows,
            });
        }
        out
    }
    /// The whole buffer, mutable, as laid out by [`VideoFrameMut::layout`].
    pub fn data_mut(&mut self) -> &mut [u8] {
        let buf = self.lease.get_mut();
        let len = buf.layout.len;
        &mut buf.data[..len]
    }
    /// Publishes the frame for sharing.
    pub fn freeze(self) -> VideoFrame {
        VideoFrame {
            buf: self.lease.publish(),
        }
    }
}

/// Up to three items without allocating (the planes of a frame).
pub struct Vec3<T> {
    items: [Option<T>; 3],
    len: usize,
}

impl<T> Default for Vec3<T> {
    fn default() -> Self {
        Vec3 {
            items: [None, None, None],
            len: 0,
        }
    }
}

impl<T> Vec3<T> {
    fn push(&mut self, item: T) {
        self.items[self.len] = Some(item);
        self.len += 1;
    }
    /// Number of items.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Item `i`, mutable.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.items.get_mut(i).and_then(Option::as_mut)
    }
    /// Iterator over the items, mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.items.iter_mut().filter_map(Option::as_mut)
    }
}

impl<T> std::ops::Index<usize> for Vec3<T> {
    type Output = T;
    fn index(&self, i: usize) -> &T {
        self.items[i]
            .as_ref()
            .expect("plane index within the format's plane count")
    }
}

impl<T> std::ops::IndexMut<usize> for Vec3<T> {
    fn index_mut(&mut self, i: usize) -> &mut T {
        self.items[i]
            .as_mut()
            .expect("plane index within the format's plane count")
    }
}

/// A fixed set of pre-allocated video buffers.
///
/// Cloning the pool handle is cheap and shares the same buffers. When every buffer is in use,
/// [`acquire`](VideoFramePool::acquire) returns [`PipelineError::PoolEmpty`] immediately (it never
/// blocks or allocates) and counts it in [`PoolStats::exhausted`]; live producers skip that frame.
#[derive(Clone)]
pub struct VideoFramePool {
    slots: SlotPool<VideoBuffer>,
    layout: VideoLayout,
}

impl VideoFramePool {
    /// `capacity` buffers, each large enough for `layout`, allocated now and zeroed.
    pub fn new(name: &str, layout: VideoLayout, capacity: usize) -> Self {
        let slots = SlotPool::new(name, capacity, || VideoBuffer {
            data: vec![0; layout.len].into_boxed_slice(),
            layout,
            rotation: Rotation::R0,
            timestamp: Timestamp::ZERO,
            sequence: 0,
        });
        VideoFramePool { slots, layout }
    }

    /// The layout buffers were sized for.
    pub fn layout(&self) -> &VideoLayout {
        &self.layout
    }

    /// A free buffer with the pool's layout. The previous contents are left in place (callers
    /// overwrite every plane); rotation is reset to upright.
    pub fn acquire(&self) -> Result<VideoFrameMut> {
        self.acquire_layout(self.layout)
    }

    /// A free buffer re-laid out as `layout`, which must fit the pool's buffers.
    pub fn acquire_layout(&self, layout: VideoLayout) -> Result<VideoFrameMut> {
        let capacity = self.layout.len;
        if layout.len > capacity {
            return Err(PipelineError::FrameTooLarge {
                pool: std::sync::Arc::clone(self.slots.name()),
                needed: layout.len,
                capacity,
            });
        }
        let mut lease = self.slots.acquire()?;
        let buf = lease.get_mut();
        buf.layout = layout;
        buf.rotation = Rotation::R0;
        Ok(VideoFrameMut { lease })
    }

    /// Counters (cheap: a few relaxed atomic loads).
    pub fn stats(&self) -> PoolStats {
        self.slots.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tight_i420_layout() {
        let l = VideoLayout::new(PixelFormat::I420, 1280, 720).unwrap();
        assert_eq!(l.len(), 1280 * 720 * 3 / 2);
        let p = l.planes();
        assert_eq!(p.len(), 3);
        assert_eq!((p[0].offset, p[0].stride, p[0].rows), (0, 1280, 720));
        assert_eq!(
            (p[1].offset, p[1].stride, p[1].rows),
            (1280 * 720, 640, 360)
        );
        assert_eq!(p[2].offset, 1280 * 720 + 640 * 360);
    }

    #[test]
    fn odd_sizes_round_chroma_up() {
        let l = VideoLayout::new(PixelFormat::I420, 5, 3).unwrap();
        assert_eq!(l.planes()[1].row_bytes, 3);
        assert_eq!(l.planes()[1].rows, 2);
        let nv = VideoLayout::new(PixelFormat::Nv12, 5, 3).unwrap();
        assert_eq!(nv.planes().len(), 2);
        assert_eq!(nv.planes()[1].row_bytes, 6);
    }

    #[test]
    fn gpu_aligned_layout_pads_rows_and_offsets() {
        for format in [PixelFormat::I420, PixelFormat::Nv12, PixelFormat::Rgba] {
            let l = VideoLayout::with_row_alignment(format, 642, 362, GPU_ROW_ALIGNMENT).unwrap();
            for p in l.planes() {
                assert_eq!(p.stride % 256, 0, "{format:?}");
                assert_eq!(p.offset % 256, 0, "{format:?}");
                assert!(p.stride >= p.row_bytes);
            }
        }
        let rgba = VideoLayout::with_row_alignment(PixelFormat::Rgba, 100, 2, 256).unwrap();
        assert_eq!(rgba.planes()[0].stride, 512);
        assert_eq!(rgba.planes()[0].row_bytes, 400);
    }

    #[test]
    fn bad_layouts_are_errors() {
        assert!(matches!(
            VideoLayout::new(PixelFormat::I420, 0, 10),
            Err(PipelineError::InvalidDimensions { width: 0, .. })
        ));
        assert_eq!(
            VideoLayout::with_row_alignment(PixelFormat::I420, 8, 8, 3),
            Err(PipelineError::InvalidAlignment(3))
        );
    }

    #[test]
    fn planes_are_written_and_read_without_copies() {
        let layout = VideoLayout::with_row_alignment(PixelFormat::I420, 4, 4, 16).unwrap();
        let pool = VideoFramePool::new("test", layout, 2);
        let mut f = pool.acquire().unwrap();
        {
            let mut planes = f.planes_mut();
            assert_eq!(planes.len(), 3);
            planes[0].fill(10);
            planes[1].fill(20);
            planes[2].fill(30);
        }
        f.set_timestamp(Timestamp::from_micros(7)).set_sequence(3);
        let frame = f.freeze();
        assert_eq!(frame.plane(0).row(3), &[10, 10, 10, 10]);
        assert_eq!(frame.plane(1).row(1), &[20, 20]);
        assert_eq!(frame.plane(2).row(0), &[30, 30]);
        assert_eq!(frame.strides(), [16, 16, 16]);
        assert_eq!(frame.timestamp().as_micros(), 7);
        assert_eq!(frame.sequence(), 3);
        let clone = frame.clone();
        assert!(clone.ptr_eq(&frame));
        assert_eq!(clone.plane(0).data.as_ptr(), frame.plane(0).data.as_ptr());
    }

    #[test]
    fn frames_return_to_the_pool_when_the_last_clone_drops() {
        let layout = VideoLayout::new(PixelFormat::Rgba, 2, 2).unwrap();
        let pool = VideoFramePool::new("cam", layout, 2);
        let a = pool.acquire().unwrap().freeze();
        let a2 = a.clone();
        let b = pool.acquire().unwrap().freeze();
        let err = pool.acquire().err().unwrap();
        assert!(err.to_string().contains("`cam`"), "{err}");
        assert_eq!(pool.stats().exhausted, 1);
        drop(a);
        assert!(pool.acquire().is_err(), "a clone still holds the buffer");
        drop(a2);
        let c = pool.acquire().unwrap();
        drop(c); // unfrozen writer returns its buffer
        drop(b);
        let _x = pool.acquire().unwrap();
        let _y = pool.acquire().unwrap();
        let s = pool.stats();
        assert_eq!((s.capacity, s.writing, s.exhausted), (2, 2, 2));
    }

    #[test]
    fn oversized_layout_is_refused() {
        let pool = VideoFramePool::new(
            "small",
            VideoLayout::new(PixelFormat::I420, 4, 4).unwrap(),
            1,
        );
        let big = VideoLayout::new(PixelFormat::I420, 8, 8).unwrap();
        assert!(matches!(
            pool.acquire_layout(big),
            Err(PipelineError::FrameTooLarge { .. })
        ));
        let smaller = VideoLayout::new(PixelFormat::Rgba, 2, 2).unwrap();
        assert_eq!(
            pool.acquire_layout(smaller).unwrap().layout().format(),
            PixelFormat::Rgba
        );
    }
}
