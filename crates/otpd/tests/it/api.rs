//! The native API's flows over real HTTP.

use crate::helpers::*;
use otpd_core::Clock;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn the_core_contract() {
    let app = spawn_app().await;
    let created = app.call(Method::POST, "/api/v1/accounts", Some(&app.admin), Some(json!({"username": "alice", "password": PASSWORD, "full_name": "Alice", "email": "alice@example.com"})), StatusCode::CREATED).await;
    assert_eq!(
        (
            created["username"].as_str(),
            created["uid"].as_i64(),
            created["roles"].as_array().map(Vec::len)
        ),
        (Some("alice"), Some(3001), Some(0))
    );
    let login = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "alice", "password": PASSWORD})),
            StatusCode::OK,
        )
        .await;
    assert!(login["expires_at"].as_i64().unwrap() > T0);
    let alice = login["token"].as_str().unwrap().to_owned();

    let e = app
        .call(
            Method::POST,
            "/api/v1/accounts/alice/totp/enroll",
            Some(&alice),
            Some(json!({"digits": 8, "interval": 60, "algorithm": "SHA256"})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        (
            e["digits"].as_u64(),
            e["interval"].as_u64(),
            e["algorithm"].as_str()
        ),
        (Some(8), Some(60), Some("SHA256"))
    );
    assert!(e["expires_at"].as_i64().unwrap() > T0);
    let uri = otp::KeyUri::parse(e["provisioning_uri"].as_str().unwrap()).unwrap();
    assert_eq!((uri.account(), uri.issuer()), ("alice", Some("otpd")));
    let totp = otp::Totp::new(
        otp::Algorithm::Sha256,
        otp::Digits::EIGHT,
        otp::Interval::new(60).unwrap(),
    );
    let secret = uri.secret().clone();
    let svg = app
        .request(
            Method::GET,
            "/api/v1/accounts/alice/totp/qr.svg",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert_eq!(svg.headers()["cache-control"], "no-store");
    assert!(svg.text().await.unwrap().starts_with("<svg"));
    let png = app
        .request(
            Method::GET,
            "/api/v1/accounts/alice/totp/qr.png",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(png.headers()["content-type"], "image/png");
    assert!(png.bytes().await.unwrap().starts_with(b"\x89PNG\r\n\x1a\n"));

    let code = totp.generate(&secret, app.clock.now() as u64).to_string();
    let c = app
        .call(
            Method::POST,
            "/api/v1/accounts/alice/totp/confirm",
            Some(&alice),
            Some(json!({"code": code})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(c["recovery_codes"].as_array().unwrap().len(), 10);
    // The confirming code cannot log in.
    let v = app
        .call(
            Method::POST,
            "/api/v1/accounts/alice/totp/verify",
            Some(&alice),
            Some(json!({"code": code})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        v,
        json!({"valid": false, "reason": "replayed", "method": null})
    );

    app.clock.advance(60);
    let code = totp.generate(&secret, app.clock.now() as u64).to_string();
    let v = app
        .call(
            Method::POST,
            "/api/v1/accounts/alice/totp/verify",
            Some(&app.admin),
            Some(json!({"code": code})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(v, json!({"valid": true, "reason": null, "method": "totp"}));
    let v = app
        .call(
            Method::POST,
            "/api/v1/accounts/alice/totp/verify",
            Some(&app.admin),
            Some(json!({"code": code})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        v,
        json!({"valid": false, "reason": "replayed", "method": null})
    );

    let s = app
        .call(
            Method::GET,
            "/api/v1/accounts/alice/totp",
            Some(&alice),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        (
            s["state"].as_str(),
            s["enabled"].as_bool(),
            s["digits"].as_u64(),
            s["interval"].as_u64()
        ),
        (Some("active"), Some(true), Some(8), Some(60))
    );
    assert_eq!(
        (
            s["algorithm"].as_str(),
            s["fingerprint"].as_str().map(str::len),
            s["recovery_codes_remaining"].as_i64()
        ),
        (Some("SHA256"), Some(64), Some(10))
    );
    assert_eq!(
        (s["comment"].as_str(), &s["locked_until"]),
        (Some(""), &json!(null))
    );

    // Login now asks for the second factor.
    let l = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "alice", "password": PASSWORD})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        (l["second_factor_required"].as_bool(), l.get("token")),
        (Some(true), None)
    );
    app.clock.advance(60);
    let code = totp.generate(&secret, app.clock.now() as u64).to_string();
    let t = app
        .call(
            Method::POST,
            "/api/v1/auth/second-factor",
            None,
            Some(json!({"challenge": l["challenge"], "code": code})),
            StatusCode::OK,
        )
        .await;
    assert!(t["token"].as_str().unwrap().starts_with("otpd_s_"));

    app.call(
        Method::DELETE,
        "/api/v1/accounts/alice/totp",
        Some(&app.admin),
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    let p = app
        .call(
            Method::GET,
            "/api/v1/accounts/alice/totp",
            Some(&app.admin),
            None,
            StatusCode::NOT_FOUND,
        )
        .await;
    assert_eq!(p["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_racing_http_requests_accept_exactly_one() {
    let app = spawn_app().await;
    let alice = app.account("alice", &[]).await;
    let (secret, _) = app.enroll("alice", &alice).await;
    let key = app
        .call(
            Method::POST,
            "/api/v1/api-keys",
            Some(&app.admin),
            Some(json!({"name": "svc"})),
            StatusCode::CREATED,
        )
        .await;
    let key = key["key"].as_str().unwrap().to_owned();
    let code = app.code(&secret);
    let url = format!("{}/api/v1/accounts/alice/totp/verify", app.base);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (client, url, key, code) = (app.client.clone(), url.clone(), key.clone(), code.clone());
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(key)
                .json(&json!({"code": code}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<serde_json::Value>().await.unwrap()
        }));
    }
    let mut valid = 0;
    for t in tasks {
        let v = t.await.unwrap();
        if v["valid"] == json!(true) {
            valid += 1;
        } else {
            // Replays count as failures: past `max_failures` they find the account locked.
            assert!(v["reason"] == "replayed" || v["reason"] == "locked", "{v}");
        }
    }
    assert_eq!(valid, 1);
}

#[tokio::test]
async fn lockout_then_unlock_after_lockout_secs() {
    let app = spawn_app().await;
    let alice = app.account("alice", &[]).await;
    let (secret, _) = app.enroll("alice", &alice).await;
    app.call(
        Method::PATCH,
        "/api/v1/policy",
        Some(&app.admin),
        Some(json!({"max_failures": 3, "lockout_secs": 60})),
        StatusCode::OK,
    )
    .await;
    let good = app.code(&secret);
    let bad = if good == "000000" { "111111" } else { "000000" };
    for _ in 0..3 {
        let v = app
            .call(
                Method::POST,
                "/api/v1/accounts/alice/totp/verify",
                Some(&app.admin),
                Some(json!({"code": bad})),
                StatusCode::OK,
            )
            .await;
        assert_eq!(v["reason"], "invalid");
    }
    let v = app
        .call(
            Method::POST,
            "/api/v1/accounts/alice/totp/verify",
            Some(&app.admin),
            Some(json!({"code": good})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(v["reason"], "locked");
    let s = app
        .call(
            Method::GET,
            "/api/v1/accounts/alice/totp",
            Some(&app.admin),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(s["locked_until"].as_i64(), Some(app.clock.now() + 60));
    app.clock.advance(60);
    let v = app
        .call(
            Method::POST,
            "/api/v1/accounts/alice/totp/verify",
            Some(&app.admin),
            Some(json!({"code": app.code(&secret)})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(v["valid"], true, "{v}");
}

#[tokio::test]
async fn drift_resync_and_recovery_codes() {
    let app = spawn_app().await;
    let alice = app.account("alice", &[]).await;
    let (secret, codes) = app.enroll("alice", &alice).await;
    let at = |steps: i64| {
        otp::Totp::default()
            .generate(&secret, (app.clock.now() + 30 * steps) as u64)
            .to_string()
    };
    let v = app
        .call(
            Method::POST,
            "/api/v1/accounts/alice/totp/verify",
            Some(&alice),
            Some(json!({"code": at(1)})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(v["valid"], true);
    assert_eq!(
        app.call(
            Method::GET,
            "/api/v1/accounts/alice/totp",
            Some(&alice),
            None,
            StatusCode::OK
        )
        .await["drift"],
        1
    );
    app.clock.advance(300);
    let r = app
        .call(
            Method::POST,
            "/api/v1/accounts/alice/totp/resync",
            Some(&alice),
            Some(json!({"first": at(20), "second": at(21)})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(r["drift"], 21);
    // A recovery code works once, in any case and with or without its hyphen.
    let rc = codes[0].replace('-', "").to_lowercase();
    let v = app
        .call(
            Method::POST,
            "/api/v1/accounts/alice/totp/verify",
            Some(&alice),
            Some(json!({"code": rc})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        v,
        json!({"valid": true, "reason": null, "method": "recovery_code"})
    );
    let v = app
        .call(
            Method::POST,
            "/api/v1/accounts/alice/totp/verify",
            Some(&alice),
            Some(json!({"code": codes[0]})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(v["reason"], "invalid");
    // Reading the codes is guarded like changing them: a session that has not proved its
    // second factor recently sends one along (here a recovery code, consumed by it).
    let p = app
        .call(
            Method::GET,
            "/api/v1/accounts/alice/recovery-codes",
            Some(&alice),
            None,
            StatusCode::FORBIDDEN,
        )
        .await;
    assert_eq!(p["code"], "step_up_required");
    let list: serde_json::Value = app
        .client
        .get(format!("{}/api/v1/accounts/alice/recovery-codes", app.base))
        .bearer_auth(&alice)
        .header("x-otp-code", codes[1].as_str())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["recovery_codes"].as_array().unwrap().len(), 8);
}

#[tokio::test]
async fn step_up_and_session_revocation() {
    let app = spawn_app().await;
    let old = app.account("alice", &[]).await;
    let (secret, _) = app.enroll("alice", &old).await;
    // The session that confirmed the enrollment proved its second factor then; once the
    // step-up window has passed, renewal needs a code.
    app.clock.advance(301);
    let p = app
        .call(
            Method::POST,
            "/api/v1/accounts/alice/totp/renew",
            Some(&old),
            Some(json!({})),
            StatusCode::FORBIDDEN,
        )
        .await;
    assert_eq!(p["code"], "step_up_required");
    let r = app
        .client
        .post(format!("{}/api/v1/accounts/alice/totp/renew", app.base))
        .bearer_auth(&old)
        .header("x-otp-code", app.code(&secret))
        .json(&json!({"digits": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let renewed: serde_json::Value = r.json().await.unwrap();
    assert_eq!(renewed["digits"], 7);
    let secret = otp::KeyUri::parse(renewed["provisioning_uri"].as_str().unwrap())
        .unwrap()
        .secret()
        .clone();
    let seven = otp::Totp::new(
        otp::Algorithm::Sha1,
        otp::Digits::new(7).unwrap(),
        otp::Interval::THIRTY_SECONDS,
    );

    // A fresh second-factor login may remove the authenticator without a code; its other
    // sessions end, its own stays.
    app.clock.advance(30);
    let l = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "alice", "password": PASSWORD})),
            StatusCode::OK,
        )
        .await;
    let t = app.call(Method::POST, "/api/v1/auth/second-factor", None, Some(json!({"challenge": l["challenge"], "code": seven.generate(&secret, app.clock.now() as u64).to_string()})), StatusCode::OK).await;
    let fresh = t["token"].as_str().unwrap().to_owned();
    app.call(
        Method::DELETE,
        "/api/v1/accounts/alice/totp",
        Some(&fresh),
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    app.call(
        Method::GET,
        "/api/v1/me",
        Some(&fresh),
        None,
        StatusCode::OK,
    )
    .await;
    let p = app
        .call(
            Method::GET,
            "/api/v1/me",
            Some(&old),
            None,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    assert_eq!(p["code"], "unauthenticated");

    // An admin's reset ends every session of the account.
    app.enroll("alice", &fresh).await;
    app.call(
        Method::DELETE,
        "/api/v1/accounts/alice/totp",
        Some(&app.admin),
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    app.call(
        Method::GET,
        "/api/v1/me",
        Some(&fresh),
        None,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn sessions_api_keys_and_audit() {
    let app = spawn_app().await;
    let alice = app.account("alice", &[]).await;
    let sessions = app
        .call(
            Method::GET,
            "/api/v1/sessions",
            Some(&alice),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(sessions.as_array().unwrap().len(), 1);
    let key = app
        .call(
            Method::POST,
            "/api/v1/api-keys",
            Some(&alice),
            Some(json!({"name": "laptop"})),
            StatusCode::CREATED,
        )
        .await;
    let token = key["key"].as_str().unwrap();
    assert_eq!(
        app.call(Method::GET, "/api/v1/me", Some(token), None, StatusCode::OK)
            .await["username"],
        "alice"
    );
    app.call(
        Method::DELETE,
        &format!("/api/v1/api-keys/{}", key["id"].as_str().unwrap()),
        Some(&alice),
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    app.call(
        Method::GET,
        "/api/v1/me",
        Some(token),
        None,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    app.call(
        Method::POST,
        "/api/v1/auth/logout",
        Some(&alice),
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    app.call(
        Method::GET,
        "/api/v1/me",
        Some(&alice),
        None,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let events = app
        .call(
            Method::GET,
            "/api/v1/audit?account=alice",
            Some(&app.admin),
            None,
            StatusCode::OK,
        )
        .await;
    let actions: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "account.create",
            "auth.login",
            "apikey.create",
            "apikey.revoke",
            "auth.logout"
        ]
    );
}

#[tokio::test]
async fn health_openapi_and_docs() {
    let app = spawn_app().await;
    assert_eq!(
        app.request(Method::GET, "/healthz", None, None)
            .await
            .status(),
        StatusCode::OK
    );
    for probe in [
        "/readyz",
        "/healthz/live",
        "/healthz/ready",
        "/healthz/started",
    ] {
        let r = app.request(Method::GET, probe, None, None).await;
        assert_eq!(r.status(), StatusCode::OK, "{probe}");
    }
    let spec = app
        .call(Method::GET, "/openapi.json", None, None, StatusCode::OK)
        .await;
    assert_eq!(spec["openapi"], "3.1.0");
    assert_eq!(spec["info"]["license"]["identifier"], "MIT");
    // otpd's own account model: TrueNAS's profile fields belong to that dialect.
    let account = &spec["components"]["schemas"]["Account"]["properties"];
    assert!(account.get("username").is_some(), "{account}");
    assert!(account.get("profile").is_none(), "{account}");
    for path in [
        "/api/v1/auth/login",
        "/api/v1/accounts/{username}/totp/verify",
        "/api/v1/accounts/{username}/totp/enroll",
        "/api/v1/policy",
        "/api/v1/audit",
    ] {
        assert!(
            spec["paths"].get(path).is_some(),
            "{path} missing from the spec"
        );
    }
    let docs = app.request(Method::GET, "/docs/", None, None).await;
    assert_eq!(docs.status(), StatusCode::OK);
    // The page makes no outside request, under any host name: no spec validator, and every
    // script and style from the binary (issue 15).
    let init = app
        .request(Method::GET, "/docs/swagger-initializer.js", None, None)
        .await
        .text()
        .await
        .unwrap();
    assert!(init.contains(r#""validatorUrl": "none""#), "{init}");
    assert!(init.contains("/openapi.json"), "{init}");
    let page = app
        .request(Method::GET, "/docs/", None, None)
        .await
        .text()
        .await
        .unwrap();
    for attribute in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
        assert!(
            !page.contains(attribute),
            "an outside resource: {attribute}"
        );
    }
    let bundle = app
        .request(Method::GET, "/docs/swagger-ui-bundle.js", None, None)
        .await;
    assert_eq!(
        bundle.status(),
        StatusCode::OK,
        "the Swagger UI is served from the binary (offline)"
    );
    assert!(
        app.request(Method::GET, "/healthz", None, None)
            .await
            .headers()
            .contains_key("x-request-id")
    );
}

#[tokio::test]
async fn rate_limits_refuse_password_guessing_but_not_api_key_verification() {
    let app = spawn_app_with(|s| {
        s.rate_limits = Some(otpd::config::Switch(true));
        s.login_rate = Some(5);
        s.failure_rate = Some(1000);
    })
    .await;
    let alice = app.account("alice", &[]).await; // logins so far: admin, alice
    let (secret, _) = app.enroll("alice", &alice).await;
    let key = app
        .call(
            Method::POST,
            "/api/v1/api-keys",
            Some(&app.admin),
            Some(json!({"name": "svc"})),
            StatusCode::CREATED,
        )
        .await;
    let key = key["key"].as_str().unwrap().to_owned();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = app
            .request(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": "alice", "password": "wrong password"})),
            )
            .await;
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    let r = app
        .request(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "alice", "password": "wrong password"})),
        )
        .await;
    assert!(r.headers().contains_key("retry-after"));
    // A service with an API key verifies as often as it needs.
    for i in 0..30 {
        let code = if i == 0 {
            app.code(&secret)
        } else {
            "000000".into()
        };
        let r = app
            .request(
                Method::POST,
                "/api/v1/accounts/alice/totp/verify",
                Some(&key),
                Some(json!({"code": code})),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
    }
}
