//! After packet loss, video is skipped up to the next keyframe (asking for one), so a file
//! never holds frames a decoder cannot decode.

use std::time::{Duration, Instant};

use wavecast_session::{EncodedFrame, TrackKind};

/// Keyframe requests are repeated at most this often while waiting.
const PLI_EVERY: Duration = Duration::from_millis(500);

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Record it.
    Pass,
    /// Skip it; `request_keyframe` says whether to send a PLI now.
    Skip { request_keyframe: bool },
}

/// The per-track gate.
#[derive(Debug)]
pub(crate) struct KeyframeGate {
    video: bool,
    waiting: bool,
    binding: u64,
    last_request: Option<Instant>,
    /// Frames skipped since the last [`KeyframeGate::take_counts`].
    skipped: u64,
    /// Keyframe requests since the last [`KeyframeGate::take_counts`].
    requests: u64,
}

impl KeyframeGate {
    pub(crate) fn new(kind: TrackKind) -> Self {
        Self {
            video: kind == TrackKind::Video,
            waiting: true,
            binding: 0,
            last_request: None,
            skipped: 0,
            requests: 0,
        }
    }

    /// Frames were lost outside the stream (our own queue was full): wait for a keyframe.
    pub(crate) fn lost(&mut self) {
        if self.video {
            self.waiting = true;
        }
    }

    /// Judge a frame of binding `binding` (changes when the handle moved to a new stream).
    pub(crate) fn admit(&mut self, frame: &EncodedFrame, binding: u64, now: Instant) -> Verdict {
        if !self.video {
            return Verdict::Pass;
        }
        if binding != self.binding {
            self.binding = binding;
            self.waiting = true;
        }
        if !frame.contiguous {
            self.waiting = true;
        }
        if self.waiting && frame.keyframe {
            self.waiting = false;
            self.last_request = None;
        }
        if !self.waiting {
            return Verdict::Pass;
        }
        self.skipped += 1;
        let request = self
            .last_request
            .is_none_or(|t| now.saturating_duration_since(t) >= PLI_EVERY);
        if request {
            self.last_request = Some(now);
            self.requests += 1;
        }
        Verdict::Skip {
            request_keyframe: request,
        }
    }

    /// (skipped frames, keyframe requests) since the last call.
    pub(crate) fn take_counts(&mut self) -> (u64, u64) {
        (
            std::mem::take(&mut self.skipped),
            std::mem::take(&mut self.requests),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn f(keyframe: bool, contiguous: bool) -> EncodedFrame {
        EncodedFrame {
            codec: wavecast_session::MediaCodec::Vp8,
            data: Arc::from(vec![0u8; 4]),
            rtp_time: 0,
            received_at: Instant::now(),
            keyframe,
            contiguous,
        }
    }

    #[test]
    fn video_after_loss_waits_for_a_keyframe_and_asks_for_one() {
        let t = Instant::now();
        let mut g = KeyframeGate::new(TrackKind::Video);
        // A stream starts at a keyframe.
        assert_eq!(
            g.admit(&f(false, true), 0, t),
            Verdict::Skip {
                request_keyframe: true
            }
        );
        assert_eq!(g.admit(&f(true, true), 0, t), Verdict::Pass);
        assert_eq!(g.admit(&f(false, true), 0, t), Verdict::Pass);
        // Loss: skip, ask once per 500 ms.
        assert_eq!(
            g.admit(&f(false, false), 0, t),
            Verdict::Skip {
                request_keyframe: true
            }
        );
        assert_eq!(
            g.admit(&f(false, true), 0, t + Duration::from_millis(100)),
            Verdict::Skip {
                request_keyframe: false
            }
        );
        assert_eq!(
            g.admit(&f(false, true), 0, t + Duration::from_millis(600)),
            Verdict::Skip {
                request_keyframe: true
            }
        );
        assert_eq!(g.admit(&f(true, true), 0, t), Verdict::Pass);
        assert_eq!(g.take_counts(), (4, 3));
        // A new binding (rejoin) also starts at a keyframe; so does our own queue overflow.
        assert!(matches!(
            g.admit(&f(false, true), 1, t),
            Verdict::Skip { .. }
        ));
        assert_eq!(g.admit(&f(true, true), 1, t), Verdict::Pass);
        g.lost();
        assert!(matches!(
            g.admit(&f(false, true), 1, t),
            Verdict::Skip { .. }
        ));
    }

    #[test]
    fn audio_always_passes() {
        let mut g = KeyframeGate::new(TrackKind::Audio);
        assert_eq!(g.admit(&f(false, false), 3, Instant::now()), Verdict::Pass);
    }
}
