//! The web pages at `/ui/…`: self-service sign-in, enrollment and recovery codes for any
//! account, and an admin console. A front door like the others: every rule is the core's,
//! and this door translates forms to `Service` calls and core errors to messages on the
//! page (in one place, [`WebError`] and [`message_of`]). Pages are rendered on the server
//! with askama templates (`templates/web/`, checked at compile time); every form works
//! without JavaScript, which only adds copy and print buttons and a countdown
//! (`assets/otpd.js`). Every answer carries a strict Content-Security-Policy (no inline
//! script or style), `Referrer-Policy: no-referrer` and `Cache-Control: no-store`.

mod account;
mod admin;
mod session;
mod signin;
pub mod text;

use crate::app::AppState;
use crate::app::fault::{Fault, server_fault};
use crate::app::limit::{DoorLimits, guard};
use askama::Template;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use otpd_core::{CoreError, Principal, SessionKind, VerifyReason};
pub use session::{Posted, Visit};
use text::{EN, Message, Text};

/// The pages' Content-Security-Policy: scripts and styles only from otpd itself (no inline
/// script, no inline style), images from itself or `data:`, no frames, forms only to
/// itself.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     object-src 'none'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// The web door's limits: no path is a login path for the guard (a sign-in form's POST
/// takes from the login budget itself, its GET does not); refusals (401, 403) take from the
/// failure budget like every door's — except that of a form another site sent
/// ([`crate::app::limit::NoFailure`]).
static LIMITS: DoorLimits = DoorLimits {
    login_paths: &[],
    refuse: too_many,
    token: |_| None,
};

/// The pages, nested by the application under `/ui` (paths here are below it): the web
/// door answers everything there, its 404s included.
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/static/otpd.css", get(css))
        .route("/static/otpd.js", get(js))
        .route("/sign-in", get(signin::form).post(signin::password))
        .route("/sign-in/code", get(signin::code_form).post(signin::code))
        .route("/sign-out", post(signin::sign_out))
        .route("/sign-out/everywhere", post(signin::sign_out_everywhere))
        .route("/account", get(account::overview))
        .route(
            "/account/enroll",
            get(account::enroll_page).post(account::enroll_start),
        )
        .route("/account/enroll/confirm", post(account::enroll_confirm))
        .route("/account/recovery-codes/saved", post(account::codes_saved))
        .route(
            "/account/password",
            get(account::password_page).post(account::change_password),
        )
        .route("/account/confirm/{action}", get(account::confirm_page))
        .route("/account/{action}", post(account::act))
        .route(
            "/admin",
            get(|| async { Redirect::to("/ui/admin/accounts") }),
        )
        .route(
            "/admin/accounts",
            get(admin::accounts).post(admin::create_account),
        )
        .route("/admin/accounts/{name}", get(admin::account))
        .route(
            "/admin/accounts/{name}/confirm/{action}",
            get(admin::confirm_page),
        )
        .route("/admin/accounts/{name}/{action}", post(admin::act))
        .route("/admin/policy", get(admin::policy).post(admin::save_policy))
        .route("/admin/audit", get(admin::audit))
        .route("/admin/keys", get(admin::keys).post(admin::create_key))
        .route("/admin/keys/{id}/confirm", get(admin::confirm_revoke_key))
        .route("/admin/keys/{id}/revoke", post(admin::revoke_key))
        .fallback(|| async { WebError::Refused(Message::NotFound) })
        .method_not_allowed_fallback(|| async {
            let mut response = WebError::Refused(Message::NotFound).into_response();
            *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            response
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            |State(state): State<AppState>, request: Request, next: Next| async move {
                guard(&state, &LIMITS, request, next).await
            },
        ))
        // Outermost, so that the guard's refusals carry the headers too.
        .layer(axum::middleware::from_fn(headers))
}

/// The security headers of every page.
async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        // Pages show secrets, codes and accounts: no copy in any cache or history store.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn css() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../../assets/otpd.css"),
    )
}

async fn js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../assets/otpd.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// `/ui`: the account page when signed in, else the sign-in page.
async fn home(visit: Visit) -> Redirect {
    if visit.principal.is_some() {
        Redirect::to("/ui/account")
    } else {
        Redirect::to("/ui/sign-in")
    }
}

/// What the layout around every page needs.
pub struct Chrome {
    /// The texts.
    pub t: &'static Text,
    /// The page's title.
    pub title: &'static str,
    /// The form token.
    pub csrf: String,
    /// The signed-in account's name (also while it may only enroll: it can sign out).
    pub user: Option<String>,
    /// Whether the session is a full one (the navigation is shown).
    pub full: bool,
    /// Whether to show the admin console's links.
    pub admin: bool,
    /// A message for the whole page (a field's message goes beside it).
    pub notice: Option<Notice>,
}

/// A message for the whole page, and whether it reports a problem.
pub struct Notice {
    /// The text.
    pub text: &'static str,
    /// A problem (shown as an alert) or news.
    pub problem: bool,
}

impl Chrome {
    /// The layout for `visit`'s page titled `title`.
    pub fn new(visit: &Visit, title: fn(&Text) -> &'static str) -> Self {
        let full = matches!(&visit.principal, Some(Principal::Account(c)) if c.kind == SessionKind::Session);
        Chrome {
            t: &EN,
            title: title(&EN),
            csrf: visit.csrf.clone(),
            user: visit.username().map(str::to_owned),
            full,
            admin: visit
                .principal
                .as_ref()
                .is_some_and(Principal::is_any_admin),
            notice: None,
        }
    }

    /// With a problem reported for the whole page.
    pub fn problem(mut self, message: Message) -> Self {
        self.notice = Some(Notice {
            text: message.text(),
            problem: true,
        });
        self
    }

    /// With the message a redirect named (`?m=`) for the whole page: news, or a problem.
    pub fn news(mut self, message: Option<Message>) -> Self {
        self.notice = message.map(|m| Notice {
            text: m.text(),
            problem: m.is_problem(),
        });
        self
    }
}

/// A rendered page with `status`, setting the visit's cookies.
pub fn page(visit: &Visit, status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => {
            let mut response = (status, axum::response::Html(html)).into_response();
            for c in &visit.set_cookies {
                response.headers_mut().append(header::SET_COOKIE, c.clone());
            }
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "page failed to render");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A `303 See Other` to `to` (after a form), setting `cookies`.
pub fn see_other(to: &str, cookies: impl IntoIterator<Item = HeaderValue>) -> Response {
    let mut response = Redirect::to(to).into_response();
    for c in cookies {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// Why a page could not do what it was asked, when the handler has no better page to show
/// it on: a page of its own, or the sign-in page.
#[derive(Debug)]
pub enum WebError {
    /// Not signed in (or the session ended): to the sign-in page.
    SignIn,
    /// Refused with this message, nothing changed.
    Refused(Message),
    /// A core error.
    Core(CoreError),
}

impl From<CoreError> for WebError {
    fn from(e: CoreError) -> Self {
        WebError::Core(e)
    }
}

/// Path parameters whose rejection (a malformed percent-encoding) is a page.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(WebError))]
pub struct WebPath<T>(pub T);

/// Query parameters whose rejection is a page.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(WebError))]
pub struct WebQuery<T>(pub T);

impl From<axum::extract::rejection::PathRejection> for WebError {
    fn from(_: axum::extract::rejection::PathRejection) -> Self {
        WebError::Refused(Message::NotFound)
    }
}

impl From<axum::extract::rejection::QueryRejection> for WebError {
    fn from(_: axum::extract::rejection::QueryRejection) -> Self {
        WebError::Refused(Message::MissingField)
    }
}

/// The message of a core error, and the HTTP status of a page that shows it. The one place
/// where this door reads core errors.
pub fn message_of(e: &CoreError) -> (StatusCode, Message) {
    if let Some(fault) = server_fault(e) {
        return match fault {
            Fault::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, Message::Unavailable),
            Fault::Internal => (StatusCode::INTERNAL_SERVER_ERROR, Message::Internal),
        };
    }
    match e {
        CoreError::Unauthenticated => (StatusCode::UNAUTHORIZED, Message::BadCredentials),
        CoreError::AccountLocked => (StatusCode::FORBIDDEN, Message::AccountLocked),
        CoreError::StepUpRequired => (StatusCode::FORBIDDEN, Message::StepUpRequired),
        CoreError::SecondFactorFailed { reason } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            match reason {
                VerifyReason::Invalid => Message::WrongCode,
                VerifyReason::Replayed => Message::ReplayedCode,
                VerifyReason::Locked => Message::AuthenticatorLocked,
                VerifyReason::Disabled => Message::AuthenticatorDisabled,
                VerifyReason::NotEnrolled => Message::NotEnrolled,
            },
        ),
        CoreError::Forbidden(_) => (StatusCode::FORBIDDEN, Message::NotAllowed),
        CoreError::NotFound("pending enrollment") => {
            (StatusCode::NOT_FOUND, Message::EnrollmentExpired)
        }
        CoreError::NotFound(_) => (StatusCode::NOT_FOUND, Message::NotFound),
        CoreError::Conflict(_) => (StatusCode::CONFLICT, Message::EnrollmentExpired),
        CoreError::Invalid { field, .. } if field == "code" => {
            (StatusCode::UNPROCESSABLE_ENTITY, Message::WrongCode)
        }
        _ => (StatusCode::UNPROCESSABLE_ENTITY, Message::MissingField),
    }
}

/// The core's own words for a validation error (a policy field's range), shown beside the
/// field it names.
pub fn invalid_field(e: &CoreError) -> Option<(String, String)> {
    match e {
        CoreError::Invalid { field, message } => Some((field.to_string(), message.to_string())),
        CoreError::Conflict(message) => Some((String::new(), message.to_string())),
        _ => None,
    }
}

/// The page of an error with nowhere better to go.
#[derive(Template)]
#[template(path = "web/error.html")]
struct ErrorPage {
    c: Chrome,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            WebError::SignIn => {
                return see_other(
                    &format!("/ui/sign-in?m={}", Message::SessionEnded.code()),
                    [],
                );
            }
            WebError::Refused(m) => (
                match m {
                    Message::StaleForm | Message::NotAllowed => StatusCode::FORBIDDEN,
                    Message::NotFound => StatusCode::NOT_FOUND,
                    Message::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                    _ => StatusCode::BAD_REQUEST,
                },
                *m,
            ),
            WebError::Core(e) => message_of(e),
        };
        let c = Chrome {
            t: &EN,
            title: EN.error_title,
            csrf: String::new(),
            user: None,
            full: false,
            admin: false,
            notice: None,
        }
        .problem(message);
        let mut response = match (ErrorPage { c }).render() {
            Ok(html) => (status, axum::response::Html(html)).into_response(),
            Err(_) => status.into_response(),
        };
        if matches!(self, WebError::Refused(Message::StaleForm)) {
            // Another site can make a browser send forms: the refusal costs its address nothing.
            response
                .extensions_mut()
                .insert(crate::app::limit::NoFailure);
        }
        response
    }
}

/// The answer to an address over its budget.
fn too_many(wait: u64) -> Response {
    let mut response = WebError::Refused(Message::TooManyAttempts).into_response();
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

pub use crate::app::rfc3339 as when;

/// A day (`YYYY-MM-DD`, UTC) as the Unix seconds of its start.
pub fn parse_day(text: &str) -> Option<i64> {
    let at = humantime::parse_rfc3339_weak(&format!("{} 00:00:00", text.trim())).ok()?;
    let secs = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip() {
        assert_eq!(when(1_795_305_615), "2026-11-22T00:00:15Z");
        assert_eq!(parse_day("2026-11-22"), Some(1_795_305_600));
        assert_eq!(parse_day("2026-13-01"), None);
        assert_eq!(parse_day("yesterday"), None);
    }
}
