//! The authenticator lifecycle around verification: provisioning, renewal, step-up, reset
//! with session revocation, authorization, sealing at rest, accounts.

use crate::helpers::*;
use otpd_core::*;

#[tokio::test]
async fn step_up_is_required_for_ones_own_changes() {
    let env = env().await;
    env.account("alice", &[]).await;
    let (secret, _) = env.enroll("alice").await;
    // A session without a second factor (an API key here) must send a code along.
    let key = env
        .service
        .create_api_key(&Principal::Cli, "alice", "laptop", &meta())
        .await
        .unwrap();
    let me = env.service.authenticate(key.key.expose()).await.unwrap();
    let r = env
        .service
        .renew_totp(&me, "alice", &TotpOptions::default(), None, &meta())
        .await;
    assert!(matches!(r, Err(CoreError::StepUpRequired)), "{r:?}");
    let r = env.service.remove_totp(&me, "alice", None, &meta()).await;
    assert!(matches!(r, Err(CoreError::StepUpRequired)), "{r:?}");
    let r = env
        .service
        .regenerate_recovery_codes(
            &me,
            "alice",
            Some("000000"),
            RecoveryCodeSet::Policy,
            &meta(),
        )
        .await;
    assert!(
        matches!(r, Err(CoreError::SecondFactorFailed { .. })),
        "{r:?}"
    );
    // With a valid code it goes through.
    let renewed = env
        .service
        .renew_totp(
            &me,
            "alice",
            &TotpOptions {
                digits: Some(8),
                ..TotpOptions::default()
            },
            Some(&env.code(&secret)),
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(
        (renewed.digits, renewed.interval, renewed.algorithm.as_str()),
        (8, 30, "SHA1")
    );
    assert!(renewed.provisioning_uri.expose().contains("digits=8"));

    // A session that proved its second factor at login may act within step_up_secs.
    let new_secret = otp::Secret::from_base32(renewed.secret.expose()).unwrap();
    env.clock.advance(30);
    let LoginOutcome::SecondFactorRequired { challenge, .. } = env
        .service
        .login("alice", pw(PASSWORD), &meta())
        .await
        .unwrap()
    else {
        panic!()
    };
    let code = otp::Totp::new(
        otp::Algorithm::Sha1,
        otp::Digits::EIGHT,
        otp::Interval::THIRTY_SECONDS,
    )
    .generate(&new_secret, u64::try_from(env.clock.now()).unwrap());
    let token = env
        .service
        .second_factor(challenge.token.expose(), &code.to_string(), &meta())
        .await
        .unwrap();
    let me = env
        .service
        .authenticate(token.token.expose())
        .await
        .unwrap();
    env.service
        .regenerate_recovery_codes(&me, "alice", None, RecoveryCodeSet::Policy, &meta())
        .await
        .unwrap();
    env.clock.advance(301);
    let r = env
        .service
        .regenerate_recovery_codes(&me, "alice", None, RecoveryCodeSet::Policy, &meta())
        .await;
    assert!(matches!(r, Err(CoreError::StepUpRequired)), "{r:?}");
}

#[tokio::test]
async fn reset_revokes_sessions() {
    let env = env().await;
    let admin = env.account("root", &[Role::TwofactorAdmin]).await;
    env.account("bob", &[]).await;
    let _before = env.login("bob").await;
    let (secret, _) = env.enroll("bob").await;
    // Activating the second factor ended the sessions opened with the password alone.
    assert!(
        env.service
            .list_sessions(&Principal::Cli, "bob")
            .await
            .unwrap()
            .is_empty()
    );
    // Bob's own reset keeps the session he used and revokes the others.
    let login = || async {
        let LoginOutcome::SecondFactorRequired { challenge, .. } = env
            .service
            .login("bob", pw(PASSWORD), &meta())
            .await
            .unwrap()
        else {
            panic!()
        };
        env.clock.advance(30);
        env.service
            .second_factor(challenge.token.expose(), &env.code(&secret), &meta())
            .await
            .unwrap()
    };
    let _other = login().await;
    let token = login().await;
    let me = env
        .service
        .authenticate(token.token.expose())
        .await
        .unwrap();
    assert_eq!(
        env.service.list_sessions(&me, "bob").await.unwrap().len(),
        2
    );
    env.service
        .remove_totp(&me, "bob", None, &meta())
        .await
        .unwrap();
    let left = env.service.list_sessions(&me, "bob").await.unwrap();
    assert_eq!(left.len(), 1);
    assert!(left[0].current);
    assert!(matches!(
        env.service.totp_status(&me, "bob").await,
        Err(CoreError::NotFound(_))
    ));
    assert!(
        env.service
            .list_recovery_codes(&me, "bob", None, &meta())
            .await
            .unwrap()
            .is_empty()
    );

    // An admin's reset of another account revokes all of them.
    env.enroll("bob").await;
    env.service
        .remove_totp(&admin, "bob", None, &meta())
        .await
        .unwrap();
    assert!(
        env.service
            .list_sessions(&Principal::Cli, "bob")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        env.service.authenticate(token.token.expose()).await,
        Err(CoreError::Unauthenticated)
    ));
}

/// Issue 15: a step is claimed only when a code for it was disclosed; without one (TrueNAS,
/// the CLI), the device's current code works at once.
#[tokio::test]
async fn provisioning_without_a_shown_code_claims_nothing() {
    let env = env().await;
    env.account("dora", &[]).await;
    let p = env
        .service
        .provision_totp(
            &Principal::Cli,
            "dora",
            &TotpOptions::default(),
            false,
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(p.verification_code, None);
    let secret = otp::Secret::from_base32(p.secret.expose()).unwrap();
    let r = env
        .service
        .verify_totp(&Principal::Cli, "dora", &env.code(&secret), &meta())
        .await
        .unwrap();
    assert!(r.valid, "{r:?}");
    let again = env
        .service
        .verify_totp(&Principal::Cli, "dora", &env.code(&secret), &meta())
        .await
        .unwrap();
    assert_eq!(again.reason, Some(VerifyReason::Replayed));
    assert_eq!(
        VerifyReason::Replayed.describe(),
        "already used — wait for the next code"
    );
}

#[tokio::test]
async fn provisioning_claims_the_shown_code() {
    let env = env().await;
    env.account("carol", &[]).await;
    let p = env
        .service
        .provision_totp(
            &Principal::Cli,
            "carol",
            &TotpOptions::default(),
            true,
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(p.recovery_codes.len(), 10);
    assert_eq!(p.fingerprint.len(), 64);
    let shown = p.verification_code.clone().unwrap();
    let r = env
        .service
        .verify_totp(&Principal::Cli, "carol", &shown, &meta())
        .await
        .unwrap();
    assert_eq!(r.reason, Some(VerifyReason::Replayed));
    let again = env
        .service
        .provision_totp(
            &Principal::Cli,
            "carol",
            &TotpOptions::default(),
            false,
            &meta(),
        )
        .await;
    assert!(matches!(again, Err(CoreError::Conflict(_))));
    let status = env
        .service
        .totp_status(&Principal::Cli, "carol")
        .await
        .unwrap();
    assert_eq!(
        (status.state.as_str(), status.enabled, status.fingerprint),
        ("active", true, p.fingerprint)
    );
}

#[tokio::test]
async fn options_are_validated() {
    let env = env().await;
    env.account("dave", &[]).await;
    for (opts, field) in [
        (
            TotpOptions {
                digits: Some(5),
                ..TotpOptions::default()
            },
            "digits",
        ),
        (
            TotpOptions {
                digits: Some(9),
                ..TotpOptions::default()
            },
            "digits",
        ),
        (
            TotpOptions {
                interval: Some(4),
                ..TotpOptions::default()
            },
            "interval",
        ),
        (
            TotpOptions {
                algorithm: Some("MD5".into()),
                ..TotpOptions::default()
            },
            "algorithm",
        ),
    ] {
        let r = env
            .service
            .begin_enrollment(&Principal::Cli, "dave", &opts, &meta())
            .await;
        assert!(
            matches!(&r, Err(CoreError::Invalid { field: f, .. }) if f == field),
            "{opts:?}: {r:?}"
        );
    }
    assert!(matches!(
        env.service.totp_status(&Principal::Cli, "dave").await,
        Err(CoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn plain_accounts_act_only_on_themselves() {
    let env = env().await;
    let alice = env.account("alice", &[]).await;
    env.account("bob", &[]).await;
    let reader = env.account("reader", &[Role::ReadonlyAdmin]).await;
    env.enroll("bob").await;
    assert!(forbidden(&env.service.totp_status(&alice, "bob").await));
    assert!(forbidden(
        &env.service
            .verify_totp(&alice, "bob", "123456", &meta())
            .await
    ));
    assert!(forbidden(
        &env.service.remove_totp(&alice, "bob", None, &meta()).await
    ));
    assert!(forbidden(
        &env.service
            .begin_enrollment(&alice, "bob", &TotpOptions::default(), &meta())
            .await
    ));
    // Even for names that do not exist: no probing.
    assert!(forbidden(&env.service.totp_status(&alice, "nobody").await));
    assert!(forbidden(
        &env.service
            .update_totp(&alice, "alice", Some(false), None, None, &meta())
            .await
    ));
    assert!(forbidden(
        &env.service.list_accounts(&alice, None, 10, 0).await
    ));
    // A read-only admin reads and changes nothing.
    env.service.totp_status(&reader, "bob").await.unwrap();
    assert_eq!(
        env.service
            .list_accounts(&reader, Some("b"), 10, 0)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(forbidden(
        &env.service.remove_totp(&reader, "bob", None, &meta()).await
    ));
    assert!(forbidden(
        &env.service
            .set_policy(&reader, Policy::default(), &meta())
            .await
    ));
    // Only the owner reads its recovery codes, not even an admin.
    let admin = env.account("root", &[Role::FullAdmin]).await;
    assert!(forbidden(
        &env.service
            .list_recovery_codes(&admin, "bob", None, &meta())
            .await
    ));
}

/// Everything the database holds: the SQLite files, or every row of every table as
/// PostgreSQL prints it (bytea as hex).
async fn database_contents(env: &Env) -> Vec<u8> {
    use sqlx::{Connection, Row};
    if !env.db.is_postgres() {
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(env.dir.path()).unwrap() {
            bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
        }
        return bytes;
    }
    let mut conn = sqlx::AnyConnection::connect(env.db.url()).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(tables.len() >= 8, "{tables:?}");
    let mut bytes = Vec::new();
    for table in tables {
        let sql = format!("SELECT CAST(t AS TEXT) AS row FROM \"{table}\" t");
        for row in sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut conn)
            .await
            .unwrap()
        {
            bytes.extend(row.get::<String, _>("row").into_bytes());
        }
    }
    bytes
}

#[tokio::test]
async fn secrets_never_reach_the_database_in_plaintext() {
    let env = env().await;
    env.account("erin", &[]).await;
    let (secret, codes) = env.enroll("erin").await;
    env.service
        .verify_totp(&Principal::Cli, "erin", &env.code(&secret), &meta())
        .await
        .unwrap();
    env.service
        .verify_totp(&Principal::Cli, "erin", codes[0].expose(), &meta())
        .await
        .unwrap();
    let p = env
        .service
        .provision_totp(
            &Principal::Cli,
            "root2",
            &TotpOptions::default(),
            false,
            &meta(),
        )
        .await;
    assert!(p.is_err()); // no such account; nothing written
    let bytes = database_contents(&env).await;
    assert!(bytes.len() > 1000, "the database was read");
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(
        !contains(secret.as_bytes()),
        "raw secret found in the database files"
    );
    let hex: String = secret
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(!contains(hex.as_bytes()), "hex secret found");
    assert!(
        !contains(secret.to_base32().as_bytes()),
        "base32 secret found"
    );
    for code in &codes {
        assert!(!contains(code.expose().as_bytes()), "recovery code found");
        assert!(
            !contains(code.expose().replace('-', "").as_bytes()),
            "recovery code found"
        );
    }
}

#[tokio::test]
async fn a_wrong_master_key_refuses_to_start() {
    let env = env().await;
    env.account("fay", &[]).await;
    env.enroll("fay").await;
    let wrong = MasterKey::generate().unwrap();
    let r = start(env.db.url(), wrong.clone(), env.clock.clone()).await;
    assert!(
        matches!(r, Err(CoreError::WrongMasterKey { configured, needed })
            if configured == wrong.id() && needed == env.master.id()),
        "{:?}",
        r.err()
    );
    start(env.db.url(), env.master.clone(), env.clock.clone())
        .await
        .unwrap();
}

#[tokio::test]
async fn accounts_are_validated_and_unique_case_insensitively() {
    let env = env().await;
    let admin = env.account("root", &[Role::FullAdmin]).await;
    let mk = |name: &str| NewAccount {
        username: name.into(),
        password: Some(pw(PASSWORD)),
        ..NewAccount::default()
    };
    let a = env
        .service
        .create_account(&admin, mk("Jane.Doe@example.com"), &meta())
        .await
        .unwrap();
    assert_eq!((a.uid, a.username.as_str()), (3001, "Jane.Doe@example.com"));
    assert!(matches!(
        env.service
            .create_account(&admin, mk("jane.doe@EXAMPLE.com"), &meta())
            .await,
        Err(CoreError::Conflict(_))
    ));
    for bad in ["", "has space", "ünï", &"x".repeat(65), "semi;colon"] {
        assert!(
            matches!(
                env.service.create_account(&admin, mk(bad), &meta()).await,
                Err(CoreError::Invalid { .. })
            ),
            "{bad:?}"
        );
    }
    let short = NewAccount {
        password: Some(pw("short")),
        ..mk("ok")
    };
    assert!(matches!(
        env.service.create_account(&admin, short, &meta()).await,
        Err(CoreError::Invalid { .. })
    ));
    // The last full admin cannot be removed or demoted.
    assert!(matches!(
        env.service.delete_account(&admin, "root", &meta()).await,
        Err(CoreError::Conflict(_))
    ));
    let demote = AccountPatch {
        roles: Some(Roles::new()),
        ..AccountPatch::default()
    };
    assert!(matches!(
        env.service
            .update_account(&admin, "root", demote, &meta())
            .await,
        Err(CoreError::Conflict(_))
    ));
    env.service
        .delete_account(&admin, "jane.doe@example.com", &meta())
        .await
        .unwrap();
    assert!(matches!(
        env.service
            .get_account(&admin, "Jane.Doe@example.com")
            .await,
        Err(CoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn bootstrap_creates_one_admin_once() {
    let env = env().await;
    let password = env
        .service
        .bootstrap_admin(&meta())
        .await
        .unwrap()
        .expect("first start creates admin");
    assert!(
        env.service
            .bootstrap_admin(&meta())
            .await
            .unwrap()
            .is_none()
    );
    let outcome = env
        .service
        .login("admin", pw(password.expose()), &meta())
        .await
        .unwrap();
    assert!(matches!(outcome, LoginOutcome::Session(_)));
}

#[tokio::test]
async fn every_mutation_is_audited() {
    let env = env().await;
    let admin = env.account("root", &[Role::FullAdmin]).await;
    env.account("gus", &[]).await;
    let (secret, _) = env.enroll("gus").await;
    env.service
        .verify_totp(&admin, "gus", &env.code(&secret), &meta())
        .await
        .unwrap();
    env.service
        .remove_totp(&admin, "gus", None, &meta())
        .await
        .unwrap();
    let events = env
        .service
        .audit_events(
            &admin,
            &AuditQuery {
                account: Some("gus".into()),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    let actions: Vec<&str> = events.iter().rev().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "account.create",
            "auth.login",
            "totp.enroll",
            "totp.confirm",
            "totp.verify",
            "totp.remove"
        ]
    );
    let verify = events.iter().find(|e| e.action == "totp.verify").unwrap();
    assert_eq!(
        (
            verify.actor.as_str(),
            verify.outcome.as_str(),
            verify.door.as_str()
        ),
        ("root", "success", "rest")
    );
    assert_eq!(verify.remote_addr.as_deref(), Some("127.0.0.1"));
}

fn forbidden<T>(r: &CoreResult<T>) -> bool {
    matches!(r, Err(CoreError::Forbidden(_)))
}

#[tokio::test]
async fn profiles_take_truenas_defaults_and_merge_changes() {
    let env = env().await;
    let created = env
        .service
        .create_account(
            &Principal::Cli,
            NewAccount {
                username: "pat".into(),
                profile: Some(serde_json::json!({"groups": [545], "userns_idmap": "DIRECT"})),
                ..NewAccount::default()
            },
            &meta(),
        )
        .await
        .unwrap();
    let p = &created.profile;
    assert_eq!(
        (
            p.home.as_str(),
            p.shell.as_str(),
            p.smb,
            p.groups.as_slice()
        ),
        ("/var/empty", "/usr/bin/zsh", true, &[545][..])
    );
    assert_eq!(
        p.userns_idmap,
        Some(UsernsIdmap::Direct(IdmapDirect::Direct))
    );
    let patch = |profile: serde_json::Value| AccountPatch {
        profile: Some(profile),
        ..AccountPatch::default()
    };
    let updated = env
        .service
        .update_account(
            &Principal::Cli,
            "pat",
            patch(serde_json::json!({"shell": "/usr/bin/bash", "userns_idmap": 4000})),
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(updated.profile.shell, "/usr/bin/bash");
    assert_eq!(
        updated.profile.groups,
        vec![545],
        "unnamed fields keep their values"
    );
    assert_eq!(updated.profile.userns_idmap, Some(UsernsIdmap::Uid(4000)));
    for bad in [
        serde_json::json!({"home": "relative/path"}),
        serde_json::json!({"shell": ""}),
        serde_json::json!({"userns_idmap": 0}),
        serde_json::json!({"userns_idmap": "INDIRECT"}),
        serde_json::json!({"no_such_field": 1}),
        serde_json::json!({"sudo_commands": [""]}),
        serde_json::json!(["not", "an", "object"]),
    ] {
        let r = env
            .service
            .update_account(&Principal::Cli, "pat", patch(bad.clone()), &meta())
            .await;
        assert!(matches!(r, Err(CoreError::Invalid { .. })), "{bad}: {r:?}");
    }
    let again = env
        .service
        .get_account(&Principal::Cli, "pat")
        .await
        .unwrap();
    assert_eq!(
        again.profile, updated.profile,
        "refused changes changed nothing"
    );
}

#[tokio::test]
async fn bulk_provisioning_is_all_or_nothing_and_verifies() {
    let env = env().await;
    let plain = env.account("plain", &[]).await;
    let batch: Vec<BulkAccount> = (0..50)
        .map(|i| BulkAccount {
            username: format!("bulk{i:03}"),
            secret: otp::Secret::generate(20).unwrap(),
        })
        .collect();
    assert!(matches!(
        env.service
            .provision_bulk(&plain, &batch, &TotpOptions::default(), &meta())
            .await,
        Err(CoreError::Forbidden(_))
    ));
    let n = env
        .service
        .provision_bulk(&Principal::Cli, &batch, &TotpOptions::default(), &meta())
        .await
        .unwrap();
    assert_eq!(n, 50);
    for a in [&batch[0], &batch[49]] {
        let ok = env
            .service
            .verify_totp(&Principal::Cli, &a.username, &env.code(&a.secret), &meta())
            .await
            .unwrap();
        assert!(ok.valid, "{ok:?}");
        let account = env
            .service
            .get_account(&Principal::Cli, &a.username)
            .await
            .unwrap();
        assert!(account.password_disabled && account.twofactor_configured);
    }
    // A batch with one taken name creates nothing.
    let again = vec![
        BulkAccount {
            username: "fresh".into(),
            secret: otp::Secret::generate(20).unwrap(),
        },
        BulkAccount {
            username: "BULK007".into(),
            secret: otp::Secret::generate(20).unwrap(),
        },
    ];
    assert!(matches!(
        env.service
            .provision_bulk(&Principal::Cli, &again, &TotpOptions::default(), &meta())
            .await,
        Err(CoreError::Conflict(_))
    ));
    assert!(matches!(
        env.service.get_account(&Principal::Cli, "fresh").await,
        Err(CoreError::NotFound(_))
    ));
}
