//! `wavecast serve`: a token service for LiveKit with an access policy in a real database,
//! verified webhooks and a stream lifecycle.
//!
//! Callers present a bearer JWT from the application's own login (HS256 secret, or RS256 /
//! ES256 public key; issuer and audience checked) and get LiveKit tokens only as far as their
//! grants allow: `POST /v1/token {"room": …}` answers `{token, url, expires_at, …}` with the
//! grant's role preset and a lifetime no longer than the grant has left, or 403 with the reason
//! (no grant, expired, revoked, not yet valid). Grants (user or group → room or `prefix*` → role,
//! with not-before, expires-at and revoked-at) live in SQLite or PostgreSQL and are managed
//! through the admin endpoints ([`AdminClient`], `wavecast grant`). LiveKit's webhooks update
//! the stream state, each event stored once.
//!
//! Serve with the settings from the layered configuration (`[service]` section):
//!
//! ```no_run
//! use wavecast_service::{Service, Settings, Store};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = wavecast_config::Loader::new().load()?;
//! let settings = Settings::from_config(&config)?;
//! let store = Store::connect(&settings.database).await?; // applies the migrations
//! let listener = tokio::net::TcpListener::bind(settings.listen).await?;
//! Service::new(settings, store)
//!     .serve(listener, async { let _ = tokio::signal::ctrl_c().await; })
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Or take the [`axum::Router`] from [`Service::router`] and nest it in an application's own.
//!
//! # Endpoints
//! | method and path | who | what |
//! |---|---|---|
//! | `POST /v1/token` | caller | `{room, role?, name?}` → `{token, url, expires_at, room, identity, role, grant}` |
//! | `POST /v1/streams` | caller | `{name, metadata?, max_participants?}` → the stream (owner = caller) |
//! | `POST /v1/streams/{id}/live` | owner | creates the LiveKit room, returns a broadcaster token (caps: live streams per caller) |
//! | `POST /v1/streams/{id}/end` | owner | ends: removes participants, deletes the room, no more tokens |
//! | `POST /v1/streams/{id}/recording` | owner or admin key | `{"action": "start" \| "stop"}`: the room recorder of `wavecast-stream`, in-process, into `service.recordings_dir` (cargo feature `recording`, default; without it 501 `recording_not_built`) |
//! | `GET /v1/streams/{id}` | owner, admin key, or a grant for its room (else 404) | status, `live`, `viewer_count`, participants (webhooks) and `server_participants` (server API) |
//! | `POST /v1/admin/grants` | admin key | `{user or group, room, role, not_before?, expires_at?}` |
//! | `GET /v1/admin/grants` | admin key | `?user=` / `?group=`, `&limit=` |
//! | `POST /v1/admin/grants/{id}/revoke` | admin key | marks it revoked, waits for mints in flight, removes whom it admitted |
//! | `GET /v1/admin/events` | admin key | stored webhook events with their follow-ups, `?room=` |
//! | `GET /metrics` | admin key | Prometheus text |
//! | `GET /healthz` | none | `SELECT 1` |
//! | `POST /v1/livekit/webhook` | LiveKit | signed events (sha256 of the body in the JWT) |
//!
//! Every request is authenticated (as a [`auth::Principal`]: the admin key, or a user) and
//! rate-limited before its body is read. Errors are JSON `{"error": code, "message": …}` with a
//! 4xx status for anything the caller can fix: 400 malformed JSON or bad names, 401 bad
//! credentials, 403 refused by policy or a cap, 404 (also for a stream the caller may not see),
//! 408 headers or body too slow (or a connection idle for the header timeout), 413 body too
//! large, 415 not JSON, 422 unknown or mistyped fields, 429 over the per-caller rate limit; 503
//! when too many requests are in flight.
//!
//! # Design
//! The policy decision is a pure function ([`policy::decide`]) of the caller's grants and the
//! time; the database only stores. Queries are built at run time with bound parameters (never
//! string-spliced values) through sqlx's `Any` driver, so one set of migrations and one code path
//! serve SQLite and PostgreSQL, and building needs no database. Secrets (LiveKit secret, caller
//! key, admin key) are redacted in `Debug`, never logged, and never in error messages.
#![deny(missing_docs)]

mod api;
pub mod auth;
mod body;
pub mod cli;
mod client;
mod error;
mod followup;
mod guard;
mod metrics;
pub mod policy;
#[cfg(feature = "recording")]
mod recording;
#[cfg(not(feature = "recording"))]
#[path = "recording_off.rs"]
mod recording;
mod settings;
pub mod store;
mod streams;
mod timeout;
mod webhook;

use std::future::Future;
use std::sync::Arc;

pub use api::NewGrant;
pub use client::{AdminClient, ClientError};
pub use error::ServiceError;
pub use settings::{Bounds, Caps, Settings};
pub use store::Store;

/// One service instance: settings, storage and the LiveKit clients, shared by its handlers.
#[derive(Clone)]
pub struct Service {
    state: Arc<api::AppState>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("settings", &self.state.settings)
            .finish_non_exhaustive()
    }
}

/// Install rustls' ring provider as the process default if none is (the LiveKit server API
/// client and [`AdminClient`] speak HTTPS through rustls without a provider of their own).
pub fn ensure_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Service {
    /// A service over `store` (already migrated by [`Store::connect`]).
    pub fn new(settings: Settings, store: Store) -> Self {
        ensure_crypto_provider();
        Self {
            state: Arc::new(api::AppState::new(settings, store)),
        }
    }

    /// The HTTP API as an axum router (state attached).
    pub fn router(&self) -> axum::Router {
        api::router(self.state.clone())
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Finalize every recording this instance runs (each ends `stopped`, reason `service
    /// shutdown`) and wait for them. [`Service::serve`] does this when it stops; call it when
    /// serving [`Service::router`] some other way.
    pub async fn stop_recordings(&self) {
        self.state.recordings.shutdown().await;
    }

    /// Serve on `listener` until `shutdown` completes; then stop accepting, let the requests in
    /// flight finish for at most [`Bounds::shutdown_grace`] (slow clients are dropped after
    /// it), and finalize the recordings ([`Service::stop_recordings`]).
    ///
    /// Each connection is HTTP/1.1 with [`Bounds::header_timeout`] for its headers (and as the
    /// idle timeout between requests), after which it is answered `408 request_timeout` and
    /// closed; at most [`Bounds::max_connections`] are open at once.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServiceError> {
        let addr = listener.local_addr().ok();
        tracing::info!(?addr, "wavecast service listening");
        let bounds = self.state.settings.bounds.clone();
        let app = self.router();
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(bounds.header_timeout)
            .max_buf_size(64 * 1024);
        let slots = Arc::new(tokio::sync::Semaphore::new(bounds.max_connections.max(1)));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let worker = tokio::spawn(followup::worker(self.state.clone(), stop_rx.clone()));
        let mut connections = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            while connections.try_join_next().is_some() {}
            let slot = tokio::select! {
                s = slots.clone().acquire_owned() => s.expect("the semaphore is never closed"),
                () = &mut shutdown => break,
            };
            let stream = tokio::select! {
                r = listener.accept() => match r {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            let mut conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let mut stop = stop_rx.clone();
            let header_timeout = bounds.header_timeout;
            connections.spawn(async move {
                let _slot = slot;
                let ended = tokio::select! {
                    r = &mut conn => r,
                    () = async { let _ = stop.wait_for(|s| *s).await; } => {
                        std::pin::Pin::new(&mut conn).graceful_shutdown();
                        (&mut conn).await
                    }
                };
                match ended {
                    Ok(()) => {}
                    // hyper's header timeout ends the connection without a word: answer it here.
                    Err(e) if e.is_timeout() => {
                        let parts = conn.into_parts();
                        let partial = !parts.read_buf.is_empty();
                        timeout::answer_408(parts.io.into_inner(), partial, header_timeout).await;
                    }
                    Err(e) => tracing::debug!(error = %e, "connection ended"),
                }
            });
        }
        drop(listener);
        let _ = stop_tx.send(true);
        let open = connections.len();
        let drained = tokio::time::timeout(bounds.shutdown_grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                left = connections.len(),
                of = open,
                grace = ?bounds.shutdown_grace,
                "shutdown: stopped waiting for slow clients"
            );
            connections.shutdown().await;
        }
        let _ = worker.await;
        self.stop_recordings().await;
        Ok(())
    }
}
