//! Per-address rate-limit state, shared by every front door (each answers a spent budget in
//! its own wire format: the native API 429, TrueNAS `[EBUSY]`). In addition to the
//! per-account lockout, which lives in the database.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

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
        let (tokens, _) = map.get(&ip)?;
        (*tokens < 1.0).then(|| ((1.0 - *tokens) / (self.per_minute / 60.0)).ceil().max(1.0) as u64)
    }
}

/// The limiter state.
pub struct Limits {
    /// Password and second-factor attempts.
    pub login: Buckets,
    /// Requests answered 401 or 403.
    pub failures: Buckets,
}
