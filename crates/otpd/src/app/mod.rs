//! The front doors' shared home: the application state, the composition of every door
//! into one router with the layers they all get (body limit, request timeout, panic
//! catching, tracing, request ids, rate limits), and the small toolkit a door needs (the
//! client's address, the rate-limit guard, the server's faults among core errors). Each
//! door — the native API in `native/`, each dialect in its own folder — depends on this
//! module and on `otpd-core` only, never on another door; a new dialect adds its folder and
//! one `merge` below (with its own limits middleware when it speaks HTTP, see `ontap/`).

pub mod client;
pub mod fault;
pub mod limit;
pub mod metrics;

use crate::config::Settings;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, StatusCode, Uri};
use axum::response::IntoResponse;
use otpd_core::Service;
use std::sync::Arc;
use std::time::Duration;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// Unix seconds as RFC 3339 in UTC, to the second (`2026-11-22T00:00:15Z`), as the CLI and
/// the web pages show times (a time before 1970 as its number).
pub fn rfc3339(unix: i64) -> String {
    u64::try_from(unix).map_or_else(
        |_| unix.to_string(),
        |secs| {
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(secs))
                .to_string()
        },
    )
}

/// What every door's handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The service: every rule.
    pub service: Service,
    /// Per-address rate limits, when on.
    pub limits: Option<Arc<limit::Limits>>,
    /// How long a WebSocket may stay open without logging in.
    pub websocket_login_timeout: Duration,
    /// How long a request may take before the server answers 503 for it: a door that walks
    /// a long collection stops well before, to answer in its own format.
    pub request_timeout: Duration,
    /// Whether the listener speaks TLS (cookies are then `Secure`).
    pub tls: bool,
    /// The HTTP requests' metrics, unless metrics are off.
    pub http_metrics: Option<Arc<metrics::HttpMetrics>>,
}

/// The application's services: every door, and `/metrics` alone for a listener of its own.
pub struct Routers {
    /// Every front door (with `/metrics`, unless it has a listener of its own or is off).
    pub app: Router,
    /// `/metrics` alone (for `--metrics-listen`), unless metrics are off.
    pub metrics: Option<Router>,
}

/// The whole application: every front door, and the layers they share.
///
/// Only what needs the matched route is layered on the routes (`Router::layer`): axum clones
/// a route's whole stack for every request, one boxed service per layer, which cost a
/// third of the instructions of a `/healthz` request (callgrind) while the layers were all
/// there. The rest wraps the router once, as the fallback of an empty router (one boxed
/// service more).
pub fn router(service: Service, settings: &Settings) -> Routers {
    service.metrics().set_recording(settings.metrics);
    let limits = settings.rate_limits.then(|| {
        Arc::new(limit::Limits {
            login: limit::Buckets::new(settings.login_rate),
            failures: limit::Buckets::new(settings.failure_rate),
        })
    });
    let state = AppState {
        service,
        limits,
        websocket_login_timeout: settings.websocket_login_timeout,
        request_timeout: settings.request_timeout,
        tls: settings.tls.is_some(),
        http_metrics: settings
            .metrics
            .then(|| Arc::new(metrics::HttpMetrics::default())),
    };
    let request_id = HeaderName::from_static("x-request-id");
    // The native API and the TrueNAS upgrade share the native limits (a spent budget is
    // answered in the native format); a dialect over HTTP brings its own, in its format.
    let mut app = crate::native::routes()
        .merge(crate::truenas::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::native::limit::limit,
        ));
    if settings.ontap {
        app = app.merge(crate::ontap::router(&state));
    }
    if settings.zimbra {
        app = app.merge(crate::zimbra::router(&state));
    }
    // Below `/ui` the web pages answer everything, their 404s included.
    app = app.nest("/ui", crate::web::router(&state)).route(
        "/ui/",
        axum::routing::get(|| async { axum::response::Redirect::to("/ui") }),
    );
    // Below its prefix the Rocket.Chat router answers everything, its 404s included.
    if let Some(prefix) = &settings.rocketchat {
        app = app.nest(prefix, crate::rocketchat::router(&state));
    }
    let scrape = axum::routing::get(metrics::serve);
    if settings.metrics && settings.metrics_listen.is_none() {
        app = app.route("/metrics", scrape.clone());
    }
    let ontap = settings.ontap;
    let rocketchat = settings.rocketchat.clone();
    let app = app.fallback(move |uri: Uri| async move {
        if ontap && crate::ontap::owns(uri.path()) {
            crate::ontap::not_found().await.into_response()
        } else if let Some(prefix) = rocketchat.as_deref()
            && crate::rocketchat::owns(prefix, uri.path())
        {
            crate::rocketchat::RcError::no_endpoint().into_response()
        } else {
            crate::native::not_found().await.into_response()
        }
    });
    // The timeout on the routes, inside the metrics' layer, so that a 503 for a request that
    // took too long is counted with its route; the two as one layer (one boxed service per
    // route and request, not two).
    let timeout =
        TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, settings.request_timeout);
    let app = match &state.http_metrics {
        Some(http) => app.layer(
            tower::ServiceBuilder::new()
                .layer(metrics::MeasureLayer(http.clone()))
                .layer(timeout),
        ),
        None => app.layer(timeout),
    };
    let metrics = state.http_metrics.is_some().then(|| {
        Router::new()
            .route("/metrics", scrape)
            .layer(timeout)
            .layer(CatchPanicLayer::new())
            .with_state(state.clone())
    });
    // A 5xx is no server failure worth an ERROR line by itself: Zimbra answers every fault
    // with 500, and the server's own faults are logged once where they are classified
    // (`fault::server_fault`).
    let trace = TraceLayer::new_for_http()
        .on_failure(tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG));
    // Before every door: the client's address, when a trusted proxy names it.
    let client_address = axum::middleware::from_fn_with_state(
        client::TrustedProxies {
            nets: Arc::new(settings.trusted_proxies.clone()),
            header: settings.trusted_proxy_header,
        },
        client::forwarded,
    );
    let app = tower::ServiceBuilder::new()
        .map_response(IntoResponse::into_response)
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(trace)
        .layer(CatchPanicLayer::new())
        .layer(client_address)
        .layer(DefaultBodyLimit::max(settings.body_limit))
        .service(app.with_state(state));
    Routers {
        app: Router::new().fallback_service(app),
        metrics,
    }
}
