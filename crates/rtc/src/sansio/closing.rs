//! Leaving without losing data: [`Command::Close`] waits (at most [`CLOSE_DRAIN`]) until the
//! reliable data channel has handed everything to the server — our backlog empty and SCTP's
//! buffer acknowledged — before it sends the Leave and closes the connections. Without it a
//! chat line sent just before leaving was lost.

use super::*;

/// The longest a close waits for the reliable data channel to drain.
pub(crate) const CLOSE_DRAIN: Duration = Duration::from_secs(2);

/// A close waiting for the reliable channel.
pub(super) struct Closing {
    deadline: Instant,
    reply: Reply<()>,
}

impl Core {
    /// Whether reliable data is still on its way out (our backlog, or SCTP's unacknowledged
    /// buffer).
    fn reliable_pending(&mut self) -> bool {
        if !self.data.reliable_backlog.is_empty() {
            return true;
        }
        let Some(id) = self.data.reliable else {
            return false;
        };
        self.publisher
            .rtc
            .channel(id)
            .is_some_and(|mut ch| ch.buffered_amount() > 0)
    }

    /// Close now, or once the reliable channel drained.
    pub(super) fn close(&mut self, reply: Reply<()>) {
        if self.publisher.connected && self.reliable_pending() {
            debug!("closing once the reliable data channel drained");
            self.closing = Some(Closing {
                deadline: self.now + CLOSE_DRAIN,
                reply,
            });
        } else {
            self.leave();
            reply(Ok(()));
        }
    }

    /// A waiting close whose channel drained (or whose time is up) leaves now.
    pub(super) fn finish_closing(&mut self) {
        let Some(deadline) = self.closing.as_ref().map(|c| c.deadline) else {
            return;
        };
        let pending = self.reliable_pending();
        if pending && self.now < deadline {
            return;
        }
        if pending {
            warn!("leaving with reliable data not yet acknowledged after {CLOSE_DRAIN:?}");
        }
        let closing = self.closing.take().expect("checked above");
        self.leave();
        (closing.reply)(Ok(()));
    }

    /// When a waiting close must look again.
    pub(super) fn closing_deadline(&self) -> Option<Instant> {
        self.closing
            .as_ref()
            .map(|c| c.deadline.min(self.now + Duration::from_millis(10)))
    }
}
