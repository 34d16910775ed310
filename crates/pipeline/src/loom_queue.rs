//! Model-checking stand-in for crossbeam's `ArrayQueue`, compiled only under `cfg(loom)`.
//!
//! Loom cannot see inside crossbeam, so the pool's queue is modelled as a bounded FIFO behind a
//! loom lock (a linearisable queue, which is what `ArrayQueue` provides). What loom then
//! explores is the protocol on top: `Arc` reference counts, `get_mut` exclusivity, and slots
//! being returned by whichever thread drops the last clone. Never built in normal builds.

use std::collections::VecDeque;

pub(crate) struct ArrayQueue<T> {
    items: loom::sync::Mutex<VecDeque<T>>,
    capacity: usize,
}

impl<T> ArrayQueue<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        ArrayQueue {
            items: loom::sync::Mutex::new(VecDeque::with_capacity(capacity)),
            capacity,
        }
    }

    pub(crate) fn push(&self, value: T) -> Result<(), T> {
        let mut items = self.items.lock().expect("model lock");
        if items.len() == self.capacity {
            return Err(value);
        }
        items.push_back(value);
        Ok(())
    }

    pub(crate) fn pop(&self) -> Option<T> {
        self.items.lock().expect("model lock").pop_front()
    }

    pub(crate) fn len(&self) -> usize {
        self.items.lock().expect("model lock").len()
    }
}
