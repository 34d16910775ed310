//! Hand-off between threads: a bounded drop-oldest queue, the latest-frame mailbox, and fan-out.

use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::counter::{CacheLine, SharedCounter};
use serde::{Deserialize, Serialize};

/// Counters of a [`FrameQueue`] or [`Mailbox`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Capacity in frames.
    pub capacity: usize,
    /// Frames waiting now.
    pub queued: usize,
    /// Frames offered by the producer.
    pub pushed: u64,
    /// Frames handed to the consumer.
    pub popped: u64,
    /// Frames discarded unseen: pushed out by newer ones (or skipped by
    /// [`FrameQueue::pop_latest`]).
    pub dropped: u64,
}

/// A bounded multi-producer multi-consumer queue whose producers never wait.
///
/// **Drop policy: drop oldest.** When full, [`push`](FrameQueue::push) evicts the oldest waiting
/// frame (dropping it returns its buffer to its pool) and counts it in
/// [`QueueStats::dropped`]. Built on crossbeam's lock-free `ArrayQueue::force_push`.
pub struct FrameQueue<T> {
    queue: ArrayQueue<T>,
    producers: CacheLine<ProducerCounters>,
    consumers: CacheLine<ConsumerCounters>,
}

#[derive(Default)]
struct ProducerCounters {
    pushed: SharedCounter,
    evicted: SharedCounter,
}

#[derive(Default)]
struct ConsumerCounters {
    popped: SharedCounter,
    skipped: SharedCounter,
}

impl<T> std::fmt::Debug for FrameQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameQueue")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<T> FrameQueue<T> {
    /// A queue holding at most `capacity` frames (at least 1).
    pub fn new(capacity: usize) -> Self {
        FrameQueue {
            queue: ArrayQueue::new(capacity.max(1)),
            producers: CacheLine::default(),
            consumers: CacheLine::default(),
        }
    }

    /// Enqueues `frame`, evicting (and dropping) the oldest one if full. Never blocks.
    /// Returns true if a frame was evicted.
    pub fn push(&self, frame: T) -> bool {
        self.producers.pushed.add(1);
        match self.queue.force_push(frame) {
            Some(evicted) => {
                self.producers.evicted.add(1);
                drop(evicted);
                true
            }
            None => false,
        }
    }

    /// The oldest waiting frame.
    pub fn pop(&self) -> Option<T> {
        let frame = self.queue.pop();
        if frame.is_some() {
            self.consumers.popped.add(1);
        }
        frame
    }

    /// The newest waiting frame; older waiting frames are dropped and counted.
    pub fn pop_latest(&self) -> Option<T> {
        let mut latest = self.pop()?;
        while let Some(newer) = self.queue.pop() {
            self.consumers.skipped.add(1);
            drop(std::mem::replace(&mut latest, newer));
        }
        Some(latest)
    }

    /// Frames waiting now.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no frame is waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Counters (relaxed loads; cheap).
    pub fn stats(&self) -> QueueStats {
        QueueStats {
            capacity: self.queue.capacity(),
            queued: self.queue.len(),
            pushed: self.producers.pushed.get(),
            popped: self.consumers.popped.get(),
            dropped: self.producers.evicted.get() + self.consumers.skipped.get(),
        }
    }
}

/// The latest-frame mailbox for video: one slot, the producer overwrites, the consumer takes the
/// newest.
///
/// The producer never waits; a frame the consumer did not take before the next
/// [`post`](Mailbox::post) is superseded — dropped (its buffer returns to its pool) and counted
/// in [`QueueStats::dropped`]. A renderer calls [`take`](Mailbox::take) once per refresh and keeps
/// showing its previous frame when it gets `None`.
pub struct Mailbox<T> {
    inner: FrameQueue<T>,
}

impl<T> Default for Mailbox<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> std::fmt::Debug for Mailbox<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<T> Mailbox<T> {
    /// An empty mailbox.
    pub fn new() -> Self {
        Mailbox {
            inner: FrameQueue::new(1),
        }
    }

    /// Replaces the waiting frame, if any, with `frame`. Returns true if one was superseded.
    pub fn post(&self, frame: T) -> bool {
        self.inner.push(frame)
    }

    /// The newest frame, if one arrived since the last take.
    pub fn take(&self) -> Option<T> {
        self.inner.pop()
    }

    /// Whether a frame is waiting.
    pub fn has_frame(&self) -> bool {
        !self.inner.is_empty()
    }

    /// Counters: `pushed` = posted, `popped` = taken, `dropped` = superseded.
    pub fn stats(&self) -> QueueStats {
        self.inner.stats()
    }
}

/// Where a [`FanOut`] delivers.
#[derive(Clone)]
pub enum Subscriber<T> {
    /// Latest-only delivery (renderers).
    Mailbox(Arc<Mailbox<T>>),
    /// Every frame, up to the queue's capacity, oldest dropped first (recorders, analysers).
    Queue(Arc<FrameQueue<T>>),
}

/// One producer feeding several consumers with the same frames, without copying frame data.
///
/// Each consumer gets a clone of the handle (`AudioFrame` and `VideoFrame` clones share their
/// pooled buffer), delivered through its own mailbox or bounded queue, so a slow consumer drops
/// its own frames (counted in its stats) and never slows the producer or the other consumers.
/// Consumers are attached before frames flow (`&mut self`); publishing is lock-free.
pub struct FanOut<T> {
    subscribers: Vec<(Arc<str>, Subscriber<T>)>,
}

impl<T> Default for FanOut<T> {
    fn default() -> Self {
        FanOut {
            subscribers: Vec::new(),
        }
    }
}

impl<T: Clone> FanOut<T> {
    /// A fan-out with no consumers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a latest-frame consumer (a renderer) and returns its mailbox.
    pub fn add_mailbox(&mut self, name: &str) -> Arc<Mailbox<T>> {
        let mailbox = Arc::new(Mailbox::new());
        self.subscribers
            .push((Arc::from(name), Subscriber::Mailbox(Arc::clone(&mailbox))));
        mailbox
    }

    /// Adds an every-frame consumer with a `capacity`-frame drop-oldest queue.
    pub fn add_queue(&mut self, name: &str, capacity: usize) -> Arc<FrameQueue<T>> {
        let queue = Arc::new(FrameQueue::new(capacity));
        self.subscribers
            .push((Arc::from(name), Subscriber::Queue(Arc::clone(&queue))));
        queue
    }

    /// Delivers `frame` to every consumer (handle clones, no data copies). Never blocks.
    /// Returns how many consumers had to drop an older frame to make room.
    pub fn publish(&self, frame: T) -> usize {
        let mut evictions = 0;
        if let Some(((_, last), rest)) = self.subscribers.split_last() {
            for (_, sub) in rest {
                evictions += usize::from(Self::deliver(sub, frame.clone()));
            }
            evictions += usize::from(Self::deliver(last, frame));
        }
        evictions
    }

    fn deliver(sub: &Subscriber<T>, frame: T) -> bool {
        match sub {
            Subscriber::Mailbox(m) => m.post(frame),
            Subscriber::Queue(q) => q.push(frame),
        }
    }

    /// Number of consumers.
    pub fn len(&self) -> usize {
        self.subscribers.len()
    }

    /// Whether there are no consumers.
    pub fn is_empty(&self) -> bool {
        self.subscribers.is_empty()
    }

    /// Per-consumer counters, in the order consumers were added (name, stats).
    pub fn stats(&self) -> impl Iterator<Item = (&str, QueueStats)> + '_ {
        self.subscribers.iter().map(|(name, sub)| {
            let stats = match sub {
                Subscriber::Mailbox(m) => m.stats(),
                Subscriber::Queue(q) => q.stats(),
            };
            (&**name, stats)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PixelFormat, VideoFramePool, VideoLayout};

    #[test]
    fn mailbox_keeps_the_newest_and_counts_superseded() {
        let m = Mailbox::new();
        assert!(m.take().is_none());
        assert!(!m.post(1));
        assert!(m.post(2));
        assert!(m.post(3));
        assert_eq!(m.take(), Some(3));
        assert_eq!(m.take(), None);
        let s = m.stats();
        assert_eq!((s.pushed, s.popped, s.dropped), (3, 1, 2));
    }

    #[test]
    fn queue_drops_oldest() {
        let q = FrameQueue::new(2);
        q.push(1);
        q.push(2);
        assert!(q.push(3));
        assert_eq!(q.pop(), Some(2));
        q.push(4);
        q.push(5);
        assert_eq!(q.pop_latest(), Some(5));
        assert_eq!(q.stats().dropped, 3);
    }

    #[test]
    fn superseded_frames_return_to_the_pool() {
        let layout = VideoLayout::new(PixelFormat::I420, 16, 16).unwrap();
        let pool = VideoFramePool::new("cam", layout, 2);
        let m = Mailbox::new();
        for _ in 0..10 {
            // With two buffers, this only works if superseded frames are released.
            let f = pool
                .acquire()
                .expect("superseded frame was recycled")
                .freeze();
            m.post(f);
        }
        assert_eq!(m.stats().dropped, 9);
        assert_eq!(pool.stats().exhausted, 0);
    }

    #[test]
    fn fan_out_shares_one_buffer() {
        let layout = VideoLayout::new(PixelFormat::I420, 16, 16).unwrap();
        let pool = VideoFramePool::new("cam", layout, 1);
        let mut fan = FanOut::new();
        let render = fan.add_mailbox("renderer");
        let analyse = fan.add_queue("analyser", 4);
        let record = fan.add_queue("recorder", 4);
        let frame = pool.acquire().unwrap().freeze();
        assert_eq!(fan.publish(frame), 0);
        let (a, b, c) = (
            render.take().unwrap(),
            analyse.pop().unwrap(),
            record.pop().unwrap(),
        );
        assert!(a.ptr_eq(&b) && b.ptr_eq(&c));
        assert!(
            pool.acquire().is_err(),
            "the single buffer is shared, not copied"
        );
        drop((a, b, c));
        assert!(pool.acquire().is_ok());
        let names: Vec<_> = fan
            .stats()
            .map(|(n, s)| (n.to_string(), s.popped))
            .collect();
        assert_eq!(names.len(), 3);
        assert_eq!(names[0], ("renderer".to_string(), 1));
    }
}
