//! The service suite on SQLite (the default storage).

mod common;

suite!(common::Backend::Sqlite);
