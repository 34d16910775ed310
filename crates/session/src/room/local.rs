//! Ourselves in the room: publishing, muting, data — the official SDKs' `LocalParticipant`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wavecast_rtc::{Participant as ParticipantInfo, ParticipantUpdate};

use wavecast_rtc::Quality;

use super::RoomShared;
use super::data_stream::{
    ByteStreamInfo, ByteStreamWriter, StreamByteOptions, StreamError, StreamTextOptions,
    TextStreamInfo, TextStreamWriter,
};
use super::events::{Queue, RoomEvent};
use super::rpc::{PerformRpcData, Rpc, RpcError, RpcInvocationData};
use crate::ids::{ParticipantIdentity, ParticipantSid};
use crate::session::{
    AudioPublisher, DataOptions, PublishedTrack, Session, SessionError, TrackOptions,
    VideoPublisher, lock,
};

/// Our own participant in a [`crate::Room`]: publish and unpublish tracks, mute them, send data.
///
/// A cheap handle (clone it into the tasks that publish). What it publishes survives rejoins:
/// the room publishes the tracks again on the new connection and the [`PublishedTrack`] handles
/// write to the new publications by themselves. Each publish and unpublish is also reported as a
/// [`RoomEvent::LocalTrackPublished`] / [`RoomEvent::LocalTrackUnpublished`].
///
/// ```no_run
/// # async fn demo(room: wavecast_session::Room) -> Result<(), wavecast_session::SessionError> {
/// use std::time::Instant;
/// let me = room.local_participant();
/// let mut mic = me.publish_audio("mic", 1, 32_000).await?;
/// mic.push(&[0i16; 960], Instant::now())?; // 20 ms of silence at 48 kHz
/// me.publish_data(b"hello".to_vec(), Default::default()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct LocalParticipant {
    session: Arc<Session>,
    queue: Arc<Queue>,
    shared: Arc<RoomShared>,
    identity: ParticipantIdentity,
    /// Our name, metadata and attributes as the server last confirmed them.
    info: Arc<Mutex<ParticipantInfo>>,
    rpc: Arc<Rpc>,
}

impl std::fmt::Debug for LocalParticipant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalParticipant")
            .field("identity", &self.identity)
            .field("sid", &self.sid())
            .finish_non_exhaustive()
    }
}

impl LocalParticipant {
    pub(crate) fn new(
        session: Arc<Session>,
        queue: Arc<Queue>,
        shared: Arc<RoomShared>,
        rpc: Arc<Rpc>,
    ) -> Self {
        let local = session.join_info().map(|j| j.local).unwrap_or_default();
        Self {
            session,
            queue,
            shared,
            identity: local.identity.as_str().into(),
            info: Arc::new(Mutex::new(local)),
            rpc,
        }
    }

    /// Our connection quality as the server last reported it (`None` before its first report).
    pub fn connection_quality(&self) -> Option<Quality> {
        *lock(&self.shared.local_quality)
    }

    /// Call `method` on the participant `destination` with `payload` and wait for its answer
    /// (at most `response_timeout` once the receiver acknowledged the request). Errors carry
    /// the SDKs' codes ([`crate::RpcErrorCode`]) or the receiver's own.
    ///
    /// ```no_run
    /// # async fn demo(room: wavecast_session::Room) {
    /// use std::time::Duration;
    /// let me = room.local_participant();
    /// match me.perform_rpc("agent", "get-weather", "{\"city\":\"Oslo\"}", Duration::from_secs(10)).await {
    ///     Ok(answer) => println!("{answer}"),
    ///     Err(e) => println!("failed: {} ({:?})", e, e.built_in_code()),
    /// }
    /// # }
    /// ```
    pub async fn perform_rpc(
        &self,
        destination: &str,
        method: &str,
        payload: &str,
        response_timeout: Duration,
    ) -> Result<String, RpcError> {
        self.perform_rpc_with(PerformRpcData {
            destination_identity: destination.to_owned(),
            method: method.to_owned(),
            payload: payload.to_owned(),
            response_timeout,
            ..PerformRpcData::default()
        })
        .await
    }

    /// [`LocalParticipant::perform_rpc`] with every setting (the ack's round-trip bound too).
    pub async fn perform_rpc_with(&self, call: PerformRpcData) -> Result<String, RpcError> {
        let receiver = super::remote_protocol(&self.shared, &call.destination_identity);
        self.rpc.perform(&self.session, call, receiver).await
    }

    /// Answer calls of `method` with `handler` (replacing any earlier one). The handler runs
    /// on a task of its own per call; return an [`RpcError`] to send the caller its code,
    /// message and data.
    ///
    /// ```no_run
    /// # fn demo(room: &wavecast_session::Room) {
    /// use wavecast_session::RpcError;
    /// room.local_participant().register_rpc_method("echo", |call| async move {
    ///     if call.payload.is_empty() {
    ///         return Err(RpcError::new(4000, "empty", None));
    ///     }
    ///     Ok(call.payload)
    /// });
    /// # }
    /// ```
    pub fn register_rpc_method<F, Fut>(&self, method: &str, handler: F)
    where
        F: Fn(RpcInvocationData) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<String, RpcError>> + Send + 'static,
    {
        self.rpc.register(method, handler);
    }

    /// Stop answering `method` (callers then get [`crate::RpcErrorCode::UnsupportedMethod`]).
    pub fn unregister_rpc_method(&self, method: &str) {
        self.rpc.unregister(method);
    }

    /// Take the server's view of ourselves; returns the state before.
    pub(crate) fn replace_info(&self, info: ParticipantInfo) -> ParticipantInfo {
        std::mem::replace(&mut *lock(&self.info), info)
    }

    /// Our identity (from the token; the same after every rejoin).
    pub fn identity(&self) -> &ParticipantIdentity {
        &self.identity
    }

    /// Our sid on the current connection (`None` while rejoining; a rejoin brings a new one).
    pub fn sid(&self) -> Option<ParticipantSid> {
        self.session.join_info().map(|j| j.local.sid.into())
    }

    /// Our display name now (as the server confirmed it).
    pub fn name(&self) -> String {
        lock(&self.info).name.clone()
    }

    /// Our metadata now.
    pub fn metadata(&self) -> String {
        lock(&self.info).metadata.clone()
    }

    /// Our attributes now.
    pub fn attributes(&self) -> BTreeMap<String, String> {
        lock(&self.info).attributes.clone()
    }

    /// Set our display name. Returns once the server applied it (the room then reports
    /// [`RoomEvent::ParticipantNameChanged`] for us, and [`LocalParticipant::name`] reads it);
    /// the token must grant `canUpdateOwnMetadata`, else the error's source is
    /// [`wavecast_rtc::EngineError::RequestRefused`] with
    /// [`wavecast_rtc::RequestRefusal::NotAllowed`].
    pub async fn set_name(&self, name: impl Into<String>) -> Result<(), SessionError> {
        self.update(ParticipantUpdate {
            name: Some(name.into()),
            ..Default::default()
        })
        .await
    }

    /// Set our metadata (see [`LocalParticipant::set_name`] for the answer and the grant).
    pub async fn set_metadata(&self, metadata: impl Into<String>) -> Result<(), SessionError> {
        self.update(ParticipantUpdate {
            metadata: Some(metadata.into()),
            ..Default::default()
        })
        .await
    }

    /// Set some of our attributes: the keys given get their values, an empty value removes its
    /// key, other keys stay (see [`LocalParticipant::set_name`] for the answer and the grant).
    pub async fn set_attributes(
        &self,
        attributes: HashMap<String, String>,
    ) -> Result<(), SessionError> {
        self.update(ParticipantUpdate {
            attributes: Some(attributes.into_iter().collect()),
            ..Default::default()
        })
        .await
    }

    async fn update(&self, update: ParticipantUpdate) -> Result<(), SessionError> {
        self.session.update_participant(update.clone()).await?;
        // The engine's confirmation also comes as an event the room's task applies; apply it
        // here too so the values read back as soon as the call returns.
        let (before, after) = {
            let mut info = lock(&self.info);
            let after = update.apply(&info);
            (std::mem::replace(&mut *info, after.clone()), after)
        };
        for ev in super::roster::info_changes(&self.clone().into(), &before, &after) {
            self.queue.push(ev);
        }
        Ok(())
    }

    /// Publish a track of encoded frames (write them into the returned handle). Fails with
    /// `NotConnected` while rejoining.
    pub async fn publish_track(
        &self,
        options: TrackOptions,
    ) -> Result<PublishedTrack, SessionError> {
        let track = self.session.publish_track(options).await?;
        self.published(&track);
        Ok(track)
    }

    /// Publish an Opus microphone track and wrap it with an encoder (`channels` 1 or 2,
    /// `bitrate` in bits per second): push 48 kHz PCM into it.
    pub async fn publish_audio(
        &self,
        name: &str,
        channels: u16,
        bitrate: u32,
    ) -> Result<AudioPublisher, SessionError> {
        let publisher = self.session.publish_audio(name, channels, bitrate).await?;
        self.published(publisher.track());
        Ok(publisher)
    }

    /// Publish a video track and wrap it with its encoders: push I420 pictures into it.
    /// [`crate::VideoOptions`] says codec (VP8, VP9, H.264), size, frame rate, simulcast and
    /// the bitrate range; a [`crate::Vp8Config`] is one VP8 layer.
    ///
    /// ```no_run
    /// # async fn demo(room: &wavecast_session::Room) -> Result<(), wavecast_session::SessionError> {
    /// use wavecast_session::{VideoCodec, VideoOptions};
    /// let options = VideoOptions::new(VideoCodec::H264, 1280, 720, 30).with_simulcast(true);
    /// let mut camera = room.local_participant().publish_video("camera", options).await?;
    /// # let (y, u, v) = (vec![0u8; 1280 * 720], vec![128u8; 640 * 360], vec![128u8; 640 * 360]);
    /// let picture = wavecast_session::I420 {
    ///     width: 1280,
    ///     height: 720,
    ///     planes: [&y, &u, &v],
    ///     strides: [1280, 640, 640],
    /// };
    /// camera.push(&picture, std::time::Instant::now())?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn publish_video(
        &self,
        name: &str,
        options: impl Into<crate::VideoOptions>,
    ) -> Result<VideoPublisher, SessionError> {
        let publisher = self.session.publish_video(name, options).await?;
        self.published(publisher.track());
        Ok(publisher)
    }

    fn published(&self, track: &PublishedTrack) {
        self.queue.push(RoomEvent::LocalTrackPublished {
            publication: track.clone(),
        });
    }

    /// Stop publishing a track, for good (it is not published again after a rejoin).
    pub async fn unpublish_track(&self, track: &PublishedTrack) -> Result<(), SessionError> {
        let was_published = !track.is_unpublished();
        self.session.unpublish_track(track).await?;
        if was_published {
            self.queue.push(RoomEvent::LocalTrackUnpublished {
                publication: track.clone(),
            });
        }
        Ok(())
    }

    /// Mute or unmute one of our tracks (kept across rejoins).
    pub async fn set_track_muted(
        &self,
        track: &PublishedTrack,
        muted: bool,
    ) -> Result<(), SessionError> {
        self.session.set_track_muted(track, muted).await
    }

    /// Our publications now (what a rejoin publishes again).
    pub fn track_publications(&self) -> Vec<PublishedTrack> {
        self.session.published_tracks()
    }

    /// Send `text` as a text stream (chat: topic [`crate::TOPIC_CHAT`]) with its length in the
    /// header: as one packet when it fits one and every recipient reads single-packet streams,
    /// else cut into chunks of at most [`crate::STREAM_CHUNK_SIZE`] bytes.
    pub async fn send_text(
        &self,
        text: &str,
        options: StreamTextOptions,
    ) -> Result<TextStreamInfo, StreamError> {
        let single = super::all_read_single_packets(&self.shared, &options.destination_identities);
        super::data_stream::send_text(self.session.clone(), text, options, single).await
    }

    /// Open a text stream to write incrementally (length unknown in advance).
    pub async fn stream_text(
        &self,
        options: StreamTextOptions,
    ) -> Result<TextStreamWriter, StreamError> {
        TextStreamWriter::open(self.session.clone(), options, None).await
    }

    /// Send `bytes` as a byte stream with its length in the header (as one packet when it
    /// fits one and every recipient reads single-packet streams, as [`Self::send_text`]).
    pub async fn send_bytes(
        &self,
        bytes: &[u8],
        options: StreamByteOptions,
    ) -> Result<ByteStreamInfo, StreamError> {
        let single = super::all_read_single_packets(&self.shared, &options.destination_identities);
        super::data_stream::send_bytes(self.session.clone(), bytes, options, single).await
    }

    /// Send a file as a byte stream (its name and length in the header; read piece by piece).
    pub async fn send_file(
        &self,
        path: impl AsRef<std::path::Path>,
        options: StreamByteOptions,
    ) -> Result<ByteStreamInfo, StreamError> {
        super::data_stream::send_file(self.session.clone(), path.as_ref(), options).await
    }

    /// Open a byte stream to write incrementally (set `total_length` in the options when known).
    pub async fn stream_bytes(
        &self,
        options: StreamByteOptions,
    ) -> Result<ByteStreamWriter, StreamError> {
        ByteStreamWriter::open(self.session.clone(), options).await
    }

    /// Send a user data packet to the room (or to the identities in `options`). Fails with
    /// `NotConnected` while rejoining: data is not queued across a rejoin.
    pub async fn publish_data(
        &self,
        payload: Vec<u8>,
        options: DataOptions,
    ) -> Result<(), SessionError> {
        self.session.publish_data(payload, options).await
    }
}
