//! Property tests: the verification rules and the round trips hold for arbitrary inputs.

use otp::{
    Algorithm, Check, Digits, Interval, KeyUri, OtpCode, OtpKind, Secret, Totp, Verification,
    Window,
};
use proptest::prelude::*;

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop_oneof![
        Just(Algorithm::Sha1),
        Just(Algorithm::Sha256),
        Just(Algorithm::Sha512)
    ]
}

fn totp() -> impl Strategy<Value = Totp> {
    (algorithm(), 6u64..=8, 1u64..=600)
        .prop_map(|(a, d, i)| Totp::new(a, Digits::new(d).unwrap(), Interval::new(i).unwrap()))
}

fn secret() -> impl Strategy<Value = Secret> {
    prop::collection::vec(any::<u8>(), Secret::MIN_LEN..=Secret::MAX_LEN)
        .prop_map(|b| Secret::from_bytes(b).unwrap())
}

/// Whether `code` also happens to be the code of some step in `steps` (a 10^-digits chance
/// per step that the properties must allow for).
fn collides(
    totp: &Totp,
    secret: &Secret,
    code: &OtpCode,
    steps: impl IntoIterator<Item = u64>,
) -> bool {
    steps
        .into_iter()
        .any(|s| totp.generate_at_step(secret, s) == *code)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A code for step `s` verifies exactly when `s` is within `expected ± window`, and then
    /// names `s` (or a colliding nearer step).
    #[test]
    fn window_is_exact(
        totp in totp(),
        secret in secret(),
        now in 0u64..=10_000_000_000_000,
        drift in -50i64..=50,
        window in 0u64..=5,
        offset in -8i64..=8,
    ) {
        let window = Window::new(window).unwrap();
        let now_step = totp.step(now);
        let expected = now_step as i128 + drift as i128;
        let step = expected + offset as i128;
        prop_assume!(step >= 0);
        let step = step as u64;
        let code = totp.generate_at_step(&secret, step);
        let check = Check { now, window, drift, last_used_step: None };
        let result = totp.verify(&secret, &code, &check);
        let w = window.get() as i128;
        let in_window: Vec<u64> = (expected - w..=expected + w)
            .filter(|s| *s >= 0)
            .map(|s| s as u64)
            .collect();
        if offset.unsigned_abs() <= u64::from(window.get()) {
            match result {
                Verification::Valid { step: got, drift: d } => {
                    prop_assert!(got == step || collides(&totp, &secret, &code, [got]));
                    prop_assert_eq!(d as i128, got as i128 - now_step as i128);
                }
                other => prop_assert!(false, "in-window code gave {:?}", other),
            }
        } else if !collides(&totp, &secret, &code, in_window) {
            prop_assert_eq!(result, Verification::Invalid);
        }
    }

    /// No step at or below `last_used_step` is ever accepted.
    #[test]
    fn never_at_or_below_last_used(
        totp in totp(),
        secret in secret(),
        now in 0u64..=10_000_000_000_000,
        window in 0u64..=5,
        back in 0u64..=6,
        offset in -5i64..=5,
    ) {
        let now_step = totp.step(now);
        let last_used = now_step.saturating_sub(back);
        let step = now_step.saturating_add_signed(offset);
        let code = totp.generate_at_step(&secret, step);
        let check = Check { now, window: Window::new(window).unwrap(), drift: 0, last_used_step: Some(last_used) };
        match totp.verify(&secret, &code, &check) {
            Verification::Valid { step: got, .. } => prop_assert!(got > last_used),
            Verification::Replayed { step: got } => prop_assert!(got <= last_used),
            Verification::Invalid => {}
        }
    }

    /// Verification never panics, whatever the input.
    #[test]
    fn verify_never_panics(
        text in ".{0,40}",
        now in any::<u64>(),
        drift in any::<i64>(),
        last in any::<Option<u64>>(),
        digits in 6u64..=8,
    ) {
        let digits = Digits::new(digits).unwrap();
        let secret = Secret::from_bytes(vec![1; 20]).unwrap();
        if let Ok(code) = OtpCode::parse(&text, digits) {
            let check = Check { now, window: Window::new(3).unwrap(), drift, last_used_step: last };
            let _ = Totp::new(Algorithm::Sha1, digits, Interval::THIRTY_SECONDS).verify(&secret, &code, &check);
        }
        let _ = Secret::from_base32(&text);
        let _ = KeyUri::parse(&text);
        let _ = KeyUri::parse(&format!("otpauth://totp/{text}"));
        let _ = text.parse::<Algorithm>();
    }

    /// Only strings of exactly `digits` ASCII digits (plus ASCII spaces) parse, and the
    /// parsed code prints back as those digits.
    #[test]
    fn code_parse_is_exact(text in "[0-9 +\\-a٣]{0,12}", digits in 6u64..=8) {
        let digits = Digits::new(digits).unwrap();
        let stripped: String = text.chars().filter(|c| *c != ' ').collect();
        let valid = stripped.len() == usize::from(digits.get()) && stripped.bytes().all(|b| b.is_ascii_digit());
        match OtpCode::parse(&text, digits) {
            Ok(code) => {
                prop_assert!(valid);
                prop_assert_eq!(code.to_string(), stripped);
            }
            Err(_) => prop_assert!(!valid),
        }
    }

    #[test]
    fn base32_round_trip(secret in secret()) {
        let text = secret.to_base32();
        prop_assert!(!text.contains('='));
        let back = Secret::from_base32(&text).unwrap();
        prop_assert_eq!(&back, &secret);
        let lower = text.to_lowercase();
        prop_assert_eq!(Secret::from_base32(&lower).unwrap(), secret);
    }

    #[test]
    fn key_uri_round_trip(
        secret in secret(),
        account in "[^:\\p{Cc}]{1,30}",
        issuer in proptest::option::of("[^:\\p{Cc}]{1,20}"),
        algorithm in algorithm(),
        digits in 6u64..=8,
        hotp in any::<bool>(),
        number in 1u64..=u64::MAX,
    ) {
        prop_assume!(!account.starts_with(' ') && !account.ends_with(' '));
        prop_assume!(issuer.as_ref().is_none_or(|i| !i.starts_with(' ') && !i.ends_with(' ')));
        let kind = if hotp {
            OtpKind::Hotp { counter: number }
        } else {
            OtpKind::Totp { period: Interval::new(number).unwrap() }
        };
        let uri = KeyUri::new(kind, secret, &account, issuer.as_deref(), algorithm, Digits::new(digits).unwrap()).unwrap();
        let text = uri.to_uri();
        let parsed = KeyUri::parse(&text).unwrap();
        prop_assert_eq!(&parsed, &uri);
        let again = parsed.to_uri();
        prop_assert_eq!(again.as_str(), text.as_str());
    }
}
