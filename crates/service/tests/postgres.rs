//! The service suite on PostgreSQL, started by the test bed from the distro's package.

mod common;

suite!(common::Backend::Postgres);
