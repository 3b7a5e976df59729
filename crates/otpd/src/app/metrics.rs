//! `/metrics` (issue 20): the core's metrics and the HTTP ones every door shares, in the
//! OpenMetrics text format that Prometheus scrapes — on the main listener, or on a listener
//! of its own (`--metrics-listen`).
//!
//! `otpd_http_requests_total{route,status}` and `otpd_http_request_duration_seconds{route}`
//! are counted by [`MeasureLayer`], a layer around every route: `route` is the template axum
//! matched (`/api/v1/accounts/{username}/totp/verify`), never the path itself, and
//! `unmatched` when nothing matched — so neither names nor tokens in paths reach a label,
//! and the number of series is bounded by the routes. A route's counters are made the first
//! time it is asked for; after that, recording is a lookup in a map read without a lock
//! (`arc-swap`) and atomic adds. The layer is a plain tower service whose future records
//! when the response is ready: axum's `from_fn` middleware would clone the inner service
//! and box a future for every request, which cost more than the recording itself (perf).

use super::AppState;
use arc_swap::ArcSwap;
use axum::extract::{MatchedPath, State};
use axum::http::Request;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use otpd_core::metrics::{Histogram, Metrics};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Instant;

/// The `route` of a request no route matched.
const UNMATCHED: &str = "unmatched";

/// Status codes `100..=599`, one counter each.
const STATUSES: std::ops::RangeInclusive<u16> = 100..=599;

/// The `status` of a request whose client went away before its answer (nginx's "client
/// closed request"): its work may well have been done.
const CLIENT_CLOSED_REQUEST: u16 = 499;

/// One route's counters.
#[derive(Debug)]
struct RouteMetrics {
    /// Indexed by status − 100.
    statuses: Box<[AtomicU64]>,
    duration: Histogram,
}

impl RouteMetrics {
    fn new() -> Self {
        RouteMetrics {
            statuses: STATUSES.map(|_| AtomicU64::new(0)).collect(),
            duration: Histogram::seconds(),
        }
    }

    /// Records an answer with `status` to a request that arrived at `started`.
    fn record(&self, status: u16, started: Instant) {
        if let Some(count) = status
            .checked_sub(*STATUSES.start())
            .and_then(|i| self.statuses.get(usize::from(i)))
        {
            count.fetch_add(1, Ordering::Relaxed);
        }
        self.duration.observe_duration(started.elapsed());
    }
}

/// The HTTP metrics of every door, by route template.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    routes: ArcSwap<HashMap<Box<str>, Arc<RouteMetrics>>>,
}

impl HttpMetrics {
    /// The counters of `route`.
    fn route(&self, route: &str) -> Arc<RouteMetrics> {
        let known = self.routes.load().get(route).cloned();
        known.unwrap_or_else(|| self.add(route))
    }

    /// The counters of a route asked for the first time (copies the map: once per route).
    #[cold]
    fn add(&self, route: &str) -> Arc<RouteMetrics> {
        let mut added = None;
        self.routes.rcu(|routes| {
            let mut routes = HashMap::clone(routes);
            let metrics = routes
                .entry(route.into())
                .or_insert_with(|| Arc::new(RouteMetrics::new()));
            added = Some(metrics.clone());
            routes
        });
        added.unwrap_or_else(|| Arc::new(RouteMetrics::new()))
    }
}

impl Collector for HttpMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let routes = self.routes.load();
        let mut sorted: Vec<_> = routes.iter().collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut requests = encoder.encode_descriptor(
            "otpd_http_requests",
            "HTTP requests answered, by route template and status.",
            None,
            MetricType::Counter,
        )?;
        for (route, metrics) in &sorted {
            for (status, count) in STATUSES.zip(metrics.statuses.iter()) {
                let count = count.load(Ordering::Relaxed);
                if count == 0 {
                    continue;
                }
                let status = status.to_string();
                let labels = [("route", route.as_ref()), ("status", status.as_str())];
                requests
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&count, None)?;
            }
        }
        let mut durations = encoder.encode_descriptor(
            "otpd_http_request_duration_seconds",
            "Time from a request's arrival at its route to its response's headers, by route template.",
            None,
            MetricType::Histogram,
        )?;
        for (route, metrics) in &sorted {
            let labels = [("route", route.as_ref())];
            metrics.duration.encode(durations.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Counts every answer of the routes it is layered on (`Router::layer`, so that the route
/// has been matched) by route template and status, and times it.
#[derive(Debug, Clone)]
pub struct MeasureLayer(pub Arc<HttpMetrics>);

impl<S> tower::Layer<S> for MeasureLayer {
    type Service = Measure<S>;

    fn layer(&self, inner: S) -> Measure<S> {
        Measure {
            inner,
            http: self.0.clone(),
        }
    }
}

/// [`MeasureLayer`]'s service.
#[derive(Debug, Clone)]
pub struct Measure<S> {
    inner: S,
    http: Arc<HttpMetrics>,
}

impl<S, B> tower::Service<Request<B>> for Measure<S>
where
    S: tower::Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Measured<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let started = Instant::now();
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or(UNMATCHED, MatchedPath::as_str);
        let pending = Pending {
            route: self.http.route(route),
            started,
            answered: false,
        };
        Measured {
            inner: self.inner.call(request),
            pending,
        }
    }
}

pin_project_lite::pin_project! {
    /// A route's response on its way, recorded when it is ready.
    pub struct Measured<F> {
        #[pin]
        inner: F,
        pending: Pending,
    }
}

/// The recording of a request: at its answer, or as [`CLIENT_CLOSED_REQUEST`] when it is
/// dropped without one — so that requests cut off by their clients (which may have changed
/// something: a verification runs to its end) are seen.
struct Pending {
    route: Arc<RouteMetrics>,
    started: Instant,
    answered: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.answered {
            self.route.record(CLIENT_CLOSED_REQUEST, self.started);
        }
    }
}

impl<F, E> Future for Measured<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = ready!(this.inner.poll(cx));
        let pending = this.pending;
        pending.answered = true;
        if let Ok(response) = &output {
            pending
                .route
                .record(response.status().as_u16(), pending.started);
        }
        Poll::Ready(output)
    }
}

/// `GET /metrics`: reads the database's gauges again when they are due, then every series
/// (the core's, then HTTP's) in the OpenMetrics text format.
pub async fn serve(State(state): State<AppState>) -> Response {
    let service = &state.service;
    if let Err(e) = service.refresh_database_gauges().await {
        tracing::warn!(error = %e, "metrics: the database's counts could not be read; the last ones are shown");
    }
    let mut text = String::with_capacity(16 * 1024);
    let mut http = Registry::default();
    if let Some(metrics) = &state.http_metrics {
        http.register_collector(Box::new(metrics.clone()));
    }
    // Writing into a String cannot fail.
    let _ =
        prometheus_client::encoding::text::encode_registry(&mut text, service.metrics().registry())
            .and_then(|()| prometheus_client::encoding::text::encode(&mut text, &http));
    ([(CONTENT_TYPE, Metrics::CONTENT_TYPE)], text).into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tower::{Layer, Service};

    /// The text of `http`'s series.
    fn encoded(http: &Arc<HttpMetrics>) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(http.clone()));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    /// A request dropped before its answer (its client went away) is counted as 499; an
    /// answered one with its status.
    #[test]
    fn a_request_cut_off_is_counted_as_499() {
        let http = Arc::new(HttpMetrics::default());
        let never = tower::service_fn(|_: Request<()>| {
            std::future::pending::<Result<Response, std::convert::Infallible>>()
        });
        let mut measured = MeasureLayer(http.clone()).layer(never);
        let mut future = Box::pin(measured.call(Request::new(())));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(future.as_mut().poll(&mut cx).is_pending());
        drop(future);

        let answered = tower::service_fn(|_: Request<()>| async {
            Ok::<_, std::convert::Infallible>(axum::http::StatusCode::IM_A_TEAPOT.into_response())
        });
        let mut measured = MeasureLayer(http.clone()).layer(answered);
        let mut future = Box::pin(measured.call(Request::new(())));
        assert!(future.as_mut().poll(&mut cx).is_ready());

        let text = encoded(&http);
        assert!(
            text.contains("otpd_http_requests_total{route=\"unmatched\",status=\"499\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("otpd_http_requests_total{route=\"unmatched\",status=\"418\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("otpd_http_request_duration_seconds_count{route=\"unmatched\"} 2\n"),
            "{text}"
        );
    }
}
