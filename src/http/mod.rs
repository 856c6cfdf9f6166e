//! The HTTP API: one module per resource, each exporting its `router()`; [`crate::app`]
//! merges them. Request and response types live beside the handlers that use them.

pub mod access;
pub mod admin;
#[cfg(test)]
pub(crate) mod answers_for_tests;
pub mod articles;
pub mod auth;
mod bodies;
pub mod comments;
pub mod cookies;
pub mod edge;
pub mod error;
pub mod extract;
pub mod health;
mod json_bounds;
pub mod keys;
pub mod lifecycle;
pub mod metrics;
pub mod mfa;
pub mod observe;
pub mod openapi;
pub mod profiles;
mod query;
#[cfg(test)]
mod rejection_properties;
mod service_errors;
pub mod shaping;
pub mod tags;
pub mod users;
mod views;

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use crate::audit::AuditLog;
use crate::auth::SessionTimes;
use crate::auth::password::PasswordHasher;
use crate::auth::revocations::Revocations;
use crate::auth::tokens::TokenService;
use crate::clock::Clock;
use crate::defense::cors::AllowedOrigins;
use crate::defense::rate_limit::RateLimiter;
use crate::services::accounts::Accounts;
use crate::services::audit_trail::AuditTrail;
use crate::services::denials::Denials;
use crate::services::markdown::Renderer;
use crate::services::mfa::Mfa;
use crate::services::sessions::Sessions;
use crate::store::Store;

/// What the HTTP API itself is configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSettings {
    /// The body limit of routes that are neither account nor content routes.
    pub body_limit_bytes: usize,
    /// Body limit of the account routes (`/api/users*`, `/api/auth/*`): small JSON only.
    pub body_limit_auth_bytes: usize,
    /// Body limit of the content routes (articles, comments): room for long Markdown.
    pub body_limit_articles_bytes: usize,
    pub request_timeout: Duration,
    /// Serve `/openapi.json` and `/docs` (default: on in development, off in production).
    pub expose_api_docs: bool,
    /// How many tags `GET /api/tags` lists at most (the most used first).
    pub tags_listed: usize,
    /// The deepest `offset` the article lists serve; deeper pages use the `after` cursor.
    pub max_list_offset: i64,
}

/// What every handler may use: the [`Shared`] parts behind one `Arc`. Axum clones the state
/// for every extractor and layer that takes it, several times per request; one reference
/// count is cheap, where copying each part's own handles (the stores, the keyrings, the
/// settings) cost about a sixth of a simple read's CPU.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The services, stores and settings handlers use. Built once at start from the settings
/// sections (see [`crate::server`]).
pub struct Shared {
    pub store: Store,
    pub hasher: PasswordHasher,
    pub tokens: TokenService,
    pub revocations: Revocations,
    /// Under the `realworld` client profile, each session's last use: a token whose session
    /// went unused longer than the idle timeout is refused. `None` under the standard profile,
    /// where the short access token and the refresh check the idle timeout.
    pub activity: Option<crate::auth::activity::Activity>,
    pub clock: Arc<dyn Clock>,
    pub rate_limiter: RateLimiter,
    /// Login's failure budgets and known devices (on top of `rate_limiter`'s buckets).
    pub login_guard: crate::defense::login_guard::LoginGuard,
    /// The tamper-evident audit trail: `state.audit.record(event).await?`.
    pub audit: AuditLog,
    /// Log in, refresh, end sessions.
    pub sessions: Sessions,
    /// TOTP enrolment, the login's second step, step-up with a code, required roles.
    pub mfa: Mfa,
    /// Create accounts; their owners and administrators change them.
    pub accounts: Accounts,
    /// Password reset, address verification and change by mail.
    pub lifecycle: crate::services::lifecycle::Lifecycle,
    /// Administrators reading the audit trail.
    pub audit_trail: AuditTrail,
    /// Per-user limits on stored content.
    pub quotas: crate::services::quotas::Quotas,
    /// Renders article and comment bodies when they are written, on a bounded pool.
    pub markdown: Renderer,
    /// Refused permissions and tokens on the audit trail, sampled.
    pub denials: Denials,
    /// This server's Prometheus registry.
    pub metrics: crate::metrics::Metrics,
    /// Signs and checks the article lists' `after` cursors.
    pub cursors: articles::cursor::CursorKey,
    /// Set when shutdown begins: readiness then answers 503.
    pub shutting_down: health::ShuttingDown,
    /// The ACME certificate state, when certificates come from ACME: `/readyz` is not ready
    /// until one is served.
    pub acme: Option<crate::acme::Acme>,
    pub http: HttpSettings,
    /// Refresh grace, idle timeout and absolute lifetime of a session.
    pub session_times: SessionTimes,
    pub cookies: cookies::CookieSettings,
    /// The origins browsers may call from: built once, shared by CORS and the CSRF check.
    pub origins: AllowedOrigins,
    /// The bearer token `GET /metrics` wants on the main listener; none: no such route.
    pub metrics_token: Option<Arc<SecretString>>,
    /// The OpenAPI document and `/docs` page this server publishes (`None` when
    /// `AERIE_EXPOSE_API_DOCS` is off).
    pub api_docs: Option<Arc<openapi::Published>>,
}

impl From<crate::audit::AuditError> for error::Error {
    /// An event that cannot be stored fails the request: an unrecorded security action is
    /// worse than a refused one.
    ///
    /// A database that is down or full is a 503, as for any other write (the writer has
    /// logged the cause).
    fn from(error: crate::audit::AuditError) -> Self {
        if error.is_unavailable() {
            return error::Error::Unavailable;
        }
        error::Error::Internal(error.to_string())
    }
}
