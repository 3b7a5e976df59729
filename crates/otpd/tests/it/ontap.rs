//! The ONTAP dialect (issue 16) over HTTPS with a self-signed certificate and HTTP Basic:
//! every operation and error code of `/api/security/login/totps` as a plain account and as
//! an admin, the collection conventions (filters, `fields`, paging by `_links.next`,
//! `order_by`, `return_records`), the lost-key flow, what clients read around it, and ONTAP
//! error bodies for every failure — also for arbitrary query strings and bodies.

use crate::helpers::*;
use otpd::config::Switch;
use proptest::prelude::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TOTPS: &str = "/api/security/login/totps";

/// A server over HTTPS with a self-signed certificate (and a small body limit, so that an
/// oversized body is sent whole before the answer comes).
async fn ontap_app() -> TestApp {
    spawn_app_with(|s| {
        s.tls_self_signed = Some(Switch(true));
        s.body_limit = Some(16 * 1024);
    })
    .await
}

/// One ONTAP request as `user` (password [`PASSWORD`], or the admin's), expecting `status`:
/// the JSON body and the response headers.
async fn ontap(
    app: &TestApp,
    method: Method,
    path: &str,
    user: &str,
    body: Option<Value>,
    status: StatusCode,
) -> (Value, reqwest::header::HeaderMap) {
    let password = if user == "admin" {
        app.admin_password.clone()
    } else {
        PASSWORD.to_owned()
    };
    let mut request = app
        .client
        .request(method.clone(), format!("{}{path}", app.base))
        .basic_auth(user, Some(password));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let got = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "{method} {path} as {user}: {text}");
    if got != StatusCode::NO_CONTENT {
        assert_eq!(
            headers[reqwest::header::CONTENT_TYPE],
            "application/hal+json",
            "{method} {path}"
        );
    }
    (serde_json::from_str(&text).unwrap_or(Value::Null), headers)
}

async fn svm_uuid(app: &TestApp) -> String {
    let (svms, _) = ontap(
        app,
        Method::GET,
        "/api/svm/svms",
        "admin",
        None,
        StatusCode::OK,
    )
    .await;
    svms["records"][0]["uuid"].as_str().unwrap().to_owned()
}

/// `alice` (plain), created through the native API.
async fn plain(app: &TestApp, name: &str) {
    app.account(name, &[]).await;
}

/// The caller's own profile, made with `return_records=true`: the record.
async fn create_own(app: &TestApp, name: &str) -> Value {
    let (body, headers) = ontap(
        app,
        Method::POST,
        &format!("{TOTPS}?return_records=True"),
        name,
        Some(json!({"account": {"name": name}})),
        StatusCode::CREATED,
    )
    .await;
    let uuid = svm_uuid(app).await;
    assert_eq!(
        headers[reqwest::header::LOCATION],
        format!("{TOTPS}/{uuid}/{name}").as_str()
    );
    assert_eq!(body["num_records"], json!(1));
    body["records"][0].clone()
}

async fn verify(app: &TestApp, name: &str, code: &str) -> Value {
    app.call(
        Method::POST,
        &format!("/api/v1/accounts/{name}/totp/verify"),
        Some(&app.admin.clone()),
        Some(json!({ "code": code })),
        StatusCode::OK,
    )
    .await
}

fn secret_of(record: &Value) -> otp::Secret {
    otp::Secret::from_base32(record["secret_key"].as_str().unwrap()).unwrap()
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no ONTAP error: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_creates_reads_comments_and_cannot_weaken_its_profile() {
    let app = ontap_app().await;
    plain(&app, "alice").await;
    plain(&app, "bobby").await;
    let uuid = svm_uuid(&app).await;

    let created = create_own(&app, "alice").await;
    let secret = secret_of(&created);
    assert!(
        created["install_url"]
            .as_str()
            .unwrap()
            .contains(created["secret_key"].as_str().unwrap())
    );
    assert_eq!(created["owner"]["uuid"], json!(uuid));
    assert_eq!(created["account"]["name"], json!("alice"));
    assert_eq!(created["sha_fingerprint"].as_str().unwrap().len(), 64);
    // The disclosed code is the current one, and its step is claimed.
    let shown = created["verification_code"].as_str().unwrap();
    assert_eq!(shown, app.code(&secret));
    let replay = verify(&app, "alice", shown).await;
    assert_eq!(replay["valid"], json!(false), "{replay}");
    app.clock.advance(30);
    assert_eq!(
        verify(&app, "alice", &app.code(&secret)).await["valid"],
        json!(true)
    );
    let emergency = created["emergency_codes"][0].as_str().unwrap();
    let used = verify(&app, "alice", emergency).await;
    assert_eq!(used["method"], json!("recovery_code"), "{used}");
    assert_eq!(used["valid"], json!(true), "{used}");

    // A second profile while one is enabled: ONTAP's duplicate.
    let (dup, _) = ontap(
        &app,
        Method::POST,
        TOTPS,
        "alice",
        Some(json!({"account": {"name": "alice"}})),
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(error_code(&dup), "1");

    // Without return_records, no secret in the answer.
    let (quiet, headers) = ontap(
        &app,
        Method::POST,
        TOTPS,
        "bobby",
        Some(
            json!({"account": {"name": "bobby"}, "comment": "desk token", "owner": {"uuid": uuid}}),
        ),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(quiet, json!({}));
    assert!(headers.contains_key(reqwest::header::LOCATION));

    // The record, never the secret.
    let one = format!("{TOTPS}/{uuid}/alice");
    let (record, _) = ontap(&app, Method::GET, &one, "alice", None, StatusCode::OK).await;
    assert_eq!(record["enabled"], json!(true));
    assert_eq!(record["scope"], json!("cluster"));
    assert_eq!(record["sha_fingerprint"], created["sha_fingerprint"]);
    for hidden in [
        "secret_key",
        "install_url",
        "verification_code",
        "emergency_codes",
    ] {
        assert!(
            record.get(hidden).is_none(),
            "{hidden} shown again: {record}"
        );
    }
    let (fields, _) = ontap(
        &app,
        Method::GET,
        &format!("{one}?fields=comment"),
        "alice",
        None,
        StatusCode::OK,
    )
    .await;
    assert!(fields.get("enabled").is_none(), "{fields}");
    assert_eq!(fields["account"]["name"], json!("alice"));

    // Unknown profiles and owners: ONTAP's "entry doesn't exist", exactly.
    let (missing, _) = ontap(
        &app,
        Method::GET,
        &format!("{TOTPS}/{uuid}/nobody"),
        "admin",
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(
        missing,
        json!({"error": {"message": "entry doesn't exist", "code": "4", "target": "uuid"}})
    );
    ontap(
        &app,
        Method::GET,
        &format!("{TOTPS}/00000000-0000-0000-0000-000000000000/alice"),
        "alice",
        None,
        StatusCode::NOT_FOUND,
    )
    .await;

    // The comment is the user's; the status is not.
    ontap(
        &app,
        Method::PATCH,
        &one,
        "alice",
        Some(json!({"comment": "phone"})),
        StatusCode::OK,
    )
    .await;
    let (record, _) = ontap(&app, Method::GET, &one, "alice", None, StatusCode::OK).await;
    assert_eq!(record["comment"], json!("phone"));
    let (refused, _) = ontap(
        &app,
        Method::PATCH,
        &one,
        "alice",
        Some(json!({"enabled": false})),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(error_code(&refused), "144834564");
    assert_eq!(
        refused["error"]["message"],
        json!("Only users with the admin role are allowed to modify the TOTP status.")
    );
    // The seed's own example sends "" for enabled.
    let (bad, _) = ontap(
        &app,
        Method::PATCH,
        &one,
        "admin",
        Some(json!({"enabled": ""})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(error_code(&bad), "144834565");
    assert_eq!(
        bad["error"]["message"],
        json!("Invalid option for the field -enabled")
    );
    let (unknown, _) = ontap(
        &app,
        Method::PATCH,
        &one,
        "alice",
        Some(json!({"colour": "red"})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(error_code(&unknown), "2");
    assert_eq!(unknown["error"]["target"], json!("colour"));
    let (owner, _) = ontap(
        &app,
        Method::PATCH,
        &one,
        "admin",
        Some(json!({"owner": {"name": "x"}})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(owner["error"]["target"], json!("owner"));
    plain(&app, "carol").await;
    let (none, _) = ontap(
        &app,
        Method::PATCH,
        &format!("{TOTPS}/{uuid}/carol"),
        "admin",
        Some(json!({"enabled": true})),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(error_code(&none), "144834566");
    assert_eq!(
        none["error"]["message"],
        json!("TOTP is not configured for the user")
    );
    let (empty, _) = ontap(
        &app,
        Method::PATCH,
        &format!("{TOTPS}/{uuid}/carol"),
        "admin",
        Some(json!({})),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(error_code(&empty), "144834566");

    // A plain account reads no one else's profile.
    let (other, _) = ontap(
        &app,
        Method::GET,
        &format!("{TOTPS}/{uuid}/bobby"),
        "alice",
        None,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(error_code(&other), "6");

    // Deleting an active second factor with a password alone is refused, and changes nothing.
    let (refused, _) = ontap(
        &app,
        Method::DELETE,
        &one,
        "alice",
        Some(json!({})),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(error_code(&refused), "6");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("second factor")
    );
    ontap(&app, Method::GET, &one, "alice", None, StatusCode::OK).await;
    // With a current code in X-OTP-Code it goes.
    app.clock.advance(30);
    let response = app
        .client
        .delete(format!("{}{one}", app.base))
        .basic_auth("alice", Some(PASSWORD))
        .header("X-OTP-Code", app.code(&secret))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    ontap(
        &app,
        Method::GET,
        &one,
        "alice",
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_switch_off_and_delete_but_never_create_for_others() {
    let app = ontap_app().await;
    plain(&app, "alice").await;
    let uuid = svm_uuid(&app).await;

    // "Admin cannot create TOTP profiles for any users": refused, nothing made.
    let (refused, _) = ontap(
        &app,
        Method::POST,
        &format!("{TOTPS}?return_records=true"),
        "admin",
        Some(json!({"account": {"name": "alice"}})),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(error_code(&refused), "6");
    let one = format!("{TOTPS}/{uuid}/alice");
    ontap(
        &app,
        Method::GET,
        &one,
        "admin",
        None,
        StatusCode::NOT_FOUND,
    )
    .await;

    // The lost-key flow: the admin switches the profile off, the user deletes it with its
    // password alone and creates a new one; the new key verifies, the old does not.
    let old = secret_of(&create_own(&app, "alice").await);
    ontap(
        &app,
        Method::PATCH,
        &one,
        "admin",
        Some(json!({"enabled": false})),
        StatusCode::OK,
    )
    .await;
    let (record, _) = ontap(&app, Method::GET, &one, "alice", None, StatusCode::OK).await;
    assert_eq!(record["enabled"], json!(false));
    ontap(
        &app,
        Method::DELETE,
        &one,
        "alice",
        Some(json!({})),
        StatusCode::OK,
    )
    .await;
    app.clock.advance(30);
    let new = secret_of(&create_own(&app, "alice").await);
    app.clock.advance(30);
    assert_eq!(
        verify(&app, "alice", &app.code(&old)).await["valid"],
        json!(false)
    );
    assert_eq!(
        verify(&app, "alice", &app.code(&new)).await["valid"],
        json!(true)
    );

    // Switched off again, a new POST replaces it without a DELETE.
    ontap(
        &app,
        Method::PATCH,
        &one,
        "admin",
        Some(json!({"enabled": false})),
        StatusCode::OK,
    )
    .await;
    let newer = create_own(&app, "alice").await;
    assert_ne!(secret_of(&newer), new);

    // An admin deletes any profile (the core's reset: audited).
    ontap(
        &app,
        Method::DELETE,
        &one,
        "admin",
        Some(json!({})),
        StatusCode::OK,
    )
    .await;
    ontap(
        &app,
        Method::GET,
        &one,
        "admin",
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    let audit = app
        .call(
            Method::GET,
            "/api/v1/audit?account=alice&action=totp.remove",
            Some(&app.admin.clone()),
            None,
            StatusCode::OK,
        )
        .await;
    let events = audit.as_array().unwrap_or_else(|| panic!("{audit}"));
    assert!(
        events
            .iter()
            .any(|e| e["door"] == json!("ontap") && e["actor"] == json!("admin")),
        "{audit}"
    );
}

/// The names a query of the collection answers (as the admin).
async fn filtered(app: &TestApp, q: &str) -> Vec<String> {
    let (v, _) = ontap(
        app,
        Method::GET,
        &format!("{TOTPS}?{q}"),
        "admin",
        None,
        StatusCode::OK,
    )
    .await;
    names(v["records"].as_array().unwrap())
}

/// Every page of a collection, following `_links.next.href` verbatim.
async fn walk(app: &TestApp, first: &str, user: &str) -> (Vec<Value>, usize) {
    let mut records = Vec::new();
    let mut pages = 0;
    let mut next = Some(first.to_owned());
    while let Some(href) = next {
        let (page, _) = ontap(app, Method::GET, &href, user, None, StatusCode::OK).await;
        pages += 1;
        let got = page["records"].as_array().unwrap();
        assert_eq!(page["num_records"], json!(got.len()));
        records.extend(got.iter().cloned());
        next = page["_links"]["next"]["href"].as_str().map(str::to_owned);
        assert!(pages < 50, "paging does not end");
    }
    (records, pages)
}

fn names(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["account"]["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collection_follows_ontaps_query_conventions() {
    let app = ontap_app().await;
    let users = ["user1", "user2", "user3", "user4", "user5", "other"];
    for u in users {
        plain(&app, u).await;
        create_own(&app, u).await;
    }
    plain(&app, "noprofile").await;
    let uuid = svm_uuid(&app).await;
    ontap(
        &app,
        Method::PATCH,
        &format!("{TOTPS}/{uuid}/user3"),
        "admin",
        Some(json!({"enabled": false, "comment": "lost"})),
        StatusCode::OK,
    )
    .await;

    // Without fields: the key fields and links only.
    let (all, _) = ontap(&app, Method::GET, TOTPS, "admin", None, StatusCode::OK).await;
    assert_eq!(all["num_records"], json!(6));
    let first = &all["records"][0];
    assert_eq!(first["account"]["name"], json!("other"));
    assert_eq!(first["owner"]["uuid"], json!(uuid));
    assert_eq!(first["owner"]["name"], json!("otpd"));
    assert!(
        first["_links"]["self"]["href"]
            .as_str()
            .unwrap()
            .ends_with("/other")
    );
    assert!(
        first.get("enabled").is_none() && first.get("comment").is_none(),
        "{first}"
    );
    assert_eq!(all["_links"]["self"]["href"], json!(TOTPS));
    assert!(all["_links"].get("next").is_none());

    // fields=* and a list of fields.
    let (star, _) = ontap(
        &app,
        Method::GET,
        &format!("{TOTPS}?fields=*"),
        "admin",
        None,
        StatusCode::OK,
    )
    .await;
    let r = &star["records"][0];
    for f in ["enabled", "comment", "scope", "sha_fingerprint"] {
        assert!(r.get(f).is_some(), "{f} missing from {r}");
    }
    let (some, _) = ontap(
        &app,
        Method::GET,
        &format!("{TOTPS}?fields=enabled,comment"),
        "admin",
        None,
        StatusCode::OK,
    )
    .await;
    assert!(
        some["records"][0].get("enabled").is_some() && some["records"][0].get("scope").is_none()
    );

    // Filters: wildcards, alternatives, booleans in any case, negation.
    assert_eq!(
        filtered(&app, "account.name=user*").await,
        ["user1", "user2", "user3", "user4", "user5"]
    );
    assert_eq!(
        filtered(&app, "account.name=user1|other").await,
        ["other", "user1"]
    );
    assert_eq!(filtered(&app, "account.name=USER2").await, ["user2"]);
    assert_eq!(filtered(&app, "enabled=False").await, ["user3"]);
    assert_eq!(filtered(&app, "comment=lo*").await, ["user3"]);
    assert_eq!(filtered(&app, "account.name=!user*").await, ["other"]);
    assert_eq!(filtered(&app, &format!("owner.uuid={uuid}")).await.len(), 6);
    assert!(filtered(&app, "owner.name=elsewhere").await.is_empty());
    assert_eq!(
        filtered(&app, "scope=cluster&account.name=*5").await,
        ["user5"]
    );

    // order_by, both ways.
    assert_eq!(
        filtered(&app, "order_by=account.name%20desc").await,
        ["user5", "user4", "user3", "user2", "user1", "other"]
    );
    assert_eq!(
        filtered(&app, "order_by=account.name+asc&max_records=2").await,
        ["other", "user1"]
    );

    // Paging: max_records with _links.next followed verbatim, keeping the other parameters.
    let (records, pages) = walk(
        &app,
        &format!("{TOTPS}?max_records=2&fields=enabled"),
        "admin",
    )
    .await;
    assert_eq!(pages, 3);
    assert_eq!(
        names(&records),
        ["other", "user1", "user2", "user3", "user4", "user5"]
    );
    assert!(records.iter().all(|r| r.get("enabled").is_some()));
    let (down, _) = walk(
        &app,
        &format!("{TOTPS}?max_records=4&order_by=account.name%20desc&account.name=user*"),
        "admin",
    )
    .await;
    assert_eq!(names(&down), ["user5", "user4", "user3", "user2", "user1"]);

    // return_records=false: the count only.
    let (count, _) = ontap(
        &app,
        Method::GET,
        &format!("{TOTPS}?return_records=false&account.name=user*"),
        "admin",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(count["num_records"], json!(5));
    assert!(count.get("records").is_none());

    // A plain account sees its own profile only.
    let (own, _) = ontap(&app, Method::GET, TOTPS, "user2", None, StatusCode::OK).await;
    assert_eq!(names(own["records"].as_array().unwrap()), ["user2"]);
    let (none, _) = ontap(&app, Method::GET, TOTPS, "noprofile", None, StatusCode::OK).await;
    assert_eq!(none["num_records"], json!(0));

    // Bad parameters: 400 naming them, in ONTAP's body.
    for (query, target) in [
        ("colour=red", "colour"),
        ("max_records=0", "max_records"),
        ("max_records=many", "max_records"),
        ("return_records=maybe", "return_records"),
        ("return_timeout=121", "return_timeout"),
        ("fields=secret_key", "fields"),
        ("order_by=comment", "order_by"),
        ("order_by=account.name%20sideways", "order_by"),
        ("enabled=maybe", "enabled"),
        ("enabled=true|!perhaps", "enabled"),
        ("account.name=%FF", "query"),
        (
            "comment=a&comment=a&comment=a&comment=a&comment=a&comment=a&comment=a&comment=a&\
             comment=a&comment=a&comment=a&comment=a&comment=a&comment=a&comment=a&comment=a&\
             comment=a",
            "comment",
        ),
    ] {
        let (e, _) = ontap(
            &app,
            Method::GET,
            &format!("{TOTPS}?{query}"),
            "admin",
            None,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(e["error"]["target"], json!(target), "{query}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_svms_and_the_cluster() {
    let app = ontap_app().await;
    plain(&app, "alice").await;
    plain(&app, "bobby").await;
    app.account("reader", &["readonly_admin"]).await;
    create_own(&app, "alice").await;
    let uuid = svm_uuid(&app).await;

    let (svms, _) = ontap(
        &app,
        Method::GET,
        "/api/svm/svms",
        "alice",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(svms["num_records"], json!(1));
    assert_eq!(svms["records"][0]["name"], json!("otpd"));
    assert!(
        svms["records"][0].get("state").is_none(),
        "key fields only: {svms}"
    );
    let (svm, _) = ontap(
        &app,
        Method::GET,
        &format!("/api/svm/svms/{uuid}"),
        "alice",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(svm["state"], json!("running"));
    ontap(
        &app,
        Method::GET,
        "/api/svm/svms/not-a-uuid",
        "alice",
        None,
        StatusCode::NOT_FOUND,
    )
    .await;

    let (cluster, _) = ontap(
        &app,
        Method::GET,
        "/api/cluster",
        "bobby",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(cluster["version"]["generation"], json!(9));
    assert_eq!(cluster["version"]["major"], json!(13));
    assert_eq!(cluster["version"]["minor"], json!(1));
    assert!(
        cluster["version"]["full"]
            .as_str()
            .unwrap()
            .starts_with("NetApp Release 9.13.1")
    );
    assert_eq!(cluster["uuid"].as_str().unwrap().len(), 36);

    // Accounts: admins (read-only included) see all, with TOTP as the second method where
    // there is a profile; a plain account sees itself.
    let (accounts, _) = ontap(
        &app,
        Method::GET,
        "/api/security/accounts?fields=*",
        "reader",
        None,
        StatusCode::OK,
    )
    .await;
    let listed = accounts["records"].as_array().unwrap();
    let find = |name: &str| {
        listed
            .iter()
            .find(|a| a["name"] == json!(name))
            .unwrap()
            .clone()
    };
    assert_eq!(listed.len(), 4, "{accounts}");
    assert_eq!(
        find("alice")["applications"][0]["second_authentication_method"],
        json!("totp")
    );
    assert_eq!(
        find("bobby")["applications"][0]["second_authentication_method"],
        json!("none")
    );
    assert_eq!(find("admin")["role"]["name"], json!("admin"));
    assert_eq!(find("reader")["role"]["name"], json!("readonly"));
    let (totp_users, _) = ontap(
        &app,
        Method::GET,
        "/api/security/accounts?applications.second_authentication_method=totp",
        "admin",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(totp_users["num_records"], json!(1));
    let (own, _) = ontap(
        &app,
        Method::GET,
        "/api/security/accounts",
        "bobby",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(own["num_records"], json!(1));
    assert_eq!(own["records"][0]["name"], json!("bobby"));
    let (one, _) = ontap(
        &app,
        Method::GET,
        &format!("/api/security/accounts/{uuid}/alice"),
        "alice",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(one["scope"], json!("cluster"));
    ontap(
        &app,
        Method::GET,
        &format!("/api/security/accounts/{uuid}/alice"),
        "bobby",
        None,
        StatusCode::FORBIDDEN,
    )
    .await;

    // A 2FA admin refused for a full admin's profile is refused as such, not as a non-admin.
    app.account("tfa", &["twofactor_admin"]).await;
    let (admin_record, _) = ontap(
        &app,
        Method::POST,
        &format!("{TOTPS}?return_records=true"),
        "admin",
        Some(json!({"account": {"name": "admin"}})),
        StatusCode::CREATED,
    )
    .await;
    assert!(admin_record["records"][0]["secret_key"].is_string());
    let (refused, _) = ontap(
        &app,
        Method::PATCH,
        &format!("{TOTPS}/{uuid}/admin"),
        "tfa",
        Some(json!({"enabled": false})),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(error_code(&refused), "6");

    // A read-only admin changes nothing.
    let (refused, _) = ontap(
        &app,
        Method::PATCH,
        &format!("{TOTPS}/{uuid}/alice"),
        "reader",
        Some(json!({"enabled": false})),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(error_code(&refused), "144834564");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_is_an_ontap_error_body() {
    let app = ontap_app().await;
    plain(&app, "alice").await;
    let url = |path: &str| format!("{}{path}", app.base);

    // No credentials, and wrong ones: 401 with WWW-Authenticate: Basic.
    for request in [
        app.client.get(url(TOTPS)),
        app.client
            .get(url(TOTPS))
            .basic_auth("alice", Some("wrong password")),
        app.client
            .get(url(TOTPS))
            .basic_auth("nobody", Some(PASSWORD)),
        app.client
            .get(url(TOTPS))
            .header("Authorization", "Basic !!!"),
        app.client.get(url(TOTPS)).bearer_auth(app.admin.clone()),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(
            response.headers()[reqwest::header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Basic")
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(error_code(&body), "6");
    }

    let send = |method: Method, path: &str, body: &'static str| {
        app.client
            .request(method, url(path))
            .basic_auth("alice", Some(PASSWORD))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    for (method, path, body, status, code) in [
        (
            Method::POST,
            TOTPS,
            "{not json",
            StatusCode::BAD_REQUEST,
            "2",
        ),
        (Method::POST, TOTPS, "[1]", StatusCode::BAD_REQUEST, "2"),
        (
            Method::POST,
            TOTPS,
            r#"{"account":{"name":"alice"},"account":{"name":"x"}}"#,
            StatusCode::BAD_REQUEST,
            "2",
        ),
        (
            Method::POST,
            TOTPS,
            r#"{"account":{"name":"alice"},"secret_key":"AAAA"}"#,
            StatusCode::BAD_REQUEST,
            "2",
        ),
        (Method::POST, TOTPS, "{}", StatusCode::BAD_REQUEST, "2"),
        (
            Method::POST,
            TOTPS,
            r#"{"account":{"name":"alice"},"comment":"a\u0007b"}"#,
            StatusCode::BAD_REQUEST,
            "2",
        ),
        (
            Method::POST,
            TOTPS,
            r#"{"account":{"name":"alice"},"comment":"evil\u202egnp.exe"}"#,
            StatusCode::BAD_REQUEST,
            "2",
        ),
        (
            Method::GET,
            "/api/security/nothing/here",
            "",
            StatusCode::NOT_FOUND,
            "4",
        ),
        (
            Method::GET,
            "/api/svm/volumes",
            "",
            StatusCode::NOT_FOUND,
            "4",
        ),
        (Method::GET, "/api/security", "", StatusCode::NOT_FOUND, "4"),
        (
            Method::PUT,
            TOTPS,
            "{}",
            StatusCode::METHOD_NOT_ALLOWED,
            "3",
        ),
        (
            Method::DELETE,
            "/api/cluster",
            "",
            StatusCode::METHOD_NOT_ALLOWED,
            "3",
        ),
    ] {
        let response = send(method.clone(), path, body).await.unwrap();
        assert_eq!(response.status(), status, "{method} {path} {body}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(error_code(&body), code, "{method} {path}: {body}");
    }
    // Nothing was created by any of them.
    let (own, _) = ontap(&app, Method::GET, TOTPS, "alice", None, StatusCode::OK).await;
    assert_eq!(own["num_records"], json!(0));

    // An oversized body.
    let response = app
        .client
        .post(url(TOTPS))
        .basic_auth("alice", Some(PASSWORD))
        .body(vec![b' '; 20 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "2");

    // application/hal+json requests are fine too.
    let response = app
        .client
        .post(url(&format!("{TOTPS}?return_records=true")))
        .basic_auth("alice", Some(PASSWORD))
        .header("Content-Type", "application/hal+json")
        .body(r#"{"account":{"name":"alice"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);

    // The native API keeps its own 404s.
    let response = app.client.get(url("/api/v1/nothing")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.headers()[reqwest::header::CONTENT_TYPE],
        "application/problem+json"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_password_is_refused_at_the_next_request() {
    let app = ontap_app().await;
    plain(&app, "alice").await;
    for _ in 0..3 {
        ontap(
            &app,
            Method::GET,
            "/api/cluster",
            "alice",
            None,
            StatusCode::OK,
        )
        .await;
    }
    app.call(
        Method::PUT,
        "/api/v1/accounts/alice/password",
        Some(&app.admin.clone()),
        Some(json!({"password": "another long password"})),
        StatusCode::NO_CONTENT,
    )
    .await;
    ontap(
        &app,
        Method::GET,
        "/api/cluster",
        "alice",
        None,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_basic_requests_spend_the_address_budget_in_ontaps_format() {
    let app = spawn_app_with(|s| {
        s.rate_limits = Some(Switch(true));
        s.failure_rate = Some(3);
    })
    .await;
    let url = format!("{}/api/cluster", app.base);
    for _ in 0..3 {
        let r = app
            .client
            .get(&url)
            .basic_auth("admin", Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = app
        .client
        .get(&url)
        .basic_auth("admin", Some(app.admin_password.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key(reqwest::header::RETRY_AFTER));
    let body: Value = r.json().await.unwrap();
    assert_eq!(error_code(&body), "8");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_password_guesses_cannot_outrun_the_login_budget() {
    let app = spawn_app_with(|s| {
        s.rate_limits = Some(Switch(true));
        s.login_rate = Some(5);
        s.failure_rate = Some(1000);
    })
    .await;
    app.account("victim", &[]).await;
    let url = format!("{}/api/cluster", app.base);
    // A client repeating its good password pays one attempt, not fifty.
    for _ in 0..50 {
        let r = app
            .client
            .get(&url)
            .basic_auth("victim", Some(PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    // Forty guesses at once: only the attempts left in the budget are checked.
    let guesses = (0..40).map(|i| {
        app.client
            .get(&url)
            .basic_auth("victim", Some(format!("guess {i}")))
            .send()
    });
    let answers = futures_util::future::join_all(guesses).await;
    let status = |code| {
        answers
            .iter()
            .filter(|r| r.as_ref().unwrap().status() == code)
            .count()
    };
    let checked = status(StatusCode::UNAUTHORIZED);
    assert!(
        checked <= 4,
        "{checked} guesses checked, the budget had 4 left"
    );
    assert_eq!(checked + status(StatusCode::TOO_MANY_REQUESTS), 40);
    let audit = app
        .call(
            Method::GET,
            "/api/v1/audit?account=victim&action=auth.password",
            Some(&app.admin.clone()),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(audit.as_array().unwrap().len(), checked, "{audit}");
    // The good password, remembered, still works from that address.
    let r = app
        .client
        .get(&url)
        .basic_auth("victim", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dialect_can_be_switched_off() {
    let app = spawn_app_with(|s| s.ontap = Some(Switch(false))).await;
    let response = app
        .client
        .get(format!("{}/api/cluster", app.base))
        .basic_auth("admin", Some(app.admin_password.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.headers()[reqwest::header::CONTENT_TYPE],
        "application/problem+json"
    );
}

/// Arbitrary query strings and bodies on every ONTAP route: never a panic or a 500,
/// always a well-formed answer, and every error in ONTAP's body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_queries_and_bodies_get_ontap_answers() {
    let app = ontap_app().await;
    plain(&app, "alice").await;
    let uuid = svm_uuid(&app).await;
    let handle = tokio::runtime::Handle::current();
    let strategy = (
        "[a-z_.*|!%=&+0-9A-F ]{0,40}",
        proptest::collection::vec(any::<u8>(), 0..64),
        "\\{(\"[a-z_.]{0,10}\":(\"[a-z]{0,5}\"|true|1|\\{\\}|null),?){0,3}\\}",
        0usize..6,
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    });
    let result = tokio::task::block_in_place(|| {
        runner.run(&strategy, |(query, body, json_body, route)| {
            handle.block_on(async {
                let (method, path) = match route {
                    0 => (Method::GET, TOTPS.to_owned()),
                    1 => (Method::POST, TOTPS.to_owned()),
                    2 => (Method::PATCH, format!("{TOTPS}/{uuid}/alice")),
                    3 => (Method::DELETE, format!("{TOTPS}/{uuid}/alice")),
                    4 => (Method::GET, "/api/security/accounts".to_owned()),
                    _ => (Method::GET, format!("{TOTPS}/{uuid}/alice")),
                };
                let query = query.replace(' ', "%20");
                for payload in [body.clone(), json_body.clone().into_bytes()] {
                    let response = app
                        .client
                        .request(method.clone(), format!("{}{path}?{query}", app.base))
                        .basic_auth("alice", Some(PASSWORD))
                        .body(payload)
                        .send()
                        .await
                        .unwrap();
                    let status = response.status();
                    let text = response.text().await.unwrap();
                    assert!(
                        !status.is_server_error(),
                        "{method} {path}?{query}: {status} {text}"
                    );
                    let value: Value =
                        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
                    if !status.is_success() {
                        assert!(
                            value["error"]["code"].is_string()
                                && value["error"]["message"].is_string(),
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

/// NetApp's own Python client (`netapp-ontap`, `scripts/ontap_client.py`) against a real
/// `otpd serve --tls-self-signed on`: `HostConnection(host, user, password, verify=False)`,
/// Cluster, Svm and every Totp call, ONTAP's error surfacing as `NetAppRestError`, codes
/// computed by pyotp verified through the native API. `.ci/run` installs the modules and
/// passes --include-ignored, so CI cannot skip it.
#[tokio::test]
#[ignore = "needs python3 with netapp-ontap and pyotp: pass --include-ignored (.ci/run does)"]
async fn ontap_python_client() {
    crate::process::run_python_client(
        "ontap_client.py",
        "netapp_ontap, pyotp",
        &["--tls-self-signed", "on"],
        |server, password| {
            let address: std::net::SocketAddr =
                server.base.trim_start_matches("http://").parse().unwrap();
            vec![
                address.ip().to_string(),
                address.port().to_string(),
                password.to_owned(),
            ]
        },
    )
    .await;
}
