//! Settings: every one is a command-line flag, an `OTPD_*` environment variable and a key in
//! an optional TOML file (`--config`), in that order of precedence. Unknown TOML keys are
//! errors. The master key itself is never a flag (it would show in `ps`): it comes from
//! `OTPD_MASTER_KEY`, a key file, or the data directory.

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the data lives and how to reach the database: shared by every command.
#[derive(Debug, Clone, Default, Args)]
pub struct CommonArgs {
    /// TOML configuration file.
    #[arg(long, env = "OTPD_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Data directory for the embedded database and the generated master key [default: ./otpd-data].
    #[arg(long, env = "OTPD_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Database URL (sqlite://… or postgres://…) [default: SQLite in the data directory].
    #[arg(long, env = "OTPD_DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// File holding the base64 master key [default: OTPD_MASTER_KEY, else master.key in the data directory].
    #[arg(long, env = "OTPD_MASTER_KEY_FILE", global = true)]
    pub master_key_file: Option<PathBuf>,
}

/// Server settings (`otpd serve`).
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8470].
    #[arg(long, env = "OTPD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Per-address rate limits: on or off [default: on].
    #[arg(long, env = "OTPD_RATE_LIMITS")]
    pub rate_limits: Option<Switch>,
    /// Password/second-factor attempts per address per minute [default: 20].
    #[arg(long, env = "OTPD_LOGIN_RATE")]
    pub login_rate: Option<u32>,
    /// Failed (401/403/429) requests per address per minute before it is refused [default: 60].
    #[arg(long, env = "OTPD_FAILURE_RATE")]
    pub failure_rate: Option<u32>,
    /// Largest request body in bytes [default: 1048576].
    #[arg(long, env = "OTPD_BODY_LIMIT")]
    pub body_limit: Option<usize>,
    /// Request timeout in seconds [default: 30].
    #[arg(long, env = "OTPD_REQUEST_TIMEOUT")]
    pub request_timeout: Option<u64>,
    /// Database connections per instance (SQLite: readers, beside its one writer) [default: 8].
    #[arg(long, env = "OTPD_DB_MAX_CONNECTIONS")]
    pub db_max_connections: Option<u32>,
    /// Seconds to wait for a free database connection before answering 503 [default: 5].
    #[arg(long, env = "OTPD_DB_ACQUIRE_TIMEOUT")]
    pub db_acquire_timeout: Option<u64>,
    /// Longest database statement in seconds (PostgreSQL statement_timeout; SQLite: wait for
    /// another process's write lock) [default: 10].
    #[arg(long, env = "OTPD_DB_STATEMENT_TIMEOUT")]
    pub db_statement_timeout: Option<u64>,
    /// Concurrent Argon2 password hashes [default: number of CPUs].
    #[arg(long, env = "OTPD_PASSWORD_HASH_CONCURRENCY")]
    pub password_hash_concurrency: Option<usize>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "OTPD_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Seconds a connection may take to send a request's headers, from when it connected or
    /// finished its previous response [default: 10].
    #[arg(long, env = "OTPD_HEADER_READ_TIMEOUT")]
    pub header_read_timeout: Option<u64>,
    /// Seconds a connection may stay open with no request in flight and no byte moving
    /// before it is closed (HTTP keep-alive) [default: 60].
    #[arg(long, env = "OTPD_IDLE_TIMEOUT")]
    pub idle_timeout: Option<u64>,
    /// Open connections (WebSockets included) from one address at most; more are closed at
    /// once [default: 256].
    #[arg(long, env = "OTPD_MAX_CONNECTIONS_PER_ADDRESS")]
    pub max_connections_per_address: Option<usize>,
    /// Seconds a WebSocket (TrueNAS) may stay open without logging in [default: 30].
    #[arg(long, env = "OTPD_WEBSOCKET_LOGIN_TIMEOUT")]
    pub websocket_login_timeout: Option<u64>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "OTPD_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "OTPD_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a self-signed certificate generated once and kept in the data
    /// directory (`tls-cert.pem`, `tls-key.pem`); its SHA-256 fingerprint is printed at start.
    #[arg(long, env = "OTPD_TLS_SELF_SIGNED")]
    pub tls_self_signed: Option<Switch>,
    /// The ONTAP dialect at `/api/security/…`, `/api/svm/…`, `/api/cluster`: on or off
    /// [default: on].
    #[arg(long, env = "OTPD_ONTAP")]
    pub ontap: Option<Switch>,
    /// The Rocket.Chat dialect under --rocketchat-prefix: on or off [default: on].
    #[arg(long, env = "OTPD_ROCKETCHAT")]
    pub rocketchat: Option<Switch>,
    /// Where the Rocket.Chat dialect is served: clients are given `<server><prefix>` as
    /// their Rocket.Chat server [default: /rocketchat].
    #[arg(long, env = "OTPD_ROCKETCHAT_PREFIX", value_name = "PATH")]
    pub rocketchat_prefix: Option<String>,
    /// The Zimbra dialect at `/service/soap` and `/service/admin/soap`: on or off
    /// [default: on].
    #[arg(long, env = "OTPD_ZIMBRA")]
    pub zimbra: Option<Switch>,
    /// Reverse proxies whose `Forwarded` / `X-Forwarded-For` headers name the client, as
    /// addresses or CIDR blocks separated by commas (e.g. `10.0.0.0/8,127.0.0.1`)
    /// [default: none: the socket's address is the client's].
    #[arg(
        long,
        env = "OTPD_TRUSTED_PROXIES",
        value_name = "CIDRS",
        value_delimiter = ','
    )]
    pub trusted_proxies: Option<Vec<String>>,
    /// The header the trusted proxies append the client's address to: `x-forwarded-for` or
    /// `forwarded` (RFC 7239); the other is never read [default: x-forwarded-for].
    #[arg(long, env = "OTPD_TRUSTED_PROXY_HEADER", value_name = "HEADER")]
    pub trusted_proxy_header: Option<String>,
    /// Prometheus metrics at `/metrics`: on or off (off: nothing is recorded and `/metrics`
    /// is not served) [default: on].
    #[arg(long, env = "OTPD_METRICS")]
    pub metrics: Option<Switch>,
    /// Serve `/metrics` on this address instead of the main listener (plain HTTP, e.g.
    /// `127.0.0.1:9470`) [default: the main listener].
    #[arg(long, env = "OTPD_METRICS_LISTEN", value_name = "ADDRESS")]
    pub metrics_listen: Option<SocketAddr>,
}

/// `on`/`off` (also `true`/`false`, `1`/`0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "SwitchRepr")]
pub struct Switch(pub bool);

#[derive(Deserialize)]
#[serde(untagged)]
enum SwitchRepr {
    Bool(bool),
    Text(String),
}

impl TryFrom<SwitchRepr> for Switch {
    type Error = String;
    fn try_from(r: SwitchRepr) -> Result<Self, String> {
        match r {
            SwitchRepr::Bool(b) => Ok(Switch(b)),
            SwitchRepr::Text(t) => t.parse(),
        }
    }
}

impl std::str::FromStr for Switch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "on" | "true" | "1" | "yes" => Ok(Switch(true)),
            "off" | "false" | "0" | "no" => Ok(Switch(false)),
            _ => Err(format!("expected on or off, got {s:?}")),
        }
    }
}

/// Where the HTTPS certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// PEM files given by the operator.
    Files {
        /// The certificate chain.
        cert: PathBuf,
        /// Its private key.
        key: PathBuf,
    },
    /// Generated once, kept in the data directory.
    SelfSigned,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The TOML file: the same settings, snake_case keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    master_key_file: Option<PathBuf>,
    listen: Option<SocketAddr>,
    rate_limits: Option<Switch>,
    login_rate: Option<u32>,
    failure_rate: Option<u32>,
    body_limit: Option<usize>,
    request_timeout: Option<u64>,
    db_max_connections: Option<u32>,
    db_acquire_timeout: Option<u64>,
    db_statement_timeout: Option<u64>,
    password_hash_concurrency: Option<usize>,
    log_format: Option<LogFormat>,
    header_read_timeout: Option<u64>,
    idle_timeout: Option<u64>,
    max_connections_per_address: Option<usize>,
    websocket_login_timeout: Option<u64>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_self_signed: Option<Switch>,
    ontap: Option<Switch>,
    rocketchat: Option<Switch>,
    rocketchat_prefix: Option<String>,
    zimbra: Option<Switch>,
    trusted_proxies: Option<Vec<String>>,
    trusted_proxy_header: Option<String>,
    metrics: Option<Switch>,
    metrics_listen: Option<SocketAddr>,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Database URL.
    pub database_url: String,
    /// Master key file, if one was named.
    pub master_key_file: Option<PathBuf>,
    /// Listen address.
    pub listen: SocketAddr,
    /// Whether per-address rate limits apply.
    pub rate_limits: bool,
    /// Login attempts per address per minute.
    pub login_rate: u32,
    /// Failed requests per address per minute.
    pub failure_rate: u32,
    /// Body limit in bytes.
    pub body_limit: usize,
    /// Request timeout.
    pub request_timeout: Duration,
    /// Connections per instance.
    pub db_max_connections: u32,
    /// Wait for a free connection.
    pub db_acquire_timeout: Duration,
    /// Longest statement.
    pub db_statement_timeout: Duration,
    /// Concurrent password hashes.
    pub password_hash_concurrency: usize,
    /// Log format.
    pub log_format: LogFormat,
    /// Longest wait for a request's headers.
    pub header_read_timeout: Duration,
    /// Longest idle time of a connection.
    pub idle_timeout: Duration,
    /// Open connections per address at most.
    pub max_connections_per_address: usize,
    /// Longest time a WebSocket may stay open without logging in.
    pub websocket_login_timeout: Duration,
    /// HTTPS on the listener, when set.
    pub tls: Option<Tls>,
    /// Whether the ONTAP dialect is served.
    pub ontap: bool,
    /// Where the Rocket.Chat dialect is served (`/rocketchat`), if it is.
    pub rocketchat: Option<String>,
    /// Whether the Zimbra dialect is served.
    pub zimbra: bool,
    /// Proxies trusted to name the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The header they name it in.
    pub trusted_proxy_header: crate::app::client::ProxyHeader,
    /// Whether metrics are recorded and served.
    pub metrics: bool,
    /// Where `/metrics` is served when not on the main listener.
    pub metrics_listen: Option<SocketAddr>,
}

impl Settings {
    /// Merges flags/environment (already merged by clap) over the TOML file over defaults.
    pub fn resolve(common: &CommonArgs, serve: &ServeArgs) -> anyhow::Result<Self> {
        let file = match &common.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("in {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let data_dir = common
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./otpd-data"));
        let database_url = common
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| sqlite_url(&data_dir.join("otpd.db")));
        let settings = Settings {
            master_key_file: common.master_key_file.clone().or(file.master_key_file),
            listen: serve
                .listen
                .or(file.listen)
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8470))),
            rate_limits: serve.rate_limits.or(file.rate_limits).is_none_or(|s| s.0),
            login_rate: serve.login_rate.or(file.login_rate).unwrap_or(20),
            failure_rate: serve.failure_rate.or(file.failure_rate).unwrap_or(60),
            body_limit: serve.body_limit.or(file.body_limit).unwrap_or(1024 * 1024),
            request_timeout: Duration::from_secs(
                serve.request_timeout.or(file.request_timeout).unwrap_or(30),
            ),
            db_max_connections: serve
                .db_max_connections
                .or(file.db_max_connections)
                .unwrap_or(8),
            db_acquire_timeout: Duration::from_secs(
                serve
                    .db_acquire_timeout
                    .or(file.db_acquire_timeout)
                    .unwrap_or(5),
            ),
            db_statement_timeout: Duration::from_secs(
                serve
                    .db_statement_timeout
                    .or(file.db_statement_timeout)
                    .unwrap_or(10),
            ),
            password_hash_concurrency: serve
                .password_hash_concurrency
                .or(file.password_hash_concurrency)
                .unwrap_or_else(|| {
                    std::thread::available_parallelism()
                        .map(|n| n.get())
                        .unwrap_or(2)
                }),
            log_format: serve
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
            header_read_timeout: Duration::from_secs(
                serve
                    .header_read_timeout
                    .or(file.header_read_timeout)
                    .unwrap_or(10),
            ),
            idle_timeout: Duration::from_secs(
                serve.idle_timeout.or(file.idle_timeout).unwrap_or(60),
            ),
            max_connections_per_address: serve
                .max_connections_per_address
                .or(file.max_connections_per_address)
                .unwrap_or(256),
            websocket_login_timeout: Duration::from_secs(
                serve
                    .websocket_login_timeout
                    .or(file.websocket_login_timeout)
                    .unwrap_or(30),
            ),
            ontap: serve.ontap.or(file.ontap).is_none_or(|s| s.0),
            metrics: serve.metrics.or(file.metrics).is_none_or(|s| s.0),
            metrics_listen: serve.metrics_listen.or(file.metrics_listen),
            zimbra: serve.zimbra.or(file.zimbra).is_none_or(|s| s.0),
            trusted_proxies: trusted_proxies(
                serve
                    .trusted_proxies
                    .clone()
                    .or(file.trusted_proxies)
                    .unwrap_or_default(),
            )?,
            trusted_proxy_header: match serve
                .trusted_proxy_header
                .clone()
                .or(file.trusted_proxy_header)
                .map(|h| h.to_ascii_lowercase())
                .as_deref()
            {
                None | Some("x-forwarded-for") => crate::app::client::ProxyHeader::XForwardedFor,
                Some("forwarded") => crate::app::client::ProxyHeader::Forwarded,
                Some(other) => bail!(
                    "trusted_proxy_header must be x-forwarded-for or forwarded (got {other:?})"
                ),
            },
            rocketchat: match serve.rocketchat.or(file.rocketchat).is_none_or(|s| s.0) {
                true => Some(rocketchat_prefix(
                    serve
                        .rocketchat_prefix
                        .clone()
                        .or(file.rocketchat_prefix)
                        .unwrap_or_else(|| "/rocketchat".into()),
                )?),
                false => None,
            },
            tls: match (
                serve.tls_cert.clone().or(file.tls_cert),
                serve.tls_key.clone().or(file.tls_key),
                serve
                    .tls_self_signed
                    .or(file.tls_self_signed)
                    .is_some_and(|s| s.0),
            ) {
                (None, None, false) => None,
                (Some(cert), Some(key), false) => Some(Tls::Files { cert, key }),
                (None, None, true) => Some(Tls::SelfSigned),
                (Some(_), None, false) | (None, Some(_), false) => {
                    bail!("tls_cert and tls_key go together")
                }
                _ => bail!("tls_self_signed or tls_cert/tls_key, not both"),
            },
            data_dir,
            database_url,
        };
        if settings.login_rate == 0 || settings.failure_rate == 0 {
            bail!(
                "login_rate and failure_rate must be at least 1 (use rate_limits = off to disable limits)"
            );
        }
        if settings.db_max_connections == 0
            || settings.db_acquire_timeout.is_zero()
            || settings.db_statement_timeout.is_zero()
        {
            bail!(
                "db_max_connections, db_acquire_timeout and db_statement_timeout must be at least 1"
            );
        }
        if settings.metrics_listen.is_some() && !settings.metrics {
            bail!("metrics_listen needs metrics on");
        }
        if settings
            .metrics_listen
            .is_some_and(|m| m == settings.listen && m.port() != 0)
        {
            bail!("metrics_listen must differ from listen");
        }
        if settings.body_limit < 1024 {
            bail!("body_limit must be at least 1024 bytes");
        }
        if settings.header_read_timeout.is_zero()
            || settings.idle_timeout.is_zero()
            || settings.websocket_login_timeout.is_zero()
            || settings.max_connections_per_address == 0
        {
            bail!(
                "header_read_timeout, idle_timeout, websocket_login_timeout and max_connections_per_address must be at least 1"
            );
        }
        Ok(settings)
    }
}

/// First path segments other doors serve (or will): a prefix must not start with one.
const TAKEN_SEGMENTS: [&str; 10] = [
    "v1",
    "api",
    "healthz",
    "readyz",
    "docs",
    "openapi.json",
    "websocket",
    "service",
    "ui",
    "metrics",
];

/// A dialect's path prefix: `/` and one or more segments of letters, digits, `-`, `_`,
/// `.` and `~` (no `.`/`..`, no trailing `/`), whose first segment no other door uses.
/// The trusted proxies: each an address (`10.1.2.3`, `::1`) or a CIDR block (`10.0.0.0/8`).
fn trusted_proxies(entries: Vec<String>) -> anyhow::Result<Vec<ipnet::IpNet>> {
    entries
        .iter()
        .map(|e| e.trim())
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.parse::<ipnet::IpNet>()
                .or_else(|_| e.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    anyhow::anyhow!(
                        "trusted_proxies: {e:?} is neither an address nor a CIDR block (e.g. 10.0.0.0/8)"
                    )
                })
        })
        .collect::<anyhow::Result<Vec<_>>>()
        .inspect(|nets| {
            if nets.iter().any(|n| n.prefix_len() == 0) {
                tracing::warn!(
                    "trusted_proxies includes every address (a /0 block): any client can then name its own address"
                );
            }
        })
}

fn rocketchat_prefix(prefix: String) -> anyhow::Result<String> {
    let Some(rest) = prefix.strip_prefix('/') else {
        bail!("rocketchat_prefix must start with '/' (e.g. /rocketchat)");
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let valid = |segment: &&str| {
        !segment.is_empty()
            && *segment != "."
            && *segment != ".."
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
    };
    if !segments.iter().all(valid) {
        bail!(
            "rocketchat_prefix must be '/' and path segments of letters, digits, '-', '_', '.', '~' (got {prefix:?})"
        );
    }
    if segments
        .first()
        .is_some_and(|first| TAKEN_SEGMENTS.contains(&first.to_ascii_lowercase().as_str()))
    {
        bail!(
            "rocketchat_prefix {prefix:?} is served by another door; choose another (e.g. /rocketchat)"
        );
    }
    Ok(prefix)
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}
