//! The core's Prometheus counters (issue 20), counted where the core decides, so that every
//! front door feeds them alike. Every series exists from the start (at zero), and recording
//! one is an index into a fixed array of `prometheus-client` counters — each an atomic
//! `fetch_add`: no lock, no allocation, no hashing on the verification path.
//!
//! Names are fixed: `otpd_verifications_total{result,method,front_door}` and
//! `otpd_build_info{version}` so far.

use crate::{Door, FactorMethod, VerifyOutcome, VerifyReason};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// `result` label values, in index order.
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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerificationLabels {
    result: &'static str,
    method: &'static str,
    front_door: &'static str,
}

/// The core's counters, and the registry they are in (the front door encodes it).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Indexed by [`verification_index`].
    verifications: Box<[Counter]>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every series, at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let family = Family::<VerificationLabels, Counter>::default();
        let mut verifications = Vec::with_capacity(RESULTS.len() * METHODS.len() * DOORS.len());
        for result in RESULTS {
            for method in METHODS {
                for front_door in DOORS {
                    verifications.push(family.get_or_create_owned(&VerificationLabels {
                        result,
                        method,
                        front_door,
                    }));
                }
            }
        }
        registry.register(
            "otpd_verifications",
            "Codes checked, by outcome, kind of code and front door",
            family,
        );
        registry.register(
            "otpd_build",
            "The running otpd's version",
            prometheus_client::metrics::info::Info::new(vec![(
                "version",
                env!("CARGO_PKG_VERSION"),
            )]),
        );
        Metrics {
            registry,
            verifications: verifications.into_boxed_slice(),
        }
    }

    /// Every series in the OpenMetrics text format (ending `# EOF`), as `/metrics` serves
    /// it with the content type [`Metrics::CONTENT_TYPE`].
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// The content type of [`Metrics::encode`]'s text.
    pub const CONTENT_TYPE: &'static str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8";

    /// Counts a checked code: `outcome` through `door`; `code` tells the kind of a code
    /// that matched nothing (digits only: a TOTP code).
    pub(crate) fn verification(&self, outcome: &VerifyOutcome, code: &str, door: Door) {
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
            None if code.chars().all(|c| c.is_ascii_digit() || c == ' ') => 0,
            None => 1,
        };
        let door = match door {
            Door::Rest => 0,
            Door::Truenas => 1,
            Door::Ontap => 2,
            Door::Rocketchat => 3,
            Door::Zimbra => 4,
            Door::Web => 5,
            Door::Cli => 6,
        };
        if let Some(counter) = self
            .verifications
            .get((result * METHODS.len() + method) * DOORS.len() + door)
        {
            counter.inc();
        }
    }
}
