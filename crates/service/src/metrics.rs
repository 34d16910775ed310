//! `GET /metrics` (admin key): the service's counters in the Prometheus text format (0.0.4).
//!
//! Requests by route and status with a latency histogram per route, tokens minted, denials by
//! reason (the error code of every 401 / 403 / 429), webhooks by event, recordings running and
//! the bytes of finished recordings. Kept in memory by this instance (each instance reports its
//! own; a scraper sums them).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::{AppState, Shared};
use crate::guard::AdminOnly;

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The error code of an error answer, left in its extensions for [`track`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorCode(pub &'static str);

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    denials: BTreeMap<&'static str, u64>,
    webhooks: BTreeMap<String, u64>,
    tokens: u64,
    recording_bytes: u64,
}

/// The counters of one service instance.
#[derive(Default)]
pub(crate) struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn with(&self, f: impl FnOnce(&mut Inner)) {
        f(&mut self.inner.lock().expect("the metrics are never poisoned"));
    }

    /// A token was minted.
    pub fn token_minted(&self) {
        self.with(|m| m.tokens += 1);
    }

    /// A webhook event was accepted.
    pub fn webhook(&self, event: &str) {
        self.with(|m| *m.webhooks.entry(event.to_owned()).or_default() += 1);
    }

    /// A recording was finalised with files of `bytes` bytes.
    #[cfg_attr(not(feature = "recording"), allow(dead_code))]
    pub fn recording_written(&self, bytes: u64) {
        self.with(|m| m.recording_bytes += bytes);
    }

    fn request(&self, route: &str, status: StatusCode, code: Option<&'static str>, secs: f64) {
        self.with(|m| {
            *m.requests
                .entry((route.to_owned(), status.as_u16()))
                .or_default() += 1;
            let h = m.latency.entry(route.to_owned()).or_default();
            for (i, le) in BUCKETS.iter().enumerate() {
                if secs <= *le {
                    h.buckets[i] += 1;
                }
            }
            h.sum += secs;
            h.count += 1;
            if let Some(c) = code
                && matches!(status.as_u16(), 401 | 403 | 429)
            {
                *m.denials.entry(c).or_default() += 1;
            }
        });
    }

    /// The text exposition.
    fn render(&self, recordings_running: usize) -> String {
        let m = self.inner.lock().expect("the metrics are never poisoned");
        let mut out = String::new();
        family(
            &mut out,
            "wavecast_http_requests_total",
            "counter",
            "HTTP requests by route (pattern) and status.",
        );
        for ((route, status), n) in &m.requests {
            let _ = writeln!(
                out,
                "wavecast_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        family(
            &mut out,
            "wavecast_http_request_duration_seconds",
            "histogram",
            "Time to answer, by route.",
        );
        for (route, h) in &m.latency {
            let r = escape(route);
            for (le, n) in BUCKETS.iter().zip(h.buckets) {
                let _ = writeln!(
                    out,
                    "wavecast_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"{le}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "wavecast_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "wavecast_http_request_duration_seconds_sum{{route=\"{r}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "wavecast_http_request_duration_seconds_count{{route=\"{r}\"}} {}",
                h.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP wavecast_tokens_minted_total LiveKit tokens issued.\n\
             # TYPE wavecast_tokens_minted_total counter\nwavecast_tokens_minted_total {}",
            m.tokens
        );
        let _ = writeln!(
            out,
            "# HELP wavecast_denials_total Requests refused (401, 403, 429) by reason.\n\
             # TYPE wavecast_denials_total counter"
        );
        for (reason, n) in &m.denials {
            let _ = writeln!(out, "wavecast_denials_total{{reason=\"{reason}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP wavecast_webhooks_total Webhook events accepted, by event.\n\
             # TYPE wavecast_webhooks_total counter"
        );
        for (event, n) in &m.webhooks {
            let _ = writeln!(
                out,
                "wavecast_webhooks_total{{event=\"{}\"}} {n}",
                escape(event)
            );
        }
        let _ = writeln!(
            out,
            "# HELP wavecast_recordings_running Recordings running in this instance.\n\
             # TYPE wavecast_recordings_running gauge\nwavecast_recordings_running {recordings_running}"
        );
        let _ = writeln!(
            out,
            "# HELP wavecast_recording_bytes_written_total Bytes of the files of finalised recordings.\n\
             # TYPE wavecast_recording_bytes_written_total counter\n\
             wavecast_recording_bytes_written_total {}",
            m.recording_bytes
        );
        out
    }
}

/// The `# HELP` and `# TYPE` lines of a metric family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Middleware (outermost): count and time every request by its route pattern.
pub(crate) async fn track(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    let code = response.extensions().get::<ErrorCode>().map(|c| c.0);
    state.metrics.request(
        &route,
        response.status(),
        code,
        started.elapsed().as_secs_f64(),
    );
    response
}

/// `GET /metrics`.
pub(crate) async fn scrape(State(state): Shared, _: AdminOnly) -> Response {
    let running = state.recordings.running_count();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(running),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.request("/v1/token", StatusCode::OK, None, 0.003);
        m.request("/v1/token", StatusCode::FORBIDDEN, Some("no_grant"), 0.2);
        m.token_minted();
        m.webhook("room_started");
        let text = m.render(1);
        for line in [
            "wavecast_http_requests_total{route=\"/v1/token\",status=\"200\"} 1",
            "wavecast_http_requests_total{route=\"/v1/token\",status=\"403\"} 1",
            "wavecast_http_request_duration_seconds_bucket{route=\"/v1/token\",le=\"0.005\"} 1",
            "wavecast_http_request_duration_seconds_bucket{route=\"/v1/token\",le=\"0.25\"} 2",
            "wavecast_http_request_duration_seconds_bucket{route=\"/v1/token\",le=\"+Inf\"} 2",
            "wavecast_http_request_duration_seconds_count{route=\"/v1/token\"} 2",
            "wavecast_tokens_minted_total 1",
            "wavecast_denials_total{reason=\"no_grant\"} 1",
            "wavecast_webhooks_total{event=\"room_started\"} 1",
            "wavecast_recordings_running 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
