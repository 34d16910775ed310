//! Leaving without losing data: [`Command::Close`] waits (at most [`CLOSE_DRAIN`]) until the
//! reliable data channel has handed everything to the server — our backlog empty and SCTP's
//! buffer acknowledged — and [`CLOSE_SETTLE`] more, before it sends the Leave and closes the
//! connections. Without it a chat line sent just before leaving was lost.

use super::*;

/// The longest a close waits for the reliable data channel to drain.
pub(crate) const CLOSE_DRAIN: Duration = Duration::from_secs(2);

/// After the server acknowledged everything, how long a close still waits before the Leave:
/// SCTP acknowledges what reached the server's buffer, and the server closes our connections
/// on the Leave, so data it had not yet read from that buffer would be lost.
pub(crate) const CLOSE_SETTLE: Duration = Duration::from_millis(250);

/// A close waiting for the reliable channel.
pub(super) struct Closing {
    deadline: Instant,
    /// When the channel was seen drained.
    drained_at: Option<Instant>,
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
                drained_at: None,
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
        let now = self.now;
        if pending && now < deadline {
            return;
        }
        if !pending {
            let closing = self.closing.as_mut().expect("checked above");
            let drained_at = *closing.drained_at.get_or_insert(now);
            if now < (drained_at + CLOSE_SETTLE).min(deadline) {
                return;
            }
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
