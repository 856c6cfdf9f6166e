//! Key discovery: `GET /.well-known/jwks.json`, the public keys that verify access tokens.
//!
//! Guards against verifiers trusting keys from anywhere else: this is the one place our keys
//! are published, and it only ever holds public halves (the active key and the previous keys
//! that still verify unexpired tokens). Public route: a key set is not a secret.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/.well-known/jwks.json", get(jwks))
}

async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        axum::Json(state.tokens.jwks()),
    )
}
