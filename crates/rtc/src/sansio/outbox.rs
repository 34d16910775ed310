//! Handing events to the reader without waiting for it (the policy of [`EngineEvent`]).
//!
//! Droppable events (speaker and quality updates, lossy data) go out only when the stream has
//! room and nothing is held; otherwise they are dropped and counted. Every other event (roster
//! changes, subscriptions, transport states, reliable data, `Disconnected`) is never dropped:
//! when the stream is full it is held, in order, and goes out as the reader makes room
//! ([`super::Input::ReaderReady`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tracing::debug;

use super::Counters;
use crate::events::EngineEvent;

/// What became of an event offered to the reader's stream.
#[derive(Debug)]
pub(crate) enum Offer {
    /// It is in the stream.
    Sent,
    /// The stream is full: the event comes back.
    Full(EngineEvent),
    /// Nobody reads the stream any more.
    Closed,
}

/// The reader's bounded stream, as the core sees it: an offer never waits.
pub(crate) trait EventSink: Send {
    /// Put `ev` in the stream if there is room.
    fn offer(&mut self, ev: EngineEvent) -> Offer;
}

pub(super) struct Outbox {
    sink: Box<dyn EventSink>,
    /// Must-deliver events waiting for room, oldest first.
    held: VecDeque<EngineEvent>,
    counters: Arc<Counters>,
}

impl Outbox {
    pub(super) fn new(sink: Box<dyn EventSink>, counters: Arc<Counters>) -> Self {
        Self {
            sink,
            held: VecDeque::new(),
            counters,
        }
    }

    pub(super) fn emit(&mut self, ev: EngineEvent) {
        let droppable = ev.is_droppable();
        if !self.held.is_empty() {
            if droppable {
                self.count_drop(&ev);
            } else {
                self.hold(ev);
            }
            return;
        }
        match self.sink.offer(ev) {
            Offer::Sent | Offer::Closed => {}
            Offer::Full(ev) if droppable => self.count_drop(&ev),
            Offer::Full(ev) => self.hold(ev),
        }
    }

    /// The reader made room: send what is held while it fits.
    pub(super) fn reader_ready(&mut self) {
        while let Some(ev) = self.held.pop_front() {
            match self.sink.offer(ev) {
                Offer::Sent => {}
                Offer::Full(ev) => {
                    self.held.push_front(ev);
                    break;
                }
                Offer::Closed => self.held.clear(),
            }
        }
    }

    /// Nobody reads any more.
    pub(super) fn reader_gone(&mut self) {
        self.held.clear();
    }

    pub(super) fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    pub(super) fn take_held(&mut self) -> VecDeque<EngineEvent> {
        std::mem::take(&mut self.held)
    }

    fn hold(&mut self, ev: EngineEvent) {
        self.held.push_back(ev);
        self.counters
            .held_peak
            .fetch_max(self.held.len() as u64, Ordering::Relaxed);
    }

    fn count_drop(&self, ev: &EngineEvent) {
        self.counters.dropped_events.fetch_add(1, Ordering::Relaxed);
        debug!("event stream full, dropped {ev:?}");
    }
}
