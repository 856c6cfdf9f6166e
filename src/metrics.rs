//! Prometheus metrics: one registry per server, fed through the `metrics` facade.
//!
//! Guards against two things. Label cardinality: every label value comes from a fixed set
//! (route *templates* such as `/api/articles/{slug}`, never raw paths; `unmatched` for a
//! request that matched no route; known HTTP methods or `other`; status codes; catalogue
//! names), so a client requesting a million random paths or inventing methods cannot grow
//! the registry. Leaks: no label or value ever carries a user's input, a token or an email.
//!
//! Why a registry per server rather than one global recorder: the facade's global recorder
//! can be set once per process, so several servers in one process (the test suites boot
//! dozens) would mix their counts. Each server owns a [`Metrics`], and [`observe_requests`]
//! polls every request inside [`metrics::with_local_recorder`], so whatever a handler or a
//! layer emits with `metrics::counter!` (the rate limiter included) lands in that server's
//! registry. Emissions outside a request (background tasks) go to the global recorder, which
//! the first server of the process installs: in production, the only server.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::audit::EventType;
use crate::audit::alerts::Alerts;
use crate::clock::Clock;

/// Every metric Aerie emits, by name. docs/operations.md describes each.
pub mod names {
    pub const HTTP_REQUESTS: &str = "aerie_http_requests_total";
    pub const HTTP_DURATION: &str = "aerie_http_request_duration_seconds";
    pub const LOGINS: &str = "aerie_logins_total";
    pub const SESSIONS_REVOKED: &str = "aerie_sessions_revoked_total";
    pub const AUDIT_EVENTS: &str = "aerie_audit_events_total";
    pub const PASSWORD_HASH_QUEUE: &str = "aerie_password_hash_queue_depth";
    pub const PASSWORD_HASH_RUNNING: &str = "aerie_password_hash_in_progress";
    pub const DB_POOL_CONNECTIONS: &str = "aerie_db_pool_connections";
    pub const DB_POOL_MAX: &str = "aerie_db_pool_max_connections";
}

/// The route label of a request that matched no route: one value, whatever the path.
pub const UNMATCHED: &str = "unmatched";

/// Latency buckets (seconds) for an API: a few milliseconds for reads from memory, tens for
/// a database round trip, ~50 ms for an argon2 verification, up to the 30 s request timeout.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How often histogram samples are folded into their buckets, so memory stays flat between
/// scrapes (and when nobody scrapes at all).
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// One server's registry. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    #[expect(
        clippy::expect_used,
        reason = "the latency buckets are a non-empty constant"
    )]
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(names::HTTP_DURATION.into()), DURATION_BUCKETS)
            .expect("the latency buckets are a non-empty constant")
            .build_recorder();
        let metrics = Self {
            handle: recorder.handle(),
            recorder: Arc::new(recorder),
        };
        metrics.scope(describe);
        metrics
    }

    /// Makes this registry the process-wide fallback for emissions outside any request, if no
    /// other server did so first.
    pub fn install_as_process_fallback(&self) {
        let _ = metrics::set_global_recorder(self.recorder.clone());
    }

    /// Runs `f` with this registry as the facade's recorder on this thread.
    pub fn scope<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&*self.recorder, f)
    }

    /// The Prometheus text exposition of everything recorded so far.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Folds pending histogram samples; run every [`UPKEEP_INTERVAL`].
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Polls `future` inside this registry's scope, every time it is polled.
    pub fn instrument<F: Future>(&self, future: F) -> Scoped<F> {
        Scoped {
            recorder: self.recorder.clone(),
            future: Box::pin(future),
        }
    }
}

/// A future polled with a server's registry as the local recorder. Boxed, so it needs no
/// pin projection (and no `unsafe`).
pub struct Scoped<F> {
    recorder: Arc<PrometheusRecorder>,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let future = this.future.as_mut();
        metrics::with_local_recorder(&*this.recorder, || future.poll(cx))
    }
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        names::HTTP_REQUESTS,
        "HTTP responses by route template, method and status"
    );
    describe_histogram!(
        names::HTTP_DURATION,
        Unit::Seconds,
        "Time to the response head, by route template and method"
    );
    describe_counter!(
        names::LOGINS,
        "Password logins by result (success, failure)"
    );
    describe_counter!(
        names::SESSIONS_REVOKED,
        "Sessions revoked by this instance (logout, reuse detection, password change, admin)"
    );
    describe_counter!(names::AUDIT_EVENTS, "Audit events recorded, by type");
    describe_gauge!(
        names::PASSWORD_HASH_QUEUE,
        "Password hashes waiting for a slot on the argon2 pool"
    );
    describe_gauge!(
        names::PASSWORD_HASH_RUNNING,
        "Password hashes running on the argon2 pool"
    );
    describe_gauge!(
        names::DB_POOL_CONNECTIONS,
        "Open database connections by state (idle, in_use)"
    );
    describe_gauge!(names::DB_POOL_MAX, "Database pool size limit");
}

/// The method label: the standard methods by name, anything else (hyper accepts any token
/// as a method) as `other`.
pub fn method_label(method: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::TRACE,
        Method::CONNECT,
    ];
    KNOWN
        .iter()
        .find(|known| *known == method)
        .map_or("other", Method::as_str)
}

/// Counts a recorded audit event (and, for logins, its result).
pub fn count_audit_event(kind: EventType) {
    metrics::counter!(names::AUDIT_EVENTS, "type" => kind.as_str()).increment(1);
    let result = match kind {
        EventType::LoginSucceeded => "success",
        EventType::LoginFailed => "failure",
        _ => return,
    };
    metrics::counter!(names::LOGINS, "result" => result).increment(1);
}

pub fn count_sessions_revoked(n: usize) {
    metrics::counter!(names::SESSIONS_REVOKED).increment(u64::try_from(n).unwrap_or(u64::MAX));
}

/// What the request observer needs: the registry, and the alert rules fed by statuses.
#[derive(Clone)]
pub struct RequestObserver {
    pub metrics: Metrics,
    pub alerts: Option<Alerts>,
    pub clock: Arc<dyn Clock>,
}

/// Routes whose 5xx answers are signals, not failures: readiness says 503 on purpose while
/// the server drains or its database is away (the errors of the API itself still count).
const EXPECTED_5XX_ROUTES: &[&str] = &[crate::http::health::READINESS_ROUTE];

/// The outermost layer: runs the request inside the server's registry, then counts the
/// response by route template, method and status, times it, and feeds the repeated-5xx
/// alert rule. Whoever produced the response (handler, rate limiter, timeout, panic guard)
/// is seen.
pub async fn observe_requests(
    State(observer): State<RequestObserver>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |path| path.as_str().to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = observer.metrics.instrument(next.run(request)).await;
    let status = response.status();
    observer.metrics.scope(|| {
        metrics::histogram!(names::HTTP_DURATION, "route" => route.clone(), "method" => method)
            .record(started.elapsed());
        metrics::counter!(
            names::HTTP_REQUESTS,
            "route" => route.clone(),
            "method" => method,
            "status" => status.as_u16().to_string()
        )
        .increment(1);
    });
    if status.is_server_error()
        && !EXPECTED_5XX_ROUTES.contains(&route.as_str())
        && let Some(alerts) = &observer.alerts
    {
        alerts.observe_server_error(observer.clock.now(), status, method, &route);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let invented = Method::from_bytes(b"FROBNICATE").expect("a token is a method");
        assert_eq!(method_label(&invented), "other");
    }

    #[test]
    fn each_server_counts_only_its_own_events() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.scope(|| count_audit_event(EventType::LoginFailed));
        let rendered = a.render();
        assert!(
            rendered.contains(r#"aerie_logins_total{result="failure"} 1"#),
            "{rendered}"
        );
        assert!(
            rendered.contains(r#"aerie_audit_events_total{type="login_failed"} 1"#),
            "{rendered}"
        );
        assert!(!b.render().contains("aerie_logins_total{"));
    }
}
