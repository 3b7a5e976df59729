//! Every native endpoint × {anonymous, the account itself, another plain account,
//! readonly_admin, twofactor_admin, full_admin}: allowed or denied, as the rules say.
//! Each row runs on a fresh server where `alice` (the target) has an active authenticator
//! and a session that proved it; "allowed" means the answer is neither 401 nor 403.

use crate::helpers::*;
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
