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
use serde_json::{Map, Value, json};

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

/// The process is up and serving.
async fn live() -> axum::Json<Value> {
    axum::Json(json!({ "status": "ok" }))
}

/// The process can do useful work: it is not shutting down and its dependencies answer.
/// Body: `status` (`ready`, `unavailable`, `shutting_down`) and one field per dependency
/// (`"ok"` or `"unreachable"`). A Redis that fails open is reported but not fatal: the
/// instance still limits from memory, and taking every instance out of rotation over it would
/// turn a degraded limiter into an outage.
async fn ready(State(state): State<AppState>) -> Response {
    let word = |ok: bool| Value::from(if ok { "ok" } else { "unreachable" });
    let mut body = Map::new();
    let database = check(state.store.ping()).await;
    body.insert("database".into(), word(database));
    let mut all_ok = database;
    if let Some((answers, fails_closed)) = state.rate_limiter.shared_store_health().await {
        body.insert("redis".into(), word(answers));
        all_ok &= answers || !fails_closed;
    }
    let (status, summary) = if state.shutting_down.is_set() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting_down")
    } else if all_ok {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    body.insert("status".into(), summary.into());
    let mut response = (status, axum::Json(Value::Object(body))).into_response();
    response.extensions_mut().insert(StatusDocument);
    response
}

async fn check(probe: impl Future<Output = bool>) -> bool {
    tokio::time::timeout(CHECK_TIMEOUT, probe)
        .await
        .unwrap_or(false)
}
