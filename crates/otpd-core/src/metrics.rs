//! The core's Prometheus metrics (issue 20), counted where the core decides, so that every
//! front door feeds them alike. Names are fixed (dashboards must never break; see
//! docs/operations.md for each):
//!
//! - `otpd_verifications_total{result,method,front_door}`, `otpd_logins_total{result,factor}`,
//!   `otpd_enrollments_total{stage}`, `otpd_lockouts_total` — counters;
//! - `otpd_verification_duration_seconds`, `otpd_group_commit_batch_size`,
//!   `otpd_group_commit_wait_seconds` — histograms;
//! - `otpd_database_connections{pool,state}` — read from the pools at each scrape;
//! - `otpd_accounts`, `otpd_accounts_enrolled`, `otpd_authenticators_locked`,
//!   `otpd_accounts_recovery_codes_low` — read from the database at scrape time, at most
//!   every 30 s ([`crate::Service::refresh_database_gauges`]);
//! - `otpd_build_info{version}`.
//!
//! Every family is encoded in the order it is registered here, its series in a fixed order.
//! Recording costs the hot path no lock, no allocation and no hashing: every labelled series
//! exists from the start (at zero) in a fixed array indexed by its labels, and a counter or a
//! histogram bucket is an atomic add. `prometheus-client`'s own histogram takes a mutex per
//! observation, so [`Histogram`] here keeps atomic buckets and hands them to the crate's
//! encoder at scrape time. No label carries a name, an address, a key or a token.
//!
//! Units are in the names (`_seconds`) without OpenMetrics' optional `# UNIT` line: some
//! parsers refuse it on histograms.

use crate::{Door, FactorMethod, VerifyOutcome, VerifyReason};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// `result` label values of `otpd_verifications_total`, in index order.
const RESULTS: [&str; 6] = [
    "accepted",
    "rejected",
    "replayed",
    "locked",
    "disabled",
    "not_enrolled",
];
/// `method` label values, in index order.
const METHODS: [&str; 2] = ["totp", "recovery_code"];
/// `front_door` label values, in index order (the native REST API is `native`).
const DOORS: [&str; 7] = [
    "native",
    "truenas",
    "ontap",
    "rocketchat",
    "zimbra",
    "web",
    "cli",
];

/// What a login step decided (`otpd_logins_total{result}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoginResult {
    /// A session was issued.
    Succeeded,
    /// The password was right; a code must follow.
    SecondFactorRequired,
    /// The password was right; the policy wants an authenticator set up first.
    EnrollmentRequired,
    /// A wrong or unknown name, password, code or challenge.
    Rejected,
    /// The account is locked by an administrator, or its authenticator after failures.
    Locked,
}

impl LoginResult {
    fn as_str(self) -> &'static str {
        match self {
            LoginResult::Succeeded => "succeeded",
            LoginResult::SecondFactorRequired => "second_factor_required",
            LoginResult::EnrollmentRequired => "enrollment_required",
            LoginResult::Rejected => "rejected",
            LoginResult::Locked => "locked",
        }
    }
}

/// The factor a login step checked (`otpd_logins_total{factor}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoginFactor {
    Password,
    Totp,
    RecoveryCode,
}

impl LoginFactor {
    fn as_str(self) -> &'static str {
        match self {
            LoginFactor::Password => "password",
            LoginFactor::Totp => "totp",
            LoginFactor::RecoveryCode => "recovery_code",
        }
    }

    /// The factor a code is: a recovery code unless it is digits only (spaces allowed).
    pub(crate) fn of_code(code: &str) -> Self {
        if is_totp_shape(code) {
            LoginFactor::Totp
        } else {
            LoginFactor::RecoveryCode
        }
    }
}

/// The series of `otpd_logins_total` that can happen, in index order: a password step ends
/// in any result, a code step only in a session, a refusal or a lockout.
const LOGIN_SERIES: [(LoginFactor, LoginResult); 11] = [
    (LoginFactor::Password, LoginResult::Succeeded),
    (LoginFactor::Password, LoginResult::SecondFactorRequired),
    (LoginFactor::Password, LoginResult::EnrollmentRequired),
    (LoginFactor::Password, LoginResult::Rejected),
    (LoginFactor::Password, LoginResult::Locked),
    (LoginFactor::Totp, LoginResult::Succeeded),
    (LoginFactor::Totp, LoginResult::Rejected),
    (LoginFactor::Totp, LoginResult::Locked),
    (LoginFactor::RecoveryCode, LoginResult::Succeeded),
    (LoginFactor::RecoveryCode, LoginResult::Rejected),
    (LoginFactor::RecoveryCode, LoginResult::Locked),
];

/// A step in an authenticator's life (`otpd_enrollments_total{stage}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EnrollmentStage {
    /// A pending secret was handed out (self-service enrollment, Zimbra's enablement).
    Started = 0,
    /// A pending secret was confirmed with a code: the authenticator is active.
    Confirmed,
    /// An active authenticator was created at once (admin, CLI, bulk provisioning).
    Provisioned,
    /// An active authenticator got a new secret.
    Renewed,
    /// An authenticator was removed (by its account or reset by an admin).
    Removed,
}

/// `stage` label values, in [`EnrollmentStage`] order.
const STAGES: [&str; 5] = ["started", "confirmed", "provisioned", "renewed", "removed"];

/// Bucket bounds of the duration histograms, in nanoseconds (0.25 ms to 10 s): a verification
/// takes a few milliseconds (the group commit's sync), an Argon2id login tens.
const SECONDS_BOUNDS_NS: [u64; 15] = [
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Bucket bounds of the group commit's batch sizes, in writes (a batch holds 512 at most).
const BATCH_BOUNDS: [u64; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/// A Prometheus histogram of whole-number observations (nanoseconds, writes) whose
/// recording is lock-free: one atomic add for the bucket and one for the sum. The count is
/// the sum of the buckets, read at scrape time, so the two always agree; the sum may be one
/// observation ahead of them while a scrape races a recording. Encoded by
/// `prometheus-client` (the histogram type, cumulative `le` buckets, `_sum`, `_count`).
/// Cheap to clone: the clones share the buckets.
#[derive(Debug, Clone)]
pub struct Histogram(Arc<HistogramInner>);

#[derive(Debug)]
struct HistogramInner {
    /// Upper bounds, in the observations' unit, ascending.
    bounds: &'static [u64],
    /// One per bound, and the last for `+Inf`.
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
    /// Observations per exported unit (1e9 for nanoseconds shown as seconds).
    per_unit: f64,
}

impl Histogram {
    fn new(bounds: &'static [u64], per_unit: f64) -> Self {
        Histogram(Arc::new(HistogramInner {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            per_unit,
        }))
    }

    /// A histogram of durations, exported in seconds (buckets from 0.25 ms to 10 s).
    pub fn seconds() -> Self {
        Self::new(&SECONDS_BOUNDS_NS, 1e9)
    }

    /// Records one observation, in the histogram's unit.
    pub fn observe(&self, value: u64) {
        let inner = &*self.0;
        let bucket = inner.bounds.partition_point(|bound| *bound < value);
        if let Some(count) = inner.buckets.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        inner.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// Records a duration (of a histogram made by [`Histogram::seconds`]).
    pub fn observe_duration(&self, elapsed: Duration) {
        self.observe(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let inner = &*self.0;
        let counts: Vec<u64> = inner
            .buckets
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        // Division, not multiplication by 1e-9: 500_000 / 1e9 is exactly the double nearest
        // 0.0005, so the `le` labels read as written.
        let buckets: Vec<(f64, u64)> = inner
            .bounds
            .iter()
            .map(|b| *b as f64 / inner.per_unit)
            .chain([f64::INFINITY])
            .zip(counts.iter().copied())
            .collect();
        let sum = inner.sum.load(Ordering::Relaxed) as f64 / inner.per_unit;
        encoder.encode_histogram::<NoLabelSet>(sum, counts.iter().sum(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// A counter family whose every series is made at the start, with fixed label values,
/// recorded by index, and encoded in the order the series were made: a scrape's lines stay
/// in one order across restarts (a `Family` encodes in its hash map's order).
#[derive(Debug, Clone)]
struct FixedCounters(Arc<FixedCountersInner>);

#[derive(Debug)]
struct FixedCountersInner {
    name: &'static str,
    help: &'static str,
    /// Each series' labels, in index order.
    labels: Box<[Vec<(&'static str, &'static str)>]>,
    counts: Box<[AtomicU64]>,
}

impl FixedCounters {
    fn new(
        name: &'static str,
        help: &'static str,
        labels: Vec<Vec<(&'static str, &'static str)>>,
    ) -> Self {
        FixedCounters(Arc::new(FixedCountersInner {
            name,
            help,
            counts: labels.iter().map(|_| AtomicU64::new(0)).collect(),
            labels: labels.into_boxed_slice(),
        }))
    }

    /// Adds `n` to series `index` (nothing when there is no such series).
    fn add(&self, index: usize, n: u64) {
        if let Some(count) = self.0.counts.get(index) {
            count.fetch_add(n, Ordering::Relaxed);
        }
    }
}

impl Collector for FixedCounters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let inner = &*self.0;
        let mut family =
            encoder.encode_descriptor(inner.name, inner.help, None, MetricType::Counter)?;
        for (labels, count) in inner.labels.iter().zip(inner.counts.iter()) {
            family
                .encode_family(labels)?
                .encode_counter::<NoLabelSet, _, u64>(&count.load(Ordering::Relaxed), None)?;
        }
        Ok(())
    }
}

/// The gauges read from the database ([`crate::Service::refresh_database_gauges`]).
#[derive(Debug, Default)]
pub(crate) struct DatabaseGauges {
    pub accounts: Gauge,
    pub enrolled: Gauge,
    pub locked: Gauge,
    pub recovery_codes_low: Gauge,
    /// The earliest time to read them again (the service's clock, Unix seconds), or
    /// [`DatabaseGauges::READING`] while a read runs.
    pub next_read: std::sync::atomic::AtomicI64,
}

impl DatabaseGauges {
    /// [`DatabaseGauges::next_read`] while a read runs.
    pub const READING: i64 = i64::MAX;
}

/// One metric with its name and help, as a collector: every family is registered as one,
/// so that a scrape lists them in the order they are registered (a registry encodes its
/// plain metrics before its collectors).
#[derive(Debug)]
struct Named<M> {
    name: &'static str,
    help: &'static str,
    metric: M,
}

impl<M: EncodeMetric + std::fmt::Debug + Send + Sync + 'static> Collector for Named<M> {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let family =
            encoder.encode_descriptor(self.name, self.help, None, self.metric.metric_type())?;
        self.metric.encode(family)
    }
}

/// The connections of the database pools, read at each scrape.
#[derive(Debug)]
struct PoolCollector(crate::store::Db);

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "otpd_database_connections",
            "Open connections of the database pools, in use or idle (SQLite's hot-path readers and group-commit writer are not pooled).",
            None,
            MetricType::Gauge,
        )?;
        for (pool, size, idle) in self.0.pool_sizes() {
            let size = i64::from(size);
            let idle = i64::try_from(idle).unwrap_or(i64::MAX);
            for (state, value) in [("in_use", size.saturating_sub(idle).max(0)), ("idle", idle)] {
                let labels = [("pool", pool), ("state", state)];
                family.encode_family(&labels)?.encode_gauge(&value)?;
            }
        }
        Ok(())
    }
}

/// The core's metrics, and the registry they are in (a front door encodes it).
#[derive(Debug)]
pub struct Metrics {
    /// Off (`--metrics off`): nothing is recorded.
    recording: AtomicBool,
    registry: Registry,
    /// Indexed by result, method and door (see [`Metrics::verification`]).
    verifications: FixedCounters,
    verification_seconds: Histogram,
    /// Indexed as [`LOGIN_SERIES`].
    logins: FixedCounters,
    /// Indexed by [`EnrollmentStage`].
    enrollments: FixedCounters,
    lockouts: Counter,
    batch_size: Histogram,
    commit_wait: Histogram,
    pub(crate) gauges: DatabaseGauges,
}

impl Metrics {
    /// Every series at zero, and the pools of `db` read at each scrape.
    pub(crate) fn new(db: &crate::store::Db) -> Self {
        let mut registry = Registry::default();

        let mut series = Vec::with_capacity(RESULTS.len() * METHODS.len() * DOORS.len());
        for result in RESULTS {
            for method in METHODS {
                for front_door in DOORS {
                    series.push(vec![
                        ("result", result),
                        ("method", method),
                        ("front_door", front_door),
                    ]);
                }
            }
        }
        let verifications = FixedCounters::new(
            "otpd_verifications",
            "Codes checked, by outcome, kind of code and front door.",
            series,
        );
        registry.register_collector(Box::new(verifications.clone()));

        let verification_seconds = Histogram::seconds();
        registry.register_collector(Box::new(Named {
            name: "otpd_verification_duration_seconds",
            help: "Time to check a code and make its outcome durable (claim or count, and audit).",
            metric: verification_seconds.clone(),
        }));

        let logins = FixedCounters::new(
            "otpd_logins",
            "Login steps, by the factor checked and what was decided.",
            LOGIN_SERIES
                .iter()
                .map(|(factor, result)| {
                    vec![("result", result.as_str()), ("factor", factor.as_str())]
                })
                .collect(),
        );
        registry.register_collector(Box::new(logins.clone()));

        let enrollments = FixedCounters::new(
            "otpd_enrollments",
            "Authenticators started, confirmed, provisioned, renewed and removed.",
            STAGES.iter().map(|stage| vec![("stage", *stage)]).collect(),
        );
        registry.register_collector(Box::new(enrollments.clone()));

        let lockouts = Counter::default();
        registry.register_collector(Box::new(Named {
            name: "otpd_lockouts",
            help: "Authenticators locked after too many failed codes.",
            metric: lockouts.clone(),
        }));

        let batch_size = Histogram::new(&BATCH_BOUNDS, 1.0);
        registry.register_collector(Box::new(Named {
            name: "otpd_group_commit_batch_size",
            help: "Writes committed together by SQLite's group-commit writer, per batch.",
            metric: batch_size.clone(),
        }));
        let commit_wait = Histogram::seconds();
        registry.register_collector(Box::new(Named {
            name: "otpd_group_commit_wait_seconds",
            help: "Time from handing a write to SQLite's group-commit writer to its commit.",
            metric: commit_wait.clone(),
        }));

        registry.register_collector(Box::new(PoolCollector(db.clone())));

        let gauges = DatabaseGauges::default();
        registry.register_collector(Box::new(Named {
            name: "otpd_accounts",
            help: "Accounts (read from the database by scrapes 30 s apart at least).",
            metric: gauges.accounts.clone(),
        }));
        registry.register_collector(Box::new(Named {
            name: "otpd_accounts_enrolled",
            help: "Accounts with an active authenticator (read by scrapes 30 s apart at least).",
            metric: gauges.enrolled.clone(),
        }));
        registry.register_collector(Box::new(Named {
            name: "otpd_authenticators_locked",
            help: "Authenticators, active or pending, locked now after failed codes (read by scrapes 30 s apart at least).",
            metric: gauges.locked.clone(),
        }));
        registry.register_collector(Box::new(Named {
            name: "otpd_accounts_recovery_codes_low",
            help: "Accounts with an active authenticator and two or fewer unused recovery codes (read by scrapes 30 s apart at least).",
            metric: gauges.recovery_codes_low.clone(),
        }));

        // A gauge at 1 rather than OpenMetrics' info type, which the classic text format's
        // parsers (`promtool check metrics`) do not know.
        let build = Family::<[(&'static str, &'static str); 1], Gauge>::default();
        build
            .get_or_create(&[("version", env!("CARGO_PKG_VERSION"))])
            .set(1);
        registry.register_collector(Box::new(Named {
            name: "otpd_build_info",
            help: "The running otpd's version.",
            metric: build,
        }));
        Metrics {
            recording: AtomicBool::new(true),
            registry,
            verifications,
            verification_seconds,
            logins,
            enrollments,
            lockouts,
            batch_size,
            commit_wait,
            gauges,
        }
    }

    /// The registry, for a front door to encode (with its own) in the OpenMetrics text
    /// format, served with the content type [`Metrics::CONTENT_TYPE`].
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The content type of the OpenMetrics text format.
    pub const CONTENT_TYPE: &'static str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8";

    /// Stops (or resumes) recording: with metrics off (`--metrics off`) the series stay
    /// where they are, and the hot path skips even the atomic adds.
    pub fn set_recording(&self, on: bool) {
        self.recording.store(on, Ordering::Relaxed);
    }

    /// Whether metrics are recorded.
    pub fn recording(&self) -> bool {
        self.recording.load(Ordering::Relaxed)
    }

    /// Counts a checked code, `outcome` through `door`, that took `elapsed`; `code` tells
    /// the kind of a code that matched nothing (digits only: a TOTP code).
    pub(crate) fn verification(
        &self,
        outcome: &VerifyOutcome,
        code: &str,
        door: Door,
        elapsed: Duration,
    ) {
        if !self.recording() {
            return;
        }
        let result = match (outcome.valid, outcome.reason) {
            (true, _) => 0,
            (false, Some(VerifyReason::Replayed)) => 2,
            (false, Some(VerifyReason::Locked)) => 3,
            (false, Some(VerifyReason::Disabled)) => 4,
            (false, Some(VerifyReason::NotEnrolled)) => 5,
            (false, _) => 1,
        };
        let method = match outcome.method {
            Some(FactorMethod::Totp) => 0,
            Some(FactorMethod::RecoveryCode) => 1,
            None if is_totp_shape(code) => 0,
            None => 1,
        };
        self.verifications.add(
            (result * METHODS.len() + method) * DOORS.len() + door_index(door),
            1,
        );
        self.verification_seconds.observe_duration(elapsed);
    }

    /// Counts a login step.
    pub(crate) fn login(&self, factor: LoginFactor, result: LoginResult) {
        if !self.recording() {
            return;
        }
        if let Some(i) = LOGIN_SERIES.iter().position(|s| *s == (factor, result)) {
            self.logins.add(i, 1);
        }
    }

    /// Counts `n` authenticators reaching `stage`.
    pub(crate) fn enrollment(&self, stage: EnrollmentStage, n: u64) {
        if !self.recording() {
            return;
        }
        self.enrollments.add(stage as usize, n);
    }

    /// Counts an authenticator locked by the failure that reached `max_failures` (where the
    /// write that locked it is applied, whether or not its request still waits).
    pub(crate) fn lockout(&self) {
        if self.recording() {
            self.lockouts.inc();
        }
    }

    /// Records a group-commit batch of `writes`.
    pub(crate) fn commit_batch(&self, writes: usize) {
        if self.recording() {
            self.batch_size
                .observe(u64::try_from(writes).unwrap_or(u64::MAX));
        }
    }

    /// Records how long a write waited for its group commit.
    pub(crate) fn commit_wait(&self, elapsed: Duration) {
        if self.recording() {
            self.commit_wait.observe_duration(elapsed);
        }
    }
}

/// Whether `code` has a TOTP code's shape: digits (and spaces) only.
fn is_totp_shape(code: &str) -> bool {
    code.chars().all(|c| c.is_ascii_digit() || c == ' ')
}

fn door_index(door: Door) -> usize {
    match door {
        Door::Rest => 0,
        Door::Truenas => 1,
        Door::Ontap => 2,
        Door::Rocketchat => 3,
        Door::Zimbra => 4,
        Door::Web => 5,
        Door::Cli => 6,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn encoded(histogram: &Histogram) -> String {
        let mut registry = Registry::default();
        registry.register("h_seconds", "h", histogram.clone());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn a_histogram_counts_each_observation_in_the_first_bucket_that_holds_it() {
        let h = Histogram::seconds();
        h.observe_duration(Duration::from_micros(250)); // on a bound: that bucket (le is ≤)
        h.observe_duration(Duration::from_micros(251));
        h.observe_duration(Duration::from_secs(60)); // beyond every bound: +Inf only
        let text = encoded(&h);
        assert!(
            text.contains("h_seconds_bucket{le=\"0.00025\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("h_seconds_bucket{le=\"0.0005\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("h_seconds_bucket{le=\"10.0\"} 2\n"), "{text}");
        assert!(text.contains("h_seconds_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("h_seconds_count 3\n"), "{text}");
        assert!(text.contains("h_seconds_sum 60.000501\n"), "{text}");
    }
}
