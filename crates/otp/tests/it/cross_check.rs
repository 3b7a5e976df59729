//! Every row of `fixtures/totp_cross_check.csv`: codes that oathtool and pyotp both computed
//! (see `fixtures/generate.py`) must be what this crate computes and accepts.

use otp::{Algorithm, Check, Digits, Interval, OtpCode, Secret, Totp, Verification, Window};

const FIXTURES: &str = include_str!("../../fixtures/totp_cross_check.csv");

#[test]
fn agrees_with_oathtool_and_pyotp() {
    let mut rows = 0;
    for (line_no, line) in FIXTURES.lines().enumerate().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let [b32, algorithm, digits, interval, time, expected] = fields[..] else {
            panic!("line {}: expected 6 fields", line_no + 1);
        };
        let secret = Secret::from_base32(b32).unwrap();
        let totp = Totp::new(
            algorithm.parse::<Algorithm>().unwrap(),
            Digits::new(digits.parse().unwrap()).unwrap(),
            Interval::new(interval.parse().unwrap()).unwrap(),
        );
        let time: u64 = time.parse().unwrap();
        assert_eq!(
            totp.generate(&secret, time).to_string(),
            expected,
            "line {}",
            line_no + 1
        );

        let code = OtpCode::parse(expected, totp.digits).unwrap();
        let check = Check {
            now: time,
            window: Window::ZERO,
            drift: 0,
            last_used_step: None,
        };
        assert_eq!(
            totp.verify(&secret, &code, &check),
            Verification::Valid {
                step: totp.step(time),
                drift: 0
            },
            "line {}",
            line_no + 1
        );
        rows += 1;
    }
    assert!(
        rows >= 1000,
        "the fixture must hold at least 1,000 rows, has {rows}"
    );
}
