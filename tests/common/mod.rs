//! Shared helpers for the integration tests: signal-level joins with the official signal client.
//!
//! Every test starts its own real livekit-server through `wavecast-testbed`.

use std::time::Duration;

use livekit_protocol as proto;
use livekit_signaling::{SignalClient, SignalError, SignalEvents, SignalOptions};

/// Signal options for livekit-server v1.13.5 (see shared ENGINE-NOTES): protocol 17, no client
/// capabilities, no region failover on a local server.
pub fn signal_options() -> SignalOptions {
    let mut o = SignalOptions::default();
    o.protocol_version = 17;
    o.client_capabilities = Vec::new();
    o.region_failover = false;
    o.auto_subscribe = true;
    o.connect_timeout = Duration::from_secs(5);
    o
}

/// Join a room at the signal level with `token`.
pub async fn join(
    url: &str,
    token: &str,
) -> Result<(SignalClient, proto::JoinResponse, SignalEvents), SignalError> {
    SignalClient::connect(url, token, signal_options(), None).await
}

/// Wait for the first signal message `pick` accepts, up to `timeout`.
pub async fn next_matching<T>(
    events: &mut SignalEvents,
    timeout: Duration,
    mut pick: impl FnMut(&proto::signal_response::Message) -> Option<T>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .ok()??;
        if let livekit_signaling::SignalEvent::Message(msg) = ev
            && let Some(t) = pick(&msg)
        {
            return Some(t);
        }
    }
}
