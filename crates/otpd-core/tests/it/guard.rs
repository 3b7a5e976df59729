//! Guarding the second factor (issue 14): reading it, weakening it, managing accounts with
//! more power, enrollment-only sessions, what recovery revokes, lockout under bursts. Each
//! test is one kind of attack, answered by the core so that every front door inherits it.

use crate::helpers::*;
use otpd_core::*;

fn forbidden<T: std::fmt::Debug>(r: CoreResult<T>) {
    assert!(matches!(r, Err(CoreError::Forbidden(_))), "{r:?}");
}

fn step_up_required<T: std::fmt::Debug>(r: CoreResult<T>) {
    assert!(matches!(r, Err(CoreError::StepUpRequired)), "{r:?}");
}

impl Env {
    /// A new API key of `name`'s, and the principal it authenticates.
    async fn api_key(&self, name: &str) -> (Principal, String) {
        let key = self
            .service
            .create_api_key(&Principal::Cli, name, "k", &meta())
            .await
            .unwrap();
        let token = key.key.expose().to_owned();
        (self.service.authenticate(&token).await.unwrap(), token)
    }

    /// A session that proved `name`'s second factor now, and its token.
    async fn login_2fa(&self, name: &str, secret: &otp::Secret) -> (Principal, String) {
        let LoginOutcome::SecondFactorRequired { challenge, .. } = self
            .service
            .login(name, pw(PASSWORD), &meta())
            .await
            .unwrap()
        else {
            panic!("{name} has a second factor")
        };
        let token = self
            .service
            .second_factor(challenge.token.expose(), &self.code(secret), &meta())
            .await
            .unwrap();
        // The code's step is claimed: later codes come from the next one.
        self.clock.advance(30);
        let token = token.token.expose().to_owned();
        (self.service.authenticate(&token).await.unwrap(), token)
    }
}

/// §1: recovery codes are read only with step-up; an active secret is never shown again.
#[tokio::test]
async fn reading_a_second_factor_needs_step_up_and_secrets_are_shown_once() {
    let env = env().await;
    let before = env.account("alice", &[]).await;
    let (key, _) = env.api_key("alice").await;
    let (secret, codes) = env.enroll("alice").await;
    // An API key, and a session that proved no second factor, read nothing.
    step_up_required(
        env.service
            .list_recovery_codes(&key, "alice", None, &meta())
            .await,
    );
    let (fresh, _) = env.login_2fa("alice", &secret).await;
    env.clock.advance(301); // older than the step-up window
    step_up_required(
        env.service
            .list_recovery_codes(&fresh, "alice", None, &meta())
            .await,
    );
    // With a code sent along, the owner reads them (a recovery code is consumed by it).
    let listed = env
        .service
        .list_recovery_codes(&key, "alice", Some(codes[0].expose()), &meta())
        .await
        .unwrap();
    assert_eq!(listed.len(), codes.len() - 1);
    // The active secret: to nobody, not the owner, not a full admin, not the CLI.
    let admin = env.account("root", &[Role::FullAdmin]).await;
    for who in [&fresh, &admin, &Principal::Cli] {
        let r = env.service.pending_key_uri(who, "alice").await;
        assert!(
            matches!(r, Err(CoreError::NotFound("pending enrollment"))),
            "{r:?}"
        );
    }
    // A pending one is shown again to its owner (for its QR code) until confirmed.
    env.account("bob", &[]).await;
    let bob = env.login("bob").await;
    let pending = env
        .service
        .begin_enrollment(&bob, "bob", &TotpOptions::default(), &meta())
        .await
        .unwrap();
    assert_eq!(
        env.service.pending_key_uri(&bob, "bob").await.unwrap(),
        pending.provisioning_uri
    );
    drop(before);
}

/// §2: every change that weakens one's own second factor needs step-up, whatever the route.
#[tokio::test]
async fn weakening_ones_own_second_factor_needs_step_up_on_every_route() {
    let env = env().await;
    env.account("helpdesk", &[Role::TwofactorAdmin]).await;
    let (secret, _) = env.enroll("helpdesk").await;
    let (key, _) = env.api_key("helpdesk").await;
    step_up_required(
        env.service
            .update_totp(&key, "helpdesk", Some(false), None, None, &meta())
            .await,
    );
    step_up_required(
        env.service
            .remove_totp(&key, "helpdesk", None, &meta())
            .await,
    );
    step_up_required(
        env.service
            .renew_totp(&key, "helpdesk", &TotpOptions::default(), None, &meta())
            .await,
    );
    step_up_required(
        env.service
            .regenerate_recovery_codes(&key, "helpdesk", None, RecoveryCodeSet::Policy, &meta())
            .await,
    );
    step_up_required(
        env.service
            .set_password(
                &key,
                "helpdesk",
                Some(pw("a brand new password")),
                Some(pw(PASSWORD)),
                None,
                &meta(),
            )
            .await,
    );
    // The password alone still asks for the second factor.
    assert!(matches!(
        env.service
            .login("helpdesk", pw(PASSWORD), &meta())
            .await
            .unwrap(),
        LoginOutcome::SecondFactorRequired { .. }
    ));
    // A comment is no weakening; switching it off with a code sent along is allowed.
    env.service
        .update_totp(&key, "helpdesk", None, Some("phone".into()), None, &meta())
        .await
        .unwrap();
    let off = env
        .service
        .update_totp(
            &key,
            "helpdesk",
            Some(false),
            None,
            Some(&env.code(&secret)),
            &meta(),
        )
        .await
        .unwrap();
    assert!(!off.enabled);
}

/// §3: nobody manages the 2FA, password or sessions of an account with more power.
#[tokio::test]
async fn nobody_manages_an_account_with_more_power_than_their_own() {
    let env = env().await;
    let helpdesk = env.account("helpdesk", &[Role::TwofactorAdmin]).await;
    env.account("admin2", &[Role::FullAdmin]).await;
    env.account("peer", &[Role::TwofactorAdmin]).await;
    env.account("carol", &[]).await;
    let opts = TotpOptions::default();
    forbidden(
        env.service
            .provision_totp(&helpdesk, "admin2", &opts, false, &meta())
            .await,
    );
    forbidden(
        env.service
            .begin_enrollment(&helpdesk, "admin2", &opts, &meta())
            .await,
    );
    forbidden(
        env.service
            .set_password(
                &helpdesk,
                "admin2",
                Some(pw("taken over!!")),
                None,
                None,
                &meta(),
            )
            .await,
    );
    env.enroll("admin2").await;
    forbidden(
        env.service
            .renew_totp(&helpdesk, "admin2", &opts, None, &meta())
            .await,
    );
    forbidden(
        env.service
            .update_totp(&helpdesk, "admin2", Some(false), None, None, &meta())
            .await,
    );
    forbidden(
        env.service
            .remove_totp(&helpdesk, "admin2", None, &meta())
            .await,
    );
    forbidden(
        env.service
            .resync_totp(&helpdesk, "admin2", "123456", "654321", &meta())
            .await,
    );
    let sessions = env
        .service
        .list_sessions(&Principal::Cli, "admin2")
        .await
        .unwrap();
    assert!(sessions.is_empty(), "the CLI's enrollment revoked them");
    let admin2 = env.login_2fa_after_enroll("admin2").await;
    let session = env.service.list_sessions(&admin2, "admin2").await.unwrap();
    forbidden(
        env.service
            .revoke_session(&helpdesk, "admin2", &session[0].id, &meta())
            .await,
    );
    // Plain accounts and other 2FA admins are within a 2FA admin's reach.
    env.service
        .provision_totp(&helpdesk, "carol", &opts, false, &meta())
        .await
        .unwrap();
    env.service
        .provision_totp(&helpdesk, "peer", &opts, false, &meta())
        .await
        .unwrap();
    env.service
        .renew_totp(&helpdesk, "peer", &opts, None, &meta())
        .await
        .unwrap();
    // A full admin reaches everyone; verifying a code is no management.
    let root = env.account("root", &[Role::FullAdmin]).await;
    env.service
        .renew_totp(&root, "admin2", &opts, None, &meta())
        .await
        .unwrap();
    env.account("svc", &[Role::Verifier]).await;
    let (svc, _) = env.api_key("svc").await;
    let v = env
        .service
        .verify_totp(&svc, "admin2", "000000", &meta())
        .await
        .unwrap();
    assert!(!v.valid);
    forbidden(env.service.totp_status(&svc, "admin2").await);
    forbidden(
        env.service
            .provision_totp(&svc, "carol", &opts, false, &meta())
            .await,
    );
    // Nothing else, not even on itself: no more keys, no enrollment, no reading.
    forbidden(
        env.service
            .create_api_key(&svc, "svc", "more", &meta())
            .await,
    );
    forbidden(
        env.service
            .begin_enrollment(&svc, "svc", &opts, &meta())
            .await,
    );
    forbidden(env.service.get_account(&svc, "svc").await);
    forbidden(env.service.list_api_keys(&svc, Some("svc")).await);
    forbidden(env.service.audit_events(&svc, &AuditQuery::default()).await);
}

impl Env {
    /// Enrolls nothing: logs `name` (who has an authenticator enrolled by [`Env::enroll`]
    /// with a secret unknown here) in with a recovery code instead.
    async fn login_2fa_after_enroll(&self, name: &str) -> Principal {
        let codes = self
            .service
            .regenerate_recovery_codes(
                &Principal::Cli,
                name,
                None,
                RecoveryCodeSet::Policy,
                &meta(),
            )
            .await
            .unwrap();
        let LoginOutcome::SecondFactorRequired { challenge, .. } = self
            .service
            .login(name, pw(PASSWORD), &meta())
            .await
            .unwrap()
        else {
            panic!()
        };
        let token = self
            .service
            .second_factor(challenge.token.expose(), codes[0].expose(), &meta())
            .await
            .unwrap();
        self.service
            .authenticate(token.token.expose())
            .await
            .unwrap()
    }
}

/// §4: until an account that must enroll has enrolled, its session only reads and enrolls
/// itself, whatever its roles.
#[tokio::test]
async fn enrollment_only_sessions_only_enroll_themselves() {
    let env = env().await;
    env.account("helpdesk", &[Role::TwofactorAdmin]).await;
    env.account("carol", &[]).await;
    env.policy(|p| p.enforced = true).await;
    let LoginOutcome::EnrollmentRequired(token) = env
        .service
        .login("helpdesk", pw(PASSWORD), &meta())
        .await
        .unwrap()
    else {
        panic!("policy enforced: enrollment first")
    };
    let me = env
        .service
        .authenticate(token.token.expose())
        .await
        .unwrap();
    let opts = TotpOptions::default();
    forbidden(
        env.service
            .begin_enrollment(&me, "carol", &opts, &meta())
            .await,
    );
    forbidden(
        env.service
            .provision_totp(&me, "carol", &opts, false, &meta())
            .await,
    );
    forbidden(
        env.service
            .confirm_enrollment(&me, "carol", "123456", RecoveryCodeSet::Policy, &meta())
            .await,
    );
    forbidden(env.service.audit_events(&me, &AuditQuery::default()).await);
    forbidden(env.service.get_account(&me, "carol").await);
    forbidden(env.service.list_accounts(&me, None, 10, 0).await);
    forbidden(env.service.get_policy(&me).await);
    forbidden(env.service.list_api_keys(&me, None).await);
    // Itself: read and enroll.
    env.service.get_account(&me, "helpdesk").await.unwrap();
    let e = env
        .service
        .begin_enrollment(&me, "helpdesk", &opts, &meta())
        .await
        .unwrap();
    let secret = otp::Secret::from_base32(e.secret.expose()).unwrap();
    env.service
        .confirm_enrollment(
            &me,
            "helpdesk",
            &env.code(&secret),
            RecoveryCodeSet::Policy,
            &meta(),
        )
        .await
        .unwrap();
    // Enrolled: the same token is a full session with the account's roles.
    let me = env
        .service
        .authenticate(token.token.expose())
        .await
        .unwrap();
    env.service.get_account(&me, "carol").await.unwrap();
    env.service
        .audit_events(&me, &AuditQuery::default())
        .await
        .unwrap();
}

/// §5: activating, renewing or removing 2FA and resetting a password end every credential
/// an attacker may hold; changing one's own password needs the current one.
#[tokio::test]
async fn recovery_ends_every_credential_an_attacker_may_hold() {
    let env = env().await;
    let root = env.account("root", &[Role::FullAdmin]).await;
    env.account("alice", &[]).await;
    // Two password sessions; one enrolls and confirms: the other ends.
    let (_, stolen) = {
        let LoginOutcome::Session(t) = env
            .service
            .login("alice", pw(PASSWORD), &meta())
            .await
            .unwrap()
        else {
            panic!()
        };
        ((), t.token.expose().to_owned())
    };
    let mine = env.login("alice").await;
    let e = env
        .service
        .begin_enrollment(&mine, "alice", &TotpOptions::default(), &meta())
        .await
        .unwrap();
    let secret = otp::Secret::from_base32(e.secret.expose()).unwrap();
    env.service
        .confirm_enrollment(
            &mine,
            "alice",
            &env.code(&secret),
            RecoveryCodeSet::Policy,
            &meta(),
        )
        .await
        .unwrap();
    env.clock.advance(30);
    assert!(matches!(
        env.service.authenticate(&stolen).await,
        Err(CoreError::Unauthenticated)
    ));
    env.service.get_account(&mine, "alice").await.unwrap();

    // An admin's recovery actions also end the account's API keys.
    for recovery in ["renew", "remove", "password"] {
        if env
            .service
            .totp_status(&Principal::Cli, "alice")
            .await
            .is_err()
        {
            env.enroll("alice").await;
        }
        let (_, key) = env.api_key("alice").await;
        match recovery {
            "renew" => {
                env.service
                    .renew_totp(&root, "alice", &TotpOptions::default(), None, &meta())
                    .await
                    .unwrap();
            }
            "remove" => env
                .service
                .remove_totp(&root, "alice", None, &meta())
                .await
                .unwrap(),
            _ => env
                .service
                .set_password(&root, "alice", Some(pw(PASSWORD)), None, None, &meta())
                .await
                .unwrap(),
        }
        assert!(
            matches!(
                env.service.authenticate(&key).await,
                Err(CoreError::Unauthenticated)
            ),
            "the API key survived an admin's {recovery}"
        );
    }
    // The account's own key survives its own changes, but cannot set a password without
    // the current one.
    env.service
        .remove_totp(&Principal::Cli, "alice", None, &meta())
        .await
        .unwrap();
    let (key, token) = env.api_key("alice").await;
    let without = env
        .service
        .set_password(
            &key,
            "alice",
            Some(pw("attacker's choice")),
            None,
            None,
            &meta(),
        )
        .await;
    assert!(
        matches!(&without, Err(CoreError::Invalid { field, .. }) if field == "current_password"),
        "{without:?}"
    );
    let wrong = env
        .service
        .set_password(
            &key,
            "alice",
            Some(pw("attacker's choice")),
            Some(pw("a wrong guess")),
            None,
            &meta(),
        )
        .await;
    assert!(matches!(wrong, Err(CoreError::Forbidden(_))), "{wrong:?}");
    env.service
        .set_password(
            &key,
            "alice",
            Some(pw("a new good password")),
            Some(pw(PASSWORD)),
            None,
            &meta(),
        )
        .await
        .unwrap();
    env.service.authenticate(&token).await.unwrap();
}

/// §6: a burst of wrong codes has at most `max_failures` evaluated per lockout period —
/// every later answer is `locked` — and a right code in the burst is accepted or answered
/// `locked`, never `replayed`. Many bursts, the bound asserted every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_holds_under_bursts() {
    let env = env().await;
    env.account("alice", &[]).await;
    let (secret, _) = env.enroll("alice").await;
    const BURST: usize = 150;
    for (bursts, max_failures) in [(140_u32, 10_u32), (60, 5)] {
        env.policy(|p| {
            p.max_failures = max_failures;
            p.lockout_secs = 120;
        })
        .await;
        for burst in 0..bursts {
            // A fresh lockout period and a fresh step for every burst.
            env.clock.advance(150);
            let valid: Vec<String> = (-1..=1).map(|s| env.code_at(&secret, s)).collect();
            let mut codes: Vec<String> = (0..)
                .map(|n: u32| format!("{:06}", (n * 7919 + burst * 13) % 1_000_000))
                .filter(|c| !valid.contains(c))
                .take(BURST)
                .collect();
            // Every other burst carries the right code, somewhere in it.
            let right = (burst % 2 == 1).then(|| {
                let at = (burst as usize * 37) % BURST;
                codes[at] = env.code(&secret);
                at
            });
            let tasks: Vec<_> = codes
                .iter()
                .map(|code| {
                    let service = env.service.clone();
                    let code = code.clone();
                    tokio::spawn(async move {
                        service
                            .verify_totp(&Principal::Cli, "alice", &code, &meta())
                            .await
                    })
                })
                .collect();
            let mut answers = Vec::with_capacity(BURST);
            for t in tasks {
                answers.push(t.await.unwrap().unwrap());
            }
            let accepted = right.is_some_and(|at| answers[at].valid);
            if let Some(at) = right {
                assert!(
                    answers[at].valid || answers[at].reason == Some(VerifyReason::Locked),
                    "burst {burst}: the right code was answered {:?}",
                    answers[at]
                );
            }
            let evaluated = answers
                .iter()
                .enumerate()
                .filter(|(i, a)| Some(*i) != right && a.reason != Some(VerifyReason::Locked))
                .count();
            // A right code accepted mid-burst resets the count (DESIGN.md), once.
            let bound = max_failures as usize * if accepted { 2 } else { 1 };
            assert!(
                evaluated <= bound,
                "burst {burst} (max_failures {max_failures}): {evaluated} wrong codes evaluated"
            );
            assert!(
                answers
                    .iter()
                    .all(|a| a.valid || a.reason != Some(VerifyReason::Replayed)),
                "burst {burst}: a wrong code answered replayed"
            );
        }
    }
}

/// §6: an admin's unlock also ends the authenticator's lockout.
#[tokio::test]
async fn unlocking_an_account_clears_its_authenticators_lockout() {
    let env = env().await;
    env.account("alice", &[]).await;
    let (secret, _) = env.enroll("alice").await;
    env.policy(|p| p.max_failures = 2).await;
    for _ in 0..2 {
        env.service
            .verify_totp(&Principal::Cli, "alice", env.wrong_code(&secret), &meta())
            .await
            .unwrap();
    }
    let status = env
        .service
        .totp_status(&Principal::Cli, "alice")
        .await
        .unwrap();
    assert!(status.locked_until.is_some());
    env.service
        .set_account_locked(&Principal::Cli, "alice", false, &meta())
        .await
        .unwrap();
    let status = env
        .service
        .totp_status(&Principal::Cli, "alice")
        .await
        .unwrap();
    assert_eq!((status.locked_until, status.failed_attempts), (None, 0));
    let v = env
        .service
        .verify_totp(&Principal::Cli, "alice", &env.code(&secret), &meta())
        .await
        .unwrap();
    assert!(v.valid, "{v:?}");
}

/// §8: names that are path segments are refused, with a clear error.
#[tokio::test]
async fn usernames_that_are_path_segments_are_refused() {
    let env = env().await;
    for name in [".", "..", "a/b", "a\\b", "a\u{202e}b", "tab\tname"] {
        let r = env
            .service
            .create_account(
                &Principal::Cli,
                NewAccount {
                    username: name.into(),
                    ..NewAccount::default()
                },
                &meta(),
            )
            .await;
        assert!(
            matches!(&r, Err(CoreError::Invalid { field, .. }) if field == "username"),
            "{name:?}: {r:?}"
        );
    }
    for email in [
        "a\u{202e}b@example.com",
        "a/b@example.com",
        "a\\b@example.com",
    ] {
        let r = env
            .service
            .create_account(
                &Principal::Cli,
                NewAccount {
                    username: "fine".into(),
                    email: Some(email.into()),
                    ..NewAccount::default()
                },
                &meta(),
            )
            .await;
        assert!(
            matches!(&r, Err(CoreError::Invalid { field, .. }) if field == "email"),
            "{email:?}: {r:?}"
        );
    }
    // `.` inside a name stays allowed (e-mail-like names).
    env.account("first.last", &[]).await;
}
