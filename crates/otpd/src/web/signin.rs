//! Signing in (password, then the second factor when the account has one) and out. The
//! core decides everything: which step comes next, the lockout, the login rules; this
//! door keeps the step's token in a cookie and counts every attempt against the address's
//! login budget before asking the core.

use super::session::{ANCHOR, CHALLENGE, SESSION};
use super::text::Message;
use super::{Chrome, Posted, Visit, WebError, WebQuery, message_of, page, see_other};
use crate::app::AppState;
use crate::app::limit::login_attempt;
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use otpd_core::{CoreError, LoginOutcome, Principal, SessionKind};
use serde::Deserialize;
use zeroize::Zeroizing;

/// The sign-in page.
#[derive(Template)]
#[template(path = "web/sign_in.html")]
struct SignInPage {
    c: Chrome,
    username: String,
    error: Option<&'static str>,
}

/// The second-factor page.
#[derive(Template)]
#[template(path = "web/code.html")]
struct CodePage {
    c: Chrome,
    error: Option<&'static str>,
}

/// A redirect's flash message (`?m=`).
#[derive(Deserialize)]
pub struct Flash {
    #[serde(default)]
    m: String,
}

/// `GET /ui/sign-in`.
pub async fn form(visit: Visit, WebQuery(flash): WebQuery<Flash>) -> Response {
    if signed_in_fully(&visit) {
        return see_other("/ui/account", visit.set_cookies);
    }
    let c = Chrome::new(&visit, |t| t.sign_in_title).news(Message::from_code(&flash.m));
    page(
        &visit,
        StatusCode::OK,
        &SignInPage {
            c,
            username: String::new(),
            error: None,
        },
    )
}

fn signed_in_fully(visit: &Visit) -> bool {
    matches!(&visit.principal, Some(Principal::Account(c)) if c.kind == SessionKind::Session)
}

/// The sign-in form.
#[derive(Deserialize)]
pub struct Credentials {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: Zeroizing<String>,
}

/// `POST /ui/sign-in`: the password step.
pub async fn password(State(state): State<AppState>, posted: Posted<Credentials>) -> Response {
    let Posted { visit, form } = posted;
    let again = |status, message: Message| {
        let c = Chrome::new(&visit, |t| t.sign_in_title);
        page(
            &visit,
            status,
            &SignInPage {
                c,
                username: form.username.chars().take(256).collect(),
                error: Some(message.text()),
            },
        )
    };
    if form.username.trim().is_empty() || form.password.is_empty() {
        return again(StatusCode::UNPROCESSABLE_ENTITY, Message::BadCredentials);
    }
    if let Err(wait) = login_attempt(&state, visit.peer) {
        return retry_after(
            again(StatusCode::TOO_MANY_REQUESTS, Message::TooManyAttempts),
            wait,
        );
    }
    let outcome = state
        .service
        .login(form.username.trim(), form.password.clone(), &visit.meta)
        .await;
    if outcome.is_ok() {
        end_previous(&state, &visit).await;
    }
    match outcome {
        Ok(LoginOutcome::Session(token)) => see_other(
            "/ui/account",
            [
                visit.cookie(SESSION, Some(token.token.expose())),
                visit.cookie(CHALLENGE, None),
                visit.cookie(ANCHOR, None),
            ],
        ),
        Ok(LoginOutcome::SecondFactorRequired { challenge, .. }) => see_other(
            "/ui/sign-in/code",
            [
                visit.cookie(SESSION, None),
                visit.cookie(CHALLENGE, Some(challenge.token.expose())),
            ],
        ),
        Ok(LoginOutcome::EnrollmentRequired(token)) => see_other(
            "/ui/account/enroll",
            [
                visit.cookie(SESSION, Some(token.token.expose())),
                visit.cookie(CHALLENGE, None),
                visit.cookie(ANCHOR, None),
            ],
        ),
        Err(e) => {
            let (status, message) = message_of(&e);
            again(status, message)
        }
    }
}

/// Ends the session this browser held before a new sign-in replaces its cookie: a session
/// no cookie holds any more could never be signed out of.
async fn end_previous(state: &AppState, visit: &Visit) {
    if let Some(p @ Principal::Account(c)) = &visit.principal
        && c.session_id.is_some()
        && let Err(e) = state.service.logout(p, &visit.meta).await
    {
        crate::app::fault::server_fault(&e);
    }
}

fn retry_after(mut response: Response, wait: u64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// `GET /ui/sign-in/code`.
pub async fn code_form(visit: Visit) -> Response {
    if visit.challenge.is_none() {
        return see_other("/ui/sign-in", visit.set_cookies);
    }
    let c = Chrome::new(&visit, |t| t.code_title);
    page(&visit, StatusCode::OK, &CodePage { c, error: None })
}

/// The second-factor form.
#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: Zeroizing<String>,
}

/// `POST /ui/sign-in/code`: the second step, a TOTP or recovery code.
pub async fn code(State(state): State<AppState>, posted: Posted<CodeForm>) -> Response {
    let Posted { visit, form } = posted;
    let Some(challenge) = visit.challenge.clone() else {
        return see_other(
            &format!("/ui/sign-in?m={}", Message::ChallengeExpired.code()),
            [],
        );
    };
    let again = |status, message: Message| {
        let c = Chrome::new(&visit, |t| t.code_title);
        page(
            &visit,
            status,
            &CodePage {
                c,
                error: Some(message.text()),
            },
        )
    };
    if form.code.trim().is_empty() {
        return again(StatusCode::UNPROCESSABLE_ENTITY, Message::MissingField);
    }
    if let Err(wait) = login_attempt(&state, visit.peer) {
        return retry_after(
            again(StatusCode::TOO_MANY_REQUESTS, Message::TooManyAttempts),
            wait,
        );
    }
    match state
        .service
        .second_factor(&challenge, form.code.trim(), &visit.meta)
        .await
    {
        Ok(token) => see_other(
            "/ui/account",
            [
                visit.cookie(SESSION, Some(token.token.expose())),
                visit.cookie(CHALLENGE, None),
                visit.cookie(ANCHOR, None),
            ],
        ),
        Err(CoreError::Unauthenticated) => see_other(
            &format!("/ui/sign-in?m={}", Message::ChallengeExpired.code()),
            [visit.cookie(CHALLENGE, None)],
        ),
        Err(e) => {
            let (status, message) = message_of(&e);
            again(status, message)
        }
    }
}

/// An empty form (only its token).
#[derive(Deserialize)]
pub struct Empty {}

/// `POST /ui/sign-out`.
pub async fn sign_out(
    State(state): State<AppState>,
    posted: Posted<Empty>,
) -> Result<Response, WebError> {
    let visit = posted.visit;
    if let Some(p) = &visit.principal {
        state.service.logout(p, &visit.meta).await?;
    }
    Ok(signed_out(&visit))
}

/// `POST /ui/sign-out/everywhere`: every session of the account ends, this one too.
pub async fn sign_out_everywhere(
    State(state): State<AppState>,
    posted: Posted<Empty>,
) -> Result<Response, WebError> {
    let visit = posted.visit;
    let p = visit.signed_in()?;
    let Principal::Account(caller) = p else {
        return Err(WebError::Refused(Message::NotAllowed));
    };
    state
        .service
        .end_sessions(p, &caller.username, &visit.meta)
        .await?;
    Ok(signed_out(&visit))
}

fn signed_out(visit: &Visit) -> Response {
    see_other(
        &format!("/ui/sign-in?m={}", Message::SignedOut.code()),
        [visit.cookie(SESSION, None), visit.cookie(CHALLENGE, None)],
    )
    .into_response()
}
