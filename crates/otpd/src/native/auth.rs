//! `/api/v1/auth/*`, `/api/v1/me`, `/api/v1/sessions`, `/api/v1/api-keys`.

use super::error::{ApiError, Problem};
use super::extract::{ApiJson, ApiPath as Path, ApiQuery as Query, Auth, Meta};
use crate::app::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use otpd_core::{Account, ApiKeyInfo, LoginOutcome, NewApiKey, Principal, SessionInfo};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use zeroize::Zeroizing;

/// Password login.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    username: String,
    password: String,
}

/// The login answer: a session token, or a challenge to complete with a code, or a session
/// limited to enrolling (policy `enforced`).
#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    /// Session token (`Authorization: Bearer …`).
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    /// Expiry of the token or challenge (Unix seconds).
    expires_at: i64,
    /// Present and true when a second factor is needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    second_factor_required: Option<bool>,
    /// The challenge for `/auth/second-factor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    challenge: Option<String>,
    /// Present and true when the session may only enroll an authenticator.
    #[serde(skip_serializing_if = "Option::is_none")]
    enrollment_required: Option<bool>,
}

/// Log in with username and password.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub async fn login(
    State(s): State<AppState>,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<ApiJson<LoginResponse>, ApiError> {
    let outcome = s
        .service
        .login(&req.username, Zeroizing::new(req.password), &meta)
        .await?;
    let none = LoginResponse {
        token: None,
        expires_at: 0,
        second_factor_required: None,
        challenge: None,
        enrollment_required: None,
    };
    Ok(ApiJson(match outcome {
        LoginOutcome::Session(t) => LoginResponse {
            token: Some(t.token.expose().into()),
            expires_at: t.expires_at,
            ..none
        },
        LoginOutcome::SecondFactorRequired { challenge, .. } => LoginResponse {
            second_factor_required: Some(true),
            challenge: Some(challenge.token.expose().into()),
            expires_at: challenge.expires_at,
            ..none
        },
        LoginOutcome::EnrollmentRequired(t) => LoginResponse {
            token: Some(t.token.expose().into()),
            expires_at: t.expires_at,
            enrollment_required: Some(true),
            ..none
        },
    }))
}

/// Completes a login with a TOTP or recovery code.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecondFactorRequest {
    challenge: String,
    code: String,
}

/// A session token.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// Session token.
    token: String,
    /// Expiry (Unix seconds).
    expires_at: i64,
}

/// Complete a login with the second factor.
#[utoipa::path(post, path = "/api/v1/auth/second-factor", tag = "auth", request_body = SecondFactorRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn second_factor(
    State(s): State<AppState>,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<SecondFactorRequest>,
) -> Result<ApiJson<TokenResponse>, ApiError> {
    let t = s
        .service
        .second_factor(&req.challenge, &req.code, &meta)
        .await?;
    Ok(ApiJson(TokenResponse {
        token: t.token.expose().into(),
        expires_at: t.expires_at,
    }))
}

/// End this session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 204), (status = 401, body = Problem)))]
pub async fn logout(
    State(s): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
) -> Result<StatusCode, ApiError> {
    s.service.logout(&p, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's own account.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", responses((status = 200, body = Account), (status = 401, body = Problem)))]
pub async fn me(State(s): State<AppState>, Auth(p): Auth) -> Result<ApiJson<Account>, ApiError> {
    Ok(ApiJson(s.service.get_account(&p, &caller_name(&p)?).await?))
}

pub(crate) fn caller_name(p: &Principal) -> Result<String, ApiError> {
    match p {
        Principal::Account(c) => Ok(c.username.clone()),
        Principal::Cli => Err(ApiError::Core(otpd_core::CoreError::Unauthenticated)),
    }
}

/// Whose sessions or keys to list.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AccountFilter {
    /// Another account's (admins); default the caller's own.
    account: Option<String>,
}

/// The caller's sessions (or, for admins, another account's).
#[utoipa::path(get, path = "/api/v1/sessions", tag = "auth", params(AccountFilter),
    responses((status = 200, body = [SessionInfo]), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list_sessions(
    State(s): State<AppState>,
    Auth(p): Auth,
    Query(f): Query<AccountFilter>,
) -> Result<ApiJson<Vec<SessionInfo>>, ApiError> {
    let name = match f.account {
        Some(a) => a,
        None => caller_name(&p)?,
    };
    Ok(ApiJson(s.service.list_sessions(&p, &name).await?))
}

/// Revoke one of the caller's sessions (or, for admins, another account's).
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "auth", params(("id" = String, Path), AccountFilter),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn revoke_session(
    State(s): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(id): Path<String>,
    Query(f): Query<AccountFilter>,
) -> Result<StatusCode, ApiError> {
    let name = match f.account {
        Some(a) => a,
        None => caller_name(&p)?,
    };
    s.service.revoke_session(&p, &name, &id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new API key.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKeyRequest {
    /// A label for the key.
    name: String,
    /// Owner (full admins may create keys for others); default the caller.
    account: Option<String>,
}

/// Create an API key; the key is shown once.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "auth", request_body = NewApiKeyRequest,
    responses((status = 201, body = NewApiKey), (status = 403, body = Problem)))]
pub async fn create_api_key(
    State(s): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<NewApiKeyRequest>,
) -> Result<(StatusCode, ApiJson<NewApiKey>), ApiError> {
    let owner = match req.account {
        Some(a) => a,
        None => caller_name(&p)?,
    };
    Ok((
        StatusCode::CREATED,
        ApiJson(
            s.service
                .create_api_key(&p, &owner, &req.name, &meta)
                .await?,
        ),
    ))
}

/// API keys: the caller's own, another account's (`account`, admins), or all (`account=*`, admins).
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "auth", params(AccountFilter), responses((status = 200, body = [ApiKeyInfo])))]
pub async fn list_api_keys(
    State(s): State<AppState>,
    Auth(p): Auth,
    Query(f): Query<AccountFilter>,
) -> Result<ApiJson<Vec<ApiKeyInfo>>, ApiError> {
    let keys = match f.account.as_deref() {
        Some("*") => s.service.list_api_keys(&p, None).await?,
        Some(a) => s.service.list_api_keys(&p, Some(a)).await?,
        None => s.service.list_api_keys(&p, Some(&caller_name(&p)?)).await?,
    };
    Ok(ApiJson(keys))
}

/// Revoke an API key.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "auth", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn revoke_api_key(
    State(s): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.service.revoke_api_key(&p, &id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}
