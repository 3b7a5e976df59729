//! Extractors: the caller (bearer token → principal), the request's origin, and JSON bodies
//! whose rejections are problem+json like every other error.

use super::AppState;
use super::error::ApiError;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use otpd_core::{CoreError, Door, Principal, RequestMeta};
use std::net::SocketAddr;

/// A JSON body; malformed JSON, wrong types and unknown fields are `400 malformed_request`,
/// a wrong content type `415`, an oversized body `413`.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

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
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let token = header
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or(ApiError::Core(CoreError::Unauthenticated))?;
        Ok(Auth(state.service.authenticate(token).await?))
    }
}

/// Where the request came from, for sessions and the audit trail.
pub struct Meta(pub RequestMeta);

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let remote_addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(128).collect());
        Ok(Meta(RequestMeta {
            door: Door::Rest,
            remote_addr,
            request_id,
        }))
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
