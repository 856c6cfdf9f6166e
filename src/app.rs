//! The application: every route, and the layer stack each request passes through.
//!
//! Layers, outermost first: sensitive headers hidden from logs; request id (a malformed
//! client id is replaced); tracing; error bodies normalized; panics caught and answered
//! 500; a request timeout; the body size limit. Each resource module declares its routes;
//! this file reads as the API's table of contents.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;

use crate::http::error::{Error, normalize_error_bodies};
use crate::http::{AppState, articles, comments, health, profiles, tags, users};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState) -> Router {
    let body_limit = state.config.body_limit_bytes;
    let timeout = state.config.request_timeout;
    Router::new()
        .merge(users::router())
        .merge(profiles::router())
        .merge(articles::router())
        .merge(comments::router())
        .merge(tags::router())
        .merge(health::router())
        .fallback(|| async { Error::NotFound("route") })
        .layer(
            ServiceBuilder::new()
                .layer(SetSensitiveRequestHeadersLayer::new([
                    header::AUTHORIZATION,
                    header::COOKIE,
                ]))
                .layer(middleware::from_fn(drop_malformed_request_id))
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(crate::telemetry::http_trace_layer())
                .layer(middleware::from_fn(normalize_error_bodies))
                .layer(CatchPanicLayer::new())
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::SERVICE_UNAVAILABLE,
                    timeout,
                ))
                .layer(RequestBodyLimitLayer::new(body_limit))
                .layer(DefaultBodyLimit::max(body_limit)),
        )
        .with_state(state)
}

/// Accepts a client's `X-Request-Id` only when it is 1–64 characters of `[A-Za-z0-9._-]`;
/// anything else could smuggle markup or line breaks into logs, so a fresh id replaces it.
async fn drop_malformed_request_id(mut request: Request, next: Next) -> Response {
    let well_formed = |v: &HeaderValue| {
        let bytes = v.as_bytes();
        (1..=64).contains(&bytes.len())
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    let ids: Vec<&HeaderValue> = request.headers().get_all(&REQUEST_ID).iter().collect();
    if ids.len() != 1 || !ids.iter().all(|v| well_formed(v)) {
        request.headers_mut().remove(&REQUEST_ID);
    }
    next.run(request).await
}
