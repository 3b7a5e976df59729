//! A real `otpd serve` process on a free port, its logs captured, stopped with SIGTERM.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

pub struct ServeProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    logs: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl ServeProcess {
    /// Starts `otpd serve --listen 127.0.0.1:0 --rate-limits off` plus `args`, with `envs`
    /// (and without any inherited OTPD_MASTER_KEY), and waits for its listening line.
    pub fn spawn<A: AsRef<OsStr>>(args: &[A], envs: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_otpd"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--rate-limits", "off"])
            .args(args)
            .env_remove("OTPD_MASTER_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let logs = Arc::new(Mutex::new(String::new()));
        let mut err = BufReader::new(child.stderr.take().unwrap());
        // The listening line names the port chosen for port 0; give up after 200 lines rather
        // than wait forever if its format changes.
        let mut address = None;
        for _ in 0..200 {
            let mut line = String::new();
            if err.read_line(&mut line).unwrap() == 0 {
                break;
            }
            logs.lock().unwrap().push_str(&line);
            if let Some(at) = line.find("address=") {
                address = line[at + 8..].split_whitespace().next().map(str::to_owned);
                break;
            }
        }
        let Some(address) = address else {
            let _ = child.kill();
            panic!("no listening line in: {}", logs.lock().unwrap())
        };
        let sink = logs.clone();
        // Line by line, so that a test can wait for a line while the server runs.
        let reader = std::thread::spawn(move || {
            let mut line = String::new();
            while err.read_line(&mut line).is_ok_and(|n| n > 0) {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        ServeProcess {
            child,
            base: format!("http://{address}"),
            logs,
            reader: Some(reader),
        }
    }

    /// Sends SIGTERM (through the `kill` command, keeping this crate free of unsafe code).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (polling, at most 10 s) until the server has logged `text`.
    pub fn wait_for_log(&self, text: &str) {
        for _ in 0..400 {
            if self.logs.lock().unwrap().contains(text) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("no {text:?} in: {}", self.logs.lock().unwrap());
    }

    /// Waits for the process to end.
    pub fn wait(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        let logs = self.logs.lock().unwrap().clone();
        (status, logs)
    }

    /// Sends SIGTERM, asserts a clean exit, and returns everything it wrote (stdout and
    /// stderr).
    pub fn stop(mut self) -> String {
        // Through the `kill` command, keeping this crate free of unsafe code.
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "graceful shutdown on SIGTERM: {status:?}");
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        format!("{out}{}", self.logs.lock().unwrap())
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        // Only reached when a test failed before `stop`: do not leave the server running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a Python client of `scripts/` against a real `otpd serve` (plus `serve_args`) on a
/// fresh data directory and test database, and asserts that it succeeds and prints "ok".
/// `modules` must import (the message names them when they do not); `client_args` gets the
/// server and the bootstrap admin's password and gives the script's arguments.
pub async fn run_python_client(
    script: &str,
    modules: &str,
    serve_args: &[&str],
    client_args: impl FnOnce(&ServeProcess, &str) -> Vec<String>,
) {
    let have_modules = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        have_modules,
        "python3 with the modules {modules} is required"
    );
    let dir = tempfile::tempdir().unwrap();
    let db = otpd_core::testing::TestDatabase::create(dir.path())
        .await
        .unwrap();
    let mut args: Vec<&OsStr> = vec![
        "--data-dir".as_ref(),
        dir.path().as_os_str(),
        "--database-url".as_ref(),
        OsStr::new(db.url()),
    ];
    args.extend(serve_args.iter().map(OsStr::new));
    let server = ServeProcess::spawn(&args, &[]);
    let password = std::fs::read_to_string(dir.path().join("initial-admin-password")).unwrap();
    let script = format!("{}/../../scripts/{script}", env!("CARGO_MANIFEST_DIR"));
    // The server is another process: blocking this test's thread does not stall it.
    let out = Command::new("python3")
        .arg(script)
        .args(client_args(&server, password.trim()))
        .output()
        .unwrap();
    let logs = server.stop();
    assert!(
        out.status.success(),
        "python client failed:\n{}\n{}\nserver:\n{logs}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}
