//! SIGTERM: the server stops accepting, finishes the requests in flight and exits 0; a
//! second signal ends it at once. A request is known to be in flight when the server has
//! asked for its body (`100 Continue`, sent when the handler starts reading it).

use crate::process::ServeProcess;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

const BODY: &str = r#"{"username":"nobody","password":"not the password"}"#;

/// A login whose body is held back until the server is waiting for it.
fn request_in_flight(server: &ServeProcess) -> TcpStream {
    let address = server.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        BODY.len()
    )
    .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 100"), "{line}");
    let mut blank = String::new();
    reader.read_line(&mut blank).unwrap();
    stream
}

fn init_dir() -> (tempfile::TempDir, Vec<std::ffi::OsString>) {
    let dir = tempfile::tempdir().unwrap();
    let args = vec!["--data-dir".into(), dir.path().as_os_str().to_owned()];
    (dir, args)
}

#[test]
fn sigterm_finishes_the_requests_in_flight_then_exits_0() {
    let (_dir, args) = init_dir();
    let server = ServeProcess::spawn(&args, &[]);
    let mut stream = request_in_flight(&server);
    server.terminate();
    server.wait_for_log("shutting down");
    let address = server.base.trim_start_matches("http://").to_owned();
    // The request in flight is answered in full.
    stream.write_all(BODY.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let (status, logs) = server.wait();
    assert!(status.success(), "{status:?}\n{logs}");
    assert!(
        TcpStream::connect(address).is_err(),
        "the listener is closed"
    );
}

#[test]
fn a_second_signal_stops_at_once() {
    let (_dir, args) = init_dir();
    let server = ServeProcess::spawn(&args, &[]);
    let _stream = request_in_flight(&server);
    server.terminate();
    server.wait_for_log("shutting down");
    server.terminate();
    // The request in flight never gets its body: only the second signal can end the wait.
    let (status, logs) = server.wait();
    assert_eq!(status.code(), Some(1), "{logs}");
    assert!(logs.contains("second signal"), "{logs}");
}
