//! The in-process loopback link: publish loops feed decoders through a bounded channel —
//! capture → encode → decode → pipeline in one process, no server. For demos, tests and
//! measuring the media path without the network.
//!
//! Policy: the link holds [`LINK_CAPACITY`] frames; when it is full the sender drops the newest
//! frame and counts it as dropped in its [`CaptureStats`](crate::publish::CaptureStats).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use wavecast_session::{EncodedFrame, TrackKind};

use crate::decoders::{Decoders, Finished, Outputs};
use crate::error::{Result, StreamError};
use crate::publish::{
    self, AudioInput, AudioSourceOpen, Capture, Control, EncodedSink, VideoInput, VideoSettings,
};
use crate::receive::EncodedSource;

/// Frames in flight on a link before the sender drops (about a second of video).
pub const LINK_CAPACITY: usize = 32;

/// The sending end of a link (a capture thread's sink).
#[derive(Debug)]
pub struct LinkTx {
    tx: mpsc::SyncSender<EncodedFrame>,
    keyframe: Arc<AtomicBool>,
}

/// The receiving end (a decoder thread's source).
#[derive(Debug)]
pub struct LinkRx {
    rx: mpsc::Receiver<EncodedFrame>,
    keyframe: Arc<AtomicBool>,
}

/// A new link: frames written into the [`LinkTx`] come out of the [`LinkRx`]; keyframe requests
/// go the other way.
pub fn link() -> (LinkTx, LinkRx) {
    let (tx, rx) = mpsc::sync_channel(LINK_CAPACITY);
    let keyframe = Arc::new(AtomicBool::new(false));
    (
        LinkTx {
            tx,
            keyframe: keyframe.clone(),
        },
        LinkRx { rx, keyframe },
    )
}

impl EncodedSink for LinkTx {
    fn write(
        &mut self,
        data: &[u8],
        rtp_time: u64,
        _capture: Instant,
        keyframe: bool,
    ) -> Result<bool> {
        let frame = EncodedFrame {
            codec: wavecast_session::MediaCodec::Vp8,
            data: Arc::from(data),
            rtp_time,
            received_at: Instant::now(),
            keyframe,
            contiguous: true,
        };
        match self.tx.try_send(frame) {
            Ok(()) => Ok(true),
            Err(mpsc::TrySendError::Full(_)) => Ok(false),
            Err(mpsc::TrySendError::Disconnected(_)) => Err(StreamError::SinkClosed {
                what: "the loopback link".into(),
            }),
        }
    }

    fn take_keyframe_request(&mut self) -> bool {
        self.keyframe.swap(false, Ordering::Relaxed)
    }
}

impl EncodedSource for LinkRx {
    fn recv(&mut self) -> Option<EncodedFrame> {
        self.rx.recv().ok()
    }
    fn request_keyframe(&self) {
        self.keyframe.store(true, Ordering::Relaxed);
    }
}

/// A running loopback: capture threads plus decoder threads.
#[derive(Debug)]
pub struct Loopback {
    captures: Vec<Capture>,
    decoders: Decoders,
}

impl Loopback {
    /// Starts synthetic (or file) capture at `video`/`audio` and decodes it into `out`.
    pub fn start(
        video: &VideoSettings,
        audio: &AudioInput,
        audio_bitrate: u32,
        out: &Outputs,
        mut decoders: Decoders,
    ) -> Result<Self> {
        let v = publish::start_video(VideoInput::open(video)?, video)?;
        let a = publish::start_audio(AudioSourceOpen::open(audio)?, audio_bitrate)?;
        tracing::info!("loopback video: {}", v.describe);
        tracing::info!("loopback audio: {}", a.describe);
        let (vtx, vrx) = link();
        let (atx, arx) = link();
        v.send(Control::Sink(Some(Box::new(vtx))));
        a.send(Control::Sink(Some(Box::new(atx))));
        decoders.start_loopback(TrackKind::Video, vrx, out);
        decoders.start_loopback(TrackKind::Audio, arx, out);
        Ok(Self {
            captures: vec![v, a],
            decoders,
        })
    }

    /// Stops capture; the links close, the decoders drain and end.
    pub fn stop(self) -> Finished {
        for c in self.captures {
            if let Err(e) = c.stop() {
                tracing::error!("loopback capture: {e}");
            }
        }
        self.decoders.finish()
    }
}
