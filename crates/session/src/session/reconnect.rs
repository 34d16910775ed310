//! Reconnecting: full rejoins with backoff and jitter per the [`ReconnectPolicy`], re-publishing
//! the session's tracks on the new engine, and shutting engines down.

use super::*;

/// A value in `[0, 1)` for the retry jitter, from rand's thread-local generator.
pub(crate) fn unit_random() -> f64 {
    rand::random()
}

/// Close an engine: a clean leave once no call holds it any more, or a plain stop (abort) after
/// `grace`.
pub(super) async fn shutdown_engine(mut engine: Arc<Engine>, grace: Duration) {
    let deadline = Instant::now() + grace;
    loop {
        match Arc::try_unwrap(engine) {
            Ok(mut e) => {
                if tokio::time::timeout(grace, e.close()).await.is_err() {
                    warn!("engine did not close within {grace:?}; stopping it");
                }
                return;
            }
            Err(shared) if Instant::now() >= deadline => {
                warn!("engine still in use after {grace:?}; stopping it without a leave");
                drop(shared);
                return;
            }
            Err(shared) => {
                engine = shared;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

impl Supervisor {
    /// Take the current engine out of service: unbind our tracks and stop it.
    pub(super) async fn drop_engine(&mut self) {
        self.connected = false;
        self.transports = (false, false);
        let engine = lock(&self.shared.engine).take();
        for slot in lock(&self.shared.published).iter() {
            slot.unbind();
        }
        if let Some((_, engine)) = engine {
            self.keep_refreshed_token(&engine);
            shutdown_engine(engine, self.shared.options.close_grace).await;
        }
    }

    /// Keep the newest token the server gave `engine`, for later joins.
    pub(super) fn keep_refreshed_token(&self, engine: &Engine) {
        if let Some(token) = engine.refreshed_token() {
            *lock(&self.shared.refreshed_token) = Some(token);
        }
    }

    /// The token for the next join: a fresh one when the credentials mint, else the newest the
    /// server refreshed (the original may have expired), else the original.
    pub(super) fn token_for_join(&self) -> Result<String, SessionError> {
        match &self.shared.options.credentials {
            Credentials::Token(_) => match lock(&self.shared.refreshed_token).clone() {
                Some(t) => Ok(t),
                None => self.shared.options.credentials.token_now(),
            },
            Credentials::Mint { .. } => self.shared.options.credentials.token_now(),
        }
    }

    /// Full rejoins with backoff until one joins (Ok) or the session must end (Err).
    pub(super) async fn rejoin(&mut self, why: String) -> Result<(), EndReason> {
        let policy = self.shared.options.reconnect.clone();
        let url = self.shared.options.url.clone();
        let mut last_error = Arc::new(SessionError::ConnectionLost {
            url: url.clone(),
            reason: why,
        });
        loop {
            if self.attempt >= policy.max_attempts {
                return Err(EndReason::GaveUp {
                    attempts: self.attempt,
                    last_error,
                });
            }
            self.attempt += 1;
            let attempt = self.attempt;
            // A failed resume already showed `Reconnecting { attempt: 1 }`: the first rejoin
            // continues it rather than repeating the state.
            let state = SessionState::Reconnecting { attempt };
            if self.shared.state() != state {
                self.set_state(state);
            }
            let delay = policy.delay(attempt, unit_random());
            debug!("rejoin attempt {attempt} in {delay:?}");
            if self
                .wait_or_cancel(tokio::time::sleep(delay))
                .await
                .is_none()
            {
                return Err(EndReason::Closed);
            }
            self.shared.join_attempts.fetch_add(1, Ordering::Relaxed);
            let token = match self.token_for_join() {
                Ok(t) => t,
                Err(e) => {
                    return Err(EndReason::Fatal { error: Arc::new(e) });
                }
            };
            let engine_options = self.shared.options.engine.clone();
            let connected = self
                .wait_or_cancel(Engine::connect(&url, &token, engine_options))
                .await;
            let (engine, events) = match connected {
                None => return Err(EndReason::Closed),
                Some(Err(e)) => {
                    let e = SessionError::from_connect(&url, e);
                    if !e.is_retryable() {
                        let status = match &e {
                            SessionError::Unauthorized { status, .. } => Some(*status),
                            _ => None,
                        };
                        let error = Arc::new(e);
                        return Err(match status {
                            Some(status) => EndReason::Refused { status, error },
                            None => EndReason::Fatal { error },
                        });
                    }
                    info!("rejoin attempt {attempt} failed: {}", error_chain(&e));
                    last_error = Arc::new(e);
                    continue;
                }
                Some(Ok(pair)) => pair,
            };
            self.epoch += 1;
            let engine = Arc::new(engine);
            match self.republish(&engine).await {
                None => {
                    shutdown_engine(engine, self.shared.options.close_grace).await;
                    return Err(EndReason::Closed);
                }
                Some(Err(e)) => {
                    warn!(
                        "rejoin attempt {attempt}: re-publishing failed: {}",
                        error_chain(&e)
                    );
                    last_error = Arc::new(e);
                    shutdown_engine(engine, self.shared.options.close_grace).await;
                    continue;
                }
                Some(Ok(n)) => info!("rejoined; re-published {n} tracks"),
            }
            *lock(&self.shared.engine) = Some((self.epoch, engine));
            self.events = events;
            self.since = Instant::now();
            self.identities.clear();
            self.track_names.clear();
            return Ok(());
        }
    }

    /// Publish every live track of the session on `engine` and rebind its handles. `None` when
    /// cancelled.
    pub(super) async fn republish(&self, engine: &Engine) -> Option<Result<usize, SessionError>> {
        let slots: Vec<Arc<LocalSlot>> = lock(&self.shared.published)
            .iter()
            .filter(|s| !s.is_unpublished() && s.epoch() < self.epoch)
            .cloned()
            .collect();
        let mut n = 0;
        for slot in slots {
            let options = lock(&slot.options).clone();
            let name = options.name.clone();
            match self.wait_or_cancel(engine.publish_track(options)).await? {
                Ok(track) => {
                    slot.rebind(track, self.epoch);
                    n += 1;
                }
                Err(source) => {
                    return Some(Err(SessionError::Engine {
                        operation: format!("re-publish track {name:?}"),
                        source,
                    }));
                }
            }
        }
        Some(Ok(n))
    }

    pub(super) async fn wait_or_cancel<F: std::future::Future>(&self, f: F) -> Option<F::Output> {
        tokio::select! {
            _ = self.shared.cancel.cancelled() => None,
            out = f => Some(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_random_is_in_range() {
        for _ in 0..1000 {
            let r = unit_random();
            assert!((0.0..1.0).contains(&r), "{r}");
        }
    }
}
