//! Bad input on every kind of endpoint answers a clear 4xx problem+json and changes nothing.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

enum Body {
    Empty,
    Raw(&'static str, &'static str),
    Json(serde_json::Value),
    Big,
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let alice = app.account("alice", &[]).await;
    let (secret, _) = app.enroll("alice", &alice).await;
    let admin = app.admin.clone();
    let before_audit = app
        .call(
            Method::GET,
            "/api/v1/audit?limit=1000",
            Some(&admin),
            None,
            StatusCode::OK,
        )
        .await;
    let before_status = app
        .call(
            Method::GET,
            "/api/v1/accounts/alice/totp",
            Some(&admin),
            None,
            StatusCode::OK,
        )
        .await;
    let before_policy = app
        .call(
            Method::GET,
            "/api/v1/policy",
            Some(&admin),
            None,
            StatusCode::OK,
        )
        .await;

    use Body::*;
    let cases: Vec<(Method, &str, Body, u16, &str)> = vec![
        (
            Method::POST,
            "/api/v1/accounts",
            Raw("application/json", "{\"username\": \"x\","),
            400,
            "malformed_request",
        ),
        (
            Method::POST,
            "/api/v1/accounts",
            Raw("text/plain", "{\"username\": \"x\"}"),
            415,
            "unsupported_media_type",
        ),
        // A key named twice is refused everywhere, at any depth (issue 14 §8).
        (
            Method::PATCH,
            "/api/v1/policy",
            Raw("application/json", r#"{"window": 1, "window": 9}"#),
            400,
            "malformed_request",
        ),
        (
            Method::POST,
            "/api/v1/accounts",
            Raw(
                "application/json",
                r#"{"username": "dup", "roles": ["verifier"], "roles": []}"#,
            ),
            400,
            "malformed_request",
        ),
        (
            Method::POST,
            "/api/v1/accounts/alice/totp/verify",
            Raw(
                "application/json",
                r#"{"code": "000000", "code": "111111"}"#,
            ),
            400,
            "malformed_request",
        ),
        (
            Method::POST,
            "/api/v1/accounts",
            Json(json!({"username": 5})),
            400,
            "malformed_request",
        ),
        (
            Method::POST,
            "/api/v1/accounts",
            Json(json!({"username": "x", "admin": true})),
            400,
            "malformed_request",
        ),
        (
            Method::POST,
            "/api/v1/accounts",
            Json(json!({"username": "bad name"})),
            422,
            "invalid_input",
        ),
        (
            Method::POST,
            "/api/v1/accounts",
            Json(json!({"username": "y", "password": "short"})),
            422,
            "invalid_input",
        ),
        (
            Method::POST,
            "/api/v1/accounts",
            Json(json!({"username": "y", "roles": ["root"]})),
            400,
            "malformed_request",
        ),
        (
            Method::POST,
            "/api/v1/accounts",
            Json(json!({"username": "y", "email": "not-an-address"})),
            422,
            "invalid_input",
        ),
        (
            Method::POST,
            "/api/v1/accounts",
            Big,
            413,
            "payload_too_large",
        ),
        (
            Method::POST,
            "/api/v1/auth/login",
            Json(json!({"username": "alice"})),
            400,
            "malformed_request",
        ),
        (
            Method::POST,
            "/api/v1/accounts/alice/totp/verify",
            Json(json!({"code": "12a456"})),
            422,
            "invalid_input",
        ),
        (
            Method::POST,
            "/api/v1/accounts/alice/totp/verify",
            Json(json!({"code": "1234567"})),
            422,
            "invalid_input",
        ),
        (
            Method::POST,
            "/api/v1/accounts/alice/totp/verify",
            Json(json!({"code": 123456})),
            400,
            "malformed_request",
        ),
        (
            Method::POST,
            "/api/v1/accounts/alice/totp/verify",
            Json(json!({"code": "123456", "extra": 1})),
            400,
            "malformed_request",
        ),
        (
            Method::POST,
            "/api/v1/accounts/alice/totp/verify",
            Empty,
            415,
            "unsupported_media_type",
        ),
        (
            Method::POST,
            "/api/v1/accounts/alice/totp/renew",
            Json(json!({"digits": 5})),
            422,
            "invalid_input",
        ),
        (
            Method::POST,
            "/api/v1/accounts/alice/totp/renew",
            Json(json!({"interval": 4})),
            422,
            "invalid_input",
        ),
        (
            Method::POST,
            "/api/v1/accounts/alice/totp/renew",
            Json(json!({"digits": "six"})),
            400,
            "malformed_request",
        ),
        (
            Method::POST,
            "/api/v1/accounts/alice/totp/renew",
            Json(json!({"algorithm": "MD5"})),
            422,
            "invalid_input",
        ),
        (
            Method::POST,
            "/api/v1/accounts/alice/totp/resync",
            Json(json!({"first": "x", "second": "y"})),
            422,
            "invalid_input",
        ),
        (
            Method::PATCH,
            "/api/v1/accounts/alice/totp",
            Json(json!({"comment": "a\u{0007}b"})),
            422,
            "invalid_input",
        ),
        (
            Method::PATCH,
            "/api/v1/policy",
            Json(json!({"window": 11})),
            422,
            "invalid_input",
        ),
        (
            Method::PATCH,
            "/api/v1/policy",
            Json(json!({"digits": 9})),
            422,
            "invalid_input",
        ),
        (
            Method::PATCH,
            "/api/v1/policy",
            Json(json!({"interval": 4})),
            422,
            "invalid_input",
        ),
        (
            Method::PATCH,
            "/api/v1/policy",
            Json(json!({"no_such_setting": 1})),
            400,
            "malformed_request",
        ),
        (
            Method::PATCH,
            "/api/v1/policy",
            Json(json!({"window": -1})),
            400,
            "malformed_request",
        ),
        (
            Method::GET,
            "/api/v1/accounts?limit=many",
            Empty,
            400,
            "malformed_request",
        ),
        (
            Method::GET,
            "/api/v1/audit?since=yesterday",
            Empty,
            400,
            "malformed_request",
        ),
        (
            Method::GET,
            "/api/v1/accounts?unknown=1",
            Empty,
            400,
            "malformed_request",
        ),
        (Method::GET, "/api/v1/nope", Empty, 404, "not_found"),
    ];
    for (method, path, body, status, code) in cases {
        let mut req = app
            .client
            .request(method.clone(), format!("{}{}", app.base, path))
            .bearer_auth(&admin);
        req = match body {
            Empty => req,
            Raw(ct, text) => req.header("content-type", ct).body(text),
            Json(v) => req.json(&v),
            Big => req.header("content-type", "application/json").body(format!(
                "{{\"username\":\"{}\"}}",
                "x".repeat(2 * 1024 * 1024)
            )),
        };
        let r = req.send().await.unwrap();
        let got = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = r.text().await.unwrap();
        assert_eq!(got, status, "{method} {path}: {text}");
        assert_eq!(
            ct.as_deref(),
            Some("application/problem+json"),
            "{method} {path}"
        );
        let p: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(p["code"], code, "{method} {path}: {p}");
        assert_eq!(p["status"], status, "{method} {path}");
        assert!(
            !p["detail"].as_str().unwrap_or("").is_empty(),
            "{method} {path}: a clear detail"
        );
    }

    // Nothing changed: no audit events, the authenticator and policy as they were, and the
    // valid code of this step is still usable.
    let after_audit = app
        .call(
            Method::GET,
            "/api/v1/audit?limit=1000",
            Some(&admin),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(before_audit, after_audit);
    assert_eq!(
        before_status,
        app.call(
            Method::GET,
            "/api/v1/accounts/alice/totp",
            Some(&admin),
            None,
            StatusCode::OK
        )
        .await
    );
    assert_eq!(
        before_policy,
        app.call(
            Method::GET,
            "/api/v1/policy",
            Some(&admin),
            None,
            StatusCode::OK
        )
        .await
    );
    let v = app
        .call(
            Method::POST,
            "/api/v1/accounts/alice/totp/verify",
            Some(&admin),
            Some(json!({"code": app.code(&secret)})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(v["valid"], true);
}
