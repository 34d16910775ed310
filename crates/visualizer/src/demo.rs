//! Synthetic data for the examples, benches and the windowed test: colour bars with a moving box,
//! a sine-plus-harmonics signal with its levels and spectrum, and a room of participants.

use crate::error::Result;
use crate::gpu::Gpu;
use crate::grid::{ConnectionQuality, ParticipantTile};
use crate::meter::MeterLevels;
use crate::scene::{Dashboard, DashboardData, Scene};
use crate::video::{ColorSpace, I420Buffer};

/// Names used for demo participants.
pub const DEMO_NAMES: [&str; 12] = [
    "Ada Lovelace",
    "Grace Hopper",
    "Alan Turing",
    "Katherine Johnson",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Donald Knuth",
    "Frances Allen",
    "Ken Thompson",
    "Radia Perlman",
    "John McCarthy",
    "Hedy Lamarr",
];

/// Demo participant `i` at `frame`: states cycle so every badge shows up.
pub fn demo_participant(i: usize, frame: u64) -> ParticipantTile<'static> {
    let quality = ConnectionQuality::from_level(((i + (frame / 90) as usize) % 4) as u8);
    ParticipantTile {
        name: DEMO_NAMES[i % DEMO_NAMES.len()],
        muted: i % 3 == 1,
        speaking: (frame / 30) as usize % 4 == i % 4,
        quality,
        screen_share: i % 4 == 2,
        has_video: false,
    }
}

/// Produces a frame's worth of demo data without allocating after construction.
#[derive(Debug)]
pub struct DemoSource {
    bars: I420Buffer,
    frame: I420Buffer,
    color_space: ColorSpace,
    waveform: Vec<f32>,
    spectrum: Vec<f32>,
    meters: [MeterLevels; 2],
    participants: Vec<ParticipantTile<'static>>,
    sample_rate: u32,
}

impl DemoSource {
    /// Video of `width`×`height`, `participants` tiles, 2048 waveform samples, 1025 spectrum bins.
    pub fn new(width: u32, height: u32, participants: usize) -> Self {
        let color_space = ColorSpace::BT709_LIMITED;
        let bars = I420Buffer::color_bars(width, height, color_space);
        Self {
            frame: bars.clone(),
            bars,
            color_space,
            waveform: vec![0.0; 2048],
            spectrum: vec![-120.0; 1025],
            meters: [MeterLevels::from_linear(0.0, 0.0); 2],
            participants: Vec::with_capacity(participants),
            sample_rate: 48_000,
        }
        .with_participants(participants)
    }

    fn with_participants(mut self, n: usize) -> Self {
        self.participants
            .extend((0..n).map(|i| demo_participant(i, 0)));
        self
    }

    /// Advances to `frame` (at 60 frames per second) and returns the data to show.
    pub fn data(&mut self, frame: u64) -> DashboardData<'_> {
        let t0 = frame as f32 / 60.0;
        // Video: bars plus a white box sweeping across.
        self.frame.clone_from(&self.bars);
        let (w, h) = (self.frame.width(), self.frame.height());
        let box_w = (w / 8).max(2);
        let span = w.saturating_sub(box_w).max(1);
        let x = ((frame * 8) % u64::from(span)) as u32 & !1;
        self.frame
            .fill_rect(x, h / 3, box_w, h / 3, [255, 255, 255], self.color_space);
        // Audio: 220 Hz with two harmonics under a slow envelope.
        let sr = self.sample_rate as f32;
        let n = self.waveform.len();
        let env = 0.35 + 0.3 * (t0 * 0.7).sin().abs();
        let (mut sum, mut peak) = (0.0f32, 0.0f32);
        for (i, v) in self.waveform.iter_mut().enumerate() {
            let t = t0 + (i as f32 - n as f32) / sr;
            let p = std::f32::consts::TAU * 220.0 * t;
            *v = env * (p.sin() + 0.3 * (3.0 * p).sin() + 0.15 * (5.0 * p).sin()) / 1.45;
            sum += *v * *v;
            peak = peak.max(v.abs());
        }
        let rms = (sum / n as f32).sqrt();
        self.meters = [
            MeterLevels::from_linear(rms, peak),
            MeterLevels::from_linear(rms * 0.8, peak * 0.8),
        ];
        let bins = self.spectrum.len();
        let hz_per_bin = sr / 2.0 / (bins - 1) as f32;
        for (k, v) in self.spectrum.iter_mut().enumerate() {
            let f = k as f32 * hz_per_bin;
            let mut level = -85.0 + 6.0 * ((k as f32 * 0.37 + t0 * 3.0).sin());
            for (hz, db) in [(220.0, -6.0), (660.0, -16.0), (1100.0, -22.0)] {
                let d = (f - hz) / 40.0;
                level = level.max(db + 20.0 * env.log10() - 12.0 * d * d);
            }
            *v = level;
        }
        for (i, p) in self.participants.iter_mut().enumerate() {
            *p = demo_participant(i, frame);
        }
        DashboardData {
            video: Some((self.frame.as_frame(), self.color_space)),
            waveform: &self.waveform,
            meters: &self.meters,
            spectrum: &self.spectrum,
            sample_rate: self.sample_rate,
            participants: &self.participants,
        }
    }
}

/// The dashboard fed by a [`DemoSource`]: what the window example and the benches show.
#[derive(Debug)]
pub struct DemoScene {
    /// The renderers.
    pub dashboard: Dashboard,
    /// The data.
    pub source: DemoSource,
}

impl DemoScene {
    /// A demo with `video` size video and `participants` tiles, for targets of `format`.
    pub fn new(
        gpu: &Gpu,
        format: wgpu::TextureFormat,
        video: (u32, u32),
        participants: usize,
    ) -> Self {
        Self {
            dashboard: Dashboard::new(&gpu.device, &gpu.queue, format),
            source: DemoSource::new(video.0, video.1, participants),
        }
    }
}

impl Scene for DemoScene {
    fn resize(&mut self, gpu: &Gpu, width: u32, height: u32) {
        self.dashboard.resize(&gpu.queue, width, height);
    }

    fn update(&mut self, gpu: &Gpu, frame: u64) -> Result<()> {
        let data = self.source.data(frame);
        self.dashboard.update(&gpu.device, &gpu.queue, &data)
    }

    fn render(&self, pass: &mut wgpu::RenderPass<'_>) -> Result<()> {
        self.dashboard.render(pass)
    }
}
