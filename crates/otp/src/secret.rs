//! Shared secrets (the HMAC key `K` of RFC 4226 §5.1): generation, base32 and fingerprints.

use crate::OtpError;
use data_encoding::{BASE32_NOPAD, HEXLOWER};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// A TOTP/HOTP shared secret.
///
/// Invariants: the bytes are zeroized when the value is dropped; `Debug` never shows them;
/// the length is within [`Secret::MIN_LEN`]..=[`Secret::MAX_LEN`].
///
/// ```
/// use otp::Secret;
/// let secret = Secret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")?;
/// assert_eq!(secret.as_bytes(), b"12345678901234567890");
/// assert_eq!(format!("{secret:?}"), "Secret([redacted; 20 bytes])");
/// # Ok::<(), otp::OtpError>(())
/// ```
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// The default length of a generated secret: 160 bits, as RFC 4226 §4 (R6) recommends.
    pub const DEFAULT_LEN: usize = 20;
    /// The shortest secret [`Secret::generate`] makes: 128 bits, RFC 4226 §4 (R6)'s minimum.
    pub const MIN_GENERATED_LEN: usize = 16;
    /// The longest secret [`Secret::generate`] makes (one SHA-512 block).
    pub const MAX_GENERATED_LEN: usize = 64;
    /// The shortest secret accepted from outside. Shorter than RFC 4226's 128 bits because
    /// many deployed tokens carry 80-bit secrets; a server's policy may demand more.
    pub const MIN_LEN: usize = 10;
    /// The longest secret accepted from outside.
    pub const MAX_LEN: usize = 128;

    /// Generates `len` bytes from the operating system's CSPRNG; `len` must be within
    /// [`Secret::MIN_GENERATED_LEN`]..=[`Secret::MAX_GENERATED_LEN`].
    ///
    /// ```
    /// let secret = otp::Secret::generate(otp::Secret::DEFAULT_LEN)?;
    /// assert_eq!(secret.len(), 20);
    /// # Ok::<(), otp::OtpError>(())
    /// ```
    pub fn generate(len: usize) -> Result<Self, OtpError> {
        if !(Self::MIN_GENERATED_LEN..=Self::MAX_GENERATED_LEN).contains(&len) {
            return Err(OtpError::SecretLength {
                min: Self::MIN_GENERATED_LEN,
                max: Self::MAX_GENERATED_LEN,
                got: len,
            });
        }
        let mut bytes = vec![0u8; len];
        getrandom::fill(&mut bytes).map_err(|_| OtpError::Random)?;
        Ok(Secret(bytes))
    }

    /// Takes raw secret bytes (for example, just opened from sealed storage). The caller's
    /// buffer is moved in, not copied, so only one copy needs zeroizing.
    ///
    /// ```
    /// let secret = otp::Secret::from_bytes(b"12345678901234567890".to_vec())?;
    /// assert_eq!(secret.len(), 20);
    /// # Ok::<(), otp::OtpError>(())
    /// ```
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, OtpError> {
        let bytes = Zeroizing::new(bytes);
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&bytes.len()) {
            return Err(OtpError::SecretLength {
                min: Self::MIN_LEN,
                max: Self::MAX_LEN,
                got: bytes.len(),
            });
        }
        let mut bytes = bytes;
        Ok(Secret(std::mem::take(&mut *bytes)))
    }

    /// Parses base32 (RFC 4648 §6) as people and apps write it: case-insensitive, with any
    /// spaces, hyphens and trailing `=` padding ignored. Non-canonical trailing bits are
    /// refused, so that every accepted string names exactly one secret.
    ///
    /// ```
    /// let a = otp::Secret::from_base32("jbsw y3dp-ehpk 3pxp")?;
    /// let b = otp::Secret::from_base32("JBSWY3DPEHPK3PXP")?;
    /// assert_eq!(a, b);
    /// # Ok::<(), otp::OtpError>(())
    /// ```
    pub fn from_base32(text: &str) -> Result<Self, OtpError> {
        let mut normalized = Zeroizing::new(Vec::with_capacity(text.len()));
        normalized.extend(
            text.bytes()
                .filter(|b| *b != b' ' && *b != b'-')
                .map(|b| b.to_ascii_uppercase()),
        );
        while normalized.last() == Some(&b'=') {
            normalized.pop();
        }
        let len = BASE32_NOPAD
            .decode_len(normalized.len())
            .map_err(|_| OtpError::Base32)?;
        let mut out = Zeroizing::new(vec![0u8; len]);
        let written = BASE32_NOPAD
            .decode_mut(&normalized, &mut out)
            .map_err(|_| OtpError::Base32)?;
        out.truncate(written);
        Self::from_bytes(std::mem::take(&mut *out))
    }

    /// The secret as unpadded upper-case base32, the form key URIs and apps use.
    /// The returned string is zeroized when dropped.
    ///
    /// ```
    /// let secret = otp::Secret::from_bytes(b"Hello!\xDE\xAD\xBE\xEF".to_vec())?;
    /// assert_eq!(secret.to_base32().as_str(), "JBSWY3DPEHPK3PXP");
    /// # Ok::<(), otp::OtpError>(())
    /// ```
    pub fn to_base32(&self) -> Zeroizing<String> {
        Zeroizing::new(BASE32_NOPAD.encode(&self.0))
    }

    /// The SHA-256 of the secret bytes as 64 lower-case hex characters: an identifier that
    /// reveals nothing usable (ONTAP's `sha_fingerprint`).
    ///
    /// ```
    /// let secret = otp::Secret::from_bytes(b"12345678901234567890".to_vec())?;
    /// let fp = secret.fingerprint();
    /// assert_eq!(fp.len(), 64);
    /// assert!(fp.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    /// # Ok::<(), otp::OtpError>(())
    /// ```
    pub fn fingerprint(&self) -> String {
        HEXLOWER.encode(&Sha256::digest(&self.0))
    }

    /// The raw secret bytes. Keep the borrow short; never log them.
    ///
    /// ```
    /// let secret = otp::Secret::from_bytes(vec![7; 16])?;
    /// assert_eq!(secret.as_bytes(), &[7; 16]);
    /// # Ok::<(), otp::OtpError>(())
    /// ```
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The length in bytes.
    ///
    /// ```
    /// assert_eq!(otp::Secret::generate(32)?.len(), 32);
    /// # Ok::<(), otp::OtpError>(())
    /// ```
    #[allow(clippy::len_without_is_empty)] // a secret is never empty
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// Equality runs in constant time for secrets of equal length.
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret([redacted; {} bytes])", self.0.len())
    }
}
