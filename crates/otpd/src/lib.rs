//! The otpd server: configuration, boot path, the native REST API, the product dialects
//! (TrueNAS) and the admin command line, all on `otpd_core::Service`.

pub mod boot;
pub mod cli;
pub mod config;
pub mod http;
pub mod json;
pub mod qr;
pub mod server;
pub mod truenas;

/// Starts logging to standard error (`OTPD_LOG` or `RUST_LOG` filter, default `info`).
pub fn init_logging(format: config::LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("OTPD_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal; files and log collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        config::LogFormat::Json => builder.json().try_init(),
        config::LogFormat::Text => builder.try_init(),
    };
}
