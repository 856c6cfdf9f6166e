//! Booting: connect the store, load keys, bind the listeners, serve until told to stop, then
//! drain in-flight requests and close the pool.
//!
//! Listeners: the main one (`AERIE_LISTEN`) speaks HTTPS when a certificate is configured,
//! plain HTTP otherwise; the optional redirect listener (`AERIE_HTTP_REDIRECT_LISTEN`)
//! answers every plain-HTTP request with a 308 to the configured public URL; the optional
//! metrics listener (`AERIE_METRICS_LISTEN`) serves only `/metrics`.
//!
//! Shutdown (SIGTERM, Ctrl-C) first marks the server as shutting down, so `/readyz` answers
//! 503 while it keeps serving for `AERIE_SHUTDOWN_DELAY_SECS` (load balancers take it out of
//! rotation meanwhile); then the listeners stop accepting and in-flight requests finish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum_server::tls_rustls::RustlsConfig;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

use crate::audit::{AuditEvent, AuditKey, AuditLog, EventType};
use crate::auth::password::PasswordHasher;
use crate::auth::revocations::{self, Revocations};
use crate::auth::tokens::{Keyring, TokenService};
use crate::clock::Clock;
use crate::config::{Config, ConnectionLimits};
use crate::defense::rate_limit::RateLimiter;
use crate::http::AppState;
use crate::http::health::ShuttingDown;
use crate::metrics::Metrics;
use crate::services::accounts::AccountRules;
use crate::services::sessions::SessionTimes;
use crate::services::{Parts, Services};
use crate::store::Store;
use crate::tls::TlsFiles;

/// How long in-flight requests may take to finish after shutdown is requested.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A bound, ready server. Built in two steps so tests can learn the ports (`127.0.0.1:0`)
/// before serving.
pub struct Server {
    main: std::net::TcpListener,
    redirect: Option<(std::net::TcpListener, Arc<str>)>,
    tls: Option<(RustlsConfig, TlsFiles, Duration)>,
    router: Router,
    store: Store,
    /// Other instances' revocations (PostgreSQL only), followed while the server runs.
    revocation_listener: Option<(sqlx::postgres::PgListener, Revocations)>,
    limits: ConnectionLimits,
    audit: AuditLog,
    checkpoint_interval: Duration,
    /// The metrics-only listener and its application.
    metrics_listener: Option<(std::net::TcpListener, Router)>,
    metrics: Metrics,
    shutting_down: ShuttingDown,
    shutdown_delay: Duration,
}

/// How long sessions live, from the configuration.
pub fn session_times(config: &Config) -> SessionTimes {
    SessionTimes {
        refresh_grace: config.refresh_grace,
        idle_timeout: config.session_idle_timeout,
        max_lifetime: config.session_max_lifetime,
    }
}

/// The account rules, from the configuration.
pub fn account_rules(config: &Config) -> AccountRules {
    AccountRules {
        password_min_score: config.password_min_score,
        allow_http_images: !config.is_production(),
        admin_grant_max_auth_age: config.admin_grant_max_auth_age,
    }
}

impl Server {
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let store = Store::connect(&config).await?;
        if config.auto_migrate {
            store.migrate().await?;
        }
        let keyring = Keyring::load(&config.signing_key_file, config.generate_signing_key)?;
        let tokens = TokenService::with_keyring(
            keyring,
            config.token_issuer.clone(),
            config.token_audience.clone(),
            config.access_token_ttl,
            clock.clone(),
        );
        let hasher = PasswordHasher::new(config.password_hash_concurrency)?;
        let revocations = Revocations::new(config.access_token_ttl, clock.clone());
        let listener = revocations::subscribe(&store)
            .await
            .context("listening for session revocations")?;
        revocations
            .load(&store)
            .await
            .context("loading revoked sessions")?;
        let audit_key =
            AuditKey::load_or_generate(&config.audit_key_file, config.generate_audit_key)?;
        let alerts = crate::audit::alerts::Alerts::from_config(&config);
        let audit = AuditLog::new(store.clone(), audit_key, clock.clone()).with_alerts(alerts);
        for warning in crate::startup_checks::warnings(&config) {
            tracing::warn!(
                setting = warning.setting,
                "configuration: {}",
                warning.message
            );
            let detail = serde_json::json!({
                "setting": warning.setting,
                "message": warning.message,
            });
            audit
                .record(AuditEvent::new(EventType::ConfigWarning).detail(detail))
                .await?;
        }
        let checkpoint_interval = config.audit_checkpoint_interval;
        let tls = match &config.tls {
            Some(files) => Some((
                crate::tls::load(files).await?,
                files.clone(),
                config.tls_reload_interval,
            )),
            None => None,
        };
        let main = bind(config.listen, "AERIE_LISTEN")?;
        let redirect = match (config.http_redirect_listen, &config.public_url) {
            (Some(address), Some(public_url)) => Some((
                bind(address, "AERIE_HTTP_REDIRECT_LISTEN")?,
                Arc::from(public_url.as_str()),
            )),
            _ => None,
        };
        let metrics_listen = config
            .metrics_listen
            .map(|address| bind(address, "AERIE_METRICS_LISTEN"))
            .transpose()?;
        let rate_limiter = RateLimiter::from_config(&config.rate_limits, clock.clone())?
            .with_audit(audit.clone(), clock.clone());
        let limits = config.connection_limits;
        let shutdown_delay = config.shutdown_delay;
        let metrics = Metrics::new();
        metrics.install_as_process_fallback();
        let shutting_down = ShuttingDown::default();
        let services = Services::new(
            Parts {
                store: store.clone(),
                tokens: tokens.clone(),
                hasher: hasher.clone(),
                revocations: revocations.clone(),
                audit: audit.clone(),
                clock: clock.clone(),
            },
            session_times(&config),
            account_rules(&config),
        );
        let state = AppState {
            rate_limiter,
            config: Arc::new(config),
            store: store.clone(),
            hasher,
            tokens,
            revocations: revocations.clone(),
            clock,
            audit: audit.clone(),
            sessions: services.sessions,
            accounts: services.accounts,
            audit_trail: services.audit_trail,
            metrics: metrics.clone(),
            shutting_down: shutting_down.clone(),
        };
        let metrics_listener = metrics_listen.map(|listener| {
            (
                listener,
                crate::http::metrics::internal_router(state.clone()),
            )
        });
        Ok(Self {
            main,
            redirect,
            tls,
            router: crate::app::router(state),
            revocation_listener: listener.map(|listener| (listener, revocations)),
            store,
            limits,
            audit,
            checkpoint_interval,
            metrics_listener,
            metrics,
            shutting_down,
            shutdown_delay,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.main.local_addr()
    }

    /// The redirect listener's address, when one is configured.
    pub fn redirect_addr(&self) -> Option<SocketAddr> {
        self.redirect
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// The metrics listener's address, when one is configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// Serves until `shutdown` completes; then readiness fails for the shutdown delay while
    /// serving goes on, then the listeners stop accepting, in-flight requests finish (up to
    /// 30 s), and the database pool closes.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (shutting_down, delay) = (self.shutting_down.clone(), self.shutdown_delay);
        tokio::spawn(async move {
            shutdown.await;
            shutting_down.begin();
            if !delay.is_zero() {
                tracing::info!(
                    delay_secs = delay.as_secs(),
                    "shutting down: /readyz answers 503; still serving until the delay ends"
                );
                tokio::time::sleep(delay).await;
            }
            let _ = stop_tx.send(true);
        });
        tokio::spawn(fold_histograms(self.metrics.clone(), stop_rx.clone()));
        if let Some((listener, app)) = self.metrics_listener {
            tokio::spawn(serve_plain(listener, app, stop_rx.clone(), self.limits));
        }
        let checkpoints = tokio::spawn(
            self.audit
                .write_checkpoints(self.checkpoint_interval, stop_rx.clone()),
        );
        if let Some((listener, public_url)) = self.redirect {
            tokio::spawn(serve_plain(
                listener,
                redirect_router(public_url),
                stop_rx.clone(),
                self.limits,
            ));
        }
        if let Some((listener, revocations)) = self.revocation_listener {
            tokio::spawn(revocations::follow(
                listener,
                revocations,
                self.store.clone(),
                stop_rx.clone(),
            ));
        }
        let app = self.router;
        let result = match self.tls {
            Some((rustls, files, interval)) => {
                tokio::spawn(crate::tls::watch_and_reload(
                    rustls.clone(),
                    files,
                    interval,
                    stop_rx.clone(),
                ));
                serve_tls(self.main, app, rustls, stop_rx, self.limits).await
            }
            None => serve_plain(self.main, app, stop_rx, self.limits).await,
        };
        // The last checkpoint is written before the pool closes.
        let _ = checkpoints.await;
        self.store.close().await;
        result
    }
}

fn bind(address: SocketAddr, setting: &str) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(address)
        .with_context(|| format!("{setting}: cannot listen on {address}"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Keeps the registry's histogram memory flat between scrapes.
async fn fold_histograms(metrics: Metrics, stop: watch::Receiver<bool>) {
    let mut stop = std::pin::pin!(stopped(stop));
    loop {
        tokio::select! {
            () = tokio::time::sleep(crate::metrics::UPKEEP_INTERVAL) => metrics.run_upkeep(),
            () = &mut stop => return,
        }
    }
}

/// The plain-HTTP accept loop. Each connection holds one of `max_connections` permits, so a
/// connection flood queues in the kernel instead of exhausting memory and file descriptors;
/// hyper cuts off a client that has not sent its headers within `header_read_timeout`
/// (slowloris) and answers 431 to too many or too large headers.
async fn serve_plain(
    listener: std::net::TcpListener,
    app: Router,
    stop: watch::Receiver<bool>,
    limits: ConnectionLimits,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stop = std::pin::pin!(stopped(stop));
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.map_err(std::io::Error::other)?,
            () = &mut stop => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or a client that reset during accept: back
                    // off briefly instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(axum::body::Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(request)
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_headers(limits.max_headers)
            .max_buf_size(limits.max_header_bytes)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {},
        () = tokio::time::sleep(DRAIN_TIMEOUT) => {},
    }
    Ok(())
}

/// The HTTPS listener (axum-server): the same header-read timeout and header bounds as the
/// plain one; axum-server has no connection cap of its own.
async fn serve_tls(
    listener: std::net::TcpListener,
    app: Router,
    rustls: RustlsConfig,
    stop: watch::Receiver<bool>,
    limits: ConnectionLimits,
) -> std::io::Result<()> {
    let handle = axum_server::Handle::new();
    let drain = handle.clone();
    tokio::spawn(async move {
        stopped(stop).await;
        drain.graceful_shutdown(Some(DRAIN_TIMEOUT));
    });
    let mut server = axum_server::from_tcp_rustls(listener, rustls)?;
    server
        .http_builder()
        .http1()
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_header_bytes);
    server
        .handle(handle)
        .serve(app.into_make_service_with_connect_info::<SocketAddr>())
        .await
}

/// The plain-HTTP listener: `/healthz` for load balancers, a 308 to HTTPS for everything
/// else. The target comes from `AERIE_PUBLIC_URL`, never from the request's `Host` header,
/// so it cannot be turned into an open redirect.
fn redirect_router(public_url: Arc<str>) -> Router {
    Router::new()
        .route(
            "/healthz",
            axum::routing::get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }),
        )
        .fallback(redirect_to_https)
        .layer(axum::middleware::from_fn_with_state(
            None,
            crate::defense::headers::security_headers,
        ))
        .with_state(public_url)
}

async fn redirect_to_https(State(public_url): State<Arc<str>>, uri: Uri) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let location = format!("{public_url}{path}");
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, location)],
    )
        .into_response()
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested: draining in-flight requests");
}
