//! `otpd backup` while the server runs and `otpd restore` into a fresh data directory: the
//! restored database verifies a code; a restore with the wrong master key, or while a
//! server runs on the database, is refused and changes nothing.

use crate::helpers::*;
use crate::process::ServeProcess;
use otpd_core::Principal;
use reqwest::{Method, StatusCode};
use std::path::Path;
use std::process::{Command, Output};

/// `otpd <args> --data-dir DIR` (its own SQLite database there unless `url` names one).
fn otpd(dir: &Path, url: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_otpd"));
    command
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("OTPD_MASTER_KEY")
        .env_remove("OTPD_DATABASE_URL");
    if let Some(url) = url {
        command.arg("--database-url").arg(url);
    }
    command.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn a_backup_taken_while_serving_restores_into_a_fresh_data_directory() {
    let app = spawn_app().await;
    let token = app.account("alice", &[]).await;
    let (secret, _) = app.enroll("alice", &token).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("otpd-backup.db");
    let out = otpd(
        app.data_dir(),
        Some(app.database_url()),
        &["backup", file.to_str().unwrap()],
    );
    if app.database_url().starts_with("postgres") {
        assert!(!out.status.success());
        assert!(text(&out).contains("pg_dump"), "{}", text(&out));
        return;
    }
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("2 accounts"), "{}", text(&out));
    // The server went on serving meanwhile.
    app.call(
        Method::GET,
        "/api/v1/me",
        Some(&token),
        None,
        StatusCode::OK,
    )
    .await;

    // A fresh data directory with the deployment's master key.
    let fresh = dir.path().join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    std::fs::copy(app.data_dir().join("master.key"), fresh.join("master.key")).unwrap();
    let out = otpd(&fresh, None, &["restore", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    // The restored database verifies alice's code (at the real time: the CLI's clock).
    let code = otp::Totp::default().generate(&secret, now()).to_string();
    let out = otpd(&fresh, None, &["totp", "verify", "alice", &code]);
    assert!(out.status.success(), "{}", text(&out));
    // Onto a new machine: no data directory yet, the key given in the environment.
    let new_machine = dir.path().join("new-machine");
    let key = std::fs::read_to_string(app.data_dir().join("master.key")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_otpd"))
        .arg("--data-dir")
        .arg(&new_machine)
        .args(["restore", file.to_str().unwrap()])
        .env("OTPD_MASTER_KEY", key.trim())
        .env_remove("OTPD_DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(new_machine.join("otpd.db").exists());
    // The restored account's history came along.
    let settings = otpd::config::Settings::resolve(
        &otpd::config::CommonArgs {
            data_dir: Some(fresh.clone()),
            ..otpd::config::CommonArgs::default()
        },
        &otpd::config::ServeArgs::default(),
    )
    .unwrap();
    let service = otpd::boot::open(&settings, otpd::boot::Create::No)
        .await
        .unwrap();
    let account = service.get_account(&Principal::Cli, "alice").await.unwrap();
    assert!(account.twofactor_configured);
}

#[tokio::test]
async fn a_restore_with_the_wrong_master_key_or_under_a_server_changes_nothing() {
    if otpd_core::testing::TestDatabase::postgres_run() {
        return; // SQLite only: PostgreSQL restores are pg_restore's
    }
    let app = spawn_app().await;
    app.account("alice", &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("otpd-backup.db");
    let out = otpd(
        app.data_dir(),
        Some(app.database_url()),
        &["backup", file.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));

    // Another deployment: its own master key and database.
    let other = dir.path().join("other");
    let out = otpd(&other, None, &["init"]);
    assert!(out.status.success(), "{}", text(&out));
    let listing = |d: &Path| {
        let mut names: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !n.ends_with(".lock"))
            .collect();
        names.sort();
        names
    };
    let before = (
        listing(&other),
        std::fs::read(other.join("otpd.db")).unwrap(),
    );
    let out = otpd(&other, None, &["restore", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("nothing was changed"), "{}", text(&out));
    let after = (
        listing(&other),
        std::fs::read(other.join("otpd.db")).unwrap(),
    );
    assert_eq!(
        before, after,
        "the database and the directory are as they were"
    );

    // Not a database at all.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database").unwrap();
    let out = otpd(&other, None, &["restore", junk.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("not an otpd database"),
        "{}",
        text(&out)
    );

    // While a server runs on the database: refused by name.
    let server = ServeProcess::spawn(&["--data-dir".as_ref(), other.as_os_str()], &[]);
    let out = otpd(&other, None, &["restore", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("a server is running"), "{}", text(&out));
    server.stop();
    // A backup file that already exists is never overwritten.
    let out = otpd(
        app.data_dir(),
        Some(app.database_url()),
        &["backup", file.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("cannot create"), "{}", text(&out));
}
