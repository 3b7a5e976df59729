//! The typed parameters of a one-time password: algorithm, digits, interval and window.
//! Each is parsed once at the edge, so the engine never sees an out-of-range value.

use crate::OtpError;
use std::fmt;
use std::str::FromStr;

/// The HMAC hash function (RFC 6238 §1.2 allows SHA-1, SHA-256 and SHA-512).
///
/// ```
/// use otp::Algorithm;
/// let alg: Algorithm = "sha256".parse()?;
/// assert_eq!(alg, Algorithm::Sha256);
/// assert_eq!(alg.to_string(), "SHA256");
/// # Ok::<(), otp::OtpError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// HMAC-SHA1, the default of RFC 4226 and of every authenticator app.
    #[default]
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl Algorithm {
    /// The name used in key URIs and APIs: `SHA1`, `SHA256` or `SHA512`.
    ///
    /// ```
    /// assert_eq!(otp::Algorithm::Sha512.as_str(), "SHA512");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = OtpError;

    /// Accepts `SHA1`, `SHA256`, `SHA512` in any case, with or without a hyphen (`SHA-256`).
    fn from_str(s: &str) -> Result<Self, OtpError> {
        let name: String = s
            .chars()
            .filter(|c| *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        match name.as_str() {
            "SHA1" => Ok(Algorithm::Sha1),
            "SHA256" => Ok(Algorithm::Sha256),
            "SHA512" => Ok(Algorithm::Sha512),
            _ => Err(OtpError::Algorithm),
        }
    }
}

/// The number of decimal digits of a code: 6, 7 or 8.
///
/// ```
/// use otp::Digits;
/// assert_eq!(Digits::new(8)?.get(), 8);
/// assert!(Digits::new(5).is_err());
/// # Ok::<(), otp::OtpError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digits(u8);

impl Digits {
    /// Six digits, the default everywhere.
    pub const SIX: Digits = Digits(6);
    /// Eight digits, as in the RFC 6238 test vectors.
    pub const EIGHT: Digits = Digits(8);

    /// Parses a digit count; anything outside 6..=8 is [`OtpError::Digits`].
    ///
    /// ```
    /// assert!(otp::Digits::new(7).is_ok());
    /// ```
    pub fn new(digits: u64) -> Result<Self, OtpError> {
        match digits {
            6..=8 => Ok(Digits(digits as u8)),
            _ => Err(OtpError::Digits(digits)),
        }
    }

    /// The digit count.
    ///
    /// ```
    /// assert_eq!(otp::Digits::SIX.get(), 6);
    /// ```
    pub const fn get(self) -> u8 {
        self.0
    }

    /// `10^digits`, the modulus of RFC 4226 §5.3 step 3.
    pub(crate) const fn modulus(self) -> u32 {
        10u32.pow(self.0 as u32)
    }
}

impl Default for Digits {
    fn default() -> Self {
        Digits::SIX
    }
}

impl fmt::Display for Digits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The TOTP time step `X` of RFC 6238 §4.1, in seconds (at least 1; servers may demand more).
///
/// ```
/// use otp::Interval;
/// assert_eq!(Interval::new(30)?.seconds(), 30);
/// assert!(Interval::new(0).is_err());
/// # Ok::<(), otp::OtpError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Interval(std::num::NonZeroU64);

impl Interval {
    /// The usual 30 seconds.
    pub const THIRTY_SECONDS: Interval = Interval(match std::num::NonZeroU64::new(30) {
        Some(n) => n,
        None => std::num::NonZeroU64::MIN,
    });

    /// Parses an interval in seconds; zero is [`OtpError::Interval`].
    ///
    /// ```
    /// assert!(otp::Interval::new(60).is_ok());
    /// ```
    pub fn new(seconds: u64) -> Result<Self, OtpError> {
        std::num::NonZeroU64::new(seconds)
            .map(Interval)
            .ok_or(OtpError::Interval)
    }

    /// The interval in seconds.
    ///
    /// ```
    /// assert_eq!(otp::Interval::THIRTY_SECONDS.seconds(), 30);
    /// ```
    pub const fn seconds(self) -> u64 {
        self.0.get()
    }

    /// The time step `T = floor(unix_time / X)` of RFC 6238 §4.2 (with `T0 = 0`).
    ///
    /// ```
    /// let i = otp::Interval::THIRTY_SECONDS;
    /// assert_eq!(i.step(59), 1);
    /// assert_eq!(i.step(60), 2);
    /// ```
    pub const fn step(self, unix_time: u64) -> u64 {
        unix_time / self.0.get()
    }
}

impl Default for Interval {
    fn default() -> Self {
        Interval::THIRTY_SECONDS
    }
}

/// How many steps on either side of the expected step a code may come from (RFC 6238 §5.2
/// recommends at most one step of network delay).
///
/// ```
/// use otp::Window;
/// assert_eq!(Window::new(1)?.get(), 1);
/// assert!(Window::new(Window::MAX as u64 + 1).is_err());
/// # Ok::<(), otp::OtpError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Window(u16);

impl Window {
    /// The largest window accepted: wide enough for a resync search, small enough that a
    /// single call stays cheap.
    pub const MAX: u16 = 1000;
    /// Only the expected step.
    pub const ZERO: Window = Window(0);
    /// One step either side, the usual setting.
    pub const ONE: Window = Window(1);

    /// Parses a window; more than [`Window::MAX`] is [`OtpError::Window`].
    ///
    /// ```
    /// assert!(otp::Window::new(100).is_ok());
    /// ```
    pub fn new(steps: u64) -> Result<Self, OtpError> {
        if steps <= u64::from(Self::MAX) {
            Ok(Window(steps as u16))
        } else {
            Err(OtpError::Window(steps))
        }
    }

    /// The number of steps either side.
    ///
    /// ```
    /// assert_eq!(otp::Window::ONE.get(), 1);
    /// ```
    pub const fn get(self) -> u16 {
        self.0
    }
}
