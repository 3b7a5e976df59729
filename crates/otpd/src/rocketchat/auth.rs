//! Who is calling: `X-User-Id` + `X-Auth-Token` (an otpd session or API key, made by
//! `POST login`), Rocket.Chat's 2FA check of `twoFactorRequired` routes, and the routes
//! that log in and out (dialects.md §3, "Login"; `app/api/server/ApiClass.ts`).

use super::error::{RcError, refusal};
use super::users::me_of;
use super::{Body, ok};
use crate::app::AppState;
use crate::app::client::Client;
use crate::app::limit::login_attempt;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::Response;
use otpd_core::{
    CoreError, Door, LoginName, LoginOutcome, PasswordProof, Principal, Reauthentication,
    RequestMeta, Token, VerifyReason,
};
use serde_json::{Map, Value, json};
use std::net::{IpAddr, SocketAddr};
use zeroize::Zeroizing;

/// An authenticated request: the principal of its `X-Auth-Token`, which must belong to the
/// account its `X-User-Id` names (else 401, as Rocket.Chat answers).
pub(super) struct Caller {
    pub principal: Principal,
    pub meta: RequestMeta,
    /// The peer's address, for the login budget.
    pub peer: Option<IpAddr>,
}

impl Caller {
    /// The caller's account name.
    pub fn username(&self) -> &str {
        match &self.principal {
            Principal::Account(caller) => &caller.username,
            Principal::Cli => "",
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn meta(parts: &Parts) -> RequestMeta {
    Client::from_parts(parts).meta(Door::Rocketchat)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = RcError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, RcError> {
        let (Some(user_id), Some(token)) = (
            header(&parts.headers, "x-user-id"),
            header(&parts.headers, "x-auth-token"),
        ) else {
            return Err(RcError::logged_out());
        };
        let principal = match state.service.authenticate(token).await {
            Ok(principal) => principal,
            Err(CoreError::Unauthenticated) => return Err(RcError::logged_out()),
            Err(e) => return Err(e.into()),
        };
        match &principal {
            Principal::Account(caller) if caller.account_id == user_id => Ok(Caller {
                principal,
                meta: meta(parts),
                peer: parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0.ip()),
            }),
            _ => Err(RcError::logged_out()),
        }
    }
}

/// An authenticated request that passed Rocket.Chat's 2FA check (`twoFactorRequired`,
/// without "remember me"), which runs before the route's own checks: `x-2fa-code` and
/// `x-2fa-method` prove the caller again ([`otpd_core::Service::reauthenticate`]: a code
/// of its authenticator, or its password's SHA-256 digest when it has none). The method
/// header is required, as Rocket.Chat requires it, but the core decides which proof the
/// account owes. Each code sent takes one attempt from the address's login budget (a
/// password digest is a password guess). The principal has its second factor proven for
/// this request, so the core's step-up is met.
pub(super) struct Proven(pub Caller);

impl FromRequestParts<AppState> for Proven {
    type Rejection = RcError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, RcError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let code = match (
            header(&parts.headers, "x-2fa-code"),
            header(&parts.headers, "x-2fa-method"),
        ) {
            (Some(code), Some(_)) => Some(Zeroizing::new(code.to_owned())),
            _ => None,
        };
        if code.is_some() {
            login_attempt(state, caller.peer).map_err(RcError::rate_limited)?;
        }
        let found = state
            .service
            .reauthenticate(
                &caller.principal,
                code.as_deref().map(String::as_str),
                &caller.meta,
            )
            .await;
        match found {
            Ok(Reauthentication::Proven(principal)) => Ok(Proven(Caller {
                principal,
                ..caller
            })),
            Ok(Reauthentication::Required(method)) => Err(RcError::proof_required(method)),
            Ok(Reauthentication::Refused(method, reason)) => {
                Err(RcError::proof_refused(method, reason))
            }
            // A code that is no code at all (the digest of a password, say, from an
            // account that has an authenticator).
            Err(CoreError::Invalid { .. }) => Err(RcError::proof_refused(
                otpd_core::ProofMethod::Totp,
                VerifyReason::Invalid,
            )),
            Err(e) => Err(e.into()),
        }
    }
}

/// `POST /api/v1/login` — `user` (a name, or an e-mail address), `username` or `email`,
/// and `password` (the password, or Meteor's `{digest, algorithm: "sha-256"}`); the second
/// factor as `code` or the `x-2fa-code` header (a TOTP code or a backup code). Answers
/// `{"status":"success","data":{"userId","authToken","me"}}`; a refused password 401
/// `Unauthorized` (whichever part was wrong); a missing or wrong second factor 401
/// `totp-required` / `totp-invalid`. An account that policy requires to enroll gets a
/// token that can only enroll (`method.call/2fa:enable`, `2fa:validateTempToken`).
pub(super) async fn login(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, RcError> {
    let meta = client.meta(Door::Rocketchat);
    let mut body = body.object()?;
    for key in body.keys() {
        if !["user", "username", "email", "password", "code"].contains(&key.as_str()) {
            return Err(RcError::unexpected(key));
        }
    }
    let code = match body.remove("code") {
        Some(Value::String(code)) => Some(code),
        Some(_) => return Err(RcError::invalid_params("code must be a string")),
        None => header(&headers, "x-2fa-code").map(str::to_owned),
    };
    let password = proof(body.remove("password"))?;
    let outcome = {
        let name = login_name(&body)?;
        state.service.login_as(name, password, &meta).await
    };
    let token = match outcome {
        Ok(LoginOutcome::Session(token) | LoginOutcome::EnrollmentRequired(token)) => token,
        Ok(LoginOutcome::SecondFactorRequired { challenge, .. }) => {
            let Some(code) = code else {
                return Err(RcError::login_second_factor(
                    "totp-required",
                    "TOTP Required",
                ));
            };
            match state
                .service
                .second_factor(challenge.token.expose(), &code, &meta)
                .await
            {
                Ok(token) => token,
                Err(CoreError::SecondFactorFailed { reason }) => {
                    let (error, message) = refusal(reason);
                    return Err(RcError::login_second_factor(error, message));
                }
                Err(CoreError::Invalid { .. }) => {
                    return Err(RcError::login_second_factor("totp-invalid", "TOTP Invalid"));
                }
                Err(CoreError::Unauthenticated | CoreError::AccountLocked) => {
                    return Err(RcError::login_refused());
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(CoreError::Unauthenticated | CoreError::AccountLocked) => {
            return Err(RcError::login_refused());
        }
        Err(e) => return Err(e.into()),
    };
    logged_in(&state, token).await
}

/// The login answer for a new token.
async fn logged_in(state: &AppState, token: Token) -> Result<Response, RcError> {
    let principal = state.service.authenticate(token.token.expose()).await?;
    let Principal::Account(caller) = &principal else {
        return Err(RcError::login_refused());
    };
    Ok(ok(json!({
        "status": "success",
        "data": {
            "userId": caller.account_id,
            "authToken": token.token.expose(),
            "me": me_of(state, &principal).await?,
        },
    })))
}

/// The account a login names: `user` (a string, or Meteor's `{username}` / `{email}`),
/// else `username`, else `email`.
fn login_name(body: &Map<String, Value>) -> Result<LoginName<'_>, RcError> {
    let text = |key: &str| match body.get(key) {
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        None => Ok(None),
        Some(_) => Err(RcError::invalid_params(format!("{key} must be a string"))),
    };
    match body.get("user") {
        Some(Value::String(user)) => return Ok(LoginName::UsernameOrEmail(user)),
        Some(Value::Object(user)) => {
            return match (user.get("username"), user.get("email")) {
                (Some(Value::String(name)), None) => Ok(LoginName::Username(name)),
                (None, Some(Value::String(email))) => Ok(LoginName::Email(email)),
                _ => Err(RcError::invalid_params(
                    "user must be a name, an e-mail address, {\"username\"} or {\"email\"}",
                )),
            };
        }
        Some(_) => {
            return Err(RcError::invalid_params(
                "user must be a string or an object",
            ));
        }
        None => {}
    }
    if let Some(name) = text("username")? {
        return Ok(LoginName::Username(name));
    }
    if let Some(email) = text("email")? {
        return Ok(LoginName::Email(email));
    }
    Err(RcError::login_refused())
}

/// The password as sent: a string, or Meteor's digest object.
fn proof(password: Option<Value>) -> Result<PasswordProof, RcError> {
    match password {
        Some(Value::String(password)) => Ok(PasswordProof::Plain(Zeroizing::new(password))),
        Some(Value::Object(mut digest)) => {
            let algorithm = digest.remove("algorithm");
            match (
                digest.remove("digest"),
                algorithm.as_ref().and_then(Value::as_str),
            ) {
                (Some(Value::String(hex)), Some("sha-256")) if digest.is_empty() => {
                    Ok(PasswordProof::Sha256Hex(Zeroizing::new(hex)))
                }
                _ => Err(RcError::invalid_params(
                    "password must be a string or {\"digest\", \"algorithm\": \"sha-256\"}",
                )),
            }
        }
        Some(_) => Err(RcError::invalid_params("password must be a string")),
        None => Err(RcError::login_refused()),
    }
}

/// `POST` or `GET /api/v1/logout`: ends the session of the request.
pub(super) async fn logout(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, RcError> {
    state
        .service
        .logout(&caller.principal, &caller.meta)
        .await?;
    Ok(ok(json!({
        "status": "success",
        "data": {"message": "You've been logged out!"},
    })))
}
