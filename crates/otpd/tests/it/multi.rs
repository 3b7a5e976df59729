//! Two `otpd serve` processes on one PostgreSQL database (issue 4): started at the same
//! moment on an empty database, they migrate once and bootstrap one admin; a code is
//! accepted once across both; lockout, revocation and policy changes made through one are
//! in force on the other. PostgreSQL runs only (OTPD_TEST_DATABASE_URL).

use crate::process::ServeProcess;
use otpd_core::testing::TestDatabase;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

struct Instance {
    base: String,
    client: Client,
}

impl Instance {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let response = r.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    async fn login(&self, username: &str, password: &str) -> String {
        let (status, v) = self
            .post(
                "/api/v1/auth/login",
                None,
                json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["token"].as_str().unwrap().to_owned()
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: set OTPD_TEST_DATABASE_URL and pass --include-ignored (.ci/run does)"]
async fn two_instances_share_one_postgresql_database() {
    assert!(TestDatabase::postgres_run(), "set OTPD_TEST_DATABASE_URL");
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let db = TestDatabase::create(dirs[0].path()).await.unwrap();
    let master = otpd_core::MasterKey::generate().unwrap();
    let master = master.to_base64();
    // Both start at the same moment on the empty database.
    let spawn = |dir: &tempfile::TempDir| {
        let dir = dir.path().to_path_buf();
        let url = db.url().to_owned();
        let key = master.as_str().to_owned();
        std::thread::spawn(move || {
            ServeProcess::spawn(
                &[
                    "--data-dir".as_ref(),
                    dir.as_os_str(),
                    "--database-url".as_ref(),
                    url.as_ref(),
                ],
                &[("OTPD_MASTER_KEY", key.as_str())],
            )
        })
    };
    let (a, b) = (spawn(&dirs[0]), spawn(&dirs[1]));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    let client = crate::helpers::http_client().build().unwrap();
    let ia = Instance {
        base: a.base.clone(),
        client: client.clone(),
    };
    let ib = Instance {
        base: b.base.clone(),
        client: client.clone(),
    };

    // One bootstrap admin, its password written by exactly one instance.
    let passwords: Vec<String> = dirs
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.path().join("initial-admin-password")).ok())
        .collect();
    assert_eq!(passwords.len(), 1, "exactly one instance created the admin");
    // A session made on one instance works on the other.
    let admin = ia.login("admin", passwords[0].trim()).await;
    let (status, me) = ib
        .send(reqwest::Method::GET, "/api/v1/me", Some(&admin), None)
        .await;
    assert_eq!(
        (status, me["username"].as_str()),
        (StatusCode::OK, Some("admin"))
    );

    // 200 concurrent verifications of one valid code, alternating instances: one accepted.
    let (status, _) = ia
        .post("/api/v1/accounts", Some(&admin), json!({"username": "mia"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, p) = ib
        .post("/api/v1/accounts/mia/totp", Some(&admin), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    let secret = otp::Secret::from_base32(p["secret"].as_str().unwrap()).unwrap();
    // The provisioning step is claimed: use the next step's code (inside the ±1 window).
    let code = otp::Totp::default()
        .generate(&secret, now() + 30)
        .to_string();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        let url = format!("{base}/api/v1/accounts/mia/totp/verify");
        let client = client.clone();
        let admin = admin.clone();
        let code = code.clone();
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(admin)
                .json(&json!({"code": code}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<Value>().await.unwrap()
        }));
    }
    let mut valid = 0;
    for t in tasks {
        let v = t.await.unwrap();
        if v["valid"] == true {
            valid += 1;
        } else {
            assert!(v["reason"] == "replayed" || v["reason"] == "locked", "{v}");
        }
    }
    assert_eq!(valid, 1, "exactly one acceptance across both instances");

    // A policy change through B is in force on A at its next request ...
    let (status, policy) = ib
        .send(
            reqwest::Method::PATCH,
            "/api/v1/policy",
            Some(&admin),
            Some(json!({"max_failures": 3})),
        )
        .await;
    assert_eq!(
        (status, policy["max_failures"].as_i64()),
        (StatusCode::OK, Some(3))
    );
    // ... so three failures through A lock the account, and B enforces the lockout.
    ia.post("/api/v1/accounts", Some(&admin), json!({"username": "leo"}))
        .await;
    let (_, p) = ia
        .post("/api/v1/accounts/leo/totp", Some(&admin), json!({}))
        .await;
    let leo = otp::Secret::from_base32(p["secret"].as_str().unwrap()).unwrap();
    let good = otp::Totp::default().generate(&leo, now() + 30).to_string();
    let wrong = format!("{:06}", (good.parse::<u32>().unwrap() + 1) % 1_000_000);
    for _ in 0..3 {
        let (_, v) = ia
            .post(
                "/api/v1/accounts/leo/totp/verify",
                Some(&admin),
                json!({"code": wrong}),
            )
            .await;
        assert_eq!(v["reason"], "invalid", "{v}");
    }
    let (_, v) = ib
        .post(
            "/api/v1/accounts/leo/totp/verify",
            Some(&admin),
            json!({"code": good}),
        )
        .await;
    assert_eq!(
        (v["valid"].as_bool(), v["reason"].as_str()),
        (Some(false), Some("locked"))
    );

    // A session revoked through B is refused by A.
    ia.post(
        "/api/v1/accounts",
        Some(&admin),
        json!({"username": "sam", "password": "correct horse battery"}),
    )
    .await;
    let sam = ia.login("sam", "correct horse battery").await;
    let (status, _) = ia
        .send(reqwest::Method::GET, "/api/v1/me", Some(&sam), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = ib.post("/api/v1/auth/logout", Some(&sam), json!({})).await;
    assert!(status.is_success(), "{status}");
    let (status, _) = ia
        .send(reqwest::Method::GET, "/api/v1/me", Some(&sam), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // `otpd keys rotate` from a third process while both serve: nothing is lost.
    ia.post("/api/v1/accounts", Some(&admin), json!({"username": "kim"}))
        .await;
    let (_, p) = ib
        .post("/api/v1/accounts/kim/totp", Some(&admin), json!({}))
        .await;
    let kim = otp::Secret::from_base32(p["secret"].as_str().unwrap()).unwrap();
    let kim_codes = p["recovery_codes"].clone();
    let rotate = std::process::Command::new(env!("CARGO_BIN_EXE_otpd"))
        .args(["--data-dir"])
        .arg(dirs[0].path())
        .args(["--database-url", db.url(), "keys", "rotate", "--json"])
        .env("OTPD_MASTER_KEY", master.as_str())
        .output()
        .unwrap();
    assert!(
        rotate.status.success(),
        "{}",
        String::from_utf8_lossy(&rotate.stderr)
    );
    let report: Value = serde_json::from_slice(&rotate.stdout).unwrap();
    assert_eq!(report["deleted_keys"], 1, "{report}");
    let code = otp::Totp::default().generate(&kim, now() + 30).to_string();
    let (_, v) = ia
        .post(
            "/api/v1/accounts/kim/totp/verify",
            Some(&admin),
            json!({"code": code}),
        )
        .await;
    assert_eq!(v["valid"], true, "A opens the re-sealed secret: {v}");
    let (_, v) = ib
        .post(
            "/api/v1/accounts/kim/totp/verify",
            Some(&admin),
            json!({"code": kim_codes[0]}),
        )
        .await;
    assert_eq!(
        v["method"], "recovery_code",
        "B finds the re-sealed code: {v}"
    );

    a.stop();
    b.stop();
    drop(db);
}
