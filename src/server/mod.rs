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

mod admission;
mod connection;
mod database_role;
mod listeners;
pub mod signing_keys;
mod slots;
mod unread_body;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum_server::tls_rustls::RustlsConfig;
use tokio::sync::watch;

use self::admission::Admission;
use self::listeners::{bind, redirect_router, serve, stopped};
use crate::audit::alerts::Alerts;
use crate::audit::{AuditEvent, AuditLog, EventType};
use crate::auth::ClientProfile;
use crate::auth::activity::Activity;
use crate::auth::keys::Keyring;
use crate::auth::password::PasswordHasher;
use crate::auth::revocations::{self, Revocations};
use crate::auth::tokens::TokenService;
use crate::clock::Clock;
use crate::config::{Config, ConnectionLimits};
use crate::defense::cors::AllowedOrigins;
use crate::defense::login_guard::device::DEVICE_KEY_LABEL;
use crate::defense::login_guard::{DeviceKey, LoginGuard};
use crate::defense::rate_limit::{Probe, RateLimiter};
use crate::http::AppState;
use crate::http::health::ShuttingDown;
use crate::metrics::Metrics;
use crate::services::markdown::Renderer;
use crate::services::quotas::Quotas;
use crate::services::retention::Retention;
use crate::services::{Parts, Services};
use crate::store::Store;
use crate::tls::TlsFiles;

/// A bound, ready server. Built in two steps so tests can learn the ports (`127.0.0.1:0`)
/// before serving.
pub struct Server {
    main: std::net::TcpListener,
    redirect: Option<(std::net::TcpListener, Arc<str>)>,
    /// The main listener's TLS configuration, when it speaks HTTPS.
    tls: Option<RustlsConfig>,
    /// Certificate files re-read when they change (`AERIE_TLS_CERT`).
    reload: Option<(RustlsConfig, TlsFiles, Duration)>,
    /// Certificates over ACME (`AERIE_ACME_DOMAINS`), renewed by a background task.
    acme: Option<crate::acme::Acme>,
    clock: Arc<dyn Clock>,
    router: Router,
    store: Store,
    /// Other processes' revocations (other instances, the CLI), followed while it runs.
    revocation_follower: (revocations::Follower, Revocations),
    /// Session activity to write to the database in batches (`realworld` profile only).
    activity: Option<Activity>,
    limits: ConnectionLimits,
    /// Plain HTTP behind a TLS proxy: the only peers the main listener serves.
    plain_http_peers: Option<Vec<ipnet::IpNet>>,
    /// Exempt from the per-address connection cap: each carries many clients.
    trusted_proxies: Arc<[ipnet::IpNet]>,
    audit: AuditLog,
    checkpoint_interval: Duration,
    /// Deletes expired sessions and refresh tokens while the server runs.
    retention: Retention,
    /// Delivers the mail outbox while the server runs.
    mail: crate::mail::Sender,
    /// The metrics-only listener and its application.
    metrics_listener: Option<(std::net::TcpListener, Router)>,
    metrics: Metrics,
    shutting_down: ShuttingDown,
    shutdown_delay: Duration,
}

impl Server {
    /// Hands each subsystem its own settings section, builds the application state and the
    /// layer stack once, and binds every listener.
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let store = Store::connect_with_clock(&config.database, clock.clone()).await?;
        if config.database.auto_migrate {
            store.migrate().await?;
        } else {
            // Production never changes the schema on its own; say so instead of failing later
            // on a missing table.
            let pending = store
                .pending_migrations()
                .await
                .context("reading the applied migrations")?;
            if pending > 0 {
                anyhow::bail!(
                    "the database lacks {pending} migration(s) of this build and AERIE_AUTO_MIGRATE is off: run `aerie migrate` first"
                );
            }
        }
        database_role::check(&store, config.is_production()).await?;
        // Before the first request: a login by blind index would miss a row still in clear.
        let sealed = store
            .finish_field_encryption()
            .await
            .context("sealing the rows an upgrade left in clear")?;
        if sealed > 0 {
            tracing::info!(
                rows = sealed,
                "sealed rows left in clear by the upgrade to field encryption"
            );
        }
        let settings = &config.tokens;
        let keyring = Keyring::load(&settings.key_file, settings.generate_key)?;
        let public_keys = keyring.public_keys();
        let tokens = TokenService::with_keyring(
            keyring,
            settings.issuer.clone(),
            settings.audience.clone(),
            settings.access_token_ttl,
            clock.clone(),
        );
        // Under the `realworld` profile tokens last as long as sessions: their idle timeout
        // is checked on every use instead (see `auth::activity`).
        let activity = (settings.profile == ClientProfile::RealWorld)
            .then(|| Activity::new(config.sessions.idle_timeout, clock.clone()));
        let hasher = PasswordHasher::new(config.passwords.hash_concurrency)?;
        let revocations = Revocations::new(settings.access_token_ttl, clock.clone());
        let follower = revocations::subscribe(&store)
            .await
            .context("listening for session revocations")?;
        revocations
            .load(&store)
            .await
            .context("loading revoked sessions")?;
        let alerts = Alerts::from_settings(&config.alerts);
        let audit = AuditLog::open(
            store.clone(),
            &config.audit.key_file,
            config.audit.generate_key,
            clock.clone(),
        )?
        .with_alerts(alerts);
        if !audit.keys_seal_the_chain().await? {
            let problem = "AERIE_AUDIT_KEY_FILE does not hold the key that sealed the audit chain's newest row: this instance would append rows that break the chain (give it the key file the other instances use; after `aerie keys rotate-audit`, the new one)";
            if config.is_production() {
                anyhow::bail!(problem);
            }
            tracing::error!("{problem}");
        }
        signing_keys::check(&store, &audit, &public_keys, config.is_production()).await?;
        record_warnings(&config, &audit).await?;
        let reload = match &config.tls.files {
            Some(files) => Some((
                crate::tls::load(files).await?,
                files.clone(),
                config.tls.reload_interval,
            )),
            None => None,
        };
        let server = &config.server;
        let acme = config.tls.acme.clone().map(|settings| {
            let http01 = server.http_redirect_listen.is_some() && server.public_url.is_some();
            crate::acme::Acme::new(settings, http01)
        });
        let tls = match (&reload, &acme) {
            (Some((rustls, _, _)), _) => Some(rustls.clone()),
            (None, Some(acme)) => Some(acme.rustls_config()),
            (None, None) => None,
        };
        let main = bind(server.listen, "AERIE_LISTEN")?;
        let redirect = match (server.http_redirect_listen, &server.public_url) {
            (Some(address), Some(public_url)) => Some((
                bind(address, "AERIE_HTTP_REDIRECT_LISTEN")?,
                Arc::from(public_url.as_str()),
            )),
            _ => None,
        };
        let metrics_listen = config
            .metrics
            .listen
            .map(|address| bind(address, "AERIE_METRICS_LISTEN"))
            .transpose()?;
        let rate_limiter = RateLimiter::from_config(&config.rate_limits, clock.clone())?
            .with_audit(audit.clone(), clock.clone());
        check_shared_store(&rate_limiter).await?;
        let metrics = Metrics::new();
        metrics.install_as_process_fallback();
        let shutting_down = ShuttingDown::default();
        let mail = crate::mail::Sender::new(store.clone(), config.mail.clone(), audit.clone())
            .context("mail settings")?;
        if let crate::mail::Delivery::Files(dir) = &config.mail.delivery {
            tracing::info!(folder = %dir.display(), "no AERIE_SMTP_URL: mails are written as .eml files");
        }
        let services = Services::new(
            Parts {
                store: store.clone(),
                tokens: tokens.clone(),
                hasher: hasher.clone(),
                revocations: revocations.clone(),
                audit: audit.clone(),
                clock: clock.clone(),
                mail: mail.clone(),
            },
            config.sessions,
            config.passwords,
            config.accounts,
            &config.mfa.required_roles,
        );
        let retention = Retention::new(
            store.clone(),
            clock.clone(),
            config.retention,
            config.sessions,
            settings.access_token_ttl,
        );
        let quotas = Quotas::new(store.clone(), clock.clone(), config.quotas);
        let login_guard = LoginGuard::new(
            rate_limiter.clone(),
            DeviceKey::new(audit.derivation_key().derive(DEVICE_KEY_LABEL)),
        );
        crate::domain::warm_common_passwords();
        let state = AppState::new(crate::http::Shared {
            login_guard,
            rate_limiter,
            store: store.clone(),
            hasher,
            tokens,
            revocations: revocations.clone(),
            activity: activity.clone(),
            clock: clock.clone(),
            audit: audit.clone(),
            sessions: services.sessions,
            mfa: services.mfa,
            accounts: services.accounts,
            lifecycle: services.lifecycle,
            audit_trail: services.audit_trail,
            quotas,
            markdown: Renderer::new(config.content),
            denials: services.denials,
            metrics: metrics.clone(),
            cursors: crate::http::articles::cursor::CursorKey::new(
                audit
                    .derivation_key()
                    .derive(crate::http::articles::cursor::CURSOR_KEY_LABEL),
            ),
            shutting_down: shutting_down.clone(),
            acme: acme.clone(),
            http: config.http,
            session_times: config.sessions,
            cookies: config.cookies,
            origins: AllowedOrigins::new(&config.cors, server.public_url.as_deref()),
            metrics_token: config.metrics.token.clone().map(Arc::new),
            api_docs: config.http.expose_api_docs.then(|| {
                Arc::new(crate::http::openapi::Published::new(
                    crate::http::openapi::PublishedSettings {
                        metrics_route: config.metrics.token.is_some(),
                        tags_per_article: config.quotas.tags_per_article,
                        max_list_offset: config.http.max_list_offset,
                    },
                ))
            }),
        });
        let metrics_listener = metrics_listen.map(|listener| {
            (
                listener,
                crate::http::metrics::internal_router(state.clone()),
            )
        });
        let layers = crate::app::Layers::from_config(&config);
        Ok(Self {
            main,
            redirect,
            tls,
            reload,
            acme,
            clock,
            router: crate::app::router(state, &layers),
            revocation_follower: (follower, revocations),
            activity,
            store,
            limits: server.connection_limits,
            plain_http_peers: config.tls.plain_http_peers().map(<[_]>::to_vec),
            trusted_proxies: Arc::from(config.trusted_proxies.as_slice()),
            audit,
            checkpoint_interval: config.audit.checkpoint_interval,
            retention,
            mail,
            metrics_listener,
            metrics,
            shutting_down,
            shutdown_delay: server.shutdown_delay,
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
        // Each listener's admission rules and its own slots: the connection caps, trusted
        // proxies exempt from the per-address one.
        let admission = {
            let (limits, trusted, metrics) = (
                self.limits,
                self.trusted_proxies.clone(),
                self.metrics.clone(),
            );
            move || Admission::new(&limits, trusted.clone(), metrics.clone())
        };
        if let Some((listener, app)) = self.metrics_listener {
            tokio::spawn(serve(
                listener,
                app,
                stop_rx.clone(),
                self.limits,
                admission(),
                None,
            ));
        }
        let audit = self.audit.clone();
        let checkpoints = tokio::spawn(
            self.audit
                .write_checkpoints(self.checkpoint_interval, stop_rx.clone()),
        );
        tokio::spawn(self.retention.run(stop_rx.clone()));
        tokio::spawn(self.mail.run(stop_rx.clone()));
        if let Some((listener, public_url)) = self.redirect {
            tokio::spawn(serve(
                listener,
                redirect_router(public_url, self.acme.as_ref().map(|a| a.http01.clone())),
                stop_rx.clone(),
                self.limits,
                admission(),
                None,
            ));
        }
        let (follower, revocations) = self.revocation_follower;
        tokio::spawn(revocations::follow(
            follower,
            revocations,
            self.store.clone(),
            stop_rx.clone(),
        ));
        let activity_writer = self.activity.map(|activity| {
            tokio::spawn(crate::auth::activity::persist(
                activity,
                self.store.clone(),
                stop_rx.clone(),
            ))
        });
        let app = self.router;
        if let Some((rustls, files, interval)) = self.reload {
            tokio::spawn(crate::tls::watch_and_reload(
                rustls,
                files,
                interval,
                stop_rx.clone(),
            ));
        }
        if let Some(acme) = self.acme {
            tokio::spawn(self.metrics.instrument(crate::acme::manager::run(
                acme,
                audit,
                self.clock.clone(),
                self.store.clone(),
                stop_rx.clone(),
            )));
        }
        let result = match self.tls {
            Some(rustls) => {
                let admission = admission();
                serve(
                    self.main,
                    app,
                    stop_rx,
                    self.limits,
                    admission,
                    Some(rustls),
                )
                .await
            }
            None => {
                let admission = admission().only_from(self.plain_http_peers.as_deref());
                serve(self.main, app, stop_rx, self.limits, admission, None).await
            }
        };
        // The last checkpoint is written before the pool closes.
        let _ = checkpoints.await;
        // So is the last batch of session activity.
        if let Some(writer) = activity_writer {
            let _ = writer.await;
        }
        self.store.close().await;
        result
    }
}

/// One PING to Redis before serving: a certificate that is not trusted or credentials that
/// are refused are settings to fix, so the server does not start (in either mode) rather than
/// run on the failure policy until someone reads `/readyz`. A Redis that is merely down is
/// logged and the failure policy applies until it answers.
async fn check_shared_store(rate_limiter: &RateLimiter) -> anyhow::Result<()> {
    match rate_limiter
        .probe_shared_store(Duration::from_secs(2))
        .await
    {
        Some(Probe::Refused(problem)) => {
            anyhow::bail!("AERIE_REDIS_URL: {problem}")
        }
        Some(Probe::Unreachable(kind)) => {
            tracing::warn!(
                error = kind.as_str(),
                "rate-limit store (Redis) does not answer at start; AERIE_REDIS_FAILURE applies until it does"
            );
            Ok(())
        }
        Some(Probe::Answers) | None => Ok(()),
    }
}

/// Each setting that is valid but weakens a defence: a WARN line and a `config_warning`
/// audit event, so it reaches whoever reviews the trail.
async fn record_warnings(config: &Config, audit: &AuditLog) -> anyhow::Result<()> {
    for warning in crate::config::warnings(config) {
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
    Ok(())
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
