//! What Rocket.Chat clients prove, and how: logging in by e-mail address or with the
//! password's SHA-256 digest, proving oneself again for one request (`reauthenticate`),
//! and recovery code sets of a product's shape.

use crate::helpers::*;
use otpd_core::*;
use zeroize::Zeroizing;

fn digest(password: &str) -> PasswordProof {
    PasswordProof::Sha256Hex(sha256_hex(password))
}

async fn create(env: &Env, name: &str, email: Option<&str>) {
    let new = NewAccount {
        username: name.into(),
        password: Some(pw(PASSWORD)),
        email: email.map(str::to_owned),
        ..NewAccount::default()
    };
    env.service
        .create_account(&Principal::Cli, new, &meta())
        .await
        .unwrap();
}

async fn logs_in(env: &Env, name: LoginName<'_>, proof: PasswordProof) -> bool {
    match env.service.login_as(name, proof, &meta()).await {
        Ok(LoginOutcome::Session(_)) => true,
        Err(CoreError::Unauthenticated) => false,
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn login_by_email_or_digest() {
    let env = env().await;
    create(&env, "alice", Some("Alice@Example.org")).await;
    create(&env, "bob", Some("shared@example.org")).await;
    create(&env, "carol", Some("shared@example.org")).await;
    create(&env, "dave@example.org", None).await;

    let plain = || PasswordProof::Plain(pw(PASSWORD));
    assert!(logs_in(&env, LoginName::Email("alice@example.ORG"), plain()).await);
    assert!(
        logs_in(
            &env,
            LoginName::UsernameOrEmail("alice@example.org"),
            plain()
        )
        .await
    );
    assert!(logs_in(&env, LoginName::UsernameOrEmail("ALICE"), plain()).await);
    // An address two accounts share logs in to neither.
    assert!(!logs_in(&env, LoginName::Email("shared@example.org"), plain()).await);
    // A name with an `@` is a name first.
    assert!(
        logs_in(
            &env,
            LoginName::UsernameOrEmail("dave@example.org"),
            plain()
        )
        .await
    );
    assert!(!logs_in(&env, LoginName::Email("dave@example.org"), plain()).await);
    assert!(!logs_in(&env, LoginName::Email("nobody@example.org"), plain()).await);

    // The digest is as good as the password; upper-case hex too; anything else is refused.
    assert!(logs_in(&env, LoginName::Username("alice"), digest(PASSWORD)).await);
    let upper = PasswordProof::Sha256Hex(Zeroizing::new(sha256_hex(PASSWORD).to_uppercase()));
    assert!(logs_in(&env, LoginName::Username("alice"), upper).await);
    assert!(!logs_in(&env, LoginName::Username("alice"), digest("wrong password")).await);
    let short = PasswordProof::Sha256Hex(Zeroizing::new("abc".into()));
    assert!(!logs_in(&env, LoginName::Username("alice"), short).await);
    // A refused attempt is audited against the name tried, as any bad password.
    let failures = env
        .service
        .audit_events(
            &Principal::Cli,
            &AuditQuery {
                account: Some("alice".into()),
                action: Some("auth.login".into()),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        failures.iter().filter(|e| e.outcome == "failure").count(),
        2
    );
}

/// A hash made before the digest was hashed verifies the password, cannot verify the
/// digest, and is replaced at the next password login — after which the digest works.
#[tokio::test]
async fn an_older_hash_is_upgraded_at_login() {
    use argon2::password_hash::PasswordHasher as _;
    let env = env().await;
    create(&env, "erin", None).await;
    let old = argon2::Argon2::default()
        .hash_password(PASSWORD.as_bytes())
        .unwrap()
        .to_string();
    use sqlx::Connection as _;
    let mut other = sqlx::AnyConnection::connect(env.db.url()).await.unwrap();
    sqlx::query("UPDATE accounts SET password_hash = $1 WHERE username_key = 'erin'")
        .bind(old.clone())
        .execute(&mut other)
        .await
        .unwrap();

    assert!(!logs_in(&env, LoginName::Username("erin"), digest(PASSWORD)).await);
    let plain = PasswordProof::Plain(pw(PASSWORD));
    assert!(logs_in(&env, LoginName::Username("erin"), plain).await);
    let stored: String =
        sqlx::query_scalar("SELECT password_hash FROM accounts WHERE username_key = 'erin'")
            .fetch_one(&mut other)
            .await
            .unwrap();
    assert_ne!(stored, old);
    assert!(stored.starts_with("sha256:$argon2id$"), "{stored}");
    assert!(logs_in(&env, LoginName::Username("erin"), digest(PASSWORD)).await);
}

#[tokio::test]
async fn reauthenticate_with_a_code() {
    let env = env().await;
    let alice = env.account("alice", &[]).await;
    let (secret, _) = env.enroll("alice").await;
    let reauth = |p: Principal, code: Option<String>| {
        let service = env.service.clone();
        async move { service.reauthenticate(&p, code.as_deref(), &meta()).await }
    };

    let r = reauth(alice.clone(), None).await.unwrap();
    assert!(
        matches!(r, Reauthentication::Required(ProofMethod::Totp)),
        "{r:?}"
    );
    // The password's digest is no proof while a second factor exists: not even a code.
    let r = reauth(alice.clone(), Some(sha256_hex(PASSWORD).to_string())).await;
    assert!(matches!(r, Err(CoreError::Invalid { .. })), "{r:?}");
    let r = reauth(alice.clone(), Some(env.wrong_code(&secret).into()))
        .await
        .unwrap();
    assert!(
        matches!(
            r,
            Reauthentication::Refused(ProofMethod::Totp, VerifyReason::Invalid)
        ),
        "{r:?}"
    );
    let status = env
        .service
        .totp_status(&Principal::Cli, "alice")
        .await
        .unwrap();
    assert_eq!(status.failed_attempts, 1, "a wrong code counts");

    let code = env.code(&secret);
    let Reauthentication::Proven(proven) = reauth(alice.clone(), Some(code.clone())).await.unwrap()
    else {
        panic!("the right code proves");
    };
    // The same code again is a replay.
    let r = reauth(alice.clone(), Some(code)).await.unwrap();
    assert!(
        matches!(
            r,
            Reauthentication::Refused(ProofMethod::Totp, VerifyReason::Replayed)
        ),
        "{r:?}"
    );
    // The proven principal meets step-up without a code: the reset goes through.
    env.service
        .remove_totp(&proven, "alice", None, &meta())
        .await
        .unwrap();

    // An API key, which never carries a second factor, proves one for its request.
    let (secret, _) = env.enroll("alice").await;
    let key = env
        .service
        .create_api_key(&Principal::Cli, "alice", "bot", &meta())
        .await
        .unwrap();
    let key = env.service.authenticate(key.key.expose()).await.unwrap();
    let r = env.service.remove_totp(&key, "alice", None, &meta()).await;
    assert!(matches!(r, Err(CoreError::StepUpRequired)), "{r:?}");
    let Reauthentication::Proven(proven) = reauth(key, Some(env.code(&secret))).await.unwrap()
    else {
        panic!("the right code proves");
    };
    env.service
        .remove_totp(&proven, "alice", None, &meta())
        .await
        .unwrap();
}

#[tokio::test]
async fn reauthenticate_with_the_password_digest() {
    let env = env().await;
    let bob = env.account("bob", &[]).await;
    let r = env
        .service
        .reauthenticate(&bob, None, &meta())
        .await
        .unwrap();
    assert!(
        matches!(r, Reauthentication::Required(ProofMethod::Password)),
        "{r:?}"
    );
    let wrong = sha256_hex("not the password");
    let r = env
        .service
        .reauthenticate(&bob, Some(&wrong), &meta())
        .await
        .unwrap();
    assert!(
        matches!(
            r,
            Reauthentication::Refused(ProofMethod::Password, VerifyReason::Invalid)
        ),
        "{r:?}"
    );
    let audited = env
        .service
        .audit_events(
            &Principal::Cli,
            &AuditQuery {
                action: Some("auth.reauthenticate".into()),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].outcome, "failure");
    for right in [
        sha256_hex(PASSWORD).to_string(),
        sha256_hex(PASSWORD).to_uppercase(),
    ] {
        let r = env
            .service
            .reauthenticate(&bob, Some(&right), &meta())
            .await
            .unwrap();
        assert!(matches!(r, Reauthentication::Proven(_)), "{r:?}");
    }

    // With no password and no second factor there is nothing to prove.
    env.service
        .update_account(
            &Principal::Cli,
            "bob",
            AccountPatch {
                password: Some(None),
                ..AccountPatch::default()
            },
            &meta(),
        )
        .await
        .unwrap();
    let key = env
        .service
        .create_api_key(&Principal::Cli, "bob", "bot", &meta())
        .await
        .unwrap();
    let key = env.service.authenticate(key.key.expose()).await.unwrap();
    let r = env
        .service
        .reauthenticate(&key, None, &meta())
        .await
        .unwrap();
    assert!(matches!(r, Reauthentication::Proven(_)), "{r:?}");
}

/// Rocket.Chat issues 12 backup codes of 8 characters: each logs in once, and a new set
/// voids the old one.
#[tokio::test]
async fn recovery_code_sets_of_a_products_shape() {
    let env = env().await;
    let carol = env.account("carol", &[]).await;
    let twelve = RecoveryCodeSet::Exactly {
        count: 12,
        length: 8,
    };
    let e = env
        .service
        .begin_enrollment(&carol, "carol", &TotpOptions::default(), &meta())
        .await
        .unwrap();
    let secret = otp::Secret::from_base32(e.secret.expose()).unwrap();
    let codes = env
        .service
        .confirm_enrollment(&carol, "carol", &env.code(&secret), twelve, &meta())
        .await
        .unwrap();
    assert_eq!(codes.len(), 12);
    for code in &codes {
        let code = code.expose();
        assert_eq!(code.len(), 8, "{code}");
        assert!(!code.bytes().all(|b| b.is_ascii_digit()), "{code}");
    }
    let second_factor = |code: String| {
        let service = env.service.clone();
        async move {
            let LoginOutcome::SecondFactorRequired { challenge, .. } =
                service.login("carol", pw(PASSWORD), &meta()).await.unwrap()
            else {
                panic!("a second factor is required");
            };
            service
                .second_factor(challenge.token.expose(), &code, &meta())
                .await
        }
    };
    let first = codes[0].expose().to_owned();
    second_factor(first.to_lowercase()).await.unwrap();
    let again = second_factor(first).await;
    assert!(
        matches!(again, Err(CoreError::SecondFactorFailed { .. })),
        "{again:?}"
    );

    env.clock.advance(30);
    let new = env
        .service
        .regenerate_recovery_codes(&Principal::Cli, "carol", None, twelve, &meta())
        .await
        .unwrap();
    assert_eq!(new.len(), 12);
    let old = second_factor(codes[1].expose().to_owned()).await;
    assert!(
        matches!(old, Err(CoreError::SecondFactorFailed { .. })),
        "{old:?}"
    );
    second_factor(new[0].expose().to_owned()).await.unwrap();

    let bad = RecoveryCodeSet::Exactly {
        count: 12,
        length: 6,
    };
    let r = env
        .service
        .regenerate_recovery_codes(&Principal::Cli, "carol", None, bad, &meta())
        .await;
    assert!(
        r.is_err(),
        "codes of 6 symbols could be taken for TOTP codes"
    );
}

/// With log-in by address, an address two accounts share logs in to neither: so an account
/// may not take another's for itself (an admin may give one to several, as TrueNAS does).
#[tokio::test]
async fn an_account_cannot_take_anothers_address() {
    let env = env().await;
    create(&env, "bob", Some("bob@example.org")).await;
    let eve = env.account("eve", &[]).await;
    let take = |principal: Principal, email: &str| {
        let service = env.service.clone();
        let patch = AccountPatch {
            email: Some(Some(email.to_owned())),
            ..AccountPatch::default()
        };
        async move {
            service
                .update_account(&principal, "eve", patch, &meta())
                .await
        }
    };
    let r = take(eve.clone(), "BOB@example.org").await;
    assert!(matches!(r, Err(CoreError::Conflict(_))), "{r:?}");
    let plain = || PasswordProof::Plain(pw(PASSWORD));
    assert!(logs_in(&env, LoginName::Email("bob@example.org"), plain()).await);
    take(eve, "eve@example.org").await.unwrap();
    take(Principal::Cli, "bob@example.org").await.unwrap();
    assert!(!logs_in(&env, LoginName::Email("bob@example.org"), plain()).await);
}
