//! Hand-off and analysis benchmarks, each next to its baseline in the same run.
//!
//! `cargo bench -p wavecast-pipeline --bench pipeline`
//!
//! - `audio_ops_single_thread/*`: push 32 + pop 32 frames on one thread (raw operation cost).
//! - `audio_push_contended/*`: producer cost per 10 ms 48 kHz stereo frame while a consumer
//!   thread drains concurrently; nobody waits, full structures drop (the live policy).
//! - `audio_latency/*`: one frame's hand-off latency, measured as half a ping-pong round trip.
//! - `video_mailbox/*`: post + take of a pooled 720p frame, and the cross-thread ping-pong, vs
//!   the `Mutex<Option<frame>>` + dirty-flag pattern.
//! - `analysis/*`: cost per 10 ms stereo frame of each analysis step.

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wavecast_pipeline::analysis::{
    Column, Levels, SpeakingConfig, SpeakingDetector, SpectrumAnalyzer, WaveformHistory, envelope,
};
use wavecast_pipeline::{
    AudioFormat, AudioFrame, AudioFrameMut, AudioRingConfig, FrameQueue, GPU_ROW_ALIGNMENT,
    Mailbox, PixelFormat, Timestamp, VideoFrame, VideoFramePool, VideoLayout, audio_ring,
};

const SPC: usize = 480;
const SAMPLES: usize = SPC * 2;
const FORMAT: AudioFormat = AudioFormat::STEREO_48K;

thread_local! {
    static SPINS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Waiting in the cross-thread benches: spin briefly, then yield the core. On a shared 2-core VM
/// a pure spin can burn a whole time slice while the other side is descheduled (measuring the
/// scheduler, not the queue), and a pure yield hands the core to unrelated processes.
fn relax() {
    SPINS.with(|s| {
        let n = s.get().wrapping_add(1);
        s.set(n);
        if n % 128 == 0 {
            thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    });
}

fn sum(samples: &[i16]) -> i64 {
    samples.iter().map(|&s| i64::from(s)).sum()
}

/// Producer-side cost of pushing `iters` frames while a consumer thread drains concurrently.
/// The producer never waits: when the structure is full it drops (as the live pipeline does),
/// so this measures the decoder thread's per-frame cost under contention, not the scheduler.
fn contended_push<P, C>(iters: u64, mut push: P, mut drain: C) -> Duration
where
    P: FnMut(AudioFrame),
    C: FnMut() -> bool + Send + 'static,
{
    let frame = AudioFrameMut::from_samples(FORMAT, &[3; SAMPLES]).freeze();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let consumer = thread::spawn(move || {
        while !stop2.load(Ordering::Relaxed) {
            if !drain() {
                relax();
            }
        }
    });
    let start = Instant::now();
    for _ in 0..iters {
        push(frame.clone());
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    consumer.join().unwrap();
    elapsed
}

/// Uncontended cost of moving one frame through each structure on one thread (push a batch of
/// 32, pop 32): the raw operation cost, free of scheduler effects.
fn audio_ops(c: &mut Criterion) {
    let mut g = c.benchmark_group("audio_ops_single_thread");
    g.throughput(Throughput::Elements(32));
    let frame = AudioFrameMut::from_samples(FORMAT, &[3; SAMPLES]).freeze();
    g.bench_function("ring_spsc", |b| {
        let mut config = AudioRingConfig::with_target(FORMAT, Duration::from_millis(10));
        config.capacity = Duration::from_millis(400);
        config.max_latency = config.capacity;
        let (mut tx, mut rx) = audio_ring(config).unwrap();
        let mut out = [0i16; SAMPLES];
        b.iter(|| {
            for _ in 0..32 {
                tx.push(&frame).unwrap();
            }
            for _ in 0..32 {
                black_box(rx.pop_at(&mut out, Timestamp::ZERO));
            }
        })
    });
    g.bench_function("frame_queue_lockfree", |b| {
        let q = FrameQueue::new(64);
        b.iter(|| {
            for _ in 0..32 {
                q.push(frame.clone());
            }
            for _ in 0..32 {
                black_box(q.pop());
            }
        })
    });
    g.bench_function("mutex_vecdeque", |b| {
        let q = Mutex::new(VecDeque::with_capacity(64));
        b.iter(|| {
            for _ in 0..32 {
                q.lock().unwrap().push_back(frame.clone());
            }
            for _ in 0..32 {
                black_box(q.lock().unwrap().pop_front());
            }
        })
    });
    g.bench_function("std_mpsc_sync_channel", |b| {
        let (tx, rx) = mpsc::sync_channel(64);
        b.iter(|| {
            for _ in 0..32 {
                tx.send(frame.clone()).unwrap();
            }
            for _ in 0..32 {
                black_box(rx.recv().unwrap());
            }
        })
    });
    g.finish();
}

fn audio_throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("audio_push_contended");
    g.throughput(Throughput::Elements(1));

    g.bench_function("ring_spsc", |b| {
        b.iter_custom(|iters| {
            let (mut tx, mut rx) = audio_ring(AudioRingConfig::new(FORMAT)).unwrap();
            let mut out = [0i16; SAMPLES];
            contended_push(
                iters,
                move |f| _ = tx.push(&f).unwrap(),
                move || {
                    let n = rx.pop_at(&mut out, Timestamp::ZERO);
                    black_box(sum(&out[..n]));
                    n > 0
                },
            )
        })
    });

    g.bench_function("frame_queue_lockfree", |b| {
        b.iter_custom(|iters| {
            let q = Arc::new(FrameQueue::new(64));
            let q2 = Arc::clone(&q);
            contended_push(
                iters,
                move |f| _ = q.push(f),
                move || q2.pop().map(|f| black_box(sum(f.samples()))).is_some(),
            )
        })
    });

    g.bench_function("mutex_vecdeque", |b| {
        b.iter_custom(|iters| {
            let q = Arc::new(Mutex::new(VecDeque::with_capacity(64)));
            let q2 = Arc::clone(&q);
            contended_push(
                iters,
                move |f| {
                    let mut q = q.lock().unwrap();
                    if q.len() == 64 {
                        q.pop_front();
                    }
                    q.push_back(f);
                },
                move || {
                    let f = q2.lock().unwrap().pop_front();
                    f.map(|f| black_box(sum(f.samples()))).is_some()
                },
            )
        })
    });

    g.bench_function("std_mpsc_sync_channel", |b| {
        b.iter_custom(|iters| {
            let (tx, rx) = mpsc::sync_channel(64);
            contended_push(
                iters,
                move |f| _ = tx.try_send(f),
                move || rx.try_recv().map(|f| black_box(sum(f.samples()))).is_ok(),
            )
        })
    });
    g.finish();
}

/// Worst-case producer stalls: the live property of a never-blocking producer is its tail, which
/// criterion's means hide. Times every push of 200 000 frames while a consumer drains, and
/// prints percentiles per structure (same run, same load).
fn push_tail_latency(_: &mut Criterion) {
    use hdrhistogram::Histogram;
    const PUSHES: u64 = 200_000;
    let mut rows = Vec::new();
    let mut run =
        |name: &str, push: &mut dyn FnMut(AudioFrame), drain: Box<dyn FnMut() -> bool + Send>| {
            let frame = AudioFrameMut::from_samples(FORMAT, &[3; SAMPLES]).freeze();
            let stop = Arc::new(AtomicBool::new(false));
            let stop2 = Arc::clone(&stop);
            let mut drain = drain;
            let consumer = thread::spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    if !drain() {
                        relax();
                    }
                }
            });
            let mut h = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).unwrap();
            for _ in 0..PUSHES {
                let f = frame.clone();
                let t = Instant::now();
                push(f);
                h.saturating_record(t.elapsed().as_nanos() as u64);
            }
            stop.store(true, Ordering::Relaxed);
            consumer.join().unwrap();
            rows.push(format!(
                "{name:<24} p50 {:>7} ns  p99 {:>7} ns  p99.9 {:>9} ns  max {:>10} ns",
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max()
            ));
        };
    {
        let (mut tx, mut rx) = audio_ring(AudioRingConfig::new(FORMAT)).unwrap();
        let mut out = [0i16; SAMPLES];
        run(
            "ring_spsc",
            &mut |f| _ = tx.push(&f).unwrap(),
            Box::new(move || rx.pop_at(&mut out, Timestamp::ZERO) > 0),
        );
    }
    {
        let q = Arc::new(FrameQueue::new(64));
        let q2 = Arc::clone(&q);
        run(
            "frame_queue_lockfree",
            &mut |f| _ = q.push(f),
            Box::new(move || q2.pop().is_some()),
        );
    }
    {
        let q = Arc::new(Mutex::new(VecDeque::with_capacity(64)));
        let q2 = Arc::clone(&q);
        run(
            "mutex_vecdeque",
            &mut |f| {
                let mut q = q.lock().unwrap();
                if q.len() == 64 {
                    q.pop_front();
                }
                q.push_back(f);
            },
            Box::new(move || q2.lock().unwrap().pop_front().is_some()),
        );
    }
    {
        let (tx, rx) = mpsc::sync_channel(64);
        run(
            "std_mpsc_sync_channel",
            &mut |f| _ = tx.try_send(f),
            Box::new(move || rx.try_recv().is_ok()),
        );
    }
    println!("audio_push_tail ({PUSHES} pushes each, consumer draining concurrently):");
    for row in rows {
        println!("  {row}");
    }
}

/// Half the round trip of a frame bounced between two threads through a pair of channels.
fn ping_pong<S1, R1, S2, R2>(
    iters: u64,
    mut ping_tx: S1,
    mut pong_rx: R1,
    mut ping_rx: R2,
    mut pong_tx: S2,
) -> Duration
where
    S1: FnMut(AudioFrame),
    R1: FnMut() -> Option<AudioFrame>,
    S2: FnMut(AudioFrame) + Send + 'static,
    R2: FnMut() -> Option<AudioFrame> + Send + 'static,
{
    let frame = AudioFrameMut::from_samples(FORMAT, &[1; SAMPLES]).freeze();
    let echo = thread::spawn(move || {
        for _ in 0..iters {
            let f = loop {
                if let Some(f) = ping_rx() {
                    break f;
                }
                relax();
            };
            pong_tx(f);
        }
    });
    let start = Instant::now();
    for _ in 0..iters {
        ping_tx(frame.clone());
        loop {
            if let Some(f) = pong_rx() {
                black_box(f);
                break;
            }
            relax();
        }
    }
    let elapsed = start.elapsed();
    echo.join().unwrap();
    elapsed / 2
}

fn audio_latency(c: &mut Criterion) {
    let mut g = c.benchmark_group("audio_latency");

    g.bench_function("frame_queue_lockfree", |b| {
        b.iter_custom(|iters| {
            let (a, b2) = (Arc::new(FrameQueue::new(4)), Arc::new(FrameQueue::new(4)));
            let (a2, b3) = (Arc::clone(&a), Arc::clone(&b2));
            ping_pong(
                iters,
                move |f| _ = a.push(f),
                move || b2.pop(),
                move || a2.pop(),
                move |f| _ = b3.push(f),
            )
        })
    });

    g.bench_function("ring_spsc", |b| {
        b.iter_custom(|iters| {
            // Sample rings carry samples, not frames: bounce 10 ms of samples each way.
            let mut config = AudioRingConfig::with_target(FORMAT, Duration::from_millis(10));
            config.max_latency = config.capacity;
            let (mut ping_tx, mut ping_rx) = audio_ring(config).unwrap();
            let (mut pong_tx, mut pong_rx) = audio_ring(config).unwrap();
            let echo = thread::spawn(move || {
                let mut buf = [0i16; SAMPLES];
                for _ in 0..iters {
                    while ping_rx.pop_at(&mut buf, Timestamp::ZERO) == 0 {
                        relax();
                    }
                    pong_tx.push_samples(&buf, Timestamp::ZERO);
                }
            });
            let samples = [1i16; SAMPLES];
            let mut buf = [0i16; SAMPLES];
            let start = Instant::now();
            for _ in 0..iters {
                ping_tx.push_samples(&samples, Timestamp::ZERO);
                while pong_rx.pop_at(&mut buf, Timestamp::ZERO) == 0 {
                    relax();
                }
            }
            let elapsed = start.elapsed();
            echo.join().unwrap();
            elapsed / 2
        })
    });

    g.bench_function("mutex_vecdeque", |b| {
        b.iter_custom(|iters| {
            let (a, b2) = (
                Arc::new(Mutex::new(VecDeque::new())),
                Arc::new(Mutex::new(VecDeque::new())),
            );
            let (a2, b3) = (Arc::clone(&a), Arc::clone(&b2));
            ping_pong(
                iters,
                move |f| a.lock().unwrap().push_back(f),
                move || b2.lock().unwrap().pop_front(),
                move || a2.lock().unwrap().pop_front(),
                move |f| b3.lock().unwrap().push_back(f),
            )
        })
    });

    g.bench_function("std_mpsc_channel", |b| {
        b.iter_custom(|iters| {
            let (a, a2) = mpsc::channel();
            let (b2, b3) = mpsc::channel();
            ping_pong(
                iters,
                move |f| a.send(f).unwrap(),
                move || b3.try_recv().ok(),
                move || a2.try_recv().ok(),
                move |f| b2.send(f).unwrap(),
            )
        })
    });
    g.finish();
}

fn video_mailbox(c: &mut Criterion) {
    let mut g = c.benchmark_group("video_mailbox");
    let layout =
        VideoLayout::with_row_alignment(PixelFormat::I420, 1280, 720, GPU_ROW_ALIGNMENT).unwrap();
    let pool = VideoFramePool::new("bench", layout, 4);

    g.bench_function("pool_acquire_freeze_drop", |b| {
        b.iter(|| black_box(pool.acquire().unwrap().freeze()))
    });
    let shared = pool.acquire().unwrap().freeze();
    g.bench_function("mailbox_post_take", |b| {
        let mailbox = Mailbox::new();
        b.iter(|| {
            mailbox.post(shared.clone());
            black_box(mailbox.take());
        })
    });
    g.bench_function("mutex_option_dirty_flag", |b| {
        let slot: Mutex<(Option<VideoFrame>, bool)> = Mutex::new((None, false));
        b.iter(|| {
            *slot.lock().unwrap() = (Some(shared.clone()), true);
            let mut guard = slot.lock().unwrap();
            if guard.1 {
                guard.1 = false;
                black_box(guard.0.take());
            }
        })
    });

    // Cross-thread: the renderer thread takes frames as the producer posts them (ping-pong).
    g.bench_function("mailbox_cross_thread", |b| {
        b.iter_custom(|iters| {
            let (to_renderer, back) = (Arc::new(Mailbox::new()), Arc::new(Mailbox::new()));
            let (rx, tx) = (Arc::clone(&to_renderer), Arc::clone(&back));
            let renderer = thread::spawn(move || {
                for _ in 0..iters {
                    let f: VideoFrame = loop {
                        if let Some(f) = rx.take() {
                            break f;
                        }
                        relax();
                    };
                    tx.post(f);
                }
            });
            let frame = shared.clone();
            let start = Instant::now();
            for _ in 0..iters {
                to_renderer.post(frame.clone());
                while back.take().is_none() {
                    relax();
                }
            }
            let elapsed = start.elapsed();
            renderer.join().unwrap();
            elapsed / 2
        })
    });
    g.bench_function("mutex_option_cross_thread", |b| {
        b.iter_custom(|iters| {
            type Slot = Arc<Mutex<(Option<VideoFrame>, bool)>>;
            let (to_renderer, back): (Slot, Slot) = Default::default();
            let (rx, tx) = (Arc::clone(&to_renderer), Arc::clone(&back));
            let take = |slot: &Slot| {
                let mut g = slot.lock().unwrap();
                if g.1 {
                    g.1 = false;
                    g.0.take()
                } else {
                    None
                }
            };
            let renderer = thread::spawn(move || {
                for _ in 0..iters {
                    let f = loop {
                        if let Some(f) = take(&rx) {
                            break f;
                        }
                        relax();
                    };
                    *tx.lock().unwrap() = (Some(f), true);
                }
            });
            let frame = shared.clone();
            let start = Instant::now();
            for _ in 0..iters {
                *to_renderer.lock().unwrap() = (Some(frame.clone()), true);
                while take(&back).is_none() {
                    relax();
                }
            }
            let elapsed = start.elapsed();
            renderer.join().unwrap();
            elapsed / 2
        })
    });
    g.finish();
}

fn analysis(c: &mut Criterion) {
    let mut g = c.benchmark_group("analysis");
    let samples: Vec<i16> = (0..SAMPLES)
        .map(|i| ((i as f32 / 2.0 * 0.0575).sin() * 12_000.0) as i16)
        .collect();
    g.bench_function("levels", |b| {
        b.iter(|| black_box(Levels::of(black_box(&samples))))
    });
    g.bench_function("envelope_64_columns", |b| {
        let mut cols = [Column::default(); 64];
        b.iter(|| {
            envelope(black_box(&samples), 2, &mut cols);
            black_box(&cols);
        })
    });
    g.bench_function("waveform_history_push", |b| {
        let mut h = WaveformHistory::new(1024);
        b.iter(|| h.push_samples(black_box(&samples)))
    });
    g.bench_function("speaking_detector", |b| {
        let mut d = SpeakingDetector::new(SpeakingConfig::default()).unwrap();
        b.iter(|| {
            black_box(d.update(
                Levels::of(black_box(&samples)).rms_dbfs,
                Duration::from_millis(10),
            ))
        })
    });
    g.bench_function("spectrum_1024", |b| {
        let mut s = SpectrumAnalyzer::new(1024, 48_000).unwrap();
        b.iter(|| {
            s.push(black_box(&samples), 2);
            s.compute();
            black_box(s.dominant_frequency())
        })
    });
    g.bench_function("all_per_10ms_frame", |b| {
        let mut s = SpectrumAnalyzer::new(1024, 48_000).unwrap();
        let mut d = SpeakingDetector::new(SpeakingConfig::default()).unwrap();
        let mut h = WaveformHistory::new(1024);
        let mut cols = [Column::default(); 64];
        b.iter(|| {
            let l = Levels::of(&samples);
            d.update(l.rms_dbfs, Duration::from_millis(10));
            envelope(&samples, 2, &mut cols);
            h.push_samples(&samples);
            s.push(&samples, 2);
            s.compute();
            black_box((l, s.dominant_frequency(), cols[0]))
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = audio_ops, audio_throughput, push_tail_latency, audio_latency, video_mailbox, analysis
}
criterion_main!(benches);
