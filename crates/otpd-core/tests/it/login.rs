//! Login, the second factor, sessions and API keys.

use crate::helpers::*;
use otpd_core::*;

#[tokio::test]
async fn password_then_second_factor() {
    let env = env().await;
    env.account("alice", &[]).await;
    let (secret, codes) = env.enroll("alice").await;

    let LoginOutcome::SecondFactorRequired { challenge, .. } = env
        .service
        .login("ALICE", pw(PASSWORD), &meta())
        .await
        .unwrap()
    else {
        panic!("an enrolled account must be asked for its second factor");
    };
    // The challenge is not a session.
    assert!(matches!(
        env.service.authenticate(challenge.token.expose()).await,
        Err(CoreError::Unauthenticated)
    ));
    let bad = env
        .service
        .second_factor(challenge.token.expose(), "000000", &meta())
        .await;
    assert!(
        matches!(
            bad,
            Err(CoreError::SecondFactorFailed {
                reason: VerifyReason::Invalid
            })
        ),
        "{bad:?}"
    );
    let token = env
        .service
        .second_factor(challenge.token.expose(), &env.code(&secret), &meta())
        .await
        .unwrap();
    let Principal::Account(caller) = env
        .service
        .authenticate(token.token.expose())
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(caller.username, "alice");
    assert_eq!(caller.second_factor_at, Some(env.clock.now()));
    // The challenge was single use.
    let again = env
        .service
        .second_factor(challenge.token.expose(), codes[0].expose(), &meta())
        .await;
    assert!(
        matches!(again, Err(CoreError::Unauthenticated)),
        "{again:?}"
    );
}

#[tokio::test]
async fn bad_credentials_look_alike() {
    let env = env().await;
    env.account("bob", &[]).await;
    for (user, pass) in [
        ("bob", "wrong password"),
        ("nobody", PASSWORD),
        ("bad name!", PASSWORD),
    ] {
        let r = env.service.login(user, pw(pass), &meta()).await;
        assert!(
            matches!(r, Err(CoreError::Unauthenticated)),
            "{user}: {r:?}"
        );
    }
    let events = env
        .service
        .audit_events(
            &Principal::Cli,
            &AuditQuery {
                action: Some("auth.login".into()),
                outcome: Some("failure".into()),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 3);
}

#[tokio::test]
async fn enforced_policy_limits_sessions_to_enrolling() {
    let env = env().await;
    env.account("carol", &[]).await;
    env.policy(|p| p.enforced = true).await;
    let LoginOutcome::EnrollmentRequired(token) = env
        .service
        .login("carol", pw(PASSWORD), &meta())
        .await
        .unwrap()
    else {
        panic!()
    };
    let me = env
        .service
        .authenticate(token.token.expose())
        .await
        .unwrap();
    assert!(matches!(
        env.service.list_sessions(&me, "carol").await,
        Err(CoreError::Forbidden(_))
    ));
    let e = env
        .service
        .begin_enrollment(&me, "carol", &TotpOptions::default(), &meta())
        .await
        .unwrap();
    let secret = otp::Secret::from_base32(e.secret.expose()).unwrap();
    env.service
        .confirm_enrollment(
            &me,
            "carol",
            &env.code(&secret),
            RecoveryCodeSet::Policy,
            &meta(),
        )
        .await
        .unwrap();
    // The same token is now a full session with its second factor proven.
    let me = env
        .service
        .authenticate(token.token.expose())
        .await
        .unwrap();
    let sessions = env.service.list_sessions(&me, "carol").await.unwrap();
    let current: Vec<_> = sessions.iter().filter(|s| s.current).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(
        (current[0].kind, current[0].second_factor_at),
        (SessionKind::Session, Some(env.clock.now()))
    );
}

#[tokio::test]
async fn sessions_expire_and_are_revoked_with_a_locked_account() {
    let env = env().await;
    let admin = env.account("root", &[Role::FullAdmin]).await;
    let me = env.account("dan", &[]).await;
    let sessions = env.service.list_sessions(&me, "dan").await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert!(sessions[0].current);
    env.service
        .set_account_locked(&admin, "dan", true, &meta())
        .await
        .unwrap();
    assert!(
        env.service
            .list_sessions(&Principal::Cli, "dan")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        env.service.login("dan", pw(PASSWORD), &meta()).await,
        Err(CoreError::AccountLocked)
    ));
    env.service
        .set_account_locked(&admin, "dan", false, &meta())
        .await
        .unwrap();
    env.login("dan").await;
    env.clock.advance(12 * 3600 + 1);
    assert!(
        env.service
            .list_sessions(&Principal::Cli, "dan")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn api_keys_authenticate_until_revoked() {
    let env = env().await;
    let svc = env.account("service", &[Role::TwofactorAdmin]).await;
    env.account("user", &[]).await;
    let (secret, _) = env.enroll("user").await;
    let key = env
        .service
        .create_api_key(&Principal::Cli, "service", "backend", &meta())
        .await
        .unwrap();
    let p = env.service.authenticate(key.key.expose()).await.unwrap();
    let r = env
        .service
        .verify_totp(&p, "user", &env.code(&secret), &meta())
        .await
        .unwrap();
    assert!(r.valid);
    let listed = env
        .service
        .list_api_keys(&svc, Some("service"))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].last_used_at.is_some());
    env.service
        .revoke_api_key(&Principal::Cli, &key.info.id, &meta())
        .await
        .unwrap();
    assert!(matches!(
        env.service.authenticate(key.key.expose()).await,
        Err(CoreError::Unauthenticated)
    ));
    assert!(matches!(
        env.service.authenticate("otpd_k_made-up").await,
        Err(CoreError::Unauthenticated)
    ));
    assert!(matches!(
        env.service.authenticate("garbage").await,
        Err(CoreError::Unauthenticated)
    ));
}

/// An API key this instance has already seen is trusted only until something it
/// authenticates changes — also when the change comes from another process, straight to
/// the database (here: a connection of the test's own, as the CLI or another instance
/// would write).
#[tokio::test]
async fn remembered_api_keys_see_changes_made_elsewhere() {
    use sqlx::Connection;
    let env = env().await;
    env.account("service", &[Role::TwofactorAdmin]).await;
    let key = env
        .service
        .create_api_key(&Principal::Cli, "service", "backend", &meta())
        .await
        .unwrap();
    let roles = || async {
        match env.service.authenticate(key.key.expose()).await {
            Ok(Principal::Account(caller)) => Ok(caller.roles),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        }
    };
    let mut other = sqlx::AnyConnection::connect(env.db.url()).await.unwrap();
    async fn epoch(conn: &mut sqlx::AnyConnection) -> i64 {
        sqlx::query_scalar("SELECT epoch FROM credential_epoch WHERE id = 1")
            .fetch_one(conn)
            .await
            .unwrap()
    }
    async fn run(conn: &mut sqlx::AnyConnection, sql: &'static str) {
        sqlx::query(sql).execute(conn).await.unwrap();
    }

    assert!(roles().await.unwrap().contains(&Role::TwofactorAdmin));
    // Using a key records its use, once a minute, without moving the epoch.
    let before = epoch(&mut other).await;
    env.clock.advance(120);
    assert!(roles().await.unwrap().contains(&Role::TwofactorAdmin));
    let listed = env
        .service
        .list_api_keys(&Principal::Cli, Some("service"))
        .await
        .unwrap();
    assert_eq!(listed[0].last_used_at, Some(env.clock.now()));
    let after = epoch(&mut other).await;
    assert_eq!(
        before, after,
        "recording a key's use must not forget every key"
    );

    run(
        &mut other,
        "UPDATE accounts SET roles = '' WHERE username_key = 'service'",
    )
    .await;
    assert!(
        roles().await.unwrap().is_empty(),
        "a role taken away elsewhere"
    );
    run(
        &mut other,
        "UPDATE accounts SET roles = 'twofactor_admin' WHERE username_key = 'service'",
    )
    .await;
    assert!(roles().await.unwrap().contains(&Role::TwofactorAdmin));
    run(
        &mut other,
        "UPDATE accounts SET locked = 1 WHERE username_key = 'service'",
    )
    .await;
    assert!(
        matches!(roles().await, Err(CoreError::Unauthenticated)),
        "owner locked elsewhere"
    );
    run(
        &mut other,
        "UPDATE accounts SET locked = 0 WHERE username_key = 'service'",
    )
    .await;
    assert!(roles().await.is_ok());
    run(&mut other, "DELETE FROM api_keys").await;
    assert!(
        matches!(roles().await, Err(CoreError::Unauthenticated)),
        "key revoked elsewhere"
    );
}

/// Deleting an account while it is updated and its key revoked never deadlocks: on
/// PostgreSQL every statement that moves the credential epoch (migration 0005) takes the
/// epoch's lock before its rows'. Taken after them, the deletion (the keys, then the
/// account's row) and the update (the row, then the epoch) deadlocked within a few rounds.
#[tokio::test]
async fn deleting_an_account_while_it_is_updated_does_not_deadlock() {
    let env = env().await;
    let m = meta();
    for i in 0..40 {
        let name = format!("victim{i}");
        env.account(&name, &[]).await;
        let key = env
            .service
            .create_api_key(&Principal::Cli, &name, "k", &m)
            .await
            .unwrap();
        let update = env.service.update_account(
            &Principal::Cli,
            &name,
            AccountPatch {
                roles: Some([Role::ReadonlyAdmin].into_iter().collect()),
                ..AccountPatch::default()
            },
            &m,
        );
        let revoke = env
            .service
            .revoke_api_key(&Principal::Cli, &key.info.id, &m);
        let delete = env.service.delete_account(&Principal::Cli, &name, &m);
        let (updated, revoked, deleted) = tokio::join!(update, revoke, delete);
        assert!(
            matches!(updated, Ok(_) | Err(CoreError::NotFound(_))),
            "{updated:?}"
        );
        assert!(
            matches!(revoked, Ok(_) | Err(CoreError::NotFound(_))),
            "{revoked:?}"
        );
        assert!(deleted.is_ok(), "{deleted:?}");
    }
}
