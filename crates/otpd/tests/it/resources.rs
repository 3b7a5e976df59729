//! Issue 14 §7: what a client with many sockets, a spent failure budget or a trace-level
//! log gets — connection limits and deadlines, rate limits that spare API keys and
//! probes, owner-only files, and logs without credentials. The deadlines are real time
//! (sockets), set to one second here.

use crate::helpers::*;
use crate::process::ServeProcess;
use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn address(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the socket; the time it took, or `None` after `limit`.
type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Sends one JSON-RPC request and returns the next text answer.
async fn send(ws: &mut Ws, request: Value) -> Value {
    let frame = tokio_tungstenite::tungstenite::Message::text(request.to_string());
    ws.send(frame).await.unwrap();
    loop {
        if let tokio_tungstenite::tungstenite::Message::Text(t) = ws.next().await.unwrap().unwrap()
        {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

async fn closed_within(socket: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit, socket.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue, // a response (e.g. 408), then the close
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_connections_are_closed() {
    let app = spawn_app_with(|s| {
        s.header_read_timeout = Some(1);
        s.idle_timeout = Some(2);
    })
    .await;
    // Connects and says nothing.
    let mut silent = TcpStream::connect(address(&app)).await.unwrap();
    // Sends half a request head.
    let mut half = TcpStream::connect(address(&app)).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // One request, then idle on keep-alive.
    let mut idle = TcpStream::connect(address(&app)).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Speaks HTTP/2 (preface and an empty SETTINGS frame), then nothing: an HTTP/2 client
    // may ignore the GOAWAY an idle connection gets, so the socket is dropped after it.
    let mut h2 = TcpStream::connect(address(&app)).await.unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    for (name, socket) in [
        ("silent", &mut silent),
        ("half-sent", &mut half),
        ("idle keep-alive", &mut idle),
        ("idle HTTP/2", &mut h2),
    ] {
        let took = closed_within(socket, Duration::from_secs(10)).await;
        assert!(took.is_some(), "the {name} connection was never closed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address_are_capped() {
    let app = spawn_app_with(|s| s.max_connections_per_address = Some(20)).await;
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut socket = TcpStream::connect(address(&app)).await.unwrap();
        // A request in progress keeps each one open and counted.
        socket
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .unwrap();
        held.push(socket);
    }
    // Give the server a moment to account for all of them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(address(&app)).await.unwrap();
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert!(
        closed_within(&mut extra, Duration::from_secs(5))
            .await
            .is_some(),
        "the 21st connection from one address was served"
    );
    // Another address still gets answers.
    let other = crate::helpers::http_client()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let r = other
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = app.request(Method::GET, "/healthz", None, None).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "slots come back when sockets close"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_that_never_log_in_are_closed() {
    let app = spawn_app_with(|s| s.websocket_login_timeout = Some(1)).await;
    let url = format!("{}/api/current", app.base.replacen("http://", "ws://", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    // Calls that need no login do not extend the deadline.
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        r#"{"jsonrpc":"2.0","id":1,"method":"core.ping"}"#,
    ))
    .await
    .unwrap();
    let started = Instant::now();
    let mut closed = false;
    while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        match frame {
            Ok(tokio_tungstenite::tungstenite::Message::Close(_)) | Err(_) => {
                closed = true;
                break;
            }
            Ok(_) => continue,
        }
    }
    if !closed {
        closed = started.elapsed() < Duration::from_secs(10);
    }
    assert!(closed, "an unauthenticated WebSocket stayed open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_failure_budget_never_refuses_api_keys_or_probes() {
    let app = spawn_app_with(|s| {
        s.rate_limits = Some(otpd::config::Switch(true));
        s.failure_rate = Some(10);
    })
    .await;
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
        .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut last = 0;
    for _ in 0..70 {
        last = app
            .request(Method::GET, "/api/v1/me", Some("otpd_s_not-a-token"), None)
            .await
            .status()
            .as_u16();
    }
    assert_eq!(last, 429, "the budget is spent");
    for path in ["/healthz", "/readyz"] {
        let status = app.request(Method::GET, path, None, None).await.status();
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let v = app
        .call(
            Method::POST,
            "/api/v1/accounts/alice/totp/verify",
            Some(&key),
            Some(json!({"code": app.code(&secret)})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(v["valid"], true, "{v}");
    // A key that does not authenticate gets no such pass.
    let status = app
        .request(
            Method::POST,
            "/api/v1/accounts/alice/totp/verify",
            Some("otpd_k_made-up"),
            Some(json!({"code": "000000"})),
        )
        .await
        .status();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

/// A server started on an existing, world-readable data directory: every file it creates
/// is owner-only, and it warns about the directory. Then, at `OTPD_LOG=trace`, every front
/// door is used with every kind of credential, and none appears in what it printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_only_files_and_no_credential_in_trace_logs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().to_str().unwrap();
    let server = ServeProcess::spawn(&["--data-dir", data], &[("OTPD_LOG", "trace")]);
    let admin_password = std::fs::read_to_string(dir.path().join("initial-admin-password"))
        .unwrap()
        .trim()
        .to_owned();
    let http = crate::helpers::http_client().build().unwrap();
    let base = server.base.clone();
    let call = |method: Method, path: &str, token: Option<&str>, body: Option<Value>| {
        let mut r = http.request(method, format!("{base}{path}"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        async move {
            let r = r.send().await.unwrap();
            r.json::<Value>().await.unwrap_or(Value::Null)
        }
    };
    let mut secrets = vec![admin_password.clone()];
    let admin = call(
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({"username": "admin", "password": admin_password})),
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    secrets.push(admin.clone());
    let alice_password = "alice's long secret password";
    secrets.push(alice_password.into());
    call(
        Method::POST,
        "/api/v1/accounts",
        Some(&admin),
        Some(json!({"username": "alice", "password": alice_password})),
    )
    .await;
    let key = call(
        Method::POST,
        "/api/v1/api-keys",
        Some(&admin),
        Some(json!({"name": "svc"})),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    secrets.push(key.clone());
    let provisioned = call(
        Method::POST,
        "/api/v1/accounts/alice/totp",
        Some(&admin),
        Some(json!({})),
    )
    .await;
    let secret = provisioned["secret"].as_str().unwrap().to_owned();
    secrets.push(secret.clone());
    let codes: Vec<String> = provisioned["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    secrets.extend(codes.iter().cloned());
    secrets.extend(codes.iter().map(|c| c.replace('-', "")));
    call(
        Method::POST,
        "/api/v1/accounts/alice/totp/verify",
        Some(&key),
        Some(json!({"code": codes[0]})),
    )
    .await;
    // The TrueNAS socket: a password, a recovery code, an API key, a renewed secret.
    let ws_url = format!("{}/api/current", base.replacen("http://", "ws://", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    let r = send(&mut ws, json!({"jsonrpc": "2.0", "id": 1, "method": "auth.login_ex",
        "params": [{"mechanism": "PASSWORD_PLAIN", "username": "alice", "password": alice_password}]})).await;
    assert_eq!(r["result"]["response_type"], "OTP_REQUIRED", "{r}");
    let r = send(
        &mut ws,
        json!({"jsonrpc": "2.0", "id": 2, "method": "auth.login_ex_continue",
        "params": [{"mechanism": "OTP_TOKEN", "otp_token": codes[1]}]}),
    )
    .await;
    assert_eq!(r["result"]["response_type"], "SUCCESS", "{r}");
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    let r = send(
        &mut ws,
        json!({"jsonrpc": "2.0", "id": 1, "method": "auth.login_ex",
        "params": [{"mechanism": "API_KEY_PLAIN", "username": "admin", "api_key": key}]}),
    )
    .await;
    assert_eq!(r["result"]["response_type"], "SUCCESS", "{r}");
    let r = send(
        &mut ws,
        json!({"jsonrpc": "2.0", "id": 2, "method": "user.renew_2fa_secret",
        "params": ["alice", {}]}),
    )
    .await;
    let uri = r["result"]["twofactor_config"]["provisioning_uri"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    secrets.push(uri.clone());
    let renewed = otp::KeyUri::parse(&uri).unwrap();
    secrets.push(renewed.secret().to_base32().to_string());
    drop(ws);

    // While it runs, the database's three files exist.
    for file in [
        "otpd.db",
        "otpd.db-wal",
        "otpd.db-shm",
        "master.key",
        "initial-admin-password",
    ] {
        let path = dir.path().join(file);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file} is {mode:o}");
    }
    // The bootstrap password is printed once on standard output, by design (README); the
    // rest is the log.
    let logs: String = server
        .stop()
        .lines()
        .filter(|l| !l.starts_with("Created the administrator account"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(logs.contains("DEBUG"), "the run logged below info");
    assert!(
        logs.contains("open to other users"),
        "no warning about the data directory"
    );
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a credential reached the log: {secret}"
        );
    }
}
