//! Stream recording when the service is built without the `recording` feature: the route
//! answers 501 `recording_not_built`, and a stream that ends closes a recording row another
//! instance (one built with the recorder) left open, as `interrupted` — its files are not
//! repaired here, since that needs the recorder.

use std::path::PathBuf;

use axum::http::StatusCode;

use crate::api::{ApiError, AppState, now};
use crate::store::Stream;

/// No recordings run in this build; `dir` is kept to say so once at start.
pub(crate) struct Recordings;

impl Recordings {
    pub fn new(dir: Option<PathBuf>) -> Self {
        if let Some(dir) = dir {
            tracing::warn!(
                dir = %dir.display(),
                "service.recordings_dir is set, but this build has no recorder (cargo feature \
                 `recording`): recording requests are refused"
            );
        }
        Self
    }

    /// Recordings running in this instance: none without the recorder.
    pub fn running_count(&self) -> usize {
        0
    }

    /// Nothing to finalize.
    pub async fn shutdown(&self) {}
}

/// `POST /v1/streams/{id}/recording` in a build without the recorder.
pub(crate) async fn control() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "recording_not_built",
        "this service was built without the recorder (cargo feature `recording`)",
    )
}

/// Close `stream`'s open recording row (left by an instance with the recorder), if any.
pub(crate) async fn stream_ends(state: &AppState, stream: &Stream) -> Result<(), ApiError> {
    if let Some(row) = state.store.active_recording(&stream.id).await? {
        state
            .store
            .end_recording(
                &row.id,
                "interrupted",
                now(),
                "stream ended",
                Some("this instance has no recorder to repair the files"),
            )
            .await?;
    }
    Ok(())
}
