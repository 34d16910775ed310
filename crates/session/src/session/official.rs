//! The same session interface on the official `livekit` crate (libwebrtc), behind the
//! `libwebrtc` cargo feature. **Compile-checked only**: its build script downloads a prebuilt
//! libwebrtc, which our machines cannot fetch, so CI type-checks it with
//! `DOCS_RS=1 cargo check -p wavecast-session --features libwebrtc` (the build script skips the
//! download under `DOCS_RS`) and nothing here is run by the test suite.
//!
//! [`OfficialSession`] maps connect / publish / subscribe / data / close onto `livekit::Room`
//! and reports the same [`SessionState`]s; reconnecting is the official SDK's own (resume, then
//! full reconnect with its republishing), reported as `Reconnecting { attempt }` /
//! `Connected`.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use livekit::options::TrackPublishOptions;
use livekit::prelude::{
    LocalAudioTrack, LocalTrack, LocalTrackPublication, LocalVideoTrack, RemoteTrack, Room,
    RoomEvent, RoomOptions, TrackSource as LkTrackSource,
};
use livekit::webrtc::audio_frame::AudioFrame as LkAudioFrame;
use livekit::webrtc::audio_source::native::NativeAudioSource;
use livekit::webrtc::audio_source::{AudioSourceOptions, RtcAudioSource};
use livekit::webrtc::video_frame::{I420Buffer, VideoFrame as LkVideoFrame, VideoRotation};
use livekit::webrtc::video_source::native::NativeVideoSource;
use livekit::webrtc::video_source::{RtcVideoSource, VideoResolution};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};
use wavecast_codec::I420;

use super::{
    DataOptions, EndReason, SessionError, SessionOptions, SessionState, TrackKey, TrackKind,
};

/// What an [`OfficialSession`] reports.
#[derive(Debug)]
#[non_exhaustive]
pub enum OfficialEvent {
    /// The session state changed.
    State(SessionState),
    /// A remote track is subscribed: read it with the official SDK's streams.
    TrackSubscribed {
        /// Publisher identity, track name and kind.
        key: TrackKey,
        /// The SDK's track.
        track: RemoteTrack,
    },
    /// A user data packet arrived.
    DataReceived {
        /// The sender's identity (empty when the server sent it).
        participant_identity: String,
        /// The topic.
        topic: Option<String>,
        /// The payload.
        payload: Arc<Vec<u8>>,
        /// Reliable or lossy.
        reliable: bool,
    },
    /// Any other room event, unchanged.
    Room(RoomEvent),
}

/// A session on the official SDK: see the [module docs](self).
pub struct OfficialSession {
    room: Arc<Room>,
    state: watch::Sender<SessionState>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    _events: AbortOnDropHandle<()>,
}

impl std::fmt::Debug for OfficialSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfficialSession")
            .field("state", &*self.state.borrow())
            .finish()
    }
}

fn official_error(operation: &str, source: livekit::RoomError) -> SessionError {
    SessionError::Official {
        operation: operation.to_owned(),
        source,
    }
}

impl OfficialSession {
    /// Join with the official SDK (auto-subscribe on; its own reconnect logic).
    pub async fn connect(
        options: SessionOptions,
    ) -> Result<(Self, mpsc::Receiver<OfficialEvent>), SessionError> {
        let token = options.credentials.token_now()?;
        let mut room_options = RoomOptions::default();
        room_options.auto_subscribe = true;
        let (room, mut room_events) = Room::connect(&options.url, &token, room_options)
            .await
            .map_err(|e| official_error("join", e))?;
        let room = Arc::new(room);
        let state = watch::Sender::new(SessionState::Connected);
        let (out, rx) = mpsc::channel(options.event_capacity.max(1));
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let task_state = state.clone();
        let task_cancel = cancel.clone();
        let handle = tracker.spawn(async move {
            let mut attempt = 0u32;
            loop {
                let ev = tokio::select! {
                    _ = task_cancel.cancelled() => break,
                    ev = room_events.recv() => ev,
                };
                let Some(ev) = ev else { break };
                let mapped = match ev {
                    RoomEvent::Reconnecting => {
                        attempt += 1;
                        let s = SessionState::Reconnecting { attempt };
                        task_state.send_replace(s.clone());
                        OfficialEvent::State(s)
                    }
                    RoomEvent::Reconnected => {
                        attempt = 0;
                        task_state.send_replace(SessionState::Connected);
                        OfficialEvent::State(SessionState::Connected)
                    }
                    RoomEvent::Disconnected { reason } => {
                        let s = SessionState::Disconnected {
                            reason: EndReason::RemovedByServer {
                                reason: format!("{reason:?}"),
                            },
                        };
                        task_state.send_replace(s.clone());
                        let _ = out.send(OfficialEvent::State(s)).await;
                        break;
                    }
                    RoomEvent::TrackSubscribed {
                        track,
                        publication,
                        participant,
                    } => {
                        let kind = match track {
                            RemoteTrack::Audio(_) => TrackKind::Audio,
                            RemoteTrack::Video(_) => TrackKind::Video,
                        };
                        OfficialEvent::TrackSubscribed {
                            key: TrackKey {
                                identity: participant.identity().to_string(),
                                name: publication.name(),
                                kind,
                            },
                            track,
                        }
                    }
                    RoomEvent::DataReceived {
                        payload,
                        topic,
                        kind,
                        participant,
                    } => OfficialEvent::DataReceived {
                        participant_identity: participant
                            .map(|p| p.identity().to_string())
                            .unwrap_or_default(),
                        topic,
                        payload,
                        reliable: kind == livekit::DataPacketKind::Reliable,
                    },
                    other => OfficialEvent::Room(other),
                };
                // The SDK's own stream is unbounded; ours is bounded and waits for the reader.
                if out.send(mapped).await.is_err() {
                    // Nobody listens: keep following the state only.
                }
            }
        });
        Ok((
            Self {
                room,
                state,
                cancel,
                tracker,
                _events: AbortOnDropHandle::new(handle),
            },
            rx,
        ))
    }

    /// The SDK room, for everything this wrapper does not cover.
    pub fn room(&self) -> &Room {
        &self.room
    }

    /// Publish a microphone track fed with 16-bit PCM at `sample_rate` × `channels`.
    pub async fn publish_audio(
        &self,
        name: &str,
        sample_rate: u32,
        channels: u16,
    ) -> Result<OfficialAudioPublisher, SessionError> {
        let source = NativeAudioSource::new(
            AudioSourceOptions::default(),
            sample_rate,
            u32::from(channels),
            100,
        );
        let track =
            LocalAudioTrack::create_audio_track(name, RtcAudioSource::Native(source.clone()));
        let options = TrackPublishOptions {
            source: LkTrackSource::Microphone,
            ..Default::default()
        };
        let publication = self
            .room
            .local_participant()
            .publish_track(LocalTrack::Audio(track), options)
            .await
            .map_err(|e| official_error("publish audio", e))?;
        Ok(OfficialAudioPublisher {
            source,
            publication,
            sample_rate,
            channels,
        })
    }

    /// Publish a camera track fed with I420 pictures of `width` × `height`.
    pub async fn publish_video(
        &self,
        name: &str,
        width: u32,
        height: u32,
    ) -> Result<OfficialVideoPublisher, SessionError> {
        let source = NativeVideoSource::new(VideoResolution { width, height }, false);
        let track =
            LocalVideoTrack::create_video_track(name, RtcVideoSource::Native(source.clone()));
        let options = TrackPublishOptions {
            source: LkTrackSource::Camera,
            ..Default::default()
        };
        let publication = self
            .room
            .local_participant()
            .publish_track(LocalTrack::Video(track), options)
            .await
            .map_err(|e| official_error("publish video", e))?;
        Ok(OfficialVideoPublisher {
            source,
            publication,
            buffer: I420Buffer::new(width, height),
            start: Instant::now(),
        })
    }
}

/// The same calls as [`crate::internals::Session`]'s, on the official SDK's room.
impl OfficialSession {
    /// The current state.
    pub fn state(&self) -> SessionState {
        self.state.borrow().clone()
    }

    /// A receiver of every state change.
    pub fn watch_state(&self) -> watch::Receiver<SessionState> {
        self.state.subscribe()
    }

    /// Send a user data packet.
    pub async fn publish_data(
        &self,
        payload: Vec<u8>,
        options: DataOptions,
    ) -> Result<(), SessionError> {
        let packet = livekit::DataPacket {
            payload,
            topic: options.topic,
            reliable: options.reliable,
            destination_identities: options
                .destination_identities
                .into_iter()
                .map(Into::into)
                .collect(),
        };
        self.room
            .local_participant()
            .publish_data(packet)
            .await
            .map_err(|e| official_error("send data", e))
    }

    /// Leave, close the connections and wait for the session's tasks. Idempotent.
    pub async fn close(&self) {
        if !matches!(*self.state.borrow(), SessionState::Disconnected { .. }) {
            let _ = self.room.close().await;
            self.state.send_replace(SessionState::Disconnected {
                reason: EndReason::Closed,
            });
        }
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// Feeds PCM into an official audio track.
pub struct OfficialAudioPublisher {
    source: NativeAudioSource,
    publication: LocalTrackPublication,
    sample_rate: u32,
    channels: u16,
}

impl std::fmt::Debug for OfficialAudioPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfficialAudioPublisher")
            .field("sid", &self.publication.sid())
            .finish()
    }
}

impl OfficialAudioPublisher {
    /// Push interleaved samples (a multiple of 10 ms suits the SDK best).
    pub async fn push(&self, pcm: &[i16]) -> Result<(), SessionError> {
        let frame = LkAudioFrame {
            data: Cow::Borrowed(pcm),
            sample_rate: self.sample_rate,
            num_channels: u32::from(self.channels),
            samples_per_channel: (pcm.len() / usize::from(self.channels.max(1))) as u32,
        };
        self.source
            .capture_frame(&frame)
            .await
            .map_err(|e| official_error("push audio", livekit::RoomError::Rtc(e)))
    }
}

/// Feeds I420 pictures into an official video track.
pub struct OfficialVideoPublisher {
    source: NativeVideoSource,
    publication: LocalTrackPublication,
    buffer: I420Buffer,
    start: Instant,
}

impl std::fmt::Debug for OfficialVideoPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfficialVideoPublisher")
            .field("sid", &self.publication.sid())
            .finish()
    }
}

impl OfficialVideoPublisher {
    /// Copy one picture (of the published size) into the SDK's buffer and capture it.
    pub fn push(&mut self, image: &I420<'_>, capture: Instant) -> Result<(), SessionError> {
        let (sy, su, sv) = self.buffer.strides();
        let h = image.height as usize;
        let (cw, ch) = (
            image.width.div_ceil(2) as usize,
            image.height.div_ceil(2) as usize,
        );
        let (dy, du, dv) = self.buffer.data_mut();
        let planes: [(&mut [u8], usize, usize, usize); 3] = [
            (dy, sy as usize, image.width as usize, h),
            (du, su as usize, cw, ch),
            (dv, sv as usize, cw, ch),
        ];
        for (i, (dst, dst_stride, w, rows)) in planes.into_iter().enumerate() {
            let src = image.planes[i];
            let src_stride = image.strides[i];
            for y in 0..rows {
                let (Some(d), Some(s)) = (
                    dst.get_mut(y * dst_stride..y * dst_stride + w),
                    src.get(y * src_stride..y * src_stride + w),
                ) else {
                    return Err(SessionError::BadPicture {
                        width: image.width,
                        height: image.height,
                    });
                };
                d.copy_from_slice(s);
            }
        }
        let frame = LkVideoFrame {
            rotation: VideoRotation::VideoRotation0,
            timestamp_us: capture.saturating_duration_since(self.start).as_micros() as i64,
            frame_metadata: None,
            buffer: &self.buffer,
        };
        self.source.capture_frame(&frame);
        Ok(())
    }
}
