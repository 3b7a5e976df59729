//! Extractors: the caller (bearer token → principal), the request's origin, and JSON bodies
//! whose rejections are problem+json like every other error.

use super::error::ApiError;
use crate::app::AppState;
use crate::app::client::Client;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use otpd_core::{CoreError, Door, Principal, RequestMeta};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

/// A JSON body; malformed JSON, wrong types, unknown fields and keys named twice (at any
/// depth, [`crate::json`]) are `400 malformed_request`, a wrong content type `415`, an
/// oversized body `413`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        // axum's own extractor checks the content type, the size and the syntax; the body
        // is then read by the one JSON reader every front door shares.
        let axum::Json(raw) = axum::Json::<Box<RawValue>>::from_request(request, state).await?;
        crate::json::from_str(raw.get()).map(ApiJson).map_err(|e| {
            ApiError::Request(
                StatusCode::BAD_REQUEST,
                "malformed_request",
                format!("Failed to deserialize the JSON body into the target type: {e}"),
            )
        })
    }
}

impl<T: serde::Serialize> axum::response::IntoResponse for ApiJson<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

/// The authenticated caller. Missing or bad credentials are `401 unauthenticated`.
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = crate::app::client::bearer(&parts.headers)
            .ok_or(ApiError::Core(CoreError::Unauthenticated))?;
        Ok(Auth(state.service.authenticate(token).await?))
    }
}

/// Where the request came from, for sessions and the audit trail (the native API's door).
pub struct Meta(pub RequestMeta);

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let client = Client::from_request_parts(parts, state).await?;
        Ok(Meta(client.meta(Door::Rest)))
    }
}

/// A second-factor code sent along a request for step-up (`X-OTP-Code`).
pub struct StepUpCode(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for StepUpCode {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(StepUpCode(
            parts
                .headers
                .get("x-otp-code")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        ))
    }
}

/// Query parameters whose rejections are problem+json (`400 malformed_request`).
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// Path parameters whose rejections are problem+json (`400 malformed_request`).
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);
