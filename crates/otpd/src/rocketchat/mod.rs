//! The Rocket.Chat dialect: the REST calls a Rocket.Chat client or bot makes around TOTP —
//! `login` with a second factor, `logout`, `me`, `users.info`, `users.create`, the seed's
//! `users.resetTOTP` (seed 003) and the `2fa:*` methods through `method.call` — as
//! Rocket.Chat 7.x shapes them on the wire (dialects.md §3): `X-User-Id` + `X-Auth-Token`,
//! `{"success": …}` bodies, `Meteor.Error` failures, the `x-2fa-code` check. Every rule is
//! the core's: this module reads Rocket.Chat's requests, calls the `Service`, and writes
//! Rocket.Chat's answers. It is served under a prefix (`/rocketchat` by default), so
//! clients are given `<server>/rocketchat` as the Rocket.Chat server. What differs from
//! Rocket.Chat, and why, is in `docs/dialects/rocketchat.md`.

mod auth;
mod error;
mod method;
mod users;

use crate::app::AppState;
use crate::app::limit::{DoorLimits, guard};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
pub use error::RcError;
use serde_json::{Map, Value, json};

/// The Rocket.Chat version whose API this dialect follows (its 7.x error bodies), as
/// `GET /api/info` reports it.
pub const ROCKETCHAT_VERSION: &str = "7.10.0";

/// The routes of the dialect (paths below its prefix), with its per-address limits
/// answered in Rocket.Chat's format.
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/api/info", methods(get(info)))
        .route("/api/v1/login", methods(post(auth::login)))
        .route(
            "/api/v1/logout",
            methods(post(auth::logout).get(auth::logout)),
        )
        .route("/api/v1/me", methods(get(users::get_me)))
        .route("/api/v1/users.info", methods(get(users::info)))
        .route("/api/v1/users.create", methods(post(users::create)))
        .route("/api/v1/users.resetTOTP", methods(post(users::reset_totp)))
        .route("/api/v1/method.call/{method}", methods(post(method::call)))
        .route(
            "/api/v1/method.callAnon/{method}",
            methods(post(method::call_anon)),
        )
        .fallback(|| async { RcError::no_endpoint() })
        .layer(axum::middleware::from_fn_with_state(state.clone(), limit))
}

/// Whether `path` is below `prefix` (for the application's 404s: `<prefix>/`, which the
/// nested router does not see).
pub fn owns(prefix: &str, path: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn methods(router: MethodRouter<AppState>) -> MethodRouter<AppState> {
    router.fallback(|| async { RcError::method_not_allowed() })
}

/// Paths as the dialect's router sees them: below the prefix.
const LIMITS: DoorLimits = DoorLimits {
    login_paths: &["/api/v1/login"],
    token: |headers| headers.get("x-auth-token").and_then(|v| v.to_str().ok()),
    refuse: |wait| RcError::rate_limited(wait).into_response(),
};

async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    guard(&state, &LIMITS, request, next).await
}

/// `GET /api/info`: the version, for anyone (clients ask it before logging in).
async fn info() -> Response {
    ok(json!({"version": ROCKETCHAT_VERSION}))
}

/// A success: HTTP 200, the object with `"success": true`.
pub(super) fn ok(body: Value) -> Response {
    let mut body = match body {
        Value::Object(fields) => fields,
        _ => Map::new(),
    };
    body.insert("success".into(), true.into());
    (StatusCode::OK, axum::Json(Value::Object(body))).into_response()
}

/// A request body, read whole: JSON (with the duplicate-refusing reader every door shares)
/// or, as Rocket.Chat also takes, `application/x-www-form-urlencoded` — unless it starts
/// like JSON (`curl -d '{…}'` sends JSON with the form content type).
pub(super) struct Body {
    bytes: Bytes,
    form: bool,
}

impl Body {
    /// The body as an object (an empty body is an empty object); anything else is
    /// Rocket.Chat's `invalid-params`.
    fn object(&self) -> Result<Map<String, Value>, RcError> {
        if self.bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
        // Decided by the body, as real clients post JSON under a form content type.
        let json = self
            .bytes
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'{' || *b == b'[');
        if self.form && !json {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&self.bytes)
                .map_err(|e| RcError::invalid_params(format!("the form body is invalid: {e}")))?;
            let mut fields = Map::new();
            for (key, value) in pairs {
                if fields.insert(key.clone(), value.into()).is_some() {
                    return Err(RcError::invalid_params(format!(
                        "the form body gives \"{key}\" twice"
                    )));
                }
            }
            return Ok(fields);
        }
        match crate::json::from_slice::<Value>(&self.bytes) {
            Ok(Value::Object(fields)) => Ok(fields),
            Ok(_) => Err(RcError::invalid_params("the body must be a JSON object")),
            Err(e) => Err(RcError::invalid_params(format!(
                "the body is not valid JSON: {e}"
            ))),
        }
    }
}

impl FromRequest<AppState> for Body {
    type Rejection = RcError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, RcError> {
        let form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    RcError::too_large()
                } else {
                    RcError::failure("The request body could not be read.")
                }
            })?;
        Ok(Body { bytes, form })
    }
}
