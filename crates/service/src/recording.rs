//! Stream recording: `POST /v1/streams/{id}/recording {"action": "start" | "stop"}` runs the
//! room recorder of `wavecast-stream` in this process, into `service.recordings_dir`.
//!
//! One recording per stream at a time: the database's unique index on a stream's unfinished
//! recording arbitrates (so two instances sharing the database cannot both start one), and a
//! per-stream lock orders start, stop and end within this instance. Each running recording is
//! owned by a task here: it finalizes the files when asked to stop, when the recorder's session
//! ends by itself (room deleted, recorder removed), or when the service shuts down
//! ([`Recordings::shutdown`]); then it writes the outcome to the recording's row.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;
use wavecast_session::Credentials;

use crate::error::chain;
use wavecast_stream::record::{Manifest, RecordError, Recorder, RecorderOptions, recover_dir};
use wavecast_token::Preset;

use crate::api::{ApiError, AppState, JsonBody, Shared, new_id, now};
use crate::auth::Principal;
use crate::guard::Authed;
use crate::store::{Recording, Store, Stream, StreamStatus};

/// Reason given to a recording stopped by `POST …/recording {"action":"stop"}`.
const STOPPED: &str = "stopped";

/// `started_by` of a recording the admin key started (`started_by_admin_key` tells it apart from
/// a user whose `sub` is the same text).
const ADMIN_KEY_STARTER: &str = "admin key";

/// What a recording's owner task answers when it has finished.
type Outcome = Result<Finished, ApiError>;

/// A finished recording: its row and the files the manifest lists.
#[derive(Debug, Serialize)]
pub(crate) struct Finished {
    #[serde(flatten)]
    recording: Recording,
    files: Vec<FileSummary>,
}

/// One WebM file of a finished recording.
#[derive(Debug, Serialize)]
pub(crate) struct FileSummary {
    /// Whose file.
    participant: String,
    /// Relative to `service.recordings_dir`.
    path: String,
    /// `finalized` or `recovered`.
    state: String,
    /// Media duration.
    duration_ms: u64,
    /// `audio/opus`, `video/vp8` with their frame counts.
    tracks: Vec<TrackSummary>,
}

#[derive(Debug, Serialize)]
pub(crate) struct TrackSummary {
    name: String,
    kind: String,
    codec: String,
    frames: u64,
}

/// A stop request to a recording's owner task: why, and where to answer.
type StopRequest = (&'static str, oneshot::Sender<Outcome>);

struct Running {
    id: String,
    stop: oneshot::Sender<StopRequest>,
}

/// The recordings this instance runs.
pub(crate) struct Recordings {
    dir: Option<PathBuf>,
    running: Mutex<HashMap<String, Running>>,
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
    tasks: TaskTracker,
}

impl Recordings {
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self {
            dir,
            running: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
        }
    }

    /// The lock that orders start / stop / end of one stream's recording in this instance.
    fn lock(&self, stream: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().expect("the lock map is never poisoned");
        if let Some(l) = locks.get(stream).and_then(Weak::upgrade) {
            return l;
        }
        locks.retain(|_, l| l.strong_count() > 0);
        let l = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(stream.to_owned(), Arc::downgrade(&l));
        l
    }

    /// Recordings running in this instance.
    pub fn running_count(&self) -> usize {
        self.running
            .lock()
            .expect("the recordings map is never poisoned")
            .len()
    }

    fn take(&self, stream: &str) -> Option<Running> {
        self.running
            .lock()
            .expect("the recordings map is never poisoned")
            .remove(stream)
    }

    /// Finalize every running recording (the service is shutting down) and wait for them.
    pub async fn shutdown(&self) {
        let all: Vec<Running> = self
            .running
            .lock()
            .expect("the recordings map is never poisoned")
            .drain()
            .map(|(_, r)| r)
            .collect();
        let mut answers = Vec::new();
        for r in all {
            let (tx, rx) = oneshot::channel();
            if r.stop.send(("service shutdown", tx)).is_ok() {
                answers.push(rx);
            }
        }
        for a in answers {
            let _ = a.await;
        }
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Body of `POST /v1/streams/{id}/recording`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecordingRequest {
    action: Action,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Action {
    Start,
    Stop,
}

/// `POST /v1/streams/{id}/recording`: the stream's owner or the admin key starts or stops it.
pub(crate) async fn control(
    State(state): Shared,
    Authed(who): Authed,
    UrlPath(id): UrlPath<String>,
    JsonBody(req): JsonBody<RecordingRequest>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    use crate::streams::Access;
    let (stream, access) = crate::streams::load_for(&state, &who, &id).await?;
    crate::streams::require(access, &[Access::Owner, Access::AdminKey])?;
    match req.action {
        Action::Start => {
            let r = start(&state, &stream, &who).await?;
            Ok((StatusCode::CREATED, Json(to_json(&r))))
        }
        Action::Stop => {
            let lock = state.recordings.lock(&stream.id);
            let _held = lock.lock().await;
            match stop_locked(&state, &stream, STOPPED).await? {
                Some(f) => Ok((StatusCode::OK, Json(to_json(&f)))),
                None => Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "not_recording",
                    "the stream is not being recorded: start a recording first",
                )),
            }
        }
    }
}

fn to_json(v: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(v).expect("a recording serialises")
}

async fn start(
    state: &Arc<AppState>,
    stream: &Stream,
    who: &Principal,
) -> Result<Recording, ApiError> {
    let Some(root) = state.recordings.dir.clone() else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "recording_disabled",
            "recording is off on this service: set service.recordings_dir",
        ));
    };
    match stream.status {
        StreamStatus::Ended => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "stream_ended",
                "the stream has ended; there is nothing to record",
            ));
        }
        StreamStatus::Created => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "stream_not_live",
                "the stream has no room yet: take it live (POST /v1/streams/{id}/live) first",
            ));
        }
        StreamStatus::Ready | StreamStatus::Live => {}
    }
    crate::streams::cap(state, &stream.owner, crate::store::Owned::Recordings).await?;
    let min_free = state.settings.caps.min_free_disk;
    match free_bytes(&root) {
        Some(free) if free < min_free => {
            return Err(ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "disk_full",
                format!(
                    "only {free} bytes are free for recordings: at least {min_free} are needed \
                     to start one"
                ),
            ));
        }
        Some(_) => {}
        None => tracing::warn!(dir = %root.display(), "cannot read the free disk space"),
    }
    let lock = state.recordings.lock(&stream.id);
    let _held = lock.lock().await;
    let id = new_id("r_");
    let dir_rel = format!("{}/{id}", stream.id);
    let row = Recording {
        recorder_identity: format!("recorder-{id}"),
        manifest: format!("{dir_rel}/{}.json", stream.room),
        id,
        stream_id: stream.id.clone(),
        room: stream.room.clone(),
        state: "recording".into(),
        started_by: match who {
            Principal::AdminKey => ADMIN_KEY_STARTER.to_owned(),
            Principal::User(c) => c.user.clone(),
        },
        started_by_admin_key: who.is_admin_key(),
        started_at: now(),
        ended_at: None,
        end_reason: None,
        error: None,
    };
    if !state.store.insert_recording(&row).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_recording",
            "the stream is already being recorded: stop that recording first",
        ));
    }
    let creds = Credentials::mint(
        state.settings.keys.clone(),
        &row.recorder_identity,
        &stream.room,
        Preset::Recorder,
    );
    let options = RecorderOptions::new(
        state.settings.livekit_url.clone(),
        creds,
        root.join(&dir_rel),
    );
    let recorder = match Recorder::start(options).await {
        Ok(r) => r,
        Err(e) => {
            let message = chain(&e);
            tracing::warn!(stream = %stream.id, error = %message, "recording failed to start");
            state
                .store
                .end_recording(&row.id, "failed", now(), "could not start", Some(&message))
                .await?;
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "recording_failed",
                format!("the recorder could not start: {message}"),
            ));
        }
    };
    let mut row = row;
    if let Some(m) = relative(&root, recorder.manifest_path()) {
        if m != row.manifest {
            state.store.set_recording_manifest(&row.id, &m).await?;
        }
        row.manifest = m;
    }
    let (stop_tx, stop_rx) = oneshot::channel();
    state
        .recordings
        .running
        .lock()
        .expect("the recordings map is never poisoned")
        .insert(
            stream.id.clone(),
            Running {
                id: row.id.clone(),
                stop: stop_tx,
            },
        );
    state.recordings.tasks.spawn(own(
        Arc::downgrade(state),
        state.store.clone(),
        row.clone(),
        recorder,
        stop_rx,
        (root.clone(), min_free / 2),
    ));
    tracing::info!(stream = %stream.id, recording = %row.id, manifest = %row.manifest, "recording");
    Ok(row)
}

/// Stop `stream`'s recording (the caller holds the stream's lock). `None` when there is none.
/// A recording whose row says it runs but which no task of this instance owns (its instance
/// went away) is ended as `interrupted`, its files repaired.
pub(crate) async fn stop_locked(
    state: &AppState,
    stream: &Stream,
    reason: &'static str,
) -> Result<Option<Finished>, ApiError> {
    if let Some(running) = state.recordings.take(&stream.id) {
        let (tx, rx) = oneshot::channel();
        if running.stop.send((reason, tx)).is_ok()
            && let Ok(outcome) = rx.await
        {
            return outcome.map(Some);
        }
        // The task ended on its own just now; its row tells how.
        tracing::debug!(recording = %running.id, "recording ended before the stop");
        return Ok(None);
    }
    let Some(row) = state.store.active_recording(&stream.id).await? else {
        return Ok(None);
    };
    let Some(root) = state.recordings.dir.clone() else {
        return Ok(None);
    };
    tracing::warn!(recording = %row.id, "recording without a recorder here: repairing its files");
    let manifest = root.join(&row.manifest);
    let repaired = tokio::task::spawn_blocking(move || {
        if manifest.exists() {
            recover_dir(&manifest).map(Some)
        } else {
            Ok(None)
        }
    })
    .await
    .unwrap_or(Ok(None));
    let (m, error) = match repaired {
        Ok(m) => (m, None),
        Err(e) => (None, Some(chain(&e))),
    };
    let ended = state
        .store
        .end_recording(&row.id, "interrupted", now(), reason, error.as_deref())
        .await?;
    Ok(ended.map(|recording| Finished {
        files: m.map(|m| files(&row.manifest, &m)).unwrap_or_default(),
        recording,
    }))
}

/// Stop `stream`'s recording, if any, because the stream ends.
pub(crate) async fn stream_ends(state: &AppState, stream: &Stream) -> Result<(), ApiError> {
    let lock = state.recordings.lock(&stream.id);
    let _held = lock.lock().await;
    if let Some(f) = stop_locked(state, stream, "stream ended").await? {
        tracing::info!(stream = %stream.id, recording = %f.recording.id, "recording stopped with the stream");
    }
    Ok(())
}

/// The task that owns a running recorder.
async fn own(
    state: Weak<AppState>,
    store: Store,
    row: Recording,
    recorder: Recorder,
    mut stop: oneshot::Receiver<StopRequest>,
    (dir, floor): (PathBuf, u64),
) {
    let (reason, reply) = tokio::select! {
        () = disk_full(&dir, floor) => {
            tracing::warn!(recording = %row.id, "the disk is full: stopping the recording");
            ("disk full", None)
        }
        r = &mut stop => match r {
            Ok((reason, reply)) => (reason, Some(reply)),
            // The service dropped its side without asking: finalize anyway.
            Err(_) => ("service shutdown", None),
        },
        reason = recorder.ended() => {
            tracing::info!(recording = %row.id, %reason, "the recorder's room ended");
            ("session ended", None)
        }
    };
    let result = recorder.stop().await;
    let outcome = finish(&store, &row, reason, result).await;
    if let (Ok(f), Some(state)) = (&outcome, state.upgrade()) {
        let bytes = f
            .files
            .iter()
            .filter_map(|file| std::fs::metadata(dir.join(&file.path)).ok())
            .map(|m| m.len())
            .sum();
        state.metrics.recording_written(bytes);
    }
    let reply = match reply {
        Some(r) => Some(r),
        None => {
            // Ended by itself: leave the map (unless a stop is already on its way to us).
            if let Some(state) = state.upgrade() {
                let mut running = state
                    .recordings
                    .running
                    .lock()
                    .expect("the recordings map is never poisoned");
                if running.get(&row.stream_id).is_some_and(|r| r.id == row.id) {
                    running.remove(&row.stream_id);
                }
            }
            stop.try_recv().ok().map(|(_, reply)| reply)
        }
    };
    if let Some(reply) = reply {
        let _ = reply.send(outcome);
    }
}

async fn finish(
    store: &Store,
    row: &Recording,
    reason: &str,
    result: Result<Manifest, RecordError>,
) -> Outcome {
    let (state, error, files_of) = match &result {
        Ok(m) => ("stopped", None, files(&row.manifest, m)),
        Err(e) => ("failed", Some(chain(e)), Vec::new()),
    };
    match &error {
        None => {
            tracing::info!(recording = %row.id, reason, files = files_of.len(), "recording finalized")
        }
        Some(e) => {
            tracing::warn!(recording = %row.id, error = %e, "recording could not be finalized")
        }
    }
    let recording = store
        .end_recording(&row.id, state, now(), reason, error.as_deref())
        .await?
        .unwrap_or_else(|| row.clone());
    Ok(Finished {
        recording,
        files: files_of,
    })
}

/// Completes when fewer than `floor` bytes (and at least when none) are free under `dir`
/// (checked every 2 s). Until then a recorder that meets a full disk loses the clusters it
/// cannot write and keeps its files whole (`wavecast_media::webm`), so the stop that follows
/// still finalizes them.
async fn disk_full(dir: &Path, floor: u64) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        if free_bytes(dir).is_some_and(|free| free < floor.max(1)) {
            return;
        }
    }
}

/// Free bytes (for unprivileged users) on the file system of `dir`, or of its nearest existing
/// ancestor (the directory is created when the first recording starts).
fn free_bytes(dir: &Path) -> Option<u64> {
    let mut d = Some(dir);
    while let Some(p) = d {
        if p.exists() {
            let s = nix::sys::statvfs::statvfs(p).ok()?;
            // Both are 32 bits wide on some targets.
            #[allow(clippy::useless_conversion)]
            let (blocks, size) = (
                u64::from(s.blocks_available()),
                u64::from(s.fragment_size()),
            );
            return Some(blocks.saturating_mul(size));
        }
        d = p.parent();
    }
    None
}

/// The files a manifest lists, with paths relative to the recordings directory.
fn files(manifest_rel: &str, m: &Manifest) -> Vec<FileSummary> {
    let dir = Path::new(manifest_rel)
        .parent()
        .unwrap_or(Path::new(""))
        .to_path_buf();
    m.files()
        .map(|(p, f)| FileSummary {
            participant: p.identity.clone(),
            path: dir.join(&f.path).display().to_string(),
            state: f.state.clone(),
            duration_ms: f.duration_ms,
            tracks: f
                .tracks
                .iter()
                .map(|t| TrackSummary {
                    name: t.name.clone(),
                    kind: t.kind.clone(),
                    codec: t.codec.clone(),
                    frames: t.frames,
                })
                .collect(),
        })
        .collect()
}

fn relative(root: &Path, path: &Path) -> Option<String> {
    path.strip_prefix(root)
        .ok()
        .map(|p| p.display().to_string())
}
