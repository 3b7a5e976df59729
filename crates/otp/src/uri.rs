//! `otpauth://` key URIs, the format authenticator apps scan from a QR code
//! (Google Authenticator's "Key Uri Format", which every authenticator app follows):
//! `otpauth://TYPE/ISSUER:ACCOUNT?secret=BASE32&issuer=ISSUER&algorithm=SHA1&digits=6&period=30`.

use crate::{Algorithm, Digits, Interval, OtpError, Secret};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use std::fmt;
use zeroize::Zeroizing;

/// Everything but RFC 3986 `unreserved` is percent-encoded, in the label and in values, so
/// that `:`, `&`, `=`, `?`, `#`, `/`, `%`, `+` and spaces can never change the structure.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Whether the key counts time steps or events.
///
/// ```
/// let kind = otp::OtpKind::Hotp { counter: 5 };
/// assert_eq!(kind.as_str(), "hotp");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpKind {
    /// Time-based (RFC 6238), with its time step (`period`, default 30).
    Totp {
        /// The time step.
        period: Interval,
    },
    /// Counter-based (RFC 4226), with the next counter value (`counter`, required).
    Hotp {
        /// The next counter value.
        counter: u64,
    },
}

impl OtpKind {
    /// `totp` or `hotp`, as in the URI's host part.
    ///
    /// ```
    /// assert_eq!(otp::OtpKind::Totp { period: otp::Interval::THIRTY_SECONDS }.as_str(), "totp");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            OtpKind::Totp { .. } => "totp",
            OtpKind::Hotp { .. } => "hotp",
        }
    }
}

/// A parsed or built `otpauth://` key URI.
///
/// Invariants: the account name is non-empty; neither it nor the issuer contains a colon
/// (the key URI format forbids one, since `:` separates them in the label) or a control
/// character, or begins or ends with a space. `Debug` redacts the secret;
/// [`KeyUri::to_uri`] does not (it is what the person scans), so treat its output as the
/// secret itself.
///
/// ```
/// use otp::{Algorithm, Digits, Interval, KeyUri, OtpKind, Secret};
/// let secret = Secret::from_base32("JBSWY3DPEHPK3PXP")?;
/// let uri = KeyUri::new(
///     OtpKind::Totp { period: Interval::THIRTY_SECONDS },
///     secret,
///     "alice@example.com",
///     Some("ACME Co"),
///     Algorithm::Sha1,
///     Digits::SIX,
/// )?;
/// let text = uri.to_uri();
/// assert_eq!(
///     text.as_str(),
///     "otpauth://totp/ACME%20Co:alice%40example.com?secret=JBSWY3DPEHPK3PXP\
///      &issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30"
/// );
/// assert_eq!(KeyUri::parse(&text)?, uri);
/// # Ok::<(), otp::OtpError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct KeyUri {
    kind: OtpKind,
    secret: Secret,
    account: String,
    issuer: Option<String>,
    algorithm: Algorithm,
    digits: Digits,
}

impl KeyUri {
    /// Builds a key URI, checking the label rules stated on the type.
    ///
    /// ```
    /// # use otp::*;
    /// let secret = Secret::generate(20)?;
    /// let kind = OtpKind::Totp { period: Interval::THIRTY_SECONDS };
    /// assert!(KeyUri::new(kind, secret.clone(), "bob", None, Algorithm::Sha1, Digits::SIX).is_ok());
    /// assert!(KeyUri::new(kind, secret, "a:b", None, Algorithm::Sha1, Digits::SIX).is_err());
    /// # Ok::<(), otp::OtpError>(())
    /// ```
    pub fn new(
        kind: OtpKind,
        secret: Secret,
        account: &str,
        issuer: Option<&str>,
        algorithm: Algorithm,
        digits: Digits,
    ) -> Result<Self, OtpError> {
        check_label_part(
            account,
            "account name must be non-empty, without ':', control characters or surrounding spaces",
        )?;
        if let Some(issuer) = issuer {
            check_label_part(
                issuer,
                "issuer must be non-empty, without ':', control characters or surrounding spaces",
            )?;
        }
        Ok(KeyUri {
            kind,
            secret,
            account: account.to_owned(),
            issuer: issuer.map(str::to_owned),
            algorithm,
            digits,
        })
    }

    /// Parses `otpauth://totp/…` and `otpauth://hotp/…`.
    ///
    /// The issuer may come from the label prefix, the `issuer` parameter or both (then they
    /// must agree). Defaults: `algorithm=SHA1`, `digits=6`, `period=30`; `secret` is
    /// required, and so is `counter` for HOTP. Parameters this format does not define (such
    /// as `image`) are ignored; a repeated one is an error.
    ///
    /// ```
    /// # use otp::*;
    /// let uri = KeyUri::parse("otpauth://hotp/Example:alice?secret=JBSWY3DPEHPK3PXP&counter=7")?;
    /// assert_eq!(uri.kind(), OtpKind::Hotp { counter: 7 });
    /// assert_eq!(uri.issuer(), Some("Example"));
    /// assert_eq!(uri.account(), "alice");
    /// assert!(KeyUri::parse("otpauth://totp/alice?digits=6").is_err()); // no secret
    /// # Ok::<(), otp::OtpError>(())
    /// ```
    pub fn parse(text: &str) -> Result<Self, OtpError> {
        let rest = strip_prefix_ignore_case(text, "otpauth://")
            .ok_or(OtpError::Uri("scheme must be otpauth://"))?;
        if rest.contains('#') {
            return Err(OtpError::Uri("a fragment is not allowed"));
        }
        let (kind_name, rest) = rest.split_once('/').ok_or(OtpError::Uri("missing label"))?;
        let (label, query) = rest.split_once('?').unwrap_or((rest, ""));

        let (prefix, account) = split_label(label)?;
        let mut params = Params::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            params.set(key, value)?;
        }

        let secret = match params.secret.as_deref() {
            Some(b32) => Secret::from_base32(b32)?,
            None => return Err(OtpError::Uri("missing secret parameter")),
        };
        let issuer = match (prefix, params.issuer) {
            (Some(p), Some(q)) if p != q => {
                return Err(OtpError::Uri(
                    "issuer parameter differs from the label prefix",
                ));
            }
            (p, q) => q.or(p),
        };
        let algorithm = match params.algorithm {
            Some(a) => a.parse()?,
            None => Algorithm::Sha1,
        };
        let digits = match params.digits {
            Some(d) => Digits::new(number(&d, "digits must be a number")?)?,
            None => Digits::SIX,
        };
        let kind = if kind_name.eq_ignore_ascii_case("totp") {
            if params.counter.is_some() {
                return Err(OtpError::Uri("counter is not a totp parameter"));
            }
            let period = match params.period {
                Some(p) => Interval::new(number(&p, "period must be a number")?)?,
                None => Interval::THIRTY_SECONDS,
            };
            OtpKind::Totp { period }
        } else if kind_name.eq_ignore_ascii_case("hotp") {
            if params.period.is_some() {
                return Err(OtpError::Uri("period is not a hotp parameter"));
            }
            let counter = params
                .counter
                .ok_or(OtpError::Uri("missing counter parameter for hotp"))?;
            OtpKind::Hotp {
                counter: number(&counter, "counter must be a number")?,
            }
        } else {
            return Err(OtpError::Uri("type must be totp or hotp"));
        };
        KeyUri::new(kind, secret, &account, issuer.as_deref(), algorithm, digits)
    }

    /// The URI text, with every parameter written out (so parsing it gives back an equal
    /// `KeyUri`). It contains the secret: it is zeroized when dropped.
    ///
    /// ```
    /// # use otp::*;
    /// let uri = KeyUri::parse("otpauth://totp/bob?secret=jbswy3dpehpk3pxp")?;
    /// assert_eq!(
    ///     uri.to_uri().as_str(),
    ///     "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&algorithm=SHA1&digits=6&period=30"
    /// );
    /// # Ok::<(), otp::OtpError>(())
    /// ```
    pub fn to_uri(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::with_capacity(160));
        out.push_str("otpauth://");
        out.push_str(self.kind.as_str());
        out.push('/');
        if let Some(issuer) = &self.issuer {
            out.extend(utf8_percent_encode(issuer, ENCODE));
            out.push(':');
        }
        out.extend(utf8_percent_encode(&self.account, ENCODE));
        out.push_str("?secret=");
        out.push_str(&self.secret.to_base32());
        if let Some(issuer) = &self.issuer {
            out.push_str("&issuer=");
            out.extend(utf8_percent_encode(issuer, ENCODE));
        }
        out.push_str("&algorithm=");
        out.push_str(self.algorithm.as_str());
        out.push_str("&digits=");
        out.push_str(&self.digits.to_string());
        match self.kind {
            OtpKind::Totp { period } => {
                out.push_str("&period=");
                out.push_str(&period.seconds().to_string());
            }
            OtpKind::Hotp { counter } => {
                out.push_str("&counter=");
                out.push_str(&counter.to_string());
            }
        }
        out
    }

    /// TOTP or HOTP, with the period or counter.
    ///
    /// ```
    /// # use otp::*;
    /// let uri = KeyUri::parse("otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&period=60")?;
    /// assert_eq!(uri.kind(), OtpKind::Totp { period: Interval::new(60)? });
    /// # Ok::<(), otp::OtpError>(())
    /// ```
    pub fn kind(&self) -> OtpKind {
        self.kind
    }

    /// The shared secret.
    ///
    /// ```
    /// # use otp::*;
    /// let uri = KeyUri::parse("otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP")?;
    /// assert_eq!(uri.secret().to_base32().as_str(), "JBSWY3DPEHPK3PXP");
    /// # Ok::<(), otp::OtpError>(())
    /// ```
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// The account name.
    ///
    /// ```
    /// # use otp::*;
    /// let uri = KeyUri::parse("otpauth://totp/Acme:%20bob?secret=JBSWY3DPEHPK3PXP")?;
    /// assert_eq!(uri.account(), "bob"); // spaces after the colon are allowed and dropped
    /// # Ok::<(), otp::OtpError>(())
    /// ```
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The issuer (the service's name), if any.
    ///
    /// ```
    /// # use otp::*;
    /// let uri = KeyUri::parse("otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&issuer=Acme")?;
    /// assert_eq!(uri.issuer(), Some("Acme"));
    /// # Ok::<(), otp::OtpError>(())
    /// ```
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The HMAC hash.
    ///
    /// ```
    /// # use otp::*;
    /// let uri = KeyUri::parse("otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&algorithm=SHA512")?;
    /// assert_eq!(uri.algorithm(), Algorithm::Sha512);
    /// # Ok::<(), otp::OtpError>(())
    /// ```
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The code length.
    ///
    /// ```
    /// # use otp::*;
    /// let uri = KeyUri::parse("otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&digits=8")?;
    /// assert_eq!(uri.digits(), Digits::EIGHT);
    /// # Ok::<(), otp::OtpError>(())
    /// ```
    pub fn digits(&self) -> Digits {
        self.digits
    }
}

impl fmt::Debug for KeyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyUri")
            .field("kind", &self.kind)
            .field("secret", &self.secret)
            .field("account", &self.account)
            .field("issuer", &self.issuer)
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .finish()
    }
}

/// The parameters this format defines, percent-decoded; each may be given once.
#[derive(Default)]
struct Params {
    secret: Option<Zeroizing<String>>,
    issuer: Option<String>,
    algorithm: Option<String>,
    digits: Option<String>,
    period: Option<String>,
    counter: Option<String>,
}

impl Params {
    fn set(&mut self, key: &str, value: &str) -> Result<(), OtpError> {
        let slot = match key {
            "secret" => {
                if self.secret.is_some() {
                    return Err(OtpError::Uri("parameter secret appears twice"));
                }
                self.secret = Some(Zeroizing::new(decode(value)?));
                return Ok(());
            }
            "issuer" => &mut self.issuer,
            "algorithm" => &mut self.algorithm,
            "digits" => &mut self.digits,
            "period" => &mut self.period,
            "counter" => &mut self.counter,
            _ => return Ok(()), // e.g. `image`, `color`: not ours to interpret
        };
        if slot.is_some() {
            return Err(OtpError::Uri("a parameter appears twice"));
        }
        *slot = Some(decode(value)?);
        Ok(())
    }
}

fn decode(text: &str) -> Result<String, OtpError> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| OtpError::Uri("percent-encoding is not valid UTF-8"))
}

/// Splits the label at the first colon, literal or `%3A`, into issuer prefix and account.
/// Spaces after the colon are dropped (the format allows `Issuer: account`).
fn split_label(label: &str) -> Result<(Option<String>, String), OtpError> {
    let literal = label.find(':').map(|i| (i, 1));
    let encoded = label.to_ascii_lowercase().find("%3a").map(|i| (i, 3));
    let split = match (literal, encoded) {
        (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
        (a, b) => a.or(b),
    };
    match split {
        Some((at, width)) => {
            let prefix = decode(label.get(..at).unwrap_or_default())?;
            let account = decode(label.get(at + width..).unwrap_or_default())?;
            Ok((Some(prefix), account.trim_start_matches(' ').to_owned()))
        }
        None => Ok((None, decode(label)?)),
    }
}

fn check_label_part(value: &str, message: &'static str) -> Result<(), OtpError> {
    let bad = value.is_empty()
        || value.contains(':')
        || value.chars().any(char::is_control)
        || value.starts_with(' ')
        || value.ends_with(' ');
    if bad {
        Err(OtpError::Uri(message))
    } else {
        Ok(())
    }
}

/// A decimal number of ASCII digits only (no sign, no spaces).
fn number(text: &str, message: &'static str) -> Result<u64, OtpError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(OtpError::Uri(message));
    }
    text.parse().map_err(|_| OtpError::Uri(message))
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text.get(prefix.len()..))
        .flatten()
}
