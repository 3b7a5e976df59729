//! Integration tests of the `otp` crate: one test binary (see DESIGN.md, Layout).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cross_check;
mod properties;
mod rfc_vectors;
mod uri;
mod verify;
