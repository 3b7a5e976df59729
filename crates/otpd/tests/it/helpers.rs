//! `spawn_app`: a real server on a free port with its own data directory and clock.

use otpd::config::{CommonArgs, ServeArgs, Settings, Switch};
use otpd_core::{Clock, ManualClock};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

/// 2026-11-22 00:00:15 UTC.
pub const T0: i64 = 1_795_305_615;
pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub base: String,
    /// `http://…` of `/metrics`'s own listener (`--metrics-listen`), when it has one.
    pub metrics_base: Option<String>,
    pub client: Client,
    pub clock: ManualClock,
    /// Kept so the data directory lives as long as the server.
    _dir: tempfile::TempDir,
    pub admin: String,
    /// The initial administrator's password.
    pub admin_password: String,
    _shutdown: tokio::sync::oneshot::Sender<()>,
    /// Dropped last: a PostgreSQL test database is dropped when the test ends.
    db: otpd_core::testing::TestDatabase,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A reqwest client builder: reqwest speaks TLS with rustls here, on the ring provider the
/// server uses (installed once per test binary).
pub fn http_client() -> reqwest::ClientBuilder {
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    Client::builder()
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut ServeArgs)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let db = otpd_core::testing::TestDatabase::create(dir.path())
        .await
        .unwrap();
    let common = CommonArgs {
        data_dir: Some(dir.path().to_path_buf()),
        database_url: Some(db.url().to_owned()),
        ..CommonArgs::default()
    };
    let mut serve = ServeArgs {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        rate_limits: Some(Switch(false)),
        ..ServeArgs::default()
    };
    tweak(&mut serve);
    let settings = Settings::resolve(&common, &serve).unwrap();
    let settings_tls = settings.tls.is_some();
    let clock = ManualClock::new(T0);
    let server =
        otpd::server::Server::build_with_clock(settings, Arc::new(clock.clone()) as Arc<dyn Clock>)
            .await
            .unwrap();
    let address = server.local_addr().unwrap();
    let metrics_base = server
        .metrics_addr()
        .unwrap()
        .map(|a| format!("http://{a}"));
    // With TLS on, every request goes over HTTPS to `localhost`, trusting only the
    // certificate the server made.
    let (base, client) = if settings_tls {
        let cert = std::fs::read(dir.path().join("tls-cert.pem")).unwrap();
        let client = http_client()
            .tls_certs_only([reqwest::Certificate::from_pem(&cert).unwrap()])
            .resolve("localhost", address)
            .build()
            .unwrap();
        (format!("https://localhost:{}", address.port()), client)
    } else {
        (format!("http://{address}"), http_client().build().unwrap())
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    let password = std::fs::read_to_string(dir.path().join("initial-admin-password")).unwrap();
    let mut app = TestApp {
        base,
        metrics_base,
        client,
        clock,
        _dir: dir,
        admin: String::new(),
        admin_password: password.trim().to_owned(),
        _shutdown: tx,
        db,
    };
    app.admin = app.login("admin", &app.admin_password.clone()).await;
    app
}

impl TestApp {
    /// The server's data directory (for running the CLI beside it).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// The server's database URL (for running the CLI beside it).
    pub fn database_url(&self) -> &str {
        self.db.url()
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    /// A request expected to answer `status`; returns the JSON body (or Null).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        status: StatusCode,
    ) -> Value {
        let response = self.request(method.clone(), path, token, body).await;
        let got = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(got, status, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let v = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": username, "password": password})),
                StatusCode::OK,
            )
            .await;
        v["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token: {v}"))
            .to_owned()
    }

    /// Creates a plain or admin account and returns a session token for it.
    pub async fn account(&self, username: &str, roles: &[&str]) -> String {
        self.call(
            Method::POST,
            "/api/v1/accounts",
            Some(&self.admin.clone()),
            Some(json!({"username": username, "password": PASSWORD, "roles": roles})),
            StatusCode::CREATED,
        )
        .await;
        self.login(username, PASSWORD).await
    }

    /// Enrolls and confirms through the API as `token`; returns the secret and recovery
    /// codes. The clock then moves past the confirming step.
    pub async fn enroll(&self, username: &str, token: &str) -> (otp::Secret, Vec<String>) {
        let e = self
            .call(
                Method::POST,
                &format!("/api/v1/accounts/{username}/totp/enroll"),
                Some(token),
                Some(json!({})),
                StatusCode::OK,
            )
            .await;
        let secret = otp::Secret::from_base32(e["secret"].as_str().unwrap()).unwrap();
        let uri = otp::KeyUri::parse(e["provisioning_uri"].as_str().unwrap()).unwrap();
        assert_eq!(uri.secret(), &secret);
        let c = self
            .call(
                Method::POST,
                &format!("/api/v1/accounts/{username}/totp/confirm"),
                Some(token),
                Some(json!({"code": self.code(&secret)})),
                StatusCode::OK,
            )
            .await;
        let codes = c["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        self.clock.advance(30);
        (secret, codes)
    }

    pub fn code(&self, secret: &otp::Secret) -> String {
        otp::Totp::default()
            .generate(secret, u64::try_from(self.clock.now()).unwrap())
            .to_string()
    }

    /// A code that is wrong now: not the current one.
    pub fn wrong_code(&self, secret: &otp::Secret) -> &'static str {
        if self.code(secret) == "000000" {
            "111111"
        } else {
            "000000"
        }
    }

    /// Logs in with password and second factor; returns the session token.
    pub async fn login_2fa(&self, username: &str, secret: &otp::Secret) -> String {
        let v = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": username, "password": PASSWORD})),
                StatusCode::OK,
            )
            .await;
        assert_eq!(v["second_factor_required"], json!(true), "{v}");
        let t = self
            .call(
                Method::POST,
                "/api/v1/auth/second-factor",
                None,
                Some(json!({"challenge": v["challenge"], "code": self.code(secret)})),
                StatusCode::OK,
            )
            .await;
        self.clock.advance(30);
        t["token"].as_str().unwrap().to_owned()
    }
}
