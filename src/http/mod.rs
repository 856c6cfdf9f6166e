//! The HTTP API: one module per resource, each exporting its `router()`; [`crate::app`]
//! merges them. Request and response types live beside the handlers that use them.

pub mod access;
pub mod admin;
mod admin_audit;
pub mod articles;
pub mod auth;
pub mod comments;
pub mod cookies;
pub mod error;
pub mod extract;
pub mod health;
mod json_bounds;
pub mod keys;
pub mod metrics;
pub mod openapi;
pub mod profiles;
mod query;
#[cfg(test)]
mod rejection_properties;
pub mod tags;
pub mod users;
mod views;

use std::sync::Arc;

use crate::audit::AuditLog;
use crate::auth::password::PasswordHasher;
use crate::auth::revocations::Revocations;
use crate::auth::tokens::TokenService;
use crate::clock::Clock;
use crate::config::Config;
use crate::defense::rate_limit::RateLimiter;
use crate::store::Store;

/// What every handler may use. Cheap to clone: everything inside is shared.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub hasher: PasswordHasher,
    pub tokens: TokenService,
    pub revocations: Revocations,
    pub clock: Arc<dyn Clock>,
    pub rate_limiter: RateLimiter,
    /// The tamper-evident audit trail: `state.audit.record(event).await?`.
    pub audit: AuditLog,
    /// This server's Prometheus registry.
    pub metrics: crate::metrics::Metrics,
    /// Set when shutdown begins: readiness then answers 503.
    pub shutting_down: health::ShuttingDown,
}

impl From<crate::audit::AuditError> for error::Error {
    /// An event that cannot be stored fails the request: an unrecorded security action is
    /// worse than a refused one.
    fn from(error: crate::audit::AuditError) -> Self {
        error::Error::Internal(error.to_string())
    }
}
