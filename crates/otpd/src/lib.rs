//! The otpd server: configuration, boot path, the front doors — their shared home `app`, the
//! native REST API (`native`), the product dialects (`truenas`) — and the admin command
//! line, all on `otpd_core::Service`.

pub mod app;
pub mod boot;
pub mod cli;
pub mod config;
pub mod connections;
pub mod json;
pub mod native;
pub mod ontap;
pub mod qr;
pub mod rocketchat;
pub mod server;
pub mod tls;
pub mod truenas;
pub mod web;
pub mod zimbra;

/// Starts logging to standard error (`OTPD_LOG` or `RUST_LOG` filter, default `info`).
///
/// Whatever the filter says, the libraries that would print credentials stay quiet below
/// `info`: the WebSocket library logs every frame verbatim at `trace` (TrueNAS passwords,
/// API keys, codes, secrets), and the HTTP/1 and HTTP/2 libraries log headers
/// (`Authorization`) at `trace`. otpd's own events never carry a credential.
pub fn init_logging(format: config::LogFormat) {
    use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let filter = EnvFilter::try_from_env("OTPD_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let no_credentials = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target("tungstenite", LevelFilter::OFF)
        .with_target("tokio_tungstenite", LevelFilter::OFF)
        .with_target("hyper", LevelFilter::INFO)
        .with_target("hyper_util", LevelFilter::INFO)
        .with_target("h2", LevelFilter::INFO);
    // Colours only for a person at a terminal; files and log collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let layer = match format {
        config::LogFormat::Json => layer.json().boxed(),
        config::LogFormat::Text => layer.boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layer.with_filter(no_credentials))
        .try_init();
}
