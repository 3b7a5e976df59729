//! `/api/v1/accounts`.

use super::error::{ApiError, Problem};
use super::extract::{ApiJson, ApiPath as Path, ApiQuery as Query, Auth, Meta, StepUpCode};
use crate::app::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use otpd_core::{Account, AccountPatch, NewAccount, Role};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use zeroize::Zeroizing;

/// A new account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    /// 1–64 of letters, digits, `.`, `_`, `-`, `@`; unique case-insensitively.
    username: String,
    /// At least 8 characters; omit to disable password login.
    password: Option<String>,
    /// Roles; none for a plain account.
    #[serde(default)]
    roles: Vec<Role>,
    /// Display name.
    #[serde(default)]
    full_name: String,
    /// E-mail address.
    email: Option<String>,
}

/// Create an account (full admins).
#[utoipa::path(post, path = "/api/v1/accounts", tag = "accounts", request_body = CreateAccount,
    responses((status = 201, body = Account), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(s): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<CreateAccount>,
) -> Result<(StatusCode, ApiJson<Account>), ApiError> {
    let new = NewAccount {
        username: req.username,
        password: req.password.map(Zeroizing::new),
        roles: req.roles.into_iter().collect(),
        full_name: req.full_name,
        email: req.email,
        profile: None,
    };
    Ok((
        StatusCode::CREATED,
        ApiJson(s.service.create_account(&p, new, &meta).await?),
    ))
}

/// Paging and filtering for account lists.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only names starting with this (case-insensitive).
    prefix: Option<String>,
    /// At most this many (1–1000, default 100).
    limit: Option<u32>,
    /// Skip this many.
    offset: Option<u64>,
}

/// List accounts (admins).
#[utoipa::path(get, path = "/api/v1/accounts", tag = "accounts", params(ListParams), responses((status = 200, body = [Account])))]
pub async fn list(
    State(s): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<ListParams>,
) -> Result<ApiJson<Vec<Account>>, ApiError> {
    Ok(ApiJson(
        s.service
            .list_accounts(
                &p,
                q.prefix.as_deref(),
                q.limit.unwrap_or(100),
                q.offset.unwrap_or(0),
            )
            .await?,
    ))
}

/// Read an account (itself or admins).
#[utoipa::path(get, path = "/api/v1/accounts/{username}", tag = "accounts", params(("username" = String, Path)),
    responses((status = 200, body = Account), (status = 404, body = Problem)))]
pub async fn get(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(username): Path<String>,
) -> Result<ApiJson<Account>, ApiError> {
    Ok(ApiJson(s.service.get_account(&p, &username).await?))
}

/// Changes to an account; absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAccount {
    full_name: Option<String>,
    /// `null` removes the address.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    email: Option<Option<String>>,
    /// Full admins only.
    roles: Option<Vec<Role>>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Update an account.
#[utoipa::path(patch, path = "/api/v1/accounts/{username}", tag = "accounts", params(("username" = String, Path)), request_body = UpdateAccount,
    responses((status = 200, body = Account), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn update(
    State(s): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(username): Path<String>,
    ApiJson(req): ApiJson<UpdateAccount>,
) -> Result<ApiJson<Account>, ApiError> {
    let patch = AccountPatch {
        full_name: req.full_name,
        email: req.email,
        roles: req.roles.map(|r| r.into_iter().collect()),
        ..AccountPatch::default()
    };
    Ok(ApiJson(
        s.service
            .update_account(&p, &username, patch, &meta)
            .await?,
    ))
}

/// Delete an account with everything it owns (full admins).
#[utoipa::path(delete, path = "/api/v1/accounts/{username}", tag = "accounts", params(("username" = String, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete(
    State(s): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(username): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.service.delete_account(&p, &username, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new password (`null` disables password login).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    password: Option<String>,
    /// The current password: needed to change one's own password when the account has no
    /// active second factor (with one, step-up is needed instead).
    current_password: Option<String>,
}

/// Set an account's password (itself or full admins); revokes its other sessions, and
/// when an admin resets it, its API keys. One's own change needs `current_password`, or
/// with an active authenticator a recent second factor or `X-OTP-Code`.
#[utoipa::path(put, path = "/api/v1/accounts/{username}/password", tag = "accounts", params(("username" = String, Path), ("X-OTP-Code" = Option<String>, Header)), request_body = SetPassword,
    responses((status = 204), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn set_password(
    State(s): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(username): Path<String>,
    StepUpCode(code): StepUpCode,
    ApiJson(req): ApiJson<SetPassword>,
) -> Result<StatusCode, ApiError> {
    s.service
        .set_password(
            &p,
            &username,
            req.password.map(Zeroizing::new),
            req.current_password.map(Zeroizing::new),
            code.as_deref(),
            &meta,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lock an account: its sessions end, logins and API keys are refused (full admins).
#[utoipa::path(post, path = "/api/v1/accounts/{username}/lock", tag = "accounts", params(("username" = String, Path)), responses((status = 200, body = Account)))]
pub async fn lock(
    State(s): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(username): Path<String>,
) -> Result<ApiJson<Account>, ApiError> {
    Ok(ApiJson(
        s.service
            .set_account_locked(&p, &username, true, &meta)
            .await?,
    ))
}

/// Unlock an account (full admins).
#[utoipa::path(post, path = "/api/v1/accounts/{username}/unlock", tag = "accounts", params(("username" = String, Path)), responses((status = 200, body = Account)))]
pub async fn unlock(
    State(s): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(username): Path<String>,
) -> Result<ApiJson<Account>, ApiError> {
    Ok(ApiJson(
        s.service
            .set_account_locked(&p, &username, false, &meta)
            .await?,
    ))
}
