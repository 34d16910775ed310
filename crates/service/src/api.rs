//! The HTTP API: shared state, JSON errors, extractors, the token and admin endpoints.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, extract::DefaultBodyLimit, middleware, routing::get, routing::post};
use governor::{Quota, RateLimiter};
use livekit_api::webhooks::WebhookReceiver;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use wavecast_token::TokenBuilder;

use crate::auth::Caller;
use crate::guard::{AdminOnly, User};
use crate::policy::{self, Grant, Role, Subject};
use crate::settings::Settings;
use crate::store::Store;

/// Largest webhook body accepted (LiveKit's events are a few KiB).
const WEBHOOK_BODY_LIMIT: usize = 1024 * 1024;
/// Where LiveKit posts its webhooks.
pub(crate) const WEBHOOK_PATH: &str = "/v1/livekit/webhook";
/// Timeout of each call to the LiveKit server API.
pub(crate) const LIVEKIT_TIMEOUT: Duration = Duration::from_secs(5);

type Limiter = RateLimiter<
    String,
    governor::state::keyed::DefaultKeyedStateStore<String>,
    governor::clock::DefaultClock,
>;

/// State shared by all handlers.
pub(crate) struct AppState {
    pub settings: Settings,
    pub store: Store,
    pub rooms: wavecast_server_api::RoomAdmin,
    pub webhooks: WebhookReceiver,
    /// Checks a webhook's signing JWT before its body is read (the receiver checks both).
    pub webhook_tokens: livekit_api::access_token::TokenVerifier,
    pub recordings: crate::recording::Recordings,
    pub limiter: Limiter,
    /// Requests being handled ([`crate::Bounds::max_in_flight`]).
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// Mints hold it shared from reading grants to answering; a revoke takes it exclusively
    /// once (after its commit) to wait for them.
    pub revocations: tokio::sync::RwLock<()>,
    /// `GET /metrics`.
    pub metrics: crate::metrics::Metrics,
}

impl AppState {
    pub fn new(settings: Settings, store: Store) -> Self {
        let rooms = wavecast_server_api::RoomAdmin::new(
            &settings.livekit_url,
            &settings.keys,
            LIVEKIT_TIMEOUT,
        );
        let webhook_tokens = livekit_api::access_token::TokenVerifier::with_api_key(
            settings.keys.key(),
            settings.keys.secret(),
        );
        let webhooks = WebhookReceiver::new(webhook_tokens.clone());
        let per_minute = NonZeroU32::new(settings.rate_per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(settings.rate_burst).unwrap_or(NonZeroU32::MIN);
        let limiter = RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst));
        let recordings = crate::recording::Recordings::new(settings.recordings_dir.clone());
        let in_flight = Arc::new(tokio::sync::Semaphore::new(
            settings.bounds.max_in_flight.max(1),
        ));
        Self {
            in_flight,
            revocations: tokio::sync::RwLock::new(()),
            metrics: crate::metrics::Metrics::default(),
            settings,
            store,
            rooms,
            webhooks,
            webhook_tokens,
            recordings,
            limiter,
        }
    }
}

pub(crate) type Shared = State<Arc<AppState>>;

/// The router with every endpoint, the body limit and the JSON fallback.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let limits = crate::body::BodyLimits {
        default: state.settings.max_body_bytes,
        special_path: WEBHOOK_PATH,
        special: WEBHOOK_BODY_LIMIT,
        timeout: state.settings.bounds.body_timeout,
    };
    Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(crate::metrics::scrape))
        .route("/v1/token", post(token))
        .route("/v1/streams", post(crate::streams::create))
        .route("/v1/streams/{id}", get(crate::streams::get))
        .route("/v1/streams/{id}/live", post(crate::streams::go_live))
        .route("/v1/streams/{id}/end", post(crate::streams::end))
        .route(
            "/v1/streams/{id}/recording",
            post(crate::recording::control),
        )
        .route("/v1/admin/grants", post(add_grant).get(list_grants))
        .route("/v1/admin/grants/{id}/revoke", post(revoke_grant))
        .route("/v1/admin/events", get(list_events))
        .route(WEBHOOK_PATH, post(crate::webhook::receive))
        .fallback(not_found)
        // Bodies are limited (and over-long ones drained) by `body::bounded`, which hands
        // handlers an already-buffered body; axum's own limit would only repeat it.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn(move |req, next| {
            crate::body::bounded(limits, req, next)
        }))
        // Then, first: who calls, and may they now — before any body is read.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::guard::guard,
        ))
        // Outermost: every request counted and timed, refusals included.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .with_state(state)
}

/// An error answer: status, a stable code and a message, as JSON.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such {what}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody {
            error: self.code,
            message: &self.message,
        });
        let mut r = (self.status, body).into_response();
        r.extensions_mut()
            .insert(crate::metrics::ErrorCode(self.code));
        if let Some(s) = self.retry_after
            && let Ok(v) = s.to_string().parse()
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}

impl From<crate::ServiceError> for ApiError {
    fn from(e: crate::ServiceError) -> Self {
        tracing::error!(error = %crate::error::chain(&e), "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage_error",
            "the service could not reach its database; try again",
        )
    }
}

/// A JSON request body: `application/json`, within the body limit, and exactly the fields of
/// `T` (unknown fields are refused). Every failure is a JSON 4xx.
pub(crate) struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.trim_start().starts_with("application/json"));
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        // The body is already buffered and bounded by `body::bounded`.
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| ApiError::new(r.status(), "bad_body", r.body_text()))?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            use serde_json::error::Category;
            match e.classify() {
                Category::Data => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_field",
                    format!("the JSON body does not fit: {e}"),
                ),
                _ => ApiError::bad_request(
                    "malformed_json",
                    format!("the body is not valid JSON: {e}"),
                ),
            }
        })
    }
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

pub(crate) fn now() -> i64 {
    i64::try_from(wavecast_token::unix_now()).unwrap_or(i64::MAX)
}

pub(crate) fn new_id(prefix: &str) -> String {
    let bytes: [u8; 12] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

/// A minted LiveKit token and where to use it.
#[derive(Debug, Serialize)]
pub(crate) struct Minted {
    pub token: String,
    pub url: String,
    pub expires_at: i64,
    pub room: String,
    pub identity: String,
    pub role: Role,
}

/// The participant attribute that names the grant a token was minted from (LiveKit copies a
/// token's attributes into the participant; a revoke finds whom a grant admitted by it).
pub(crate) const GRANT_ATTRIBUTE: &str = "wavecast.grant";

pub(crate) fn mint(
    state: &AppState,
    caller: &Caller,
    room: &str,
    role: Role,
    name: Option<&str>,
    ttl: Duration,
    grant: Option<&str>,
) -> Result<Minted, ApiError> {
    let mut b = TokenBuilder::new(&caller.user)
        .room(room)
        .grants(role.grants(room))
        .ttl(ttl);
    if let Some(n) = name {
        b = b.name(n);
    }
    if let Some(g) = grant {
        b = b.attribute(GRANT_ATTRIBUTE, g);
    }
    let token = b.mint(&state.settings.keys).map_err(|e| {
        tracing::error!(error = %e, "minting failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "mint_failed",
            "the service could not sign a token",
        )
    })?;
    Ok(Minted {
        token,
        url: state.settings.public_url.clone(),
        expires_at: now() + i64::try_from(ttl.as_secs()).unwrap_or(0),
        room: room.to_owned(),
        identity: caller.user.clone(),
        role,
    })
}

/// `GET /healthz`: cheap — one trivial query (`SELECT 1`, no table read) within a second.
async fn health(State(state): Shared) -> Result<Json<serde_json::Value>, ApiError> {
    match tokio::time::timeout(Duration::from_secs(1), state.store.ping()).await {
        Ok(Ok(())) => Ok(Json(serde_json::json!({"ok": true}))),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health check: the database does not answer");
            Err(storage_unavailable())
        }
        Err(_) => Err(storage_unavailable()),
    }
}

fn storage_unavailable() -> ApiError {
    let mut e = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
        "the service's database does not answer",
    );
    e.retry_after = Some(1);
    e
}

async fn not_found() -> ApiError {
    ApiError::not_found("endpoint")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenRequest {
    room: String,
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Serialize)]
struct TokenResponse {
    #[serde(flatten)]
    minted: Minted,
    grant: String,
}

async fn token(
    State(state): Shared,
    User(caller): User,
    JsonBody(req): JsonBody<TokenRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    policy::check_room(&req.room).map_err(|m| ApiError::bad_request("invalid_room", m))?;
    if let Some(n) = &req.name
        && (n.len() > 128 || n.chars().any(char::is_control))
    {
        return Err(ApiError::bad_request(
            "invalid_name",
            "name must be at most 128 bytes without control characters",
        ));
    }
    // Held from reading the grants until the token is answered: a revoke in this instance
    // waits for the mints in flight before it answers (no token after the revoke's answer).
    let mints = state.revocations.read().await;
    // One round trip reads the grants and whether the room's stream has ended; the re-check
    // after signing is the second and last.
    let view = state
        .store
        .mint_view(&req.room, &caller.user, &caller.groups)
        .await?;
    if let Some(id) = view.ended_stream {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "stream_ended",
            format!("stream {id} has ended; its room takes no one"),
        ));
    }
    let t = now();
    let grant = policy::decide(&view.grants, &req.room, req.role, t).map_err(|r| {
        tracing::info!(user = %caller.user, room = %req.room, reason = r.code(), "token refused");
        ApiError::new(StatusCode::FORBIDDEN, r.code(), r.to_string())
    })?;
    let mut ttl = state.settings.max_token_ttl;
    if let Some(exp) = grant.expires_at {
        let left = u64::try_from(exp - t).unwrap_or(0);
        ttl = ttl.min(Duration::from_secs(left));
    }
    let minted = mint(
        &state,
        &caller,
        &req.room,
        grant.role,
        req.name.as_deref(),
        ttl,
        Some(&grant.id),
    )?;
    // Re-check after signing: a revoke that committed meanwhile wins (and within this instance
    // the revoke waits for this mint: see `revoke_grant`).
    if let Some(now_grant) = state.store.grant(&grant.id).await?
        && let Some(r) = now_grant.refusal_at(now())
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            r.code(),
            r.to_string(),
        ));
    }
    drop(mints);
    state.metrics.token_minted();
    tracing::debug!(user = %caller.user, room = %req.room, role = %grant.role, "token issued");
    Ok(Json(TokenResponse {
        minted,
        grant: grant.id.clone(),
    }))
}

/// Body of `POST /v1/admin/grants`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    /// The user (exactly one of `user` and `group`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The group (exactly one of `user` and `group`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Room name or pattern (`prefix*`, `*`).
    pub room: String,
    /// Role.
    pub role: Role,
    /// Unix seconds before which the grant does not apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<i64>,
    /// Unix seconds from which it no longer applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

async fn add_grant(
    State(state): Shared,
    _: AdminOnly,
    JsonBody(req): JsonBody<NewGrant>,
) -> Result<(StatusCode, Json<Grant>), ApiError> {
    let subject = match (req.user, req.group) {
        (Some(u), None) => Subject::User(u),
        (None, Some(g)) => Subject::Group(g),
        _ => {
            return Err(ApiError::bad_request(
                "invalid_subject",
                "give exactly one of user and group",
            ));
        }
    };
    policy::check_subject(subject.name())
        .map_err(|m| ApiError::bad_request("invalid_subject", m))?;
    policy::check_pattern(&req.room).map_err(|m| ApiError::bad_request("invalid_room", m))?;
    if let (Some(nb), Some(exp)) = (req.not_before, req.expires_at)
        && nb >= exp
    {
        return Err(ApiError::bad_request(
            "invalid_window",
            "not_before must be earlier than expires_at",
        ));
    }
    let grant = Grant {
        id: new_id("g_"),
        subject,
        room: req.room,
        role: req.role,
        not_before: req.not_before,
        expires_at: req.expires_at,
        revoked_at: None,
        created_at: now(),
    };
    state.store.insert_grant(&grant).await?;
    tracing::info!(grant = %grant.id, subject = grant.subject.name(), room = %grant.room, role = %grant.role, "grant added");
    Ok((StatusCode::CREATED, Json(grant)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantQuery {
    user: Option<String>,
    group: Option<String>,
    limit: Option<u32>,
}

async fn list_grants(
    State(state): Shared,
    _: AdminOnly,
    q: Result<Query<GrantQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<Grant>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let subject = match (q.user, q.group) {
        (Some(u), None) => Some(Subject::User(u)),
        (None, Some(g)) => Some(Subject::Group(g)),
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_request(
                "invalid_subject",
                "filter by user or by group, not both",
            ));
        }
    };
    if let Some(s) = &subject {
        policy::check_subject(s.name()).map_err(|m| ApiError::bad_request("invalid_subject", m))?;
    }
    let limit = q.limit.unwrap_or(1000).min(10_000);
    Ok(Json(
        state.store.list_grants(subject.as_ref(), limit).await?,
    ))
}

async fn revoke_grant(
    State(state): Shared,
    _: AdminOnly,
    Path(id): Path<String>,
) -> Result<Json<Revoked>, ApiError> {
    // Ids are `g_` and hex: anything else names no grant (and never reaches the database,
    // where PostgreSQL refuses some bytes, NUL among them, with an error).
    if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(ApiError::not_found("grant"));
    }
    let Some(grant) = state.store.revoke_grant(&id, now()).await? else {
        return Err(ApiError::not_found("grant"));
    };
    // Wait for the mints in flight in this instance (they read the grant before the revoke);
    // every later mint reads it revoked, and mints re-check after signing.
    drop(state.revocations.write().await);
    tracing::info!(grant = %grant.id, "grant revoked");
    // Evict whom it admitted: a follow-up (retried while LiveKit does not answer), tried now.
    let t = now();
    let queued = state
        .store
        .queue_followup(
            &format!("revoke:{}", grant.id),
            "evict_grant",
            &grant.id,
            t,
            t + crate::followup::FIRST_ATTEMPT_SECS,
        )
        .await?;
    let due = crate::store::DueFollowup {
        event_id: format!("revoke:{}", grant.id),
        action: "evict_grant".into(),
        room: grant.id.clone(),
        attempts: 0,
    };
    let evicted = if queued {
        crate::followup::attempt(&state, &due).await
    } else {
        None
    };
    Ok(Json(Revoked {
        grant,
        evicted: evicted.unwrap_or_default(),
    }))
}

/// Answer of a revoke: the grant, and the participants it had admitted who were removed.
#[derive(Serialize)]
struct Revoked {
    #[serde(flatten)]
    grant: Grant,
    /// `room/identity` of each participant removed now (an eviction LiveKit refused now is
    /// retried; see the `revoke:<id>` follow-up).
    evicted: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventQuery {
    room: Option<String>,
    limit: Option<u32>,
}

async fn list_events(
    State(state): Shared,
    _: AdminOnly,
    q: Result<Query<EventQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<crate::store::StoredEvent>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    if let Some(r) = &q.room {
        policy::check_room(r).map_err(|m| ApiError::bad_request("invalid_room", m))?;
    }
    let limit = q.limit.unwrap_or(1000).min(10_000);
    Ok(Json(state.store.events(q.room.as_deref(), limit).await?))
}
