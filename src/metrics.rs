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
//! dozens) would mix their counts. Each server owns a [`Metrics`], and the HTTP layer's request
//! observer polls every request inside [`Metrics::instrument`], so whatever a handler or a
//! layer emits with `metrics::counter!` (the rate limiter included) lands in that server's
//! registry. Emissions outside a request (background tasks) go to the global recorder, which
//! the first server of the process installs: in production, the only server.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use secrecy::SecretString;

/// Every metric Aerie emits, by name. docs/operations.md describes each.
pub mod names {
    pub const HTTP_REQUESTS: &str = "aerie_http_requests_total";
    pub const HTTP_DURATION: &str = "aerie_http_request_duration_seconds";
    pub const LOGINS: &str = "aerie_logins_total";
    pub const SESSIONS_REVOKED: &str = "aerie_sessions_revoked_total";
    pub const AUDIT_EVENTS: &str = "aerie_audit_events_total";
    pub const PASSWORD_HASH_QUEUE: &str = "aerie_password_hash_queue_depth";
    pub const PASSWORD_HASH_RUNNING: &str = "aerie_password_hash_in_progress";
    pub const PASSWORD_HASH_MEMORY: &str = "aerie_password_hash_memory_bytes";
    pub const DB_POOL_CONNECTIONS: &str = "aerie_db_pool_connections";
    pub const DB_POOL_MAX: &str = "aerie_db_pool_max_connections";
    pub const CONNECTIONS_REFUSED: &str = "aerie_connections_refused_total";
    pub const CONNECTIONS_EVICTED: &str = "aerie_connections_evicted_total";
    pub const MARKDOWN_RENDERS: &str = "aerie_markdown_renders_total";
    pub const MARKDOWN_REFUSED: &str = "aerie_markdown_refused_total";
    pub const DB_BUDGET_EXCEEDED: &str = "aerie_db_budget_exceeded_total";
    pub const MAIL_OUTBOX_DEPTH: &str = "aerie_mail_outbox_depth";
    pub const MAIL_DELIVERIES: &str = "aerie_mail_deliveries_total";
}

/// Latency buckets (seconds) for an API: a few milliseconds for reads from memory, tens for
/// a database round trip, ~50 ms for an argon2 verification, up to the 30 s request timeout.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How often histogram samples are folded into their buckets, so memory stays flat between
/// scrapes (and when nobody scrapes at all).
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Who may read the metrics, and where.
#[derive(Debug, Clone, Default)]
pub struct MetricsSettings {
    /// The bearer token that `GET /metrics` on the main listener requires; without one, the
    /// route does not exist.
    pub token: Option<SecretString>,
    /// A separate listener (loopback or an internal interface) that serves only `/metrics`,
    /// without a token.
    pub listen: Option<SocketAddr>,
}

/// One server's registry. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    http: Arc<HttpSeries>,
}

/// The handles of the per-response series, kept by route template, then method and status.
/// Naming a series by its labels on every response builds a key of owned labels, hashes it
/// and looks it up in the registry: about fifteen allocations per request, a tenth of a
/// cheap read's (BENCHMARKS.md, "Fewer, flatter layers"). Bounded like the series
/// themselves: route templates are the router's (or [`crate::http::observe::UNMATCHED`]),
/// methods are labelled from a fixed list, statuses are what the server answered.
#[derive(Default)]
struct HttpSeries {
    by_route: RwLock<HashMap<Box<str>, SeriesOfRoute>>,
}

/// One route's series, by method label and status.
type SeriesOfRoute = HashMap<(&'static str, u16), ResponseSeries>;

/// One route, method and status's series: its latency (by route and method) and its count.
#[derive(Clone)]
struct ResponseSeries {
    latency: Histogram,
    count: Counter,
}

impl ResponseSeries {
    fn record(&self, took: Duration) {
        self.latency.record(took);
        self.count.increment(1);
    }
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
            http: Arc::default(),
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

    /// Counts one response of `route` (a template) to `method` with `status`, and the time it
    /// took. The series' handles are looked up once per route, method and status, then kept.
    pub fn record_response(&self, route: &str, method: &'static str, status: u16, took: Duration) {
        // Recorded under the read lock, without cloning the handles; the lock ends with the
        // block, before registering takes the write lock.
        {
            let by_route = self
                .http
                .by_route
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            let known = by_route
                .get(route)
                .and_then(|statuses| statuses.get(&(method, status)));
            if let Some(series) = known {
                series.record(took);
                return;
            }
        }
        self.register_response_series(route, method, status)
            .record(took);
    }

    /// Registers (or finds, when another request got there first) the series of a route,
    /// method and status not seen before.
    fn register_response_series(
        &self,
        route: &str,
        method: &'static str,
        status: u16,
    ) -> ResponseSeries {
        let mut by_route = self
            .http
            .by_route
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let statuses = by_route.entry(route.into()).or_default();
        statuses
            .entry((method, status))
            .or_insert_with(|| {
                self.scope(|| ResponseSeries {
                    latency: metrics::histogram!(
                        names::HTTP_DURATION,
                        "route" => route.to_owned(),
                        "method" => method
                    ),
                    count: metrics::counter!(
                        names::HTTP_REQUESTS,
                        "route" => route.to_owned(),
                        "method" => method,
                        "status" => status.to_string()
                    ),
                })
            })
            .clone()
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
        self.instrument_pinned(Box::pin(future))
    }

    /// [`Self::instrument`] for a future already boxed, possibly as a trait object: the
    /// outermost layer boxes its whole answer once and gets a nameable future type.
    pub fn instrument_pinned<F: Future + ?Sized>(&self, future: Pin<Box<F>>) -> Scoped<F> {
        Scoped {
            recorder: self.recorder.clone(),
            future,
        }
    }
}

/// A future polled with a server's registry as the local recorder. Boxed, so it needs no
/// pin projection (and no `unsafe`).
pub struct Scoped<F: ?Sized> {
    recorder: Arc<PrometheusRecorder>,
    future: Pin<Box<F>>,
}

impl<F: Future + ?Sized> Future for Scoped<F> {
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
    describe_gauge!(
        names::MAIL_OUTBOX_DEPTH,
        "Mails waiting in the outbox (queued or failing)"
    );
    describe_counter!(
        names::MAIL_DELIVERIES,
        "Mail delivery attempts by this process, by result (sent, failed)"
    );
    describe_counter!(
        names::CONNECTIONS_REFUSED,
        "Connections closed at accept, before a byte was read, by reason"
    );
    describe_counter!(
        names::CONNECTIONS_EVICTED,
        "Idle connections closed to make room for a new one, by reason"
    );
    describe_counter!(
        names::DB_BUDGET_EXCEEDED,
        "Database statements stopped by the per-request budget (answered 503)"
    );
}

/// Counts a database statement stopped by its time budget.
pub fn count_db_budget_exceeded() {
    metrics::counter!(names::DB_BUDGET_EXCEEDED).increment(1);
}

/// Counts a recorded audit event, by its catalogue name.
pub fn count_audit_event(kind: &'static str) {
    metrics::counter!(names::AUDIT_EVENTS, "type" => kind).increment(1);
}

/// Counts a password login by its result: `success` or `failure`.
pub fn count_login(result: &'static str) {
    metrics::counter!(names::LOGINS, "result" => result).increment(1);
}

pub fn count_sessions_revoked(n: usize) {
    metrics::counter!(names::SESSIONS_REVOKED).increment(u64::try_from(n).unwrap_or(u64::MAX));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_server_counts_only_its_own_events() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.scope(|| {
            count_audit_event("login_failed");
            count_login("failure");
        });
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

    /// The kept handles must count into the right series: each response once, under its own
    /// route, method and status, and only in the registry of the server that answered.
    #[test]
    fn responses_count_into_their_own_series() {
        let (a, b) = (Metrics::new(), Metrics::new());
        let took = Duration::from_millis(3);
        for _ in 0..3 {
            a.record_response("/api/articles/{slug}", "GET", 200, took);
        }
        a.record_response("/api/articles/{slug}", "GET", 404, took);
        a.record_response("/api/articles/{slug}", "DELETE", 200, took);
        a.record_response("/api/user", "GET", 200, took);
        let rendered = a.render();
        for series in [
            r#"aerie_http_requests_total{route="/api/articles/{slug}",method="GET",status="200"} 3"#,
            r#"aerie_http_requests_total{route="/api/articles/{slug}",method="GET",status="404"} 1"#,
            r#"aerie_http_requests_total{route="/api/articles/{slug}",method="DELETE",status="200"} 1"#,
            r#"aerie_http_requests_total{route="/api/user",method="GET",status="200"} 1"#,
            r#"aerie_http_request_duration_seconds_count{route="/api/articles/{slug}",method="GET"} 4"#,
        ] {
            assert!(rendered.contains(series), "{series} in\n{rendered}");
        }
        assert!(!b.render().contains("aerie_http_requests_total{"));
    }
}
