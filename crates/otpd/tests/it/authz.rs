//! Every native endpoint × {anonymous, the account itself, another plain account,
//! readonly_admin, twofactor_admin, full_admin}: allowed or denied, as the rules say.
//! Each row runs on a fresh server where `alice` (the target) has an active authenticator
//! and a session that proved it; "allowed" means the answer is neither 401 nor 403.

use crate::helpers::*;
use otpd_core::Clock;
use reqwest::Method;
use serde_json::{Value, json};

/// Principals in the order each row runs them (the target itself before the admins, so an
/// admin's lock or delete cannot spoil its turn).
const WHO: [&str; 6] = [
    "anonymous",
    "other",
    "readonly",
    "self",
    "twofactor",
    "full",
];

struct Row {
    method: Method,
    path: &'static str,
    body: Option<Value>,
    /// The principals allowed, by name.
    allowed: &'static [&'static str],
}

fn row(
    method: Method,
    path: &'static str,
    body: Option<Value>,
    allowed: &'static [&'static str],
) -> Row {
    Row {
        method,
        path,
        body,
        allowed,
    }
}

const AUTHENTICATED: &[&str] = &["other", "readonly", "self", "twofactor", "full"];
const READERS: &[&str] = &["readonly", "self", "twofactor", "full"];
const MANAGERS: &[&str] = &["self", "twofactor", "full"];
const ADMINS: &[&str] = &["readonly", "twofactor", "full"];

fn table() -> Vec<Row> {
    use Method as M;
    vec![
        row(M::GET, "/api/v1/me", None, AUTHENTICATED),
        row(M::POST, "/api/v1/auth/logout", None, AUTHENTICATED),
        row(M::GET, "/api/v1/sessions", None, AUTHENTICATED),
        row(M::GET, "/api/v1/sessions?account=alice", None, READERS),
        row(
            M::DELETE,
            "/api/v1/sessions/none?account=alice",
            None,
            MANAGERS,
        ),
        row(M::GET, "/api/v1/api-keys", None, AUTHENTICATED),
        row(M::GET, "/api/v1/api-keys?account=alice", None, READERS),
        row(M::GET, "/api/v1/api-keys?account=*", None, ADMINS),
        row(
            M::POST,
            "/api/v1/api-keys",
            Some(json!({"name": "k"})),
            AUTHENTICATED,
        ),
        row(
            M::POST,
            "/api/v1/api-keys",
            Some(json!({"name": "k", "account": "alice"})),
            &["self", "full"],
        ),
        row(M::GET, "/api/v1/accounts", None, ADMINS),
        row(
            M::POST,
            "/api/v1/accounts",
            Some(json!({"username": "newbie"})),
            &["full"],
        ),
        row(M::GET, "/api/v1/accounts/alice", None, READERS),
        row(
            M::PATCH,
            "/api/v1/accounts/alice",
            Some(json!({"full_name": "A"})),
            &["self", "full"],
        ),
        row(
            M::PATCH,
            "/api/v1/accounts/alice",
            Some(json!({"roles": []})),
            &["full"],
        ),
        row(
            M::PUT,
            "/api/v1/accounts/alice/password",
            Some(json!({"password": "another good one"})),
            &["self", "full"],
        ),
        row(M::POST, "/api/v1/accounts/alice/lock", None, &["full"]),
        row(M::POST, "/api/v1/accounts/alice/unlock", None, &["full"]),
        row(M::DELETE, "/api/v1/accounts/alice", None, &["full"]),
        row(M::GET, "/api/v1/accounts/alice/totp", None, READERS),
        row(
            M::POST,
            "/api/v1/accounts/alice/totp",
            Some(json!({})),
            MANAGERS,
        ),
        row(
            M::PATCH,
            "/api/v1/accounts/alice/totp",
            Some(json!({"comment": "phone"})),
            MANAGERS,
        ),
        row(
            M::PATCH,
            "/api/v1/accounts/alice/totp",
            Some(json!({"enabled": false})),
            &["twofactor", "full"],
        ),
        row(M::DELETE, "/api/v1/accounts/alice/totp", None, MANAGERS),
        row(
            M::POST,
            "/api/v1/accounts/alice/totp/enroll",
            Some(json!({})),
            MANAGERS,
        ),
        row(
            M::POST,
            "/api/v1/accounts/alice/totp/confirm",
            Some(json!({"code": "123456"})),
            MANAGERS,
        ),
        row(
            M::POST,
            "/api/v1/accounts/alice/totp/renew",
            Some(json!({})),
            MANAGERS,
        ),
        row(
            M::POST,
            "/api/v1/accounts/alice/totp/verify",
            Some(json!({"code": "123456"})),
            MANAGERS,
        ),
        row(
            M::POST,
            "/api/v1/accounts/alice/totp/resync",
            Some(json!({"first": "123456", "second": "654321"})),
            MANAGERS,
        ),
        row(
            M::GET,
            "/api/v1/accounts/alice/totp/qr.svg",
            None,
            &["self", "full"],
        ),
        row(
            M::GET,
            "/api/v1/accounts/alice/recovery-codes",
            None,
            &["self"],
        ),
        row(
            M::POST,
            "/api/v1/accounts/alice/recovery-codes",
            None,
            &["self"],
        ),
        row(M::GET, "/api/v1/policy", None, ADMINS),
        row(
            M::PATCH,
            "/api/v1/policy",
            Some(json!({"window": 2})),
            &["full"],
        ),
        row(M::GET, "/api/v1/audit", None, AUTHENTICATED),
        row(M::GET, "/api/v1/audit?account=bob", None, AUTHENTICATED),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_by_every_principal() {
    let rows = table();
    let mut failures = Vec::new();
    for r in &rows {
        let app = spawn_app().await;
        let alice = app.account("alice", &[]).await;
        let (secret, _) = app.enroll("alice", &alice).await;
        let mut tokens = std::collections::HashMap::new();
        tokens.insert("self", app.login_2fa("alice", &secret).await);
        tokens.insert("other", app.account("bob", &[]).await);
        tokens.insert("readonly", app.account("reader", &["readonly_admin"]).await);
        tokens.insert(
            "twofactor",
            app.account("helpdesk", &["twofactor_admin"]).await,
        );
        tokens.insert("full", app.account("root", &["full_admin"]).await);
        for who in WHO {
            let token = tokens.get(who).map(String::as_str);
            let response = app
                .request(r.method.clone(), r.path, token, r.body.clone())
                .await;
            let status = response.status().as_u16();
            let allowed = r.allowed.contains(&who);
            let denied = matches!(status, 401 | 403);
            if allowed == denied {
                failures.push(format!(
                    "{} {} as {who}: {status} (expected {})",
                    r.method,
                    r.path,
                    if allowed { "allowed" } else { "denied" }
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cells wrong:\n{}",
        failures.len(),
        rows.len() * WHO.len(),
        failures.join("\n")
    );
    println!(
        "authorization table: {} rows x {} principals, all as expected",
        rows.len(),
        WHO.len()
    );
}

/// Issue 14 §3, the authorization table's new rows: subject role × actor role. Acting on
/// another account's 2FA, password or sessions needs roles that cover the subject's: a
/// `twofactor_admin` manages plain accounts and other 2FA admins, never a `full_admin`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managing_an_account_needs_roles_that_cover_its_roles() {
    let app = spawn_app().await;
    for (name, roles) in [
        ("carol", json!([])),
        ("peer", json!(["twofactor_admin"])),
        ("boss", json!(["full_admin"])),
    ] {
        app.call(
            Method::POST,
            "/api/v1/accounts",
            Some(&app.admin),
            Some(json!({"username": name, "password": PASSWORD, "roles": roles})),
            reqwest::StatusCode::CREATED,
        )
        .await;
    }
    let actors = [
        (
            "helpdesk",
            app.account("helpdesk", &["twofactor_admin"]).await,
        ),
        ("root", app.account("root", &["full_admin"]).await),
    ];
    let mut failures = Vec::new();
    let mut cells = 0;
    for subject in ["carol", "peer", "boss"] {
        for (actor, token) in &actors {
            let covers = *actor == "root" || subject != "boss";
            let rows: [(Method, String, Option<Value>, bool); 6] = [
                (
                    Method::POST,
                    format!("/api/v1/accounts/{subject}/totp"),
                    Some(json!({})),
                    covers,
                ),
                (
                    Method::POST,
                    format!("/api/v1/accounts/{subject}/totp/renew"),
                    Some(json!({})),
                    covers,
                ),
                (
                    Method::PATCH,
                    format!("/api/v1/accounts/{subject}/totp"),
                    Some(json!({"enabled": false})),
                    covers,
                ),
                (
                    Method::DELETE,
                    format!("/api/v1/accounts/{subject}/totp"),
                    None,
                    covers,
                ),
                (
                    Method::PUT,
                    format!("/api/v1/accounts/{subject}/password"),
                    Some(json!({"password": "a new good password"})),
                    *actor == "root",
                ),
                (
                    Method::DELETE,
                    format!("/api/v1/sessions/none?account={subject}"),
                    None,
                    covers,
                ),
            ];
            for (method, path, body, allowed) in rows {
                cells += 1;
                let status = app
                    .request(method.clone(), &path, Some(token), body)
                    .await
                    .status()
                    .as_u16();
                if allowed == matches!(status, 401 | 403) {
                    failures.push(format!(
                        "{method} {path} as {actor}: {status} (expected {})",
                        if allowed { "allowed" } else { "denied" }
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!("subject role x actor role: {cells} cells, all as expected");
}

/// Issue 14 §1-2, the step-up rows: an account that reads or weakens its own second factor
/// proves it (a recent second factor on the session, or `X-OTP-Code`), whatever the route
/// and whatever its roles; an API key or a password-only session alone never does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_or_weakening_ones_own_second_factor_needs_step_up() {
    let me = "/api/v1/accounts/helpdesk";
    let actions: [(Method, String, Option<Value>); 6] = [
        (Method::GET, format!("{me}/recovery-codes"), None),
        (Method::POST, format!("{me}/recovery-codes"), None),
        (
            Method::PATCH,
            format!("{me}/totp"),
            Some(json!({"enabled": false})),
        ),
        (Method::DELETE, format!("{me}/totp"), None),
        (Method::POST, format!("{me}/totp/renew"), Some(json!({}))),
        (
            Method::PUT,
            format!("{me}/password"),
            Some(json!({"password": "a new good password", "current_password": PASSWORD})),
        ),
    ];
    for (method, path, body) in actions {
        let app = spawn_app().await;
        let password_only = app.account("helpdesk", &["twofactor_admin"]).await;
        let (secret, _) = app.enroll("helpdesk", &password_only).await;
        let key = app
            .call(
                Method::POST,
                "/api/v1/api-keys",
                Some(&password_only),
                Some(json!({"name": "mine"})),
                reqwest::StatusCode::CREATED,
            )
            .await["key"]
            .as_str()
            .unwrap()
            .to_owned();
        let stale = app.login_2fa("helpdesk", &secret).await;
        app.clock.advance(301);
        for (who, token) in [
            ("API key", &key),
            ("stale session", &stale),
            ("password-only session", &password_only),
        ] {
            let r = app
                .request(method.clone(), &path, Some(token), body.clone())
                .await;
            let status = r.status();
            let problem: Value = r.json().await.unwrap_or(Value::Null);
            assert_eq!(
                (status.as_u16(), problem["code"].as_str()),
                (403, Some("step_up_required")),
                "{method} {path} with a {who}: {problem}"
            );
        }
        let mut with_code = app
            .client
            .request(method.clone(), format!("{}{path}", app.base))
            .bearer_auth(&key)
            .header("x-otp-code", app.code(&secret));
        if let Some(b) = &body {
            with_code = with_code.json(b);
        }
        let r = with_code.send().await.unwrap();
        assert!(
            r.status().is_success(),
            "{method} {path} with a code sent along: {}",
            r.text().await.unwrap()
        );
    }
}

/// Issue 14 §4 and §5 through the native API: an enrollment-only session of a 2FA admin
/// only enrolls itself; an admin's password reset ends the account's API keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_only_sessions_and_recovery_over_rest() {
    let app = spawn_app().await;
    app.account("carol", &[]).await;
    app.account("helpdesk", &["twofactor_admin"]).await;
    app.call(
        Method::PATCH,
        "/api/v1/policy",
        Some(&app.admin),
        Some(json!({"enforced": true})),
        reqwest::StatusCode::OK,
    )
    .await;
    let login = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "helpdesk", "password": PASSWORD})),
            reqwest::StatusCode::OK,
        )
        .await;
    assert_eq!(login["enrollment_required"], true, "{login}");
    let limited = login["token"].as_str().unwrap();
    for (method, path, body) in [
        (Method::GET, "/api/v1/audit", None),
        (Method::GET, "/api/v1/accounts", None),
        (Method::GET, "/api/v1/accounts/carol", None),
        (
            Method::POST,
            "/api/v1/accounts/carol/totp/enroll",
            Some(json!({})),
        ),
        (Method::POST, "/api/v1/accounts/carol/totp", Some(json!({}))),
    ] {
        let status = app
            .request(method.clone(), path, Some(limited), body)
            .await
            .status();
        assert_eq!(status.as_u16(), 403, "{method} {path}");
    }
    app.call(
        Method::GET,
        "/api/v1/accounts/helpdesk",
        Some(limited),
        None,
        reqwest::StatusCode::OK,
    )
    .await;

    // carol's API key dies with an admin's reset of her password.
    let carol = app.login("carol", PASSWORD).await;
    let key = app
        .call(
            Method::POST,
            "/api/v1/api-keys",
            Some(&app.admin),
            Some(json!({"name": "laptop", "account": "carol"})),
            reqwest::StatusCode::CREATED,
        )
        .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    app.call(
        Method::PUT,
        "/api/v1/accounts/carol/password",
        Some(&app.admin),
        Some(json!({"password": "reset by the admin"})),
        reqwest::StatusCode::NO_CONTENT,
    )
    .await;
    for token in [&key, &carol] {
        let status = app
            .request(Method::GET, "/api/v1/me", Some(token), None)
            .await
            .status();
        assert_eq!(status.as_u16(), 401);
    }
    // Usernames that are path segments never exist.
    for name in [".", ".."] {
        let p = app
            .call(
                Method::POST,
                "/api/v1/accounts",
                Some(&app.admin),
                Some(json!({"username": name})),
                reqwest::StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        assert!(
            p["detail"].as_str().unwrap().contains("path segments"),
            "{p}"
        );
    }
}

/// Issue 14 §6 through the native API: bursts of concurrent wrong codes over real sockets
/// have at most `max_failures` evaluated; the rest answer `locked`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_holds_under_bursts_over_http() {
    let app = spawn_app().await;
    let alice = app.account("alice", &[]).await;
    let (secret, _) = app.enroll("alice", &alice).await;
    app.call(
        Method::PATCH,
        "/api/v1/policy",
        Some(&app.admin),
        Some(json!({"max_failures": 5, "lockout_secs": 60})),
        reqwest::StatusCode::OK,
    )
    .await;
    for burst in 0..20 {
        app.clock.advance(90);
        let valid: Vec<String> = (-1..=1)
            .map(|s| {
                otp::Totp::default()
                    .generate(&secret, (app.clock.now() + 30 * s) as u64)
                    .to_string()
            })
            .collect();
        let codes: Vec<String> = (0..)
            .map(|n: u32| format!("{:06}", (n * 104_729 + burst) % 1_000_000))
            .filter(|c| !valid.contains(c))
            .take(150)
            .collect();
        let answers = futures_util::future::join_all(codes.iter().map(|code| {
            app.request(
                Method::POST,
                "/api/v1/accounts/alice/totp/verify",
                Some(&app.admin),
                Some(json!({ "code": code })),
            )
        }))
        .await;
        let mut evaluated = 0;
        for r in answers {
            let v: Value = r.json().await.unwrap();
            if v["reason"] != "locked" {
                evaluated += 1;
            }
        }
        assert!(evaluated <= 5, "burst {burst}: {evaluated} codes evaluated");
    }
}
