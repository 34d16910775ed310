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

/// An app binary of this workspace (`package`'s `bin`), from the target directory this test runs
/// from; built with `cargo build` first when missing (when only this package's tests were built).
pub fn app_binary(package: &str, bin: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("own path");
    // target/<profile>/deps/<test> → target/<profile>
    let dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("test binaries live in target/<profile>/deps");
    let path = dir.join(bin);
    if path.is_file() {
        return path;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "-q", "-p", package, "--bin", bin]);
    if dir.ends_with("release") {
        cmd.arg("--release");
    }
    if std::env::var_os("CARGO_TARGET_DIR").is_none()
        && let Some(target) = dir.parent()
    {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    let status = cmd.status().expect("run cargo build");
    assert!(
        status.success(),
        "cargo build -p {package} --bin {bin} failed"
    );
    assert!(path.is_file(), "{} missing after the build", path.display());
    path
}
