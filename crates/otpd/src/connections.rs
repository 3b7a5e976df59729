//! Accepting connections, and the limits a client with many sockets meets before any
//! handler runs (issue 14 §7): at most `max_connections_per_address` open connections per
//! peer address (WebSockets included, for as long as they live), a deadline for each
//! request's headers (also for a connection that never sends a byte), and an idle timeout
//! for connections with no request in flight. HTTP itself is hyper's (HTTP/1.1 and HTTP/2,
//! with upgrades for WebSockets), as `axum::serve` drives it; this loop exists because
//! `axum::serve` exposes none of these settings.

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

/// The limits of [`serve`], and its TLS.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest wait for a request's headers, from the connection's start or the end of the
    /// previous response (hyper's HTTP/1 `header_read_timeout`; before the protocol is
    /// known, the wait for the first byte).
    pub header_read_timeout: Duration,
    /// Longest time with no request in flight and no byte read or written.
    pub idle_timeout: Duration,
    /// Open connections per peer address at most.
    pub max_per_address: usize,
    /// How long a connection asked to close (idle, or the server stopping) may take to
    /// finish what is in flight before it is dropped: an HTTP/2 client may ignore GOAWAY.
    pub grace: Duration,
    /// HTTPS: every connection is a TLS one, its handshake due within
    /// `header_read_timeout`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// A connection's byte stream: plain TCP, or TLS over it.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Serves `app` on `listener` until `shutdown` completes, then lets the requests in flight
/// finish (graceful shutdown of every connection) and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let counts = Counts::default();
    let (stop_tx, stop_rx) = watch::channel(());
    let (open_tx, open_rx) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: the listener itself is fine.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = counts.take(peer.ip(), limits.max_per_address) else {
            tracing::debug!(peer = %peer.ip(), "too many connections from this address; closed");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = Guarded::new(stream, slot, limits.header_read_timeout);
        let activity = io.activity.clone();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let service = {
            let in_flight = in_flight.clone();
            app.clone()
                .map_request(move |request: hyper::Request<Incoming>| {
                    let mut request = request.map(Body::new);
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                })
                .map_future({
                    let in_flight = in_flight.clone();
                    move |future| {
                        let started = InFlight::start(in_flight.clone());
                        async move {
                            let response = future.await;
                            drop(started);
                            response
                        }
                    }
                })
        };
        let mut stop = stop_rx.clone();
        let open = open_rx.clone();
        let tls = limits.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let limits = limits.clone();
        tokio::spawn(async move {
            let io: Box<dyn Io> = match tls {
                None => Box::new(io),
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(io))
                        .await
                    {
                        Ok(Ok(stream)) => Box::new(stream),
                        _ => {
                            tracing::debug!(peer = %peer.ip(), "no TLS handshake");
                            drop(open);
                            return;
                        }
                    }
                }
            };
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            builder
                .http2()
                .timer(TokioTimer::new())
                .enable_connect_protocol();
            let mut connection = pin!(builder.serve_connection_with_upgrades(
                TokioIo::new(io),
                TowerToHyperService::new(service)
            ));
            // Set once the connection was asked to close: past it, the connection is dropped
            // (its socket closed) whatever the peer does.
            let mut drop_at: Option<tokio::time::Instant> = None;
            let check = (limits.idle_timeout / 4).max(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = connection.as_mut() => break,
                    _ = stop.changed(), if drop_at.is_none() => {
                        drop_at = Some(tokio::time::Instant::now() + limits.grace);
                        connection.as_mut().graceful_shutdown();
                    }
                    () = tokio::time::sleep(check), if drop_at.is_none() => {
                        if in_flight.load(Ordering::Relaxed) == 0
                            && activity.idle_for() >= limits.idle_timeout
                        {
                            drop_at = Some(tokio::time::Instant::now() + limits.header_read_timeout);
                            connection.as_mut().graceful_shutdown();
                        }
                    }
                    () = sleep_until(drop_at) => {
                        tracing::debug!(peer = %peer.ip(), "connection did not close when asked; dropped");
                        break;
                    }
                }
            }
            drop(open);
        });
    }
    drop(listener);
    drop(stop_tx);
    drop(open_rx);
    open_tx.closed().await;
    Ok(())
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Open connections per address.
#[derive(Clone, Default)]
struct Counts(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl Counts {
    /// A slot for one more connection from `ip`, unless it has `max` open.
    fn take(&self, ip: IpAddr, max: usize) -> Option<Slot> {
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let open = counts.entry(ip).or_default();
        if *open >= max {
            return None;
        }
        *open += 1;
        Some(Slot {
            counts: self.clone(),
            ip,
        })
    }
}

/// One open connection's place in [`Counts`], given back when the connection (or the
/// WebSocket it became) is dropped.
struct Slot {
    counts: Counts,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = counts.get_mut(&self.ip) {
            *open -= 1;
            if *open == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// A request in flight on a connection, counted until its response is ready.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn start(count: Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        InFlight(count)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// When a connection last read or wrote a byte.
#[derive(Clone)]
struct Activity {
    since: Instant,
    /// Milliseconds after `since`.
    last: Arc<AtomicU64>,
}

impl Activity {
    fn new() -> Self {
        Activity {
            since: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.since.elapsed().saturating_sub(last)
    }
}

/// A TCP stream that holds its [`Slot`], records its [`Activity`], and fails its reads
/// when no first byte came within the header deadline: hyper's own timer starts only once
/// HTTP/1 is chosen, and a peer that sends nothing would otherwise hold the socket forever.
struct Guarded {
    stream: TcpStream,
    _slot: Slot,
    activity: Activity,
    first_byte: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Guarded {
    fn new(stream: TcpStream, slot: Slot, first_byte_within: Duration) -> Self {
        Guarded {
            stream,
            _slot: slot,
            activity: Activity::new(),
            first_byte: Some(Box::pin(tokio::time::sleep(first_byte_within))),
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.first_byte = None;
                    self.activity.touch();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let expired = self
                    .first_byte
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if expired {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no request within the header deadline",
                    )))
                } else {
                    Poll::Pending
                }
            }
            other => other,
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
