//! Booting: connect the store, load keys, bind the listeners, serve until told to stop, then
//! drain in-flight requests and close the pool.
//!
//! Listeners: the main one (`AERIE_LISTEN`) speaks HTTPS when a certificate is configured,
//! plain HTTP otherwise; the optional redirect listener (`AERIE_HTTP_REDIRECT_LISTEN`)
//! answers every plain-HTTP request with a 308 to the configured public URL.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum_server::tls_rustls::RustlsConfig;
use tokio::sync::watch;

use crate::audit::{AuditKey, AuditLog};
use crate::auth::password::PasswordHasher;
use crate::auth::tokens::{SigningKey, TokenService};
use crate::clock::Clock;
use crate::config::Config;
use crate::http::AppState;
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
    audit: AuditLog,
    checkpoint_interval: Duration,
}

impl Server {
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let store = Store::connect(&config).await?;
        if config.auto_migrate {
            store.migrate().await?;
        }
        let key =
            SigningKey::load_or_generate(&config.signing_key_file, config.generate_signing_key)?;
        let tokens = TokenService::new(
            key,
            config.token_issuer.clone(),
            config.token_audience.clone(),
            config.access_token_ttl,
            clock.clone(),
        );
        let hasher = PasswordHasher::new(config.password_hash_concurrency)?;
        let audit_key =
            AuditKey::load_or_generate(&config.audit_key_file, config.generate_audit_key)?;
        let alerts = crate::audit::alerts::Alerts::from_config(&config);
        let audit = AuditLog::new(store.clone(), audit_key, clock.clone()).with_alerts(alerts);
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
        let state = AppState {
            config: Arc::new(config),
            store: store.clone(),
            hasher,
            tokens,
            clock,
            audit: audit.clone(),
        };
        Ok(Self {
            main,
            redirect,
            tls,
            router: crate::app::router(state),
            store,
            audit,
            checkpoint_interval,
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

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests
    /// finish (up to 30 s), and closes the database pool.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let checkpoints = tokio::spawn(
            self.audit
                .write_checkpoints(self.checkpoint_interval, stop_rx.clone()),
        );
        if let Some((listener, public_url)) = self.redirect {
            tokio::spawn(serve_plain(
                listener,
                redirect_router(public_url),
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
                serve_tls(self.main, app, rustls, stop_rx).await
            }
            None => serve_plain(self.main, app, stop_rx).await,
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

async fn serve_plain(
    listener: std::net::TcpListener,
    app: Router,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(stopped(stop))
        .await
}

async fn serve_tls(
    listener: std::net::TcpListener,
    app: Router,
    rustls: RustlsConfig,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let handle = axum_server::Handle::new();
    let drain = handle.clone();
    tokio::spawn(async move {
        stopped(stop).await;
        drain.graceful_shutdown(Some(DRAIN_TIMEOUT));
    });
    axum_server::from_tcp_rustls(listener, rustls)?
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
