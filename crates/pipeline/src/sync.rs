//! The synchronisation primitives the pool and counters use: std's and crossbeam's normally,
//! loom's under `cfg(loom)` so the pool protocol is model-checked (see `tests/loom.rs`).

#[cfg(not(loom))]
pub(crate) use crossbeam_queue::ArrayQueue;
#[cfg(not(loom))]
pub(crate) use std::sync::Arc;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(loom)]
pub(crate) use crate::loom_queue::ArrayQueue;
#[cfg(loom)]
pub(crate) use loom::sync::Arc;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};
