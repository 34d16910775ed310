//! Model checks of the pool protocol under every interleaving loom explores.
//!
//! `RUSTFLAGS="--cfg loom" cargo test -p wavecast-pipeline --release --test loom`
//! (and `--lib loom_` for the counters). Under `cfg(loom)` the pool's `Arc`, atomics and queue
//! are loom's (the queue as a linearisable model of crossbeam's `ArrayQueue`).
#![cfg(loom)]

use loom::thread;
use wavecast_pipeline::{PixelFormat, VideoFrame, VideoFramePool, VideoLayout};

fn pool(capacity: usize) -> VideoFramePool {
    VideoFramePool::new(
        "loom",
        VideoLayout::new(PixelFormat::Rgba, 1, 1).unwrap(),
        capacity,
    )
}

fn publish(pool: &VideoFramePool, value: u8) -> Option<VideoFrame> {
    let mut f = pool.acquire().ok()?;
    f.data_mut().fill(value);
    Some(f.freeze())
}

#[test]
fn last_clone_dropped_on_another_thread_returns_the_slot() {
    loom::model(|| {
        let pool = pool(1);
        let frame = publish(&pool, 1).unwrap();
        let clone = frame.clone();
        let consumer = thread::spawn(move || {
            assert_eq!(clone.data()[0], 1);
            drop(clone);
        });
        drop(frame);
        // Racing the consumer's drop: either still held (refused, counted) or free.
        let early = pool.acquire();
        let early_ok = early.is_ok();
        drop(early);
        consumer.join().unwrap();
        let again = publish(&pool, 2).expect("the slot came back after the last drop");
        assert_eq!(again.data()[0], 2);
        assert_eq!(pool.stats().exhausted, u64::from(!early_ok));
    });
}

#[test]
fn a_writer_never_gets_a_buffer_a_reader_still_holds() {
    loom::model(|| {
        let pool = pool(1);
        let frame = publish(&pool, 7).unwrap();
        let reader = thread::spawn(move || {
            let first = frame.data()[0];
            thread::yield_now();
            let second = frame.data()[0];
            assert_eq!((first, second), (7, 7), "the buffer changed under a reader");
        });
        // Try to overwrite while the reader may still hold the frame.
        let mut written = false;
        for _ in 0..2 {
            if let Ok(mut f) = pool.acquire() {
                f.data_mut().fill(9);
                written = true;
                break;
            }
            thread::yield_now();
        }
        reader.join().unwrap();
        if !written {
            assert!(pool.stats().exhausted > 0);
        }
    });
}

#[test]
fn concurrent_producers_get_distinct_buffers() {
    loom::model(|| {
        let pool = pool(2);
        let p2 = pool.clone();
        let other = thread::spawn(move || {
            let f = publish(&p2, 2);
            f.map(|f| f.data()[0])
        });
        let mine = publish(&pool, 1).map(|f| f.data()[0]);
        let theirs = other.join().unwrap();
        // Both fit (capacity 2) and neither saw the other's write.
        assert_eq!((mine, theirs), (Some(1), Some(2)));
    });
}
