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

/// Which header the trusted proxies write the client into (`--trusted-proxy-header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProxyHeader {
    /// `X-Forwarded-For` (nginx's `$proxy_add_x_forwarded_for`, HAProxy's `forwardfor`).
    #[default]
    XForwardedFor,
    /// `Forwarded`, RFC 7239.
    Forwarded,
}

/// The reverse proxies trusted to name the client (`--trusted-proxies`), and the one header
/// they append it to. Only that header is read: a proxy passes the other through untouched,
/// so whatever a client wrote there would count.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    /// The proxies' addresses.
    pub nets: std::sync::Arc<Vec<ipnet::IpNet>>,
    /// Their header.
    pub header: ProxyHeader,
}

impl TrustedProxies {
    fn trusts(&self, ip: std::net::IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request that came from `peer`: `peer` itself unless it is a trusted
    /// proxy; then, reading the hops of the proxies' header from the right, the first one
    /// that is not a trusted proxy — a hop a trusted proxy added itself. An unreadable hop
    /// ends the walk at the last trusted one: whatever lies left of it may be the client's
    /// own invention. IPv4 addresses written as IPv6 (`::ffff:10.1.2.3`, what a dual-stack
    /// listener sees) are taken as the IPv4 address they are.
    pub fn client(
        &self,
        peer: std::net::IpAddr,
        headers: &axum::http::HeaderMap,
    ) -> std::net::IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for hop in forwarded_hops(headers, self.header).into_iter().rev() {
            match hop.map(|ip| ip.to_canonical()) {
                Some(ip) => {
                    client = ip;
                    if !self.trusts(ip) {
                        break;
                    }
                }
                None => break,
            }
        }
        client
    }
}

/// The addresses a request's proxies recorded in `header`, client first: the `for=` of every
/// `Forwarded` element (RFC 7239 §4, §6), or the entries of `X-Forwarded-For`, every header
/// line in order. `None` for an entry that names no address (`unknown`, an obfuscated name,
/// garbage).
pub fn forwarded_hops(
    headers: &axum::http::HeaderMap,
    header: ProxyHeader,
) -> Vec<Option<std::net::IpAddr>> {
    let lines = |name| {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("\u{0}"))
            .collect::<Vec<_>>()
    };
    match header {
        ProxyHeader::Forwarded => lines(header::FORWARDED)
            .iter()
            .flat_map(|line| line.split(','))
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.trim().split_once('='))
                    .find(|(key, _)| key.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, value)| node_address(value.trim().trim_matches('"')))
            })
            .collect(),
        ProxyHeader::XForwardedFor => lines(header::HeaderName::from_static("x-forwarded-for"))
            .iter()
            .flat_map(|line| line.split(','))
            .map(|entry| node_address(entry.trim()))
            .collect(),
    }
}

/// The address of a proxy header's node: `192.0.2.1`, `192.0.2.1:8080`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:8080`.
fn node_address(node: &str) -> Option<std::net::IpAddr> {
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        return inside.parse::<std::net::Ipv6Addr>().ok().map(Into::into);
    }
    node.parse::<SocketAddr>().ok().map(|s| s.ip())
}

/// Middleware: the client's address as the trusted proxies give it replaces the socket's
/// in the request, before any door sees it, so that the rate limits, the audit trail and the
/// sessions all name the client, never a proxy. Without trusted proxies, nothing changes.
pub async fn forwarded(
    axum::extract::State(proxies): axum::extract::State<TrustedProxies>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    {
        // Also without proxies: an IPv4 client of a dual-stack listener is its IPv4 address.
        let client = proxies.client(peer.ip(), request.headers());
        if client != peer.ip() {
            request
                .extensions_mut()
                .insert(ConnectInfo(SocketAddr::new(client, peer.port())));
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};
    use proptest::prelude::*;
    use std::net::IpAddr;

    fn proxies(nets: &[&str]) -> TrustedProxies {
        with_header(nets, ProxyHeader::XForwardedFor)
    }

    fn with_header(nets: &[&str], header: ProxyHeader) -> TrustedProxies {
        TrustedProxies {
            nets: std::sync::Arc::new(nets.iter().map(|n| n.parse().unwrap()).collect()),
            header,
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let p = proxies(&["10.0.0.0/8", "127.0.0.1/32"]);
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.1.1.1")]);
        assert_eq!(p.client(ip("127.0.0.1"), &h), ip("203.0.113.7"));
        // An untrusted peer's headers mean nothing.
        assert_eq!(p.client(ip("198.51.100.9"), &h), ip("198.51.100.9"));
        // Several header lines are one list, in order.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "203.0.113.8"),
        ]);
        assert_eq!(p.client(ip("10.2.2.2"), &h), ip("203.0.113.8"));
        // Every hop trusted: the left-most.
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 10.1.1.1")]);
        assert_eq!(p.client(ip("127.0.0.1"), &h), ip("10.9.9.9"));
        // An unreadable hop stops the walk at the last trusted one.
        let h = headers(&[("x-forwarded-for", "203.0.113.7, garbage, 10.1.1.1")]);
        assert_eq!(p.client(ip("127.0.0.1"), &h), ip("10.1.1.1"));
        // No header: the proxy itself.
        assert_eq!(
            p.client(ip("127.0.0.1"), &HeaderMap::new()),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn only_the_named_header_counts_and_mapped_addresses_are_ipv4() {
        // A client's own Forwarded, passed through by a proxy that appends to
        // X-Forwarded-For, means nothing.
        let p = proxies(&["127.0.0.1/32"]);
        let h = headers(&[
            ("forwarded", "for=6.6.6.7"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(p.client(ip("127.0.0.1"), &h), ip("203.0.113.9"));
        let h = headers(&[("forwarded", "for=6.6.6.7")]);
        assert_eq!(p.client(ip("127.0.0.1"), &h), ip("127.0.0.1"));
        // A dual-stack listener's view of an IPv4 proxy and hop.
        let h = headers(&[("x-forwarded-for", "::ffff:203.0.113.9")]);
        assert_eq!(p.client(ip("::ffff:127.0.0.1"), &h), ip("203.0.113.9"));
        assert_eq!(
            proxies(&[]).client(ip("::ffff:192.0.2.1"), &h),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn forwarded_is_read_as_rfc_7239_writes_it() {
        let p = with_header(&["127.0.0.1/32"], ProxyHeader::Forwarded);
        let h = headers(&[(
            "forwarded",
            r#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https;by=127.0.0.1"#,
        )]);
        assert_eq!(p.client(ip("127.0.0.1"), &h), ip("2001:db8:cafe::17"));
        // Only Forwarded counts then.
        let h = headers(&[
            ("forwarded", "For=192.0.2.60:8080"),
            ("x-forwarded-for", "6.6.6.6"),
        ]);
        assert_eq!(p.client(ip("127.0.0.1"), &h), ip("192.0.2.60"));
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(p.client(ip("127.0.0.1"), &h), ip("127.0.0.1"));
        let h = headers(&[("forwarded", "for=_hidden, for=198.51.100.1")]);
        assert_eq!(p.client(ip("127.0.0.1"), &h), ip("198.51.100.1"));
    }

    proptest! {
        /// Whatever the headers say, the client is the peer or an address they name; an
        /// untrusted peer is always its own client.
        #[test]
        fn any_header_gives_the_peer_or_a_named_address(
            xff in "[0-9a-f:., \\[\\]\\-_\"=;a-zA-Z]{0,80}",
            fwd in proptest::option::of("[0-9a-f:., \\[\\]\\-_\"=;a-zA-Z]{0,80}"),
            peer_trusted in any::<bool>(),
        ) {
            let header = if fwd.is_some() { ProxyHeader::Forwarded } else { ProxyHeader::XForwardedFor };
            let p = with_header(&["127.0.0.0/8", "::1/128"], header);
            let mut pairs = vec![("x-forwarded-for", xff.as_str())];
            if let Some(f) = &fwd {
                pairs.push(("forwarded", f.as_str()));
            }
            let h = headers(&pairs);
            let peer = if peer_trusted { ip("127.0.0.1") } else { ip("198.51.100.2") };
            let client = p.client(peer, &h);
            if peer_trusted {
                let named: Vec<IpAddr> = forwarded_hops(&h, header).into_iter().flatten().collect();
                prop_assert!(client == peer || named.contains(&client));
            } else {
                prop_assert_eq!(client, peer);
            }
        }
    }
}
