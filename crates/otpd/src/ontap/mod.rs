//! The ONTAP dialect: NetApp ONTAP's REST API for TOTP profiles
//! (`/api/security/login/totps`, seed 002) and what its clients read around it
//! (`/api/security/accounts`, `/api/svm/svms`, `/api/cluster`), as ONTAP shapes them on the
//! wire (dialects.md §2): HTTP Basic on every request, `application/hal+json`, ONTAP's
//! collection conventions and error bodies. Every rule is the core's: this module reads
//! ONTAP's parameters, calls the `Service`, and writes ONTAP's answers. What differs from
//! ONTAP, and why, is in `docs/dialects/ontap.md`.
//!
//! The deployment is one cluster with one SVM (the core's [`otpd_core::DeploymentIdentity`]):
//! every account is cluster-scoped and owned by that SVM.

mod accounts;
mod auth;
mod collection;
mod error;
mod totps;

use crate::app::AppState;
use crate::app::limit::{DoorLimits, guard};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
pub use error::OntapError;
use serde_json::{Map, Value};

/// The paths the dialect answers under (its own 404 and 405 included).
const PREFIXES: [&str; 3] = ["/api/security", "/api/svm", "/api/cluster"];

/// The routes of the dialect, with its per-address limits (failed requests, answered in
/// ONTAP's format: a successful Basic request is no login attempt).
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/api/security/login/totps",
            methods(get(totps::list).post(totps::create)),
        )
        .route(
            "/api/security/login/totps/{owner_uuid}/{account_name}",
            methods(get(totps::get).patch(totps::update).delete(totps::delete)),
        )
        .route("/api/security/accounts", methods(get(accounts::list)))
        .route(
            "/api/security/accounts/{owner_uuid}/{name}",
            methods(get(accounts::get)),
        )
        .route("/api/svm/svms", methods(get(accounts::list_svms)))
        .route("/api/svm/svms/{uuid}", methods(get(accounts::get_svm)))
        .route("/api/cluster", methods(get(accounts::cluster)))
        .layer(axum::middleware::from_fn_with_state(state.clone(), limit))
}

/// Whether `path` is the dialect's (for the application's 404s).
pub fn owns(path: &str) -> bool {
    PREFIXES.iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// The answer to an unknown path under the dialect's prefixes.
pub async fn not_found() -> OntapError {
    OntapError::new(
        StatusCode::NOT_FOUND,
        "4",
        "The requested resource does not exist.",
    )
}

fn methods(router: MethodRouter<AppState>) -> MethodRouter<AppState> {
    router.fallback(|| async { OntapError::method_not_allowed() })
}

const LIMITS: DoorLimits = DoorLimits {
    login_paths: &[],
    token: crate::app::client::bearer,
    refuse: |wait| OntapError::rate_limited(wait).into_response(),
};

async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    guard(&state, &LIMITS, request, next).await
}

/// A JSON answer as ONTAP sends it (`application/hal+json`).
pub(crate) fn hal(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/hal+json"),
    );
    response
}

/// The keys in a path (`{owner.uuid}/{account.name}`, `{uuid}`), decoded; a path that does
/// not decode names no entry.
pub(super) struct Keys<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send> FromRequestParts<AppState> for Keys<T> {
    type Rejection = OntapError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, OntapError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(keys)| Keys(keys))
            .map_err(|_| OntapError::not_found())
    }
}

/// A request body: a JSON object (an empty body is an empty object). Read with the
/// duplicate-refusing reader every door shares; any other shape is ONTAP's code 2.
fn object(body: &Bytes) -> Result<Map<String, Value>, OntapError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match crate::json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(OntapError::invalid(
            "body",
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(OntapError::invalid(
            "body",
            format!("The request body is not valid JSON: {e}."),
        )),
    }
}

/// The rejection of a body axum could not read (too large, or the connection failed).
fn unreadable(rejection: axum::extract::rejection::BytesRejection) -> OntapError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        OntapError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "2",
            "The request body is too large.",
        )
        .target("body")
    } else {
        OntapError::invalid("body", "The request body could not be read.")
    }
}
