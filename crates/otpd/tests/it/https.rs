//! HTTPS on the main listener (issue 16): a self-signed certificate generated once, kept and
//! served again after a restart, with its fingerprint printed; every front door over it (the
//! native API over HTTPS, TrueNAS over `wss://`); clear errors for bad PEM files.

use crate::process::ServeProcess;
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A TLS connection to `address` that trusts only `cert_pem`, for the name `localhost`.
async fn connect(
    address: &str,
    cert_pem: &std::path::Path,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert_pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(address).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

fn fingerprint(output: &str) -> String {
    output
        .lines()
        .find_map(|l| l.strip_prefix("HTTPS certificate SHA-256 fingerprint: "))
        .unwrap_or_else(|| panic!("no fingerprint in {output}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_certificate_serves_every_door_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let args = ["--data-dir", data.as_str(), "--tls-self-signed", "on"];
    let server = ServeProcess::spawn(&args, &[]);
    let address = server.base.trim_start_matches("http://").to_owned();
    let cert = dir.path().join("tls-cert.pem");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("tls-key.pem"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the key is owner-only");

    // The native API over HTTPS.
    let mut tls = connect(&address, &cert).await;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // TrueNAS over wss://.
    let tls = connect(&address, &cert).await;
    let (mut ws, _) = tokio_tungstenite::client_async("wss://localhost/api/current", tls)
        .await
        .unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        r#"{"jsonrpc":"2.0","id":1,"method":"core.ping"}"#,
    ))
    .await
    .unwrap();
    let reply = ws.next().await.unwrap().unwrap();
    assert!(reply.to_text().unwrap().contains("pong"), "{reply:?}");
    drop(ws);

    // Plain HTTP on the HTTPS listener gets no HTTP answer.
    let mut plain = TcpStream::connect(&address).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(15),
        plain.read_to_end(&mut buf),
    )
    .await;
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));

    let first = fingerprint(&server.stop());
    let pem = std::fs::read(&cert).unwrap();
    let again = ServeProcess::spawn(&args, &[]);
    let second = fingerprint(&again.stop());
    assert_eq!(first, second, "the same certificate after a restart");
    assert_eq!(std::fs::read(&cert).unwrap(), pem);
    assert_eq!(first.len(), 95, "SHA-256 as 32 hex pairs: {first}");
}

fn serve_with(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_otpd"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("OTPD_MASTER_KEY")
        .env_remove("OTPD_DATABASE_URL")
        .output()
        .unwrap()
}

#[test]
fn bad_or_mismatched_pem_files_are_named_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let a = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let b = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = dir.path().join("a.pem");
    let key_a = dir.path().join("a.key");
    let key_b = dir.path().join("b.key");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&cert, a.cert.pem()).unwrap();
    std::fs::write(&key_a, a.signing_key.serialize_pem()).unwrap();
    std::fs::write(&key_b, b.signing_key.serialize_pem()).unwrap();
    std::fs::write(&junk, "not a certificate").unwrap();
    let s = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    for (cert, key, named) in [
        (s(&junk), s(&key_a), s(&junk)),
        (s(&cert), s(&junk), s(&junk)),
        (s(&cert), s(&key_b), s(&key_b)),
        (
            s(&dir.path().join("missing.pem")),
            s(&key_a),
            "missing.pem".to_owned(),
        ),
    ] {
        let out = serve_with(&["--data-dir", data, "--tls-cert", &cert, "--tls-key", &key]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&named), "{named}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // And the right pair serves.
    let out = serve_with(&[
        "--data-dir",
        data,
        "--tls-cert",
        &s(&cert),
        "--tls-key",
        &s(&key_b),
        "--tls-self-signed",
        "on",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "both sources at once is refused"
    );
}
