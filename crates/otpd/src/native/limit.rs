//! The native API's per-address limits: the shared guard ([`crate::app::limit::guard`])
//! with the API's login paths, answering a spent budget with a 429 problem. In addition to
//! the per-account lockout, which lives in the database; all of it is off with
//! `rate_limits = off`.

use super::error::ApiError;
use crate::app::AppState;
use crate::app::limit::{DoorLimits, guard};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

const LIMITS: DoorLimits = DoorLimits {
    login_paths: &["/api/v1/auth/login", "/api/v1/auth/second-factor"],
    token: crate::app::client::bearer,
    refuse: |wait| ApiError::RateLimited(wait).into_response(),
};

/// The middleware.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    guard(&state, &LIMITS, request, next).await
}
