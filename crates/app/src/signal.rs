//! SIGINT (Ctrl-C) and SIGTERM: never an abrupt exit. A signal sets an [`Interrupt`] flag that
//! the app's loop — or its window, through the scene — reads, so the normal path runs: decoders
//! drain, recordings are finalised, the room is left, stats are written.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Resolves when SIGINT or SIGTERM arrives (SIGINT only where SIGTERM does not exist).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => tracing::info!("interrupted (SIGINT)"),
                _ = term.recv() => tracing::info!("terminated (SIGTERM)"),
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("interrupted");
}

/// Set once SIGINT or SIGTERM arrived; cheap to clone and poll from any thread.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// Installs the handlers on `runtime` (at once, so a signal sent right after start is
    /// caught) and returns the flag.
    pub fn install(runtime: &tokio::runtime::Handle) -> Self {
        let flag = Self::default();
        let f = flag.clone();
        let _guard = runtime.enter();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            if let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                runtime.spawn(async move {
                    tokio::select! {
                        _ = int.recv() => tracing::info!("interrupted (SIGINT)"),
                        _ = term.recv() => tracing::info!("terminated (SIGTERM)"),
                    }
                    f.set();
                });
                return flag;
            }
        }
        runtime.spawn(async move {
            shutdown_signal().await;
            f.set();
        });
        flag
    }

    /// Raises the flag (as a signal would).
    pub fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether a signal arrived.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// The shared flag itself (for a scene that closes its window when it turns true).
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}

/// Raises `flag` three seconds after the connection gave up for good (a non-zero exit code), so
/// a window shows why before it closes and the app ends on its normal path.
pub fn close_after_giving_up(
    runtime: &tokio::runtime::Handle,
    mut state: tokio::sync::watch::Receiver<crate::Link>,
    flag: Interrupt,
) {
    runtime.spawn(async move {
        while state.changed().await.is_ok() {
            let gave_up = state.borrow().gave_up();
            if gave_up {
                tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                flag.set();
                return;
            }
        }
    });
}
