//! Liveness and readiness for load balancers and orchestrators.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{Error, Result};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(live))
        .route("/readyz", get(ready))
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

/// The process can do useful work: its database answers. A 503 (whose body, like every
/// 5xx, only says "service unavailable") takes the instance out of rotation.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "The database answers", body = Health),
        (status = 503, description = "The database does not answer"),
    ))]
async fn ready(State(state): State<AppState>) -> Result<axum::Json<Health>> {
    if state.store.ping().await {
        Ok(axum::Json(Health { status: "ready" }))
    } else {
        tracing::warn!("readiness check: database unreachable");
        Err(Error::Unavailable)
    }
}
