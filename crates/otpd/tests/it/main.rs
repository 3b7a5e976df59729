//! Integration tests of the otpd server over real HTTP: the server on 127.0.0.1:0, one
//! database per test (SQLite, or PostgreSQL when OTPD_TEST_DATABASE_URL is set), an injected
//! clock; and the real binary, as the CLI and as `serve` processes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod authz;
mod backup;
mod bad_input;
mod browser;
mod cli;
mod helpers;
mod https;
mod metrics;
mod multi;
mod ontap;
mod outage;
mod probe;
mod process;
mod proxies;
mod resources;
mod rocketchat;
mod shutdown;
mod truenas;
mod web;
mod zimbra;
