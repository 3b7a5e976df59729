//! The core's metrics count its decisions once each, whatever the concurrency.

use crate::helpers::*;
use otpd_core::*;

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
    const BURST: usize = 60;
    for round in 1..=2 {
        env.clock.advance(150);
        let valid: Vec<String> = (-1..=1).map(|s| env.code_at(&secret, s)).collect();
        let tasks: Vec<_> = (0..)
            .map(|n: u32| format!("{:06}", (n * 7919 + round * 13) % 1_000_000))
            .filter(|c| !valid.contains(c))
            .take(BURST)
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
        assert_eq!(value(&env.service, "otpd_lockouts_total"), f64::from(round));
        let rounds = f64::from(round);
        let series = |result: &str| {
            format!(
                "otpd_verifications_total{{result=\"{result}\",method=\"totp\",front_door=\"native\"}}"
            )
        };
        assert_eq!(value(&env.service, &series("rejected")), 5.0 * rounds);
        assert_eq!(
            value(&env.service, &series("locked")),
            (BURST as f64 - 5.0) * rounds
        );
        assert_eq!(
            value(&env.service, "otpd_verification_duration_seconds_count"),
            BURST as f64 * rounds
        );
    }
}

/// `--metrics off`: nothing is recorded.
#[tokio::test]
async fn nothing_is_recorded_while_metrics_are_off() {
    let env = env().await;
    env.account("alice", &[]).await;
    let (secret, _) = env.enroll("alice").await;
    env.service.metrics().set_recording(false);
    env.service
        .verify_totp(&Principal::Cli, "alice", &env.code(&secret), &meta())
        .await
        .unwrap();
    assert_eq!(
        value(
            &env.service,
            "otpd_verifications_total{result=\"accepted\",method=\"totp\",front_door=\"native\"}"
        ),
        0.0
    );
    assert_eq!(
        value(&env.service, "otpd_verification_duration_seconds_count"),
        0.0
    );
}
