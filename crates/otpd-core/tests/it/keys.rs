//! `keys rotate` and `keys rewrap`: every value re-sealed, nothing lost, other instances on
//! the same database keep answering correctly while and after it runs.

use crate::helpers::*;
use otpd_core::*;

fn status_ids(status: &KeyStatus) -> Vec<(String, i64, i64)> {
    status
        .data_keys
        .iter()
        .map(|k| (k.state.clone(), k.secrets, k.recovery_codes))
        .collect()
}

#[tokio::test]
async fn rotation_reseals_everything_and_other_instances_follow() {
    let env = env().await;
    // A second instance on the same database, started before the rotation: it holds only
    // the old data key.
    let other = start(env.db.url(), env.master.clone(), env.clock.clone())
        .await
        .unwrap();
    let mut enrolled = Vec::new();
    for i in 0..3 {
        let name = format!("user{i}");
        env.account(&name, &[]).await;
        enrolled.push((name.clone(), env.enroll(&name).await));
    }
    env.account("pending", &[]).await;
    env.service
        .begin_enrollment(&Principal::Cli, "pending", &TotpOptions::default(), &meta())
        .await
        .unwrap();
    let before = env.service.key_status(&Principal::Cli).await.unwrap();
    assert_eq!(status_ids(&before), vec![("active".into(), 4, 30)]);
    assert_eq!(before.master_key, format!("{:08x}", env.master.id()));

    let mut seen = Vec::new();
    let report = env
        .service
        .rotate_keys(&Principal::Cli, &meta(), &mut |done, total| {
            seen.push((done, total))
        })
        .await
        .unwrap();
    assert_eq!(
        (
            report.resealed_secrets,
            report.resealed_recovery_codes,
            report.deleted_keys
        ),
        (4, 30, 1)
    );
    assert_eq!(seen.first(), Some(&(0, 34)));
    assert_eq!(seen.last(), Some(&(34, 34)));
    let after = env.service.key_status(&Principal::Cli).await.unwrap();
    assert_eq!(status_ids(&after), vec![("active".into(), 4, 30)]);
    assert_eq!(after.data_keys[0].id, report.active_key);
    assert_ne!(after.data_keys[0].id, before.data_keys[0].id);

    // The stale instance opens the re-sealed secrets (it reloads the keys) ...
    let (name, (secret, codes)) = &enrolled[0];
    let code = env.code(secret);
    let ok = other
        .verify_totp(&Principal::Cli, name, &code, &meta())
        .await
        .unwrap();
    assert!(ok.valid, "{ok:?}");
    // ... finds recovery codes by their new lookups ...
    let rc = other
        .verify_totp(&Principal::Cli, name, codes[0].expose(), &meta())
        .await
        .unwrap();
    assert_eq!(rc.method, Some(FactorMethod::RecoveryCode), "{rc:?}");
    // ... and the owner still lists the same codes, in plaintext.
    let listed = other
        .list_recovery_codes(&Principal::Cli, name, None, &meta())
        .await
        .unwrap();
    assert_eq!(listed.as_slice(), &codes[1..]);
    // A new value sealed by the stale instance uses the new active key.
    env.account("late", &[]).await;
    other
        .provision_totp(
            &Principal::Cli,
            "late",
            &TotpOptions::default(),
            false,
            &meta(),
        )
        .await
        .unwrap();
    let last = env.service.key_status(&Principal::Cli).await.unwrap();
    assert_eq!(status_ids(&last), vec![("active".into(), 5, 39)]);

    // Every remaining account still verifies, on both instances.
    for (name, (secret, _)) in &enrolled[1..] {
        let code = env.code(secret);
        assert!(
            env.service
                .verify_totp(&Principal::Cli, name, &code, &meta())
                .await
                .unwrap()
                .valid
        );
    }
    let events = env
        .service
        .audit_events(
            &Principal::Cli,
            &AuditQuery {
                action: Some("keys.rotate".into()),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
}

#[tokio::test]
async fn renewals_racing_a_rotation_are_never_lost() {
    let env = env().await;
    let other = start(env.db.url(), env.master.clone(), env.clock.clone())
        .await
        .unwrap();
    let names: Vec<String> = (0..40).map(|i| format!("racer{i}")).collect();
    for name in &names {
        env.service
            .create_account(
                &Principal::Cli,
                NewAccount {
                    username: name.clone(),
                    ..NewAccount::default()
                },
                &meta(),
            )
            .await
            .unwrap();
        env.service
            .provision_totp(
                &Principal::Cli,
                name,
                &TotpOptions::default(),
                false,
                &meta(),
            )
            .await
            .unwrap();
    }
    // Renew every account on the other instance while this one rotates, twice over.
    let renewer = {
        let other = other.clone();
        let names = names.clone();
        tokio::spawn(async move {
            let mut latest = Vec::new();
            for name in &names {
                let r = other
                    .renew_totp(
                        &Principal::Cli,
                        name,
                        &TotpOptions::default(),
                        None,
                        &meta(),
                    )
                    .await
                    .unwrap();
                latest.push(otp::Secret::from_base32(r.secret.expose()).unwrap());
            }
            latest
        })
    };
    for _ in 0..2 {
        env.service
            .rotate_keys(&Principal::Cli, &meta(), &mut |_, _| {})
            .await
            .unwrap();
    }
    let latest = renewer.await.unwrap();
    for (name, secret) in names.iter().zip(&latest) {
        let outcome = env
            .service
            .verify_totp(&Principal::Cli, name, &env.code(secret), &meta())
            .await
            .unwrap();
        assert!(outcome.valid, "{name}: {outcome:?}");
    }
    // Whatever the interleaving, one key remains once a rotation has finished after it.
    env.service
        .rotate_keys(&Principal::Cli, &meta(), &mut |_, _| {})
        .await
        .unwrap();
    let status = env.service.key_status(&Principal::Cli).await.unwrap();
    assert_eq!(status_ids(&status), vec![("active".into(), 40, 400)]);
}

#[tokio::test]
async fn rewrap_moves_the_database_to_a_new_master_key() {
    let env = env().await;
    env.account("gus", &[]).await;
    let (secret, _) = env.enroll("gus").await;
    let new_master = MasterKey::generate().unwrap();
    let n = env
        .service
        .rewrap_keys(&Principal::Cli, &new_master, &meta())
        .await
        .unwrap();
    assert_eq!(n, 1);
    let old = start(env.db.url(), env.master.clone(), env.clock.clone()).await;
    assert!(
        matches!(old, Err(CoreError::WrongMasterKey { needed, .. }) if needed == new_master.id()),
        "{:?}",
        old.err()
    );
    let fresh = start(env.db.url(), new_master, env.clock.clone())
        .await
        .unwrap();
    assert!(
        fresh
            .verify_totp(&Principal::Cli, "gus", &env.code(&secret), &meta())
            .await
            .unwrap()
            .valid
    );
}

#[tokio::test]
async fn only_full_admins_and_the_cli_manage_keys() {
    let env = env().await;
    let tfa = env.account("tfa", &[Role::TwofactorAdmin]).await;
    let reader = env.account("reader", &[Role::ReadonlyAdmin]).await;
    let plain = env.account("plain", &[]).await;
    for p in [&tfa, &reader, &plain] {
        assert!(matches!(
            env.service.rotate_keys(p, &meta(), &mut |_, _| {}).await,
            Err(CoreError::Forbidden(_))
        ));
    }
    assert!(env.service.key_status(&reader).await.is_ok());
    assert!(env.service.key_status(&plain).await.is_err());
}
