//! `/metrics`: the counters after a scripted sequence through two front doors, read back with
//! an OpenMetrics parser.

use crate::helpers::*;
use crate::web::Visitor;
use openmetrics_parser::{MetricsExposition, OpenMetricsType, OpenMetricsValue};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn scrape(app: &TestApp) -> MetricsExposition<OpenMetricsType, OpenMetricsValue> {
    let r = app.request(Method::GET, "/metrics", None, None).await;
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

/// `otpd_verifications_total` for one label set.
fn verifications(
    m: &MetricsExposition<OpenMetricsType, OpenMetricsValue>,
    result: &str,
    method: &str,
    door: &str,
) -> f64 {
    let family = &m.families["otpd_verifications"];
    let values: Vec<String> = family
        .get_label_names()
        .iter()
        .map(|name| match name.as_str() {
            "result" => result,
            "method" => method,
            "front_door" => door,
            other => panic!("unexpected label {other}"),
        })
        .map(str::to_owned)
        .collect();
    match &family
        .get_sample_by_label_values(&values)
        .unwrap_or_else(|| panic!("no sample {values:?}"))
        .value
    {
        OpenMetricsValue::Counter(c) => c.value.as_f64(),
        other => panic!("not a counter: {other:?}"),
    }
}

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
    // Every series exists from the start, at zero; the build is named.
    let start = scrape(&app).await;
    assert_eq!(verifications(&start, "accepted", "totp", "native"), 0.0);
    assert!(start.families.contains_key("otpd_build"));

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

    let m = scrape(&app).await;
    assert_eq!(verifications(&m, "accepted", "totp", "native"), 1.0);
    assert_eq!(verifications(&m, "replayed", "totp", "native"), 1.0);
    assert_eq!(verifications(&m, "rejected", "totp", "native"), 3.0);
    assert_eq!(
        verifications(&m, "accepted", "recovery_code", "native"),
        1.0
    );
    assert_eq!(verifications(&m, "accepted", "totp", "web"), 1.0);
    assert_eq!(verifications(&m, "locked", "totp", "native"), 1.0);
    assert_eq!(verifications(&m, "accepted", "totp", "truenas"), 0.0);
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
