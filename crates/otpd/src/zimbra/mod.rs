//! The Zimbra dialect: Zimbra's SOAP requests around two-factor authentication —
//! `AuthRequest` with a second factor, the seed's `EnableTwoFactorAuthRequest` (seed 004),
//! `DisableTwoFactorAuthRequest`, `GetScratchCodesRequest`, `GenerateScratchCodesRequest`,
//! and the admin namespace's `AuthRequest`, `DisableTwoFactorAuthRequest` and
//! `ClearTwoFactorAuthDataRequest` — in SOAP 1.2, SOAP 1.1 and Zimbra's JSON form, answered
//! in the form asked, with Zimbra's faults (dialects.md §4). Every rule is the core's: this
//! module reads Zimbra's envelopes, calls the `Service`, and writes Zimbra's answers. What
//! differs from Zimbra, and why, is in `docs/dialects/zimbra.md`.

mod auth;
mod fault;
mod soap;
mod twofactor;

use crate::app::AppState;
use crate::app::client::{Client, cookie};
use crate::app::limit::{DoorLimits, guard, login_attempt};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
pub use fault::Fault;
use otpd_core::{Door, RequestMeta};
use soap::{Element, Form};
use std::net::IpAddr;

/// The account namespace.
const URN_ACCOUNT: &str = "urn:zimbraAccount";
/// The admin namespace.
const URN_ADMIN: &str = "urn:zimbraAdmin";
/// The cookie that carries an account's token.
const ACCOUNT_COOKIE: &str = "ZM_AUTH_TOKEN";
/// The cookie that carries an admin's token.
const ADMIN_COOKIE: &str = "ZM_ADMIN_AUTH_TOKEN";

/// The routes of the dialect, with its per-address limits.
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/service/soap", endpoint(Namespace::Account))
        .route("/service/soap/", endpoint(Namespace::Account))
        .route("/service/soap/{request}", endpoint(Namespace::Account))
        .route("/service/admin/soap", endpoint(Namespace::Admin))
        .route("/service/admin/soap/", endpoint(Namespace::Admin))
        .route("/service/admin/soap/{request}", endpoint(Namespace::Admin))
        .layer(axum::middleware::from_fn_with_state(state.clone(), limit))
}

fn methods(router: MethodRouter<AppState>) -> MethodRouter<AppState> {
    router.fallback(|| async {
        answer(
            Form::Soap12,
            Err(Fault::invalid("SOAP requests are POSTed")),
            None,
            false,
        )
    })
}

/// Logins happen inside the body: each handler that checks a password or a code takes a
/// login attempt itself ([`Ctx::attempt`]).
const LIMITS: DoorLimits = DoorLimits {
    login_paths: &[],
    refuse: |wait| answer(Form::Soap12, Err(Fault::rate_limited(wait)), None, false),
    token: |headers| cookie(headers, ACCOUNT_COOKIE).or_else(|| cookie(headers, ADMIN_COOKIE)),
};

async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    guard(&state, &LIMITS, request, next).await
}

/// Which namespace an endpoint serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Namespace {
    Account,
    Admin,
}

/// What a request's handler gets.
struct Ctx<'a> {
    state: &'a AppState,
    meta: RequestMeta,
    peer: Option<IpAddr>,
    /// The token of the SOAP header, else of the namespace's cookie.
    token: Option<String>,
}

impl Ctx<'_> {
    /// Takes a login attempt from the address's budget, before a password or code is
    /// checked.
    fn attempt(&self) -> Result<(), Fault> {
        login_attempt(self.state, self.peer).map_err(Fault::rate_limited)
    }
}

/// A request's answer: the response element, and the token to set as the cookie.
pub(super) struct Answer {
    element: Element,
    cookie: Option<(String, i64)>,
}

impl Answer {
    fn new(element: Element) -> Self {
        Answer {
            element,
            cookie: None,
        }
    }

    /// The same answer setting the namespace's cookie to `token` for `max_age` seconds.
    fn with_cookie(mut self, token: &str, max_age: i64) -> Self {
        self.cookie = Some((token.to_owned(), max_age));
        self
    }
}

/// The handler of one endpoint: its namespace's requests.
fn endpoint(namespace: Namespace) -> MethodRouter<AppState> {
    methods(post(
        move |State(state): State<AppState>,
              client: Client,
              headers: HeaderMap,
              body: Result<Bytes, BytesRejection>| async move {
            soap(&state, client, &headers, body, namespace).await
        },
    ))
}

/// Reads the envelope, runs the request, writes the answer in the form asked.
async fn soap(
    state: &AppState,
    client: Client,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    namespace: Namespace,
) -> Response {
    let peer = client.remote_addr.as_deref().and_then(|a| a.parse().ok());
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let mut response = answer(
                Form::Soap12,
                Err(Fault::parse("the request is too large")),
                None,
                false,
            );
            *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
            return response;
        }
        Err(_) => {
            return answer(
                Form::Soap12,
                Err(Fault::parse("the request could not be read")),
                None,
                false,
            );
        }
    };
    let envelope = match soap::read(&body) {
        Ok(envelope) => envelope,
        Err(e) => {
            // As Zimbra: a request that cannot be read is answered without a header, in
            // its envelope's form when that was read, else SOAP 1.2 (JSON when it did not
            // look like XML).
            let first = body.iter().find(|b| !b.is_ascii_whitespace());
            let guess = match first {
                Some(b'<') | None => Form::Soap12,
                Some(_) => Form::Json,
            };
            let (fault, form) = match e {
                soap::ReadError::Parse(m) => (Fault::parse(&m), guess),
                soap::ReadError::Invalid(m, form) => (Fault::invalid(&m), form.unwrap_or(guess)),
            };
            return answer(form, Err(fault), None, false);
        }
    };
    let cookie_name = match namespace {
        Namespace::Account => ACCOUNT_COOKIE,
        Namespace::Admin => ADMIN_COOKIE,
    };
    let ctx = Ctx {
        state,
        meta: client.meta(Door::Zimbra),
        peer,
        token: envelope
            .auth_token
            .clone()
            .or_else(|| cookie(headers, cookie_name).map(str::to_owned)),
    };
    let request = &envelope.request;
    let expected = match namespace {
        Namespace::Account => URN_ACCOUNT,
        Namespace::Admin => URN_ADMIN,
    };
    let result = if request.ns.as_deref() != Some(expected) {
        Err(Fault::unknown_document(&request.name))
    } else {
        match (namespace, request.name.as_str()) {
            (Namespace::Account, "AuthRequest") => auth::account(&ctx, request).await,
            (Namespace::Admin, "AuthRequest") => auth::admin(&ctx, request).await,
            (Namespace::Account, "EnableTwoFactorAuthRequest") => {
                twofactor::enable(&ctx, request).await
            }
            (Namespace::Account, "DisableTwoFactorAuthRequest") => {
                twofactor::disable(&ctx, request).await
            }
            (Namespace::Account, "GetScratchCodesRequest") => {
                twofactor::get_scratch_codes(&ctx).await
            }
            (Namespace::Account, "GenerateScratchCodesRequest") => {
                twofactor::generate_scratch_codes(&ctx).await
            }
            (Namespace::Admin, "DisableTwoFactorAuthRequest" | "ClearTwoFactorAuthDataRequest") => {
                twofactor::admin_clear(&ctx, request).await
            }
            _ => Err(Fault::unknown_document(&request.name)),
        }
    };
    let secure = state.tls;
    answer(
        envelope.answer_form,
        result,
        Some((cookie_name, secure)),
        true,
    )
}

/// The HTTP answer: 200 with the response, or 500 with the fault (Zimbra's status for
/// every fault), in `form`; a login answer sets the cookie (`HttpOnly`, `Path=/`, `Secure`
/// under TLS, `SameSite=Strict`).
fn answer(
    form: Form,
    result: Result<Answer, Fault>,
    cookie: Option<(&str, bool)>,
    header: bool,
) -> Response {
    let (status, body, set_cookie, retry_after) = match result {
        Ok(answer) => (
            StatusCode::OK,
            soap::write(form, &answer.element, header),
            answer.cookie,
            None,
        ),
        Err(fault) => {
            let status = match fault.retry_after {
                Some(_) => StatusCode::SERVICE_UNAVAILABLE,
                None => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let body = soap::write(form, &fault.element(form), header);
            (status, body, None, fault.retry_after)
        }
    };
    let content_type = match form {
        Form::Json => "text/javascript; charset=utf-8",
        Form::Soap12 | Form::Soap11 => "text/xml; charset=utf-8",
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    if let Some(value) = retry_after.and_then(|w| HeaderValue::from_str(&w.to_string()).ok()) {
        headers.insert(header::RETRY_AFTER, value);
    }
    if let (Some((token, max_age)), Some((name, secure))) = (set_cookie, cookie) {
        let secure = if secure { "; Secure" } else { "" };
        let value =
            format!("{name}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}");
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(header::SET_COOKIE, value);
        }
    }
    response
}
