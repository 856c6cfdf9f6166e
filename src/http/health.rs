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

/// The process can do useful work: its database answers.
async fn ready(State(state): State<AppState>) -> (StatusCode, axum::Json<Value>) {
    if state.store.ping().await {
        (StatusCode::OK, axum::Json(json!({ "status": "ready" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": "unavailable", "database": "unreachable" })),
        )
    }
}
