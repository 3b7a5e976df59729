//! `--trusted-proxies`: the client's address comes from `Forwarded` / `X-Forwarded-For` only
//! when the peer is a trusted proxy, and then it is what the rate limits, the audit trail
//! and the sessions see.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn login_from(app: &TestApp, password: &str, forwarded_for: &str) -> StatusCode {
    app.client
        .post(format!("{}/api/v1/auth/login", app.base))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"username": "alice", "password": password}))
        .send()
        .await
        .unwrap()
        .status()
}

async fn last_login_address(app: &TestApp) -> serde_json::Value {
    let events = app
        .call(
            Method::GET,
            "/api/v1/audit?account=alice&action=auth.login&limit=1",
            Some(&app.admin.clone()),
            None,
            StatusCode::OK,
        )
        .await;
    events[0]["remote_addr"].clone()
}

#[tokio::test]
async fn an_untrusted_peer_cannot_name_another_client() {
    let app = spawn_app().await;
    app.account("alice", &[]).await;
    assert_eq!(
        login_from(&app, PASSWORD, "203.0.113.7").await,
        StatusCode::OK
    );
    assert_eq!(last_login_address(&app).await, "127.0.0.1");
}

#[tokio::test]
async fn a_trusted_proxy_names_the_client_for_audit_sessions_and_limits() {
    let app = spawn_app_with(|s| {
        s.trusted_proxies = Some(vec!["127.0.0.1".into(), "10.0.0.0/8".into()]);
        s.rate_limits = Some(otpd::config::Switch(true));
        s.login_rate = Some(2);
    })
    .await;
    app.account("alice", &[]).await;
    // The right-most hop that is not a trusted proxy is the client; the left-most is
    // whatever the client claimed and counts for nothing.
    assert_eq!(
        login_from(&app, PASSWORD, "6.6.6.6, 203.0.113.7, 10.1.2.3").await,
        StatusCode::OK
    );
    assert_eq!(last_login_address(&app).await, "203.0.113.7");
    let sessions = app
        .call(
            Method::GET,
            "/api/v1/sessions?account=alice",
            Some(&app.admin.clone()),
            None,
            StatusCode::OK,
        )
        .await;
    assert!(
        sessions
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["remote_addr"] == "203.0.113.7"),
        "{sessions}"
    );
    // A Forwarded header the client wrote itself (the proxy appends to X-Forwarded-For and
    // passes the rest through) counts for nothing.
    let spoofed = app
        .client
        .post(format!("{}/api/v1/auth/login", app.base))
        .header("x-forwarded-for", "203.0.113.44")
        .header("forwarded", "for=6.6.6.7")
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(spoofed.status(), StatusCode::OK);
    assert_eq!(last_login_address(&app).await, "203.0.113.44");
    // Each client has its own login budget behind the one proxy.
    assert_eq!(
        login_from(&app, "wrong", "203.0.113.7").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_from(&app, "wrong", "203.0.113.7").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        login_from(&app, "wrong", "203.0.113.8").await,
        StatusCode::UNAUTHORIZED
    );
    // A client cannot escape its budget by claiming another address to the proxy: the
    // proxy appends the real one, and that is what counts.
    assert_eq!(
        login_from(&app, "wrong", "198.51.100.1, 203.0.113.7").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[test]
fn a_bad_proxy_entry_stops_the_start() {
    let serve = otpd::config::ServeArgs {
        trusted_proxies: Some(vec!["10.0.0.0/8".into(), "proxy.example".into()]),
        ..otpd::config::ServeArgs::default()
    };
    let err = otpd::config::Settings::resolve(&otpd::config::CommonArgs::default(), &serve)
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"proxy.example\""), "{err}");
}
