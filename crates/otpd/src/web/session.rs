//! The browser's side of a sign-in: the cookies that carry the core's tokens, the CSRF token
//! of every form, and the extractors that give a handler the visitor (who, from where) and
//! a checked form.
//!
//! Cookies (`HttpOnly; SameSite=Strict`): `otpd_session` holds a core session token (or an
//! enrollment-only one), `otpd_challenge` the challenge of a sign-in waiting for its code,
//! `otpd_csrf` a random value for the forms of a visitor not yet signed in. Over plain HTTP
//! they have `Path=/ui`; under TLS they are `__Host-otpd_…` with `Path=/` and `Secure`, a
//! prefix browsers only accept from this very host over HTTPS, so that a sibling host cannot
//! plant one. A request that carries one of them twice (a planted copy beside the real one)
//! is treated as carrying neither. A form's CSRF token is a SHA-256 of the first of them that is set
//! (with a label of its own, so it is no hash the database keeps), so it changes with every
//! sign-in and sign-out: a form from before is refused, and a page from another site can
//! neither read nor make one. POSTs are further refused when the browser says they come
//! from another site (`Sec-Fetch-Site`, `Origin`), as OWASP's CSRF cheat sheet advises.

use super::text::Message;
use crate::app::AppState;
use crate::app::client::{Client, cookie};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use otpd_core::{CoreError, Door, Principal, RequestMeta};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::net::{IpAddr, SocketAddr};
use subtle::ConstantTimeEq;

/// The session cookie.
pub const SESSION: &str = "otpd_session";
/// The cookie of a sign-in waiting for its second factor.
pub const CHALLENGE: &str = "otpd_challenge";
/// The anonymous visitor's CSRF anchor.
pub const ANCHOR: &str = "otpd_csrf";

/// The visitor of a page: who (if signed in), from where, and the CSRF token its forms carry.
pub struct Visit {
    /// The signed-in principal, if the session cookie holds a live session.
    pub principal: Option<Principal>,
    /// The challenge of a sign-in waiting for its code.
    pub challenge: Option<String>,
    /// The token every form of the page carries.
    pub csrf: String,
    /// The request's origin, for the audit trail (door `web`).
    pub meta: RequestMeta,
    /// The peer's address, for the login budget.
    pub peer: Option<IpAddr>,
    /// Cookies to set with the answer (a new anchor).
    pub set_cookies: Vec<HeaderValue>,
    /// Whether cookies must be `Secure`.
    pub tls: bool,
}

impl Visit {
    /// The signed-in principal, or [`super::WebError::SignIn`].
    pub fn signed_in(&self) -> Result<&Principal, super::WebError> {
        self.principal.as_ref().ok_or(super::WebError::SignIn)
    }

    /// The name of the signed-in account.
    pub fn username(&self) -> Option<&str> {
        match &self.principal {
            Some(Principal::Account(c)) => Some(&c.username),
            _ => None,
        }
    }

    /// A `Set-Cookie` value for the cookie `name` (`otpd_session`, `otpd_challenge` or
    /// `otpd_csrf`, named `__Host-…` under TLS); `None` deletes it.
    pub fn cookie(&self, name: &str, value: Option<&str>) -> HeaderValue {
        let (name, attributes) = if self.tls {
            (
                format!("__Host-{name}"),
                "Path=/; HttpOnly; SameSite=Strict; Secure",
            )
        } else {
            (name.to_owned(), "Path=/ui; HttpOnly; SameSite=Strict")
        };
        let text = match value {
            Some(v) => format!("{name}={v}; {attributes}"),
            None => format!("{name}=; {attributes}; Max-Age=0"),
        };
        // Tokens are base64url or hex: always a valid header value.
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// The value of the web cookie `name` as this listener names it (`__Host-` under TLS), if
/// the request carries it exactly once.
fn web_cookie<'a>(headers: &'a HeaderMap, name: &str, tls: bool) -> Option<&'a str> {
    let name = if tls {
        format!("__Host-{name}")
    } else {
        name.to_owned()
    };
    let times = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter(|pair| pair.trim().split_once('=').is_some_and(|(k, _)| k == name))
        .count();
    (times == 1).then(|| cookie(headers, &name)).flatten()
}

/// The CSRF token bound to `anchor` (a session, challenge or anchor cookie's value).
fn csrf_of(anchor: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"otpd web form\0");
    h.update(anchor.as_bytes());
    data_encoding::BASE64URL_NOPAD.encode(&h.finalize())
}

/// A new random anchor value.
fn new_anchor() -> Result<String, super::WebError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|_| super::WebError::Core(CoreError::Internal("system RNG failed".into())))?;
    Ok(data_encoding::BASE64URL_NOPAD.encode(&bytes))
}

impl FromRequestParts<AppState> for Visit {
    type Rejection = super::WebError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let headers = &parts.headers;
        let session = web_cookie(headers, SESSION, state.tls);
        let principal = match session {
            Some(token) => match state.service.authenticate(token).await {
                Ok(p) => Some(p),
                Err(CoreError::Unauthenticated) => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        let challenge = web_cookie(headers, CHALLENGE, state.tls).map(str::to_owned);
        let mut visit = Visit {
            principal,
            challenge,
            csrf: String::new(),
            meta: Client::from_parts(parts).meta(Door::Web),
            peer: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
            set_cookies: Vec::new(),
            tls: state.tls,
        };
        let anchor = match anchor(headers, state.tls) {
            Some(a) => a.to_owned(),
            None => {
                let fresh = new_anchor()?;
                visit.set_cookies.push(visit.cookie(ANCHOR, Some(&fresh)));
                fresh
            }
        };
        visit.csrf = csrf_of(&anchor);
        Ok(visit)
    }
}

/// The cookie a form's token is bound to: the session's, else the challenge's, else the
/// anonymous anchor's.
fn anchor(headers: &HeaderMap, tls: bool) -> Option<&str> {
    web_cookie(headers, SESSION, tls)
        .or_else(|| web_cookie(headers, CHALLENGE, tls))
        .or_else(|| web_cookie(headers, ANCHOR, tls))
}

/// Whether the browser says the request came from another site. `Sec-Fetch-Site` decides
/// when the browser sends it (every current one does): only `same-origin` and `none` (typed
/// by the person) pass. Without it, an `Origin` must name the request's `Host`; the pages'
/// `Referrer-Policy: no-referrer` makes browsers send `Origin: null` even for their own
/// forms, which only `Sec-Fetch-Site` then vouches for, so a bare `null` is refused.
fn cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return !matches!(site.to_str(), Ok("same-origin" | "none"));
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match headers.get(header::ORIGIN).map(|v| v.to_str()) {
        None => false,
        Some(Ok(origin)) => {
            let origin_host = origin
                .split_once("://")
                .map_or("", |(_, rest)| rest.trim_end_matches('/'));
            host.is_none_or(|h| !h.eq_ignore_ascii_case(origin_host))
        }
        Some(Err(_)) => true,
    }
}

/// A posted form (`application/x-www-form-urlencoded`) whose CSRF token matched, with its
/// visitor. A missing or stale token, or a request from another site, is
/// [`super::WebError::Refused`] with [`Message::StaleForm`] and goes no further.
pub struct Posted<T> {
    /// The visitor.
    pub visit: Visit,
    /// The form's fields.
    pub form: T,
}

#[derive(serde::Deserialize)]
struct Token {
    #[serde(default)]
    csrf: String,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Posted<T> {
    type Rejection = super::WebError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let visit = Visit::from_request_parts(&mut parts, state).await?;
        let stale = || super::WebError::Refused(Message::StaleForm);
        if cross_site(&parts.headers) || anchor(&parts.headers, state.tls).is_none() {
            return Err(stale());
        }
        let bytes = axum::body::Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|e| {
                super::WebError::Refused(
                    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                        Message::TooLarge
                    } else {
                        Message::MissingField
                    },
                )
            })?;
        let token: Token = serde_urlencoded::from_bytes(&bytes).map_err(|_| stale())?;
        if !bool::from(token.csrf.as_bytes().ct_eq(visit.csrf.as_bytes())) {
            return Err(stale());
        }
        let form = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| super::WebError::Refused(Message::MissingField))?;
        Ok(Posted { visit, form })
    }
}
