//! The verification rule: window, replay (also under a race), lockout, drift, resync,
//! recovery codes.

use crate::helpers::*;
use otpd_core::*;
use std::sync::Arc;

fn refused(reason: VerifyReason) -> VerifyOutcome {
    VerifyOutcome {
        valid: false,
        reason: Some(reason),
        method: None,
    }
}

#[tokio::test]
async fn accepted_once_then_replayed() {
    let env = env().await;
    env.account("alice", &[]).await;
    let (secret, _) = env.enroll("alice").await;
    let code = env.code(&secret);
    let ok = env
        .service
        .verify_totp(&Principal::Cli, "alice", &code, &meta())
        .await
        .unwrap();
    assert_eq!(
        ok,
        VerifyOutcome {
            valid: true,
            reason: None,
            method: Some(FactorMethod::Totp)
        }
    );
    let again = env
        .service
        .verify_totp(&Principal::Cli, "alice", &code, &meta())
        .await
        .unwrap();
    assert_eq!(again, refused(VerifyReason::Replayed));
    // An earlier code within the window is refused too once a later step was used.
    let earlier = env.code_at(&secret, -1);
    let r = env
        .service
        .verify_totp(&Principal::Cli, "alice", &earlier, &meta())
        .await
        .unwrap();
    assert_eq!(r, refused(VerifyReason::Replayed));
}

#[tokio::test]
async fn the_confirming_code_cannot_be_reused() {
    let env = env().await;
    env.account("bob", &[]).await;
    let e = env
        .service
        .begin_enrollment(&Principal::Cli, "bob", &TotpOptions::default(), &meta())
        .await
        .unwrap();
    let secret = otp::Secret::from_base32(e.secret.expose()).unwrap();
    let code = env.code(&secret);
    env.service
        .confirm_enrollment(
            &Principal::Cli,
            "bob",
            &code,
            RecoveryCodeSet::Policy,
            &meta(),
        )
        .await
        .unwrap();
    let r = env
        .service
        .verify_totp(&Principal::Cli, "bob", &code, &meta())
        .await
        .unwrap();
    assert_eq!(r, refused(VerifyReason::Replayed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_racing_requests_accept_exactly_one() {
    let env = env().await;
    env.account("carol", &[]).await;
    let (secret, _) = env.enroll("carol").await;
    let code = env.code(&secret);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let service = env.service.clone();
        let code = code.clone();
        tasks.push(tokio::spawn(async move {
            service
                .verify_totp(&Principal::Cli, "carol", &code, &meta())
                .await
        }));
    }
    let mut valid = 0;
    for t in tasks {
        let outcome = t.await.unwrap().unwrap();
        if outcome.valid {
            valid += 1;
        } else {
            // Replays count as failures, so once `max_failures` of them have been recorded
            // the later ones find the authenticator locked (on PostgreSQL, where reads run
            // alongside the writes, that happens within the race).
            assert!(
                matches!(
                    outcome.reason,
                    Some(VerifyReason::Replayed | VerifyReason::Locked)
                ),
                "{outcome:?}"
            );
        }
    }
    assert_eq!(valid, 1);
}

#[tokio::test]
async fn lockout_after_max_failures_and_unlock_after_lockout_secs() {
    let env = env().await;
    env.account("dave", &[]).await;
    let (secret, _) = env.enroll("dave").await;
    env.policy(|p| {
        p.max_failures = 3;
        p.lockout_secs = 120;
    })
    .await;

    let good = env.code(&secret);
    let bad = env.wrong_code(&secret);
    for _ in 0..3 {
        let r = env
            .service
            .verify_totp(&Principal::Cli, "dave", bad, &meta())
            .await
            .unwrap();
        assert_eq!(r, refused(VerifyReason::Invalid));
    }
    // Locked: even the right code is refused, and says why.
    let r = env
        .service
        .verify_totp(&Principal::Cli, "dave", &good, &meta())
        .await
        .unwrap();
    assert_eq!(r, refused(VerifyReason::Locked));
    let status = env
        .service
        .totp_status(&Principal::Cli, "dave")
        .await
        .unwrap();
    assert_eq!(status.locked_until, Some(T0 + 30 + 120));

    env.clock.advance(119);
    let r = env
        .service
        .verify_totp(&Principal::Cli, "dave", &env.code(&secret), &meta())
        .await
        .unwrap();
    assert_eq!(r, refused(VerifyReason::Locked));
    env.clock.advance(1);
    let r = env
        .service
        .verify_totp(&Principal::Cli, "dave", &env.code(&secret), &meta())
        .await
        .unwrap();
    assert!(r.valid, "unlocked after lockout_secs: {r:?}");
    let status = env
        .service
        .totp_status(&Principal::Cli, "dave")
        .await
        .unwrap();
    assert_eq!((status.locked_until, status.failed_attempts), (None, 0));
}

#[tokio::test]
async fn drift_is_learned_and_resync_recovers_a_far_device() {
    let env = env().await;
    env.account("erin", &[]).await;
    let (secret, _) = env.enroll("erin").await;
    env.clock.advance(30); // past the step the confirmation claimed
    // The device runs one step behind: accepted (window 1) and the drift is learned.
    let r = env
        .service
        .verify_totp(&Principal::Cli, "erin", &env.code_at(&secret, -1), &meta())
        .await
        .unwrap();
    assert!(r.valid);
    assert_eq!(
        env.service
            .totp_status(&Principal::Cli, "erin")
            .await
            .unwrap()
            .drift,
        -1
    );
    // Later it is two steps behind: inside the window around now-1.
    env.clock.advance(60);
    let r = env
        .service
        .verify_totp(&Principal::Cli, "erin", &env.code_at(&secret, -2), &meta())
        .await
        .unwrap();
    assert!(r.valid);
    assert_eq!(
        env.service
            .totp_status(&Principal::Cli, "erin")
            .await
            .unwrap()
            .drift,
        -2
    );

    // Now its clock runs 40 steps fast: outside any window. Two consecutive codes resync
    // it. (A device that falls *back* past steps already used cannot be resynced: its codes
    // are for steps at or before `last_used_step`, which the replay rule refuses.)
    env.clock.advance(60);
    let far = env.code_at(&secret, 40);
    let r = env
        .service
        .verify_totp(&Principal::Cli, "erin", &far, &meta())
        .await
        .unwrap();
    assert_eq!(r, refused(VerifyReason::Invalid));
    let drift = env
        .service
        .resync_totp(
            &Principal::Cli,
            "erin",
            &env.code_at(&secret, 40),
            &env.code_at(&secret, 41),
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(drift, 41);
    env.clock.advance(30);
    let r = env
        .service
        .verify_totp(&Principal::Cli, "erin", &env.code_at(&secret, 41), &meta())
        .await
        .unwrap();
    assert!(r.valid, "verifies at the learned drift: {r:?}");
    // A resync pair cannot be replayed.
    let err = env
        .service
        .resync_totp(
            &Principal::Cli,
            "erin",
            &env.code_at(&secret, 39),
            &env.code_at(&secret, 40),
            &meta(),
        )
        .await;
    assert!(
        matches!(err, Err(CoreError::SecondFactorFailed { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn recovery_codes_are_single_use() {
    let env = env().await;
    env.account("frank", &[]).await;
    let (_, codes) = env.enroll("frank").await;
    assert_eq!(codes.len(), 10);
    let code = codes[3].expose().to_owned();
    let ok = env
        .service
        .verify_totp(&Principal::Cli, "frank", &code.to_lowercase(), &meta())
        .await
        .unwrap();
    assert_eq!(
        ok,
        VerifyOutcome {
            valid: true,
            reason: None,
            method: Some(FactorMethod::RecoveryCode)
        }
    );
    let again = env
        .service
        .verify_totp(&Principal::Cli, "frank", &code, &meta())
        .await
        .unwrap();
    assert_eq!(again, refused(VerifyReason::Invalid));
    assert_eq!(
        env.service
            .totp_status(&Principal::Cli, "frank")
            .await
            .unwrap()
            .recovery_codes_remaining,
        9
    );
    let remaining = env
        .service
        .list_recovery_codes(&Principal::Cli, "frank", None, &meta())
        .await
        .unwrap();
    assert_eq!(remaining.len(), 9);
    assert!(remaining.iter().all(|c| c.expose() != code));
}

#[tokio::test]
async fn disabled_and_not_enrolled_answer_their_reason() {
    let env = env().await;
    env.account("gina", &[]).await;
    let r = env
        .service
        .verify_totp(&Principal::Cli, "gina", "123456", &meta())
        .await
        .unwrap();
    assert_eq!(r, refused(VerifyReason::NotEnrolled));
    let (secret, _) = env.enroll("gina").await;
    env.service
        .update_totp(&Principal::Cli, "gina", Some(false), None, None, &meta())
        .await
        .unwrap();
    let r = env
        .service
        .verify_totp(&Principal::Cli, "gina", &env.code(&secret), &meta())
        .await
        .unwrap();
    assert_eq!(r, refused(VerifyReason::Disabled));
}

#[tokio::test]
async fn malformed_codes_are_errors_and_change_nothing() {
    let env = env().await;
    env.account("hank", &[]).await;
    env.enroll("hank").await;
    let before = env
        .service
        .audit_events(&Principal::Cli, &AuditQuery::default())
        .await
        .unwrap()
        .len();
    for bad in ["12345", "1234567", "12a456", "", "１２３４５６", "+12345"] {
        let r = env
            .service
            .verify_totp(&Principal::Cli, "hank", bad, &meta())
            .await;
        assert!(
            matches!(r, Err(CoreError::Invalid { .. })),
            "{bad:?}: {r:?}"
        );
    }
    let status = env
        .service
        .totp_status(&Principal::Cli, "hank")
        .await
        .unwrap();
    assert_eq!(status.failed_attempts, 0);
    let after = env
        .service
        .audit_events(&Principal::Cli, &AuditQuery::default())
        .await
        .unwrap()
        .len();
    assert_eq!(before, after);
}

/// `count` enrolled accounts `{prefix}000`…, provisioned in bulk.
async fn provision(env: &Env, prefix: &str, count: usize) -> Vec<BulkAccount> {
    let accounts: Vec<BulkAccount> = (0..count)
        .map(|i| BulkAccount {
            username: format!("{prefix}{i:03}"),
            secret: otp::Secret::generate(20).unwrap(),
        })
        .collect();
    env.service
        .provision_bulk(&Principal::Cli, &accounts, &TotpOptions::default(), &meta())
        .await
        .unwrap();
    accounts
}

/// Many accounts verifying at once share transactions on SQLite (group commit): every
/// answer is still right, every step claimed once, every outcome audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_verifications_of_many_accounts_are_each_answered_right() {
    let env = env().await;
    let accounts = provision(&env, "gc", 200).await;
    let run = |codes: Vec<(String, String)>| {
        let service = env.service.clone();
        async move {
            let tasks: Vec<_> = codes
                .into_iter()
                .map(|(name, code)| {
                    let service = service.clone();
                    tokio::spawn(async move {
                        service
                            .verify_totp(&Principal::Cli, &name, &code, &meta())
                            .await
                            .unwrap()
                    })
                })
                .collect();
            let mut outcomes = Vec::new();
            for t in tasks {
                outcomes.push(t.await.unwrap());
            }
            outcomes
        }
    };
    let valid: Vec<(String, String)> = accounts
        .iter()
        .map(|a| (a.username.clone(), env.code(&a.secret)))
        .collect();
    let first = run(valid.clone()).await;
    assert!(first.iter().all(|o| o.valid), "all fresh codes accepted");
    let again = run(valid).await;
    assert!(
        again
            .iter()
            .all(|o| o.reason == Some(VerifyReason::Replayed)),
        "all replays refused"
    );
    let wrong: Vec<(String, String)> = accounts
        .iter()
        .map(|a| (a.username.clone(), "000000".to_owned()))
        .collect();
    let bad = run(wrong).await;
    assert!(bad.iter().all(|o| !o.valid));
    let events = env
        .service
        .audit_events(
            &Principal::Cli,
            &AuditQuery {
                action: Some("totp.verify".into()),
                limit: Some(1000),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 600, "one audit row per answer");
    let status = env
        .service
        .totp_status(&Principal::Cli, "gc007")
        .await
        .unwrap();
    assert_eq!(
        status.failed_attempts, 2,
        "a replay and a wrong code counted"
    );
}

/// While verification writes stream through the group-commit writer, the service's other
/// writes (here: new accounts) and a second service on the same database (as the CLI beside
/// `otpd serve`) still get their turn: nothing fails with "database is locked", nothing
/// waits for the load to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn other_writes_take_turns_with_a_stream_of_verifications() {
    let env = env().await;
    let accounts = provision(&env, "st", 50).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let streams: Vec<_> = accounts
        .iter()
        .map(|a| {
            let (service, stop, name) = (env.service.clone(), stop.clone(), a.username.clone());
            tokio::spawn(async move {
                let mut answered = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let outcome = service
                        .verify_totp(&Principal::Cli, &name, "000000", &meta())
                        .await
                        .unwrap();
                    assert!(!outcome.valid);
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    let other = start(env.db.url(), env.master.clone(), env.clock.clone())
        .await
        .unwrap();
    for i in 0..20 {
        let service = if i % 2 == 0 { &env.service } else { &other };
        service
            .create_account(
                &Principal::Cli,
                NewAccount {
                    username: format!("new{i:02}"),
                    ..NewAccount::default()
                },
                &meta(),
            )
            .await
            .unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut answered = 0;
    for s in streams {
        answered += s.await.unwrap();
    }
    assert!(
        answered >= 50,
        "the verifications ran meanwhile ({answered})"
    );
    let listed = env
        .service
        .list_accounts(&Principal::Cli, Some("new"), 100, 0)
        .await
        .unwrap();
    assert_eq!(
        listed
            .iter()
            .filter(|a| a.username.starts_with("new"))
            .count(),
        20
    );
}

/// One account's audit history holds every verification, racing or not, in id order, and
/// keeps them when the authenticator and then the account are deleted (the verification
/// path links its rows per authenticator instead of indexing them by account: migration
/// 0003).
#[tokio::test]
async fn an_accounts_history_keeps_every_verification_through_races_and_deletion() {
    let env = env().await;
    let admin = env.account("root", &[Role::FullAdmin]).await;
    env.account("hana", &[]).await;
    env.account("ivan", &[]).await;
    let (secret, _) = env.enroll("hana").await;
    let (other, _) = env.enroll("ivan").await;
    env.policy(|p| p.max_failures = 1000).await;
    let good = env.code(&secret);
    let bad = env.wrong_code(&secret);
    let mut tasks = Vec::new();
    for i in 0..60 {
        let service = env.service.clone();
        let (name, code) = match i % 3 {
            0 => ("hana", good.clone()),
            1 => ("hana", bad.to_owned()),
            _ => ("ivan", env.code(&other)),
        };
        tasks.push(tokio::spawn(async move {
            service
                .verify_totp(&Principal::Cli, name, &code, &meta())
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let history = |query: AuditQuery| {
        let service = env.service.clone();
        let admin = admin.clone();
        async move { service.audit_events(&admin, &query).await.unwrap() }
    };
    let all = history(AuditQuery {
        account: Some("hana".into()),
        limit: Some(1000),
        ..AuditQuery::default()
    })
    .await;
    let verifies = |events: &[AuditEvent]| {
        events
            .iter()
            .filter(|e| e.action == "totp.verify")
            .map(|e| e.id)
            .collect::<Vec<_>>()
    };
    let newest_first = verifies(&all);
    assert_eq!(newest_first.len(), 40, "every verification of hana, once");
    assert!(newest_first.windows(2).all(|w| w[0] > w[1]), "newest first");
    assert!(all.iter().all(|e| e.account.as_deref() == Some("hana")));
    assert!(all.iter().any(|e| e.action == "totp.enroll"));
    // Filters apply to the linked rows too: one code was accepted.
    let accepted = history(AuditQuery {
        account: Some("hana".into()),
        action: Some("totp.verify".into()),
        outcome: Some("success".into()),
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(accepted.len(), 1);

    // Following the history with a cursor, a few at a time, yields the same rows oldest first.
    let follow = || async {
        let mut seen = Vec::new();
        let mut after = 0;
        loop {
            let page = history(AuditQuery {
                account: Some("hana".into()),
                after_id: Some(after),
                limit: Some(7),
                ..AuditQuery::default()
            })
            .await;
            let Some(last) = page.last() else { break };
            after = last.id;
            seen.extend(page);
        }
        seen
    };
    // Pages by offset, newest first, add up to the whole history too.
    let mut paged = Vec::new();
    for page in 0.. {
        let rows = history(AuditQuery {
            account: Some("hana".into()),
            limit: Some(6),
            offset: Some(page * 6),
            ..AuditQuery::default()
        })
        .await;
        if rows.is_empty() {
            break;
        }
        paged.extend(rows.into_iter().map(|e| e.id));
    }
    assert_eq!(paged, all.iter().map(|e| e.id).collect::<Vec<_>>());
    let followed = follow().await;
    let mut oldest_first = newest_first.clone();
    oldest_first.reverse();
    assert_eq!(verifies(&followed), oldest_first);
    assert_eq!(followed.len(), all.len());

    // Deleting the authenticator, then the account, loses none of it.
    env.service
        .remove_totp(&admin, "hana", None, &meta())
        .await
        .unwrap();
    env.service
        .delete_account(&admin, "hana", &meta())
        .await
        .unwrap();
    let after_deletion = history(AuditQuery {
        account: Some("hana".into()),
        limit: Some(1000),
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(verifies(&after_deletion), newest_first);
    assert_eq!(verifies(&follow().await), oldest_first);
    let ivan = history(AuditQuery {
        account: Some("ivan".into()),
        action: Some("totp.verify".into()),
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(ivan.len(), 20);
}
