//! Steady state allocates nothing: the simulcast downscaler, and the encoders and decoders on
//! the Rust side (libvpx and OpenH264 manage their own memory in C, which this allocator does
//! not see). A binary of its own: its counting global allocator would slow every other test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use wavecast_codec::{
    I420, I420Scaler, VideoCodec, VideoDecoder, VideoEncoder, VideoEncoderConfig,
};

/// Counts the allocations of the current thread (tests run on threads of their own).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; counting touches only a const-initialised
// thread-local `Cell`, which neither allocates nor has a destructor.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: as the caller promised for `layout`.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Allocations made by `f`.
fn count(f: impl FnOnce()) -> u64 {
    let before = allocations();
    f();
    allocations() - before
}

struct Picture {
    width: u32,
    height: u32,
    planes: [Vec<u8>; 3],
}

impl Picture {
    fn new(width: u32, height: u32, n: u32) -> Self {
        let (w, h) = (width as usize, height as usize);
        let y = (0..w * h)
            .map(|i| ((i % w + i / w + n as usize * 3) % 200 + 20) as u8)
            .collect();
        let c = w.div_ceil(2) * h.div_ceil(2);
        Self {
            width,
            height,
            planes: [y, vec![110; c], vec![140; c]],
        }
    }

    fn i420(&self) -> I420<'_> {
        let cw = self.width.div_ceil(2) as usize;
        I420 {
            width: self.width,
            height: self.height,
            planes: [&self.planes[0], &self.planes[1], &self.planes[2]],
            strides: [self.width as usize, cw, cw],
        }
    }
}

#[test]
fn the_allocator_counts() {
    let n = count(|| {
        let v = std::hint::black_box(vec![1u8; 100]);
        drop(v);
    });
    assert_eq!(n, 1);
}

#[test]
fn scaling_allocates_nothing_once_the_source_size_is_known() {
    // The simulcast set of an odd-sized capture: full, half, quarter (rounded up).
    let (w, h) = (1281u32, 719u32);
    let pictures: Vec<Picture> = (0..4).map(|n| Picture::new(w, h, n)).collect();
    let mut layers = [
        I420Scaler::new(w.div_ceil(2), h.div_ceil(2)).unwrap(),
        I420Scaler::new(w.div_ceil(4), h.div_ceil(4)).unwrap(),
        I420Scaler::new(427, 240).unwrap(),
    ];
    // The first picture builds the filters.
    for s in &mut layers {
        s.scale(&pictures[0].i420()).unwrap();
    }
    let mut checksum = 0u64;
    let n = count(|| {
        for _ in 0..10 {
            for p in &pictures {
                for s in &mut layers {
                    let out = s.scale(&p.i420()).unwrap();
                    checksum += u64::from(out.planes[0][out.planes[0].len() / 2]);
                }
            }
        }
    });
    assert_eq!(n, 0, "allocations while scaling 120 pictures");
    assert!(checksum > 0);
}

#[test]
fn encoding_and_decoding_allocate_nothing_in_steady_state() {
    for codec in VideoCodec::ALL {
        let (w, h) = (320u32, 240u32);
        let mut enc = VideoEncoder::new(VideoEncoderConfig::new(codec, w, h, 30)).unwrap();
        let mut dec = VideoDecoder::new(codec).unwrap();
        let pictures: Vec<Picture> = (0..8).map(|n| Picture::new(w, h, n)).collect();
        let mut frames: Vec<Vec<u8>> = Vec::with_capacity(64);
        for (n, p) in pictures.iter().enumerate() {
            let f = enc.encode(&p.i420(), n as i64 * 3000).unwrap().unwrap();
            frames.push(f.data.to_vec());
        }
        // A buffer to copy frames into, as a sender would hand them on.
        let mut copy = Vec::with_capacity(1 << 20);
        let encoded = count(|| {
            for k in 0..30usize {
                let p = &pictures[k % pictures.len()];
                let f = enc
                    .encode(&p.i420(), (8 + k as i64) * 3000)
                    .unwrap()
                    .unwrap();
                copy.clear();
                copy.extend_from_slice(f.data);
            }
        });
        assert_eq!(
            encoded, 0,
            "{codec}: allocations while encoding 30 pictures"
        );
        for f in &frames[..2] {
            dec.decode_frame(f).unwrap();
        }
        let decoded = count(|| {
            for f in &frames[2..] {
                assert!(dec.decode_frame(f).unwrap());
                assert!(dec.image().is_some());
            }
        });
        assert_eq!(decoded, 0, "{codec}: allocations while decoding");
    }
}
