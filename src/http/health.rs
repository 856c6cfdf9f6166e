//! Liveness and readiness for load balancers and orchestrators.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(live))
        .route("/readyz", get(ready))
}

/// The process is up and serving.
async fn live() -> axum::Json<Value> {
    axum::Json(json!({ "status": "ok" }))
}

/// The process can do useful work: its database answers, and so does Redis when the rate
/// limiter needs it to (fail closed). A Redis that fails open is reported, not fatal: the
/// instance still limits from memory, and taking every instance out of rotation over it would
/// turn a degraded limiter into an outage.
async fn ready(State(state): State<AppState>) -> (StatusCode, axum::Json<Value>) {
    let redis = state.rate_limiter.shared_store_health().await;
    if redis.is_some_and(|(answers, fails_closed)| !answers && fails_closed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": "unavailable", "redis": "unreachable" })),
        );
    }
    if state.store.ping().await {
        let mut body = json!({ "status": "ready" });
        if let Some((answers, _)) = redis {
            body["redis"] = json!(if answers { "ok" } else { "unreachable" });
        }
        (StatusCode::OK, axum::Json(body))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": "unavailable", "database": "unreachable" })),
        )
    }
}
