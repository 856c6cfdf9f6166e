//! Booting: connect the store, load keys, bind the listener, serve until told to stop, then
//! drain in-flight requests and close the pool.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::auth::password::PasswordHasher;
use crate::auth::tokens::{SigningKey, TokenService};
use crate::clock::Clock;
use crate::config::Config;
use crate::http::AppState;
use crate::store::Store;

/// A bound, ready server. Built in two steps so tests can learn the port (`127.0.0.1:0`)
/// before serving.
pub struct Server {
    listener: TcpListener,
    router: axum::Router,
    store: Store,
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
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("AERIE_LISTEN: cannot listen on {}", config.listen))?;
        let state = AppState {
            config: Arc::new(config),
            store: store.clone(),
            hasher,
            tokens,
            clock,
        };
        Ok(Self {
            listener,
            router: crate::app::router(state),
            store,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests
    /// finish, and closes the database pool.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let result = axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown)
            .await;
        self.store.close().await;
        result
    }
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
