//! Password-authenticated requests (HTTP Basic), the directory listing and the
//! deployment's identity: what the ONTAP dialect stands on.

use crate::helpers::*;
use otpd_core::*;

fn caller(p: &Principal) -> &Caller {
    match p {
        Principal::Account(c) => c,
        Principal::Cli => panic!("expected an account"),
    }
}

#[tokio::test]
async fn a_password_checked_once_is_remembered_until_its_epoch_moves() {
    let env = env().await;
    env.account("alice", &[]).await;
    let hashes = || env.service.passwords().verified();
    let before = hashes();
    let p = env
        .service
        .authenticate_password("alice", pw(PASSWORD), &meta())
        .await
        .unwrap();
    assert_eq!(caller(&p).username, "alice");
    assert_eq!(
        caller(&p).second_factor_at,
        None,
        "a password proves no second factor"
    );
    assert_eq!(caller(&p).session_id, None);
    for _ in 0..50 {
        env.service
            .authenticate_password("alice", pw(PASSWORD), &meta())
            .await
            .unwrap();
    }
    assert_eq!(hashes(), before + 1, "fifty calls, one Argon2id hash");

    // A wrong password is never answered from memory, and is audited.
    let wrong = env
        .service
        .authenticate_password("alice", pw("correct horse battery!"), &meta())
        .await;
    assert!(
        matches!(wrong, Err(CoreError::Unauthenticated)),
        "{wrong:?}"
    );
    assert_eq!(hashes(), before + 2);
    let events = env
        .service
        .audit_events(
            &Principal::Cli,
            &AuditQuery {
                account: Some("alice".into()),
                action: Some("auth.password".into()),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].outcome, "failure");

    // A minute later the password is checked again.
    env.clock.advance(PASSWORD_MEMO_SECS);
    env.service
        .authenticate_password("alice", pw(PASSWORD), &meta())
        .await
        .unwrap();
    assert_eq!(hashes(), before + 3);

    // A password change (here by the CLI) is seen at the next request.
    env.service
        .set_password(
            &Principal::Cli,
            "alice",
            Some(pw("a brand new password")),
            None,
            None,
            &meta(),
        )
        .await
        .unwrap();
    let old = env
        .service
        .authenticate_password("alice", pw(PASSWORD), &meta())
        .await;
    assert!(matches!(old, Err(CoreError::Unauthenticated)), "{old:?}");
    env.service
        .authenticate_password("alice", pw("a brand new password"), &meta())
        .await
        .unwrap();

    // So is a lock.
    env.service
        .set_account_locked(&Principal::Cli, "alice", true, &meta())
        .await
        .unwrap();
    let locked = env
        .service
        .authenticate_password("alice", pw("a brand new password"), &meta())
        .await;
    assert!(
        matches!(locked, Err(CoreError::Unauthenticated)),
        "{locked:?}"
    );
}

#[tokio::test]
async fn unknown_users_cost_a_hash_too() {
    let env = env().await;
    let before = env.service.passwords().verified();
    let r = env
        .service
        .authenticate_password("nobody", pw(PASSWORD), &meta())
        .await;
    assert!(matches!(r, Err(CoreError::Unauthenticated)));
    assert_eq!(env.service.passwords().verified(), before + 1);
}

#[tokio::test]
async fn a_password_principal_needs_a_code_to_weaken_its_factor() {
    let env = env().await;
    env.account("alice", &[]).await;
    let (secret, _) = env.enroll("alice").await;
    let p = env
        .service
        .authenticate_password("alice", pw(PASSWORD), &meta())
        .await
        .unwrap();
    let r = env.service.remove_totp(&p, "alice", None, &meta()).await;
    assert!(matches!(r, Err(CoreError::StepUpRequired)), "{r:?}");
    env.service
        .remove_totp(&p, "alice", Some(&env.code(&secret)), &meta())
        .await
        .unwrap();
}

#[tokio::test]
async fn an_account_that_must_enroll_may_only_enroll_by_password() {
    let env = env().await;
    env.account("alice", &[]).await;
    env.policy(|p| p.enforced = true).await;
    let p = env
        .service
        .authenticate_password("alice", pw(PASSWORD), &meta())
        .await
        .unwrap();
    assert_eq!(caller(&p).kind, SessionKind::Enrollment);
    let r = env.service.list_sessions(&p, "alice").await;
    assert!(matches!(r, Err(CoreError::Forbidden(_))), "{r:?}");
    env.service
        .provision_totp(&p, "alice", &TotpOptions::default(), true, &meta())
        .await
        .unwrap();
    // Enrolled: the next request is a full principal.
    let p = env
        .service
        .authenticate_password("alice", pw(PASSWORD), &meta())
        .await
        .unwrap();
    assert_eq!(caller(&p).kind, SessionKind::Session);
}

#[tokio::test]
async fn provisioning_replaces_an_authenticator_an_admin_switched_off() {
    let env = env().await;
    let alice = env.account("alice", &[]).await;
    let admin = env.account("admin2", &[Role::TwofactorAdmin]).await;
    let first = env
        .service
        .provision_totp(&alice, "alice", &TotpOptions::default(), true, &meta())
        .await
        .unwrap();
    let again = env
        .service
        .provision_totp(&alice, "alice", &TotpOptions::default(), true, &meta())
        .await;
    assert!(matches!(again, Err(CoreError::Conflict(_))), "{again:?}");
    env.service
        .update_totp(&admin, "alice", Some(false), None, None, &meta())
        .await
        .unwrap();
    let second = env
        .service
        .provision_totp(
            &alice,
            "alice",
            &TotpOptions {
                comment: Some("new phone".into()),
                ..TotpOptions::default()
            },
            true,
            &meta(),
        )
        .await
        .unwrap();
    assert_ne!(first.fingerprint, second.fingerprint);
    let status = env.service.totp_status(&alice, "alice").await.unwrap();
    assert!(status.enabled);
    assert_eq!(status.comment, "new phone");
    assert_eq!(status.fingerprint, second.fingerprint);
    env.clock.advance(30);
    let old = otp::Secret::from_base32(first.secret.expose()).unwrap();
    let new = otp::Secret::from_base32(second.secret.expose()).unwrap();
    let o = env
        .service
        .verify_totp(&admin, "alice", &env.code(&old), &meta())
        .await
        .unwrap();
    assert!(!o.valid);
    let n = env
        .service
        .verify_totp(&admin, "alice", &env.code(&new), &meta())
        .await
        .unwrap();
    assert!(n.valid);
}

#[tokio::test]
async fn the_directory_pages_by_name_both_ways() {
    let env = env().await;
    let reader = env.account("reader", &[Role::ReadonlyAdmin]).await;
    for name in ["bob", "Carol", "dave", "erin"] {
        env.account(name, &[]).await;
    }
    env.enroll("Carol").await;
    env.enroll("erin").await;
    let page = |after: Option<&str>, descending, limit, with_factor_only| DirectoryQuery {
        after: after.map(Into::into),
        descending,
        limit,
        with_factor_only,
        prefix: None,
    };
    let names =
        |entries: Vec<DirectoryEntry>| entries.into_iter().map(|e| e.username).collect::<Vec<_>>();
    let first = env
        .service
        .list_directory(&reader, &page(None, false, 2, false))
        .await
        .unwrap();
    assert_eq!(names(first), ["bob", "Carol"]);
    let next = env
        .service
        .list_directory(&reader, &page(Some("carol"), false, 2, false))
        .await
        .unwrap();
    assert_eq!(names(next), ["dave", "erin"]);
    let down = env
        .service
        .list_directory(&reader, &page(None, true, 3, false))
        .await
        .unwrap();
    assert_eq!(names(down), ["reader", "erin", "dave"]);
    let down = env
        .service
        .list_directory(&reader, &page(Some("dave"), true, 3, false))
        .await
        .unwrap();
    assert_eq!(names(down), ["Carol", "bob"]);
    let factors = env
        .service
        .list_directory(&reader, &page(None, false, 10, true))
        .await
        .unwrap();
    assert_eq!(factors.len(), 2);
    assert!(
        factors
            .iter()
            .all(|e| e.factor.as_ref().is_some_and(|f| f.enabled))
    );
    assert_eq!(factors[0].factor.as_ref().unwrap().fingerprint.len(), 64);

    // A plain account sees itself only; a verifier nothing.
    let bob = env.login("bob").await;
    let own = env
        .service
        .list_directory(&bob, &page(None, false, 10, false))
        .await
        .unwrap();
    assert_eq!(names(own), ["bob"]);
    let past = env
        .service
        .list_directory(&bob, &page(Some("bob"), false, 10, false))
        .await
        .unwrap();
    assert!(past.is_empty());
    let verifier = env.account("svc", &[Role::Verifier]).await;
    let r = env
        .service
        .list_directory(&verifier, &page(None, false, 10, false))
        .await;
    assert!(matches!(r, Err(CoreError::Forbidden(_))), "{r:?}");
}

#[tokio::test]
async fn the_deployment_identity_is_made_once() {
    let env = env().await;
    let first = env.service.deployment_identity().await.unwrap();
    assert_eq!(first.svm_uuid.len(), 36);
    let again = start(env.db.url(), env.master.clone(), env.clock.clone())
        .await
        .unwrap();
    assert_eq!(again.deployment_identity().await.unwrap(), first);
}

#[tokio::test]
async fn a_remembered_password_follows_the_policy_and_the_factor_as_they_are_now() {
    let env = env().await;
    let alice = env.account("alice", &[]).await;
    env.account("bobby", &[Role::ReadonlyAdmin]).await;
    let caller_kind = |p: Principal| caller(&p).kind;
    let by_password = |name: &'static str| {
        let service = env.service.clone();
        async move {
            service
                .authenticate_password(name, pw(PASSWORD), &meta())
                .await
                .unwrap()
        }
    };
    assert_eq!(
        caller_kind(by_password("bobby").await),
        SessionKind::Session
    );
    assert!(env.service.password_seen_lately("bobby", PASSWORD));
    assert!(
        !env.service
            .password_seen_lately("bobby", "another password")
    );
    assert!(
        env.service.password_seen_lately("BOBBY", PASSWORD),
        "names are case-insensitive"
    );
    // Seen lately counts from the last use: a client using its password every few seconds
    // never turns into a guesser, though its password is checked again every minute.
    for _ in 0..4 {
        env.clock.advance(40);
        assert!(env.service.password_seen_lately("bobby", PASSWORD));
        by_password("bobby").await;
    }
    env.clock.advance(PASSWORD_MEMO_SECS);
    assert!(!env.service.password_seen_lately("bobby", PASSWORD));
    // Enforcing 2FA moves no epoch, yet the remembered password now only enrolls.
    env.policy(|p| p.enforced = true).await;
    assert_eq!(
        caller_kind(by_password("bobby").await),
        SessionKind::Enrollment
    );
    // Enrolled, alice is a full principal; once her authenticator is removed, enrollment-only
    // again at the next request.
    env.service
        .provision_totp(&alice, "alice", &TotpOptions::default(), false, &meta())
        .await
        .unwrap();
    assert_eq!(
        caller_kind(by_password("alice").await),
        SessionKind::Session
    );
    env.service
        .remove_totp(&Principal::Cli, "alice", None, &meta())
        .await
        .unwrap();
    assert_eq!(
        caller_kind(by_password("alice").await),
        SessionKind::Enrollment
    );
}
