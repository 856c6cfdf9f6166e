//! The outermost layer: every response counted in this server's metrics registry by route
//! template, method and status, timed, and fed to the repeated-5xx alert rule.
//!
//! Guards against label cardinality (every label value comes from a fixed set: route
//! *templates* such as `/api/articles/{slug}`, never raw paths; `unmatched` for a request that
//! matched no route; known HTTP methods or `other`; status codes), so a client requesting a
//! million random paths or inventing methods cannot grow the registry, and against an outage
//! going unnoticed. Whoever produced the response (handler, rate limiter, timeout, panic
//! guard) is seen.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};

use super::health::READINESS_ROUTE;
use crate::audit::alerts::Alerts;
use crate::clock::Clock;
use crate::metrics::Metrics;

/// The route label of a request that matched no route: one value, whatever the path.
pub const UNMATCHED: &str = "unmatched";

/// Routes whose 5xx answers are signals, not failures: readiness says 503 on purpose while
/// the server drains or its database is away (the errors of the API itself still count).
const EXPECTED_5XX_ROUTES: &[&str] = &[READINESS_ROUTE];

/// What the request observer needs: the registry, and the alert rules fed by statuses.
#[derive(Clone)]
pub struct RequestObserver {
    pub metrics: Metrics,
    pub alerts: Option<Alerts>,
    pub clock: Arc<dyn Clock>,
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

/// What the observer notes about a request on its way in, to count its answer by.
pub struct Observation {
    /// A clone of the router's shared template: no copy of the text per request.
    route: Option<MatchedPath>,
    method: &'static str,
    started: Instant,
}

impl RequestObserver {
    /// Notes the request's route template, method and start, before anything runs.
    pub fn start(request: &Request) -> Observation {
        Observation {
            route: request.extensions().get::<MatchedPath>().cloned(),
            method: method_label(request.method()),
            started: Instant::now(),
        }
    }

    /// Counts and times the answer, and feeds the repeated-5xx alert rule; the time it took,
    /// for the request's log line. The outermost layer calls it ([`super::edge`]) for every
    /// answer, whoever produced it.
    pub fn finish(&self, observation: Observation, status: StatusCode) -> Duration {
        let route = observation
            .route
            .as_ref()
            .map_or(UNMATCHED, MatchedPath::as_str);
        let method = observation.method;
        let took = observation.started.elapsed();
        self.metrics
            .record_response(route, method, status.as_u16(), took);
        if status.is_server_error()
            && !EXPECTED_5XX_ROUTES.contains(&route)
            && let Some(alerts) = &self.alerts
        {
            alerts.observe_server_error(self.clock.now(), status.as_u16(), method, route);
        }
        took
    }
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
}
