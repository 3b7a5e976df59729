//! HTTP Basic (RFC 7617) on every ONTAP request, checked by the core
//! ([`otpd_core::Service::authenticate_password`], which remembers a success briefly so a
//! client's fifty calls cost one Argon2id hash). A password the core has not seen succeed
//! lately takes an attempt from the address's login budget before it is checked.

use super::error::OntapError;
use crate::app::AppState;
use crate::app::client::Client;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use otpd_core::{Door, Principal, RequestMeta};
use zeroize::Zeroizing;

/// The caller of an ONTAP request: who, from where, and the `X-OTP-Code` it sent along
/// (otpd's own header: a current code that satisfies the core's step-up for this request).
pub struct Caller {
    /// Who authenticated.
    pub principal: Principal,
    /// Where from, for the audit trail.
    pub meta: RequestMeta,
    /// A code sent for step-up.
    pub step_up_code: Option<String>,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = OntapError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, OntapError> {
        let Ok(client) = Client::from_request_parts(parts, state).await;
        let meta = client.meta(Door::Ontap);
        let (username, password) =
            credentials(&parts.headers).ok_or_else(OntapError::unauthenticated)?;
        // A password not seen to succeed lately is a guess until checked: it takes a login
        // attempt first (a client repeating its good password every call takes none).
        if !state.service.password_seen_lately(&username, &password) {
            crate::app::limit::password_attempt(state, parts).map_err(OntapError::rate_limited)?;
        }
        let principal = state
            .service
            .authenticate_password(&username, password, &meta)
            .await?;
        let step_up_code = parts
            .headers
            .get("x-otp-code")
            .and_then(|v| v.to_str().ok())
            .map(|c| c.chars().take(64).collect());
        Ok(Caller {
            principal,
            meta,
            step_up_code,
        })
    }
}

/// The user name and password of an `Authorization: Basic` header (base64 of
/// `user:password`, UTF-8; the scheme name is case-insensitive).
pub fn credentials(headers: &axum::http::HeaderMap) -> Option<(String, Zeroizing<String>)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = Zeroizing::new(
        data_encoding::BASE64
            .decode(encoded.trim().as_bytes())
            .ok()?,
    );
    let text = std::str::from_utf8(&decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), Zeroizing::new(password.to_owned())))
}
