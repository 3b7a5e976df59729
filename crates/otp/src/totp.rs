//! TOTP, RFC 6238: HOTP over the time step `T = floor(unix_time / X)` (with `T0 = 0`), and
//! the server side of it: windowed verification that refuses replays, and resynchronization.

use crate::hotp::KeyedMac;
use crate::{Algorithm, Digits, Interval, OtpCode, Secret, Window};
use subtle::{Choice, ConditionallySelectable};

/// A TOTP configuration: hash, code length and time step.
///
/// ```
/// use otp::{Algorithm, Digits, Interval, Secret, Totp};
/// let secret = Secret::from_bytes(b"12345678901234567890".to_vec())?;
/// let totp = Totp::new(Algorithm::Sha1, Digits::EIGHT, Interval::THIRTY_SECONDS);
/// // RFC 6238 Appendix B, T = 59 s.
/// assert_eq!(totp.generate(&secret, 59).to_string(), "94287082");
/// # Ok::<(), otp::OtpError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totp {
    /// The HMAC hash.
    pub algorithm: Algorithm,
    /// The code length.
    pub digits: Digits,
    /// The time step `X`.
    pub interval: Interval,
}

/// What a verification is checked against: the caller's clock and the state it stores for
/// the authenticator.
///
/// ```
/// let check = otp::Check { now: 1_700_000_000, window: otp::Window::ONE, drift: 0, last_used_step: None };
/// assert_eq!(check.window.get(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// The current Unix time in seconds, from the caller's (injected) clock.
    pub now: u64,
    /// How many steps either side of the expected step are accepted.
    pub window: Window,
    /// The device's learned clock offset in steps: the expected step is `step(now) + drift`.
    pub drift: i64,
    /// The last step this authenticator accepted; it and every earlier step are refused
    /// (RFC 6238 §5.2: a code must not be accepted twice).
    pub last_used_step: Option<u64>,
}

/// The outcome of [`Totp::verify`].
///
/// ```
/// # use otp::*;
/// let v = Verification::Valid { step: 10, drift: 0 };
/// assert!(v.is_valid());
/// assert!(!Verification::Invalid.is_valid());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The code matched `step`, which is after `last_used_step`. The caller must claim `step`
    /// atomically (so no other request can use it) and may store `drift`
    /// (`step - step(now)`) as the device's new clock offset.
    Valid {
        /// The matched time step.
        step: u64,
        /// `step - step(now)`: the device's clock offset in steps.
        drift: i64,
    },
    /// The code matched only a step at or before `last_used_step`: it was already used.
    Replayed {
        /// The matched time step.
        step: u64,
    },
    /// The code matched no step in the window.
    Invalid,
}

impl Verification {
    /// Whether the code is accepted.
    ///
    /// ```
    /// assert!(!otp::Verification::Replayed { step: 3 }.is_valid());
    /// ```
    pub fn is_valid(&self) -> bool {
        matches!(self, Verification::Valid { .. })
    }
}

/// The outcome of a successful [`Totp::resync`].
///
/// ```
/// let r = otp::Resync { step: 100, drift: -3 };
/// assert_eq!(r.drift, -3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resync {
    /// The step of the second code: the caller claims it as `last_used_step`.
    pub step: u64,
    /// The device's clock offset in steps (`step - step(now)`), to store as its drift.
    pub drift: i64,
}

impl Totp {
    /// A TOTP configuration.
    ///
    /// ```
    /// # use otp::*;
    /// let totp = Totp::new(Algorithm::Sha512, Digits::new(7)?, Interval::new(60)?);
    /// assert_eq!(totp.interval.seconds(), 60);
    /// # Ok::<(), otp::OtpError>(())
    /// ```
    pub const fn new(algorithm: Algorithm, digits: Digits, interval: Interval) -> Self {
        Totp {
            algorithm,
            digits,
            interval,
        }
    }

    /// The time step of `unix_time`.
    ///
    /// ```
    /// assert_eq!(otp::Totp::default().step(1_111_111_109), 37_037_036);
    /// ```
    pub const fn step(&self, unix_time: u64) -> u64 {
        self.interval.step(unix_time)
    }

    /// The code shown at `unix_time`.
    ///
    /// ```
    /// # use otp::*;
    /// let secret = Secret::from_bytes(b"12345678901234567890".to_vec())?;
    /// assert_eq!(Totp::default().generate(&secret, 59).to_string(), "287082");
    /// # Ok::<(), otp::OtpError>(())
    /// ```
    pub fn generate(&self, secret: &Secret, unix_time: u64) -> OtpCode {
        self.generate_at_step(secret, self.step(unix_time))
    }

    /// The code of time step `step`.
    ///
    /// ```
    /// # use otp::*;
    /// let secret = Secret::from_bytes(b"12345678901234567890".to_vec())?;
    /// assert_eq!(Totp::default().generate_at_step(&secret, 1).to_string(), "287082");
    /// # Ok::<(), otp::OtpError>(())
    /// ```
    pub fn generate_at_step(&self, secret: &Secret, step: u64) -> OtpCode {
        KeyedMac::new(self.algorithm, secret).code(step, self.digits)
    }

    /// Verifies `code` against the steps `step(now) + drift ± window`.
    ///
    /// Every candidate step is computed and compared in constant time, in the same order,
    /// whether or not an earlier one matched, so timing does not tell which step (if any)
    /// matched. When several steps match, the one nearest the expected step wins (earlier
    /// first on a tie). Steps at or before `last_used_step` never count as valid; a code that
    /// matches only such a step is [`Verification::Replayed`]. A code of another length is
    /// [`Verification::Invalid`].
    ///
    /// ```
    /// # use otp::*;
    /// let secret = Secret::from_bytes(b"12345678901234567890".to_vec())?;
    /// let totp = Totp::default();
    /// let code = totp.generate(&secret, 1_000_000);
    /// let mut check = Check { now: 1_000_000 + 30, window: Window::ONE, drift: 0, last_used_step: None };
    /// let step = totp.step(1_000_000);
    /// assert_eq!(totp.verify(&secret, &code, &check), Verification::Valid { step, drift: -1 });
    /// check.last_used_step = Some(step);
    /// assert_eq!(totp.verify(&secret, &code, &check), Verification::Replayed { step });
    /// # Ok::<(), otp::OtpError>(())
    /// ```
    pub fn verify(&self, secret: &Secret, code: &OtpCode, check: &Check) -> Verification {
        let now_step = self.step(check.now);
        let center = i128::from(now_step) + i128::from(check.drift);
        let last_used = check.last_used_step.map(i128::from).unwrap_or(-1);
        let mac = KeyedMac::new(self.algorithm, secret);

        let mut valid = Choice::from(0);
        let mut valid_step = 0u64;
        let mut replayed = Choice::from(0);
        let mut replayed_step = 0u64;
        for offset in nearest_first(check.window) {
            let Some(step) = step_at(center, offset) else {
                continue; // before the epoch or past u64: not a step any device can show
            };
            let hit = code.ct_matches(&mac.code(step, self.digits));
            let fresh = Choice::from(u8::from(i128::from(step) > last_used));
            valid_step.conditional_assign(&step, hit & fresh & !valid);
            valid |= hit & fresh;
            replayed_step.conditional_assign(&step, hit & !fresh & !replayed);
            replayed |= hit & !fresh;
        }
        if bool::from(valid) {
            Verification::Valid {
                step: valid_step,
                drift: drift_of(valid_step, now_step),
            }
        } else if bool::from(replayed) {
            Verification::Replayed {
                step: replayed_step,
            }
        } else {
            Verification::Invalid
        }
    }

    /// Finds two consecutive codes (`first` at step `s`, `second` at `s + 1`) within
    /// `step(now) ± search` and returns the device's drift, so a device whose clock has
    /// wandered outside the verification window can be recovered. The stored drift is not
    /// used: resync is for when it is wrong. Both steps must be after `last_used_step`.
    ///
    /// ```
    /// # use otp::*;
    /// let secret = Secret::from_bytes(b"12345678901234567890".to_vec())?;
    /// let totp = Totp::default();
    /// let now = 1_000_000 * 30;
    /// let device = now - 40 * 30; // the device is 40 steps behind
    /// let first = totp.generate(&secret, device);
    /// let second = totp.generate(&secret, device + 30);
    /// let r = totp.resync(&secret, &first, &second, now, Window::new(100)?, None);
    /// assert_eq!(r, Some(Resync { step: 1_000_000 - 39, drift: -39 }));
    /// # Ok::<(), otp::OtpError>(())
    /// ```
    pub fn resync(
        &self,
        secret: &Secret,
        first: &OtpCode,
        second: &OtpCode,
        now: u64,
        search: Window,
        last_used_step: Option<u64>,
    ) -> Option<Resync> {
        let now_step = self.step(now);
        let center = i128::from(now_step);
        let last_used = last_used_step.map(i128::from).unwrap_or(-1);
        let mac = KeyedMac::new(self.algorithm, secret);

        let mut found = Choice::from(0);
        let mut found_step = 0u64;
        for offset in nearest_first(search) {
            let (Some(step), Some(next)) = (step_at(center, offset), step_at(center, offset + 1))
            else {
                continue;
            };
            let hit = first.ct_matches(&mac.code(step, self.digits))
                & second.ct_matches(&mac.code(next, self.digits))
                & Choice::from(u8::from(i128::from(step) > last_used));
            found_step.conditional_assign(&next, hit & !found);
            found |= hit;
        }
        bool::from(found).then(|| Resync {
            step: found_step,
            drift: drift_of(found_step, now_step),
        })
    }
}

/// Offsets `0, -1, 1, -2, 2, …, -w, w`: nearest the expected step first.
fn nearest_first(window: Window) -> impl Iterator<Item = i128> {
    let w = i128::from(window.get());
    std::iter::once(0).chain((1..=w).flat_map(|d| [-d, d]))
}

fn step_at(center: i128, offset: i128) -> Option<u64> {
    u64::try_from(center + offset).ok()
}

fn drift_of(step: u64, now_step: u64) -> i64 {
    let drift = i128::from(step) - i128::from(now_step);
    i64::try_from(drift).unwrap_or(if drift < 0 { i64::MIN } else { i64::MAX })
}
