//! Windowed verification, replay refusal, drift and resync: the server-side rules.

use otp::{Algorithm, Check, Digits, Interval, OtpCode, Secret, Totp, Verification, Window};

const NOW: u64 = 1_763_856_015; // mid-step, so `now ± 30` stays in the neighbouring steps

fn setup() -> (Secret, Totp) {
    (
        Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap(),
        Totp::default(),
    )
}

fn check(drift: i64, last_used_step: Option<u64>) -> Check {
    Check {
        now: NOW,
        window: Window::ONE,
        drift,
        last_used_step,
    }
}

#[test]
fn accepts_the_window_and_reports_drift() {
    let (secret, totp) = setup();
    let now_step = totp.step(NOW);
    for offset in [-1i64, 0, 1] {
        let step = now_step.checked_add_signed(offset).unwrap();
        let code = totp.generate_at_step(&secret, step);
        assert_eq!(
            totp.verify(&secret, &code, &check(0, None)),
            Verification::Valid {
                step,
                drift: offset
            },
            "offset {offset}"
        );
    }
}

#[test]
fn refuses_outside_the_window() {
    let (secret, totp) = setup();
    let now_step = totp.step(NOW);
    for offset in [-3i64, -2, 2, 3] {
        let code = totp.generate_at_step(&secret, now_step.checked_add_signed(offset).unwrap());
        assert_eq!(
            totp.verify(&secret, &code, &check(0, None)),
            Verification::Invalid,
            "offset {offset}"
        );
    }
}

#[test]
fn window_zero_accepts_only_the_current_step() {
    let (secret, totp) = setup();
    let now_step = totp.step(NOW);
    let strict = Check {
        window: Window::ZERO,
        ..check(0, None)
    };
    assert!(
        totp.verify(&secret, &totp.generate_at_step(&secret, now_step), &strict)
            .is_valid()
    );
    assert!(
        !totp
            .verify(
                &secret,
                &totp.generate_at_step(&secret, now_step + 1),
                &strict
            )
            .is_valid()
    );
}

#[test]
fn refuses_replay_at_and_before_the_last_used_step() {
    let (secret, totp) = setup();
    let now_step = totp.step(NOW);
    let code = totp.generate_at_step(&secret, now_step);
    assert_eq!(
        totp.verify(&secret, &code, &check(0, Some(now_step))),
        Verification::Replayed { step: now_step }
    );
    assert_eq!(
        totp.verify(&secret, &code, &check(0, Some(now_step + 1))),
        Verification::Replayed { step: now_step }
    );
    assert!(
        totp.verify(&secret, &code, &check(0, Some(now_step - 1)))
            .is_valid()
    );
    // An earlier code in the window is refused once a later step was used.
    let earlier = totp.generate_at_step(&secret, now_step - 1);
    assert_eq!(
        totp.verify(&secret, &earlier, &check(0, Some(now_step))),
        Verification::Replayed { step: now_step - 1 }
    );
}

#[test]
fn drift_moves_the_window() {
    let (secret, totp) = setup();
    let now_step = totp.step(NOW);
    // A device 5 steps behind is outside the window without drift, inside with it.
    let code = totp.generate_at_step(&secret, now_step - 5);
    assert_eq!(
        totp.verify(&secret, &code, &check(0, None)),
        Verification::Invalid
    );
    assert_eq!(
        totp.verify(&secret, &code, &check(-5, None)),
        Verification::Valid {
            step: now_step - 5,
            drift: -5
        }
    );
    assert_eq!(
        totp.verify(&secret, &code, &check(-4, None)),
        Verification::Valid {
            step: now_step - 5,
            drift: -5
        }
    );
}

#[test]
fn extreme_drift_and_time_do_not_panic() {
    let (secret, totp) = setup();
    let code = OtpCode::parse("123456", Digits::SIX).unwrap();
    for (now, drift) in [
        (0, i64::MIN),
        (0, i64::MAX),
        (u64::MAX, i64::MAX),
        (u64::MAX, i64::MIN),
        (0, -1),
    ] {
        let c = Check {
            now,
            window: Window::new(u64::from(Window::MAX)).unwrap(),
            drift,
            last_used_step: Some(u64::MAX),
        };
        let _ = totp.verify(&secret, &code, &c);
    }
    // At the epoch, steps before zero are simply not candidates.
    let at_zero = totp.generate_at_step(&secret, 0);
    let c = Check {
        now: 0,
        window: Window::ONE,
        drift: 0,
        last_used_step: None,
    };
    assert_eq!(
        totp.verify(&secret, &at_zero, &c),
        Verification::Valid { step: 0, drift: 0 }
    );
}

#[test]
fn a_code_of_another_length_never_matches() {
    let (secret, _) = setup();
    let six = Totp::default();
    let eight = Totp::new(Algorithm::Sha1, Digits::EIGHT, Interval::THIRTY_SECONDS);
    let code8 = eight.generate(&secret, NOW);
    let code6 = OtpCode::from_value(code8.value(), Digits::SIX);
    assert!(eight.verify(&secret, &code8, &check(0, None)).is_valid());
    assert_eq!(
        eight.verify(&secret, &code6, &check(0, None)),
        Verification::Invalid
    );
    assert_eq!(
        six.verify(&secret, &code8, &check(0, None)),
        Verification::Invalid
    );
}

#[test]
fn resync_finds_a_far_drift_and_respects_last_used() {
    let (secret, totp) = setup();
    let now_step = totp.step(NOW);
    let search = Window::new(100).unwrap();
    for offset in [-100i64, -37, 0, 12, 99] {
        let s = now_step.checked_add_signed(offset).unwrap();
        let (a, b) = (
            totp.generate_at_step(&secret, s),
            totp.generate_at_step(&secret, s + 1),
        );
        let r = totp.resync(&secret, &a, &b, NOW, search, None).unwrap();
        assert_eq!((r.step, r.drift), (s + 1, offset + 1), "offset {offset}");
        assert_eq!(
            totp.resync(&secret, &a, &b, NOW, search, Some(s)),
            None,
            "replayed pair at {offset}"
        );
        // Codes out of order or not consecutive are no pair.
        assert_eq!(totp.resync(&secret, &b, &a, NOW, search, None), None);
        let c = totp.generate_at_step(&secret, s + 2);
        assert_eq!(totp.resync(&secret, &a, &c, NOW, search, None), None);
    }
    let far = now_step - 150;
    let (a, b) = (
        totp.generate_at_step(&secret, far),
        totp.generate_at_step(&secret, far + 1),
    );
    assert_eq!(totp.resync(&secret, &a, &b, NOW, search, None), None);
}

#[test]
fn code_parsing_is_strict() {
    let six = Digits::SIX;
    assert_eq!(OtpCode::parse("123456", six).unwrap().to_string(), "123456");
    assert_eq!(
        OtpCode::parse(" 123 456 ", six).unwrap().to_string(),
        "123456"
    );
    assert_eq!(OtpCode::parse("000001", six).unwrap().to_string(), "000001");
    for bad in [
        "",
        "12345",
        "1234567",
        "0123456",
        "+12345",
        "-12345",
        "12345a",
        "12\t3456",
        "123456\n",
        "１２３４５６",
        "١٢٣٤٥٦",
        "12 34 5",
        "1e5000",
        "0x1234",
        "123,456",
        "123_456",
    ] {
        assert!(OtpCode::parse(bad, six).is_err(), "{bad:?} must be refused");
    }
    assert!(OtpCode::parse("12345678", Digits::EIGHT).is_ok());
    assert!(OtpCode::parse("123456", Digits::EIGHT).is_err());
    assert_eq!(
        format!("{:?}", OtpCode::parse("123456", six).unwrap()),
        "OtpCode([redacted; 6 digits])"
    );
}

#[test]
fn secrets_and_base32() {
    let s = Secret::from_base32("gezd gnbv-gy3t qojq gezd gnbv gy3t qojq====").unwrap();
    assert_eq!(s.as_bytes(), b"12345678901234567890");
    assert_eq!(s.to_base32().as_str(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    // sha256sum of the 20 ASCII bytes "12345678901234567890".
    assert_eq!(
        s.fingerprint(),
        "6ed645ef0e1abea1bf1e4e935ff04f9e18d39812387f63cda3415b46240f0405"
    );
    for bad in [
        "",
        "1",
        "JBSWY3DPEHPK3PX1",
        "AAAAAAAAAAAAAAAAAAAAAAAAAB",
        "JBSW\u{0}Y3DP",
        "ÉBSWY3DPEHPK3PXP",
    ] {
        assert!(Secret::from_base32(bad).is_err(), "{bad:?} must be refused");
    }
    // 26 characters carry 130 bits: the 2 spare bits must be zero (canonical form only).
    assert!(Secret::from_base32("AAAAAAAAAAAAAAAAAAAAAAAAAA").is_ok());
    assert!(Secret::generate(15).is_err());
    assert!(Secret::generate(65).is_err());
    let a = Secret::generate(20).unwrap();
    let b = Secret::generate(20).unwrap();
    assert_ne!(a, b, "two generated secrets are different");
    assert!(!format!("{a:?}").contains(a.to_base32().as_str()));
}
