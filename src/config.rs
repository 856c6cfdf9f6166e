//! Typed configuration, read once at start from `AERIE_*` environment variables, an optional
//! TOML file and (in development) a `.env` file, then validated. Every error names the setting
//! at fault. Production refuses to start on a missing secret or an unsafe default, so a
//! forgotten variable cannot silently ship a development setup.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::defense::rate_limit::redis::{RedisSettings, StoreFailure};
use crate::defense::rate_limit::{Policy, Rate, RateLimits};
use crate::tls::TlsFiles;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

/// `AERIE_COOKIE_MODE`: whether browsers may hold their tokens in `HttpOnly` cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieMode {
    /// Cookies are never set and never read: every client sends `Authorization`.
    Off,
    /// A client asks for cookies per login, register or refresh (`X-Aerie-Client: browser`).
    OptIn,
    /// Every login, register and refresh answers with cookies and no tokens in the body.
    Always,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The validated configuration. Build it with [`Config::load`] (process environment, files)
/// or [`Config::from_vars`] (an explicit map, for tests and tools).
#[derive(Debug, Clone)]
pub struct Config {
    pub env: Environment,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// May carry a database password, hence secret.
    pub database_url: SecretString,
    pub database_max_connections: u32,
    /// Apply pending migrations when the server starts (development default).
    pub auto_migrate: bool,
    /// PKCS#8 PEM file holding the Ed25519 key that signs access tokens.
    pub signing_key_file: PathBuf,
    /// Generate the signing key when the file is missing (development only).
    pub generate_signing_key: bool,
    pub token_issuer: String,
    pub token_audience: String,
    pub access_token_ttl: Duration,
    /// How long after a refresh token was rotated it may still be presented (a concurrent
    /// refresh from the same client) before that counts as reuse and kills the session.
    pub refresh_grace: Duration,
    /// A session not refreshed for this long is over.
    pub session_idle_timeout: Duration,
    /// A session is over this long after login, however active.
    pub session_max_lifetime: Duration,
    /// How many argon2 computations may run at once; the rest queue, so a login flood
    /// cannot take every core from other requests.
    pub password_hash_concurrency: usize,
    /// Minimum zxcvbn score (0–4) for a new password.
    pub password_min_score: u8,
    pub body_limit_bytes: usize,
    /// Body limit of the account routes (`/api/users*`, `/api/auth/*`): small JSON only.
    pub body_limit_auth_bytes: usize,
    /// Body limit of the content routes (articles, comments): room for long Markdown.
    pub body_limit_articles_bytes: usize,
    pub request_timeout: Duration,
    pub log_format: LogFormat,
    pub log_filter: String,
    /// Browser origins allowed to call the API cross-origin (exact `scheme://host[:port]`).
    pub cors_origins: Vec<String>,
    /// When login, register and refresh deliver tokens in cookies instead of the body.
    pub cookie_mode: CookieMode,
    /// When set, the main listener speaks HTTPS with this certificate and key.
    pub tls: Option<TlsFiles>,
    /// How often the certificate files are checked for changes.
    pub tls_reload_interval: Duration,
    /// A plain-HTTP listener that only redirects to `public_url` (and serves `/healthz`).
    pub http_redirect_listen: Option<SocketAddr>,
    /// The public `https://` base URL; redirects are built from it, never from `Host`.
    pub public_url: Option<String>,
    /// TLS ends at a proxy in these networks; plain HTTP is then acceptable in production.
    pub tls_terminated_by_proxy: Vec<IpNet>,
    /// Add `preload` to HSTS (only once the domain is ready for the browsers' preload lists).
    pub hsts_preload: bool,
    /// 32 random bytes that key the audit chain's HMAC; never stored in the database.
    pub audit_key_file: PathBuf,
    /// Generate the audit key when the file is missing (development only).
    pub generate_audit_key: bool,
    /// How often the audit chain head is written to the log as a checkpoint.
    pub audit_checkpoint_interval: Duration,
    /// Where alerts are POSTed as JSON, in addition to the log.
    pub alert_webhook: Option<String>,
    /// Failed logins for one account or one client address within the window that raise an
    /// alert.
    pub alert_failed_logins: u32,
    pub alert_failed_login_window: Duration,
    /// Responses with status ≥ 500 within the window that raise one alert.
    pub alert_5xx_threshold: u32,
    pub alert_5xx_window: Duration,
    /// The bearer token that `GET /metrics` on the main listener requires; without one, the
    /// route does not exist.
    pub metrics_token: Option<SecretString>,
    /// A separate listener (loopback or an internal interface) that serves only `/metrics`,
    /// without a token.
    pub metrics_listen: Option<SocketAddr>,
    /// After SIGTERM/Ctrl-C, how long the server keeps serving with `/readyz` answering 503
    /// (so load balancers take it out of rotation) before it stops accepting and drains.
    pub shutdown_delay: Duration,
    /// Granting the admin role needs a login at most this old.
    pub admin_grant_max_auth_age: Duration,
    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Rate-limit policies and the allowlist that skips them.
    pub rate_limits: RateLimits,
    /// What one connection may cost before its request reaches the router.
    pub connection_limits: ConnectionLimits,
    /// Serve `/openapi.json` and `/docs` (default: on in development, off in production).
    pub expose_api_docs: bool,
}

/// Bounds enforced by the listener, before any request is parsed into the router: a slow or
/// bloated client is cut off here without holding a task, a buffer or a slot for long.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Open connections served at once; further clients wait in the kernel's backlog.
    pub max_connections: usize,
    /// A client must finish sending a request's headers within this (slowloris).
    pub header_read_timeout: Duration,
    /// Header fields per request; more is a 431.
    pub max_headers: usize,
    /// Bytes of request line and headers; more is a 431.
    pub max_header_bytes: usize,
}

/// What the sources may say, before validation. Every field is a plain string or number so
/// that environment variables and TOML deserialize the same way.
#[derive(Debug, Default, Deserialize)]
struct RawSettings {
    env: Option<String>,
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    database_max_connections: Option<u32>,
    auto_migrate: Option<bool>,
    signing_key_file: Option<PathBuf>,
    token_issuer: Option<String>,
    token_audience: Option<String>,
    access_token_ttl_secs: Option<u64>,
    refresh_grace_secs: Option<u64>,
    session_idle_timeout_secs: Option<u64>,
    session_max_lifetime_secs: Option<u64>,
    password_hash_concurrency: Option<usize>,
    password_min_score: Option<u8>,
    body_limit_bytes: Option<usize>,
    body_limit_auth_bytes: Option<usize>,
    body_limit_articles_bytes: Option<usize>,
    request_timeout_secs: Option<u64>,
    log_format: Option<String>,
    log: Option<String>,
    cors_origins: Option<String>,
    cookie_mode: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_reload_interval_secs: Option<u64>,
    http_redirect_listen: Option<String>,
    public_url: Option<String>,
    tls_terminated_by_proxy: Option<String>,
    hsts_preload: Option<bool>,
    audit_key_file: Option<PathBuf>,
    audit_checkpoint_secs: Option<u64>,
    alert_webhook: Option<String>,
    alert_failed_logins: Option<u32>,
    alert_failed_login_window_secs: Option<u64>,
    alert_5xx_threshold: Option<u32>,
    alert_5xx_window_secs: Option<u64>,
    metrics_token: Option<String>,
    metrics_token_file: Option<PathBuf>,
    metrics_listen: Option<String>,
    shutdown_delay_secs: Option<u64>,
    admin_grant_max_auth_age_secs: Option<u64>,
    trusted_proxies: Option<String>,
    rate_limit_allowlist: Option<String>,
    rate_limit_global: Option<String>,
    rate_limit_login_ip: Option<String>,
    rate_limit_login_account: Option<String>,
    rate_limit_register: Option<String>,
    rate_limit_refresh: Option<String>,
    rate_limit_mfa: Option<String>,
    rate_limit_writes: Option<String>,
    redis_url: Option<String>,
    redis_prefix: Option<String>,
    redis_timeout_ms: Option<u64>,
    redis_failure: Option<String>,
    max_connections: Option<usize>,
    header_read_timeout_secs: Option<u64>,
    max_headers: Option<usize>,
    max_header_bytes: Option<usize>,
    expose_api_docs: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    fn setting(name: &str, problem: impl std::fmt::Display) -> Self {
        Self(format!("{name}: {problem}"))
    }
}

impl Config {
    /// Reads the process environment, `.env` (unless the environment says production) and the
    /// TOML file named by `AERIE_CONFIG` (default `./aerie.toml`, if present).
    pub fn load() -> Result<Self, ConfigError> {
        let mut vars: HashMap<String, String> = std::env::vars().collect();
        let production_from_env = vars.get("AERIE_ENV").is_some_and(|v| v == "production");
        if !production_from_env {
            merge_dotenv(&mut vars, Path::new(".env"))?;
        }
        let explicit_file = vars.get("AERIE_CONFIG").map(PathBuf::from);
        let file = explicit_file
            .clone()
            .unwrap_or_else(|| PathBuf::from("aerie.toml"));
        Self::build(vars, Some((&file, explicit_file.is_some())))
    }

    /// Builds a configuration from `AERIE_*` variables alone.
    pub fn from_vars<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ConfigError> {
        let vars = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Self::build(vars, None)
    }

    fn build(
        vars: HashMap<String, String>,
        file: Option<(&Path, bool)>,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some((path, required)) = file {
            builder = builder.add_source(
                config::File::from(path)
                    .format(config::FileFormat::Toml)
                    .required(required),
            );
        }
        let env_vars: HashMap<String, String> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with("AERIE_") && !k.starts_with("AERIE_TEST_"))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("AERIE")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .source(Some(env_vars)),
        );
        let raw: RawSettings = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError(e.to_string()))?;
        Self::validate(raw)
    }

    fn validate(raw: RawSettings) -> Result<Self, ConfigError> {
        let env = match raw.env.as_deref() {
            None | Some("development") => Environment::Development,
            Some("production") => Environment::Production,
            Some(other) => {
                return Err(ConfigError::setting(
                    "AERIE_ENV",
                    format!("'{other}' is neither 'development' nor 'production'"),
                ));
            }
        };
        let production = env == Environment::Production;
        let listen_text = raw.listen.as_deref().unwrap_or("127.0.0.1:8080");
        let listen = listen_text.parse().map_err(|_| {
            ConfigError::setting(
                "AERIE_LISTEN",
                format!("'{listen_text}' is not an address:port"),
            )
        })?;
        let data_dir = raw.data_dir.unwrap_or_else(|| PathBuf::from("data"));
        let database_url = match raw.database_url {
            Some(url) => url,
            None if production => {
                return Err(ConfigError::setting(
                    "AERIE_DATABASE_URL",
                    "required in production (sqlite://... or postgres://...)",
                ));
            }
            None => format!("sqlite://{}?mode=rwc", data_dir.join("aerie.db").display()),
        };
        if !(database_url.starts_with("sqlite:") || database_url.starts_with("postgres")) {
            return Err(ConfigError::setting(
                "AERIE_DATABASE_URL",
                "must start with sqlite:// or postgres://",
            ));
        }
        let signing_key_file = match raw.signing_key_file {
            Some(path) => path,
            None if production => {
                return Err(ConfigError::setting(
                    "AERIE_SIGNING_KEY_FILE",
                    "required in production (create one with `aerie keys generate --out FILE`)",
                ));
            }
            None => data_dir.join("signing-key.pem"),
        };
        let password_min_score = raw.password_min_score.unwrap_or(3);
        if password_min_score > 4 || (production && password_min_score < 3) {
            return Err(ConfigError::setting(
                "AERIE_PASSWORD_MIN_SCORE",
                "must be 0–4, and at least 3 in production",
            ));
        }
        let access_token_ttl_secs = raw.access_token_ttl_secs.unwrap_or(15 * 60);
        if !(60..=3600).contains(&access_token_ttl_secs) {
            return Err(ConfigError::setting(
                "AERIE_ACCESS_TOKEN_TTL_SECS",
                "must be between 60 and 3600 seconds",
            ));
        }
        let sessions = SessionTimes::validate(
            [
                raw.refresh_grace_secs,
                raw.session_idle_timeout_secs,
                raw.session_max_lifetime_secs,
            ],
            access_token_ttl_secs,
        )?;
        let body_limit_bytes = raw.body_limit_bytes.unwrap_or(64 * 1024);
        if !(1024..=16 * 1024 * 1024).contains(&body_limit_bytes) {
            return Err(ConfigError::setting(
                "AERIE_BODY_LIMIT_BYTES",
                "must be between 1 KiB and 16 MiB",
            ));
        }
        let body_limit_auth_bytes = body_limit(
            "AERIE_BODY_LIMIT_AUTH_BYTES",
            raw.body_limit_auth_bytes,
            body_limit_bytes,
        )?;
        // An article body may hold 60 000 characters of up to 4 bytes each.
        let body_limit_articles_bytes = body_limit(
            "AERIE_BODY_LIMIT_ARTICLES_BYTES",
            raw.body_limit_articles_bytes,
            body_limit_bytes.max(256 * 1024),
        )?;
        let redis = redis_settings(
            raw.redis_url.as_deref(),
            raw.redis_prefix.as_deref(),
            raw.redis_timeout_ms,
            raw.redis_failure.as_deref(),
        )?;
        let log_format = match raw.log_format.as_deref() {
            None if production => LogFormat::Json,
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::setting(
                    "AERIE_LOG_FORMAT",
                    format!("'{other}' is neither 'pretty' nor 'json'"),
                ));
            }
        };
        let cors_origins = parse_cors_origins(raw.cors_origins.as_deref(), production)?;
        let cookie_mode = match raw.cookie_mode.as_deref() {
            None | Some("opt-in") => CookieMode::OptIn,
            Some("always") => CookieMode::Always,
            Some("off") => CookieMode::Off,
            Some(other) => {
                return Err(ConfigError::setting(
                    "AERIE_COOKIE_MODE",
                    format!("'{other}' is not 'off', 'opt-in' or 'always'"),
                ));
            }
        };
        let tls = match (raw.tls_cert, raw.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => {
                return Err(ConfigError::setting(
                    "AERIE_TLS_CERT",
                    "AERIE_TLS_CERT and AERIE_TLS_KEY go together",
                ));
            }
        };
        let public_url = raw
            .public_url
            .as_deref()
            .map(parse_public_url)
            .transpose()?;
        let tls_terminated_by_proxy = parse_networks(
            "AERIE_TLS_TERMINATED_BY_PROXY",
            raw.tls_terminated_by_proxy.as_deref(),
        )?;
        let http_redirect_listen = match raw.http_redirect_listen.as_deref() {
            None => None,
            Some(text) => {
                if tls.is_none() || public_url.is_none() {
                    return Err(ConfigError::setting(
                        "AERIE_HTTP_REDIRECT_LISTEN",
                        "needs AERIE_TLS_CERT/AERIE_TLS_KEY and AERIE_PUBLIC_URL",
                    ));
                }
                Some(text.parse().map_err(|_| {
                    ConfigError::setting(
                        "AERIE_HTTP_REDIRECT_LISTEN",
                        format!("'{text}' is not an address:port"),
                    )
                })?)
            }
        };
        if production && tls.is_none() && tls_terminated_by_proxy.is_empty() {
            return Err(ConfigError::setting(
                "AERIE_TLS_CERT",
                "production refuses plain HTTP: set AERIE_TLS_CERT and AERIE_TLS_KEY, or AERIE_TLS_TERMINATED_BY_PROXY with the proxy's networks",
            ));
        }
        let audit_key_file = match raw.audit_key_file {
            Some(path) => path,
            None if production => {
                return Err(ConfigError::setting(
                    "AERIE_AUDIT_KEY_FILE",
                    "required in production (32 random bytes, mode 0600: `head -c 32 /dev/urandom > FILE && chmod 600 FILE`)",
                ));
            }
            None => data_dir.join("audit-key"),
        };
        let audit_checkpoint_secs = raw.audit_checkpoint_secs.unwrap_or(300);
        if !(1..=86_400).contains(&audit_checkpoint_secs) {
            return Err(ConfigError::setting(
                "AERIE_AUDIT_CHECKPOINT_SECS",
                "must be between 1 and 86400 seconds",
            ));
        }
        let alert_webhook = raw
            .alert_webhook
            .as_deref()
            .map(parse_webhook)
            .transpose()?;
        let alert_failed_logins = raw.alert_failed_logins.unwrap_or(10);
        if alert_failed_logins == 0 {
            return Err(ConfigError::setting(
                "AERIE_ALERT_FAILED_LOGINS",
                "must be at least 1",
            ));
        }
        let alert_window_secs = raw.alert_failed_login_window_secs.unwrap_or(300);
        if !(1..=86_400).contains(&alert_window_secs) {
            return Err(ConfigError::setting(
                "AERIE_ALERT_FAILED_LOGIN_WINDOW_SECS",
                "must be between 1 and 86400 seconds",
            ));
        }
        let alert_5xx_threshold = within(
            "AERIE_ALERT_5XX_THRESHOLD",
            raw.alert_5xx_threshold.unwrap_or(20),
            1..=1_000_000,
        )?;
        let alert_5xx_window_secs = within(
            "AERIE_ALERT_5XX_WINDOW_SECS",
            raw.alert_5xx_window_secs.unwrap_or(60),
            1..=86_400,
        )?;
        let metrics_token =
            parse_metrics_token(raw.metrics_token, raw.metrics_token_file.as_deref())?;
        let metrics_listen = raw
            .metrics_listen
            .as_deref()
            .map(|text| {
                text.parse().map_err(|_| {
                    ConfigError::setting(
                        "AERIE_METRICS_LISTEN",
                        format!("'{text}' is not an address:port"),
                    )
                })
            })
            .transpose()?;
        let shutdown_delay_secs = within(
            "AERIE_SHUTDOWN_DELAY_SECS",
            raw.shutdown_delay_secs
                .unwrap_or(if production { 5 } else { 0 }),
            0..=300,
        )?;
        let trusted_proxies =
            parse_networks("AERIE_TRUSTED_PROXIES", raw.trusted_proxies.as_deref())?;
        let rate_limits = RateLimits {
            rates: [
                (Policy::Global, &raw.rate_limit_global),
                (Policy::LoginIp, &raw.rate_limit_login_ip),
                (Policy::LoginAccount, &raw.rate_limit_login_account),
                (Policy::Register, &raw.rate_limit_register),
                (Policy::Refresh, &raw.rate_limit_refresh),
                (Policy::Mfa, &raw.rate_limit_mfa),
                (Policy::Writes, &raw.rate_limit_writes),
            ]
            .into_iter()
            .map(|(policy, value)| parse_rate(policy, value.as_deref()).map(|r| (policy, r)))
            .collect::<Result<_, _>>()?,
            allowlist: parse_networks(
                "AERIE_RATE_LIMIT_ALLOWLIST",
                raw.rate_limit_allowlist.as_deref(),
            )?,
            redis,
        };
        let connection_limits = ConnectionLimits {
            max_connections: within(
                "AERIE_MAX_CONNECTIONS",
                raw.max_connections.unwrap_or(1024),
                1..=1_000_000,
            )?,
            header_read_timeout: Duration::from_secs(within(
                "AERIE_HEADER_READ_TIMEOUT_SECS",
                raw.header_read_timeout_secs.unwrap_or(10),
                1..=300,
            )?),
            max_headers: within("AERIE_MAX_HEADERS", raw.max_headers.unwrap_or(64), 8..=1000)?,
            // hyper needs at least 8 KiB of read buffer.
            max_header_bytes: within(
                "AERIE_MAX_HEADER_BYTES",
                raw.max_header_bytes.unwrap_or(16 * 1024),
                8 * 1024..=1024 * 1024,
            )?,
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self {
            env,
            listen,
            data_dir,
            database_url: SecretString::from(database_url),
            database_max_connections: raw.database_max_connections.unwrap_or(10).max(1),
            auto_migrate: raw.auto_migrate.unwrap_or(!production),
            signing_key_file,
            generate_signing_key: !production,
            token_issuer: raw.token_issuer.unwrap_or_else(|| "aerie".into()),
            token_audience: raw.token_audience.unwrap_or_else(|| "aerie-api".into()),
            access_token_ttl: Duration::from_secs(access_token_ttl_secs),
            refresh_grace: sessions.refresh_grace,
            session_idle_timeout: sessions.idle_timeout,
            session_max_lifetime: sessions.max_lifetime,
            password_hash_concurrency: raw.password_hash_concurrency.unwrap_or(cores).max(1),
            password_min_score,
            body_limit_bytes,
            body_limit_auth_bytes,
            body_limit_articles_bytes,
            request_timeout: Duration::from_secs(raw.request_timeout_secs.unwrap_or(30).max(1)),
            log_format,
            log_filter: raw.log.unwrap_or_else(|| "info".into()),
            cors_origins,
            cookie_mode,
            tls,
            tls_reload_interval: Duration::from_secs(
                raw.tls_reload_interval_secs.unwrap_or(10).max(1),
            ),
            http_redirect_listen,
            public_url,
            tls_terminated_by_proxy,
            hsts_preload: raw.hsts_preload.unwrap_or(false),
            audit_key_file,
            generate_audit_key: !production,
            audit_checkpoint_interval: Duration::from_secs(audit_checkpoint_secs),
            alert_webhook,
            alert_failed_logins,
            alert_failed_login_window: Duration::from_secs(alert_window_secs),
            alert_5xx_threshold,
            alert_5xx_window: Duration::from_secs(alert_5xx_window_secs),
            metrics_token,
            metrics_listen,
            shutdown_delay: Duration::from_secs(shutdown_delay_secs),
            admin_grant_max_auth_age: Duration::from_secs(
                raw.admin_grant_max_auth_age_secs.unwrap_or(600),
            ),
            trusted_proxies,
            rate_limits,
            connection_limits,
            expose_api_docs: raw.expose_api_docs.unwrap_or(!production),
        })
    }

    pub fn is_production(&self) -> bool {
        self.env == Environment::Production
    }

    /// Whether clients reach this server over HTTPS (directly, or through a TLS proxy), so
    /// responses carry `Strict-Transport-Security`.
    pub fn sends_hsts(&self) -> bool {
        self.tls.is_some() || !self.tls_terminated_by_proxy.is_empty()
    }

    pub fn uses_postgres(&self) -> bool {
        self.database_url.expose_secret().starts_with("postgres")
    }
}

/// The validated session timings.
struct SessionTimes {
    refresh_grace: Duration,
    idle_timeout: Duration,
    max_lifetime: Duration,
}

impl SessionTimes {
    const DAY: u64 = 24 * 60 * 60;

    /// `[grace, idle, max]` as given, in seconds.
    fn validate(given: [Option<u64>; 3], access_token_ttl_secs: u64) -> Result<Self, ConfigError> {
        let [grace, idle, max] = given;
        let grace = grace.unwrap_or(5);
        if grace > 60 {
            return Err(ConfigError::setting(
                "AERIE_REFRESH_GRACE_SECS",
                "must be between 0 and 60 seconds: a longer window lets a stolen token be replayed unnoticed",
            ));
        }
        let idle = idle.unwrap_or(7 * Self::DAY);
        if !(access_token_ttl_secs..=90 * Self::DAY).contains(&idle) {
            return Err(ConfigError::setting(
                "AERIE_SESSION_IDLE_TIMEOUT_SECS",
                format!(
                    "must be between the access-token lifetime ({access_token_ttl_secs} s) and 90 days"
                ),
            ));
        }
        let max = max.unwrap_or(30 * Self::DAY);
        if !(idle..=365 * Self::DAY).contains(&max) {
            return Err(ConfigError::setting(
                "AERIE_SESSION_MAX_LIFETIME_SECS",
                "must be between the idle timeout and 365 days",
            ));
        }
        Ok(Self {
            refresh_grace: Duration::from_secs(grace),
            idle_timeout: Duration::from_secs(idle),
            max_lifetime: Duration::from_secs(max),
        })
    }
}

/// `AERIE_CORS_ORIGINS`: a comma-separated list of exact origins, or `none`. Production must
/// say which (even if `none`), so cross-origin access is always a decision.
fn parse_cors_origins(value: Option<&str>, production: bool) -> Result<Vec<String>, ConfigError> {
    let name = "AERIE_CORS_ORIGINS";
    let Some(value) = value.map(str::trim) else {
        if production {
            return Err(ConfigError::setting(
                name,
                "required in production: a comma-separated list of origins, or 'none'",
            ));
        }
        return Ok(Vec::new());
    };
    if value == "none" {
        return Ok(Vec::new());
    }
    value
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| {
            crate::defense::cors::parse_origin(o)
                .ok_or_else(|| ConfigError::setting(name, format!("'{o}' is not an origin like https://app.example.com (no wildcards, no paths)")))
        })
        .collect()
}

/// `AERIE_PUBLIC_URL`: an `https://` base URL without query or fragment; returned without a
/// trailing slash.
fn parse_public_url(value: &str) -> Result<String, ConfigError> {
    let invalid = || {
        ConfigError::setting(
            "AERIE_PUBLIC_URL",
            format!("'{value}' is not an https:// URL without query or fragment"),
        )
    };
    let url = url::Url::parse(value).map_err(|_| invalid())?;
    if url.scheme() != "https"
        || url.host_str().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
    {
        return Err(invalid());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// `AERIE_ALERT_WEBHOOK`: an `http://` or `https://` URL without credentials in it.
fn parse_webhook(value: &str) -> Result<String, ConfigError> {
    let invalid = || {
        ConfigError::setting(
            "AERIE_ALERT_WEBHOOK",
            "must be an http:// or https:// URL without user:password",
        )
    };
    let url = url::Url::parse(value).map_err(|_| invalid())?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(invalid());
    }
    Ok(url.to_string())
}

/// The metrics bearer token, from `AERIE_METRICS_TOKEN` or (better: it stays out of the
/// process environment) the file `AERIE_METRICS_TOKEN_FILE`, trailing newline ignored. At
/// least 32 visible ASCII characters, so it cannot be guessed and fits in a header.
fn parse_metrics_token(
    value: Option<String>,
    file: Option<&Path>,
) -> Result<Option<SecretString>, ConfigError> {
    let (name, token) = match (value, file) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(ConfigError::setting(
                "AERIE_METRICS_TOKEN",
                "set AERIE_METRICS_TOKEN or AERIE_METRICS_TOKEN_FILE, not both",
            ));
        }
        (Some(token), None) => ("AERIE_METRICS_TOKEN", token),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::setting(
                    "AERIE_METRICS_TOKEN_FILE",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            ("AERIE_METRICS_TOKEN_FILE", text.trim_end().to_owned())
        }
    };
    let token = SecretString::from(token);
    let text = token.expose_secret();
    if text.len() < 32 || text.len() > 512 || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::setting(
            name,
            "the metrics token must be 32–512 visible ASCII characters (e.g. `head -c 32 /dev/urandom | base64`)",
        ));
    }
    Ok(Some(token))
}

/// A comma-separated list of CIDRs (a bare address means that one host).
fn parse_networks(name: &str, value: Option<&str>) -> Result<Vec<IpNet>, ConfigError> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| {
            n.parse::<IpNet>()
                .or_else(|_| n.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    ConfigError::setting(name, format!("'{n}' is not a CIDR like 10.0.0.0/8"))
                })
        })
        .collect()
}

/// A number that must lie in `range`.
fn within<T: PartialOrd + std::fmt::Display>(
    name: &str,
    value: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::setting(
            name,
            format!("{value} is outside {}–{}", range.start(), range.end()),
        ))
    }
}

/// A policy's `N/SECS` setting, or its default.
fn parse_rate(policy: Policy, value: Option<&str>) -> Result<Rate, ConfigError> {
    let Some(value) = value else {
        return Ok(policy.default_rate());
    };
    Rate::parse(value).ok_or_else(|| {
        ConfigError::setting(
            policy.setting(),
            format!("'{value}' is not N/SECS (N requests per SECS seconds, like 10/300)"),
        )
    })
}

/// A route group's body limit: 1 KiB–16 MiB, `default` when unset.
fn body_limit(name: &str, value: Option<usize>, default: usize) -> Result<usize, ConfigError> {
    within(name, value.unwrap_or(default), 1024..=16 * 1024 * 1024)
}

/// `AERIE_REDIS_*`: the shared rate-limit store, when a URL is given.
fn redis_settings(
    url: Option<&str>,
    prefix: Option<&str>,
    timeout_ms: Option<u64>,
    failure: Option<&str>,
) -> Result<Option<RedisSettings>, ConfigError> {
    let Some(text) = url.filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    // Never echo the URL: it may hold the Redis password.
    let url = url::Url::parse(text)
        .map_err(|_| ConfigError::setting("AERIE_REDIS_URL", "not a URL like redis://host:6379"))?;
    match url.scheme() {
        "redis" if url.host_str().is_some() => {}
        "rediss" => {
            return Err(ConfigError::setting(
                "AERIE_REDIS_URL",
                "rediss:// (TLS) is not built in: reach Redis over a private network or a TLS tunnel",
            ));
        }
        _ => {
            return Err(ConfigError::setting(
                "AERIE_REDIS_URL",
                "must be redis://[user:password@]host[:port][/db]",
            ));
        }
    }
    let prefix = prefix.unwrap_or("aerie:").to_owned();
    if !(1..=64).contains(&prefix.len()) || !prefix.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::setting(
            "AERIE_REDIS_PREFIX",
            "must be 1–64 printable ASCII characters without spaces",
        ));
    }
    let timeout = within(
        "AERIE_REDIS_TIMEOUT_MS",
        timeout_ms.unwrap_or(200),
        10..=5000,
    )?;
    let failure_text = failure.unwrap_or("open");
    let failure = StoreFailure::parse(failure_text).ok_or_else(|| {
        ConfigError::setting(
            "AERIE_REDIS_FAILURE",
            format!("'{failure_text}' is not one of open, closed, auth-closed"),
        )
    })?;
    Ok(Some(RedisSettings {
        url: SecretString::from(text.to_owned()),
        prefix,
        timeout: Duration::from_millis(timeout),
        failure,
    }))
}

/// Adds `.env` entries that the real environment does not already set.
fn merge_dotenv(vars: &mut HashMap<String, String>, path: &Path) -> Result<(), ConfigError> {
    let Ok(entries) = dotenvy::from_path_iter(path) else {
        return Ok(()); // no .env file: nothing to merge
    };
    for entry in entries {
        let (key, value) = entry.map_err(|e| ConfigError::setting(".env", e))?;
        vars.entry(key).or_insert(value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(vars: &[(&str, &str)]) -> String {
        match Config::from_vars(vars.iter().copied()) {
            Ok(_) => panic!("expected a configuration error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn development_needs_no_configuration() {
        let config = Config::from_vars(Vec::<(String, String)>::new()).expect("defaults are valid");
        assert_eq!(config.env, Environment::Development);
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert!(
            config
                .database_url
                .expose_secret()
                .starts_with("sqlite://data/")
        );
        assert!(config.generate_signing_key);
        assert_eq!(config.access_token_ttl, Duration::from_secs(900));
    }

    #[test]
    fn production_refuses_missing_database_url() {
        assert!(error_of(&[("AERIE_ENV", "production")]).contains("AERIE_DATABASE_URL"));
    }

    #[test]
    fn production_refuses_missing_signing_key() {
        let error = error_of(&[
            ("AERIE_ENV", "production"),
            ("AERIE_DATABASE_URL", "postgres://db/aerie"),
        ]);
        assert!(error.contains("AERIE_SIGNING_KEY_FILE"), "{error}");
    }

    #[test]
    fn production_refuses_weak_password_policy() {
        let error = error_of(&[
            ("AERIE_ENV", "production"),
            ("AERIE_DATABASE_URL", "postgres://db/aerie"),
            ("AERIE_SIGNING_KEY_FILE", "/etc/aerie/key.pem"),
            ("AERIE_PASSWORD_MIN_SCORE", "1"),
        ]);
        assert!(error.contains("AERIE_PASSWORD_MIN_SCORE"), "{error}");
    }

    #[test]
    fn production_refuses_plain_http() {
        let error = error_of(&[
            ("AERIE_ENV", "production"),
            ("AERIE_DATABASE_URL", "postgres://db/aerie"),
            ("AERIE_SIGNING_KEY_FILE", "/etc/aerie/key.pem"),
            ("AERIE_CORS_ORIGINS", "none"),
        ]);
        assert!(error.contains("production refuses plain HTTP"), "{error}");
        let behind_proxy = Config::from_vars([
            ("AERIE_ENV", "production"),
            ("AERIE_DATABASE_URL", "postgres://db/aerie"),
            ("AERIE_SIGNING_KEY_FILE", "/etc/aerie/key.pem"),
            ("AERIE_CORS_ORIGINS", "none"),
            ("AERIE_TLS_TERMINATED_BY_PROXY", "10.0.0.0/8, 192.168.1.7"),
            ("AERIE_AUDIT_KEY_FILE", "/etc/aerie/audit-key"),
        ])
        .expect("TLS at a trusted proxy is acceptable");
        assert!(behind_proxy.sends_hsts());
    }

    #[test]
    fn production_refuses_missing_audit_key() {
        let error = error_of(&[
            ("AERIE_ENV", "production"),
            ("AERIE_DATABASE_URL", "postgres://db/aerie"),
            ("AERIE_SIGNING_KEY_FILE", "/etc/aerie/key.pem"),
            ("AERIE_CORS_ORIGINS", "none"),
            ("AERIE_TLS_TERMINATED_BY_PROXY", "10.0.0.0/8"),
        ]);
        assert!(error.contains("AERIE_AUDIT_KEY_FILE"), "{error}");
    }

    #[test]
    fn monitoring_settings_name_themselves() {
        assert!(
            error_of(&[("AERIE_ALERT_WEBHOOK", "ftp://x.io/hook")]).contains("AERIE_ALERT_WEBHOOK")
        );
        assert!(
            error_of(&[("AERIE_ALERT_WEBHOOK", "https://u:p@x.io/hook")])
                .contains("AERIE_ALERT_WEBHOOK")
        );
        assert!(
            error_of(&[("AERIE_ALERT_FAILED_LOGINS", "0")]).contains("AERIE_ALERT_FAILED_LOGINS")
        );
        assert!(
            error_of(&[("AERIE_AUDIT_CHECKPOINT_SECS", "0")])
                .contains("AERIE_AUDIT_CHECKPOINT_SECS")
        );
    }

    #[test]
    fn metrics_and_shutdown_settings_name_themselves() {
        assert!(error_of(&[("AERIE_METRICS_TOKEN", "short")]).contains("AERIE_METRICS_TOKEN"));
        let spaced = "a token with spaces in it that is long enough";
        assert!(error_of(&[("AERIE_METRICS_TOKEN", spaced)]).contains("visible ASCII"));
        assert!(
            error_of(&[("AERIE_METRICS_TOKEN_FILE", "/nonexistent/metrics-token")])
                .contains("AERIE_METRICS_TOKEN_FILE")
        );
        assert!(
            error_of(&[
                ("AERIE_METRICS_TOKEN", &"x".repeat(40)),
                ("AERIE_METRICS_TOKEN_FILE", "/etc/aerie/metrics-token"),
            ])
            .contains("not both")
        );
        assert!(error_of(&[("AERIE_METRICS_LISTEN", "nowhere")]).contains("AERIE_METRICS_LISTEN"));
        assert!(
            error_of(&[("AERIE_ALERT_5XX_THRESHOLD", "0")]).contains("AERIE_ALERT_5XX_THRESHOLD")
        );
        assert!(
            error_of(&[("AERIE_ALERT_5XX_WINDOW_SECS", "0")])
                .contains("AERIE_ALERT_5XX_WINDOW_SECS")
        );
        assert!(
            error_of(&[("AERIE_SHUTDOWN_DELAY_SECS", "301")]).contains("AERIE_SHUTDOWN_DELAY_SECS")
        );
    }

    #[test]
    fn the_metrics_token_file_is_read_and_never_printed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("metrics-token");
        let token = "k9V2mQ7xR4tW8yZ1bC5nL3pS6hJ0dF2gA7eU9iO4";
        std::fs::write(&path, format!("{token}\n")).expect("write");
        let config = Config::from_vars([(
            "AERIE_METRICS_TOKEN_FILE",
            path.display().to_string().as_str(),
        )])
        .expect("valid");
        let loaded = config.metrics_token.as_ref().expect("token");
        assert_eq!(loaded.expose_secret(), token, "trailing newline dropped");
        assert!(!format!("{config:?}").contains(token));
        assert_eq!(
            config.shutdown_delay,
            Duration::ZERO,
            "development stops at once"
        );
    }

    #[test]
    fn tls_settings_are_checked_together() {
        assert!(error_of(&[("AERIE_TLS_CERT", "/c.pem")]).contains("go together"));
        assert!(
            error_of(&[("AERIE_HTTP_REDIRECT_LISTEN", "127.0.0.1:80")])
                .contains("AERIE_HTTP_REDIRECT_LISTEN")
        );
        assert!(error_of(&[("AERIE_PUBLIC_URL", "http://x.io")]).contains("AERIE_PUBLIC_URL"));
        assert!(
            error_of(&[("AERIE_PUBLIC_URL", "https://x.io/?next=//evil")])
                .contains("AERIE_PUBLIC_URL")
        );
        assert!(
            error_of(&[("AERIE_TLS_TERMINATED_BY_PROXY", "10.0.0.0/33")])
                .contains("AERIE_TLS_TERMINATED_BY_PROXY")
        );
    }

    #[test]
    fn production_refuses_unstated_cors_origins() {
        let error = error_of(&[
            ("AERIE_ENV", "production"),
            ("AERIE_DATABASE_URL", "postgres://db/aerie"),
            ("AERIE_SIGNING_KEY_FILE", "/etc/aerie/key.pem"),
        ]);
        assert!(error.contains("AERIE_CORS_ORIGINS"), "{error}");
    }

    #[test]
    fn cors_origins_must_be_exact() {
        assert!(error_of(&[("AERIE_CORS_ORIGINS", "*")]).contains("AERIE_CORS_ORIGINS"));
        assert!(
            error_of(&[("AERIE_CORS_ORIGINS", "https://a.io, https://*.b.io")])
                .contains("AERIE_CORS_ORIGINS")
        );
        let config = Config::from_vars([("AERIE_CORS_ORIGINS", "https://a.io, https://b.io:8443")])
            .expect("valid");
        assert_eq!(config.cors_origins, ["https://a.io", "https://b.io:8443"]);
    }

    #[test]
    fn bad_values_name_their_setting() {
        assert!(error_of(&[("AERIE_LISTEN", "nowhere")]).contains("AERIE_LISTEN"));
        assert!(error_of(&[("AERIE_ENV", "staging")]).contains("AERIE_ENV"));
        assert!(error_of(&[("AERIE_DATABASE_URL", "mysql://x")]).contains("AERIE_DATABASE_URL"));
        assert!(error_of(&[("AERIE_ACCESS_TOKEN_TTL_SECS", "86400")]).contains("TTL"));
        assert!(
            error_of(&[("AERIE_REFRESH_GRACE_SECS", "600")]).contains("AERIE_REFRESH_GRACE_SECS")
        );
        assert!(
            error_of(&[("AERIE_SESSION_IDLE_TIMEOUT_SECS", "10")])
                .contains("AERIE_SESSION_IDLE_TIMEOUT_SECS")
        );
        assert!(
            error_of(&[
                ("AERIE_SESSION_IDLE_TIMEOUT_SECS", "86400"),
                ("AERIE_SESSION_MAX_LIFETIME_SECS", "3600")
            ])
            .contains("AERIE_SESSION_MAX_LIFETIME_SECS")
        );
        assert!(
            error_of(&[("AERIE_TRUSTED_PROXIES", "10.0.0.0/8, proxy")])
                .contains("AERIE_TRUSTED_PROXIES")
        );
        assert!(
            error_of(&[("AERIE_RATE_LIMIT_ALLOWLIST", "*")]).contains("AERIE_RATE_LIMIT_ALLOWLIST")
        );
        assert!(
            error_of(&[("AERIE_RATE_LIMIT_LOGIN_IP", "0/60")])
                .contains("AERIE_RATE_LIMIT_LOGIN_IP")
        );
        assert!(
            error_of(&[("AERIE_RATE_LIMIT_WRITES", "ten")]).contains("AERIE_RATE_LIMIT_WRITES")
        );
        assert!(error_of(&[("AERIE_MAX_HEADER_BYTES", "100")]).contains("AERIE_MAX_HEADER_BYTES"));
        assert!(error_of(&[("AERIE_MAX_CONNECTIONS", "0")]).contains("AERIE_MAX_CONNECTIONS"));
        assert!(error_of(&[("AERIE_COOKIE_MODE", "on")]).contains("AERIE_COOKIE_MODE"));
    }

    #[test]
    fn database_url_never_prints() {
        let config = Config::from_vars([("AERIE_DATABASE_URL", "postgres://u:hunter2@db/x")])
            .expect("valid");
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn redis_settings_are_checked_and_the_password_never_prints() {
        let config = Config::from_vars([("AERIE_REDIS_URL", "redis://:hunter2@cache:6379/0")])
            .expect("valid");
        let redis = config.rate_limits.redis.as_ref().expect("configured");
        assert_eq!(redis.prefix, "aerie:");
        assert_eq!(redis.timeout, Duration::from_millis(200));
        assert_eq!(redis.failure, StoreFailure::Open);
        assert!(!format!("{config:?}").contains("hunter2"));
        for (name, value) in [
            ("AERIE_REDIS_URL", "rediss://:hunter2@cache:6379"),
            ("AERIE_REDIS_URL", "http://:hunter2@cache"),
            ("AERIE_REDIS_URL", "redis//:hunter2@cache"),
        ] {
            let error = error_of(&[(name, value)]);
            assert!(
                error.contains(name) && !error.contains("hunter2"),
                "{error}"
            );
        }
        let with = |name, value| error_of(&[("AERIE_REDIS_URL", "redis://cache"), (name, value)]);
        assert!(with("AERIE_REDIS_FAILURE", "maybe").contains("AERIE_REDIS_FAILURE"));
        assert!(with("AERIE_REDIS_TIMEOUT_MS", "60000").contains("AERIE_REDIS_TIMEOUT_MS"));
        assert!(with("AERIE_REDIS_PREFIX", "a b").contains("AERIE_REDIS_PREFIX"));
        assert!(
            Config::from_vars(Vec::<(String, String)>::new())
                .expect("valid")
                .rate_limits
                .redis
                .is_none()
        );
    }

    #[test]
    fn body_limits_per_route_group() {
        let config = Config::from_vars(Vec::<(String, String)>::new()).expect("valid");
        assert_eq!(config.body_limit_auth_bytes, 64 * 1024);
        assert_eq!(config.body_limit_articles_bytes, 256 * 1024);
        let config = Config::from_vars([("AERIE_BODY_LIMIT_AUTH_BYTES", "16384")]).expect("valid");
        assert_eq!(config.body_limit_auth_bytes, 16 * 1024);
        assert!(
            error_of(&[("AERIE_BODY_LIMIT_ARTICLES_BYTES", "100")])
                .contains("AERIE_BODY_LIMIT_ARTICLES_BYTES")
        );
    }
}
