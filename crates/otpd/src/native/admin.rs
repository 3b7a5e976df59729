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

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// The database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, body = String), (status = 503, body = Problem)))]
pub async fn readyz(State(s): State<AppState>) -> Result<&'static str, ApiError> {
    s.service.db().ping().await?;
    Ok("ready")
}
