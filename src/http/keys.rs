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
use utoipa::ToSchema;

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/.well-known/jwks.json", get(jwks))
}

/// The JWK Set's shape, for the OpenAPI document: [`crate::auth::tokens::TokenService::jwks`]
/// builds the set itself.
#[derive(ToSchema)]
#[allow(dead_code)]
struct JwkSet {
    keys: Vec<Jwk>,
}

/// One Ed25519 public key (RFC 8037).
#[derive(ToSchema)]
#[allow(dead_code)]
struct Jwk {
    #[schema(example = "OKP")]
    kty: String,
    #[schema(example = "Ed25519")]
    crv: String,
    #[schema(example = "EdDSA")]
    alg: String,
    #[schema(rename = "use", example = "sig")]
    use_: String,
    /// Matches the `kid` in an access token's header.
    kid: String,
    /// The public key, base64url.
    x: String,
}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "keys",
    responses((status = 200, description = "The public keys that verify access tokens: the current one and those still verifying unexpired tokens", body = JwkSet)))]
async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        axum::Json(state.tokens.jwks()),
    )
}
