//! The published test vectors: RFC 4226 Appendix D and RFC 6238 Appendix B.

use otp::{Algorithm, Digits, Hotp, Interval, Secret, Totp};

fn secret(bytes: &[u8]) -> Secret {
    Secret::from_bytes(bytes.to_vec()).expect("the RFC seeds are valid secrets")
}

#[test]
fn rfc4226_appendix_d() {
    let key = secret(b"12345678901234567890");
    let expected = [
        "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
        "520489",
    ];
    let hotp = Hotp::new(Algorithm::Sha1, Digits::SIX);
    for (counter, code) in expected.iter().enumerate() {
        assert_eq!(
            hotp.generate(&key, counter as u64).to_string(),
            *code,
            "counter {counter}"
        );
    }
}

#[test]
fn rfc4226_appendix_d_truncated_values() {
    // The "Decimal" column of Appendix D: the 31-bit value before `mod 10^6`.
    let key = secret(b"12345678901234567890");
    let decimal: [u32; 10] = [
        1284755224, 1094287082, 137359152, 1726969429, 1640338314, 868254676, 1918287922, 82162583,
        673399871, 645520489,
    ];
    let hotp = Hotp::new(Algorithm::Sha1, Digits::EIGHT);
    for (counter, value) in decimal.iter().enumerate() {
        let code = hotp.generate(&key, counter as u64);
        assert_eq!(code.value(), value % 100_000_000, "counter {counter}");
    }
}

#[test]
fn rfc6238_appendix_b() {
    let sha1 = secret(b"12345678901234567890");
    let sha256 = secret(b"12345678901234567890123456789012");
    let sha512 = secret(b"1234567890123456789012345678901234567890123456789012345678901234");
    let rows: [(u64, &str, &str, &str); 6] = [
        (59, "94287082", "46119246", "90693936"),
        (1111111109, "07081804", "68084774", "25091201"),
        (1111111111, "14050471", "67062674", "99943326"),
        (1234567890, "89005924", "91819424", "93441116"),
        (2000000000, "69279037", "90698825", "38618901"),
        (20000000000, "65353130", "77737706", "47863826"),
    ];
    let totp = |algorithm| Totp::new(algorithm, Digits::EIGHT, Interval::THIRTY_SECONDS);
    for (time, c1, c256, c512) in rows {
        assert_eq!(
            totp(Algorithm::Sha1).generate(&sha1, time).to_string(),
            c1,
            "SHA1 at {time}"
        );
        assert_eq!(
            totp(Algorithm::Sha256).generate(&sha256, time).to_string(),
            c256,
            "SHA256 at {time}"
        );
        assert_eq!(
            totp(Algorithm::Sha512).generate(&sha512, time).to_string(),
            c512,
            "SHA512 at {time}"
        );
    }
}

#[test]
fn rfc6238_time_steps() {
    // Appendix B's "Value of T (hex)" column.
    let totp = Totp::default();
    assert_eq!(totp.step(59), 0x1);
    assert_eq!(totp.step(1111111109), 0x23523EC);
    assert_eq!(totp.step(2000000000), 0x3F940AA);
    assert_eq!(totp.step(20000000000), 0x27BC86AA);
    // Year 2100 and beyond: no overflow anywhere on the way.
    assert_eq!(totp.step(4_102_444_800), 136_748_160);
    assert_eq!(
        Totp::new(Algorithm::Sha1, Digits::SIX, Interval::new(1).unwrap()).step(u64::MAX),
        u64::MAX
    );
}
