//! The crate's one error enum. Every fallible public function returns [`OtpError`]; no input
//! makes this crate panic.

/// Why a value could not be parsed or an operation could not run.
///
/// Messages are safe to show to a person: none of them contains a secret or a submitted code.
///
/// ```
/// let err = otp::Digits::new(9).unwrap_err();
/// assert_eq!(err, otp::OtpError::Digits(9));
/// assert_eq!(err.to_string(), "digits must be 6, 7 or 8, got 9");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtpError {
    /// The number of digits is outside 6..=8 (RFC 4226 §5.3 allows 6 to 9; authenticator apps
    /// support 6 to 8).
    #[error("digits must be 6, 7 or 8, got {0}")]
    Digits(u64),
    /// The interval (time step, RFC 6238 `X`) is zero.
    #[error("interval must be at least 1 second")]
    Interval,
    /// The verification window is larger than [`crate::Window::MAX`].
    #[error("window must be at most {max} steps, got {0}", max = crate::Window::MAX)]
    Window(u64),
    /// The algorithm name is not one of SHA1, SHA256, SHA512.
    #[error("unknown algorithm (expected SHA1, SHA256 or SHA512)")]
    Algorithm,
    /// A submitted code is not exactly the expected number of ASCII digits.
    #[error("code must be exactly {expected} digits")]
    CodeFormat {
        /// How many digits were expected.
        expected: u8,
    },
    /// A secret length is outside the allowed range.
    #[error("secret must be {min} to {max} bytes, got {got}")]
    SecretLength {
        /// The smallest allowed length in bytes.
        min: usize,
        /// The largest allowed length in bytes.
        max: usize,
        /// The length that was given.
        got: usize,
    },
    /// A secret is not valid base32 (RFC 4648).
    #[error("secret is not valid base32")]
    Base32,
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// An `otpauth://` key URI is malformed; the message says what is wrong.
    #[error("invalid key URI: {0}")]
    Uri(&'static str),
}
