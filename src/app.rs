//! The application: every route, and the layer stack each request passes through.
//!
//! Layers, outermost first: the edge (every response counted by route template and status and
//! fed to the repeated-5xx alert, security headers and the request id on every response
//! whoever produced it, the client's request id kept when well formed and a fresh one
//! otherwise, credentials marked sensitive, the client IP resolved from trusted proxies
//! only); tracing; CORS; answers shaped (an HTTP/1.1 request without exactly one `Host`
//! refused with 400, error bodies normalized); panics caught and answered 500; the global
//! per-IP rate limit; a request timeout. Tighter rate-limit policies sit on the routes that
//! need them, and the access table ([`crate::http::access`]) and each route group's body limit
//! innermost on the routes, so no handler runs before its route's rule is checked and no
//! body is read past its group's limit. (No body limit around the whole stack: every route
//! that reads a body is in a group, and an outer one repeated the group's work on every
//! request, 2.7 % of an article read's instructions; BENCHMARKS.md, bare-server section.)
//! Each resource module declares its routes; this file reads as the API's table of contents.
//!
//! Why some layers are one, and hand-written: an `axum::middleware::from_fn` layer costs every
//! request a clone of the whole stack beneath it and two allocations, so the small steps that
//! sit next to each other run in one layer each (the edge, the shaping), in the order they had
//! as layers, and those two, the global rate limit and the access table are tower services
//! that call the stack in place (BENCHMARKS.md, "Fewer, flatter layers", "Layers that call
//! the stack in place" and "The access table as a service").

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode};
use ipnet::IpNet;
use tower::ServiceBuilder;
use tower_http::timeout::TimeoutLayer;

use crate::config::Config;
use crate::defense::rate_limit;
use crate::http::edge::{Edge, EdgeSettings};
use crate::http::error::{Error, refusal_response};
use crate::http::observe::RequestObserver;
use crate::http::shaping::ShapeAnswers;
use crate::http::{
    AppState, HttpSettings, admin, articles, auth, comments, health, keys, lifecycle, mfa, openapi,
    profiles, tags, users,
};
use crate::stack::InPlace;

/// What the outer layers are built from that no handler needs: decided once at start.
#[derive(Clone)]
pub struct Layers {
    /// `Strict-Transport-Security`, when clients reach the server over HTTPS.
    pub hsts: Option<HeaderValue>,
    /// Proxies whose forwarding headers name the client.
    pub trusted_proxies: Arc<[IpNet]>,
}

impl Layers {
    pub fn from_config(config: &Config) -> Self {
        Self {
            hsts: config
                .tls
                .sends_hsts()
                .then(|| crate::defense::headers::hsts(config.tls.hsts_preload)),
            trusted_proxies: config.trusted_proxies.clone().into(),
        }
    }
}

pub fn router(state: AppState, layers: &Layers) -> Router {
    let metrics = crate::http::metrics::router(&state);
    // Empty when the metrics are served on their own listener (axum refuses a route layer
    // with nothing to wrap).
    let metrics = if metrics.has_routes() {
        guarded(metrics, state.http.body_limit_bytes, &state)
    } else {
        metrics
    };
    let routes = api_routes(&state.http, |group, body_limit| {
        guarded(group, body_limit, &state)
    });
    with_layers(routes.merge(metrics), state, layers)
}

/// Routes, each group with its body limit: account routes take small JSON, content routes
/// long Markdown, the rest `AERIE_BODY_LIMIT_BYTES`. `guard` puts a group behind its layer
/// ([`guarded`]; a test leaves the access table out of it).
fn api_routes(
    settings: &HttpSettings,
    guard: impl Fn(Router<AppState>, usize) -> Router<AppState>,
) -> Router<AppState> {
    let account = settings.body_limit_auth_bytes;
    let content = settings.body_limit_articles_bytes;
    let other = settings.body_limit_bytes;
    Router::new()
        .merge(guard(users::router(), account))
        .merge(guard(auth::router(), account))
        .merge(guard(mfa::router(), account))
        .merge(guard(lifecycle::router(), account))
        .merge(guard(keys::router(), other))
        .merge(guard(profiles::router(), other))
        .merge(guard(articles::router(), content))
        .merge(guard(comments::router(), content))
        .merge(guard(tags::router(), other))
        .merge(guard(admin::router(), other))
        .merge(guard(health::router(), other))
        .merge(guard(openapi::router(), other))
        .fallback(|| async { Error::NotFound("route") })
}

/// A route group behind the access table (so no handler runs before its route's rule is
/// checked) and its own body limit: a declared `Content-Length` over it is a 413 before any
/// of the body is read (the access step checks it), and a chunked body is cut off at it while
/// being buffered (`DefaultBodyLimit`, which axum's body extractors obey).
///
/// One route layer for both: axum boxes every route again at each `layer` or `route_layer`
/// call, and each request clones those boxes with everything beneath them and boxes each
/// level's future; a level fewer is five allocations fewer per request (BENCHMARKS.md,
/// "Layers that call the stack in place").
fn guarded(routes: Router<AppState>, body_limit: usize, state: &AppState) -> Router<AppState> {
    let access = crate::http::access::Enforce {
        state: state.clone(),
        body_limit: u64::try_from(body_limit).unwrap_or(u64::MAX),
    };
    routes.route_layer(
        ServiceBuilder::new()
            .layer(InPlace(access))
            .layer(DefaultBodyLimit::max(body_limit)),
    )
}

/// Wraps routes in the layer stack. Public so tests can put routes that misbehave on
/// purpose (a panicking handler) behind exactly the layers production uses.
pub fn with_layers(routes: Router<AppState>, state: AppState, layers: &Layers) -> Router {
    let timeout = state.http.request_timeout;
    let cors = crate::defense::cors::layer(state.origins.clone());
    let limits = rate_limit::Enforcement::new(state.rate_limiter.clone(), refusal_response);
    let edge = Edge::new(EdgeSettings {
        observer: RequestObserver {
            metrics: state.metrics.clone(),
            alerts: state.audit.alerts().cloned(),
            clock: state.clock.clone(),
        },
        hsts: layers.hsts.clone(),
        trusted_proxies: layers.trusted_proxies.clone(),
    });
    routes
        .layer(
            ServiceBuilder::new()
                .layer(InPlace(edge))
                .layer(cors)
                .layer(InPlace(ShapeAnswers))
                .layer(InPlace(rate_limit::Global(limits)))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::SERVICE_UNAVAILABLE,
                    timeout,
                )),
        )
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use axum::body::Body;
    use axum::extract::Request;
    use axum::http::header;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;
    use crate::auth::keys::SigningKey;
    use crate::auth::password::PasswordHasher;
    use crate::auth::tokens::TokenService;
    use crate::clock::SystemClock;
    use crate::defense::cors::AllowedOrigins;
    use crate::store::Store;

    /// A server's state on a fresh SQLite database in `dir`, and its layers.
    async fn test_state(dir: &tempfile::TempDir) -> (AppState, Layers) {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let config = Config::from_vars([
            ("AERIE_DATABASE_URL", url.as_str()),
            ("AERIE_DATA_DIR", &dir.path().display().to_string()),
        ])
        .expect("valid configuration");
        let clock: Arc<dyn crate::clock::Clock> = Arc::new(SystemClock);
        let store = Store::connect(&config.database).await.expect("store opens");
        let audit = crate::audit::AuditLog::open(
            store.clone(),
            &dir.path().join("audit-key"),
            true,
            clock.clone(),
        )
        .expect("audit key");
        let hasher = PasswordHasher::new(1).expect("hasher");
        let tokens = TokenService::new(
            SigningKey::generate(),
            "aerie".into(),
            "aerie-api".into(),
            Duration::from_secs(900),
            clock.clone(),
        );
        let revocations =
            crate::auth::revocations::Revocations::new(Duration::from_secs(900), clock.clone());
        let services = crate::services::Services::new(
            crate::services::Parts {
                store: store.clone(),
                tokens: tokens.clone(),
                hasher: hasher.clone(),
                revocations: revocations.clone(),
                audit: audit.clone(),
                clock: clock.clone(),
                mail: crate::mail::Sender::new(
                    store.clone(),
                    crate::mail::MailSettings::default(),
                    audit.clone(),
                )
                .expect("mail off builds"),
            },
            config.sessions,
            config.passwords,
            config.accounts,
            &config.mfa.required_roles,
        );
        let cursors = crate::http::articles::cursor::CursorKey::new(
            audit
                .derivation_key()
                .derive(crate::http::articles::cursor::CURSOR_KEY_LABEL),
        );
        let rate_limiter =
            crate::defense::rate_limit::RateLimiter::new(&config.rate_limits, clock.clone());
        let state = AppState::new(crate::http::Shared {
            audit,
            cursors,
            store: store.clone(),
            hasher,
            tokens,
            revocations,
            activity: None,
            sessions: services.sessions,
            mfa: services.mfa,
            accounts: services.accounts,
            lifecycle: services.lifecycle,
            audit_trail: services.audit_trail,
            quotas: crate::services::quotas::Quotas::new(
                store.clone(),
                clock.clone(),
                config.quotas,
            ),
            markdown: crate::services::markdown::Renderer::new(config.content),
            denials: services.denials,
            rate_limiter: rate_limiter.clone(),
            login_guard: crate::defense::login_guard::LoginGuard::new(
                rate_limiter,
                crate::defense::login_guard::DeviceKey::new([9; 32]),
            ),
            clock,
            metrics: crate::metrics::Metrics::new(),
            shutting_down: Default::default(),
            acme: None,
            http: config.http,
            session_times: config.sessions,
            cookies: config.cookies,
            origins: AllowedOrigins::new(&config.cors, config.server.public_url.as_deref()),
            metrics_token: None,
            api_docs: None,
        });
        (state, Layers::from_config(&config))
    }

    /// The production layer stack around routes that fail on purpose.
    async fn failing_app(dir: &tempfile::TempDir) -> Router {
        let (state, layers) = test_state(dir).await;
        let routes = Router::new()
            .route("/panic", get(panicking_handler))
            .route(
                "/internal",
                get(|| async {
                    Err::<(), _>(Error::Internal(
                        "database: error returned from database: syntax error at or near \"FROM\" (src/store/content.rs)".into(),
                    ))
                }),
            );
        with_layers(routes, state, &layers)
    }

    /// Defence in depth: the access table guards every route, and each handler guards
    /// itself again with `AuthUser` or `Require<P>`. With the table taken away, every
    /// non-public route must still refuse anonymous callers (401) and, when it needs a
    /// permission plain users lack, a plain user (403); so dropping a handler's guard fails
    /// here even though the table would still have caught the request.
    #[tokio::test]
    async fn handlers_refuse_on_their_own_without_the_access_table() {
        use crate::domain::Role;
        use crate::http::access::{Access, ROUTES};

        let dir = tempfile::tempdir().expect("tempdir");
        let (state, layers) = test_state(&dir).await;
        let user = state.tokens.issue(1, "a-live-session", Role::User, 0);
        let body_limit_only =
            |group: Router<AppState>, limit| group.layer(DefaultBodyLimit::max(limit));
        let bare = with_layers(
            api_routes(&state.http, body_limit_only),
            state.clone(),
            &layers,
        );
        let send = |rule: &crate::http::access::RouteRule, token: Option<&str>| {
            let path = rule
                .path
                .replace("{username}", "someone")
                .replace("{slug}", "some-slug")
                .replace("{id}", "1");
            let mut request = Request::builder()
                .method(rule.method.clone())
                .uri(path)
                .header(header::HOST, "localhost")
                .header(header::CONTENT_TYPE, "application/json");
            if let Some(token) = token {
                request = request.header(header::AUTHORIZATION, format!("Token {token}"));
            }
            let request = request.body(Body::from("{}")).expect("request");
            let app = bare.clone();
            async move { app.oneshot(request).await.expect("infallible").status() }
        };
        for rule in ROUTES {
            let needs = match rule.access {
                // The metrics route is served beside the API, not in it (see `router`).
                Access::Public | Access::MetricsToken => continue,
                Access::Authenticated => None,
                Access::Permission(permission) => Some(permission),
            };
            let what = format!("{} {}", rule.method, rule.path);
            assert_eq!(send(rule, None).await, StatusCode::UNAUTHORIZED, "{what}");
            if needs.is_some_and(|permission| !Role::User.can(permission)) {
                assert_eq!(
                    send(rule, Some(&user)).await,
                    StatusCode::FORBIDDEN,
                    "{what}"
                );
            }
        }
    }

    async fn panicking_handler() -> &'static str {
        panic!("thread panicked at src/store/mod.rs:42: sqlx SELECT * FROM users")
    }

    async fn call(
        app: Router,
        path: &str,
        request_id: Option<&str>,
    ) -> (StatusCode, String, serde_json::Value) {
        let mut request = Request::builder()
            .uri(path)
            .header(header::HOST, "localhost");
        if let Some(id) = request_id {
            request = request.header("x-request-id", id);
        }
        let response = app
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let (_, body) = crate::http::answers_for_tests::status_and_json(response).await;
        (status, id, body)
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_a_bare_500_with_the_request_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = failing_app(&dir).await;
        for path in ["/panic", "/internal"] {
            let (status, id, body) = call(app.clone(), path, Some("support-ticket-1")).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
            assert_eq!(id, "support-ticket-1", "{path}");
            assert_eq!(
                body,
                serde_json::json!({"errors": {"body": ["internal error"]}, "requestId": "support-ticket-1"}),
                "{path}: the cause must stay in the log"
            );
            let (status, id, body) = call(app.clone(), path, None).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
            assert!(!id.is_empty(), "{path}: a generated request id");
            assert_eq!(body["requestId"], id.as_str(), "{path}");
            assert_eq!(
                body["errors"],
                serde_json::json!({"body": ["internal error"]})
            );
        }
    }
}
