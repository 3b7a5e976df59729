//! RFC 9457 problem details: the one place where core errors and request rejections become
//! the native API's wire errors. Every problem carries a stable machine `code`.

use crate::app::fault::{Fault, server_fault};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use otpd_core::CoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// An error answer (`application/problem+json`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type: `urn:otpd:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the problem type.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong in this request, for a person.
    pub detail: String,
    /// Stable machine code: `malformed_request`, `invalid_input`, `unauthenticated`,
    /// `forbidden`, `step_up_required`, `second_factor_failed`, `account_locked`,
    /// `not_found`, `conflict`, `payload_too_large`, `unsupported_media_type`,
    /// `rate_limited`, `storage_unavailable`, `internal`.
    pub code: &'static str,
    /// The input field at fault, for `invalid_input`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The verification reason, for `second_factor_failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// Everything a native handler can fail with.
#[derive(Debug)]
pub enum ApiError {
    /// A core error.
    Core(CoreError),
    /// The request itself is unusable (status, code, detail).
    Request(StatusCode, &'static str, String),
    /// Too many requests from this address; retry after the given seconds.
    RateLimited(u64),
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        ApiError::Core(e)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let (status, code) = match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            _ => (StatusCode::BAD_REQUEST, "malformed_request"),
        };
        ApiError::Request(status, code, r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::Request(StatusCode::BAD_REQUEST, "malformed_request", r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::Request(StatusCode::BAD_REQUEST, "malformed_request", r.body_text())
    }
}

fn problem(status: StatusCode, code: &'static str, detail: String) -> Problem {
    Problem {
        kind: format!("urn:otpd:problem:{code}"),
        title: status.canonical_reason().unwrap_or("Error"),
        status: status.as_u16(),
        detail,
        code,
        field: None,
        reason: None,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut retry_after = None;
        let p = match self {
            ApiError::Request(status, code, detail) => problem(status, code, detail),
            ApiError::RateLimited(secs) => {
                retry_after = Some(secs);
                problem(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "too many requests from this address; retry later".into(),
                )
            }
            ApiError::Core(e) => {
                let detail = e.to_string();
                match e {
                    CoreError::Invalid { field, message } => Problem {
                        field: Some(field.into_owned()),
                        ..problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", message.into_owned())
                    },
                    CoreError::NotFound(_) => problem(StatusCode::NOT_FOUND, "not_found", detail),
                    CoreError::Conflict(_) => problem(StatusCode::CONFLICT, "conflict", detail),
                    CoreError::Unauthenticated => problem(StatusCode::UNAUTHORIZED, "unauthenticated", detail),
                    CoreError::Forbidden(_) => problem(StatusCode::FORBIDDEN, "forbidden", detail),
                    CoreError::StepUpRequired => problem(
                        StatusCode::FORBIDDEN,
                        "step_up_required",
                        "send a current code in the X-OTP-Code header (or log in with your second factor) to make this change".into(),
                    ),
                    CoreError::SecondFactorFailed { reason } => Problem {
                        reason: Some(reason.as_str()),
                        // The caller may be fully authenticated (confirm, resync, step-up):
                        // a refused code is well-formed input with the wrong content, not
                        // bad credentials. Login's second step is throttled by the login limit.
                        ..problem(StatusCode::UNPROCESSABLE_ENTITY, "second_factor_failed", detail)
                    },
                    CoreError::AccountLocked => problem(StatusCode::FORBIDDEN, "account_locked", detail),
                    CoreError::Storage(_)
                    | CoreError::Sealing
                    | CoreError::WrongMasterKey { .. }
                    | CoreError::Internal(_) => match server_fault(&e) {
                        Some(Fault::Unavailable) => {
                            retry_after = Some(1);
                            problem(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", detail)
                        }
                        _ => problem(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error".into()),
                    },
                }
            }
        };
        let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(&p)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
