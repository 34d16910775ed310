//! Room recording for wavecast: see [`record`].
//!
//! This crate holds the recorder until the media-stream crate exists; the [`record`] module
//! moves there as it is.
#![deny(missing_docs)]

pub mod record;
