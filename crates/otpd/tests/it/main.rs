//! Integration tests of the otpd server over real HTTP: the server on 127.0.0.1:0, one
//! SQLite file per test, an injected clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod authz;
mod bad_input;
mod cli;
mod helpers;
