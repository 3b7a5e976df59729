//! Driving load: `concurrency` workers, each on its own keep-alive HTTP/1.1 connection,
//! sending one request after another until the deadline or the request budget is reached.
//!
//! Valid-code mode verifies as real logins do: every request claims a fresh time step of its
//! account. Each account is used at most once per step (a per-account "last step" array
//! enforces it); when every account has been used in the current step, workers wait for the
//! next one and the wait is reported, so a pool too small for the rate shows up as such
//! rather than as replays. The accounts' state lives in a [`Pool`] shared by the runs of one
//! invocation (repeats, concurrency sweeps), which starts at a step boundary, since an
//! earlier invocation may have used accounts in the current step. Wrong-code mode sends a wrong code to each account in turn
//! (failure counting and lockout run as they would under attack).

use crate::accounts;
use crate::procstat;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;

/// What the requests do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `GET /healthz`: the same run's baseline (HTTP, routing, middleware; no database).
    Healthz,
    /// Verification of a valid, unused code.
    Valid,
    /// Verification of a wrong code.
    Wrong,
    /// `GET /api/cluster` of the ONTAP dialect with HTTP Basic (`--basic`): what a
    /// remembered password costs per request.
    Ontap,
}

/// One run's settings.
#[derive(Debug, Clone)]
pub struct Load {
    /// The server (loopback only).
    pub target: SocketAddr,
    /// The `Authorization` header: an API key of an account allowed to verify as a bearer
    /// token, or (mode `ontap`) HTTP Basic.
    pub authorization: String,
    /// What to send.
    pub mode: Mode,
    /// Connections, each with one request in flight.
    pub concurrency: usize,
    /// Measured time (after `warmup`).
    pub duration: Duration,
    /// Unmeasured time first.
    pub warmup: Duration,
    /// Upper bound on requests sent.
    pub max_requests: u64,
    /// Bench accounts `first..first + accounts` are used (they must exist on the server).
    pub accounts: u64,
    /// The first account used (so that runs in parallel can use disjoint accounts).
    pub first: u64,
    /// Their seed.
    pub seed: String,
    /// The server's pid, for CPU and memory.
    pub server_pid: Option<u32>,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Mode.
    pub mode: Mode,
    /// Connections.
    pub concurrency: usize,
    /// Measured seconds.
    pub seconds: f64,
    /// Requests answered in the measured time.
    pub requests: u64,
    /// Requests per second.
    pub rps: f64,
    /// Latency percentiles and maximum, in milliseconds.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
    /// Answers by outcome (`valid`, `invalid`, `replayed`, `locked`, `ok`, `http_503`, ...).
    pub outcomes: BTreeMap<String, u64>,
    /// Transport errors (reconnected).
    pub errors: u64,
    /// Seconds workers waited for a fresh step (valid mode: the account pool was used up).
    pub pool_wait_seconds: f64,
    /// Server CPU seconds in the measured time, if its pid was given.
    pub server_cpu_seconds: Option<f64>,
    /// Server CPU per request, microseconds.
    pub server_cpu_us_per_request: Option<f64>,
    /// Largest server RSS seen during the run, MiB.
    pub server_peak_rss_mib: Option<f64>,
}

impl Report {
    /// Answers that are not what the mode asks for: a throughput of 401s (a wrong API key)
    /// or of 503s measures nothing, so such a run must not pass for a measurement.
    pub fn unexpected(&self) -> u64 {
        let expected: &[&str] = match self.mode {
            Mode::Healthz | Mode::Ontap => &["ok"],
            Mode::Valid => &["valid"],
            // With lockout on, an account's later wrong codes find it locked.
            Mode::Wrong => &["invalid", "locked"],
        };
        self.outcomes
            .iter()
            .filter(|(k, _)| !expected.contains(&k.as_str()))
            .map(|(_, v)| v)
            .sum()
    }
}

/// The bench accounts of an invocation: which one comes next, and which step each last
/// used, carried from run to run so that repeated runs never wait for a fresh step.
pub struct Pool {
    next: AtomicU64,
    /// Per account: the last step used + 1 (0: never). Empty unless in valid mode.
    last_step: Vec<AtomicU64>,
}

impl Pool {
    /// The pool of `accounts` accounts for `mode`. In valid mode it waits for the next step
    /// boundary, where every account is fresh whatever earlier invocations used.
    pub async fn new(mode: Mode, accounts: u64) -> anyhow::Result<Arc<Self>> {
        let accounts = usize::try_from(accounts)?;
        let last_step = if mode == Mode::Valid {
            let now = unix_now();
            tokio::time::sleep(Duration::from_secs_f64(30.0 - (now % 30.0) + 0.05)).await;
            (0..accounts).map(|_| AtomicU64::new(0)).collect()
        } else {
            Vec::new()
        };
        // Each invocation starts its round at another account (taken from the clock), so
        // that invocation after invocation of wrong codes spreads its failures over all the
        // accounts instead of piling them onto the first ones of the round until they lock.
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::from(d.subsec_nanos()) ^ d.as_secs())
            .unwrap_or(0)
            % u64::try_from(accounts.max(1))?;
        Ok(Arc::new(Pool {
            next: AtomicU64::new(start),
            last_step,
        }))
    }
}

struct Shared {
    load: Load,
    pool: Arc<Pool>,
    sent: AtomicU64,
    stop: AtomicBool,
    measuring: AtomicBool,
}

#[derive(Default)]
struct WorkerResult {
    latencies_us: Vec<u32>,
    outcomes: BTreeMap<String, u64>,
    errors: u64,
    pool_wait: Duration,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Shared {
    /// The next request's path and body; in valid mode waits (and accounts for it) until
    /// an account can claim a fresh step.
    async fn next_request(&self, wait: &mut Duration) -> anyhow::Result<(String, Bytes)> {
        match self.load.mode {
            Mode::Healthz => return Ok(("/healthz".into(), Bytes::new())),
            Mode::Ontap => return Ok(("/api/cluster".into(), Bytes::new())),
            Mode::Valid | Mode::Wrong => {}
        }
        let n = self.pool.next.fetch_add(1, Ordering::Relaxed);
        let slot_index = scatter(n, self.load.accounts.max(1));
        let i = self.load.first + slot_index;
        let now = loop {
            let now = unix_now();
            let step = (now as u64) / 30;
            if self.load.mode == Mode::Wrong {
                break now as u64;
            }
            let Some(slot) = usize::try_from(slot_index)
                .ok()
                .and_then(|i| self.pool.last_step.get(i))
            else {
                anyhow::bail!("account index out of range");
            };
            let last = slot.load(Ordering::Acquire);
            if last < step + 1
                && slot
                    .compare_exchange(last, step + 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                break now as u64;
            }
            // Used in this step already: wait for the next one.
            let until_next = 30.0 - (now % 30.0) + 0.01;
            let started = Instant::now();
            tokio::time::sleep(Duration::from_secs_f64(until_next)).await;
            *wait += started.elapsed();
            if self.stop.load(Ordering::Relaxed) {
                anyhow::bail!("stopped");
            }
        };
        let (valid, wrong) = accounts::codes(&self.load.seed, i, now)?;
        let code = if self.load.mode == Mode::Valid {
            valid
        } else {
            wrong
        };
        Ok((
            format!("/api/v1/accounts/{}/totp/verify", accounts::username(i)),
            Bytes::from(format!("{{\"code\":\"{code}\"}}")),
        ))
    }
}

/// The `n`th account to use out of `accounts`: every account once per round, in an order
/// that jumps across the whole range, as logins arrive in real life. (In numbering order,
/// consecutive requests would touch neighbouring rows and index entries, and the database
/// would look faster than it is: measured with 1,000,000 accounts, 29k valid codes/s in
/// order against 11k scattered.)
fn scatter(n: u64, accounts: u64) -> u64 {
    ((u128::from(n % accounts) * u128::from(stride(accounts))) % u128::from(accounts)) as u64
}

/// A multiplier that permutes `0..accounts` (coprime to it) and sends consecutive `n` far
/// apart: the coprime nearest above `accounts` × 0.618 (the golden ratio's fraction), so
/// that consecutive requests land about 62 % of the range apart, never a few rows apart.
fn stride(accounts: u64) -> u64 {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let mut stride = (u128::from(accounts) * 618_034 / 1_000_000) as u64;
    while gcd(stride.max(1), accounts) != 1 {
        stride += 1;
    }
    stride.max(1)
}

fn outcome(status: u16, body: &[u8]) -> &'static str {
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    match status {
        200 if has(b"\"valid\":true") => "valid",
        200 if has(b"\"reason\":\"invalid\"") => "invalid",
        200 if has(b"\"reason\":\"replayed\"") => "replayed",
        200 if has(b"\"reason\":\"locked\"") => "locked",
        200 => "ok",
        401 => "http_401",
        403 => "http_403",
        429 => "http_429",
        503 => "http_503",
        _ => "http_other",
    }
}

async fn worker(shared: Arc<Shared>) -> WorkerResult {
    let mut result = WorkerResult::default();
    'connect: while !shared.stop.load(Ordering::Relaxed) {
        let Ok(stream) = TcpStream::connect(shared.load.target).await else {
            result.errors += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok((mut sender, conn)) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await
        else {
            result.errors += 1;
            continue;
        };
        tokio::spawn(conn);
        let auth = shared.load.authorization.clone();
        while !shared.stop.load(Ordering::Relaxed) {
            if shared.sent.fetch_add(1, Ordering::Relaxed) >= shared.load.max_requests {
                shared.stop.store(true, Ordering::Relaxed);
                break;
            }
            let (path, body) = match shared.next_request(&mut result.pool_wait).await {
                Ok(r) => r,
                Err(_) => break 'connect,
            };
            let method = if body.is_empty() { "GET" } else { "POST" };
            let Ok(request) = Request::builder()
                .method(method)
                .uri(path)
                .header("host", "127.0.0.1")
                .header("authorization", &auth)
                .header("content-type", "application/json")
                .body(Full::new(body))
            else {
                result.errors += 1;
                continue;
            };
            let started = Instant::now();
            let response = match sender.send_request(request).await {
                Ok(r) => r,
                Err(_) => {
                    result.errors += 1;
                    continue 'connect;
                }
            };
            let status = response.status().as_u16();
            let Ok(collected) = response.into_body().collect().await else {
                result.errors += 1;
                continue 'connect;
            };
            let elapsed = started.elapsed();
            if shared.measuring.load(Ordering::Relaxed) {
                let bytes = collected.to_bytes();
                *result
                    .outcomes
                    .entry(outcome(status, &bytes).to_owned())
                    .or_default() += 1;
                result
                    .latencies_us
                    .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
            }
        }
    }
    result
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    f64::from(sorted.get(rank).copied().unwrap_or(0)) / 1000.0
}

/// Runs one load and measures it.
pub async fn run(load: Load, pool: Arc<Pool>) -> anyhow::Result<Report> {
    anyhow::ensure!(
        load.target.ip().is_loopback(),
        "the load generator targets loopback only"
    );
    anyhow::ensure!(load.concurrency >= 1, "concurrency must be at least 1");
    anyhow::ensure!(
        load.duration <= Duration::from_secs(600) && load.warmup <= Duration::from_secs(60),
        "runs are bounded: at most 600 s measured and 60 s warm-up"
    );
    anyhow::ensure!(
        matches!(load.mode, Mode::Healthz | Mode::Ontap) || load.accounts > 0,
        "verification modes need --accounts"
    );
    anyhow::ensure!(
        load.mode != Mode::Valid || pool.last_step.len() as u64 >= load.accounts,
        "the pool is smaller than --accounts"
    );
    let shared = Arc::new(Shared {
        pool,
        sent: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        measuring: AtomicBool::new(false),
        load,
    });
    let workers: Vec<_> = (0..shared.load.concurrency)
        .map(|_| tokio::spawn(worker(shared.clone())))
        .collect();
    tokio::time::sleep(shared.load.warmup).await;
    let pid = shared.load.server_pid;
    let cpu_before = pid.and_then(|p| procstat::cpu_time(p).ok());
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = pid.map(|p| {
        let peak = peak.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            while !shared.stop.load(Ordering::Relaxed) {
                if let Ok(rss) = procstat::rss(p) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });
    shared.measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let deadline = started + shared.load.duration;
    while Instant::now() < deadline && !shared.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shared.measuring.store(false, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    let cpu_after = pid.and_then(|p| procstat::cpu_time(p).ok());
    shared.stop.store(true, Ordering::Relaxed);
    let mut total = WorkerResult::default();
    for w in workers {
        let r = w.await?;
        total.latencies_us.extend(r.latencies_us);
        total.errors += r.errors;
        total.pool_wait += r.pool_wait;
        for (k, v) in r.outcomes {
            *total.outcomes.entry(k).or_default() += v;
        }
    }
    if let Some(s) = sampler {
        s.await?;
    }
    total.latencies_us.sort_unstable();
    let requests = total.latencies_us.len() as u64;
    let cpu = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64()),
        _ => None,
    };
    let peak = peak.load(Ordering::Relaxed);
    Ok(Report {
        mode: shared.load.mode,
        concurrency: shared.load.concurrency,
        seconds,
        requests,
        rps: requests as f64 / seconds.max(1e-9),
        p50_ms: percentile(&total.latencies_us, 50.0),
        p90_ms: percentile(&total.latencies_us, 90.0),
        p99_ms: percentile(&total.latencies_us, 99.0),
        max_ms: percentile(&total.latencies_us, 100.0),
        outcomes: total.outcomes,
        errors: total.errors,
        pool_wait_seconds: total.pool_wait.as_secs_f64(),
        server_cpu_seconds: cpu,
        server_cpu_us_per_request: cpu.map(|c| c * 1e6 / (requests.max(1) as f64)),
        server_peak_rss_mib: (peak > 0).then(|| peak as f64 / (1024.0 * 1024.0)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_other_than_the_modes_are_unexpected() {
        let report = |mode, outcomes: &[(&str, u64)]| Report {
            mode,
            concurrency: 1,
            seconds: 1.0,
            requests: outcomes.iter().map(|(_, n)| n).sum(),
            rps: 0.0,
            p50_ms: 0.0,
            p90_ms: 0.0,
            p99_ms: 0.0,
            max_ms: 0.0,
            outcomes: outcomes
                .iter()
                .map(|(k, n)| ((*k).to_owned(), *n))
                .collect(),
            errors: 0,
            pool_wait_seconds: 0.0,
            server_cpu_seconds: None,
            server_cpu_us_per_request: None,
            server_peak_rss_mib: None,
        };
        assert_eq!(
            report(Mode::Wrong, &[("invalid", 5), ("locked", 2)]).unexpected(),
            0
        );
        assert_eq!(report(Mode::Wrong, &[("http_401", 9)]).unexpected(), 9);
        assert_eq!(
            report(Mode::Valid, &[("valid", 5), ("replayed", 1)]).unexpected(),
            1
        );
        assert_eq!(
            report(Mode::Healthz, &[("ok", 3), ("http_503", 1)]).unexpected(),
            1
        );
    }

    #[test]
    fn scatter_uses_every_account_once_per_round_out_of_order() {
        for accounts in [1u64, 2, 7, 10_000, 1_000_000, 1_000_003 * 2] {
            let round: Vec<u64> = (0..accounts.min(20_000))
                .map(|n| scatter(n, accounts))
                .collect();
            if accounts <= 20_000 {
                let mut sorted = round.clone();
                sorted.sort_unstable();
                assert_eq!(sorted, (0..accounts).collect::<Vec<_>>(), "{accounts}");
            }
            assert!(round.iter().all(|&i| i < accounts));
            assert_eq!(scatter(accounts, accounts), scatter(0, accounts));
        }
        for accounts in [10_000u64, 1_000_000] {
            let apart = scatter(1, accounts).abs_diff(scatter(2, accounts));
            assert!(apart > accounts / 4, "{accounts}: {apart}");
        }
    }
}
