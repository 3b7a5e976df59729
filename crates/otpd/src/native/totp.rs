//! `/api/v1/accounts/{username}/totp` and `/recovery-codes`.

use super::error::{ApiError, Problem};
use super::extract::{ApiJson, ApiPath as Path, Auth, Meta, StepUpCode};
use crate::app::AppState;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use otpd_core::{
    CoreError, Enrollment, Provisioned, Renewal, TotpOptions, TotpStatus, VerifyOutcome,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Authenticator options; omitted ones take the policy defaults (new) or keep their
/// stored values (renew).
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct OptionsRequest {
    /// 6, 7 or 8.
    digits: Option<u64>,
    /// Seconds, 5–3600.
    interval: Option<u64>,
    /// SHA1, SHA256 or SHA512.
    algorithm: Option<String>,
}

impl From<OptionsRequest> for TotpOptions {
    fn from(r: OptionsRequest) -> Self {
        TotpOptions {
            digits: r.digits,
            interval: r.interval,
            algorithm: r.algorithm,
            comment: None,
        }
    }
}

/// A code.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    /// A TOTP code, or a recovery code where accepted.
    code: String,
}

/// The authenticator's state.
#[utoipa::path(get, path = "/api/v1/accounts/{username}/totp", tag = "totp", params(("username" = String, Path)),
    responses((status = 200, body = TotpStatus), (status = 404, body = Problem)))]
pub async fn status(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(username): Path<String>,
) -> Result<ApiJson<TotpStatus>, ApiError> {
    Ok(ApiJson(s.service.totp_status(&p, &username).await?))
}

/// Create an active authenticator at once (provisioning): returns the secret, key URI,
/// the current code (already claimed) and the recovery codes.
#[utoipa::path(post, path = "/api/v1/accounts/{username}/totp", tag = "totp", params(("username" = String, Path)), request_body = OptionsRequest,
    responses((status = 201, body = Provisioned), (status = 409, body = Problem)))]
pub async fn provision(
    State(s): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(username): Path<String>,
    ApiJson(req): ApiJson<OptionsRequest>,
) -> Result<(StatusCode, ApiJson<Provisioned>), ApiError> {
    Ok((
        StatusCode::CREATED,
        ApiJson(
            s.service
                .provision_totp(&p, &username, &req.into(), true, &meta)
                .await?,
        ),
    ))
}

/// Changes to an authenticator.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    /// Switch it on or off (2FA admins only).
    enabled: Option<bool>,
    /// Free text, at most 256 characters.
    comment: Option<String>,
}

/// Enable/disable the authenticator or set its comment. Disabling one's own needs a recent
/// second factor or `X-OTP-Code`.
#[utoipa::path(patch, path = "/api/v1/accounts/{username}/totp", tag = "totp", params(("username" = String, Path), ("X-OTP-Code" = Option<String>, Header)), request_body = UpdateRequest,
    responses((status = 200, body = TotpStatus), (status = 403, body = Problem)))]
pub async fn update(
    State(s): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(username): Path<String>,
    StepUpCode(code): StepUpCode,
    ApiJson(req): ApiJson<UpdateRequest>,
) -> Result<ApiJson<TotpStatus>, ApiError> {
    Ok(ApiJson(
        s.service
            .update_totp(
                &p,
                &username,
                req.enabled,
                req.comment,
                code.as_deref(),
                &meta,
            )
            .await?,
    ))
}

/// Remove (reset) the authenticator and recovery codes; revokes the account's sessions.
/// One's own removal needs a recent second factor or `X-OTP-Code`.
#[utoipa::path(delete, path = "/api/v1/accounts/{username}/totp", tag = "totp", params(("username" = String, Path), ("X-OTP-Code" = Option<String>, Header)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn remove(
    State(s): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(username): Path<String>,
    StepUpCode(code): StepUpCode,
) -> Result<StatusCode, ApiError> {
    s.service
        .remove_totp(&p, &username, code.as_deref(), &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Begin an enrollment: a pending secret to confirm with a code before `expires_at`.
#[utoipa::path(post, path = "/api/v1/accounts/{username}/totp/enroll", tag = "totp", params(("username" = String, Path)), request_body = OptionsRequest,
    responses((status = 200, body = Enrollment), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn enroll(
    State(s): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(username): Path<String>,
    ApiJson(req): ApiJson<OptionsRequest>,
) -> Result<ApiJson<Enrollment>, ApiError> {
    Ok(ApiJson(
        s.service
            .begin_enrollment(&p, &username, &req.into(), &meta)
            .await?,
    ))
}

/// Recovery codes, shown to their owner.
#[derive(Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Single-use codes (`XXXXX-XXXXX`).
    recovery_codes: Vec<String>,
}

fn shown(codes: Vec<otpd_core::Shown>) -> RecoveryCodes {
    RecoveryCodes {
        recovery_codes: codes.iter().map(|c| c.expose().to_owned()).collect(),
    }
}

/// Confirm a pending enrollment with a code: it becomes active and the recovery codes are
/// returned. The confirming code cannot be used again.
#[utoipa::path(post, path = "/api/v1/accounts/{username}/totp/confirm", tag = "totp", params(("username" = String, Path)), request_body = CodeRequest,
    responses((status = 200, body = RecoveryCodes), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn confirm(
    State(s): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(username): Path<String>,
    ApiJson(req): ApiJson<CodeRequest>,
) -> Result<ApiJson<RecoveryCodes>, ApiError> {
    Ok(ApiJson(shown(
        s.service
            .confirm_enrollment(
                &p,
                &username,
                &req.code,
                otpd_core::RecoveryCodeSet::Policy,
                &meta,
            )
            .await?,
    )))
}

/// Replace the secret (active at once); omitted options keep their values. One's own
/// renewal needs a recent second factor or `X-OTP-Code`.
#[utoipa::path(post, path = "/api/v1/accounts/{username}/totp/renew", tag = "totp", params(("username" = String, Path), ("X-OTP-Code" = Option<String>, Header)), request_body = OptionsRequest,
    responses((status = 200, body = Renewal), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn renew(
    State(s): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(username): Path<String>,
    StepUpCode(code): StepUpCode,
    ApiJson(req): ApiJson<OptionsRequest>,
) -> Result<ApiJson<Renewal>, ApiError> {
    Ok(ApiJson(
        s.service
            .renew_totp(&p, &username, &req.into(), code.as_deref(), &meta)
            .await?,
    ))
}

/// Verify a code: `{"valid", "reason", "method"}`; a refused code is still `200`.
#[utoipa::path(post, path = "/api/v1/accounts/{username}/totp/verify", tag = "totp", params(("username" = String, Path)), request_body = CodeRequest,
    responses((status = 200, body = VerifyOutcome), (status = 422, body = Problem)))]
pub async fn verify(
    State(s): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(username): Path<String>,
    ApiJson(req): ApiJson<CodeRequest>,
) -> Result<ApiJson<VerifyOutcome>, ApiError> {
    Ok(ApiJson(
        s.service
            .verify_totp(&p, &username, &req.code, &meta)
            .await?,
    ))
}

/// Two consecutive codes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResyncRequest {
    first: String,
    second: String,
}

/// The learned drift.
#[derive(Serialize, ToSchema)]
pub struct ResyncResponse {
    /// The device's clock offset, in steps.
    drift: i64,
}

/// Resynchronize a drifted device with two consecutive codes.
#[utoipa::path(post, path = "/api/v1/accounts/{username}/totp/resync", tag = "totp", params(("username" = String, Path)), request_body = ResyncRequest,
    responses((status = 200, body = ResyncResponse), (status = 422, body = Problem)))]
pub async fn resync(
    State(s): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(username): Path<String>,
    ApiJson(req): ApiJson<ResyncRequest>,
) -> Result<ApiJson<ResyncResponse>, ApiError> {
    let drift = s
        .service
        .resync_totp(&p, &username, &req.first, &req.second, &meta)
        .await?;
    Ok(ApiJson(ResyncResponse { drift }))
}

/// An image response that no cache may keep: it holds the secret.
fn image(content_type: &'static str, body: Vec<u8>) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The QR code of a pending enrollment, as SVG (never cached).
#[utoipa::path(get, path = "/api/v1/accounts/{username}/totp/qr.svg", tag = "totp", params(("username" = String, Path)),
    responses((status = 200, content_type = "image/svg+xml", body = String), (status = 404, body = Problem)))]
pub async fn qr_svg(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(username): Path<String>,
) -> Result<Response, ApiError> {
    let uri = s.service.pending_key_uri(&p, &username).await?;
    let svg = crate::qr::svg(uri.expose()).map_err(|e| CoreError::Internal(e.into()))?;
    Ok(image("image/svg+xml", svg.into_bytes()))
}

/// The QR code of a pending enrollment, as PNG (never cached).
#[utoipa::path(get, path = "/api/v1/accounts/{username}/totp/qr.png", tag = "totp", params(("username" = String, Path)),
    responses((status = 200, content_type = "image/png", body = Vec<u8>), (status = 404, body = Problem)))]
pub async fn qr_png(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(username): Path<String>,
) -> Result<Response, ApiError> {
    let uri = s.service.pending_key_uri(&p, &username).await?;
    let png = crate::qr::png(uri.expose(), 6).map_err(|e| CoreError::Internal(e.into()))?;
    Ok(image("image/png", png))
}

/// The remaining recovery codes (their owner only; needs a recent second factor or
/// `X-OTP-Code`, as regenerating them does).
#[utoipa::path(get, path = "/api/v1/accounts/{username}/recovery-codes", tag = "totp", params(("username" = String, Path), ("X-OTP-Code" = Option<String>, Header)),
    responses((status = 200, body = RecoveryCodes), (status = 403, body = Problem)))]
pub async fn list_recovery(
    State(s): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(username): Path<String>,
    StepUpCode(code): StepUpCode,
) -> Result<ApiJson<RecoveryCodes>, ApiError> {
    Ok(ApiJson(shown(
        s.service
            .list_recovery_codes(&p, &username, code.as_deref(), &meta)
            .await?,
    )))
}

/// Replace the recovery codes (their owner; needs a recent second factor or `X-OTP-Code`).
#[utoipa::path(post, path = "/api/v1/accounts/{username}/recovery-codes", tag = "totp", params(("username" = String, Path), ("X-OTP-Code" = Option<String>, Header)),
    responses((status = 200, body = RecoveryCodes), (status = 403, body = Problem)))]
pub async fn regenerate_recovery(
    State(s): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(username): Path<String>,
    StepUpCode(code): StepUpCode,
) -> Result<ApiJson<RecoveryCodes>, ApiError> {
    Ok(ApiJson(shown(
        s.service
            .regenerate_recovery_codes(
                &p,
                &username,
                code.as_deref(),
                otpd_core::RecoveryCodeSet::Policy,
                &meta,
            )
            .await?,
    )))
}
