//! Liveness and readiness for load balancers and orchestrators.
//!
//! Readiness answers 503 while the server shuts down, so a load balancer takes the instance
//! out of rotation before its listener closes (requests already sent still complete), and
//! when a dependency it needs (the database) does not answer within a short time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::StatusDocument;

pub const READINESS_ROUTE: &str = "/readyz";

/// A dependency slower than this counts as unreachable: a probe must answer before the
/// orchestrator's own timeout, not hang with the dependency.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(live))
        .route(READINESS_ROUTE, get(ready))
}

/// Set once shutdown begins; never cleared. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ShuttingDown(Arc<AtomicBool>);

impl ShuttingDown {
    pub fn begin(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Serialize, ToSchema)]
struct Health {
    #[schema(value_type = String, example = "ok")]
    status: &'static str,
}

/// The process is up and serving.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is up", body = Health)))]
async fn live() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

/// The readiness answer: a summary and one field per dependency.
#[derive(Serialize, ToSchema)]
struct Readiness {
    /// `ready`, `unavailable` or `shutting_down`.
    #[schema(value_type = String, example = "ready")]
    status: &'static str,
    /// `ok` or `unreachable`.
    #[schema(value_type = String, example = "ok")]
    database: &'static str,
    /// Present when Redis is configured: `ok` or `unreachable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "ok")]
    redis: Option<&'static str>,
    /// Present when certificates come from ACME: `ok`, or `pending` until the first is issued
    /// (the TLS listener refuses handshakes meanwhile).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "ok")]
    certificate: Option<&'static str>,
}

/// The process can do useful work: it is not shutting down and its dependencies answer. A
/// Redis that fails open is reported but not fatal: the instance still limits from memory,
/// and taking every instance out of rotation over it would turn a degraded limiter into an
/// outage.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Shutting down, or a dependency does not answer", body = Readiness),
    ))]
async fn ready(State(state): State<AppState>) -> Response {
    let word = |ok: bool| if ok { "ok" } else { "unreachable" };
    let database = check(state.store.ping()).await;
    let mut all_ok = database;
    let mut redis = None;
    if let Some((answers, fails_closed)) = state.rate_limiter.shared_store_health().await {
        redis = Some(word(answers));
        all_ok &= answers || !fails_closed;
    }
    let mut certificate = None;
    if let Some(acme) = &state.acme {
        let served = acme.has_certificate();
        certificate = Some(if served { "ok" } else { "pending" });
        all_ok &= served;
    }
    let (code, status) = if state.shutting_down.is_set() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting_down")
    } else if all_ok {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    let body = Readiness {
        status,
        database: word(database),
        redis,
        certificate,
    };
    let mut response = (code, axum::Json(body)).into_response();
    response.extensions_mut().insert(StatusDocument);
    response
}

async fn check(probe: impl Future<Output = bool>) -> bool {
    tokio::time::timeout(CHECK_TIMEOUT, probe)
        .await
        .unwrap_or(false)
}
