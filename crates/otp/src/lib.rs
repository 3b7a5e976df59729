//! One-time passwords for otpd: HOTP (RFC 4226) and TOTP (RFC 6238).
//!
//! The crate is pure: no I/O, no async, and no clock of its own (callers pass `now`), and no
//! input makes it panic. Values are parsed into types at the edge ([`Digits`], [`Interval`],
//! [`Window`], [`OtpCode`], [`Secret`], [`KeyUri`]) so the engine never sees a bad one.
//!
//! Verification is what a server needs: a symmetric window around the expected step, refusal
//! of every step at or below the last one accepted (RFC 6238 §5.2), the matched step returned
//! so the caller can claim it atomically, and constant-time comparison of every candidate.
//!
//! ```
//! use otp::{Check, OtpCode, Secret, Totp, Verification, Window};
//!
//! let secret = Secret::generate(Secret::DEFAULT_LEN)?;
//! let totp = Totp::default(); // SHA1, 6 digits, 30 s
//! let now = 1_763_856_000;
//! let typed = totp.generate(&secret, now).to_string();
//!
//! let code = OtpCode::parse(&typed, totp.digits)?;
//! let check = Check { now, window: Window::ONE, drift: 0, last_used_step: None };
//! match totp.verify(&secret, &code, &check) {
//!     Verification::Valid { step, .. } => assert_eq!(step, totp.step(now)),
//!     other => panic!("unexpected {other:?}"),
//! }
//! # Ok::<(), otp::OtpError>(())
//! ```

#![deny(missing_docs)]
#![deny(clippy::indexing_slicing, clippy::panic)]

mod code;
mod error;
mod hotp;
mod params;
mod secret;
mod totp;
mod uri;

pub use code::OtpCode;
pub use error::OtpError;
pub use hotp::Hotp;
pub use params::{Algorithm, Digits, Interval, Window};
pub use secret::Secret;
pub use totp::{Check, Resync, Totp, Verification};
pub use uri::{KeyUri, OtpKind};
