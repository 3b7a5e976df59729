//! Rocket.Chat's user routes that a 2FA client needs: `me`, `users.info`, `users.create`
//! and the seed's `users.resetTOTP` (seed 003; `app/api/server/v1/users.ts`,
//! `app/2fa/server/functions/resetTOTP.ts`).

use super::auth::{Caller, Proven};
use super::error::RcError;
use super::{Body, ok};
use crate::app::AppState;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use otpd_core::{Account, CoreError, NewAccount, Principal, Role, Roles};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use zeroize::Zeroizing;

/// Rocket.Chat's role names of an account: `user` for everyone, `admin` for a full admin,
/// otpd's other roles under their own names (Rocket.Chat has custom roles).
fn role_names(roles: &Roles) -> Vec<&'static str> {
    let mut names = vec!["user"];
    for role in roles {
        names.push(match role {
            Role::FullAdmin => "admin",
            other => other.as_str(),
        });
    }
    names
}

/// An ISO 8601 date as Rocket.Chat's EJSON dates appear in REST answers.
fn date(unix: i64) -> Value {
    humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(unix).unwrap_or(0)),
    )
    .to_string()
    .into()
}

fn emails(account: &Account) -> Value {
    match &account.email {
        Some(address) => json!([{"address": address, "verified": false}]),
        None => json!([]),
    }
}

/// The user as `users.info` shows it (`getFullUserData`, with the fields its viewer may see).
fn user(account: &Account, itself: bool) -> Value {
    let mut user = json!({
        "_id": account.id,
        "username": account.username,
        "name": account.full_name,
        "type": "user",
        "status": "offline",
        "active": !account.locked,
        "utcOffset": 0,
        "emails": emails(account),
        "roles": role_names(&account.roles),
        "createdAt": date(account.created_at),
        "_updatedAt": date(account.updated_at),
        "requirePasswordChange": false,
        "canViewAllInfo": true,
    });
    if itself && let Value::Object(fields) = &mut user {
        fields.insert("services".into(), services(account));
    }
    user
}

fn services(account: &Account) -> Value {
    json!({
        "password": {"exists": !account.password_disabled},
        "totp": {"enabled": account.twofactor_configured},
    })
}

/// An account as `me` and the login answer show it (`getUserInfo`).
fn me(account: &Account) -> Value {
    let mut me = user(account, true);
    if let Value::Object(fields) = &mut me {
        fields.remove("canViewAllInfo");
        if let Some(address) = &account.email {
            fields.insert("email".into(), address.clone().into());
        }
        fields.insert("settings".into(), json!({"profile": {}, "preferences": {}}));
    }
    me
}

/// The caller as `me` shows it. An account whose role may read no account (a
/// `verifier`) is shown what its credential says: id, name and roles.
pub(super) async fn me_of(state: &AppState, principal: &Principal) -> Result<Value, RcError> {
    let Principal::Account(caller) = principal else {
        return Err(RcError::logged_out());
    };
    match state.service.get_account(principal, &caller.username).await {
        Ok(account) => Ok(me(&account)),
        Err(CoreError::Forbidden(_)) => Ok(json!({
            "_id": caller.account_id,
            "username": caller.username,
            "type": "user",
            "active": true,
            "roles": role_names(&caller.roles),
        })),
        Err(e) => Err(e.into()),
    }
}

/// `GET /api/v1/me`.
pub(super) async fn get_me(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, RcError> {
    Ok(ok(me_of(&state, &caller.principal).await?))
}

/// The account named by `userId` (its stable id) or `username`, as the caller may see it.
/// A value that is given empty is Rocket.Chat's `error-user-param-not-provided`; an account
/// the caller may not see is `error-not-allowed`, whether it exists or not.
async fn target(
    state: &AppState,
    caller: &Caller,
    user_id: Option<&str>,
    username: Option<&str>,
) -> Result<Account, TargetError> {
    let found = match (user_id.map(str::trim), username.map(str::trim)) {
        (Some(id), _) if !id.is_empty() => state.service.account_by_id(&caller.principal, id).await,
        (_, Some(name)) if !name.is_empty() => {
            state.service.get_account(&caller.principal, name).await
        }
        _ => return Err(TargetError::NotProvided),
    };
    found.map_err(|e| match e {
        CoreError::NotFound(_) => TargetError::Unknown,
        other => TargetError::Core(other),
    })
}

enum TargetError {
    NotProvided,
    Unknown,
    Core(CoreError),
}

/// `GET /api/v1/users.info?userId=…|username=…`: the account itself or, for an admin, any.
pub(super) async fn info(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, RcError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or_default())
            .map_err(|e| RcError::invalid_params(format!("the query is invalid: {e}")))?;
    let mut query = HashMap::new();
    for (key, value) in pairs {
        if query.insert(key.clone(), value).is_some() {
            return Err(RcError::invalid_params(format!(
                "the query gives \"{key}\" twice"
            )));
        }
    }
    for key in query.keys() {
        if !["userId", "username", "fields"].contains(&key.as_str()) {
            return Err(RcError::unexpected(key));
        }
    }
    let account = target(
        &state,
        &caller,
        query.get("userId").map(String::as_str),
        query.get("username").map(String::as_str),
    )
    .await
    .map_err(|e| match e {
        TargetError::NotProvided => RcError::failure("Invalid search query."),
        TargetError::Unknown => RcError::failure("User not found."),
        TargetError::Core(e) => e.into(),
    })?;
    let itself = matches!(&caller.principal, Principal::Account(c) if c.account_id == account.id);
    Ok(ok(json!({"user": user(&account, itself)})))
}

/// The body fields of `users.create` (Rocket.Chat's `isUserCreateParamsPOST`) that otpd
/// reads, and the ones it accepts and ignores because they are about chat, not accounts.
const CREATE_FIELDS: [&str; 5] = ["email", "name", "password", "username", "roles"];
const CREATE_IGNORED: [&str; 8] = [
    "active",
    "joinDefaultChannels",
    "requirePasswordChange",
    "sendWelcomeEmail",
    "verified",
    "customFields",
    "nickname",
    "bio",
];

/// `POST /api/v1/users.create` (admins: the core's `full_admin`): `email`, `name`,
/// `password`, `username` required; `roles` (`user`, `admin`, or otpd's role names).
/// `active: false` is refused rather than ignored (lock the account through otpd).
pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Body,
) -> Result<Response, RcError> {
    let mut body = body.object()?;
    for key in body.keys() {
        if !CREATE_FIELDS.contains(&key.as_str()) && !CREATE_IGNORED.contains(&key.as_str()) {
            return Err(RcError::unexpected(key));
        }
    }
    if body.get("active") == Some(&Value::Bool(false)) {
        return Err(RcError::invalid_params(
            "active: false is not supported; lock the account after creating it",
        ));
    }
    let mut text = |key: &str| match body.remove(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(RcError::invalid_params(format!("{key} must be a string"))),
        None => Err(RcError::invalid_params(format!(
            "must have required property '{key}'"
        ))),
    };
    let (email, name, password, username) = (
        text("email")?,
        text("name")?,
        text("password")?,
        text("username")?,
    );
    let roles = roles(body.remove("roles"))?;
    let new = NewAccount {
        username: username.clone(),
        password: Some(Zeroizing::new(password)),
        roles,
        full_name: name,
        email: Some(email.clone()),
        profile: None,
    };
    let account = match state
        .service
        .create_account(&caller.principal, new, &caller.meta)
        .await
    {
        Ok(account) => account,
        Err(CoreError::Forbidden(_)) => {
            return Err(
                RcError::meteor("error-action-not-allowed", "Adding user is not allowed")
                    .details(json!({"method": "insertOrUpdateUser", "action": "Adding_user"})),
            );
        }
        Err(CoreError::Conflict(_)) => {
            return Err(RcError::meteor(
                "error-field-unavailable",
                format!("{username} is already in use :("),
            )
            .details(json!({"method": "insertOrUpdateUser", "field": username})));
        }
        Err(CoreError::Invalid { field, message }) => {
            return Err(match field.as_ref() {
                "email" => RcError::meteor("error-invalid-email", format!("Invalid email {email}"))
                    .details(json!({"method": "insertOrUpdateUser", "email": email})),
                "username" => RcError::meteor(
                    "error-input-is-not-a-valid-field",
                    format!("{username} is not a valid username: {message}"),
                )
                .details(
                    json!({"method": "insertOrUpdateUser", "input": username, "field": "Username"}),
                ),
                _ => RcError::invalid_params(format!("{field}: {message}")),
            });
        }
        Err(e) => return Err(e.into()),
    };
    Ok(ok(json!({"user": user(&account, false)})))
}

/// Rocket.Chat role names to otpd's roles.
fn roles(value: Option<Value>) -> Result<Roles, RcError> {
    let Some(value) = value else {
        return Ok(Roles::new());
    };
    let Value::Array(names) = value else {
        return Err(RcError::invalid_params(
            "roles must be an array of role names",
        ));
    };
    let mut roles = Roles::new();
    for name in names {
        let role = match name.as_str() {
            Some("user") => continue,
            Some("admin") => Role::FullAdmin,
            Some(other) => other.parse::<Role>().map_err(|_| {
                RcError::meteor("error-invalid-role", format!("Invalid role {other}"))
            })?,
            None => {
                return Err(RcError::invalid_params(
                    "roles must be an array of role names",
                ));
            }
        };
        roles.insert(role);
    }
    Ok(roles)
}

/// `POST /api/v1/users.resetTOTP` (seed 003), after the 2FA check: without `userId`,
/// `username` or `user` the caller's own authenticator, else that account's (the core's
/// `twofactor_admin` or `full_admin`: Rocket.Chat's `edit-other-user-totp`). The core
/// removes the authenticator and its recovery codes and revokes the account's sessions
/// (all of them when someone else resets it; the caller's own session stays when it resets
/// its own), and audits it. `{"success":true}` also when there was nothing to reset, as
/// Rocket.Chat answers.
pub(super) async fn reset_totp(
    State(state): State<AppState>,
    Proven(caller): Proven,
    body: Body,
) -> Result<Response, RcError> {
    let body = body.object()?;
    let named = ["userId", "username", "user"]
        .iter()
        .any(|key| body.contains_key(*key));
    let subject = if named {
        let field = |key: &str| -> Result<Option<&str>, RcError> {
            match body.get(key) {
                Some(Value::String(s)) => Ok(Some(s)),
                None | Some(Value::Null) => Ok(None),
                Some(_) => Err(RcError::invalid_params(format!("{key} must be a string"))),
            }
        };
        let username = field("username")?.or(field("user")?);
        target(&state, &caller, field("userId")?, username)
            .await
            .map_err(|e| match e {
                TargetError::NotProvided => RcError::meteor(
                    "error-user-param-not-provided",
                    "The required \"userId\" or \"username\" param was not provided",
                ),
                TargetError::Unknown => RcError::meteor(
                    "error-invalid-user",
                    "The required \"userId\" or \"username\" param provided does not match any users",
                ),
                TargetError::Core(e) => e.into(),
            })?
            .username
    } else {
        caller.username().to_owned()
    };
    match state
        .service
        .remove_totp(&caller.principal, &subject, None, &caller.meta)
        .await
    {
        Ok(()) | Err(CoreError::NotFound("authenticator")) => Ok(ok(Value::Object(Map::new()))),
        Err(e) => Err(e.into()),
    }
}
