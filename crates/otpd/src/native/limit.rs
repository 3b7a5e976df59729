//! Per-address rate limits (in addition to the per-account lockout, which lives in the
//! database): password/second-factor attempts, and requests that failed authentication or
//! authorization. A service verifying codes with a valid API key never fails those checks,
//! so it is never throttled by its address. All of it is off with `rate_limits = off`.

use super::error::ApiError;
use crate::app::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use zeroize::Zeroizing;

const LOGIN_PATHS: [&str; 2] = ["/api/v1/auth/login", "/api/v1/auth/second-factor"];

/// Health probes: a load balancer's checks are never limited.
const PROBE_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// The API key the request carries, if any (not yet checked).
fn api_key(request: &Request) -> Option<Zeroizing<String>> {
    super::extract::bearer(request.headers())
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

/// The middleware.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
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
    // Probes are never limited, and neither is a service that authenticates with a valid
    // API key: an address's failures (perhaps another client behind the same NAT) must not
    // stop verification. The key is checked only once the budget is spent.
    if PROBE_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    if let Some(wait) = limits.failures.exhausted(ip)
        && !valid_api_key(&state, api_key(&request)).await
    {
        return ApiError::RateLimited(wait).into_response();
    }
    if LOGIN_PATHS.contains(&request.uri().path())
        && let Err(wait) = limits.login.take(ip, 1.0)
    {
        return ApiError::RateLimited(wait).into_response();
    }
    let response = next.run(request).await;
    if matches!(
        response.status(),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
    ) {
        let _ = limits.failures.take(ip, 1.0);
    }
    response
}
