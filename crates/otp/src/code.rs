//! Submitted one-time codes, parsed before they reach the engine.

use crate::{Digits, OtpError};
use std::fmt;
use subtle::{Choice, ConstantTimeEq};

/// A one-time code: exactly [`Digits`] decimal digits.
///
/// Parsing removes ASCII spaces (people type `123 456`) and nothing else; a sign, a tab,
/// padding to another length or a non-ASCII digit is [`OtpError::CodeFormat`]. So there is
/// exactly one spelling of each code and no way to pass a longer or shorter value.
/// `Debug` does not show the digits.
///
/// ```
/// use otp::{Digits, OtpCode};
/// let code = OtpCode::parse(" 287 082", Digits::SIX)?;
/// assert_eq!(code.to_string(), "287082");
/// assert!(OtpCode::parse("0287082", Digits::SIX).is_err());
/// assert!(OtpCode::parse("+87082", Digits::SIX).is_err());
/// assert!(OtpCode::parse("２８７０８２", Digits::SIX).is_err());
/// # Ok::<(), otp::OtpError>(())
/// ```
#[derive(Clone, Copy)]
pub struct OtpCode {
    value: u32,
    digits: Digits,
}

impl OtpCode {
    /// Parses a code of exactly `digits` ASCII digits, ignoring ASCII spaces.
    ///
    /// ```
    /// let code = otp::OtpCode::parse("94287082", otp::Digits::EIGHT)?;
    /// assert_eq!(code.digits(), otp::Digits::EIGHT);
    /// # Ok::<(), otp::OtpError>(())
    /// ```
    pub fn parse(text: &str, digits: Digits) -> Result<Self, OtpError> {
        let error = OtpError::CodeFormat {
            expected: digits.get(),
        };
        let mut value: u32 = 0;
        let mut count: u8 = 0;
        for byte in text.bytes() {
            match byte {
                b' ' => continue,
                b'0'..=b'9' => {
                    count += 1;
                    if count > digits.get() {
                        return Err(error);
                    }
                    // At most 8 digits, so this stays below 10^8 and cannot overflow.
                    value = value * 10 + u32::from(byte - b'0');
                }
                _ => return Err(error),
            }
        }
        if count == digits.get() {
            Ok(OtpCode { value, digits })
        } else {
            Err(error)
        }
    }

    /// Builds a code from its numeric value (what HOTP computes); `value` is reduced modulo
    /// `10^digits`.
    ///
    /// ```
    /// let code = otp::OtpCode::from_value(755224, otp::Digits::SIX);
    /// assert_eq!(code.to_string(), "755224");
    /// ```
    pub fn from_value(value: u32, digits: Digits) -> Self {
        OtpCode {
            value: value % digits.modulus(),
            digits,
        }
    }

    /// The number of digits.
    ///
    /// ```
    /// assert_eq!(otp::OtpCode::from_value(1, otp::Digits::SIX).digits().get(), 6);
    /// ```
    pub fn digits(&self) -> Digits {
        self.digits
    }

    /// The numeric value (leading zeros are not part of it; see `Display`).
    ///
    /// ```
    /// assert_eq!(otp::OtpCode::parse("000123", otp::Digits::SIX)?.value(), 123);
    /// # Ok::<(), otp::OtpError>(())
    /// ```
    pub fn value(&self) -> u32 {
        self.value
    }

    /// Compares in constant time; codes of different lengths never match.
    pub(crate) fn ct_matches(&self, other: &OtpCode) -> Choice {
        self.value.ct_eq(&other.value) & self.digits.get().ct_eq(&other.digits.get())
    }
}

/// Zero-padded to the code's length, as an authenticator app shows it.
impl fmt::Display for OtpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:0width$}",
            self.value,
            width = usize::from(self.digits.get())
        )
    }
}

impl fmt::Debug for OtpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OtpCode([redacted; {} digits])", self.digits.get())
    }
}

/// Equality runs in constant time.
impl PartialEq for OtpCode {
    fn eq(&self, other: &Self) -> bool {
        self.ct_matches(other).into()
    }
}

impl Eq for OtpCode {}
