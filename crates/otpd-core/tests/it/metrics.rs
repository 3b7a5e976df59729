//! The core's metrics count its decisions once each, whatever the concurrency, and whether
//! or not the caller waits for the answer.

use crate::helpers::*;
use otpd_core::*;
use std::time::Duration;

/// The value of the sample `series` (name and labels exactly as encoded) in the service's
/// metrics.
fn value(service: &Service, series: &str) -> f64 {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, service.metrics().registry()).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

/// `otpd_verifications_total` of TOTP codes through the native API for `result`.
fn verifications(result: &str) -> String {
    format!("otpd_verifications_total{{result=\"{result}\",method=\"totp\",front_door=\"native\"}}")
}

const CHECKED: &str = "otpd_verification_duration_seconds_count";

/// Waits (polling; bounded) until `series` reaches `want`: the work of requests whose
/// callers stopped waiting goes on in tasks of its own.
async fn until(service: &Service, series: &str, want: f64) {
    for _ in 0..500 {
        if value(service, series) >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(value(service, series), want, "{series}");
}

/// Polls `future` once — its work starts — and drops it, as a server drops the handler of a
/// request whose client went away. Panics if it was done at once.
fn cut_off<F: std::future::Future>(future: F) {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(
        future.as_mut().poll(&mut cx).is_pending(),
        "answered before it was cut off"
    );
}

/// `n` distinct wrong codes for `secret` now.
fn wrong_codes(env: &Env, secret: &otp::Secret, n: usize, seed: u32) -> Vec<String> {
    let valid: Vec<String> = (-1..=1).map(|s| env.code_at(secret, s)).collect();
    (0..)
        .map(|k: u32| format!("{:06}", (k * 7919 + seed * 13) % 1_000_000))
        .filter(|c| !valid.contains(c))
        .take(n)
        .collect()
}

/// §6 and issue 20: of a burst of wrong codes, the one failure that reaches `max_failures`
/// locks the authenticator and is the one lockout counted; every code is counted once, and
/// timed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_one_lockout_and_every_code_is_counted_once() {
    let env = env().await;
    env.account("alice", &[]).await;
    let (secret, _) = env.enroll("alice").await;
    env.policy(|p| {
        p.max_failures = 5;
        p.lockout_secs = 120;
    })
    .await;
    // The enrollment's confirming code was checked and counted.
    assert_eq!(value(&env.service, &verifications("accepted")), 1.0);
    let checked = value(&env.service, CHECKED);
    const BURST: usize = 60;
    for round in 1..=2 {
        env.clock.advance(150);
        let tasks: Vec<_> = wrong_codes(&env, &secret, BURST, round)
            .into_iter()
            .map(|code| {
                let service = env.service.clone();
                tokio::spawn(async move {
                    service
                        .verify_totp(&Principal::Cli, "alice", &code, &meta())
                        .await
                })
            })
            .collect();
        let mut locked = 0;
        for t in tasks {
            if t.await.unwrap().unwrap().reason == Some(VerifyReason::Locked) {
                locked += 1;
            }
        }
        assert_eq!(locked, BURST - 5, "round {round}");
        let rounds = f64::from(round);
        assert_eq!(value(&env.service, "otpd_lockouts_total"), rounds);
        assert_eq!(
            value(&env.service, &verifications("rejected")),
            5.0 * rounds
        );
        assert_eq!(
            value(&env.service, &verifications("locked")),
            (BURST as f64 - 5.0) * rounds
        );
        assert_eq!(
            value(&env.service, CHECKED) - checked,
            BURST as f64 * rounds
        );
    }
}

/// Issue 20, found by an attacker: wrong codes whose requests are cut off (the client resets
/// each connection at once) lock the authenticator all the same — the count is in the
/// database — so they must be counted all the same: a lockout nobody waited for is still a
/// lockout the alerts must see.
#[tokio::test]
async fn codes_whose_callers_stop_waiting_are_counted_and_lock_out() {
    let env = env().await;
    env.account("alice", &[]).await;
    let (secret, _) = env.enroll("alice").await;
    env.policy(|p| p.max_failures = 5).await;
    let checked = value(&env.service, CHECKED);
    for code in wrong_codes(&env, &secret, 7, 1) {
        cut_off(
            env.service
                .verify_totp(&Principal::Cli, "alice", &code, &meta()),
        );
    }
    until(&env.service, CHECKED, checked + 7.0).await;
    until(&env.service, "otpd_lockouts_total", 1.0).await;
    assert_eq!(
        value(&env.service, &verifications("rejected"))
            + value(&env.service, &verifications("locked")),
        7.0
    );
    let status = env
        .service
        .totp_status(&Principal::Cli, "alice")
        .await
        .unwrap();
    assert!(status.locked_until.is_some());
}

/// Wrong confirmation codes are codes checked, and lock a pending enrollment like any
/// others: counted as verifications and as a lockout (found by an operator's trial: the
/// lockout showed with no refused code behind it).
#[tokio::test]
async fn confirmation_codes_are_counted() {
    let env = env().await;
    env.account("alice", &[]).await;
    env.policy(|p| p.max_failures = 3).await;
    let enrollment = env
        .service
        .begin_enrollment(&Principal::Cli, "alice", &TotpOptions::default(), &meta())
        .await
        .unwrap();
    let secret = otp::Secret::from_base32(enrollment.secret.expose()).unwrap();
    for code in wrong_codes(&env, &secret, 4, 1) {
        let refused = env
            .service
            .confirm_enrollment(
                &Principal::Cli,
                "alice",
                &code,
                RecoveryCodeSet::Policy,
                &meta(),
            )
            .await;
        assert!(matches!(refused, Err(CoreError::SecondFactorFailed { .. })));
    }
    assert_eq!(value(&env.service, &verifications("rejected")), 3.0);
    assert_eq!(value(&env.service, &verifications("locked")), 1.0);
    assert_eq!(value(&env.service, "otpd_lockouts_total"), 1.0);
    assert_eq!(
        value(&env.service, "otpd_enrollments_total{stage=\"started\"}"),
        1.0
    );
    assert_eq!(
        value(&env.service, "otpd_enrollments_total{stage=\"confirmed\"}"),
        0.0
    );
}

/// A scrape cut off while the directory is counted leaves the count to finish: the next
/// scrape finds the gauges read, instead of starting the count again.
#[tokio::test]
async fn a_cut_off_scrape_still_reads_the_directory() {
    let env = env().await;
    env.account("alice", &[]).await;
    assert_eq!(value(&env.service, "otpd_accounts"), 0.0);
    cut_off(env.service.refresh_database_gauges());
    until(&env.service, "otpd_accounts", 1.0).await;
    // Read just now: the next scrapes within 30 s read nothing.
    env.account("bob", &[]).await;
    env.service.refresh_database_gauges().await.unwrap();
    assert_eq!(value(&env.service, "otpd_accounts"), 1.0);
    env.clock.advance(30);
    env.service.refresh_database_gauges().await.unwrap();
    assert_eq!(value(&env.service, "otpd_accounts"), 2.0);
}

/// `--metrics off`: nothing is recorded.
#[tokio::test]
async fn nothing_is_recorded_while_metrics_are_off() {
    let env = env().await;
    env.account("alice", &[]).await;
    let (secret, _) = env.enroll("alice").await;
    env.service.metrics().set_recording(false);
    let (accepted, checked) = (
        value(&env.service, &verifications("accepted")),
        value(&env.service, CHECKED),
    );
    env.service
        .verify_totp(&Principal::Cli, "alice", &env.code(&secret), &meta())
        .await
        .unwrap();
    assert_eq!(value(&env.service, &verifications("accepted")), accepted);
    assert_eq!(value(&env.service, CHECKED), checked);
}
