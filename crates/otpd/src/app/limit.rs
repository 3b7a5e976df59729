//! Per-address rate-limit state, shared by every front door (each answers a spent budget in
//! its own wire format: the native API 429, TrueNAS `[EBUSY]`). In addition to the
//! per-account lockout, which lives in the database.

use super::AppState;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::HashMap;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;
use zeroize::Zeroizing;

/// Token buckets keyed by address: `per_minute` tokens refill over a minute, and a full
/// bucket holds `per_minute` (so a burst of that size is allowed).
pub struct Buckets {
    per_minute: f64,
    inner: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl Buckets {
    /// Buckets allowing `per_minute` events per address per minute.
    pub fn new(per_minute: u32) -> Self {
        Buckets {
            per_minute: f64::from(per_minute),
            inner: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `cost` tokens if the bucket has them; else says how many seconds until it does.
    pub(crate) fn take(&self, ip: IpAddr, cost: f64) -> Result<(), u64> {
        let ip = bucket_of(ip);
        let now = Instant::now();
        let Ok(mut map) = self.inner.lock() else {
            return Ok(()); // a poisoned limiter must not take the server down with it
        };
        if map.len() > 100_000 {
            let full = self.per_minute;
            let rate = full / 60.0;
            map.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < full
            });
        }
        let rate = self.per_minute / 60.0;
        let (tokens, at) = map.entry(ip).or_insert((self.per_minute, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(self.per_minute);
        *at = now;
        if *tokens >= cost {
            *tokens -= cost;
            Ok(())
        } else {
            Err(((cost - *tokens) / rate).ceil().max(1.0) as u64)
        }
    }

    /// Whether the bucket is empty (without taking anything).
    pub(crate) fn exhausted(&self, ip: IpAddr) -> Option<u64> {
        self.take(ip, 0.0).ok()?;
        let Ok(map) = self.inner.lock() else {
            return None;
        };
        let (tokens, _) = map.get(&bucket_of(ip))?;
        (*tokens < 1.0).then(|| ((1.0 - *tokens) / (self.per_minute / 60.0)).ceil().max(1.0) as u64)
    }
}

/// The bucket an address draws from: itself for IPv4, its /64 for IPv6 — one host usually
/// holds a whole /64, and would otherwise get a fresh budget with every address in it.
fn bucket_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let [a, b, c, d, ..] = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// The limiter state.
pub struct Limits {
    /// Password and second-factor attempts.
    pub login: Buckets,
    /// Requests answered 401 or 403.
    pub failures: Buckets,
}

/// Health probes: a load balancer's checks are never limited.
const PROBE_PATHS: [&str; 5] = [
    "/healthz",
    "/readyz",
    "/healthz/live",
    "/healthz/ready",
    "/healthz/started",
];

/// How one HTTP door is limited: which of its paths are login attempts, and how it answers
/// a spent budget in its own wire format.
pub struct DoorLimits {
    /// Paths whose every request is a password or second-factor attempt.
    pub login_paths: &'static [&'static str],
    /// The door's answer to an address over budget, given the seconds to wait.
    pub refuse: fn(u64) -> Response,
    /// Where the door's clients send a token, which exempts a valid API key from the
    /// failure budget (`Authorization: Bearer`, Rocket.Chat's `X-Auth-Token`).
    pub token: fn(&HeaderMap) -> Option<&str>,
}

/// The per-address guard of an HTTP door (its middleware calls this): an address whose
/// failure budget is spent is refused — unless it authenticates with a valid API key, so
/// that other clients' failures behind the same address never stop a service's
/// verifications (the key is checked only then); login attempts take from the login
/// budget; answers 401 and 403 take from the failure budget. Probes are never limited.
pub async fn guard(state: &AppState, door: &DoorLimits, request: Request, next: Next) -> Response {
    let Some(limits) = state.limits.as_ref() else {
        return next.run(request).await;
    };
    let Some(ip) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    if PROBE_PATHS.contains(&path) {
        return next.run(request).await;
    }
    let login = door.login_paths.contains(&path);
    if let Some(wait) = limits.failures.exhausted(ip)
        && !valid_api_key(state, api_key(door, &request)).await
    {
        return (door.refuse)(wait);
    }
    if login && let Err(wait) = limits.login.take(ip, 1.0) {
        return (door.refuse)(wait);
    }
    let response = next.run(request).await;
    if matches!(
        response.status(),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
    ) && response.extensions().get::<NoFailure>().is_none()
    {
        let _ = limits.failures.take(ip, 1.0);
    }
    response
}

/// Marks a 401 or 403 answer that is no failed attempt of the client's own and so takes
/// nothing from its address's failure budget: the web pages' refusal of a form another site
/// made its browser send (counting those would let any site lock its visitors' address out).
#[derive(Debug, Clone, Copy)]
pub struct NoFailure;

/// Takes one password attempt from the address's login budget, for a door that checks a
/// password on a request that is not a login path (ONTAP's HTTP Basic): taken before the
/// check, so that concurrent guesses cannot outrun the budget. `Err` holds the seconds to
/// wait.
pub fn password_attempt(state: &AppState, parts: &axum::http::request::Parts) -> Result<(), u64> {
    login_attempt(
        state,
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip()),
    )
}

/// [`password_attempt`] for the client at `peer` (no address, no limit: not a socket).
pub fn login_attempt(state: &AppState, peer: Option<IpAddr>) -> Result<(), u64> {
    let (Some(limits), Some(peer)) = (state.limits.as_ref(), peer) else {
        return Ok(());
    };
    limits.login.take(peer, 1.0)
}

/// The API key the request carries where the door takes tokens, if any (not yet checked).
fn api_key(door: &DoorLimits, request: &Request) -> Option<Zeroizing<String>> {
    (door.token)(request.headers())
        .filter(|k| otpd_core::is_api_key(k))
        .map(|k| Zeroizing::new(k.to_owned()))
}

/// Whether `key` authenticates now, as an API key.
async fn valid_api_key(state: &AppState, key: Option<Zeroizing<String>>) -> bool {
    let Some(key) = key else {
        return false;
    };
    matches!(
        state.service.authenticate(&key).await,
        Ok(otpd_core::Principal::Account(caller)) if caller.api_key_id.is_some()
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_ipv6_host_has_one_budget_for_its_64() {
        let buckets = Buckets::new(2);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(buckets.take(ip("2001:db8:1:2::1"), 1.0).is_ok());
        assert!(buckets.take(ip("2001:db8:1:2::99"), 1.0).is_ok());
        assert!(buckets.take(ip("2001:db8:1:2:ffff::7"), 1.0).is_err());
        assert!(
            buckets.take(ip("2001:db8:1:3::1"), 1.0).is_ok(),
            "another /64"
        );
        // An IPv4 address seen through a dual-stack listener is that address.
        assert!(buckets.take(ip("192.0.2.1"), 2.0).is_ok());
        assert!(buckets.take(ip("::ffff:192.0.2.1"), 1.0).is_err());
    }
}
