//! What the web pages need of the core: the directory searched by name with each account's
//! second-factor state, "sign out everywhere", and an enforced policy that keeps an account
//! from dropping its own authenticator.

use crate::helpers::*;
use otpd_core::*;

fn search(prefix: &str, after: Option<&str>) -> DirectoryQuery {
    DirectoryQuery {
        after: after.map(Into::into),
        limit: 2,
        prefix: Some(prefix.into()),
        ..DirectoryQuery::default()
    }
}

#[tokio::test]
async fn the_directory_is_searched_by_prefix_with_each_factor_state() {
    let env = env().await;
    let reader = env.account("reader", &[Role::ReadonlyAdmin]).await;
    for name in ["ann", "Anna", "anne_x", "annex", "bob"] {
        env.account(name, &[]).await;
    }
    let names = |entries: &[DirectoryEntry]| {
        entries
            .iter()
            .map(|e| e.username.clone())
            .collect::<Vec<_>>()
    };
    let page = env
        .service
        .list_directory(&reader, &search("AN", None))
        .await
        .unwrap();
    assert_eq!(names(&page), ["ann", "Anna"]);
    let page = env
        .service
        .list_directory(&reader, &search("an", Some("anna")))
        .await
        .unwrap();
    assert_eq!(names(&page), ["anne_x", "annex"]);
    // `_` is no wildcard.
    let page = env
        .service
        .list_directory(&reader, &search("anne_", None))
        .await
        .unwrap();
    assert_eq!(names(&page), ["anne_x"]);
    // What no name can hold matches nothing (and is no pattern).
    for odd in ["an%", "a n", "ä", "~"] {
        let page = env
            .service
            .list_directory(&reader, &search(odd, None))
            .await
            .unwrap();
        assert!(page.is_empty(), "{odd}");
    }
    let r = env
        .service
        .list_directory(&reader, &search(&"a".repeat(65), None))
        .await;
    assert!(matches!(r, Err(CoreError::Invalid { .. })), "{r:?}");

    // States: none, pending, active with codes, locked after wrong codes.
    env.service
        .begin_enrollment(&Principal::Cli, "Anna", &TotpOptions::default(), &meta())
        .await
        .unwrap();
    let (secret, _) = env.enroll("ann").await;
    env.policy(|p| p.max_failures = 2).await;
    for _ in 0..2 {
        env.service
            .verify_totp(&Principal::Cli, "ann", env.wrong_code(&secret), &meta())
            .await
            .unwrap();
    }
    let page = env
        .service
        .list_directory(&reader, &search("ann", None))
        .await
        .unwrap();
    let ann = &page[0];
    let factor = ann.factor.as_ref().unwrap();
    assert!(factor.enabled);
    assert_eq!(factor.locked_until, Some(T0 + 30 + 300));
    assert_eq!(ann.recovery_codes_remaining, 10);
    assert_eq!(ann.pending_expires_at, None);
    let anna = &page[1];
    assert!(anna.factor.is_none());
    assert_eq!(anna.pending_expires_at, Some(T0 + 900));
    // A lapsed enrollment and an ended lockout are nothing.
    env.clock.advance(901);
    let page = env
        .service
        .list_directory(&reader, &search("ann", None))
        .await
        .unwrap();
    assert_eq!(page[0].factor.as_ref().unwrap().locked_until, None);
    assert_eq!(page[1].pending_expires_at, None);
}

#[tokio::test]
async fn sign_out_everywhere_ends_every_session() {
    let env = env().await;
    let admin = env.account("admin", &[Role::TwofactorAdmin]).await;
    let alice = env.account("alice", &[]).await;
    let other = env.login("alice").await;
    let ended = env
        .service
        .end_sessions(&alice, "alice", &meta())
        .await
        .unwrap();
    assert_eq!(ended, 2);
    for p in [&alice, &other] {
        let Principal::Account(c) = p else { panic!() };
        assert!(c.session_id.is_some());
    }
    let left = env.service.list_sessions(&Principal::Cli, "alice").await;
    assert!(
        left.unwrap().is_empty(),
        "the caller's own session ended too"
    );
    // An admin revokes them; a plain account may not revoke another's.
    let bob = env.account("bob", &[]).await;
    env.login("alice").await;
    let r = env.service.end_sessions(&bob, "alice", &meta()).await;
    assert!(matches!(r, Err(CoreError::Forbidden(_))), "{r:?}");
    assert_eq!(
        env.service
            .end_sessions(&admin, "alice", &meta())
            .await
            .unwrap(),
        1
    );
    let events = env
        .service
        .audit_events(
            &Principal::Cli,
            &AuditQuery {
                action: Some("session.revoke_all".into()),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].actor, "admin");
}

#[tokio::test]
async fn an_enforced_policy_keeps_an_account_from_removing_its_own_factor() {
    let env = env().await;
    let admin = env.account("admin", &[Role::TwofactorAdmin]).await;
    env.account("alice", &[]).await;
    let (secret, _) = env.enroll("alice").await;
    env.policy(|p| {
        p.enforced = true;
        p.second_factor_at_login = true;
    })
    .await;
    let LoginOutcome::SecondFactorRequired { challenge, .. } = env
        .service
        .login("alice", pw(PASSWORD), &meta())
        .await
        .unwrap()
    else {
        panic!("second factor required");
    };
    let token = env
        .service
        .second_factor(challenge.token.expose(), &env.code(&secret), &meta())
        .await
        .unwrap();
    let alice = env
        .service
        .authenticate(token.token.expose())
        .await
        .unwrap();
    let r = env
        .service
        .remove_totp(&alice, "alice", None, &meta())
        .await;
    assert!(matches!(r, Err(CoreError::Forbidden(_))), "{r:?}");
    assert!(
        env.service
            .totp_status(&alice, "alice")
            .await
            .unwrap()
            .enabled
    );
    // The lost-phone reset by an admin still works.
    env.service
        .remove_totp(&admin, "alice", None, &meta())
        .await
        .unwrap();
    assert!(matches!(
        env.service
            .login("alice", pw(PASSWORD), &meta())
            .await
            .unwrap(),
        LoginOutcome::EnrollmentRequired(_)
    ));
}

#[tokio::test]
async fn confirming_an_enrollment_counts_as_the_sessions_second_factor() {
    let env = env().await;
    let alice = env.account("alice", &[]).await;
    let e = env
        .service
        .begin_enrollment(&alice, "alice", &TotpOptions::default(), &meta())
        .await
        .unwrap();
    let secret = otp::Secret::from_base32(e.secret.expose()).unwrap();
    env.service
        .confirm_enrollment(
            &alice,
            "alice",
            &env.code(&secret),
            RecoveryCodeSet::Policy,
            &meta(),
        )
        .await
        .unwrap();
    // The same session, read again: its second factor is the confirming code.
    let sessions = env
        .service
        .list_sessions(&Principal::Cli, "alice")
        .await
        .unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].second_factor_at, Some(T0));
    assert_eq!(sessions[0].method, "password");
    env.clock.advance(30);
    let Principal::Account(mut caller) = alice else {
        panic!()
    };
    caller.second_factor_at = sessions[0].second_factor_at;
    let again = Principal::Account(caller);
    // Within the step-up window a change needs no further code…
    env.service
        .regenerate_recovery_codes(&again, "alice", None, RecoveryCodeSet::Policy, &meta())
        .await
        .unwrap();
    // …and after it, one.
    env.clock.advance(300);
    let r = env
        .service
        .regenerate_recovery_codes(&again, "alice", None, RecoveryCodeSet::Policy, &meta())
        .await;
    assert!(matches!(r, Err(CoreError::StepUpRequired)), "{r:?}");
}

#[tokio::test]
async fn an_issuer_that_reorders_text_is_refused() {
    let env = env().await;
    let mut policy = env.service.get_policy(&Principal::Cli).await.unwrap();
    policy.issuer = "Bank\u{202e}lanretxe".into();
    let r = env
        .service
        .set_policy(&Principal::Cli, policy, &meta())
        .await;
    assert!(
        matches!(&r, Err(CoreError::Invalid { field, .. }) if field == "issuer"),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_session_that_enrolled_under_an_enforced_policy_lives_as_long_as_any() {
    let env = env().await;
    env.account("alice", &[]).await;
    env.policy(|p| p.enforced = true).await;
    let LoginOutcome::EnrollmentRequired(token) = env
        .service
        .login("alice", pw(PASSWORD), &meta())
        .await
        .unwrap()
    else {
        panic!("enrollment required");
    };
    assert_eq!(token.expires_at, T0 + 900, "an enrollment session is short");
    let limited = env
        .service
        .authenticate(token.token.expose())
        .await
        .unwrap();
    let e = env
        .service
        .begin_enrollment(&limited, "alice", &TotpOptions::default(), &meta())
        .await
        .unwrap();
    let secret = otp::Secret::from_base32(e.secret.expose()).unwrap();
    env.clock.advance(60);
    env.service
        .confirm_enrollment(
            &limited,
            "alice",
            &env.code(&secret),
            RecoveryCodeSet::Policy,
            &meta(),
        )
        .await
        .unwrap();
    let sessions = env
        .service
        .list_sessions(&Principal::Cli, "alice")
        .await
        .unwrap();
    assert_eq!(sessions[0].expires_at, T0 + 60 + 12 * 3600);
    env.clock.advance(3600);
    assert!(env.service.authenticate(token.token.expose()).await.is_ok());
}

#[tokio::test]
async fn readiness_needs_the_database_and_keys_the_master_key_opens() {
    let env = env().await;
    env.service.readiness().await.unwrap();
    // A data key this instance's master key did not wrap (a restored database, another
    // deployment's key): not ready.
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(env.db.url()).await.unwrap();
    sqlx::query(
        "INSERT INTO data_keys (id, state, wrapped, created_at) VALUES (4242, 'retired', $1, 0)",
    )
    .bind(vec![0u8; 72])
    .execute(&mut conn)
    .await
    .unwrap();
    let r = env.service.readiness().await;
    assert!(
        matches!(
            r,
            Err(CoreError::Sealing | CoreError::WrongMasterKey { .. })
        ),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_database_file_moved_under_the_service_is_not_ready() {
    let env = env().await;
    if env.db.is_postgres() {
        return;
    }
    env.service.readiness().await.unwrap();
    let file = env.dir.path().join("otpd.db");
    std::fs::rename(&file, env.dir.path().join("moved.db")).unwrap();
    let r = env.service.readiness().await;
    assert!(matches!(r, Err(CoreError::Storage(_))), "{r:?}");
    std::fs::rename(env.dir.path().join("moved.db"), &file).unwrap();
    env.service.readiness().await.unwrap();
}
