//! The signal client on its own task: it carries out the core's [`SignalOut`] requests in
//! order and reports messages and outcomes as [`SignalIn`].
//!
//! livekit-signaling's `restart` holds the client's state lock for the whole reconnect, so a
//! send issued meanwhile would wait for it. Running the client here keeps the driver free:
//! requests that arrive during a reconnect are kept (in order) and sent once it ends, and a
//! `Close` or a new `Resume` abandons the reconnect in flight (dropping its future leaves the
//! client resumable).

use std::collections::VecDeque;
use std::pin::pin;

use livekit_signaling::{SignalClient, SignalError, SignalEvent, SignalEvents};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info};

use super::connect;
use crate::sansio::{ResumeFailure, SignalIn, SignalOut};

/// The driver's end of the signal task.
pub(super) struct SignalLink {
    pub requests: mpsc::UnboundedSender<SignalOut>,
    pub updates: mpsc::UnboundedReceiver<SignalIn>,
    pub task: JoinHandle<()>,
}

impl SignalLink {
    pub(super) fn spawn(client: SignalClient, events: SignalEvents) -> Self {
        let (requests, rx) = mpsc::unbounded_channel();
        let (tx, updates) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(client, events, rx, tx));
        SignalLink {
            requests,
            updates,
            task,
        }
    }
}

async fn run(
    client: SignalClient,
    mut events: SignalEvents,
    mut requests: mpsc::UnboundedReceiver<SignalOut>,
    updates: mpsc::UnboundedSender<SignalIn>,
) {
    let mut events_open = true;
    let mut next: Option<SignalOut> = None;
    loop {
        let request = match next.take() {
            Some(r) => Some(r),
            None => tokio::select! {
                r = requests.recv() => match r {
                    Some(r) => Some(r),
                    None => break,
                },
                e = events.recv(), if events_open => {
                    let update = match e {
                        Some(SignalEvent::Message(m)) => SignalIn::Message(m),
                        Some(SignalEvent::Close(why)) => SignalIn::Lost(why.into_owned()),
                        None => {
                            events_open = false;
                            SignalIn::Ended
                        }
                    };
                    let _ = updates.send(update);
                    None
                }
            },
        };
        let Some(request) = request else { continue };
        match request {
            SignalOut::Send(msg) => client.send(*msg).await,
            SignalOut::Reconnected => client.set_reconnected().await,
            SignalOut::Close => client.close().await,
            SignalOut::Resume(reason) => {
                // Retire the old connection and whatever it left in the queue (its own close
                // event among them): nothing from it applies after the resume.
                client.close().await;
                let mut stale = 0;
                while events.try_recv().is_ok() {
                    stale += 1;
                }
                if stale > 0 {
                    debug!("dropped {stale} signal events of the lost connection");
                }
                let mut held = VecDeque::new();
                let outcome = {
                    let mut restart = pin!(client.restart(reason));
                    loop {
                        tokio::select! {
                            r = &mut restart => break Some(r),
                            r = requests.recv() => match r {
                                Some(SignalOut::Send(msg)) => held.push_back(msg),
                                Some(other) => {
                                    // Close, Resume, Reconnected: the attempt is abandoned.
                                    next = Some(other);
                                    break None;
                                }
                                None => break None,
                            },
                        }
                    }
                };
                match outcome {
                    Some(Ok(response)) => {
                        let _ = updates.send(SignalIn::Resumed(response));
                    }
                    Some(Err(e)) => {
                        let failure = classify(&client, e);
                        info!("resume attempt failed: {failure:?}");
                        let _ = updates.send(SignalIn::ResumeFailed(failure));
                    }
                    None => debug!("resume attempt abandoned"),
                }
                for msg in held {
                    client.send(*msg).await;
                }
            }
        }
    }
    client.close().await;
}

/// Whether a failed reconnect may be tried again.
fn classify(client: &SignalClient, e: SignalError) -> ResumeFailure {
    match e {
        SignalError::LeaveRequest { reason, action } => ResumeFailure::Refused(format!(
            "the server refused the resume ({reason:?}, {action:?})"
        )),
        SignalError::Client(status, message) => ResumeFailure::Refused(format!(
            "the server refused the resume ({status}): {}",
            connect::redact_token(&message, &client.token())
        )),
        e => ResumeFailure::Failed(e.to_string()),
    }
}
