//! Who is on the other end: the peer address and the request id, for sessions and the
//! audit trail of whichever door the request came through.

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use otpd_core::{Door, RequestMeta};
use std::net::SocketAddr;

/// The client of a request: its address (from the connection) and its `X-Request-Id`.
#[derive(Debug, Clone)]
pub struct Client {
    /// The peer's IP address, if the connection has one.
    pub remote_addr: Option<String>,
    /// The request id (at most 128 characters).
    pub request_id: Option<String>,
}

impl Client {
    /// The [`RequestMeta`] of a request that came through `door`.
    pub fn meta(self, door: Door) -> RequestMeta {
        RequestMeta {
            door,
            remote_addr: self.remote_addr,
            request_id: self.request_id,
        }
    }

    /// The client of the request whose head is `parts`.
    pub fn from_parts(parts: &Parts) -> Self {
        Client {
            remote_addr: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
            request_id: parts
                .headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(128).collect()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Client::from_parts(parts))
    }
}

/// The token of an `Authorization: Bearer …` header, if there is one.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// The value of the cookie `name` in the request's `Cookie` headers, if set and not empty.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}
