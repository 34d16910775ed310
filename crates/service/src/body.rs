//! Request bodies are read whole, up to a limit, before any handler runs.
//!
//! Why not axum's `DefaultBodyLimit` alone: it refuses a long body without reading it, and the
//! HTTP server then closes a socket that still holds unread bytes. The kernel answers that with a
//! TCP reset, which can destroy the `413` on its way to the client — the client sees "connection
//! reset" or "incomplete message" instead of the error that names the problem (seen in CI). So a
//! body over the limit is read on and thrown away, up to [`DRAIN_LIMIT`] bytes and for at most
//! [`DRAIN_TIME`], and only then answered with `413 body_too_large`; the connection stays usable.
//! A body declared longer than [`DRAIN_LIMIT`] is refused at once and the connection closed.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use crate::api::ApiError;

/// Most bytes of an over-long body read (and discarded) so that its `413` arrives intact.
pub(crate) const DRAIN_LIMIT: usize = 4 * 1024 * 1024;
/// Longest time spent discarding an over-long body.
pub(crate) const DRAIN_TIME: Duration = Duration::from_secs(5);

/// The limits of one router: the default and the one exception (LiveKit's webhooks).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimits {
    /// Limit of every endpoint but `special_path`.
    pub default: usize,
    /// The path with its own limit.
    pub special_path: &'static str,
    /// That path's limit.
    pub special: usize,
    /// Longest time to receive a whole body (then 408).
    pub timeout: Duration,
}

impl BodyLimits {
    fn for_path(&self, path: &str) -> usize {
        if path == self.special_path {
            self.special
        } else {
            self.default
        }
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the request body is too large: at most {limit} bytes"),
    )
}

fn too_slow(timeout: Duration) -> Response {
    let mut r = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        format!(
            "the request body did not arrive within {}",
            humantime::format_duration(timeout)
        ),
    )
    .into_response();
    r.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    r
}

/// Middleware: buffer the body (at most the path's limit) and hand it to the handler, or answer
/// `413` after draining an over-long body (see the module docs).
pub(crate) async fn bounded(limits: BodyLimits, req: Request, next: Next) -> Response {
    let limit = limits.for_path(req.uri().path());
    let declared = declared_length(req.headers());
    if declared.is_some_and(|n| n > DRAIN_LIMIT as u64) {
        let mut r = too_large(limit).into_response();
        r.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        return r;
    }
    let (parts, body) = req.into_parts();
    let capacity = declared.map_or(0, |n| (n as usize).min(limit));
    let mut buf = Vec::with_capacity(capacity);
    let mut stream = body.into_data_stream();
    let deadline = tokio::time::Instant::now() + limits.timeout;
    loop {
        let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(_) => return too_slow(limits.timeout),
        };
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                return ApiError::bad_request(
                    "bad_body",
                    format!("the request body could not be read: {e}"),
                )
                .into_response();
            }
        };
        if buf.len() + chunk.len() > limit {
            drain(buf.len() + chunk.len(), &mut stream).await;
            return too_large(limit).into_response();
        }
        buf.extend_from_slice(&chunk);
    }
    next.run(Request::from_parts(parts, Body::from(Bytes::from(buf))))
        .await
}

/// Read and discard the rest of a body, bounded in bytes and time.
async fn drain(mut seen: usize, stream: &mut axum::body::BodyDataStream) {
    let deadline = tokio::time::Instant::now() + DRAIN_TIME;
    while seen <= DRAIN_LIMIT {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(chunk))) => seen += chunk.len(),
            _ => return,
        }
    }
}

/// Longest time spent discarding the body of a refused request.
const REFUSED_DRAIN_TIME: Duration = Duration::from_secs(1);

/// Answer `response` to a request refused before its body was read (no credentials, over the
/// rate limit): the body is never parsed, only read and thrown away — at most `limit` bytes for
/// at most [`REFUSED_DRAIN_TIME`] — so that the answer reaches the client intact. A body longer
/// than that (or slower) closes the connection after the answer.
pub(crate) async fn refuse_unread(req: Request, limit: usize, mut response: Response) -> Response {
    let declared = declared_length(req.headers());
    let complete = if declared.is_some_and(|n| n > limit as u64) {
        false
    } else {
        let mut stream = req.into_body().into_data_stream();
        let deadline = tokio::time::Instant::now() + REFUSED_DRAIN_TIME;
        let mut seen = 0usize;
        loop {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(None) => break true,
                Ok(Some(Ok(chunk))) => {
                    seen += chunk.len();
                    if seen > limit {
                        break false;
                    }
                }
                _ => break false,
            }
        }
    };
    if !complete {
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webhook_path_has_its_own_limit() {
        let l = BodyLimits {
            default: 10,
            special_path: "/hook",
            special: 100,
            timeout: Duration::from_secs(1),
        };
        assert_eq!(l.for_path("/hook"), 100);
        assert_eq!(l.for_path("/v1/token"), 10);
        assert_eq!(l.for_path("/hook/x"), 10);
    }

    #[test]
    fn content_length_is_read_leniently() {
        let mut h = HeaderMap::new();
        assert_eq!(declared_length(&h), None);
        h.insert(header::CONTENT_LENGTH, "  42 ".parse().unwrap());
        assert_eq!(declared_length(&h), Some(42));
        h.insert(header::CONTENT_LENGTH, "lots".parse().unwrap());
        assert_eq!(declared_length(&h), None);
    }
}
