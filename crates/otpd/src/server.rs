//! `otpd serve`: bind, bootstrap, serve until SIGINT/SIGTERM. Tests use the same path with
//! port 0.

use crate::boot;
use crate::config::Settings;
use anyhow::Context;
use otpd_core::{Clock, Service, SystemClock};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// A bound, ready server.
pub struct Server {
    listener: TcpListener,
    /// `/metrics` alone (`--metrics-listen`), when it has a listener of its own.
    metrics_listener: Option<TcpListener>,
    service: Service,
    settings: Settings,
    /// HTTPS, when configured.
    tls: Option<Arc<rustls::ServerConfig>>,
    /// The shared lock on the SQLite database a restore waits for (held while serving).
    _lock: Option<std::fs::File>,
}

impl Server {
    /// Binds first (so that a port in use creates nothing), then opens the service —
    /// creating the data directory, database and master key when missing — and creates the
    /// bootstrap admin on an empty database (printing its password once and writing it to
    /// `initial-admin-password` in the data directory).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// [`Server::build`] with an injected clock (tests).
    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        let metrics_listener = match settings.metrics_listen {
            Some(address) => Some(
                TcpListener::bind(address)
                    .await
                    .with_context(|| format!("binding {address} (metrics_listen)"))?,
            ),
            None => None,
        };
        // The lock first: a server must not touch a database that is being restored.
        if let Some(db) = boot::sqlite_file(&settings) {
            boot::create_data_dir_for(&db)?;
        }
        let lock = boot::database_lock(&settings, boot::LockKind::Serving)?;
        let service = boot::open_with_clock(&settings, clock, boot::Create::Yes).await?;
        boot::bootstrap_admin(&service, &settings, true).await?;
        let tls = match crate::tls::server_config(&settings)? {
            Some((config, fingerprint)) => {
                println!("HTTPS certificate SHA-256 fingerprint: {fingerprint}");
                Some(config)
            }
            None => None,
        };
        Ok(Server {
            listener,
            metrics_listener,
            service,
            settings,
            tls,
            _lock: lock,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// The bound address of `/metrics`'s own listener, when it has one.
    pub fn metrics_addr(&self) -> anyhow::Result<Option<SocketAddr>> {
        Ok(self
            .metrics_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()?)
    }

    /// The service behind the server.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// Serves until `shutdown` completes, then drains in-flight requests and closes the
    /// database.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let routers = crate::app::router(self.service.clone(), &self.settings);
        tracing::info!(
            address = %self.listener.local_addr()?,
            metrics = %match (&self.metrics_listener, self.settings.metrics) {
                (Some(own), _) => format!("http://{}/metrics", own.local_addr()?),
                (None, true) => "/metrics".to_owned(),
                (None, false) => "off".to_owned(),
            },
            ontap = if self.settings.ontap { "/api/security/…" } else { "off" },
            rocketchat = self.settings.rocketchat.as_deref().unwrap_or("off"),
            zimbra = if self.settings.zimbra { "/service/soap" } else { "off" },
            "otpd listening"
        );
        let limits = crate::connections::Limits {
            header_read_timeout: self.settings.header_read_timeout,
            idle_timeout: self.settings.idle_timeout,
            max_per_address: self.settings.max_connections_per_address,
            // Requests in flight end within the request timeout (503), and then some.
            grace: self.settings.request_timeout + Duration::from_secs(1),
            tls: self.tls.clone(),
        };
        // `/metrics` on its own listener: plain HTTP, the same connection limits, stopped
        // when the main listener has drained.
        let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
        let metrics = match (self.metrics_listener, routers.metrics) {
            (Some(listener), Some(router)) => {
                let limits = crate::connections::Limits {
                    tls: None,
                    ..limits.clone()
                };
                Some(tokio::spawn(async move {
                    crate::connections::serve(listener, router, &limits, async {
                        let _ = metrics_stopped.await;
                    })
                    .await
                }))
            }
            _ => None,
        };
        let served = crate::connections::serve(self.listener, routers.app, &limits, shutdown).await;
        let _ = stop_metrics.send(());
        if let Some(task) = metrics
            && let Ok(Err(e)) = task.await
        {
            tracing::warn!(error = %e, "the metrics listener failed");
        }
        served?;
        self.service.db().close().await;
        Ok(())
    }
}

/// Resolves on SIGINT or SIGTERM: the server then stops accepting and lets the requests in
/// flight finish (each within the request timeout). A second signal while it drains ends the
/// process at once, with status 1 — what an operator who does not want to wait expects. The
/// handlers are installed when this is called, not when the future is first polled: a signal
/// sent as soon as the server says it listens must shut it down gracefully, not kill it.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt()).ok();
    let terminate = signal(SignalKind::terminate()).ok();
    async move {
        let (Some(mut interrupt), Some(mut terminate)) = (interrupt, terminate) else {
            tracing::warn!("no signal handlers: the server stops only when killed");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
        tracing::info!(
            "shutting down: finishing the requests in flight (a second signal stops at once)"
        );
        tokio::spawn(async move {
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
            tracing::warn!(
                "second signal: stopping now, without waiting for the requests in flight"
            );
            std::process::exit(1);
        });
    }
}
