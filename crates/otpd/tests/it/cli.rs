//! The real `otpd` binary: the CLI contract, and a full enrollment/verification run of
//! `otpd serve` whose logs and data files must never hold a secret or a recovery code.

use crate::process::ServeProcess;
use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Where a CLI run acts: a data directory and a database (SQLite in it, or a throw-away
/// PostgreSQL database in a PostgreSQL test run).
struct Place<'a> {
    dir: &'a Path,
    url: &'a str,
}

fn otpd(at: &Place<'_>, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_otpd"))
        .arg("--data-dir")
        .arg(at.dir)
        .arg("--database-url")
        .arg(at.url)
        .args(args)
        .env_remove("OTPD_MASTER_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A place for a SQLite database at `dir` (whether or not it exists yet).
fn sqlite_at(dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("otpd.db").display())
}

/// Issue 15: a command other than `serve`/`init` never creates a data directory, a database
/// or a key; it refuses, naming where it looked.
#[test]
fn commands_refuse_without_a_database_and_create_nothing() {
    let root = tempfile::tempdir().unwrap();
    let typo = root.path().join("otpd-dta");
    let url = sqlite_at(&typo);
    let at = &Place {
        dir: &typo,
        url: &url,
    };
    for args in [
        &["account", "list"][..],
        &["totp", "show", "alice"],
        &["apikey", "create", "--account", "admin"],
        &["keys", "status"],
    ] {
        let out = otpd(at, args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "no otpd database at {}",
                typo.join("otpd.db").display()
            )) && err.contains("OTPD_DATA_DIR"),
            "{args:?}: {err}"
        );
    }
    assert!(!typo.exists(), "a data directory was created");
}

/// Issue 15: a master key is never generated beside a database that holds sealed data; the
/// error says which key is missing and where it was expected.
#[test]
fn a_missing_master_key_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_at(dir.path());
    let at = &Place {
        dir: dir.path(),
        url: &url,
    };
    let init = otpd(at, &["init"], None);
    assert!(init.status.success());
    assert!(
        String::from_utf8_lossy(&init.stderr).contains("Back it up apart from the database"),
        "the first start says where the key is and to back it up"
    );
    let key = dir.path().join("master.key");
    std::fs::rename(&key, dir.path().join("master.key.away")).unwrap();
    for args in [&["account", "list"][..], &["init"]] {
        let out = otpd(at, args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "the master key is missing: expected {}",
                key.display()
            )),
            "{args:?}: {err}"
        );
        assert!(!key.exists(), "{args:?} wrote a new master key");
    }
    // serve as well, before answering anything.
    let out = Command::new(env!("CARGO_BIN_EXE_otpd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("OTPD_MASTER_KEY")
        .env_remove("OTPD_DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!key.exists());
}

/// Issue 15: `serve` binds before it creates anything, so a port in use leaves no data
/// directory, key or admin behind.
#[test]
fn a_port_in_use_creates_nothing() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_otpd"))
        .args(["serve", "--listen", &port, "--data-dir"])
        .arg(&data)
        .env_remove("OTPD_MASTER_KEY")
        .env_remove("OTPD_DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("binding"));
    assert!(!data.exists(), "serve created its data before binding");
}

/// Issue 15: a reader that goes away (`| head`, `| true`) ends the command quietly (status
/// 141, as SIGPIPE would); an enrollment whose output nobody could read is undone rather
/// than left behind.
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_at(dir.path());
    let at = &Place {
        dir: dir.path(),
        url: &url,
    };
    assert!(otpd(at, &["init"], None).status.success());
    assert!(
        otpd(at, &["account", "add", "bob", "--no-password"], None)
            .status
            .success()
    );
    let pipe = |args: &str, reader: &str| {
        Command::new("bash")
            .arg("-c")
            .arg(format!(
                "'{bin}' --data-dir '{dir}' --database-url '{url}' {args} | {reader}; exit ${{PIPESTATUS[0]}}",
                bin = env!("CARGO_BIN_EXE_otpd"),
                dir = dir.path().display(),
            ))
            .env_remove("OTPD_MASTER_KEY")
            .output()
            .unwrap()
    };
    // A reader of the first line still gets the whole answer written.
    let head = pipe("totp enroll bob --json", "head -n 1");
    assert_eq!(
        head.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&head.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&head.stdout), "{\n");
    assert!(!String::from_utf8_lossy(&head.stderr).contains("panicked"));
    assert!(otpd(at, &["totp", "reset", "bob"], None).status.success());
    // A reader that reads nothing: no panic, no message, and no enrollment left behind.
    let gone = pipe("totp enroll bob --json", "(exec 0<&-; sleep 1)");
    assert_eq!(
        gone.status.code(),
        Some(141),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&gone.stderr), "");
    let show = otpd(at, &["totp", "show", "bob"], None);
    assert_eq!(
        show.status.code(),
        Some(2),
        "the unseen enrollment was kept"
    );
}

#[tokio::test]
async fn the_cli_contract() {
    let dir = tempfile::tempdir().unwrap();
    let db = otpd_core::testing::TestDatabase::create(dir.path())
        .await
        .unwrap();
    let d = &Place {
        dir: dir.path(),
        url: db.url(),
    };
    // Only `serve` and `init` create; `init` makes the bootstrap admin and says so.
    let init = otpd(d, &["init"], None);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    assert!(stdout(&init).contains("Created the administrator account 'admin'"));
    assert!(dir.path().join("initial-admin-password").exists());
    let add = otpd(
        d,
        &[
            "account",
            "add",
            "alice",
            "--role",
            "twofactor_admin",
            "--password-stdin",
        ],
        Some("correct horse battery\n"),
    );
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let key = otpd(d, &["apikey", "create", "--account", "alice"], None);
    assert!(key.status.success());
    let key = stdout(&key);
    assert_eq!(key.lines().count(), 1, "only the key on stdout: {key:?}");
    assert!(key.starts_with("otpd_k_"));

    let enrolled = otpd(d, &["totp", "enroll", "alice", "--json"], None);
    assert!(
        enrolled.status.success(),
        "{}",
        String::from_utf8_lossy(&enrolled.stderr)
    );
    let e: serde_json::Value = serde_json::from_str(&stdout(&enrolled)).unwrap();
    let secret = otp::Secret::from_base32(e["secret"].as_str().unwrap()).unwrap();
    assert!(
        e["provisioning_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/otpd:alice?secret=")
    );
    assert_eq!(e["recovery_codes"].as_array().unwrap().len(), 10);
    assert!(
        e["verification_code"].is_null(),
        "no code shown, none claimed"
    );

    // Human tables with RFC 3339 times; JSON for scripts, with otpd's own account model
    // (no TrueNAS profile fields).
    let show = stdout(&otpd(d, &["account", "show", "alice"], None));
    assert!(
        show.contains("roles") && show.contains("second factor"),
        "{show}"
    );
    let created = show
        .lines()
        .find(|l| l.starts_with("created"))
        .unwrap_or_else(|| panic!("{show}"));
    assert!(
        created.trim_end().ends_with('Z') && created.contains('T'),
        "an RFC 3339 time: {created}"
    );
    let json: serde_json::Value = serde_json::from_str(&stdout(&otpd(
        d,
        &["account", "show", "alice", "--json"],
        None,
    )))
    .unwrap();
    assert_eq!(json["username"], "alice");
    for field in ["profile", "shell", "smb", "home"] {
        assert!(json.get(field).is_none(), "{field} in {json}");
    }
    let totp = stdout(&otpd(d, &["totp", "show", "alice"], None));
    assert!(totp.contains("recovery codes left  10"), "{totp}");
    assert!(
        !totp.contains("TotpStatus {"),
        "no debug structures: {totp}"
    );

    // No code was shown at enrollment, so none is claimed: the app's current code is
    // accepted at once (issue 15), and once only, with a refusal a person understands.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let current = otp::Totp::default().generate(&secret, now).to_string();
    assert_eq!(
        otpd(d, &["totp", "verify", "alice", &current], None)
            .status
            .code(),
        Some(0)
    );
    let again = otpd(d, &["totp", "verify", "alice", &current], None);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stdout(&again).contains("already used — wait for the next code"),
        "{}",
        stdout(&again)
    );
    let bad = otpd(d, &["totp", "verify", "alice", "12x456"], None);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "malformed input is an error, not a refusal"
    );

    let show: serde_json::Value = serde_json::from_str(&stdout(&otpd(
        d,
        &["totp", "show", "alice", "--json"],
        None,
    )))
    .unwrap();
    assert_eq!(
        (
            show["state"].as_str(),
            show["recovery_codes_remaining"].as_i64()
        ),
        (Some("active"), Some(10))
    );
    assert!(
        otpd(d, &["policy", "set", "window=2", "issuer=Example"], None)
            .status
            .success()
    );
    let policy: serde_json::Value =
        serde_json::from_str(&stdout(&otpd(d, &["policy", "show", "--json"], None))).unwrap();
    assert_eq!(
        (policy["window"].as_i64(), policy["issuer"].as_str()),
        (Some(2), Some("Example"))
    );
    assert_eq!(
        otpd(d, &["policy", "set", "window=99"], None).status.code(),
        Some(2)
    );

    let audit = stdout(&otpd(d, &["audit", "--account", "alice", "--json"], None));
    let actions: Vec<String> = audit
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        actions,
        [
            "account.create",
            "apikey.create",
            "totp.provision",
            "totp.verify",
            "totp.verify"
        ]
    );
    assert!(
        audit
            .lines()
            .all(|l| l.contains("\"actor\":\"cli\"") && l.contains("\"door\":\"cli\""))
    );

    // Without a password source and no terminal, it refuses rather than guessing.
    assert_eq!(
        otpd(d, &["account", "add", "bob"], None).status.code(),
        Some(2)
    );
    assert!(
        otpd(d, &["account", "add", "bob", "--no-password"], None)
            .status
            .success()
    );
}

#[tokio::test]
async fn secrets_never_reach_logs_or_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::spawn(
        &[OsStr::new("--data-dir"), dir.path().as_os_str()],
        &[("OTPD_LOG", "trace")],
    );
    let base = server.base.clone();
    let client = crate::helpers::http_client().build().unwrap();
    let post = |path: &str, token: Option<&str>, body: serde_json::Value| {
        let mut r = client.post(format!("{base}{path}")).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move {
            r.send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let admin_pw = std::fs::read_to_string(dir.path().join("initial-admin-password")).unwrap();
    let admin = post(
        "/api/v1/auth/login",
        None,
        serde_json::json!({"username": "admin", "password": admin_pw.trim()}),
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    post(
        "/api/v1/accounts",
        Some(&admin),
        serde_json::json!({"username": "erin", "password": "correct horse battery"}),
    )
    .await;
    let erin = post(
        "/api/v1/auth/login",
        None,
        serde_json::json!({"username": "erin", "password": "correct horse battery"}),
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let e = post(
        "/api/v1/accounts/erin/totp/enroll",
        Some(&erin),
        serde_json::json!({}),
    )
    .await;
    let b32 = e["secret"].as_str().unwrap().to_owned();
    let secret = otp::Secret::from_base32(&b32).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let c = post(
        "/api/v1/accounts/erin/totp/confirm",
        Some(&erin),
        serde_json::json!({"code": otp::Totp::default().generate(&secret, now).to_string()}),
    )
    .await;
    let codes: Vec<String> = c["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let v = post(
        "/api/v1/accounts/erin/totp/verify",
        Some(&admin),
        serde_json::json!({"code": otp::Totp::default().generate(&secret, now + 30).to_string()}),
    )
    .await;
    assert_eq!(v["valid"], true);
    let v = post(
        "/api/v1/accounts/erin/totp/verify",
        Some(&admin),
        serde_json::json!({"code": codes[0]}),
    )
    .await;
    assert_eq!(v["method"], "recovery_code");

    let logs = server.stop();
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "trace logging was on"
    );

    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() != "master.key"
            && path.file_name().unwrap() != "initial-admin-password"
        {
            files.extend(std::fs::read(path).unwrap());
        }
    }
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    for (what, needle) in [
        ("raw secret", secret.as_bytes().to_vec()),
        ("base32 secret", b32.as_bytes().to_vec()),
        ("lower-case base32", b32.to_lowercase().into_bytes()),
    ] {
        assert!(!contains(logs.as_bytes(), &needle), "{what} in the logs");
        assert!(!contains(&files, &needle), "{what} in the data files");
    }
    for code in &codes {
        for form in [code.clone(), code.replace('-', "")] {
            assert!(
                !contains(logs.as_bytes(), form.as_bytes()),
                "recovery code in the logs"
            );
            assert!(
                !contains(&files, form.as_bytes()),
                "recovery code in the data files"
            );
        }
    }
}

/// `otpd keys rotate` and `keys rewrap` from the command line while a server serves the
/// same database: the server never stops answering, and answers right.
#[tokio::test]
async fn keys_rotate_and_rewrap_beside_a_running_server() {
    use crate::helpers::spawn_app;
    use reqwest::{Method, StatusCode};
    let app = spawn_app().await;
    let token = app.account("carol", &[]).await;
    let (secret, codes) = app.enroll("carol", &token).await;
    let place = Place {
        dir: app.data_dir(),
        url: app.database_url(),
    };
    let d = &place;
    let cli = move |args: &[&str]| {
        let out = otpd(d, args, None);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str::<serde_json::Value>(&stdout(&out)).unwrap_or_default()
    };
    let verify = |code: String| {
        let app = &app;
        let admin = app.admin.clone();
        async move {
            app.call(
                Method::POST,
                "/api/v1/accounts/carol/totp/verify",
                Some(&admin),
                Some(serde_json::json!({ "code": code })),
                StatusCode::OK,
            )
            .await
        }
    };

    let before = cli(&["keys", "status", "--json"]);
    assert_eq!(before["data_keys"].as_array().unwrap().len(), 1);
    assert_eq!(before["data_keys"][0]["secrets"], 1);
    assert_eq!(before["data_keys"][0]["recovery_codes"], 10);

    let report = cli(&["keys", "rotate", "--json"]);
    assert_eq!(
        (
            report["resealed_secrets"].as_u64(),
            report["resealed_recovery_codes"].as_u64(),
            report["deleted_keys"].as_u64()
        ),
        (Some(1), Some(10), Some(1))
    );
    let after = cli(&["keys", "status", "--json"]);
    assert_eq!(after["data_keys"][0]["id"], report["active_key"]);
    assert_ne!(after["data_keys"][0]["id"], before["data_keys"][0]["id"]);
    // The server, which loaded the old key at start, verifies values sealed under the new one.
    let ok = verify(app.code(&secret)).await;
    assert_eq!(ok["valid"], true, "{ok}");
    let rc = verify(codes[0].clone()).await;
    assert_eq!(rc["method"], "recovery_code", "{rc}");

    // Rewrap under a new master key: the data directory's key file is replaced (0600).
    let new_key = "hB0rvvMwQF1b3F2ia8ox1vp4nOaUmrkCPG6MQ09o4nM=";
    let key_file = app.data_dir().join("new.key");
    std::fs::write(&key_file, new_key).unwrap();
    let rewrap = otpd(
        d,
        &[
            "keys",
            "rewrap",
            "--new-master-key-file",
            key_file.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        rewrap.status.success(),
        "{}",
        String::from_utf8_lossy(&rewrap.stderr)
    );
    let master = app.data_dir().join("master.key");
    assert_eq!(
        std::fs::read_to_string(&master).unwrap().trim(),
        new_key,
        "the data directory now holds the new key"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&master).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!app.data_dir().join("master.key.new").exists());
    let status = cli(&["keys", "status", "--json"]);
    let new_id = otpd_core::MasterKey::from_base64(new_key).unwrap().id();
    assert_eq!(status["master_key"], format!("{new_id:08x}"));
    // The running server keeps answering with the keys it holds.
    let rc = verify(codes[1].clone()).await;
    assert_eq!(rc["valid"], true, "{rc}");
    // The same key twice is refused.
    assert_eq!(
        otpd(
            d,
            &[
                "keys",
                "rewrap",
                "--new-master-key-file",
                key_file.to_str().unwrap()
            ],
            None
        )
        .status
        .code(),
        Some(2)
    );
}
