//! `/api/v1/policy`, `/api/v1/audit`, and the operations endpoints.

use super::error::{ApiError, Problem};
use super::extract::{ApiJson, ApiQuery as Query, Auth, Meta};
use crate::app::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use otpd_core::{AuditEvent, AuditQuery, CoreError, Policy};
use serde::Deserialize;
use utoipa::IntoParams;

/// The 2FA policy (admins).
#[utoipa::path(get, path = "/api/v1/policy", tag = "admin", responses((status = 200, body = Policy), (status = 403, body = Problem)))]
pub async fn get_policy(
    State(s): State<AppState>,
    Auth(p): Auth,
) -> Result<ApiJson<Policy>, ApiError> {
    Ok(ApiJson(s.service.get_policy(&p).await?))
}

/// Change some policy settings (full admins): the body's fields replace the current ones;
/// every field is validated and unknown ones are refused.
#[utoipa::path(patch, path = "/api/v1/policy", tag = "admin", request_body = Object,
    responses((status = 200, body = Policy), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn patch_policy(
    State(s): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiJson(changes): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> Result<ApiJson<Policy>, ApiError> {
    let current = s.service.get_policy(&p).await?;
    let mut document =
        serde_json::to_value(current).map_err(|e| CoreError::Internal(e.to_string().into()))?;
    if let Some(object) = document.as_object_mut() {
        object.extend(changes);
    }
    let policy: Policy = serde_json::from_value(document).map_err(|e| {
        ApiError::Request(StatusCode::BAD_REQUEST, "malformed_request", e.to_string())
    })?;
    Ok(ApiJson(s.service.set_policy(&p, policy, &meta).await?))
}

/// Audit filters.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Events about this account.
    account: Option<String>,
    /// Events with this action (e.g. `totp.verify`).
    action: Option<String>,
    /// `success` or `failure`.
    outcome: Option<String>,
    /// At or after (Unix seconds).
    since: Option<i64>,
    /// Before (Unix seconds).
    until: Option<i64>,
    /// After this event id (oldest first).
    after_id: Option<i64>,
    /// At most this many (1–1000, default 100).
    limit: Option<u32>,
    /// Skip this many.
    offset: Option<u64>,
}

/// The audit trail, newest first (admins see all; others their own events).
#[utoipa::path(get, path = "/api/v1/audit", tag = "admin", params(AuditParams), responses((status = 200, body = [AuditEvent])))]
pub async fn audit(
    State(s): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<AuditParams>,
) -> Result<ApiJson<Vec<AuditEvent>>, ApiError> {
    let query = AuditQuery {
        account: q.account,
        action: q.action,
        outcome: q.outcome,
        since: q.since,
        until: q.until,
        after_id: q.after_id,
        limit: q.limit,
        offset: q.offset,
    };
    Ok(ApiJson(s.service.audit_events(&p, &query).await?))
}

/// Liveness: the process answers. Never touches the database, so a database outage never
/// gets a healthy instance restarted (Kubernetes' liveness probe, systemd's watchdog).
#[utoipa::path(get, path = "/healthz/live", tag = "operations", responses((status = 200, body = String)))]
pub async fn live() -> &'static str {
    "ok"
}

/// The same as `/healthz/live` (kept for the probes configured before it).
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = String)))]
pub async fn healthz() -> &'static str {
    live().await
}

/// Start-up: the server has opened its database and keys (it listens only after that), so
/// it answers as soon as it answers at all (Kubernetes' startup probe).
#[utoipa::path(get, path = "/healthz/started", tag = "operations", responses((status = 200, body = String)))]
pub async fn started() -> &'static str {
    "started"
}

/// Readiness: the database answers and this instance's master key opens every data key the
/// database lists (after a rotation by another instance, too). `503 not_ready` with the
/// reason otherwise, so a load balancer takes the instance out of rotation.
#[utoipa::path(get, path = "/healthz/ready", tag = "operations", responses((status = 200, body = String), (status = 503, body = Problem)))]
pub async fn ready(State(s): State<AppState>) -> Result<&'static str, ApiError> {
    match s.service.readiness().await {
        Ok(()) => Ok("ready"),
        Err(e) => {
            // Logged once where the fault is classified; the probe's answer says which part.
            crate::app::fault::server_fault(&e);
            let reason = match e {
                otpd_core::CoreError::Storage(_) => "the database does not answer",
                _ => "the master key does not open this database's keys",
            };
            Err(ApiError::Request(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                reason.into(),
            ))
        }
    }
}

/// The same as `/healthz/ready` (kept for the probes configured before it).
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, body = String), (status = 503, body = Problem)))]
pub async fn readyz(state: State<AppState>) -> Result<&'static str, ApiError> {
    ready(state).await
}
