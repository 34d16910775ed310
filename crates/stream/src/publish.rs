//! Publish loops: source → encoder → sink, paced.
//!
//! One thread per kind paces a source (synthetic pattern and tone, Y4M and WAV files, a live
//! [`Grabber`] such as the screen, or the microphone with the `cpal` feature), encodes it (VP8,
//! Opus) and writes the encoded frames into an [`EncodedSink`] — a published track, or the
//! in-process [`loopback`](crate::loopback) link.
//!
//! The threads are steered by a bounded control channel (new sink after a reconnect, mute,
//! stop); they never wait on the network: a full sink drops the frame and counts it. Frame
//! numbers stamped into the synthetic picture count only frames handed to the encoder, so a
//! receiver's "frames seen / frame-number span" is the delivery ratio.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wavecast_codec::{
    MAX_OPUS_PACKET, OPUS_FRAME_SAMPLES, OPUS_SAMPLE_RATE, OpusEncoder, VideoCodec, Vp8Config,
    Vp8Encoder,
};
use wavecast_media::stamp::{self, Stamp};
use wavecast_media::{
    AudioSource, FrameRate, Looping, Markers, TestPattern, ToneGenerator, VideoSource, WavReader,
    Waveform, Y4mReader,
};
use wavecast_pipeline::{
    AudioFormat, AudioFrameMut, PixelFormat, Timestamp, VideoFramePool, VideoLayout,
};
use wavecast_session::{VideoOptions, VideoPublisher};

use crate::error::{Result, StreamError, codec, media, pipeline, thread};

/// Where encoded frames go.
pub trait EncodedSink: Send {
    /// Hands over one encoded frame. `Ok(false)`: the sink was full and dropped it.
    /// `Err`: the sink is gone (the track was unpublished or the connection closed).
    fn write(
        &mut self,
        data: &[u8],
        rtp_time: u64,
        capture: Instant,
        keyframe: bool,
    ) -> Result<bool>;
    /// Whether the receiving side asked for a keyframe since the last call.
    fn take_keyframe_request(&mut self) -> bool;
}

impl EncodedSink for wavecast_session::PublishedTrack {
    fn write(
        &mut self,
        data: &[u8],
        rtp_time: u64,
        capture: Instant,
        _keyframe: bool,
    ) -> Result<bool> {
        use wavecast_session::SendError;
        match wavecast_session::PublishedTrack::write(self, data.to_vec(), rtp_time, capture) {
            Ok(()) => Ok(true),
            // Reconnecting or a full queue: dropped and counted; frames flow again by themselves.
            // (or no end-to-end key yet: dropped and counted in the room's e2ee stats).
            Err(SendError::Full | SendError::Reconnecting | SendError::NoKey) => Ok(false),
            Err(_) => Err(StreamError::SinkClosed {
                what: format!("track {}", self.name()),
            }),
        }
    }

    fn take_keyframe_request(&mut self) -> bool {
        wavecast_session::PublishedTrack::take_keyframe_request(self)
    }
}

/// Instructions for a capture thread.
pub enum Control {
    /// Write into this sink from now on (`None`: offline, keep the clock but send nothing).
    Sink(Option<Box<dyn EncodedSink>>),
    /// Video: hand the pictures to this publisher from now on (it encodes every layer of a
    /// published track itself); `None`: back to the sink.
    Publisher(Option<Box<VideoPublisher>>),
    /// Stop (`true`) or resume (`false`) sending.
    Mute(bool),
    /// End the thread.
    Stop,
}

/// Counters a capture thread updates (relaxed atomics; read by the stats line).
#[derive(Debug, Default)]
pub struct CaptureStats {
    /// Frames (video) or packets (audio) produced by the source.
    pub captured: AtomicU64,
    /// Frames or packets the sink accepted.
    pub sent: AtomicU64,
    /// Bytes the sink accepted.
    pub bytes: AtomicU64,
    /// Keyframes sent.
    pub keyframes: AtomicU64,
    /// Frames dropped: sink full, reconnecting, or capture running late.
    pub dropped: AtomicU64,
    /// Frames captured while there was no track to send to (before the join, after the leave).
    pub offline: AtomicU64,
    /// Frame number of the last frame sent (video).
    pub last_frame_number: AtomicU64,
    /// Frames given a frame number so far, i.e. the next frame number (video): every number
    /// below it was encoded and sent or dropped, so a receiver can count what it should have
    /// seen up to any moment.
    pub numbered: AtomicU64,
    /// Total encode time, microseconds.
    pub encode_us: AtomicU64,
    /// Muted right now.
    pub muted: AtomicBool,
}

impl CaptureStats {
    /// A snapshot of (sent, bytes, keyframes, dropped).
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
            self.keyframes.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
        )
    }
}

/// A running capture thread.
#[derive(Debug)]
pub struct Capture {
    /// Steering.
    pub control: mpsc::SyncSender<Control>,
    /// Its counters.
    pub stats: Arc<CaptureStats>,
    thread: Option<JoinHandle<Result<()>>>,
    /// What it captures, for messages.
    pub describe: String,
}

impl Capture {
    /// Sends a control message (a full channel means the thread is stuck: the message is lost).
    pub fn send(&self, c: Control) {
        let _ = self.control.try_send(c);
    }

    /// Stops the thread and returns its result.
    pub fn stop(mut self) -> Result<()> {
        let _ = self.control.send(Control::Stop);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(StreamError::Panicked {
                name: format!("{} capture", self.describe),
            }),
            None => Ok(()),
        }
    }

    /// Whether the thread has ended (an error or the end of a non-looping source).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

/// Video settings.
#[derive(Debug, Clone)]
pub struct VideoSettings {
    /// Synthetic pattern or a Y4M file.
    pub file: Option<PathBuf>,
    /// Picture size (synthetic only; files keep theirs).
    pub width: u32,
    /// Picture size (synthetic only).
    pub height: u32,
    /// Frames per second (`None` for a file: the file's rate).
    pub fps: Option<u32>,
    /// Target bitrate, bits per second: the ceiling over all layers when published.
    pub bitrate: u32,
    /// The bitrate floor, bits per second (the bandwidth estimate never takes the smallest
    /// layer below it).
    pub min_bitrate: u32,
    /// The codec of the published track.
    pub codec: VideoCodec,
    /// Publish up to three simulcast layers.
    pub simulcast: bool,
    /// Draw the frame-number/timestamp stamp on file frames too.
    pub stamp_files: bool,
    /// Write captured frame number N as a PNG to this path.
    pub snapshot: Option<(PathBuf, u32)>,
}

impl VideoSettings {
    /// The synthetic pattern (with its frame-number stamp) at `width`×`height`, `fps`, and
    /// `bitrate` bits per second.
    pub fn pattern(width: u32, height: u32, fps: u32, bitrate: u32) -> Self {
        Self {
            file: None,
            width,
            height,
            fps: Some(fps),
            bitrate,
            min_bitrate: 100_000.min(bitrate),
            codec: VideoCodec::Vp8,
            simulcast: false,
            stamp_files: false,
            snapshot: None,
        }
    }

    /// How a track of `size` at `fps` is published with these settings (codec, simulcast,
    /// bitrate range).
    pub fn publish_options(&self, size: (u32, u32), fps: u32) -> VideoOptions {
        VideoOptions::new(self.codec, size.0, size.1, fps)
            .with_simulcast(self.simulcast)
            .with_bitrate_range(self.min_bitrate.min(self.bitrate), self.bitrate)
    }
}

/// Audio settings.
#[derive(Debug, Clone)]
pub enum AudioInput {
    /// A tone with timestamp markers.
    Tone {
        /// Frequency, Hz.
        frequency: f64,
        /// Channels.
        channels: u16,
    },
    /// A 48 kHz WAV file, looping.
    File(PathBuf),
    /// A capture device (feature `cpal`), `None` for the default.
    Device(Option<String>),
}

/// A live picture source (the screen, a camera): fills I420 frames of a fixed layout on demand.
pub trait Grabber: Send {
    /// Layout of the frames it fills.
    fn layout(&self) -> VideoLayout;
    /// Fills `out` with the current picture.
    fn grab(&mut self, out: &mut wavecast_pipeline::VideoFrameMut) -> Result<()>;
    /// What it is, for messages.
    fn describe(&self) -> String;
}

/// The video source, opened (so bad files fail before connecting).
pub enum VideoInput {
    /// A live source (screen capture).
    Live(Box<dyn Grabber>, FrameRate),
    /// Bars, moving box, stamp.
    Synthetic {
        /// Layout of the frames.
        layout: VideoLayout,
        /// Rate.
        rate: FrameRate,
    },
    /// A looping Y4M file.
    File(Box<Looping<Y4mReader>>, String),
}

impl VideoInput {
    /// Opens the source described by `s`.
    pub fn open(s: &VideoSettings) -> Result<Self> {
        match &s.file {
            None => Ok(VideoInput::Synthetic {
                layout: VideoLayout::new(PixelFormat::I420, s.width, s.height)
                    .map_err(pipeline(format!("video size {}x{}", s.width, s.height)))?,
                rate: FrameRate::new(s.fps.unwrap_or(30), 1),
            }),
            Some(path) => {
                let what = || format!("video file {}", path.display());
                let mut r = Y4mReader::open(path).map_err(media(what()))?;
                // Read the first frame now, so a broken file fails before connecting.
                let mut probe = VideoFramePool::new("probe", r.layout(), 1)
                    .acquire()
                    .map_err(pipeline("probe frame"))?;
                if !r.read_frame(&mut probe).map_err(media(what()))? {
                    return Err(StreamError::Unsupported {
                        what: what(),
                        reason: "no frames".into(),
                    });
                }
                r.rewind().map_err(media(what()))?;
                let d = r.describe();
                Ok(VideoInput::File(Box::new(Looping::new(r)), d))
            }
        }
    }

    /// Picture size.
    pub fn size(&self) -> (u32, u32) {
        let l = self.layout();
        (l.width(), l.height())
    }

    /// Frames per second the loop sends with these settings (`s.fps`, else the source's own).
    pub fn fps(&self, s: &VideoSettings) -> u32 {
        let rate = self.rate(s);
        (rate.num / rate.den.max(1)).max(1)
    }

    fn rate(&self, s: &VideoSettings) -> FrameRate {
        match (self, s.fps) {
            (_, Some(fps)) => FrameRate::new(fps, 1),
            (VideoInput::File(r, _), None) => r.frame_rate(),
            (VideoInput::Synthetic { rate, .. }, None) | (VideoInput::Live(_, rate), None) => *rate,
        }
    }

    fn layout(&self) -> VideoLayout {
        match self {
            VideoInput::Synthetic { layout, .. } => *layout,
            VideoInput::File(r, _) => r.layout(),
            VideoInput::Live(g, _) => g.layout(),
        }
    }

    /// What it is.
    pub fn describe(&self) -> String {
        match self {
            VideoInput::Synthetic { layout, rate } => format!(
                "synthetic bars {}x{} at {} fps",
                layout.width(),
                layout.height(),
                rate.num / rate.den.max(1)
            ),
            VideoInput::File(_, d) => d.clone(),
            VideoInput::Live(g, rate) => {
                format!("{} at {} fps", g.describe(), rate.num / rate.den.max(1))
            }
        }
    }
}

/// Starts the video capture thread.
pub fn start_video(input: VideoInput, s: &VideoSettings) -> Result<Capture> {
    let layout = input.layout();
    let rate = input.rate(s);
    let fps = (rate.num / rate.den.max(1)).max(1);
    let mut config = Vp8Config::new(layout.width(), layout.height(), fps);
    config.bitrate = s.bitrate;
    config.threads = 2;
    let encoder = Vp8Encoder::new(config).map_err(codec("cannot start the VP8 encoder"))?;
    let describe = input.describe();
    let stamp_all = s.stamp_files;
    let snapshot = s.snapshot.clone();
    let (control, rx) = mpsc::sync_channel(16);
    let stats = Arc::new(CaptureStats::default());
    let st = stats.clone();
    let thread = std::thread::Builder::new()
        .name("video-capture".into())
        .spawn(move || video_loop(input, encoder, rate, stamp_all, snapshot, rx, &st))
        .map_err(thread("video-capture"))?;
    Ok(Capture {
        control,
        stats,
        thread: Some(thread),
        describe,
    })
}

fn video_loop(
    mut input: VideoInput,
    mut encoder: Vp8Encoder,
    rate: FrameRate,
    stamp_all: bool,
    mut snapshot: Option<(PathBuf, u32)>,
    rx: mpsc::Receiver<Control>,
    stats: &CaptureStats,
) -> Result<()> {
    let layout = input.layout();
    let mut captured: u32 = 0;
    let pool = VideoFramePool::new("capture", layout, 2);
    let pattern = TestPattern::default();
    let interval = rate.interval();
    let mut sink: Option<Box<dyn EncodedSink>> = None;
    let mut publisher: Option<Box<VideoPublisher>> = None;
    let mut muted = false;
    let start = Instant::now();
    let mut tick: u64 = 0;
    let mut frame_number: u32 = 0;
    let mut last_rtp: Option<u64> = None;
    loop {
        loop {
            match rx.try_recv() {
                Ok(Control::Sink(s)) => {
                    sink = s;
                    encoder.force_keyframe();
                }
                Ok(Control::Publisher(p)) => publisher = p,
                Ok(Control::Mute(m)) => {
                    if muted && !m {
                        encoder.force_keyframe();
                    }
                    muted = m;
                    stats.muted.store(m, Ordering::Relaxed);
                }
                Ok(Control::Stop) | Err(mpsc::TryRecvError::Disconnected) => return Ok(()),
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        // Pace: sleep to the next tick; when late by more than a frame, skip ticks.
        let due = start + interval.mul_f64(tick as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else if now - due > interval {
            let behind = ((now - due).as_secs_f64() / interval.as_secs_f64()) as u64;
            stats.dropped.fetch_add(behind, Ordering::Relaxed);
            tick += behind;
        }
        tick += 1;
        let capture = Instant::now();
        let mut frame = pool.acquire().map_err(pipeline("capture pool"))?;
        let ts = Timestamp::now();
        match &mut input {
            VideoInput::Synthetic { .. } => pattern
                .render(&mut frame, frame_number, ts)
                .map_err(media("test pattern"))?,
            VideoInput::Live(g, _) => {
                g.grab(&mut frame)?;
                if stamp_all {
                    stamp::stamp_frame(
                        &mut frame,
                        Stamp {
                            frame_number,
                            timestamp: ts,
                        },
                    )
                    .map_err(media("frame stamp"))?;
                }
                frame
                    .set_timestamp(ts)
                    .set_sequence(u64::from(frame_number));
            }
            VideoInput::File(r, d) => {
                if !r
                    .read_frame(&mut frame)
                    .map_err(|source| StreamError::Media {
                        what: d.clone(),
                        source,
                    })?
                {
                    return Err(StreamError::Unsupported {
                        what: d.clone(),
                        reason: "no frames".into(),
                    });
                }
                if stamp_all {
                    stamp::stamp_frame(
                        &mut frame,
                        Stamp {
                            frame_number,
                            timestamp: ts,
                        },
                    )
                    .map_err(media("frame stamp"))?;
                }
                frame
                    .set_timestamp(ts)
                    .set_sequence(u64::from(frame_number));
            }
        }
        stats.captured.fetch_add(1, Ordering::Relaxed);
        captured = captured.wrapping_add(1);
        let frame = frame.freeze();
        if let Some((path, at)) = &snapshot
            && captured >= *at
        {
            match wavecast_media::snapshot::write_i420_png(&frame, path) {
                Ok(()) => {
                    tracing::info!("snapshot of frame {captured} written to {}", path.display())
                }
                Err(e) => tracing::warn!("snapshot: {e}"),
            }
            snapshot = None;
        }
        if let Some(p) = publisher.as_mut() {
            if muted {
                continue;
            }
            let before = (p.frames_sent(), p.bytes_sent());
            let t0 = Instant::now();
            let sent = p
                .push_frame(&frame, capture)
                .map_err(|source| StreamError::Publisher {
                    what: format!("publish video frame {frame_number}"),
                    source: Box::new(source),
                })?;
            stats
                .encode_us
                .fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
            if sent {
                let ((_, keys), bytes) = before;
                stats.sent.fetch_add(1, Ordering::Relaxed);
                stats
                    .bytes
                    .fetch_add(p.bytes_sent() - bytes, Ordering::Relaxed);
                stats
                    .keyframes
                    .fetch_add(p.frames_sent().1 - keys, Ordering::Relaxed);
                stats
                    .last_frame_number
                    .store(u64::from(frame_number), Ordering::Relaxed);
            } else if p.dropped_while_reconnecting() > 0 {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
            frame_number = frame_number.wrapping_add(1);
            stats.numbered.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let Some(s) = sink.as_mut() else {
            stats.offline.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        if muted {
            continue;
        }
        if s.take_keyframe_request() {
            encoder.force_keyframe();
        }
        let image = wavecast_codec::pipeline::i420_of(&frame).map_err(codec("VP8 input"))?;
        let mut rtp = (capture - start).as_micros() as u64 * 9 / 100;
        if let Some(l) = last_rtp
            && rtp <= l
        {
            rtp = l + 1;
        }
        let t0 = Instant::now();
        let Some(encoded) =
            encoder
                .encode(&image, rtp as i64)
                .map_err(|source| StreamError::Codec {
                    what: format!("encode video frame {frame_number}"),
                    source,
                })?
        else {
            continue;
        };
        stats
            .encode_us
            .fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
        let (len, key) = (encoded.data.len(), encoded.keyframe);
        match s.write(encoded.data, rtp, capture, key) {
            Ok(true) => {
                last_rtp = Some(rtp);
                stats.sent.fetch_add(1, Ordering::Relaxed);
                stats.bytes.fetch_add(len as u64, Ordering::Relaxed);
                stats.keyframes.fetch_add(u64::from(key), Ordering::Relaxed);
                stats
                    .last_frame_number
                    .store(u64::from(frame_number), Ordering::Relaxed);
            }
            Ok(false) => {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::debug!("video sink gone: {e}");
                sink = None;
            }
        }
        // Numbers count frames handed to the encoder, so gaps at the receiver are losses.
        frame_number = frame_number.wrapping_add(1);
        stats.numbered.fetch_add(1, Ordering::Relaxed);
    }
}

/// The audio source, opened.
pub enum AudioSourceOpen {
    /// Tone generator.
    Tone(Box<ToneGenerator>),
    /// Looping WAV.
    File(Box<Looping<WavReader>>, String),
    /// Device (opened on the capture thread: cpal streams stay on their thread).
    Device(Option<String>, AudioFormat),
}

impl AudioSourceOpen {
    /// Opens `input` (files are checked now: 48 kHz, mono or stereo).
    pub fn open(input: &AudioInput) -> Result<Self> {
        match input {
            AudioInput::Tone {
                frequency,
                channels,
            } => {
                let format = AudioFormat::new(OPUS_SAMPLE_RATE, *channels)
                    .map_err(pipeline(format!("{channels} audio channels")))?;
                let g =
                    ToneGenerator::new(format, Waveform::Tone(*frequency), 0.5, Timestamp::now())
                        .map_err(media(format!("a {frequency} Hz tone")))?
                        .with_markers(Markers::default());
                Ok(AudioSourceOpen::Tone(Box::new(g)))
            }
            AudioInput::File(path) => {
                let what = || format!("audio file {}", path.display());
                let r = WavReader::open(path).map_err(media(what()))?;
                let f = r.format();
                if f.sample_rate != OPUS_SAMPLE_RATE {
                    return Err(StreamError::Unsupported {
                        what: what(),
                        reason: format!(
                            "{} Hz audio; Opus is sent at {OPUS_SAMPLE_RATE} Hz (resample the \
                             file, e.g. `sox in.wav -r 48000 out.wav`)",
                            f.sample_rate
                        ),
                    });
                }
                if f.channels > 2 {
                    return Err(StreamError::Unsupported {
                        what: what(),
                        reason: format!("{} channels; only mono and stereo are sent", f.channels),
                    });
                }
                let d = r.describe();
                Ok(AudioSourceOpen::File(Box::new(Looping::new(r)), d))
            }
            AudioInput::Device(name) => Ok(AudioSourceOpen::Device(
                name.clone(),
                AudioFormat::new(OPUS_SAMPLE_RATE, 1).map_err(pipeline("mono audio"))?,
            )),
        }
    }

    /// The format it produces.
    pub fn format(&self) -> AudioFormat {
        match self {
            AudioSourceOpen::Tone(g) => g.format(),
            AudioSourceOpen::File(r, _) => r.format(),
            AudioSourceOpen::Device(_, f) => *f,
        }
    }

    /// What it is.
    pub fn describe(&self) -> String {
        match self {
            AudioSourceOpen::Tone(g) => format!(
                "tone, {} channel(s) at {} Hz, 500 ms timestamp markers",
                g.format().channels,
                g.format().sample_rate
            ),
            AudioSourceOpen::File(_, d) => d.clone(),
            AudioSourceOpen::Device(n, _) => {
                format!("microphone {}", n.as_deref().unwrap_or("(default)"))
            }
        }
    }
}

/// Starts the audio capture thread (20 ms Opus packets at `bitrate` bits per second).
pub fn start_audio(source: AudioSourceOpen, bitrate: u32) -> Result<Capture> {
    let format = source.format();
    let encoder = OpusEncoder::new(format.channels, bitrate)
        .map_err(codec("cannot start the Opus encoder"))?;
    let describe = source.describe();
    let (control, rx) = mpsc::sync_channel(16);
    let stats = Arc::new(CaptureStats::default());
    let st = stats.clone();
    let thread = std::thread::Builder::new()
        .name("audio-capture".into())
        .spawn(move || audio_loop(source, encoder, rx, &st))
        .map_err(thread("audio-capture"))?;
    Ok(Capture {
        control,
        stats,
        thread: Some(thread),
        describe,
    })
}

/// Pulls 20 ms of samples from the source into `buf` (`false`: nothing available yet).
struct AudioPull {
    source: AudioSourceOpen,
    frame: AudioFrameMut,
    #[cfg(feature = "cpal")]
    device: Option<(
        wavecast_media::device::DeviceInput,
        wavecast_pipeline::AudioRingConsumer,
    )>,
}

impl AudioPull {
    fn pull(&mut self, buf: &mut [i16]) -> Result<bool> {
        match &mut self.source {
            AudioSourceOpen::Tone(g) => {
                g.fill(&mut self.frame);
                buf.copy_from_slice(self.frame.samples());
                Ok(true)
            }
            AudioSourceOpen::File(r, d) => {
                let mut filled = 0;
                while filled < buf.len() {
                    let n = r
                        .read_frame(&mut self.frame)
                        .map_err(|source| StreamError::Media {
                            what: d.clone(),
                            source,
                        })?;
                    if n == 0 {
                        return Err(StreamError::Unsupported {
                            what: d.clone(),
                            reason: "no samples".into(),
                        });
                    }
                    let got = self.frame.samples();
                    let take = got.len().min(buf.len() - filled);
                    buf[filled..filled + take].copy_from_slice(&got[..take]);
                    filled += take;
                    if n < OPUS_FRAME_SAMPLES {
                        // A short read at the end of a pass truncated the buffer: restore it.
                        let f = self.frame.format();
                        self.frame = AudioFrameMut::new(f, OPUS_FRAME_SAMPLES);
                    }
                }
                Ok(true)
            }
            AudioSourceOpen::Device(_name, _f) => {
                #[cfg(feature = "cpal")]
                {
                    if self.device.is_none() {
                        self.device = Some(
                            wavecast_media::device::DeviceInput::open(_name.as_deref(), *_f)
                                .map_err(media("microphone"))?,
                        );
                    }
                    let (_, ring) = self.device.as_mut().expect("opened just above");
                    let n = ring.pop(buf);
                    Ok(n == buf.len())
                }
                #[cfg(not(feature = "cpal"))]
                Err(StreamError::Unsupported {
                    what: "microphone capture".into(),
                    reason: "built without microphone support: rebuild with `--features cpal`"
                        .into(),
                })
            }
        }
    }
}

fn audio_loop(
    source: AudioSourceOpen,
    mut encoder: OpusEncoder,
    rx: mpsc::Receiver<Control>,
    stats: &CaptureStats,
) -> Result<()> {
    let format = source.format();
    let ch = usize::from(format.channels);
    let mut pull = AudioPull {
        frame: AudioFrameMut::new(format, OPUS_FRAME_SAMPLES),
        source,
        #[cfg(feature = "cpal")]
        device: None,
    };
    let mut pcm = vec![0i16; OPUS_FRAME_SAMPLES * ch];
    let mut packet = vec![0u8; MAX_OPUS_PACKET];
    let mut sink: Option<Box<dyn EncodedSink>> = None;
    let mut muted = false;
    let interval = Duration::from_millis(20);
    let start = Instant::now();
    let mut tick: u64 = 0;
    let mut rtp: u64 = 0;
    loop {
        loop {
            match rx.try_recv() {
                Ok(Control::Sink(s)) => sink = s,
                // Audio has no publisher of its own: it writes into its track.
                Ok(Control::Publisher(_)) => {}
                Ok(Control::Mute(m)) => {
                    muted = m;
                    stats.muted.store(m, Ordering::Relaxed);
                }
                Ok(Control::Stop) | Err(mpsc::TryRecvError::Disconnected) => return Ok(()),
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        let due = start + interval * tick as u32;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        tick += 1;
        let capture = Instant::now();
        if !pull.pull(&mut pcm)? {
            continue;
        }
        stats.captured.fetch_add(1, Ordering::Relaxed);
        let this_rtp = rtp;
        rtp += OPUS_FRAME_SAMPLES as u64;
        let Some(s) = sink.as_mut() else {
            stats.offline.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        if muted {
            continue;
        }
        let t0 = Instant::now();
        let len = encoder
            .encode(&pcm, &mut packet)
            .map_err(codec("encode an audio packet"))?;
        stats
            .encode_us
            .fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
        match s.write(&packet[..len], this_rtp, capture, false) {
            Ok(true) => {
                stats.sent.fetch_add(1, Ordering::Relaxed);
                stats.bytes.fetch_add(len as u64, Ordering::Relaxed);
            }
            Ok(false) => {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::debug!("audio sink gone: {e}");
                sink = None;
            }
        }
    }
}
