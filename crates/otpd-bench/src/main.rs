//! `otpd-bench`: otpd's load generator (issue 6).
//!
//! ```text
//! otpd-bench --data-dir bench-data provision --accounts 1000000
//! otpd --data-dir bench-data apikey create --account admin      # prints KEY
//! otpd --data-dir bench-data serve --rate-limits off &
//! otpd-bench load --api-key KEY --accounts 1000000 --mode valid --concurrency 64 --server-pid $!
//! ```
//!
//! `provision` writes bench accounts straight through the `Service` (bulk transactions, a
//! progress bar); `load` drives HTTP load at the server over keep-alive connections and
//! reports throughput, latency percentiles, outcomes and the server's CPU and peak RSS, as a
//! table and optionally as JSON lines; `chart` draws those lines as an SVG.

mod accounts;
mod chart;
mod load;
mod procstat;

use anyhow::Context;
use clap::{Parser, Subcommand};
use otpd::config::{CommonArgs, ServeArgs, Settings};
use otpd_core::{BulkAccount, Principal, RequestMeta, TotpOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(name = "otpd-bench", about = "otpd's load generator")]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create bench accounts b0000000... with active authenticators (secrets from --seed).
    Provision {
        /// How many accounts (numbered from --first).
        #[arg(long)]
        accounts: u64,
        /// First account number.
        #[arg(long, default_value_t = 0)]
        first: u64,
        /// Accounts per transaction.
        #[arg(long, default_value_t = 2000)]
        batch: usize,
        /// Seed of the secrets (the load run must use the same).
        #[arg(long, default_value = "otpd-bench")]
        seed: String,
    },
    /// Drive load at a running server and report.
    Load {
        /// The server (loopback only).
        #[arg(long, default_value = "127.0.0.1:8470")]
        target: SocketAddr,
        /// API key to verify with (`otpd apikey create --account admin`).
        #[arg(long, env = "OTPD_BENCH_API_KEY", hide_env_values = true)]
        api_key: String,
        /// `USER:PASSWORD` for mode `ontap` (HTTP Basic).
        #[arg(long, env = "OTPD_BENCH_BASIC", hide_env_values = true)]
        basic: Option<String>,
        /// healthz, valid, wrong or ontap.
        #[arg(long, value_enum, default_value = "valid")]
        mode: load::Mode,
        /// Connections, comma-separated for several runs (e.g. 1,8,64).
        #[arg(long, value_delimiter = ',', default_value = "64")]
        concurrency: Vec<usize>,
        /// Measured seconds per run.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Unmeasured seconds before each run.
        #[arg(long, default_value_t = 1)]
        warmup: u64,
        /// At most this many requests per run.
        #[arg(long, default_value_t = 10_000_000)]
        max_requests: u64,
        /// How many bench accounts to use.
        #[arg(long, default_value_t = 0)]
        accounts: u64,
        /// The first bench account to use (runs in parallel use disjoint ranges).
        #[arg(long, default_value_t = 0)]
        first_account: u64,
        /// Seed used at provisioning.
        #[arg(long, default_value = "otpd-bench")]
        seed: String,
        /// The server's pid, to report its CPU time and peak RSS.
        #[arg(long)]
        server_pid: Option<u32>,
        /// Append each run's report to this file as a JSON line.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Runs per concurrency; with more than one, a median row follows (this machine is
        /// shared and noisy: quote medians).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
        repeat: u32,
    },
    /// Draw the reports of a JSON-lines file (from `load --json`) as an SVG chart.
    Chart {
        /// The reports.
        #[arg(long)]
        input: PathBuf,
        /// The SVG to write.
        #[arg(long)]
        output: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("otpd-bench: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("otpd-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Provision {
            accounts,
            first,
            batch,
            seed,
        } => provision(&cli.common, accounts, first, batch.max(1), &seed).await,
        Command::Chart { input, output } => {
            let text = std::fs::read_to_string(&input)
                .with_context(|| format!("reading {}", input.display()))?;
            let points = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(serde_json::from_str)
                .collect::<Result<Vec<chart::Point>, _>>()
                .context("a line is not a load report")?;
            std::fs::write(&output, chart::svg(&points))
                .with_context(|| format!("writing {}", output.display()))?;
            println!("{} reports drawn to {}", points.len(), output.display());
            Ok(())
        }
        Command::Load {
            target,
            api_key,
            basic,
            mode,
            concurrency,
            duration,
            warmup,
            max_requests,
            accounts,
            first_account,
            seed,
            server_pid,
            json,
            repeat,
        } => {
            println!(
                "{:<8} {:>5} {:>10} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8}  outcomes",
                "mode",
                "conc",
                "requests",
                "req/s",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "max ms",
                "cpu µs/r",
                "rss MiB"
            );
            let authorization = match (mode, basic) {
                (load::Mode::Ontap, Some(basic)) => {
                    format!("Basic {}", data_encoding::BASE64.encode(basic.as_bytes()))
                }
                (load::Mode::Ontap, None) => {
                    anyhow::bail!("mode ontap needs --basic USER:PASSWORD")
                }
                _ => format!("Bearer {api_key}"),
            };
            let pool = load::Pool::new(mode, accounts).await?;
            let mut unexpected = 0;
            for c in concurrency {
                let mut reports = Vec::new();
                for _ in 0..repeat {
                    let report = load::run(
                        load::Load {
                            target,
                            authorization: authorization.clone(),
                            mode,
                            concurrency: c,
                            duration: Duration::from_secs(duration),
                            warmup: Duration::from_secs(warmup),
                            max_requests,
                            accounts,
                            first: first_account,
                            seed: seed.clone(),
                            server_pid,
                        },
                        pool.clone(),
                    )
                    .await?;
                    print_row(&report)?;
                    if let Some(path) = &json {
                        let mut file = std::fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(path)
                            .with_context(|| format!("opening {}", path.display()))?;
                        writeln!(file, "{}", serde_json::to_string(&report)?)?;
                    }
                    unexpected += report.unexpected();
                    reports.push(report);
                }
                if reports.len() > 1 {
                    print_median(&reports);
                }
            }
            // Reported after every run was written, so that the rows can be inspected.
            if unexpected > 0 {
                anyhow::bail!(
                    "{unexpected} answers were not what `{mode:?}` expects (see the outcomes \
                     column): wrong API key, accounts or server, or errors under load; \
                     these figures are not a measurement"
                );
            }
            Ok(())
        }
    }
}

fn print_row(report: &load::Report) -> anyhow::Result<()> {
    let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
    println!(
        "{:<8} {:>5} {:>10} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9} {:>8}  {:?}{}",
        serde_json::to_value(report.mode)?.as_str().unwrap_or("?"),
        report.concurrency,
        report.requests,
        report.rps,
        report.p50_ms,
        report.p90_ms,
        report.p99_ms,
        report.max_ms,
        opt(report.server_cpu_us_per_request),
        opt(report.server_peak_rss_mib),
        report.outcomes,
        if report.pool_wait_seconds > 0.0 {
            format!(
                " (waited {:.1} s for fresh steps: too few accounts)",
                report.pool_wait_seconds
            )
        } else {
            String::new()
        }
    );
    Ok(())
}

/// The median row of repeated runs (the peak RSS is the largest of them).
fn print_median(reports: &[load::Report]) {
    let median = |f: &dyn Fn(&load::Report) -> Option<f64>| {
        chart::median(reports.iter().filter_map(f)).map_or("-".to_owned(), |v| format!("{v:.2}"))
    };
    let rss = reports
        .iter()
        .filter_map(|r| r.server_peak_rss_mib)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    println!(
        "median of {} runs: {:.0} req/s (range {:.0}–{:.0}), p50 {} ms, p99 {} ms, server {} µs/req, peak RSS {} MiB",
        reports.len(),
        chart::median(reports.iter().map(|r| r.rps)).unwrap_or(0.0),
        reports.iter().map(|r| r.rps).fold(f64::INFINITY, f64::min),
        reports.iter().map(|r| r.rps).fold(0.0, f64::max),
        median(&|r| Some(r.p50_ms)),
        median(&|r| Some(r.p99_ms)),
        median(&|r| r.server_cpu_us_per_request),
        rss.map_or("-".to_owned(), |v| format!("{v:.1}")),
    );
}

async fn provision(
    common: &CommonArgs,
    count: u64,
    first: u64,
    batch: usize,
    seed: &str,
) -> anyhow::Result<()> {
    let settings = Settings::resolve(common, &ServeArgs::default())?;
    let service = otpd::boot::open(&settings, otpd::boot::Create::Yes).await?;
    let bar =
        indicatif::ProgressBar::new(count).with_style(indicatif::ProgressStyle::with_template(
            "provisioning {bar:40} {pos}/{len} accounts ({per_sec}, {eta} left)",
        )?);
    let started = Instant::now();
    let meta = RequestMeta::cli();
    let mut next = first;
    let end = first + count;
    while next < end {
        let upto = (next + batch as u64).min(end);
        let accounts = (next..upto)
            .map(|i| {
                Ok(BulkAccount {
                    username: accounts::username(i),
                    secret: accounts::secret(seed, i)?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        service
            .provision_bulk(&Principal::Cli, &accounts, &TotpOptions::default(), &meta)
            .await?;
        bar.inc(upto - next);
        next = upto;
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "provisioned {count} accounts in {secs:.1} s ({:.0}/s)",
        count as f64 / secs.max(1e-9)
    );
    service.db().close().await;
    Ok(())
}
