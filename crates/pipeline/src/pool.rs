//! The slot pool shared by [`VideoFramePool`](crate::VideoFramePool) and
//! [`AudioFramePool`](crate::AudioFramePool).
//!
//! A pool owns `capacity` reference-counted slots, all allocated up front. Every slot's `Arc`
//! lives in a crossbeam [`ArrayQueue`]; a slot is free when the queue's copy is the only
//! reference left (`Arc::get_mut` succeeds). Acquiring pops slots round-robin until it finds a
//! free one, takes it out of the queue while it is being written, and puts one reference back
//! when the frame is published. Consumers hold plain `Arc` clones: dropping the last one *is* the
//! return to the pool, no hook and no lock needed, and a frame can be shared by any number of
//! consumers without copying. Only std's `Arc` and crossbeam's queue carry atomics here (both
//! swapped for loom's under `cfg(loom)`, where `tests/loom.rs` model-checks this protocol).

use serde::{Deserialize, Serialize};

use crate::sync::{Arc, ArrayQueue, AtomicU64, Ordering};

use crate::error::PipelineError;

/// Counters of a frame pool, read with [`VideoFramePool::stats`](crate::VideoFramePool::stats) or
/// [`AudioFramePool::stats`](crate::AudioFramePool::stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStats {
    /// Buffers owned by the pool (fixed at creation).
    pub capacity: usize,
    /// Buffers currently taken out for writing (not yet published or dropped).
    pub writing: usize,
    /// Successful acquisitions.
    pub acquired: u64,
    /// Acquisitions refused because every buffer was in use.
    pub exhausted: u64,
    /// Busy slots skipped while searching for a free one (a measure of consumer lag).
    pub busy_skips: u64,
}

pub(crate) struct SlotPool<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for SlotPool<T> {
    fn clone(&self) -> Self {
        SlotPool {
            shared: Arc::clone(&self.shared),
        }
    }
}

struct Shared<T> {
    name: std::sync::Arc<str>,
    free: ArrayQueue<Arc<T>>,
    capacity: usize,
    acquired: AtomicU64,
    exhausted: AtomicU64,
    busy_skips: AtomicU64,
}

/// A slot taken out of the pool for writing: the only reference to it exists here.
pub(crate) struct Lease<T> {
    slot: Option<Arc<T>>,
    pool: Option<Arc<Shared<T>>>,
}

impl<T> SlotPool<T> {
    pub(crate) fn new(name: &str, capacity: usize, mut make: impl FnMut() -> T) -> Self {
        let capacity = capacity.max(1);
        let free = ArrayQueue::new(capacity);
        for _ in 0..capacity {
            free.push(Arc::new(make()))
                .unwrap_or_else(|_| unreachable!("queue has room for every slot"));
        }
        SlotPool {
            shared: Arc::new(Shared {
                name: std::sync::Arc::from(name),
                free,
                capacity,
                acquired: AtomicU64::new(0),
                exhausted: AtomicU64::new(0),
                busy_skips: AtomicU64::new(0),
            }),
        }
    }

    pub(crate) fn name(&self) -> &std::sync::Arc<str> {
        &self.shared.name
    }

    pub(crate) fn acquire(&self) -> Result<Lease<T>, PipelineError> {
        let shared = &self.shared;
        // Each slot is visited at most once per call: slots held by other writers are not in the
        // queue, busy ones go back to its tail.
        for _ in 0..shared.capacity {
            let Some(mut slot) = shared.free.pop() else {
                break;
            };
            if Arc::get_mut(&mut slot).is_some() {
                shared.acquired.fetch_add(1, Ordering::Relaxed);
                return Ok(Lease {
                    slot: Some(slot),
                    pool: Some(Arc::clone(shared)),
                });
            }
            shared.busy_skips.fetch_add(1, Ordering::Relaxed);
            shared.put_back(slot);
        }
        shared.exhausted.fetch_add(1, Ordering::Relaxed);
        Err(PipelineError::PoolEmpty {
            pool: std::sync::Arc::clone(&shared.name),
            capacity: shared.capacity,
        })
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let s = &self.shared;
        PoolStats {
            capacity: s.capacity,
            writing: s.capacity.saturating_sub(s.free.len()),
            acquired: s.acquired.load(Ordering::Relaxed),
            exhausted: s.exhausted.load(Ordering::Relaxed),
            busy_skips: s.busy_skips.load(Ordering::Relaxed),
        }
    }
}

impl<T> Shared<T> {
    fn put_back(&self, slot: Arc<T>) {
        // The queue holds at most one reference per slot and has room for all of them.
        if self.free.push(slot).is_err() {
            unreachable!("pool queue overflow: a slot was returned twice");
        }
    }
}

impl<T> Lease<T> {
    /// A lease that belongs to no pool (a one-off allocation).
    pub(crate) fn unpooled(value: T) -> Self {
        Lease {
            slot: Some(Arc::new(value)),
            pool: None,
        }
    }

    pub(crate) fn get(&self) -> &T {
        self.slot
            .as_deref()
            .expect("a lease holds its slot until published or dropped")
    }

    pub(crate) fn get_mut(&mut self) -> &mut T {
        let slot = self
            .slot
            .as_mut()
            .expect("a lease holds its slot until published or dropped");
        Arc::get_mut(slot).expect("a leased slot is referenced only by its lease")
    }

    /// Publishes the slot: the pool gets its reference back and the caller gets a shared one.
    pub(crate) fn publish(mut self) -> Arc<T> {
        let slot = self
            .slot
            .take()
            .expect("a lease holds its slot until published or dropped");
        if let Some(pool) = self.pool.take() {
            pool.put_back(Arc::clone(&slot));
        }
        slot
    }
}

impl<T> Drop for Lease<T> {
    fn drop(&mut self) {
        if let (Some(slot), Some(pool)) = (self.slot.take(), self.pool.take()) {
            pool.put_back(slot);
        }
    }
}
