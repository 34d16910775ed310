//! Encode synthetic 720p30 pictures with each video codec, alone and as a three-layer simulcast
//! set (full, 1/2, 1/4 through `I420Scaler`), and print µs and bytes per frame as a table.
//!
//! ```text
//! cargo run --release -p wavecast-codec --example video_codecs -- [frames]
//! ```
//!
//! One thread per encoder (the default), pictures made before the clock starts. The first
//! `frames / 10` frames of each run warm up and are not counted.

use std::time::{Duration, Instant};

use wavecast_codec::{
    I420, I420Scaler, VideoCodec, VideoDecoder, VideoEncoder, VideoEncoderConfig, Vp8Config,
    Vp8Encoder,
};

const W: u32 = 1280;
const H: u32 = 720;
const FPS: u32 = 30;

/// A camera-like picture: gradients, a moving bright box, and a little grain.
struct Picture {
    planes: [Vec<u8>; 3],
}

impl Picture {
    fn new(n: u32) -> Self {
        let (w, h) = (W as usize, H as usize);
        let (bx, by) = ((n as usize * 6) % (w - 200), (n as usize * 3) % (h - 150));
        let mut y = vec![0u8; w * h];
        for row in 0..h {
            for col in 0..w {
                let base = 30 + (col * 120 / w) + (row * 60 / h);
                let grain = (((col * 7 + row * 13 + n as usize * 31) * 2_654_435_761) >> 28) & 7;
                let inside = (bx..bx + 200).contains(&col) && (by..by + 150).contains(&row);
                y[row * w + col] = if inside { 220 } else { (base + grain) as u8 };
            }
        }
        let (cw, ch) = (w / 2, h / 2);
        let u = (0..cw * ch)
            .map(|i| (100 + (i % cw) * 40 / cw) as u8)
            .collect();
        let v = (0..cw * ch)
            .map(|i| (150 - (i / cw) * 30 / ch) as u8)
            .collect();
        Self { planes: [y, u, v] }
    }

    fn i420(&self) -> I420<'_> {
        I420 {
            width: W,
            height: H,
            planes: [&self.planes[0], &self.planes[1], &self.planes[2]],
            strides: [W as usize, W as usize / 2, W as usize / 2],
        }
    }
}

#[derive(Default)]
struct Stats {
    times: Vec<Duration>,
    bytes: u64,
}

impl Stats {
    fn mean_us(&self) -> f64 {
        self.times.iter().map(Duration::as_secs_f64).sum::<f64>() * 1e6 / self.times.len() as f64
    }

    fn p95_us(&self) -> f64 {
        let mut t = self.times.clone();
        t.sort();
        t[(t.len() * 95 / 100).min(t.len() - 1)].as_secs_f64() * 1e6
    }

    fn bytes_per_frame(&self) -> f64 {
        self.bytes as f64 / self.times.len() as f64
    }
}

fn row(what: &str, layers: &str, enc: &Stats, extra: &str) {
    let kbps = enc.bytes_per_frame() * 8.0 * f64::from(FPS) / 1000.0;
    println!(
        "| {what:<22} | {layers:<26} | {:>9.0} | {:>9.0} | {:>9.0} | {kbps:>7.0} | {extra:<18} |",
        enc.mean_us(),
        enc.p95_us(),
        enc.bytes_per_frame(),
    );
}

fn single(
    codec: VideoCodec,
    cpu_used: Option<i32>,
    pictures: &[Picture],
    frames: usize,
    warm: usize,
) {
    let config = VideoEncoderConfig {
        cpu_used,
        ..VideoEncoderConfig::new(codec, W, H, FPS)
    };
    let mut enc = VideoEncoder::new(config).expect("encoder");
    let mut dec = VideoDecoder::new(codec).expect("decoder");
    let (mut e, mut d) = (Stats::default(), Stats::default());
    for n in 0..frames {
        let p = &pictures[n % pictures.len()];
        let t = Instant::now();
        let f = enc.encode(&p.i420(), n as i64 * 3000).expect("encode");
        let took = t.elapsed();
        let data = f.map(|f| f.data.to_vec()).unwrap_or_default();
        let t = Instant::now();
        if !data.is_empty() {
            dec.decode_frame(&data).expect("decode");
        }
        let dtook = t.elapsed();
        if n >= warm {
            e.times.push(took);
            e.bytes += data.len() as u64;
            d.times.push(dtook);
        }
    }
    let layers = format!("{W}x{H} @ {} kbit/s", config.bitrate / 1000);
    let name = match cpu_used {
        Some(speed) => format!("{codec} (cpu-used {speed})"),
        None => format!("{codec}"),
    };
    row(&name, &layers, &e, &format!("decode {:.0} µs", d.mean_us()));
}

/// The old VP8 face (`Vp8Encoder`), to see that the wrapper costs nothing.
fn vp8_wrapper(pictures: &[Picture], frames: usize, warm: usize) {
    let config = Vp8Config::new(W, H, FPS);
    let mut enc = Vp8Encoder::new(config).expect("encoder");
    let mut e = Stats::default();
    for n in 0..frames {
        let p = &pictures[n % pictures.len()];
        let t = Instant::now();
        let f = enc.encode(&p.i420(), n as i64 * 3000).expect("encode");
        let took = t.elapsed();
        let len = f.map_or(0, |f| f.data.len());
        if n >= warm {
            e.times.push(took);
            e.bytes += len as u64;
        }
    }
    row(
        "vp8 (Vp8Encoder)",
        &format!("{W}x{H} @ {} kbit/s", config.bitrate / 1000),
        &e,
        "",
    );
}

fn simulcast(codec: VideoCodec, pictures: &[Picture], frames: usize, warm: usize) {
    let sizes = [
        (W, H),
        (W.div_ceil(2), H.div_ceil(2)),
        (W.div_ceil(4), H.div_ceil(4)),
    ];
    let mut encoders: Vec<VideoEncoder> = sizes
        .iter()
        .map(|&(w, h)| VideoEncoder::new(VideoEncoderConfig::new(codec, w, h, FPS)).unwrap())
        .collect();
    let mut scalers = [
        I420Scaler::new(sizes[1].0, sizes[1].1).unwrap(),
        I420Scaler::new(sizes[2].0, sizes[2].1).unwrap(),
    ];
    let mut all = Stats::default();
    let mut scale_time = Duration::ZERO;
    for n in 0..frames {
        let p = &pictures[n % pictures.len()];
        let pts = n as i64 * 3000;
        let t = Instant::now();
        let mut bytes = encoders[0]
            .encode(&p.i420(), pts)
            .unwrap()
            .map_or(0, |f| f.data.len());
        let mut scaling = Duration::ZERO;
        for (s, enc) in scalers.iter_mut().zip(&mut encoders[1..]) {
            let ts = Instant::now();
            let small = s.scale(&p.i420()).unwrap();
            scaling += ts.elapsed();
            bytes += enc.encode(&small, pts).unwrap().map_or(0, |f| f.data.len());
        }
        let took = t.elapsed();
        if n >= warm {
            all.times.push(took);
            all.bytes += bytes as u64;
            scale_time += scaling;
        }
    }
    let kbps: u32 = encoders.iter().map(|e| e.config().bitrate / 1000).sum();
    row(
        &format!("{codec} simulcast"),
        &format!("1/1+1/2+1/4 @ {kbps} kbit/s"),
        &all,
        &format!(
            "scaling {:.0} µs",
            scale_time.as_secs_f64() * 1e6 / all.times.len() as f64
        ),
    );
}

fn scaler_alone(pictures: &[Picture], frames: usize) {
    for (w, h) in [(W / 2, H / 2), (W / 4, H / 4), (W / 3, H / 3)] {
        let mut s = I420Scaler::new(w, h).unwrap();
        s.scale(&pictures[0].i420()).unwrap();
        let mut st = Stats::default();
        for n in 0..frames {
            let p = &pictures[n % pictures.len()];
            let t = Instant::now();
            let out = s.scale(&p.i420()).unwrap();
            std::hint::black_box(out.planes[0][0]);
            st.times.push(t.elapsed());
        }
        row("I420Scaler", &format!("{W}x{H} → {w}x{h}"), &st, "");
    }
}

fn main() {
    let frames: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300)
        .max(20);
    let warm = frames / 10;
    let pictures: Vec<Picture> = (0..60).map(Picture::new).collect();
    println!(
        "{frames} frames of {W}x{H} at {FPS} fps per row ({warm} warm-up frames not counted), one thread each\n"
    );
    println!(
        "| {:<22} | {:<26} | {:>9} | {:>9} | {:>9} | {:>7} | {:<18} |",
        "codec", "layers", "µs/frame", "p95 µs", "B/frame", "kbit/s", ""
    );
    println!(
        "|{:-<24}|{:-<28}|{:->11}|{:->11}|{:->11}|{:->9}|{:-<20}|",
        "", "", "", "", "", "", ""
    );
    vp8_wrapper(&pictures, frames, warm);
    for codec in VideoCodec::ALL {
        single(codec, None, &pictures, frames, warm);
    }
    single(VideoCodec::Vp9, Some(8), &pictures, frames, warm);
    for codec in VideoCodec::ALL {
        simulcast(codec, &pictures, frames, warm);
    }
    scaler_alone(&pictures, frames);
}
