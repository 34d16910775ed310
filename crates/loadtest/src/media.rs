//! Glue between the runner and the media-stream crate: a publisher's publish loops, the tasks
//! that feed subscribed tracks to the stream crate's receivers, and the live counters the
//! progress display sums.
//!
//! Nothing here decodes, reads stamps or counts latency: publishing is
//! [`wavecast_stream::publish`] (paced capture → VP8/Opus → published track) behind a
//! [`Broadcast`]; receiving is [`VideoReceiver`] / [`AudioReceiver`] (decode, stamp, frame-number
//! set, age histogram), driven here from tasks on the decode runtime instead of one thread per
//! track, so a thousand tracks need no more threads than the machine has cores.
//!
//! Decoding: every subscriber decodes every video frame (VP8 inter frames depend on the frames
//! before them, so a sample of frames cannot be decoded alone) and every audio packet, and reads
//! the stamp of every decoded picture; decoded pictures and audio are not copied out of the
//! decoders (nobody looks at them: [`ReceiveOptions::deliver_every`] = 0).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wavecast_session::SubscribedTrack;
use wavecast_stream::broadcast::{Broadcast, KindSummary, VideoTrackInfo};
use wavecast_stream::publish::{
    self, AudioInput, AudioSourceOpen, CaptureStats, VideoInput, VideoSettings as StreamVideo,
};
use wavecast_stream::receive::{
    AudioOut, AudioReceiver, AudioStreamStats, ReceiveOptions, VideoOut, VideoReceiver,
    VideoStreamStats,
};

use crate::config::VideoSettings;
use crate::error::LoadTestError;

/// The publishers' tone.
const TONE_HZ: f64 = 440.0;
/// The tone's Opus bitrate, bits per second.
const AUDIO_BITRATE: u32 = 32_000;

/// The outputs of every receiver started so far, summed for the progress display (read a few
/// times a second; the receivers only touch their own relaxed atomics).
#[derive(Debug, Default)]
pub(crate) struct LiveMedia {
    video: Mutex<Vec<Arc<VideoOut>>>,
    audio: Mutex<Vec<Arc<AudioOut>>>,
}

/// Totals of [`LiveMedia`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LiveTotals {
    pub(crate) frames_decoded: u64,
    pub(crate) bytes: u64,
    pub(crate) decode_errors: u64,
}

impl LiveMedia {
    fn add_video(&self, out: Arc<VideoOut>) {
        lock(&self.video).push(out);
    }

    fn add_audio(&self, out: Arc<AudioOut>) {
        lock(&self.audio).push(out);
    }

    pub(crate) fn totals(&self) -> LiveTotals {
        let mut t = LiveTotals::default();
        for v in lock(&self.video).iter() {
            t.frames_decoded += v.frames.load(Ordering::Relaxed);
            t.bytes += v.bytes.load(Ordering::Relaxed);
            t.decode_errors += v.errors.load(Ordering::Relaxed);
        }
        for a in lock(&self.audio).iter() {
            t.bytes += a.bytes.load(Ordering::Relaxed);
            t.decode_errors += a.errors.load(Ordering::Relaxed);
        }
        t
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What one publisher's loops did.
#[derive(Debug, Clone, Default)]
pub(crate) struct PublishOutcome {
    pub(crate) video: Option<KindSummary>,
    pub(crate) audio: Option<KindSummary>,
}

/// A publisher's running publish loops (stamped test pattern, optionally a tone).
#[derive(Debug)]
pub(crate) struct PublishLoop {
    broadcast: Broadcast,
    video: Arc<CaptureStats>,
}

impl PublishLoop {
    /// Starts the capture → encode threads (nothing is sent until [`PublishLoop::publish`]).
    pub(crate) fn start(settings: VideoSettings, audio: bool) -> Result<Self, LoadTestError> {
        let video_settings = StreamVideo {
            file: None,
            width: settings.width,
            height: settings.height,
            fps: Some(settings.fps),
            bitrate: settings.bitrate,
            min_bitrate: settings.bitrate,
            codec: wavecast_session::VideoCodec::Vp8,
            simulcast: false,
            stamp_files: false,
            snapshot: None,
        };
        let input = VideoInput::open(&video_settings).map_err(media_error("video source"))?;
        let size = input.size();
        let video = publish::start_video(input, &video_settings)
            .map_err(media_error("video publish loop"))?;
        let stats = video.stats.clone();
        let audio = if audio {
            let tone = AudioSourceOpen::open(&AudioInput::Tone {
                frequency: TONE_HZ,
                channels: 1,
            })
            .map_err(media_error("tone"))?;
            match publish::start_audio(tone, AUDIO_BITRATE) {
                Ok(a) => Some((a, false)),
                Err(e) => {
                    let _ = video.stop();
                    return Err(media_error("audio publish loop")(e));
                }
            }
        } else {
            None
        };
        let info = VideoTrackInfo {
            size,
            screen: false,
            publish: None,
        };
        Ok(Self {
            broadcast: Broadcast::new(Some((video, info, false)), audio),
            video: stats,
        })
    }

    /// Publishes the tracks as `me` and points the loops at them.
    pub(crate) async fn publish(
        &mut self,
        me: &wavecast_session::LocalParticipant,
    ) -> Result<(), wavecast_stream::StreamError> {
        self.broadcast.publish(me).await
    }

    /// The video loop's counters (its `numbered` is the next stamped frame number).
    pub(crate) fn video_stats(&self) -> Arc<CaptureStats> {
        self.video.clone()
    }

    /// Stops the loops (blocking: joins their threads).
    pub(crate) fn stop(self) -> PublishOutcome {
        let mut out = PublishOutcome::default();
        for (name, summary) in self.broadcast.stop() {
            match name {
                "video" => out.video = Some(summary),
                _ => out.audio = Some(summary),
            }
        }
        out
    }
}

fn media_error(what: &'static str) -> impl Fn(wavecast_stream::StreamError) -> LoadTestError {
    move |source| LoadTestError::Media {
        what,
        source: Box::new(source),
    }
}

/// Feeds `track` to a video receiver until `stop` or the track's end.
pub(crate) async fn receive_video(
    mut track: SubscribedTrack,
    stop: CancellationToken,
    warmup: Duration,
    live: Arc<LiveMedia>,
) -> Result<VideoStreamStats, LoadTestError> {
    let out = Arc::new(VideoOut::default());
    live.add_video(out.clone());
    let options = ReceiveOptions {
        deliver_every: 0,
        latency_warmup: warmup,
        ..ReceiveOptions::default()
    };
    let mut rx =
        VideoReceiver::new(&track, out, None, options).map_err(media_error("video receiver"))?;
    loop {
        let frame = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            f = track.recv() => match f { Some(f) => f, None => break },
        };
        if rx.push(&frame) {
            track.request_keyframe();
        }
    }
    Ok(rx.finish(track.dropped()).0)
}

/// Feeds `track` to an audio receiver until `stop` or the track's end.
pub(crate) async fn receive_audio(
    mut track: SubscribedTrack,
    stop: CancellationToken,
    live: Arc<LiveMedia>,
) -> Result<AudioStreamStats, LoadTestError> {
    let out = Arc::new(AudioOut::new(false));
    live.add_audio(out.clone());
    let options = ReceiveOptions {
        deliver_every: 0,
        ..ReceiveOptions::default()
    };
    let mut rx =
        AudioReceiver::new(&track, out, 1, None, options).map_err(media_error("audio receiver"))?;
    loop {
        let frame = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            f = track.recv() => match f { Some(f) => f, None => break },
        };
        rx.push(&frame);
    }
    Ok(rx.finish(track.dropped()).0)
}
