//! Rocket.Chat's error bodies, and the one place where core errors and bad requests become
//! them (dialects.md §3, "Auth headers and error envelope"; `app/api/server/ApiClass.ts`,
//! `api.helpers` of Rocket.Chat 7.x):
//!
//! - a thrown `Meteor.Error(error, reason, details)`: HTTP 400
//!   `{"success":false,"error":"<reason> [<error>]","errorType":"<error>","details"?}`;
//! - no or a bad `X-User-Id`/`X-Auth-Token`: HTTP 401 with `status`/`message` beside `error`;
//! - a refused login: HTTP 401 `{"success":false,"status":"error","error","message","details"?}`;
//! - a plain failure (`API.v1.failure("…")`): HTTP 400 `{"success":false,"error":"…"}`.

use crate::app::fault::{Fault, server_fault};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use otpd_core::{CoreError, ProofMethod, VerifyReason};
use serde_json::{Value, json};
use std::borrow::Cow;

/// The 401 text of Rocket.Chat's authenticated routes.
pub const MUST_BE_LOGGED_IN: &str = "You must be logged in to do this.";

/// A Rocket.Chat error answer.
#[derive(Debug)]
pub struct RcError {
    status: StatusCode,
    /// Always a JSON object.
    body: Value,
    retry_after: Option<u64>,
}

impl RcError {
    fn new(status: StatusCode, body: Value) -> Self {
        RcError {
            status,
            body,
            retry_after: None,
        }
    }

    /// HTTP 400 for a thrown `Meteor.Error(error, reason)`.
    pub fn meteor(error: &str, reason: impl Into<Cow<'static, str>>) -> Self {
        let reason = reason.into();
        Self::new(
            StatusCode::BAD_REQUEST,
            json!({"success": false, "error": format!("{reason} [{error}]"), "errorType": error}),
        )
    }

    /// The same error with `details`.
    pub fn details(mut self, details: Value) -> Self {
        if let Value::Object(body) = &mut self.body {
            body.insert("details".into(), details);
        }
        self
    }

    /// HTTP 400 `{"success":false,"error":…}` (Rocket.Chat's `API.v1.failure`).
    pub fn failure(error: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            json!({"success": false, "error": error.into()}),
        )
    }

    /// HTTP 400 for a body or query Rocket.Chat's schema would refuse.
    pub fn invalid_params(what: impl std::fmt::Display) -> Self {
        Self::meteor("invalid-params", what.to_string())
    }

    /// HTTP 400 for a field or parameter the call does not take (named, shortened).
    pub fn unexpected(key: &str) -> Self {
        let key: String = key.chars().take(64).collect();
        Self::invalid_params(format!("must NOT have additional properties: \"{key}\""))
    }

    /// HTTP 401 of an authenticated route without valid `X-User-Id`/`X-Auth-Token`.
    pub fn logged_out() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            json!({"success": false, "status": "error", "error": MUST_BE_LOGGED_IN, "message": MUST_BE_LOGGED_IN}),
        )
    }

    /// HTTP 401 of a refused login: unknown user, wrong password and locked account alike.
    pub fn login_refused() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            json!({"success": false, "status": "error", "error": "Unauthorized", "message": "Unauthorized"}),
        )
    }

    /// HTTP 401 of a login whose second factor is missing or wrong.
    pub fn login_second_factor(error: &str, message: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            json!({
                "success": false, "status": "error", "error": error, "message": message,
                "details": totp_details(ProofMethod::Totp),
            }),
        )
    }

    /// The 2FA check of a `twoFactorRequired` route: no code was sent.
    pub fn proof_required(method: ProofMethod) -> Self {
        Self::meteor("totp-required", "TOTP Required").details(totp_details(method))
    }

    /// The 2FA check of a `twoFactorRequired` route: the code was refused.
    pub fn proof_refused(method: ProofMethod, reason: VerifyReason) -> Self {
        let (error, text) = refusal(reason);
        Self::meteor(error, text).details(totp_details(method))
    }

    /// HTTP 403 of Rocket.Chat's permission-checked routes.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            json!({"success": false, "error": "User does not have the permissions required for this action [error-unauthorized]"}),
        )
    }

    /// HTTP 404 for a path the dialect does not serve (Restivus's answer).
    pub fn no_endpoint() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            json!({"success": false, "status": "error", "message": "API endpoint does not exist"}),
        )
    }

    /// HTTP 405 for a method the path does not take.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"success": false, "status": "error", "message": "API endpoint does not exist for this method"}),
        )
    }

    /// HTTP 413 for a body over the server's limit.
    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"success": false, "error": "The request body is too large."}),
        )
    }

    /// HTTP 429 with `Retry-After`, in the words of Rocket.Chat's rate limiter.
    pub fn rate_limited(wait: u64) -> Self {
        let reason = format!(
            "Error, too many requests. Please slow down. You must wait {wait} seconds before trying this endpoint again."
        );
        RcError {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(wait),
            ..Self::meteor("error-too-many-requests", reason)
                .details(json!({"timeToReset": wait.saturating_mul(1000), "seconds": wait}))
        }
    }

    fn fault(fault: Fault) -> Self {
        match fault {
            Fault::Unavailable => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"success": false, "error": "Service unavailable, retry later."}),
            ),
            Fault::Internal => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"success": false, "error": "Internal server error"}),
            ),
        }
    }
}

/// `Meteor.Error` id and reason of a refused code (Rocket.Chat has no lockout; its e-mail
/// check's `totp-max-attempts` says the same thing).
pub fn refusal(reason: VerifyReason) -> (&'static str, &'static str) {
    match reason {
        VerifyReason::Locked => ("totp-max-attempts", "TOTP Maximun Failed Attempts Reached"),
        _ => ("totp-invalid", "TOTP Invalid"),
    }
}

/// The `details` of a 2FA answer: the method asked for and the methods the account has.
fn totp_details(method: ProofMethod) -> Value {
    let (name, available): (&str, &[&str]) = match method {
        ProofMethod::Totp => ("totp", &["totp"]),
        ProofMethod::Password => ("password", &[]),
    };
    json!({"method": name, "codeGenerated": false, "availableMethods": available})
}

impl From<CoreError> for RcError {
    fn from(e: CoreError) -> Self {
        if let Some(fault) = server_fault(&e) {
            return RcError::fault(fault);
        }
        match e {
            CoreError::Unauthenticated | CoreError::AccountLocked => RcError::logged_out(),
            CoreError::Forbidden(_) => RcError::meteor("error-not-allowed", "Not allowed"),
            CoreError::StepUpRequired => RcError::proof_required(ProofMethod::Totp),
            CoreError::SecondFactorFailed { reason } => {
                RcError::proof_refused(ProofMethod::Totp, reason)
            }
            CoreError::Invalid { field, message } => {
                RcError::invalid_params(format!("{field}: {message}"))
            }
            CoreError::NotFound(what) => {
                RcError::meteor("error-not-found", format!("{what} not found"))
            }
            CoreError::Conflict(message) => RcError::meteor("error-conflict", message),
            CoreError::Storage(_)
            | CoreError::Sealing
            | CoreError::WrongMasterKey { .. }
            | CoreError::Internal(_) => RcError::fault(Fault::Internal),
        }
    }
}

impl IntoResponse for RcError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if let Some(wait) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&wait.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}
