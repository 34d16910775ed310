//! The first thing every request meets: who is calling, and may they now.
//!
//! [`guard`] runs before any body is read (the body is buffered by [`crate::body::bounded`],
//! which runs after it): it finds what the matched route needs ([`Needs`]), authenticates the
//! bearer as a [`Principal`] (the admin key, or a user from a verified login JWT), applies the
//! principal's rate limit, and only then lets the request on, with the principal in the
//! request's extensions for the handlers ([`Authed`], [`User`]). A refused request's body is never
//! parsed: it is read and thrown away (bounded in bytes and time) only so that the refusal reaches
//! the client before the socket closes (see `body.rs`).

use std::sync::Arc;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::{ApiError, AppState, WEBHOOK_PATH, bearer};
use crate::auth::{Caller, Principal};

/// What a route needs of its caller before its body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Needs {
    /// Nothing (`/healthz`, paths no route matches).
    Nothing,
    /// A LiveKit webhook signature (the JWT is checked here, the body's sha256 by the handler).
    Signature,
    /// A login JWT.
    User,
    /// A login JWT or the admin key.
    UserOrAdminKey,
    /// The admin key.
    AdminKey,
}

/// What the route (axum's matched path pattern) needs. Fails closed: a route not named here
/// needs a login JWT; only requests no route matched (answered 404) need nothing.
pub(crate) fn needs(route: Option<&str>) -> Needs {
    match route {
        None | Some("/healthz") => Needs::Nothing,
        Some(WEBHOOK_PATH) => Needs::Signature,
        Some(p) if p.starts_with("/v1/admin/") || p == "/metrics" => Needs::AdminKey,
        Some("/v1/streams/{id}" | "/v1/streams/{id}/recording") => Needs::UserOrAdminKey,
        Some(_) => Needs::User,
    }
}

fn unauthenticated(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
}

/// The principal behind the request's bearer, as far as `needs` admits it.
pub(crate) fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    needs: Needs,
) -> Result<Principal, ApiError> {
    let token = bearer(headers);
    if matches!(needs, Needs::AdminKey | Needs::UserOrAdminKey)
        && let (Some(key), Some(t)) = (&state.settings.admin_key, token)
        && key.matches(t)
    {
        return Ok(Principal::AdminKey);
    }
    if needs == Needs::AdminKey {
        return Err(if state.settings.admin_key.is_none() {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "admin_disabled",
                "admin endpoints are disabled: set service.admin_key",
            )
        } else {
            unauthenticated("admin endpoints need Authorization: Bearer <service.admin_key>")
        });
    }
    let token =
        token.ok_or_else(|| unauthenticated("send Authorization: Bearer <JWT from your login>"))?;
    state
        .settings
        .caller_auth
        .verify(token)
        .map(Principal::User)
        .map_err(|e| unauthenticated(e.0))
}

/// Apply `principal`'s rate limit: 429 with `Retry-After` when it is over.
pub(crate) fn rate_limit(state: &AppState, principal: &Principal) -> Result<(), ApiError> {
    let limiter = &state.limiter;
    if limiter.len() > 100_000 {
        limiter.retain_recent();
    }
    if let Err(not_until) = limiter.check_key(&principal.rate_key()) {
        let wait = not_until.wait_time_from(governor::clock::Clock::now(
            &governor::clock::DefaultClock::default(),
        ));
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "too many requests from {principal}: at most {} per minute (burst {})",
                state.settings.rate_per_minute, state.settings.rate_burst
            ),
        );
        e.retry_after = Some(wait.as_secs().max(1));
        return Err(e);
    }
    Ok(())
}

/// Middleware: authenticate and rate-limit before the body is read (see the module docs).
pub(crate) async fn guard(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let limit = state.settings.max_body_bytes;
    // Held until the answer is made (the body, when read, is read under it).
    let Ok(_slot) = state.in_flight.clone().try_acquire_owned() else {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            format!(
                "the service is handling {} requests already; try again shortly",
                state.settings.bounds.max_in_flight
            ),
        );
        e.retry_after = Some(1);
        return crate::body::refuse_unread(req, limit, e.into_response()).await;
    };
    let needs = needs(
        req.extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
    );
    tracing::debug!(path = %req.uri().path(), ?needs, free = state.in_flight.available_permits(), "guard");
    let checked = match needs {
        Needs::Nothing => return next.run(req).await,
        Needs::Signature => crate::webhook::check_signature(&state, req.headers()).map(|()| None),
        n => authenticate(&state, req.headers(), n)
            .and_then(|p| rate_limit(&state, &p).map(|()| Some(p))),
    };
    match checked {
        Ok(principal) => {
            if let Some(p) = principal {
                req.extensions_mut().insert(p);
            }
            next.run(req).await
        }
        Err(e) => crate::body::refuse_unread(req, limit, e.into_response()).await,
    }
}

/// The authenticated principal of a request (routes that need [`Needs::UserOrAdminKey`] or
/// [`Needs::AdminKey`]).
pub(crate) struct Authed(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Authed)
            .ok_or_else(|| unauthenticated("this endpoint needs a bearer token"))
    }
}

/// The authenticated user of a request (routes that need [`Needs::User`]).
pub(crate) struct User(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Principal>() {
            Some(Principal::User(c)) => Ok(User(c.clone())),
            _ => Err(unauthenticated(
                "send Authorization: Bearer <JWT from your login>",
            )),
        }
    }
}

/// Proof that the admin key authenticated the request (the admin endpoints).
pub(crate) struct AdminOnly;

impl<S: Send + Sync> FromRequestParts<S> for AdminOnly {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Principal>() {
            Some(Principal::AdminKey) => Ok(AdminOnly),
            _ => Err(unauthenticated(
                "admin endpoints need Authorization: Bearer <service.admin_key>",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_but_health_and_unknown_paths_needs_a_credential() {
        for (route, want) in [
            ("/healthz", Needs::Nothing),
            ("/v1/token", Needs::User),
            ("/v1/streams", Needs::User),
            ("/v1/streams/{id}", Needs::UserOrAdminKey),
            ("/v1/streams/{id}/live", Needs::User),
            ("/v1/streams/{id}/end", Needs::User),
            ("/v1/streams/{id}/recording", Needs::UserOrAdminKey),
            ("/v1/admin/grants", Needs::AdminKey),
            ("/v1/admin/grants/{id}/revoke", Needs::AdminKey),
            ("/v1/admin/events", Needs::AdminKey),
            ("/metrics", Needs::AdminKey),
            (WEBHOOK_PATH, Needs::Signature),
            ("/v1/some/future/route", Needs::User),
        ] {
            assert_eq!(needs(Some(route)), want, "{route}");
        }
        assert_eq!(needs(None), Needs::Nothing);
    }
}
