//! HOTP, RFC 4226: `HOTP(K, C) = Truncate(HMAC(K, C)) mod 10^Digit`.

use crate::{Algorithm, Digits, OtpCode, Secret, Window};
use hmac::digest::common::Key;
use hmac::digest::{KeyInit, Mac};
use hmac::{EagerHash, Hmac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::{Choice, ConditionallySelectable};
use zeroize::Zeroize;

/// An HMAC already keyed with a secret. Keying costs two compression-function calls; cloning
/// the keyed state for each counter saves them on every further candidate of a window.
/// The hash states are zeroized on drop (the `zeroize` features of `sha1`/`sha2`/`hmac`).
#[derive(Clone)]
pub(crate) enum KeyedMac {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
}

impl KeyedMac {
    pub(crate) fn new(algorithm: Algorithm, secret: &Secret) -> Self {
        let key = secret.as_bytes();
        match algorithm {
            Algorithm::Sha1 => KeyedMac::Sha1(keyed(key)),
            Algorithm::Sha256 => KeyedMac::Sha256(keyed(key)),
            Algorithm::Sha512 => KeyedMac::Sha512(keyed(key)),
        }
    }

    /// `Truncate(HMAC(K, C))` of RFC 4226 §5.3: a 31-bit number.
    pub(crate) fn truncated(&self, counter: u64) -> u32 {
        let message = counter.to_be_bytes();
        match self {
            KeyedMac::Sha1(mac) => dynamic_truncation(&finish(mac, &message)),
            KeyedMac::Sha256(mac) => dynamic_truncation(&finish(mac, &message)),
            KeyedMac::Sha512(mac) => dynamic_truncation(&finish(mac, &message)),
        }
    }

    /// The code for `counter`.
    pub(crate) fn code(&self, counter: u64, digits: Digits) -> OtpCode {
        OtpCode::from_value(self.truncated(counter), digits)
    }
}

fn finish<M: Mac + Clone>(mac: &M, message: &[u8]) -> hmac::digest::Output<M> {
    let mut mac = mac.clone();
    mac.update(message);
    mac.finalize().into_bytes()
}

/// Keys an HMAC infallibly. RFC 2104 §2: a key longer than the hash's block is replaced by
/// its hash, a shorter one is padded with zeros; `KeyInit::new` takes exactly one block.
fn keyed<D: EagerHash>(secret: &[u8]) -> Hmac<D> {
    let mut block = Key::<Hmac<D>>::default();
    let digest;
    let key: &[u8] = if secret.len() > block.len() {
        digest = D::digest(secret);
        &digest
    } else {
        secret
    };
    for (slot, byte) in block.iter_mut().zip(key) {
        *slot = *byte;
    }
    let mac = <Hmac<D> as KeyInit>::new(&block);
    block.as_mut_slice().zeroize();
    mac
}

/// Dynamic truncation, RFC 4226 §5.3 step 2: the low four bits of the last byte pick an
/// offset (0..=15); the four bytes there, top bit cleared, are the result. Every HMAC output
/// here is at least 20 bytes, so `offset + 3 <= 18` is always inside it.
fn dynamic_truncation(hash: &[u8]) -> u32 {
    let offset = usize::from(hash.last().copied().unwrap_or(0) & 0x0f);
    let mut word = [0u8; 4];
    for (slot, byte) in word.iter_mut().zip(hash.iter().skip(offset)) {
        *slot = *byte;
    }
    u32::from_be_bytes(word) & 0x7fff_ffff
}

/// HOTP (RFC 4226) with a chosen hash and length: generation and look-ahead verification.
///
/// ```
/// use otp::{Algorithm, Digits, Hotp, Secret};
/// let secret = Secret::from_bytes(b"12345678901234567890".to_vec())?;
/// let hotp = Hotp::new(Algorithm::Sha1, Digits::SIX);
/// // RFC 4226 Appendix D, counter 0.
/// assert_eq!(hotp.generate(&secret, 0).to_string(), "755224");
/// # Ok::<(), otp::OtpError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hotp {
    /// The HMAC hash.
    pub algorithm: Algorithm,
    /// The code length.
    pub digits: Digits,
}

impl Hotp {
    /// An HOTP generator.
    ///
    /// ```
    /// let hotp = otp::Hotp::new(otp::Algorithm::Sha256, otp::Digits::EIGHT);
    /// assert_eq!(hotp.digits.get(), 8);
    /// ```
    pub const fn new(algorithm: Algorithm, digits: Digits) -> Self {
        Hotp { algorithm, digits }
    }

    /// The code for `counter`.
    ///
    /// ```
    /// # use otp::{Algorithm, Digits, Hotp, Secret};
    /// let secret = Secret::from_bytes(b"12345678901234567890".to_vec())?;
    /// assert_eq!(Hotp::default().generate(&secret, 9).to_string(), "520489");
    /// # Ok::<(), otp::OtpError>(())
    /// ```
    pub fn generate(&self, secret: &Secret, counter: u64) -> OtpCode {
        KeyedMac::new(self.algorithm, secret).code(counter, self.digits)
    }

    /// Looks for `code` at counters `next..=next + look_ahead` (RFC 4226 §7.4) and returns the
    /// counter that matched; the caller stores `matched + 1` as the next counter. Every
    /// candidate is computed and compared in constant time whether or not one matched.
    ///
    /// ```
    /// # use otp::{Digits, Hotp, OtpCode, Secret, Window};
    /// let secret = Secret::from_bytes(b"12345678901234567890".to_vec())?;
    /// let code = OtpCode::parse("969429", Digits::SIX)?; // RFC 4226 Appendix D, counter 3
    /// assert_eq!(Hotp::default().verify(&secret, &code, 1, Window::new(5)?), Some(3));
    /// assert_eq!(Hotp::default().verify(&secret, &code, 4, Window::new(5)?), None);
    /// # Ok::<(), otp::OtpError>(())
    /// ```
    pub fn verify(
        &self,
        secret: &Secret,
        code: &OtpCode,
        next: u64,
        look_ahead: Window,
    ) -> Option<u64> {
        let mac = KeyedMac::new(self.algorithm, secret);
        let mut found = Choice::from(0);
        let mut matched = 0u64;
        for counter in (0..=u64::from(look_ahead.get())).filter_map(|i| next.checked_add(i)) {
            let hit = code.ct_matches(&mac.code(counter, self.digits));
            matched.conditional_assign(&counter, hit & !found);
            found |= hit;
        }
        bool::from(found).then_some(matched)
    }
}
