//! `otpauth://` key URIs: building, parsing, and clear errors for malformed ones.

use otp::{Algorithm, Digits, Interval, KeyUri, OtpError, OtpKind, Secret};

#[test]
fn parses_what_authenticator_apps_and_peers_emit() {
    // pyotp's provisioning_uri output.
    let uri = KeyUri::parse(
        "otpauth://totp/Secure%20App:alice%40google.com?secret=JBSWY3DPEHPK3PXP&issuer=Secure%20App",
    )
    .unwrap();
    assert_eq!(uri.issuer(), Some("Secure App"));
    assert_eq!(uri.account(), "alice@google.com");
    assert_eq!(
        uri.kind(),
        OtpKind::Totp {
            period: Interval::THIRTY_SECONDS
        }
    );
    assert_eq!(
        (uri.algorithm(), uri.digits()),
        (Algorithm::Sha1, Digits::SIX)
    );

    // TrueNAS: `otpauth://totp/{user}@{hostname}?secret=…&issuer=TrueNAS&period=30&digits=6`
    let uri = KeyUri::parse("otpauth://totp/root@truenas.local?secret=JBSWY3DPEHPK3PXP&issuer=TrueNAS&period=60&digits=8").unwrap();
    assert_eq!(uri.account(), "root@truenas.local");
    assert_eq!(uri.issuer(), Some("TrueNAS"));
    assert_eq!(
        uri.kind(),
        OtpKind::Totp {
            period: Interval::new(60).unwrap()
        }
    );
    assert_eq!(uri.digits(), Digits::EIGHT);

    // Encoded colon, space after it, upper-case type, extra parameters.
    let uri = KeyUri::parse("otpauth://TOTP/ACME%3A%20bob?secret=jbswy3dpehpk3pxp&image=https%3A%2F%2Fx&algorithm=sha512").unwrap();
    assert_eq!(
        (uri.issuer(), uri.account(), uri.algorithm()),
        (Some("ACME"), "bob", Algorithm::Sha512)
    );

    let uri = KeyUri::parse("otpauth://hotp/bob?secret=JBSWY3DPEHPK3PXP&counter=0").unwrap();
    assert_eq!(uri.kind(), OtpKind::Hotp { counter: 0 });
    assert_eq!(uri.issuer(), None);
}

#[test]
fn builds_the_canonical_form() {
    let secret = Secret::from_base32("JBSWY3DPEHPK3PXP").unwrap();
    let uri = KeyUri::new(
        OtpKind::Totp {
            period: Interval::new(45).unwrap(),
        },
        secret,
        "jane doe+tag&x=1?#/%",
        Some("Ex/am&ple"),
        Algorithm::Sha256,
        Digits::new(7).unwrap(),
    )
    .unwrap();
    let text = uri.to_uri();
    assert_eq!(
        text.as_str(),
        "otpauth://totp/Ex%2Fam%26ple:jane%20doe%2Btag%26x%3D1%3F%23%2F%25?secret=JBSWY3DPEHPK3PXP\
         &issuer=Ex%2Fam%26ple&algorithm=SHA256&digits=7&period=45"
    );
    assert_eq!(KeyUri::parse(&text).unwrap(), uri);
    assert!(
        !format!("{uri:?}").contains("JBSWY3DPEHPK3PXP"),
        "Debug must not show the secret"
    );
}

#[test]
fn malformed_uris_have_clear_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "https://totp/bob?secret=JBSWY3DPEHPK3PXP",
            "scheme must be otpauth://",
        ),
        ("otpauth://totp", "missing label"),
        (
            "otpauth://motp/bob?secret=JBSWY3DPEHPK3PXP",
            "type must be totp or hotp",
        ),
        ("otpauth://totp/bob", "missing secret parameter"),
        (
            "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&secret=JBSWY3DPEHPK3PXP",
            "parameter secret appears twice",
        ),
        (
            "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&digits=6&digits=6",
            "a parameter appears twice",
        ),
        (
            "otpauth://hotp/bob?secret=JBSWY3DPEHPK3PXP",
            "missing counter parameter for hotp",
        ),
        (
            "otpauth://hotp/bob?secret=JBSWY3DPEHPK3PXP&counter=-1",
            "counter must be a number",
        ),
        (
            "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&period=+30",
            "period must be a number",
        ),
        (
            "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&counter=3",
            "counter is not a totp parameter",
        ),
        (
            "otpauth://hotp/bob?secret=JBSWY3DPEHPK3PXP&counter=3&period=30",
            "period is not a hotp parameter",
        ),
        (
            "otpauth://totp/A:bob?secret=JBSWY3DPEHPK3PXP&issuer=B",
            "issuer parameter differs from the label prefix",
        ),
        (
            "otpauth://totp/?secret=JBSWY3DPEHPK3PXP",
            "account name must be non-empty, without ':', control characters or surrounding spaces",
        ),
        (
            "otpauth://totp/a:b:c?secret=JBSWY3DPEHPK3PXP",
            "account name must be non-empty, without ':', control characters or surrounding spaces",
        ),
        (
            "otpauth://totp/bob%FF?secret=JBSWY3DPEHPK3PXP",
            "percent-encoding is not valid UTF-8",
        ),
        (
            "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP#x",
            "a fragment is not allowed",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(KeyUri::parse(text), Err(OtpError::Uri(message)), "{text}");
    }
    assert_eq!(
        KeyUri::parse("otpauth://totp/bob?secret=!!"),
        Err(OtpError::Base32)
    );
    assert_eq!(
        KeyUri::parse("otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&digits=9"),
        Err(OtpError::Digits(9))
    );
    assert_eq!(
        KeyUri::parse("otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&period=0"),
        Err(OtpError::Interval)
    );
    assert_eq!(
        KeyUri::parse("otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&algorithm=MD5"),
        Err(OtpError::Algorithm)
    );
    // A readable message, without the secret.
    let message = KeyUri::parse("otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&issuer=")
        .unwrap_err()
        .to_string();
    assert!(message.starts_with("invalid key URI: issuer"), "{message}");
}
