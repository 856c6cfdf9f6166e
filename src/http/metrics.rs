//! `GET /metrics`: the Prometheus text exposition of this server's registry.
//!
//! Guards against leaking operational detail (routes, traffic, error rates) to anyone who
//! asks. On the main listener the route exists only when `AERIE_METRICS_TOKEN` (or
//! `_FILE`) is configured, and then answers only to `Authorization: Bearer <token>`,
//! compared in constant time; a missing or wrong token gets the same 404 as a route that
//! does not exist, so a scanner cannot tell that metrics are enabled. The separate listener
//! (`AERIE_METRICS_LISTEN`, meant for loopback or an internal network) serves only this
//! route, without a token.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::sync::atomic::Ordering::Relaxed;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::Error;
use crate::metrics::names;

pub const METRICS_ROUTE: &str = "/metrics";

/// The route on the main listener: present only when a token is configured.
pub fn router(state: &AppState) -> Router<AppState> {
    if state.metrics_token.is_none() {
        return Router::new();
    }
    Router::new().route(METRICS_ROUTE, get(scrape))
}

/// The separate metrics listener's whole application: `/metrics` and nothing else.
pub fn internal_router(state: AppState) -> Router {
    Router::new()
        .route(METRICS_ROUTE, get(scrape))
        .fallback(|| async { Error::NotFound("route") })
        .layer(axum::middleware::from_fn_with_state(
            None,
            crate::defense::headers::security_headers,
        ))
        .with_state(state)
}

/// Whether the request carries the configured metrics token as a bearer token. Both sides
/// are hashed first, so the comparison takes the same time whatever the length or content
/// of the guess.
pub fn bearer_token_matches(expected: Option<&SecretString>, headers: &HeaderMap) -> bool {
    let Some(expected) = expected else {
        return false;
    };
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let Some(presented) = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) else {
        return false;
    };
    let presented = Sha256::digest(presented.as_bytes());
    let expected = Sha256::digest(expected.expose_secret().as_bytes());
    presented.ct_eq(&expected).into()
}

#[utoipa::path(get, path = "/metrics", tag = "monitoring",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4", body = String)))]
async fn scrape(State(state): State<AppState>) -> Response {
    let pool = state.store.pool_usage();
    let (queued, running) = (state.hasher.queue_depth(), state.hasher.in_progress());
    let hash_memory = state.hasher.memory_bytes();
    let outbox_depth = state
        .store
        .outbox_state()
        .await
        .map_or(0, |(depth, _)| depth);
    let mail = state.lifecycle.sender().stats.clone();
    // Gauges are sampled now rather than kept up to date on every change.
    state.metrics.scope(|| {
        metrics::gauge!(names::PASSWORD_HASH_QUEUE).set(queued as f64);
        metrics::gauge!(names::PASSWORD_HASH_RUNNING).set(running as f64);
        metrics::gauge!(names::PASSWORD_HASH_MEMORY).set(hash_memory as f64);
        let in_use = pool.open.saturating_sub(pool.idle);
        metrics::gauge!(names::DB_POOL_CONNECTIONS, "state" => "idle").set(f64::from(pool.idle));
        metrics::gauge!(names::DB_POOL_CONNECTIONS, "state" => "in_use").set(f64::from(in_use));
        metrics::gauge!(names::DB_POOL_MAX).set(f64::from(pool.max));
        metrics::gauge!(names::MAIL_OUTBOX_DEPTH).set(outbox_depth as f64);
        let (sent, failed) = (mail.sent.load(Relaxed), mail.failed.load(Relaxed));
        metrics::counter!(names::MAIL_DELIVERIES, "result" => "sent").absolute(sent);
        metrics::counter!(names::MAIL_DELIVERIES, "result" => "failed").absolute(failed);
    });
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(
                header::AUTHORIZATION,
                HeaderValue::from_str(v).expect("value"),
            );
        }
        map
    }

    #[test]
    fn only_the_exact_bearer_token_matches() {
        let token = SecretString::from("s3cret-metrics-token-of-32-chars-or-more");
        let t = Some(&token);
        assert!(bearer_token_matches(
            t,
            &headers(&["Bearer s3cret-metrics-token-of-32-chars-or-more"])
        ));
        assert!(!bearer_token_matches(
            None,
            &headers(&["Bearer s3cret-metrics-token-of-32-chars-or-more"])
        ));
        assert!(!bearer_token_matches(t, &headers(&[])));
        assert!(!bearer_token_matches(
            t,
            &headers(&["Bearer s3cret-metrics-token-of-32-chars-or-mor"])
        ));
        assert!(!bearer_token_matches(
            t,
            &headers(&["Token s3cret-metrics-token-of-32-chars-or-more"])
        ));
        assert!(!bearer_token_matches(
            t,
            &headers(&["Bearer  s3cret-metrics-token-of-32-chars-or-more"])
        ));
        assert!(
            !bearer_token_matches(
                t,
                &headers(&[
                    "Bearer wrong",
                    "Bearer s3cret-metrics-token-of-32-chars-or-more"
                ])
            ),
            "two Authorization headers are ambiguous"
        );
    }
}
