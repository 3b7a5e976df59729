//! ONTAP's error body — `{"error":{"message","code","target"?}}` — and the one place where
//! core errors and bad requests become it (dialects.md §2, "Wire conventions"; NetApp's
//! "Interpret an API response"). Codes are strings, as ONTAP sends them: the generic ones
//! (`1` duplicate, `2` invalid/missing/extra field, `3` not supported, `4` not found, `6`
//! permission denied, `8` busy) and the TOTP ones of the seed (`144834564`…`144834566`).

use crate::app::fault::{Fault, server_fault};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use otpd_core::CoreError;
use serde_json::json;
use std::borrow::Cow;

/// "Only users with the admin role are allowed to modify the TOTP status." (seed 002).
pub const ONLY_ADMIN_MAY_CHANGE_STATUS: &str = "144834564";
/// "Invalid option for the field -enabled" (seed 002).
pub const INVALID_ENABLED: &str = "144834565";
/// "TOTP is not configured for the user" (seed 002).
pub const NOT_CONFIGURED: &str = "144834566";

/// An ONTAP error answer.
#[derive(Debug)]
pub struct OntapError {
    status: StatusCode,
    code: &'static str,
    message: Cow<'static, str>,
    target: Option<String>,
    retry_after: Option<u64>,
}

impl OntapError {
    /// An error with `status`, ONTAP `code` and `message`.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        OntapError {
            status,
            code,
            message: message.into(),
            target: None,
            retry_after: None,
        }
    }

    /// The same error naming the parameter or field at fault.
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// 400, code 2: a field or parameter that is invalid, missing or not expected.
    pub fn invalid(target: &str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "2", message).target(target)
    }

    /// 400, code 2: a field or parameter this call does not take.
    pub fn unexpected(target: &str) -> Self {
        Self::invalid(target, format!("Unexpected argument \"{target}\"."))
    }

    /// 404, code 4, as ONTAP answers an unknown key.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "4", "entry doesn't exist").target("uuid")
    }

    /// 405, code 3.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "3",
            "The method is not supported on this resource.",
        )
    }

    /// 401: no credentials, or wrong ones.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "6",
            "Authentication failed: send a valid user name and password (HTTP Basic).",
        )
    }

    /// 429 with `Retry-After`: this address has failed too often.
    pub fn rate_limited(wait: u64) -> Self {
        OntapError {
            retry_after: Some(wait),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "8",
                "Too many failed requests from this address; retry later.",
            )
        }
    }
}

impl From<CoreError> for OntapError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Invalid { field, message } => OntapError::invalid(&field, message),
            CoreError::NotFound(_) => OntapError::not_found(),
            CoreError::Conflict(_) => OntapError::new(StatusCode::CONFLICT, "1", "duplicate entry"),
            CoreError::Unauthenticated | CoreError::AccountLocked => OntapError::unauthenticated(),
            CoreError::Forbidden(_) => OntapError::new(
                StatusCode::FORBIDDEN,
                "6",
                "not authorized for that command",
            ),
            CoreError::StepUpRequired => OntapError::new(
                StatusCode::FORBIDDEN,
                "6",
                "This change needs a second factor: send a current TOTP code in the X-OTP-Code \
                 header, or have an administrator disable the TOTP profile first.",
            ),
            CoreError::SecondFactorFailed { reason } => {
                OntapError::new(StatusCode::FORBIDDEN, "6", reason.describe()).target("X-OTP-Code")
            }
            CoreError::Storage(_)
            | CoreError::Sealing
            | CoreError::WrongMasterKey { .. }
            | CoreError::Internal(_) => match server_fault(&e) {
                Some(Fault::Unavailable) => OntapError {
                    retry_after: Some(1),
                    ..OntapError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "8",
                        "The database is unavailable; retry later.",
                    )
                },
                _ => OntapError::new(StatusCode::INTERNAL_SERVER_ERROR, "3", "internal error"),
            },
        }
    }
}

impl IntoResponse for OntapError {
    fn into_response(self) -> Response {
        let mut error = json!({ "message": self.message, "code": self.code });
        if let Some(target) = self.target {
            error["target"] = json!(target);
        }
        let mut response = super::hal(self.status, &json!({ "error": error }));
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"otpd\""),
            );
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
