//! `/metrics`: the counters after a scripted sequence through two front doors, read back with
//! an OpenMetrics parser.

use crate::helpers::*;
use crate::web::Visitor;
use openmetrics_parser::{MetricsExposition, OpenMetricsType, OpenMetricsValue};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn scrape(app: &TestApp) -> Exposition {
    scrape_at(&app.client, &format!("{}/metrics", app.base)).await
}

async fn scrape_at(client: &reqwest::Client, url: &str) -> Exposition {
    let r = client.get(url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
    );
    let text = r.text().await.unwrap();
    openmetrics_parser::openmetrics::parse_openmetrics(&text)
        .unwrap_or_else(|e| panic!("{e:?}\n{text}"))
}

type Exposition = MetricsExposition<OpenMetricsType, OpenMetricsValue>;

/// The value of `family`'s sample with `labels` (every label of the family, in any order).
fn sample<'m>(m: &'m Exposition, family: &str, labels: &[(&str, &str)]) -> &'m OpenMetricsValue {
    let family = m
        .families
        .get(family)
        .unwrap_or_else(|| panic!("no family {family}"));
    let values: Vec<String> = family
        .get_label_names()
        .iter()
        .map(|name| {
            labels
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("label {name} not given"))
                .1
                .to_owned()
        })
        .collect();
    &family
        .get_sample_by_label_values(&values)
        .unwrap_or_else(|| panic!("no sample {values:?}"))
        .value
}

fn counter(m: &Exposition, family: &str, labels: &[(&str, &str)]) -> f64 {
    match sample(m, family, labels) {
        OpenMetricsValue::Counter(c) => c.value.as_f64(),
        other => panic!("{family} is not a counter: {other:?}"),
    }
}

fn gauge(m: &Exposition, family: &str) -> f64 {
    match sample(m, family, &[]) {
        OpenMetricsValue::Gauge(g) => g.as_f64(),
        other => panic!("{family} is not a gauge: {other:?}"),
    }
}

fn histogram_count(m: &Exposition, family: &str, labels: &[(&str, &str)]) -> u64 {
    match sample(m, family, labels) {
        OpenMetricsValue::Histogram(h) => h.count.unwrap_or_else(|| panic!("{family}: no count")),
        other => panic!("{family} is not a histogram: {other:?}"),
    }
}

/// `otpd_verifications_total` for one label set.
fn verifications(m: &Exposition, result: &str, method: &str, door: &str) -> f64 {
    counter(
        m,
        "otpd_verifications",
        &[("result", result), ("method", method), ("front_door", door)],
    )
}

/// Every sample of `otpd_verifications_total`, summed.
fn all_verifications(m: &Exposition) -> f64 {
    m.families["otpd_verifications"]
        .iter_samples()
        .map(|s| match &s.value {
            OpenMetricsValue::Counter(c) => c.value.as_f64(),
            other => panic!("not a counter: {other:?}"),
        })
        .sum()
}

fn logins(m: &Exposition, factor: &str, result: &str) -> f64 {
    counter(m, "otpd_logins", &[("factor", factor), ("result", result)])
}

fn enrollments(m: &Exposition, stage: &str) -> f64 {
    counter(m, "otpd_enrollments", &[("stage", stage)])
}

const VERIFY_ROUTE: &str = "/api/v1/accounts/{username}/totp/verify";

#[tokio::test]
async fn the_counters_follow_the_cores_decisions_through_every_door() {
    let app = spawn_app().await;
    let token = app.account("alice", &[]).await;
    let (secret, codes) = app.enroll("alice", &token).await;
    app.account("svc", &["verifier"]).await;
    let key = app
        .call(
            Method::POST,
            "/api/v1/api-keys",
            Some(&app.admin.clone()),
            Some(json!({"name": "svc", "account": "svc"})),
            StatusCode::CREATED,
        )
        .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // Every series exists from the start, at zero; the build is named. alice's enrollment
    // was confirmed with a code: one accepted.
    let start = scrape(&app).await;
    assert_eq!(verifications(&start, "accepted", "totp", "native"), 1.0);
    assert_eq!(verifications(&start, "accepted", "totp", "web"), 0.0);
    assert!(start.families.contains_key("otpd_build_info"));

    // The native API: accepted, replayed, rejected; a recovery code accepted.
    let verify = |code: String| {
        let app = &app;
        let key = key.clone();
        async move {
            app.call(
                Method::POST,
                "/api/v1/accounts/alice/totp/verify",
                Some(&key),
                Some(json!({"code": code})),
                StatusCode::OK,
            )
            .await
        }
    };
    let code = app.code(&secret);
    assert_eq!(verify(code.clone()).await["valid"], true);
    assert_eq!(verify(code).await["reason"], "replayed");
    let wrong = app.wrong_code(&secret);
    assert_eq!(verify(wrong.into()).await["reason"], "invalid");
    assert_eq!(verify(codes[0].clone()).await["method"], "recovery_code");
    // The web pages: a sign-in's second step.
    app.clock.advance(30);
    let mut browser = Visitor::new(&app);
    let signed_in = browser.sign_in_with_code("alice", &app.code(&secret)).await;
    assert_eq!(signed_in.location(), "/ui/account");
    // Wrong codes up to the lockout, then a locked refusal.
    app.call(
        Method::PATCH,
        "/api/v1/policy",
        Some(&app.admin.clone()),
        Some(json!({"max_failures": 2})),
        StatusCode::OK,
    )
    .await;
    app.clock.advance(30);
    let wrong = app.wrong_code(&secret);
    verify(wrong.into()).await;
    verify(wrong.into()).await;
    assert_eq!(verify(app.code(&secret)).await["reason"], "locked");

    app.request(Method::GET, "/no/such/path", None, None).await;

    let m = scrape(&app).await;
    assert_eq!(verifications(&m, "accepted", "totp", "native"), 2.0);
    assert_eq!(verifications(&m, "replayed", "totp", "native"), 1.0);
    assert_eq!(verifications(&m, "rejected", "totp", "native"), 3.0);
    assert_eq!(
        verifications(&m, "accepted", "recovery_code", "native"),
        1.0
    );
    assert_eq!(verifications(&m, "accepted", "totp", "web"), 1.0);
    assert_eq!(verifications(&m, "locked", "totp", "native"), 1.0);
    assert_eq!(verifications(&m, "accepted", "totp", "truenas"), 0.0);
    // Each checked code was timed.
    assert_eq!(all_verifications(&m), 9.0);
    assert_eq!(
        histogram_count(&m, "otpd_verification_duration_seconds", &[]),
        9
    );
    // The web sign-in: a password step that wants a code, then the code. Logins through the
    // API before the first scrape (the admin's, alice's, svc's) are counted there.
    assert_eq!(
        logins(&m, "password", "second_factor_required")
            - logins(&start, "password", "second_factor_required"),
        1.0
    );
    assert_eq!(logins(&m, "totp", "succeeded"), 1.0);
    assert_eq!(logins(&start, "password", "succeeded"), 3.0);
    assert_eq!(logins(&m, "recovery_code", "rejected"), 0.0);
    // alice's enrollment: begun and confirmed, before the first scrape.
    assert_eq!(enrollments(&start, "started"), 1.0);
    assert_eq!(enrollments(&start, "confirmed"), 1.0);
    assert_eq!(enrollments(&m, "removed"), 0.0);
    // The second wrong code locked the authenticator: one lockout.
    assert_eq!(counter(&start, "otpd_lockouts", &[]), 0.0);
    assert_eq!(counter(&m, "otpd_lockouts", &[]), 1.0);
    // HTTP by route template, never the path: the 7 native verifications answered 200 on
    // their route; the unknown path is `unmatched`.
    assert_eq!(
        counter(
            &m,
            "otpd_http_requests",
            &[("route", VERIFY_ROUTE), ("status", "200")]
        ),
        7.0
    );
    assert_eq!(
        histogram_count(
            &m,
            "otpd_http_request_duration_seconds",
            &[("route", VERIFY_ROUTE)]
        ),
        7
    );
    assert_eq!(
        counter(
            &m,
            "otpd_http_requests",
            &[("route", "unmatched"), ("status", "404")]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &m,
            "otpd_http_requests",
            &[("route", "/ui/sign-in/code"), ("status", "303")]
        ),
        1.0
    );
    // Read from the database: admin, alice, svc; alice enrolled and locked; her codes are
    // plenty. SQLite's group-commit writer batched every verification's write.
    assert_eq!(gauge(&m, "otpd_accounts"), 3.0);
    assert_eq!(gauge(&m, "otpd_accounts_enrolled"), 1.0);
    assert_eq!(gauge(&m, "otpd_authenticators_locked"), 1.0);
    assert_eq!(gauge(&m, "otpd_accounts_recovery_codes_low"), 0.0);
    // No name, address, key or token in any label.
    let text = app
        .request(Method::GET, "/metrics", None, None)
        .await
        .text()
        .await
        .unwrap();
    for secret_or_name in ["alice", "127.0.0.1", key.as_str(), token.as_str()] {
        assert!(
            !text.contains(secret_or_name),
            "{secret_or_name} in the metrics"
        );
    }
}

#[tokio::test]
async fn the_database_counts_are_read_again_after_30_seconds_at_the_earliest() {
    let app = spawn_app().await;
    assert_eq!(gauge(&scrape(&app).await, "otpd_accounts"), 1.0);
    app.account("alice", &[]).await;
    // Read 29 s ago: the value stays.
    app.clock.advance(29);
    assert_eq!(gauge(&scrape(&app).await, "otpd_accounts"), 1.0);
    app.clock.advance(1);
    let m = scrape(&app).await;
    assert_eq!(gauge(&m, "otpd_accounts"), 2.0);
    assert_eq!(gauge(&m, "otpd_accounts_enrolled"), 0.0);
}

#[tokio::test]
async fn recovery_codes_running_low_and_removals_are_seen() {
    let app = spawn_app().await;
    let token = app.account("alice", &[]).await;
    let (_, codes) = app.enroll("alice", &token).await;
    app.account("svc", &["verifier"]).await;
    let svc = app.login("svc", PASSWORD).await;
    // Use all but two recovery codes.
    for code in &codes[2..] {
        let v = app
            .call(
                Method::POST,
                "/api/v1/accounts/alice/totp/verify",
                Some(&svc),
                Some(json!({"code": code})),
                StatusCode::OK,
            )
            .await;
        assert_eq!(v["valid"], true);
    }
    app.clock.advance(30);
    let m = scrape(&app).await;
    assert_eq!(gauge(&m, "otpd_accounts_recovery_codes_low"), 1.0);
    assert_eq!(
        verifications(&m, "accepted", "recovery_code", "native"),
        (codes.len() - 2) as f64
    );
    // An admin resets alice: one removal; she is no longer enrolled.
    app.call(
        Method::DELETE,
        "/api/v1/accounts/alice/totp",
        Some(&app.admin.clone()),
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    app.clock.advance(30);
    let m = scrape(&app).await;
    assert_eq!(enrollments(&m, "removed"), 1.0);
    assert_eq!(gauge(&m, "otpd_accounts_enrolled"), 0.0);
    assert_eq!(gauge(&m, "otpd_accounts_recovery_codes_low"), 0.0);
}

#[tokio::test]
async fn metrics_listen_serves_the_metrics_apart_and_the_main_listener_does_not() {
    let app = spawn_app_with(|s| s.metrics_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let main = app.request(Method::GET, "/metrics", None, None).await;
    assert_eq!(main.status(), StatusCode::NOT_FOUND);
    let apart = app.metrics_base.clone().unwrap();
    let m = scrape_at(&app.client, &format!("{apart}/metrics")).await;
    // The main listener's 404 for /metrics was counted.
    assert_eq!(
        counter(
            &m,
            "otpd_http_requests",
            &[("route", "unmatched"), ("status", "404")]
        ),
        1.0
    );
    // Nothing else is served there.
    let other = app
        .client
        .get(format!("{apart}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn with_metrics_off_nothing_is_served() {
    let app = spawn_app_with(|s| s.metrics = Some(otpd::config::Switch(false))).await;
    let r = app.request(Method::GET, "/metrics", None, None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
