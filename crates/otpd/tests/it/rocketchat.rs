//! The Rocket.Chat dialect (issue 17) over real HTTP: login with and without a second
//! factor (TOTP and backup codes, replays refused), `me`, `logout`, `users.info`,
//! `users.create`, the seed's `users.resetTOTP` behind Rocket.Chat's 2FA check (a code, or
//! the password's SHA-256 for accounts without TOTP), the `2fa:*` methods through the
//! `method.call` envelope, every error body, the limits, the switch and the prefix, and
//! Rocket.Chat's error shape for arbitrary input.

use crate::helpers::*;
use otpd::config::Switch;
use proptest::prelude::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const RC: &str = "/rocketchat/api/v1";

/// `X-User-Id` and `X-Auth-Token` of a Rocket.Chat login.
#[derive(Clone)]
struct Auth {
    user_id: String,
    token: String,
}

/// One Rocket.Chat request, expecting `status`: the JSON body.
async fn rc(
    app: &TestApp,
    method: Method,
    path: &str,
    auth: Option<&Auth>,
    headers: &[(&str, &str)],
    body: Option<Value>,
    status: StatusCode,
) -> Value {
    let mut request = app
        .client
        .request(method.clone(), format!("{}{path}", app.base));
    if let Some(auth) = auth {
        request = request
            .header("X-User-Id", &auth.user_id)
            .header("X-Auth-Token", &auth.token);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let got = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "{method} {path}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// `GET me` as `auth`, expecting `status`.
async fn me(app: &TestApp, auth: Option<&Auth>, status: StatusCode) -> Value {
    rc(
        app,
        Method::GET,
        &format!("{RC}/me"),
        auth,
        &[],
        None,
        status,
    )
    .await
}

async fn post(app: &TestApp, path: &str, auth: &Auth, body: Value, status: StatusCode) -> Value {
    rc(app, Method::POST, path, Some(auth), &[], Some(body), status).await
}

/// Logs in with `body`: the answer, and the auth of a success.
async fn try_login(app: &TestApp, body: Value, status: StatusCode) -> (Value, Option<Auth>) {
    let v = rc(
        app,
        Method::POST,
        &format!("{RC}/login"),
        None,
        &[],
        Some(body),
        status,
    )
    .await;
    let auth = (status == StatusCode::OK).then(|| Auth {
        user_id: v["data"]["userId"].as_str().unwrap().to_owned(),
        token: v["data"]["authToken"].as_str().unwrap().to_owned(),
    });
    (v, auth)
}

async fn login(app: &TestApp, user: &str) -> Auth {
    let password = if user == "admin" {
        app.admin_password.clone()
    } else {
        PASSWORD.to_owned()
    };
    try_login(
        app,
        json!({"user": user, "password": password}),
        StatusCode::OK,
    )
    .await
    .1
    .unwrap()
}

/// A method through `method.call`: HTTP 200 `success: true`, and the inner message.
async fn call(app: &TestApp, auth: &Auth, method: &str, params: Value) -> Value {
    let message = json!({"msg": "method", "id": "7", "method": method, "params": params});
    let v = post(
        app,
        &format!("{RC}/method.call/{method}"),
        auth,
        json!({"message": message.to_string()}),
        StatusCode::OK,
    )
    .await;
    assert_eq!(v["success"], json!(true), "{v}");
    let inner: Value = serde_json::from_str(v["message"].as_str().unwrap()).unwrap();
    assert_eq!(inner["msg"], "result", "{inner}");
    assert_eq!(inner["id"], "7", "{inner}");
    inner
}

fn secret_of(enabled: &Value) -> otp::Secret {
    otp::Secret::from_base32(enabled["result"]["secret"].as_str().unwrap()).unwrap()
}

/// Enrolls the caller through the methods; returns the secret and the 12 backup codes.
/// The clock then moves past the confirming step.
async fn enroll(app: &TestApp, auth: &Auth) -> (otp::Secret, Vec<String>) {
    let secret = secret_of(&call(app, auth, "2fa:enable", json!([])).await);
    let done = call(
        app,
        auth,
        "2fa:validateTempToken",
        json!([app.code(&secret)]),
    )
    .await;
    let codes: Vec<String> = done["result"]["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    app.clock.advance(30);
    (secret, codes)
}

fn logged_out() -> Value {
    json!({"success": false, "status": "error", "error": "You must be logged in to do this.", "message": "You must be logged in to do this."})
}

fn meteor(error: &str, reason: &str) -> Value {
    json!({"success": false, "error": format!("{reason} [{error}]"), "errorType": error})
}

fn sha256(text: &str) -> String {
    otpd_core::sha256_hex(text).to_string()
}

#[tokio::test]
async fn info_login_me_and_logout() {
    let app = spawn_app().await;
    app.call(
        Method::POST,
        "/api/v1/accounts",
        Some(&app.admin),
        Some(json!({"username": "alice", "password": PASSWORD, "email": "Alice@Example.org", "full_name": "Alice A."})),
        StatusCode::CREATED,
    )
    .await;
    let info = rc(
        &app,
        Method::GET,
        "/rocketchat/api/info",
        None,
        &[],
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        info,
        json!({"version": otpd::rocketchat::ROCKETCHAT_VERSION, "success": true})
    );

    // Every way Rocket.Chat clients name the account and prove the password.
    for body in [
        json!({"user": "alice", "password": PASSWORD}),
        json!({"user": "alice@example.org", "password": PASSWORD}),
        json!({"username": "ALICE", "password": PASSWORD}),
        json!({"email": "alice@example.org", "password": PASSWORD}),
        json!({"user": {"username": "alice"}, "password": PASSWORD}),
        json!({"user": {"email": "alice@example.org"}, "password": {"digest": sha256(PASSWORD), "algorithm": "sha-256"}}),
    ] {
        let (v, _) = try_login(&app, body.clone(), StatusCode::OK).await;
        assert_eq!(v["status"], "success", "{body}: {v}");
        assert_eq!(v["success"], json!(true));
        assert_eq!(v["data"]["me"]["username"], "alice");
        assert_eq!(v["data"]["me"]["email"], "Alice@Example.org");
        assert_eq!(v["data"]["me"]["services"]["totp"]["enabled"], json!(false));
        assert_eq!(v["data"]["userId"], v["data"]["me"]["_id"]);
    }
    // A refused password, an unknown user, a missing password: one answer.
    let refused = json!({"success": false, "status": "error", "error": "Unauthorized", "message": "Unauthorized"});
    for body in [
        json!({"user": "alice", "password": "wrong password"}),
        json!({"user": "nobody", "password": PASSWORD}),
        json!({"user": "alice", "password": {"digest": sha256("wrong"), "algorithm": "sha-256"}}),
        json!({"user": "alice"}),
    ] {
        let (v, _) = try_login(&app, body, StatusCode::UNAUTHORIZED).await;
        assert_eq!(v, refused);
    }
    let (v, _) = try_login(
        &app,
        json!({"user": "alice", "password": PASSWORD, "resume": "x"}),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(v["errorType"], "invalid-params", "{v}");

    let alice = login(&app, "alice").await;
    let mine = me(&app, Some(&alice), StatusCode::OK).await;
    assert_eq!(mine["_id"], json!(alice.user_id));
    assert_eq!(mine["name"], "Alice A.");
    assert_eq!(mine["roles"], json!(["user"]));
    assert_eq!(mine["success"], json!(true));

    // No headers, a bad token, a token of another account: 401 as Rocket.Chat answers.
    let bob = {
        app.account("bob", &[]).await;
        login(&app, "bob").await
    };
    let mixed = Auth {
        user_id: alice.user_id.clone(),
        token: bob.token.clone(),
    };
    let bad = Auth {
        user_id: alice.user_id.clone(),
        token: "otpd_s_nothing".into(),
    };
    for auth in [None, Some(&mixed), Some(&bad)] {
        let v = me(&app, auth, StatusCode::UNAUTHORIZED).await;
        assert_eq!(v, logged_out());
    }

    let v = rc(
        &app,
        Method::POST,
        &format!("{RC}/logout"),
        Some(&alice),
        &[],
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        v,
        json!({"status": "success", "data": {"message": "You've been logged out!"}, "success": true})
    );
    let v = me(&app, Some(&alice), StatusCode::UNAUTHORIZED).await;
    assert_eq!(v, logged_out());

    // Unknown paths and methods answer in Rocket.Chat's shape.
    let v = rc(
        &app,
        Method::GET,
        &format!("{RC}/channels.list"),
        None,
        &[],
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(v["success"], json!(false));
    let v = rc(
        &app,
        Method::GET,
        &format!("{RC}/login"),
        None,
        &[],
        None,
        StatusCode::METHOD_NOT_ALLOWED,
    )
    .await;
    assert_eq!(v["success"], json!(false));
}

#[tokio::test]
async fn login_with_a_second_factor() {
    let app = spawn_app().await;
    app.account("alice", &[]).await;
    let session = login(&app, "alice").await;
    let secret = secret_of(&call(&app, &session, "2fa:enable", json!([])).await);
    let confirming = app.code(&secret);
    call(&app, &session, "2fa:validateTempToken", json!([confirming])).await;
    let body = |code: Option<&str>| match code {
        Some(code) => json!({"user": "alice", "password": PASSWORD, "code": code}),
        None => json!({"user": "alice", "password": PASSWORD}),
    };
    let second_factor = |error: &str, message: &str| {
        json!({
            "success": false, "status": "error", "error": error, "message": message,
            "details": {"method": "totp", "codeGenerated": false, "availableMethods": ["totp"]},
        })
    };

    let (v, _) = try_login(&app, body(None), StatusCode::UNAUTHORIZED).await;
    assert_eq!(v, second_factor("totp-required", "TOTP Required"));
    // The code that confirmed the enrollment cannot log in.
    let (v, _) = try_login(&app, body(Some(&confirming)), StatusCode::UNAUTHORIZED).await;
    assert_eq!(v, second_factor("totp-invalid", "TOTP Invalid"));
    let (v, _) = try_login(&app, body(Some("12345")), StatusCode::UNAUTHORIZED).await;
    assert_eq!(v, second_factor("totp-invalid", "TOTP Invalid"));

    // The next code, in the body; then in the x-2fa-code header; replayed: refused.
    app.clock.advance(30);
    let next = app.code(&secret);
    let (v, auth) = try_login(&app, body(Some(&next)), StatusCode::OK).await;
    assert_eq!(v["data"]["me"]["services"]["totp"]["enabled"], json!(true));
    let auth = auth.unwrap();
    me(&app, Some(&auth), StatusCode::OK).await;
    let (v, _) = try_login(&app, body(Some(&next)), StatusCode::UNAUTHORIZED).await;
    assert_eq!(v["error"], "totp-invalid", "a replayed code");
    app.clock.advance(30);
    rc(
        &app,
        Method::POST,
        &format!("{RC}/login"),
        None,
        &[("x-2fa-code", &app.code(&secret))],
        Some(body(None)),
        StatusCode::OK,
    )
    .await;

    // Failed codes count towards the core's lockout: then even the right code is refused.
    for _ in 0..10 {
        try_login(&app, body(Some("000001")), StatusCode::UNAUTHORIZED).await;
    }
    app.clock.advance(30);
    let (v, _) = try_login(
        &app,
        body(Some(&app.code(&secret))),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(
        v,
        second_factor("totp-max-attempts", "TOTP Maximun Failed Attempts Reached")
    );
}

#[tokio::test]
async fn backup_codes_log_in_once() {
    let app = spawn_app().await;
    app.account("alice", &[]).await;
    let auth = login(&app, "alice").await;
    let (_, codes) = enroll(&app, &auth).await;
    assert_eq!(codes.len(), 12);
    for code in &codes {
        assert_eq!(code.len(), 8, "{code}");
    }
    let with = |code: &str| json!({"username": "alice", "password": PASSWORD, "code": code});
    try_login(&app, with(&codes[0]), StatusCode::OK).await;
    let (v, _) = try_login(&app, with(&codes[0]), StatusCode::UNAUTHORIZED).await;
    assert_eq!(v["error"], "totp-invalid");
    // Case does not matter.
    try_login(&app, with(&codes[1].to_lowercase()), StatusCode::OK).await;
    let remaining = call(&app, &auth, "2fa:checkCodesRemaining", json!([])).await;
    assert_eq!(remaining["result"], json!({"remaining": 10}));
}

#[tokio::test]
async fn enrollment_methods() {
    let app = spawn_app().await;
    app.account("alice", &[]).await;
    let auth = login(&app, "alice").await;
    let invalid_totp = json!({"isClientSafe": true, "error": "invalid-totp", "message": "[invalid-totp]", "errorType": "Meteor.Error"});

    let remaining = call(&app, &auth, "2fa:checkCodesRemaining", json!([])).await;
    assert_eq!(remaining["error"], invalid_totp, "no authenticator yet");
    let enabled = call(&app, &auth, "2fa:enable", json!([])).await;
    assert!(
        enabled["result"]["url"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    // Asked again before confirming: a new pending secret replaces it.
    let secret = secret_of(&call(&app, &auth, "2fa:enable", json!([])).await);
    assert_ne!(secret, secret_of(&enabled));
    let wrong = call(&app, &auth, "2fa:validateTempToken", json!(["000000"])).await;
    if app.code(&secret) != "000000" {
        assert_eq!(wrong["error"], invalid_totp);
        assert!(wrong.get("result").is_none());
    }
    let done = call(
        &app,
        &auth,
        "2fa:validateTempToken",
        json!([app.code(&secret)]),
    )
    .await;
    let old: Vec<String> = serde_json::from_value(done["result"]["codes"].clone()).unwrap();
    assert_eq!(old.len(), 12);
    app.clock.advance(30);
    let again = call(&app, &auth, "2fa:enable", json!([])).await;
    assert_eq!(
        again["error"]["error"], "error-2fa-already-enabled",
        "{again}"
    );
    let remaining = call(&app, &auth, "2fa:checkCodesRemaining", json!([])).await;
    assert_eq!(remaining["result"], json!({"remaining": 12}));

    // Regenerate: a wrong code gives no result; the right one 12 new codes, the old void.
    let refused = call(&app, &auth, "2fa:regenerateCodes", json!(["000000"])).await;
    if app.code(&secret) != "000000" {
        assert!(
            refused.get("result").is_none() && refused.get("error").is_none(),
            "{refused}"
        );
    }
    let fresh = call(
        &app,
        &auth,
        "2fa:regenerateCodes",
        json!([app.code(&secret)]),
    )
    .await;
    let new: Vec<String> = serde_json::from_value(fresh["result"]["codes"].clone()).unwrap();
    assert_eq!(new.len(), 12);
    assert!(new.iter().all(|c| !old.contains(c)));
    let with = |code: &str| json!({"username": "alice", "password": PASSWORD, "code": code});
    try_login(&app, with(&old[0]), StatusCode::UNAUTHORIZED).await;
    try_login(&app, with(&new[0]), StatusCode::OK).await;

    // Disable: false for a wrong code, true for a right one (a backup code will do).
    let no = call(&app, &auth, "2fa:disable", json!(["000000"])).await;
    assert_eq!(no["result"], json!(false));
    let yes = call(&app, &auth, "2fa:disable", json!([new[1]])).await;
    assert_eq!(yes["result"], json!(true));
    let none = call(&app, &auth, "2fa:disable", json!(["000000"])).await;
    assert_eq!(none["result"], json!(false), "nothing left to disable");
    let remaining = call(&app, &auth, "2fa:checkCodesRemaining", json!([])).await;
    assert_eq!(remaining["error"], invalid_totp);
    login(&app, "alice").await;

    // Other methods, bad params, and no user.
    let unknown = call(&app, &auth, "sendMessage", json!([{}])).await;
    assert_eq!(
        unknown["error"],
        json!({"isClientSafe": true, "error": 404, "reason": "Method 'sendMessage' not found", "message": "Method 'sendMessage' not found [404]", "errorType": "Meteor.Error"})
    );
    let bad = call(&app, &auth, "2fa:validateTempToken", json!([123456])).await;
    assert_eq!(bad["error"]["error"], json!(400));
    let message = json!({"msg": "method", "id": "1", "method": "2fa:enable", "params": []});
    let anon = rc(
        &app,
        Method::POST,
        &format!("{RC}/method.callAnon/2fa:enable"),
        None,
        &[],
        Some(json!({"message": message.to_string()})),
        StatusCode::OK,
    )
    .await;
    let inner: Value = serde_json::from_str(anon["message"].as_str().unwrap()).unwrap();
    assert_eq!(inner["error"]["error"], "not-authorized");
    let v = rc(
        &app,
        Method::POST,
        &format!("{RC}/method.call/2fa:enable"),
        None,
        &[],
        Some(json!({"message": message.to_string()})),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(v, logged_out());
}

#[tokio::test]
async fn method_call_envelope_errors() {
    let app = spawn_app().await;
    app.account("alice", &[]).await;
    let auth = login(&app, "alice").await;
    let path = format!("{RC}/method.call/2fa:enable");
    for (body, error_type) in [
        (json!([]), "invalid-params"),
        (json!({}), "invalid-params"),
        (json!({"message": 1}), "invalid-params"),
        (json!({"message": "{}", "extra": 1}), "invalid-params"),
    ] {
        let v = post(&app, &path, &auth, body.clone(), StatusCode::BAD_REQUEST).await;
        assert_eq!(v["errorType"], error_type, "{body}: {v}");
        assert_eq!(v["success"], json!(false));
    }
    let v = post(
        &app,
        &path,
        &auth,
        json!({"message": "{not json"}),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        v["error"].as_str().unwrap().starts_with("SyntaxError"),
        "{v}"
    );
    for message in [
        json!({"msg": "method", "id": "1", "method": "2fa:enable"}),
        json!({"msg": "sub", "id": "1", "method": "2fa:enable", "params": []}),
        json!({"msg": "method", "id": 1, "method": "2fa:enable", "params": []}),
        json!({"msg": "method", "id": "1", "method": "2fa:enable", "params": {}}),
        json!({"msg": "method", "id": "1", "method": "2fa:enable", "params": [], "x": 1}),
        json!([1]),
    ] {
        let v = post(
            &app,
            &path,
            &auth,
            json!({"message": message.to_string()}),
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(
            v,
            json!({"success": false, "error": "Invalid method call"}),
            "{message}"
        );
    }
    // Duplicate keys are refused, in the body and in the message.
    let response = app
        .client
        .post(format!("{}{path}", app.base))
        .header("X-User-Id", &auth.user_id)
        .header("X-Auth-Token", &auth.token)
        .header("content-type", "application/json")
        .body(r#"{"message": "{}", "message": "{}"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

/// The seed: `users.resetTOTP` behind Rocket.Chat's 2FA check, for oneself and for others.
#[tokio::test]
async fn reset_totp() {
    let app = spawn_app().await;
    for (name, roles) in [
        ("alice", vec![]),
        ("bob", vec![]),
        ("carol", vec![]),
        ("helpdesk", vec!["twofactor_admin"]),
        ("auditor", vec!["readonly_admin"]),
    ] {
        app.account(name, &roles).await;
    }
    let reset = format!("{RC}/users.resetTOTP");
    let required = |method: &str, available: Value| {
        meteor("totp-required", "TOTP Required")
            .as_object()
            .cloned()
            .map(|mut v| {
                v.insert(
                "details".into(),
                json!({"method": method, "codeGenerated": false, "availableMethods": available}),
            );
                Value::Object(v)
            })
    };
    let reset_as =
        |auth: Auth, headers: Vec<(&'static str, String)>, body: Value, status: StatusCode| {
            let app = &app;
            let reset = reset.clone();
            async move {
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                rc(
                    app,
                    Method::POST,
                    &reset,
                    Some(&auth),
                    &headers,
                    Some(body),
                    status,
                )
                .await
            }
        };
    let v = rc(
        &app,
        Method::POST,
        &reset,
        None,
        &[],
        Some(json!({})),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(v, logged_out());

    // Alice resets her own TOTP: the check asks for a code, refuses a wrong one, takes the
    // right one; her other sessions end, the calling one stays.
    let alice = login(&app, "alice").await;
    let (secret, _) = enroll(&app, &alice).await;
    let other = login_code(&app, "alice", &secret).await;
    let v = reset_as(alice.clone(), vec![], json!({}), StatusCode::BAD_REQUEST).await;
    assert_eq!(Some(v), required("totp", json!(["totp"])));
    let v = reset_as(
        alice.clone(),
        vec![
            ("x-2fa-code", "000001".into()),
            ("x-2fa-method", "totp".into()),
        ],
        json!({}),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(v["error"], "TOTP Invalid [totp-invalid]");
    assert_eq!(v["details"]["method"], "totp");
    // A code without its method is no proof, as in Rocket.Chat.
    let v = reset_as(
        alice.clone(),
        vec![("x-2fa-code", app.code(&secret))],
        json!({}),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(v["errorType"], "totp-required");
    let v = reset_as(
        alice.clone(),
        vec![
            ("x-2fa-code", app.code(&secret)),
            ("x-2fa-method", "totp".into()),
        ],
        json!({}),
        StatusCode::OK,
    )
    .await;
    assert_eq!(v, json!({"success": true}));
    me(&app, Some(&other), StatusCode::UNAUTHORIZED).await;
    let mine = me(&app, Some(&alice), StatusCode::OK).await;
    assert_eq!(mine["services"]["totp"]["enabled"], json!(false));
    login(&app, "alice").await;

    // Without TOTP, Rocket.Chat's fallback: the lower-case hex SHA-256 of the password.
    let v = reset_as(alice.clone(), vec![], json!({}), StatusCode::BAD_REQUEST).await;
    assert_eq!(Some(v), required("password", json!([])));
    let v = reset_as(
        alice.clone(),
        vec![
            ("x-2fa-code", sha256("not it")),
            ("x-2fa-method", "password".into()),
        ],
        json!({}),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(v["error"], "TOTP Invalid [totp-invalid]");
    assert_eq!(v["details"]["method"], "password");
    let digest = vec![
        ("x-2fa-code", sha256(PASSWORD)),
        ("x-2fa-method", "password".into()),
    ];
    let v = reset_as(alice.clone(), digest.clone(), json!({}), StatusCode::OK).await;
    assert_eq!(
        v,
        json!({"success": true}),
        "nothing to reset is still a success"
    );

    // Others: a plain account may not; nor may a read-only admin.
    let bob = login(&app, "bob").await;
    let (bob_secret, _) = enroll(&app, &bob).await;
    let bob_other = login_code(&app, "bob", &bob_secret).await;
    let carol = login(&app, "carol").await;
    let carol_digest = digest.clone();
    let not_allowed = meteor("error-not-allowed", "Not allowed");
    for body in [
        json!({"userId": bob.user_id}),
        json!({"username": "bob"}),
        json!({"userId": "no-such-id"}),
    ] {
        let v = reset_as(
            carol.clone(),
            carol_digest.clone(),
            body,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(v, not_allowed);
    }
    let auditor = login(&app, "auditor").await;
    let v = reset_as(
        auditor,
        digest.clone(),
        json!({"username": "bob"}),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(v, not_allowed);

    // The administrator (no TOTP: the password digest) — the seed's three answers.
    let admin = login(&app, "admin").await;
    let admin_digest = vec![
        ("x-2fa-code", sha256(&app.admin_password)),
        ("x-2fa-method", "password".into()),
    ];
    let v = reset_as(
        admin.clone(),
        vec![],
        json!({"userId": bob.user_id}),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(Some(v), required("password", json!([])));
    let v = reset_as(
        admin.clone(),
        admin_digest.clone(),
        json!({"userId": ""}),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        v,
        meteor(
            "error-user-param-not-provided",
            "The required \"userId\" or \"username\" param was not provided"
        )
    );
    let v = reset_as(
        admin.clone(),
        admin_digest.clone(),
        json!({"userId": "GonjPyg3gB3Z9ur9s"}),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        v,
        json!({
            "success": false,
            "error": "The required \"userId\" or \"username\" param provided does not match any users [error-invalid-user]",
            "errorType": "error-invalid-user",
        })
    );
    let v = reset_as(
        admin.clone(),
        admin_digest.clone(),
        json!({"userId": bob.user_id}),
        StatusCode::OK,
    )
    .await;
    assert_eq!(v, json!({"success": true}));
    // Bob is logged out everywhere and logs in with his password alone.
    for auth in [&bob, &bob_other] {
        me(&app, Some(auth), StatusCode::UNAUTHORIZED).await;
    }
    let bob = login(&app, "bob").await;
    // Audited by the core, as any reset.
    let audit = app
        .call(
            Method::GET,
            "/api/v1/audit?account=bob&action=totp.remove",
            Some(&app.admin),
            None,
            StatusCode::OK,
        )
        .await;
    let events = audit.as_array().unwrap();
    assert_eq!(events.len(), 1, "{audit}");
    assert_eq!(events[0]["actor"], "admin");
    assert_eq!(events[0]["door"], "rocketchat");

    // A 2FA admin resets by name.
    enroll(&app, &bob).await;
    let helpdesk = login(&app, "helpdesk").await;
    let v = reset_as(helpdesk, digest, json!({"username": "bob"}), StatusCode::OK).await;
    assert_eq!(v, json!({"success": true}));
}

/// Logs `name` in with the current code of `secret`; the clock then moves on a step.
async fn login_code(app: &TestApp, name: &str, secret: &otp::Secret) -> Auth {
    let (_, auth) = try_login(
        app,
        json!({"user": name, "password": PASSWORD, "code": app.code(secret)}),
        StatusCode::OK,
    )
    .await;
    app.clock.advance(30);
    auth.unwrap()
}

#[tokio::test]
async fn users_info_and_create() {
    let app = spawn_app().await;
    let admin = login(&app, "admin").await;
    let create = format!("{RC}/users.create");
    let new = json!({"email": "dave@example.org", "name": "Dave", "password": PASSWORD, "username": "dave", "roles": ["user"], "joinDefaultChannels": false});
    let v = post(&app, &create, &admin, new.clone(), StatusCode::OK).await;
    assert_eq!(v["success"], json!(true));
    assert_eq!(v["user"]["username"], "dave");
    assert_eq!(v["user"]["emails"][0]["address"], "dave@example.org");
    let dave_id = v["user"]["_id"].as_str().unwrap().to_owned();

    let v = post(&app, &create, &admin, new.clone(), StatusCode::BAD_REQUEST).await;
    assert_eq!(
        v,
        json!({
            "success": false, "error": "dave is already in use :( [error-field-unavailable]",
            "errorType": "error-field-unavailable", "details": {"method": "insertOrUpdateUser", "field": "dave"},
        })
    );
    let mut bad_email = new.clone();
    bad_email["username"] = json!("erin");
    bad_email["email"] = json!("not an address");
    let v = post(&app, &create, &admin, bad_email, StatusCode::BAD_REQUEST).await;
    assert_eq!(v["errorType"], "error-invalid-email");
    assert_eq!(
        v["error"],
        "Invalid email not an address [error-invalid-email]"
    );
    let mut bad_name = new.clone();
    bad_name["username"] = json!("no/slash");
    let v = post(&app, &create, &admin, bad_name, StatusCode::BAD_REQUEST).await;
    assert_eq!(v["errorType"], "error-input-is-not-a-valid-field");
    for body in [
        json!({"email": "x@example.org", "name": "X", "username": "x"}),
        json!({"email": "x@example.org", "name": "X", "username": "x", "password": PASSWORD, "color": "red"}),
        json!({"email": "x@example.org", "name": "X", "username": "x", "password": 5}),
        json!({"email": "x@example.org", "name": "X", "username": "x", "password": PASSWORD, "active": false}),
    ] {
        let v = post(&app, &create, &admin, body.clone(), StatusCode::BAD_REQUEST).await;
        assert_eq!(v["errorType"], "invalid-params", "{body}: {v}");
    }
    let v = post(
        &app,
        &create,
        &admin,
        json!({"email": "x@example.org", "name": "X", "username": "x", "password": PASSWORD, "roles": ["owner"]}),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(v["errorType"], "error-invalid-role");
    // An admin made through Rocket.Chat is a full admin.
    let v = post(
        &app,
        &create,
        &admin,
        json!({"email": "root@example.org", "name": "Root", "username": "root", "password": PASSWORD, "roles": ["admin"]}),
        StatusCode::OK,
    )
    .await;
    assert_eq!(v["user"]["roles"], json!(["user", "admin"]));

    // A plain account may not create accounts.
    let dave = login(&app, "dave").await;
    let mut other = new.clone();
    other["username"] = json!("frank");
    let v = post(&app, &create, &dave, other, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        v,
        json!({
            "success": false, "error": "Adding user is not allowed [error-action-not-allowed]",
            "errorType": "error-action-not-allowed", "details": {"method": "insertOrUpdateUser", "action": "Adding_user"},
        })
    );

    // users.info: by id or name; the account itself sees its services.
    let info = |auth: &Auth, query: &str, status: StatusCode| {
        let path = format!("{RC}/users.info?{query}");
        let auth = auth.clone();
        let app = &app;
        async move { rc(app, Method::GET, &path, Some(&auth), &[], None, status).await }
    };
    let v = info(&admin, &format!("userId={dave_id}"), StatusCode::OK).await;
    assert_eq!(v["user"]["username"], "dave");
    assert!(v["user"].get("services").is_none());
    let v = info(&admin, "username=DAVE", StatusCode::OK).await;
    assert_eq!(v["user"]["_id"], json!(dave_id));
    let v = info(&dave, "username=dave", StatusCode::OK).await;
    assert_eq!(v["user"]["services"]["totp"]["enabled"], json!(false));
    let v = info(&admin, "username=nobody", StatusCode::BAD_REQUEST).await;
    assert_eq!(v, json!({"success": false, "error": "User not found."}));
    let v = info(&admin, "", StatusCode::BAD_REQUEST).await;
    assert_eq!(
        v,
        json!({"success": false, "error": "Invalid search query."})
    );
    let v = info(&admin, "userId=a&userId=b", StatusCode::BAD_REQUEST).await;
    assert_eq!(v["errorType"], "invalid-params");
    let v = info(&dave, "username=admin", StatusCode::BAD_REQUEST).await;
    assert_eq!(v, meteor("error-not-allowed", "Not allowed"));
}

/// About fifteen password logins a minute from one address pass; then Rocket.Chat's 429.
#[tokio::test]
async fn login_limits() {
    let app = spawn_app_with(|s| s.rate_limits = Some(Switch(true))).await;
    app.account("alice", &[]).await;
    for _ in 0..15 {
        login(&app, "alice").await;
    }
    // At once, so that no token comes back meanwhile: the budget is taken before the
    // password is checked.
    let attempts = (0..30).map(|_| {
        app.client
            .post(format!("{}{RC}/login", app.base))
            .json(&json!({"user": "alice", "password": PASSWORD}))
            .send()
    });
    let mut limited = None;
    for response in futures_util::future::join_all(attempts).await {
        let response = response.unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(response);
        }
    }
    let response = limited.expect("the login budget runs out");
    assert!(response.headers().contains_key("retry-after"));
    let v: Value = response.json().await.unwrap();
    assert_eq!(v["errorType"], "error-too-many-requests", "{v}");
    assert_eq!(v["success"], json!(false));
}

/// A method that checks a code takes from the login budget, and takes no password
/// instead of a code: an authenticator an admin switched off makes `2fa:disable` answer
/// `false`, never a password oracle.
#[tokio::test]
async fn method_codes_take_from_the_login_budget() {
    let app = spawn_app_with(|s| {
        s.rate_limits = Some(Switch(true));
        s.failure_rate = Some(1000);
    })
    .await;
    app.account("alice", &[]).await;
    let alice = login(&app, "alice").await;
    enroll(&app, &alice).await;
    app.call(
        Method::PATCH,
        "/api/v1/accounts/alice/totp",
        Some(&app.admin),
        Some(json!({"enabled": false})),
        StatusCode::OK,
    )
    .await;
    let v = call(&app, &alice, "2fa:disable", json!([sha256(PASSWORD)])).await;
    assert_eq!(v["result"], json!(false), "{v}");

    let message =
        json!({"msg": "method", "id": "1", "method": "2fa:regenerateCodes", "params": ["000000"]});
    let attempts = (0..30).map(|_| {
        app.client
            .post(format!("{}{RC}/method.call/2fa:regenerateCodes", app.base))
            .header("X-User-Id", &alice.user_id)
            .header("X-Auth-Token", &alice.token)
            .json(&json!({"message": message.to_string()}))
            .send()
    });
    let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap().status())
        .collect();
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

/// A service's API key in Rocket.Chat's `X-Auth-Token` passes an address whose failure
/// budget others spent; without it, the address waits.
#[tokio::test]
async fn an_api_key_passes_a_spent_failure_budget() {
    let app = spawn_app_with(|s| {
        s.rate_limits = Some(Switch(true));
        s.failure_rate = Some(3);
    })
    .await;
    app.account("bot", &[]).await;
    let key = app
        .call(
            Method::POST,
            "/api/v1/api-keys",
            Some(&app.admin),
            Some(json!({"name": "rc", "account": "bot"})),
            StatusCode::CREATED,
        )
        .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let bot_id = app
        .call(
            Method::GET,
            "/api/v1/accounts/bot",
            Some(&app.admin),
            None,
            StatusCode::OK,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..5 {
        app.client
            .get(format!("{}{RC}/me", app.base))
            .send()
            .await
            .unwrap();
    }
    me(&app, None, StatusCode::TOO_MANY_REQUESTS).await;
    let bot = Auth {
        user_id: bot_id,
        token: key,
    };
    let v = me(&app, Some(&bot), StatusCode::OK).await;
    assert_eq!(v["username"], "bot");
}

/// A `verifier` (it may read no account, itself included) logs in and is shown what its
/// credential says — and no session is made for nothing.
#[tokio::test]
async fn a_verifier_logs_in() {
    let app = spawn_app().await;
    app.account("checker", &["verifier"]).await;
    let auth = login(&app, "checker").await;
    let v = me(&app, Some(&auth), StatusCode::OK).await;
    assert_eq!(v["username"], "checker");
    assert_eq!(v["roles"], json!(["user", "verifier"]));
}

#[tokio::test]
async fn the_prefix_is_a_setting_and_the_dialect_a_switch() {
    let app = spawn_app_with(|s| s.rocketchat_prefix = Some("/chat/rc".into())).await;
    rc(
        &app,
        Method::GET,
        "/chat/rc/api/info",
        None,
        &[],
        None,
        StatusCode::OK,
    )
    .await;
    for path in ["/chat/rc", "/chat/rc/", "/chat/rc/api"] {
        let v = rc(
            &app,
            Method::GET,
            path,
            None,
            &[],
            None,
            StatusCode::NOT_FOUND,
        )
        .await;
        assert_eq!(v["success"], json!(false), "{path}");
    }
    let response = app
        .client
        .get(format!("{}/rocketchat/api/info", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let off = spawn_app_with(|s| s.rocketchat = Some(Switch(false))).await;
    let response = off
        .client
        .get(format!("{}/rocketchat/api/info", off.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.headers()[reqwest::header::CONTENT_TYPE],
        "application/problem+json"
    );

    for bad in ["rocketchat", "/", "/rc/", "/a//b", "/api", "/rc/..", "/r c"] {
        let common = otpd::config::CommonArgs::default();
        let serve = otpd::config::ServeArgs {
            rocketchat_prefix: Some(bad.into()),
            ..otpd::config::ServeArgs::default()
        };
        assert!(
            otpd::config::Settings::resolve(&common, &serve).is_err(),
            "{bad}"
        );
    }
}

/// Arbitrary bodies on every Rocket.Chat route that reads one, and arbitrary `method.call`
/// messages: never a panic or a 500, always JSON with `success`, errors in Rocket.Chat's
/// shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_input_gets_rocketchat_answers() {
    let app = spawn_app().await;
    app.account("alice", &[]).await;
    let auth = login(&app, "alice").await;
    let handle = tokio::runtime::Handle::current();
    let strategy = (
        proptest::collection::vec(any::<u8>(), 0..64),
        "\\{(\"(msg|id|method|params|user|password|code|userId|username|email|name|message)\":(\"[a-z:2]{0,8}\"|\\[\\]|\\[\"[0-9]{0,8}\"\\]|1|\\{\\}|null|true),?){0,5}\\}",
        0usize..6,
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    });
    let result = tokio::task::block_in_place(|| {
        runner.run(&strategy, |(bytes, json_text, route)| {
            handle.block_on(async {
                let path = match route {
                    0 => "login",
                    1 => "users.create",
                    2 => "users.resetTOTP",
                    3 => "method.callAnon/x",
                    4 => "users.info",
                    _ => "method.call/2fa:enable",
                };
                let method = if route == 4 {
                    Method::GET
                } else {
                    Method::POST
                };
                let as_message = json!({"message": json_text}).to_string().into_bytes();
                for (payload, form) in [
                    (bytes.clone(), false),
                    (bytes.clone(), true),
                    (json_text.clone().into_bytes(), false),
                    (as_message, false),
                ] {
                    let mut request = app
                        .client
                        .request(method.clone(), format!("{}{RC}/{path}", app.base))
                        .header("X-User-Id", &auth.user_id)
                        .header("X-Auth-Token", &auth.token)
                        .body(payload);
                    if form {
                        request =
                            request.header("content-type", "application/x-www-form-urlencoded");
                    }
                    let response = request.send().await.unwrap();
                    let status = response.status();
                    let text = response.text().await.unwrap();
                    assert!(!status.is_server_error(), "{path}: {status} {text}");
                    let value: Value =
                        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
                    assert_eq!(
                        value["success"],
                        json!(status.is_success()),
                        "{path}: {text}"
                    );
                    if !status.is_success() {
                        assert!(
                            value["error"].is_string() || value["message"].is_string(),
                            "{text}"
                        );
                    }
                }
            });
            Ok(())
        })
    });
    result.unwrap();
}

/// The `rocketchat_API` Python client (`scripts/rocketchat_client.py`) against a real
/// `otpd serve`: its login, `info()`, `users_create()`, `me()`, `users_info()`, enrollment
/// through `method.call` with codes from pyotp, its `RocketAuthenticationException` without
/// a code, `users.resetTOTP` with `x-2fa-code`/`x-2fa-method` for oneself and by an admin.
/// `.ci/run` installs the modules and passes --include-ignored, so CI cannot skip it.
#[tokio::test]
#[ignore = "needs python3 with rocketchat_API and pyotp: pass --include-ignored (.ci/run does)"]
async fn rocketchat_python_client() {
    crate::process::run_python_client(
        "rocketchat_client.py",
        "rocketchat_API, pyotp",
        &[],
        |server, password| vec![server.base.clone(), password.to_owned()],
    )
    .await;
}
