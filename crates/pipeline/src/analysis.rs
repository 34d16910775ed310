//! Audio analysis for meters and visualisers: levels, envelopes, waveform history, spectrum and
//! a speaking indicator. Everything allocates at construction and never afterwards.

use std::sync::Arc;
use std::time::Duration;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};

use crate::audio::AudioFrame;
use crate::error::{PipelineError, Result};

/// The floor used for silence, in dBFS.
pub const MIN_DBFS: f32 = -120.0;

const FULL_SCALE: f32 = 32768.0;

/// Root mean square of `samples`, relative to full scale (a full-scale square wave is 1.0, a
/// full-scale sine ≈ 0.707). Zero for an empty slice.
pub fn rms(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    ((sum / samples.len() as f64).sqrt() / f64::from(FULL_SCALE)) as f32
}

/// Largest absolute sample of `samples`, relative to full scale (0.0 ..= 1.0).
pub fn peak(samples: &[i16]) -> f32 {
    let max = samples
        .iter()
        .map(|&s| i32::from(s).unsigned_abs())
        .max()
        .unwrap_or(0);
    max as f32 / FULL_SCALE
}

/// A linear level (1.0 = full scale) in dBFS, floored at [`MIN_DBFS`].
pub fn dbfs(level: f32) -> f32 {
    if level <= 0.0 {
        MIN_DBFS
    } else {
        (20.0 * level.log10()).max(MIN_DBFS)
    }
}

/// Level measurements of a block of samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Levels {
    /// RMS relative to full scale.
    pub rms: f32,
    /// Peak relative to full scale.
    pub peak: f32,
    /// RMS in dBFS.
    pub rms_dbfs: f32,
    /// Peak in dBFS.
    pub peak_dbfs: f32,
}

impl Levels {
    /// Levels of `samples` (all channels together).
    pub fn of(samples: &[i16]) -> Self {
        let (r, p) = (rms(samples), peak(samples));
        Levels {
            rms: r,
            peak: p,
            rms_dbfs: dbfs(r),
            peak_dbfs: dbfs(p),
        }
    }
}

/// The amplitude range of one display column, relative to full scale (−1.0 ..= 1.0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// Lowest sample value.
    pub min: f32,
    /// Highest sample value.
    pub max: f32,
    /// RMS of the column's samples.
    pub rms: f32,
}

impl Column {
    /// The column summarising `samples`.
    pub fn of(samples: &[i16]) -> Self {
        if samples.is_empty() {
            return Column::default();
        }
        let (mut lo, mut hi) = (i16::MAX, i16::MIN);
        for &s in samples {
            lo = lo.min(s);
            hi = hi.max(s);
        }
        Column {
            min: f32::from(lo) / FULL_SCALE,
            max: f32::from(hi) / FULL_SCALE,
            rms: rms(samples),
        }
    }
}

/// Splits `samples` (interleaved, `channels` channels) into `out.len()` equal spans of sample
/// frames and writes each span's min/max/RMS into `out` — the amplitude envelope of a
/// waveform display, one entry per pixel column. Columns past the end of short input are zero.
pub fn envelope(samples: &[i16], channels: u16, out: &mut [Column]) {
    let ch = usize::from(channels.max(1));
    let frames = samples.len() / ch;
    let columns = out.len();
    for (i, col) in out.iter_mut().enumerate() {
        let start = i * frames / columns;
        let end = (i + 1) * frames / columns;
        *col = Column::of(&samples[start * ch..end * ch]);
    }
}

/// The last `capacity` columns of a scrolling waveform, one pushed per audio frame (or per any
/// block the caller chooses). Pre-allocated ring; pushing never allocates.
#[derive(Clone, Debug)]
pub struct WaveformHistory {
    columns: Box<[Column]>,
    next: usize,
    len: usize,
}

impl WaveformHistory {
    /// A history of `capacity` columns (at least 1).
    pub fn new(capacity: usize) -> Self {
        WaveformHistory {
            columns: vec![Column::default(); capacity.max(1)].into_boxed_slice(),
            next: 0,
            len: 0,
        }
    }

    /// Appends one column, forgetting the oldest when full.
    pub fn push(&mut self, column: Column) {
        self.columns[self.next] = column;
        self.next = (self.next + 1) % self.columns.len();
        self.len = (self.len + 1).min(self.columns.len());
    }

    /// Appends the column summarising `samples`.
    pub fn push_samples(&mut self, samples: &[i16]) {
        self.push(Column::of(samples));
    }

    /// Columns held, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Column> + '_ {
        let cap = self.columns.len();
        let start = (self.next + cap - self.len) % cap;
        (0..self.len).map(move |i| &self.columns[(start + i) % cap])
    }

    /// Columns held, as two slices (oldest part first), without copying.
    pub fn as_slices(&self) -> (&[Column], &[Column]) {
        if self.len < self.columns.len() {
            (&self.columns[..self.len], &[])
        } else {
            let (head, tail) = self.columns.split_at(self.next);
            (tail, head)
        }
    }

    /// Columns held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maximum columns held.
    pub fn capacity(&self) -> usize {
        self.columns.len()
    }
}

/// A magnitude spectrum over the most recent `fft_size` samples (mixed to mono), Hann-windowed,
/// in dBFS: a full-scale sine peaks at about 0 dBFS.
pub struct SpectrumAnalyzer {
    fft: Arc<dyn RealToComplex<f32>>,
    sample_rate: u32,
    window: Box<[f32]>,
    history: Box<[f32]>,
    write: usize,
    filled: usize,
    input: Vec<f32>,
    output: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    magnitudes: Box<[f32]>,
}

impl SpectrumAnalyzer {
    /// An analyser over windows of `fft_size` samples (a power of two, 16 ..= 65 536) at
    /// `sample_rate`.
    pub fn new(fft_size: usize, sample_rate: u32) -> Result<Self> {
        if !(16..=65_536).contains(&fft_size) || !fft_size.is_power_of_two() {
            return Err(PipelineError::InvalidParameter {
                what: "fft_size",
                value: fft_size as f64,
                reason: "must be a power of two in 16..=65536",
            });
        }
        if sample_rate == 0 {
            return Err(PipelineError::InvalidParameter {
                what: "sample_rate",
                value: 0.0,
                reason: "must be positive",
            });
        }
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(fft_size);
        let window = (0..fft_size)
            .map(|i| {
                let x = std::f32::consts::TAU * i as f32 / fft_size as f32;
                0.5 - 0.5 * x.cos()
            })
            .collect();
        let input = fft.make_input_vec();
        let output = fft.make_output_vec();
        let scratch = fft.make_scratch_vec();
        Ok(SpectrumAnalyzer {
            magnitudes: vec![MIN_DBFS; output.len()].into_boxed_slice(),
            fft,
            sample_rate,
            window,
            history: vec![0.0; fft_size].into_boxed_slice(),
            write: 0,
            filled: 0,
            input,
            output,
            scratch,
        })
    }

    /// Window length in samples.
    pub fn fft_size(&self) -> usize {
        self.history.len()
    }

    /// Feeds interleaved samples; channels are averaged to mono.
    pub fn push(&mut self, samples: &[i16], channels: u16) {
        let ch = usize::from(channels.max(1));
        let n = self.history.len();
        for frame in samples.chunks_exact(ch) {
            let sum: i32 = frame.iter().map(|&s| i32::from(s)).sum();
            self.history[self.write] = sum as f32 / (ch as f32 * FULL_SCALE);
            self.write = (self.write + 1) % n;
        }
        self.filled = (self.filled + samples.len() / ch).min(n);
    }

    /// Feeds a frame.
    pub fn push_frame(&mut self, frame: &AudioFrame) {
        self.push(frame.samples(), frame.channels());
    }

    /// Whether a whole window has been fed.
    pub fn is_ready(&self) -> bool {
        self.filled == self.history.len()
    }

    /// Computes the spectrum of the latest window: `fft_size / 2 + 1` bins in dBFS, bin `i` at
    /// [`bin_frequency(i)`](SpectrumAnalyzer::bin_frequency). Before a whole window has been
    /// fed, the missing samples count as silence.
    pub fn compute(&mut self) -> &[f32] {
        let n = self.history.len();
        for i in 0..n {
            let sample = self.history[(self.write + i) % n];
            self.input[i] = sample * self.window[i];
        }
        // Lengths come from the plan itself, so processing cannot fail.
        if self
            .fft
            .process_with_scratch(&mut self.input, &mut self.output, &mut self.scratch)
            .is_ok()
        {
            let scale = 4.0 / n as f32; // single-sided (×2) and Hann coherent gain (×2)
            for (m, c) in self.magnitudes.iter_mut().zip(&self.output) {
                *m = dbfs(c.norm() * scale);
            }
        }
        &self.magnitudes
    }

    /// The last computed spectrum.
    pub fn magnitudes(&self) -> &[f32] {
        &self.magnitudes
    }

    /// Centre frequency of bin `i`, in Hz.
    pub fn bin_frequency(&self, i: usize) -> f32 {
        i as f32 * self.sample_rate as f32 / self.history.len() as f32
    }

    /// The strongest frequency of the last computed spectrum (DC excluded), refined by parabolic
    /// interpolation between neighbouring bins, and its level in dBFS. `None` before a spectrum
    /// was computed or for silence.
    pub fn dominant_frequency(&self) -> Option<(f32, f32)> {
        let m = &self.magnitudes;
        let (i, &peak) = m
            .iter()
            .enumerate()
            .skip(1)
            .max_by(|a, b| a.1.total_cmp(b.1))?;
        if peak <= MIN_DBFS {
            return None;
        }
        let offset = if i + 1 < m.len() {
            let (a, b, c) = (m[i - 1], m[i], m[i + 1]);
            let denom = a - 2.0 * b + c;
            if denom.abs() > f32::EPSILON {
                0.5 * (a - c) / denom
            } else {
                0.0
            }
        } else {
            0.0
        };
        Some((self.bin_frequency(i) + offset * self.bin_frequency(1), peak))
    }
}

impl std::fmt::Debug for SpectrumAnalyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpectrumAnalyzer")
            .field("fft_size", &self.fft_size())
            .field("sample_rate", &self.sample_rate)
            .finish()
    }
}

/// Settings of a [`SpeakingDetector`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpeakingConfig {
    /// RMS level (dBFS) at or above which speech starts. Default −40.
    pub on_dbfs: f32,
    /// RMS level (dBFS) below which speech ends; lower than `on_dbfs`. Default −50.
    pub off_dbfs: f32,
    /// How long the level must stay at or above `on_dbfs` to switch on. Default 20 ms.
    pub attack: Duration,
    /// How long the level must stay below `off_dbfs` to switch off. Default 300 ms.
    pub release: Duration,
}

impl Default for SpeakingConfig {
    fn default() -> Self {
        SpeakingConfig {
            on_dbfs: -40.0,
            off_dbfs: -50.0,
            attack: Duration::from_millis(20),
            release: Duration::from_millis(300),
        }
    }
}

/// A speaking indicator with hysteresis: two thresholds and two hold times, so it neither
/// flickers on noise around one threshold nor drops out in the short pauses between words.
#[derive(Clone, Debug)]
pub struct SpeakingDetector {
    config: SpeakingConfig,
    speaking: bool,
    pending: Duration,
    transitions: u64,
}

impl SpeakingDetector {
    /// A detector, initially not speaking. `off_dbfs` must not exceed `on_dbfs`.
    pub fn new(config: SpeakingConfig) -> Result<Self> {
        if config.off_dbfs > config.on_dbfs
            || !config.on_dbfs.is_finite()
            || !config.off_dbfs.is_finite()
        {
            return Err(PipelineError::InvalidParameter {
                what: "off_dbfs",
                value: f64::from(config.off_dbfs),
                reason: "must be finite and not above on_dbfs",
            });
        }
        Ok(SpeakingDetector {
            config,
            speaking: false,
            pending: Duration::ZERO,
            transitions: 0,
        })
    }

    /// Feeds the RMS level (dBFS) of a block lasting `duration`; returns whether speaking.
    pub fn update(&mut self, rms_dbfs: f32, duration: Duration) -> bool {
        let c = &self.config;
        let (crossing, hold) = if self.speaking {
            (rms_dbfs < c.off_dbfs, c.release)
        } else {
            (rms_dbfs >= c.on_dbfs, c.attack)
        };
        if crossing {
            self.pending += duration;
            if self.pending >= hold {
                self.speaking = !self.speaking;
                self.pending = Duration::ZERO;
                self.transitions += 1;
            }
        } else {
            self.pending = Duration::ZERO;
        }
        self.speaking
    }

    /// Feeds a frame; returns whether speaking.
    pub fn update_frame(&mut self, frame: &AudioFrame) -> bool {
        self.update(dbfs(rms(frame.samples())), frame.duration())
    }

    /// Current state.
    pub fn is_speaking(&self) -> bool {
        self.speaking
    }

    /// Number of on/off switches so far.
    pub fn transitions(&self) -> u64 {
        self.transitions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, amplitude: f32, rate: u32, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let t = i as f32 / rate as f32;
                (amplitude * 32767.0 * (std::f32::consts::TAU * freq * t).sin()).round() as i16
            })
            .collect()
    }

    #[test]
    fn known_sine_levels() {
        let s = sine(1000.0, 0.5, 48_000, 48_000);
        let l = Levels::of(&s);
        assert!((l.rms - 0.5 / 2f32.sqrt()).abs() < 1e-3, "{l:?}");
        assert!((l.peak - 0.5).abs() < 1e-3, "{l:?}");
        assert!((l.rms_dbfs - (-9.03)).abs() < 0.05, "{l:?}");
        assert!((l.peak_dbfs - (-6.02)).abs() < 0.05, "{l:?}");
        assert_eq!(Levels::of(&[0; 10]).rms_dbfs, MIN_DBFS);
        assert_eq!(rms(&[]), 0.0);
        assert_eq!(peak(&[i16::MIN]), 1.0);
    }

    #[test]
    fn dominant_frequency_of_a_known_sine() {
        for freq in [440.0f32, 1000.0, 3_217.0] {
            let mut spec = SpectrumAnalyzer::new(4096, 48_000).unwrap();
            spec.push(&sine(freq, 0.8, 48_000, 4096), 1);
            assert!(spec.is_ready());
            spec.compute();
            let (f, level) = spec.dominant_frequency().unwrap();
            // Bins are 11.7 Hz wide; interpolation gets well inside one bin.
            assert!((f - freq).abs() < 3.0, "expected {freq}, got {f}");
            assert!(
                (level - dbfs(0.8)).abs() < 1.6,
                "level {level} for a 0.8 sine"
            );
        }
    }

    #[test]
    fn stereo_is_mixed_and_silence_has_no_peak() {
        let mono = sine(2000.0, 0.5, 48_000, 2048);
        let stereo: Vec<i16> = mono.iter().flat_map(|&s| [s, s]).collect();
        let mut spec = SpectrumAnalyzer::new(2048, 48_000).unwrap();
        spec.push(&stereo, 2);
        spec.compute();
        let (f, _) = spec.dominant_frequency().unwrap();
        assert!((f - 2000.0).abs() < 5.0, "{f}");
        let mut quiet = SpectrumAnalyzer::new(1024, 48_000).unwrap();
        quiet.push(&[0; 1024], 1);
        quiet.compute();
        assert_eq!(quiet.dominant_frequency(), None);
        assert!(SpectrumAnalyzer::new(1000, 48_000).is_err());
    }

    #[test]
    fn envelope_and_history() {
        let mut s = vec![0i16; 400];
        s[150] = 16384;
        s[350] = -16384;
        let mut cols = [Column::default(); 4];
        envelope(&s, 1, &mut cols);
        assert_eq!(cols[1].max, 0.5);
        assert_eq!(cols[3].min, -0.5);
        assert_eq!(
            cols[0],
            Column {
                min: 0.0,
                max: 0.0,
                rms: 0.0
            }
        );

        let mut h = WaveformHistory::new(3);
        for v in 1..=5i16 {
            h.push_samples(&[v * 100]);
        }
        let maxes: Vec<i16> = h
            .iter()
            .map(|c| (c.max * FULL_SCALE).round() as i16)
            .collect();
        assert_eq!(maxes, [300, 400, 500]);
        let (a, b) = h.as_slices();
        assert_eq!(a.len() + b.len(), 3);
        assert_eq!((a[0].max * FULL_SCALE).round() as i16, 300);
    }

    #[test]
    fn speaking_hysteresis_on_a_tone_burst() {
        let ten_ms = Duration::from_millis(10);
        let mut d = SpeakingDetector::new(SpeakingConfig::default()).unwrap();
        let tone = Levels::of(&sine(300.0, 0.1, 48_000, 480)).rms_dbfs; // ≈ −23 dBFS
        let quiet = Levels::of(&sine(300.0, 0.001, 48_000, 480)).rms_dbfs; // ≈ −63 dBFS
        let between = -45.0; // between the thresholds

        // One 10 ms spike is shorter than the 20 ms attack.
        assert!(!d.update(tone, ten_ms));
        assert!(!d.update(quiet, ten_ms));
        // A burst switches on after 20 ms.
        assert!(!d.update(tone, ten_ms));
        assert!(d.update(tone, ten_ms));
        // Level between the thresholds keeps it on indefinitely (hysteresis).
        for _ in 0..100 {
            assert!(d.update(between, ten_ms));
        }
        // A 200 ms pause (shorter than the 300 ms release) does not switch off.
        for _ in 0..20 {
            assert!(d.update(quiet, ten_ms));
        }
        assert!(d.update(tone, ten_ms));
        // 300 ms of quiet does.
        for i in 0..30 {
            assert_eq!(d.update(quiet, ten_ms), i < 29, "step {i}");
        }
        // Between the thresholds does not switch it back on.
        for _ in 0..50 {
            assert!(!d.update(between, ten_ms));
        }
        assert_eq!(d.transitions(), 2);
        assert!(
            SpeakingDetector::new(SpeakingConfig {
                off_dbfs: -30.0,
                ..Default::default()
            })
            .is_err()
        );
    }
}
