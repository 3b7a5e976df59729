//! `otpd probe`: a container's HEALTHCHECK without curl.

use crate::process::ServeProcess;
use std::process::Command;

fn probe(listen: &str, path: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_otpd"))
        .args(["probe", path])
        .env("OTPD_LISTEN", listen)
        .env_remove("OTPD_TLS_CERT")
        .env_remove("OTPD_TLS_SELF_SIGNED")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_probe_asks_the_server_on_this_host() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::spawn(&["--data-dir".as_ref(), dir.path().as_os_str()], &[]);
    let listen = server.base.trim_start_matches("http://").to_owned();
    // 0.0.0.0 means this host.
    let port = listen.rsplit(':').next().unwrap();
    for address in [listen.clone(), format!("0.0.0.0:{port}")] {
        let (ok, out) = probe(&address, "/healthz/live");
        assert!(ok, "{address}: {out}");
        assert!(out.contains("HTTP/1.1 200"), "{out}");
    }
    let (ok, out) = probe(&listen, "/healthz/nothing");
    assert!(!ok, "{out}");
    let (ok, _) = probe(&listen, "no-slash");
    assert!(!ok);
    server.stop();
    let (ok, out) = probe(&listen, "/healthz/live");
    assert!(!ok, "a stopped server: {out}");
    assert!(out.contains("no answer"), "{out}");
}
