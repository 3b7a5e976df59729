//! What ONTAP clients read around the TOTP profiles: `/api/security/accounts` (each
//! account's role and whether TOTP is its second authentication method), `/api/svm/svms`
//! (the deployment's one SVM) and `/api/cluster`.

use super::Keys;
use super::auth::Caller;
use super::collection::{self, Collection, ListQuery};
use super::error::OntapError;
use super::hal;
use super::totps::owner;
use crate::app::AppState;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use otpd_core::{CoreError, DeploymentIdentity, Role, Roles};
use serde_json::{Value, json};

const ACCOUNTS: Collection = Collection {
    path: "/api/security/accounts",
    order_field: "name",
    key_fields: &["owner.uuid", "owner.name", "name"],
    fields: &[
        "owner.uuid",
        "owner.name",
        "name",
        "scope",
        "locked",
        "role.name",
        "applications.application",
        "applications.authentication_methods",
        "applications.second_authentication_method",
    ],
    booleans: &["locked"],
    with_factor_only: false,
};

const SVMS: Collection = Collection {
    path: "/api/svm/svms",
    order_field: "name",
    key_fields: &["uuid", "name"],
    fields: &["uuid", "name", "state", "subtype"],
    booleans: &[],
    with_factor_only: false,
};

/// ONTAP's name for an account's role: its built-in `admin` and `readonly` where they
/// mean the same, otpd's own names otherwise (ONTAP has custom roles too), `none` for a
/// plain account.
fn role_name(roles: &Roles) -> &'static str {
    if roles.contains(&Role::FullAdmin) {
        "admin"
    } else if roles.contains(&Role::TwofactorAdmin) {
        "twofactor_admin"
    } else if roles.contains(&Role::ReadonlyAdmin) {
        "readonly"
    } else if roles.contains(&Role::Verifier) {
        "verifier"
    } else {
        "none"
    }
}

fn account_record(
    id: &DeploymentIdentity,
    name: &str,
    roles: &Roles,
    locked: bool,
    totp: bool,
) -> Value {
    json!({
        "owner": owner(id),
        "name": name,
        "scope": "cluster",
        "locked": locked,
        "role": { "name": role_name(roles) },
        "applications": [{
            "application": "http",
            "authentication_methods": ["password"],
            "second_authentication_method": if totp { "totp" } else { "none" },
        }],
        "_links": { "self": { "href": format!("{}/{}/{name}", ACCOUNTS.path, id.svm_uuid) } },
    })
}

fn svm_record(id: &DeploymentIdentity) -> Value {
    json!({
        "uuid": id.svm_uuid,
        "name": id.svm_name,
        "state": "running",
        "subtype": "default",
        "_links": { "self": { "href": format!("{}/{}", SVMS.path, id.svm_uuid) } },
    })
}

/// `GET /api/security/accounts`: admins (read-only ones included) see every account, an
/// account itself.
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, OntapError> {
    let q = ListQuery::parse(raw.as_deref(), &ACCOUNTS)?;
    let id = state.service.deployment_identity().await?;
    let body = collection::answer(&state, &caller.principal, &ACCOUNTS, &q, |e| {
        account_record(&id, &e.username, &e.roles, e.locked, e.factor.is_some())
    })
    .await?;
    Ok(hal(StatusCode::OK, &body))
}

/// `GET /api/security/accounts/{owner.uuid}/{name}`.
pub async fn get(
    caller: Caller,
    State(state): State<AppState>,
    Keys((owner_uuid, name)): Keys<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, OntapError> {
    let fields = collection::single(raw.as_deref(), ACCOUNTS.fields, true)?;
    let id = state.service.deployment_identity().await?;
    if !owner_uuid.eq_ignore_ascii_case(&id.svm_uuid) {
        return Err(OntapError::not_found());
    }
    let account = state.service.get_account(&caller.principal, &name).await?;
    let totp = match state.service.totp_status(&caller.principal, &name).await {
        Ok(status) => status.state == "active",
        Err(CoreError::NotFound(_)) => false,
        Err(e) => return Err(e.into()),
    };
    let full = account_record(&id, &account.username, &account.roles, account.locked, totp);
    Ok(hal(
        StatusCode::OK,
        &collection::project(&full, ACCOUNTS.key_fields, &fields),
    ))
}

/// `GET /api/svm/svms`: the deployment's one SVM, to any account.
pub async fn list_svms(
    _caller: Caller,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, OntapError> {
    let q = ListQuery::parse(raw.as_deref(), &SVMS)?;
    let id = state.service.deployment_identity().await?;
    Ok(hal(
        StatusCode::OK,
        &q.answer_fixed(&SVMS, vec![svm_record(&id)]),
    ))
}

/// `GET /api/svm/svms/{uuid}`.
pub async fn get_svm(
    _caller: Caller,
    State(state): State<AppState>,
    Keys(uuid): Keys<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, OntapError> {
    let fields = collection::single(raw.as_deref(), SVMS.fields, true)?;
    let id = state.service.deployment_identity().await?;
    if !uuid.eq_ignore_ascii_case(&id.svm_uuid) {
        return Err(OntapError::not_found());
    }
    Ok(hal(
        StatusCode::OK,
        &collection::project(&svm_record(&id), SVMS.key_fields, &fields),
    ))
}

/// `GET /api/cluster`: the deployment as an ONTAP 9.13.1 cluster (the first release with
/// TOTP profiles), to any account.
pub async fn cluster(
    _caller: Caller,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, OntapError> {
    const FIELDS: &[&str] = &[
        "name",
        "uuid",
        "version.full",
        "version.generation",
        "version.major",
        "version.minor",
    ];
    let fields = collection::single(raw.as_deref(), FIELDS, true)?;
    let id = state.service.deployment_identity().await?;
    let full = json!({
        "name": id.cluster_name,
        "uuid": id.cluster_uuid,
        "version": {
            "full": format!("NetApp Release 9.13.1: otpd {}", env!("CARGO_PKG_VERSION")),
            "generation": 9,
            "major": 13,
            "minor": 1,
        },
        "_links": { "self": { "href": "/api/cluster" } },
    });
    Ok(hal(
        StatusCode::OK,
        &collection::project(&full, &["name", "uuid"], &fields),
    ))
}
