//! Integration tests of otpd-core against a real database: one SQLite file per test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod console;
mod directory;
mod enablement;
mod guard;
mod helpers;
mod keys;
mod lifecycle;
mod login;
mod metrics;
mod proofs;
mod storage;
mod verification;
