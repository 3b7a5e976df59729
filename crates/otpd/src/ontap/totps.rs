//! `/api/security/login/totps`: TOTP profiles (ONTAP 9.13.1+, seed 002; dialects.md §2).
//! A profile is an account's active authenticator; its key is `owner.uuid` (the SVM) and
//! `account.name`.

use super::auth::Caller;
use super::collection::{self, Collection, ListQuery, boolean, pairs, return_timeout};
use super::error::{INVALID_ENABLED, NOT_CONFIGURED, ONLY_ADMIN_MAY_CHANGE_STATUS, OntapError};
use super::{Keys, hal, object, unreadable};
use crate::app::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use otpd_core::{CoreError, DeploymentIdentity, Principal, Role, TotpOptions};
use serde_json::{Map, Value, json};

const TOTPS: Collection = Collection {
    path: "/api/security/login/totps",
    order_field: "account.name",
    key_fields: &["owner.uuid", "owner.name", "account.name"],
    fields: &[
        "owner.uuid",
        "owner.name",
        "account.name",
        "comment",
        "enabled",
        "scope",
        "sha_fingerprint",
    ],
    booleans: &["enabled"],
    with_factor_only: true,
};

/// The SVM as a record's `owner`.
pub(super) fn owner(id: &DeploymentIdentity) -> Value {
    json!({
        "uuid": id.svm_uuid,
        "name": id.svm_name,
        "_links": { "self": { "href": format!("/api/svm/svms/{}", id.svm_uuid) } },
    })
}

/// A profile's href (usernames are letters, digits and `._-@`: nothing to escape in a path).
fn href(id: &DeploymentIdentity, name: &str) -> String {
    format!("{}/{}/{name}", TOTPS.path, id.svm_uuid)
}

/// A profile as ONTAP's `totp` record, every field.
fn record(
    id: &DeploymentIdentity,
    name: &str,
    enabled: bool,
    comment: &str,
    fingerprint: &str,
) -> Value {
    json!({
        "owner": owner(id),
        "account": {
            "name": name,
            "_links": { "self": { "href": format!("/api/security/accounts/{}/{name}", id.svm_uuid) } },
        },
        "comment": comment,
        "enabled": enabled,
        "scope": "cluster",
        "sha_fingerprint": fingerprint,
        "_links": { "self": { "href": href(id, name) } },
    })
}

/// The caller's own name (a Basic request always authenticates an account).
fn own_name(principal: &Principal) -> Result<&str, OntapError> {
    match principal {
        Principal::Account(caller) => Ok(&caller.username),
        Principal::Cli => Err(OntapError::unauthenticated()),
    }
}

/// The SVM a path names must be the deployment's; any other is an unknown entry.
async fn identity_for(
    state: &AppState,
    owner_uuid: &str,
) -> Result<DeploymentIdentity, OntapError> {
    let id = state.service.deployment_identity().await?;
    if owner_uuid.eq_ignore_ascii_case(&id.svm_uuid) {
        Ok(id)
    } else {
        Err(OntapError::not_found())
    }
}

/// `GET /api/security/login/totps`: admins see every profile, an account its own.
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, OntapError> {
    let q = ListQuery::parse(raw.as_deref(), &TOTPS)?;
    let id = state.service.deployment_identity().await?;
    let body = collection::answer(&state, &caller.principal, &TOTPS, &q, |entry| {
        let (enabled, comment, fingerprint) = entry.factor.as_ref().map_or((false, "", ""), |f| {
            (f.enabled, f.comment.as_str(), f.fingerprint.as_str())
        });
        record(&id, &entry.username, enabled, comment, fingerprint)
    })
    .await?;
    Ok(hal(StatusCode::OK, &body))
}

/// `GET /api/security/login/totps/{owner.uuid}/{account.name}`: the profile, never its
/// secret.
pub async fn get(
    caller: Caller,
    State(state): State<AppState>,
    Keys((owner_uuid, name)): Keys<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, OntapError> {
    let fields = collection::single(raw.as_deref(), TOTPS.fields, true)?;
    let id = identity_for(&state, &owner_uuid).await?;
    let status = state.service.totp_status(&caller.principal, &name).await?;
    if status.state != "active" {
        return Err(OntapError::not_found());
    }
    let account = state.service.get_account(&caller.principal, &name).await?;
    let full = record(
        &id,
        &account.username,
        status.enabled,
        &status.comment,
        &status.fingerprint,
    );
    Ok(hal(
        StatusCode::OK,
        &collection::project(&full, TOTPS.key_fields, &fields),
    ))
}

/// `POST /api/security/login/totps`: the caller creates its own profile (ONTAP: "You are
/// only allowed to create a TOTP profile for yourself"). With `return_records=true` the
/// answer holds, once, the secret, its key URI, the current code (whose step is therefore
/// claimed) and the recovery codes.
pub async fn create(
    caller: Caller,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OntapError> {
    let mut return_records = false;
    for (name, value) in pairs(raw.as_deref())? {
        match name.as_str() {
            "return_records" => return_records = boolean(&name, &value)?,
            "return_timeout" => {
                return_timeout(&value)?;
            }
            _ => return Err(OntapError::unexpected(&name)),
        }
    }
    let body = object(&body.map_err(unreadable)?)?;
    let id = state.service.deployment_identity().await?;
    let mut account = None;
    let mut comment = None;
    for (field, value) in body {
        match field.as_str() {
            "account" => {
                for (sub, value) in sub_object("account", &value)? {
                    match sub.as_str() {
                        "name" => account = Some(string("account.name", value)?),
                        "_links" => {}
                        other => return Err(OntapError::unexpected(&format!("account.{other}"))),
                    }
                }
            }
            "owner" => check_owner(&id, &value)?,
            "comment" => comment = Some(string("comment", &value)?),
            other => return Err(OntapError::unexpected(other)),
        }
    }
    let account = account.ok_or_else(|| {
        OntapError::invalid(
            "account.name",
            "Missing value for required field \"account.name\".",
        )
    })?;
    let me = own_name(&caller.principal)?;
    // ONTAP's POST has one possible subject, the caller: "Admin cannot create TOTP
    // profiles for any users."
    if !account.eq_ignore_ascii_case(me) {
        return Err(OntapError::new(
            StatusCode::FORBIDDEN,
            "6",
            "You are only allowed to create a TOTP profile for yourself, not for others.",
        )
        .target("account.name"));
    }
    let options = TotpOptions {
        comment,
        ..TotpOptions::default()
    };
    let made = state
        .service
        .provision_totp(
            &caller.principal,
            me,
            &options,
            return_records,
            &caller.meta,
        )
        .await?;
    let body = if return_records {
        json!({
            "num_records": 1,
            "records": [{
                "owner": owner(&id),
                "account": { "name": me },
                "comment": options.comment.unwrap_or_default(),
                "scope": "cluster",
                "sha_fingerprint": made.fingerprint,
                "secret_key": made.secret.expose(),
                "install_url": made.provisioning_uri.expose(),
                "verification_code": made.verification_code,
                "emergency_codes": made.recovery_codes.iter().map(|c| c.expose()).collect::<Vec<_>>(),
            }],
        })
    } else {
        json!({})
    };
    let mut response = hal(StatusCode::CREATED, &body);
    // The NetApp client reads the new record's keys from here.
    if let Ok(location) = HeaderValue::from_str(&href(&id, me)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `PATCH …/{owner.uuid}/{account.name}`: `comment` (the account or an admin) and `enabled`
/// (admins only), with the seed's error codes.
pub async fn update(
    caller: Caller,
    State(state): State<AppState>,
    Keys((owner_uuid, name)): Keys<(String, String)>,
    RawQuery(raw): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OntapError> {
    collection::single(raw.as_deref(), TOTPS.fields, false)?;
    let body = object(&body.map_err(unreadable)?)?;
    identity_for(&state, &owner_uuid).await?;
    let mut enabled = None;
    let mut comment = None;
    for (field, value) in body {
        match field.as_str() {
            "enabled" => match value {
                Value::Bool(b) => enabled = Some(b),
                _ => {
                    return Err(OntapError::new(
                        StatusCode::BAD_REQUEST,
                        INVALID_ENABLED,
                        "Invalid option for the field -enabled",
                    )
                    .target("enabled"));
                }
            },
            "comment" => comment = Some(string("comment", &value)?),
            "owner" | "account" | "scope" | "sha_fingerprint" => {
                return Err(OntapError::invalid(
                    &field,
                    format!("Field \"{field}\" cannot be modified."),
                ));
            }
            // Read-only metadata a client may echo back.
            "_links" => {}
            other => return Err(OntapError::unexpected(other)),
        }
    }
    let not_configured = || {
        OntapError::new(
            StatusCode::NOT_FOUND,
            NOT_CONFIGURED,
            "TOTP is not configured for the user",
        )
        .target("account.name")
    };
    if enabled.is_none() && comment.is_none() {
        return match state.service.totp_status(&caller.principal, &name).await {
            Ok(status) if status.state == "active" => Ok(hal(StatusCode::OK, &json!({}))),
            Ok(_) | Err(CoreError::NotFound("authenticator")) => Err(not_configured()),
            Err(other) => Err(other.into()),
        };
    }
    // The seed's 144834564 says the caller lacks the admin role; a 2FA admin refused for
    // an account its roles do not cover gets the generic refusal.
    let status_refused = enabled.is_some() && !caller.principal.has(Role::TwofactorAdmin);
    state
        .service
        .update_totp(
            &caller.principal,
            &name,
            enabled,
            comment,
            caller.step_up_code.as_deref(),
            &caller.meta,
        )
        .await
        .map_err(|e| match e {
            CoreError::Forbidden(_) if status_refused => OntapError::new(
                StatusCode::FORBIDDEN,
                ONLY_ADMIN_MAY_CHANGE_STATUS,
                "Only users with the admin role are allowed to modify the TOTP status.",
            )
            .target("enabled"),
            CoreError::NotFound("authenticator") => not_configured(),
            other => other.into(),
        })?;
    Ok(hal(StatusCode::OK, &json!({})))
}

/// `DELETE …/{owner.uuid}/{account.name}` (the NetApp client sends `{}`): an admin removes
/// any profile; the owner its own when it is no active second factor (an admin switched it
/// off) or with a current code in `X-OTP-Code` — the core's step-up rule.
pub async fn delete(
    caller: Caller,
    State(state): State<AppState>,
    Keys((owner_uuid, name)): Keys<(String, String)>,
    RawQuery(raw): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OntapError> {
    collection::single(raw.as_deref(), TOTPS.fields, false)?;
    if let Some(field) = object(&body.map_err(unreadable)?)?.keys().next() {
        return Err(OntapError::unexpected(field));
    }
    identity_for(&state, &owner_uuid).await?;
    state
        .service
        .remove_totp(
            &caller.principal,
            &name,
            caller.step_up_code.as_deref(),
            &caller.meta,
        )
        .await?;
    Ok(hal(StatusCode::OK, &json!({})))
}

fn sub_object<'a>(field: &str, value: &'a Value) -> Result<&'a Map<String, Value>, OntapError> {
    value
        .as_object()
        .ok_or_else(|| OntapError::invalid(field, format!("Field \"{field}\" must be an object.")))
}

fn string(field: &str, value: &Value) -> Result<String, OntapError> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| OntapError::invalid(field, format!("Field \"{field}\" must be a string.")))
}

/// A posted `owner` must name the deployment's SVM (by UUID and/or name).
fn check_owner(id: &DeploymentIdentity, value: &Value) -> Result<(), OntapError> {
    for (sub, value) in sub_object("owner", value)? {
        let matches = match sub.as_str() {
            "uuid" => string("owner.uuid", value)?.eq_ignore_ascii_case(&id.svm_uuid),
            "name" => string("owner.name", value)? == id.svm_name,
            "_links" => true,
            other => return Err(OntapError::unexpected(&format!("owner.{other}"))),
        };
        if !matches {
            return Err(
                OntapError::new(StatusCode::NOT_FOUND, "4", "entry doesn't exist")
                    .target(format!("owner.{sub}")),
            );
        }
    }
    Ok(())
}
