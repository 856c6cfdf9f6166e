//! Typed configuration, read once at start from `AERIE_*` environment variables, an optional
//! TOML file and (in development) a `.env` file, then validated. Every error names the setting
//! at fault. Production refuses to start on a missing secret or an unsafe default, so a
//! forgotten variable cannot silently ship a development setup.
//!
//! Assembled at the top: each subsystem owns its settings type (`store::DatabaseSettings`,
//! `auth::TokenSettings`, ...), this module fills one per section ([`backend`], [`edge`]) and
//! only `main`, `server` and `app` see the whole [`Config`]; everything below them is handed
//! its own section.

mod backend;
mod edge;
mod mail;
mod parse;
mod raw;
#[cfg(test)]
mod tests;
mod warnings;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

pub use warnings::{ConfigWarning, warnings};

use self::raw::RawSettings;
use crate::audit::{AlertSettings, AuditSettings};
use crate::auth::password::PasswordSettings;
use crate::auth::{SessionTimes, TokenSettings};
use crate::defense::cors::CorsSettings;
use crate::defense::rate_limit::RateLimits;
use crate::http::HttpSettings;
use crate::http::cookies::CookieSettings;
use crate::mail::MailSettings;
use crate::metrics::MetricsSettings;
use crate::services::accounts::AccountRules;
use crate::services::markdown::ContentSettings;
use crate::services::mfa::MfaSettings;
use crate::services::quotas::QuotaSettings;
use crate::services::retention::RetentionSettings;
use crate::store::DatabaseSettings;
use crate::telemetry::LogSettings;
use crate::tls::TlsSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

/// The validated configuration, one section per subsystem. Build it with [`Config::load`]
/// (process environment, files) or [`Config::from_vars`] (an explicit map, for tests and
/// tools).
#[derive(Debug, Clone)]
pub struct Config {
    pub env: Environment,
    /// Where development keeps its database and generated keys.
    pub data_dir: PathBuf,
    pub database: DatabaseSettings,
    pub tokens: TokenSettings,
    pub passwords: PasswordSettings,
    /// Markdown limits and the rendering pool.
    pub content: ContentSettings,
    pub sessions: SessionTimes,
    pub accounts: AccountRules,
    pub quotas: QuotaSettings,
    pub retention: RetentionSettings,
    pub http: HttpSettings,
    pub log: LogSettings,
    pub cors: CorsSettings,
    pub cookies: CookieSettings,
    pub tls: TlsSettings,
    pub server: ServerSettings,
    pub audit: AuditSettings,
    pub mfa: MfaSettings,
    pub alerts: AlertSettings,
    pub metrics: MetricsSettings,
    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Rate-limit policies, the allowlist that skips them, and the shared store.
    pub rate_limits: RateLimits,
    /// SMTP, the sender address, the front end's URL for links, retries.
    pub mail: MailSettings,
}

/// Where the server listens, what it redirects to, and how it stops: read by
/// [`crate::server`] alone, so defined here rather than below it.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// A plain-HTTP listener that only redirects to `public_url` (and serves `/healthz`).
    pub http_redirect_listen: Option<SocketAddr>,
    /// The public `https://` base URL; redirects are built from it, never from `Host`.
    pub public_url: Option<String>,
    /// After SIGTERM/Ctrl-C, how long the server keeps serving with `/readyz` answering 503
    /// (so load balancers take it out of rotation) before it stops accepting and drains.
    pub shutdown_delay: Duration,
    /// What one connection may cost before its request reaches the router.
    pub connection_limits: ConnectionLimits,
}

/// Bounds enforced by the listener, before any request is parsed into the router: a slow or
/// bloated client is cut off here without holding a task, a buffer or a slot for long.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Open connections served at once; when all are taken, the one idle longest is closed
    /// for a new client, and when none is idle, further clients wait in the kernel's backlog.
    pub max_connections: usize,
    /// Open connections from one address (one /64 for IPv6); trusted proxies are exempt.
    pub max_connections_per_address: usize,
    /// A client must finish sending a request's headers within this (slowloris).
    pub header_read_timeout: Duration,
    /// Header fields per request; more is a 431.
    pub max_headers: usize,
    /// Bytes of request line and headers; more is a 431.
    pub max_header_bytes: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    fn setting(name: &str, problem: impl std::fmt::Display) -> Self {
        Self(format!("{name}: {problem}"))
    }

    /// The setting at fault, when the error names one (`AERIE_…`).
    pub fn setting_name(&self) -> Option<&str> {
        let (name, _) = self.0.split_once(": ")?;
        name.starts_with("AERIE_").then_some(name)
    }
}

/// Settings that were renamed. An old name would otherwise be ignored without a word, and
/// the operator's value (a security bound) silently replaced by the default.
const RENAMED: [(&str, &str); 1] = [(
    "AERIE_ADMIN_GRANT_MAX_AUTH_AGE_SECS",
    "AERIE_STEP_UP_MAX_AGE_SECS",
)];

impl Config {
    /// Reads the process environment, `.env` (unless the environment says production) and the
    /// TOML file named by `AERIE_CONFIG` (default `./aerie.toml`, if present).
    pub fn load() -> Result<Self, ConfigError> {
        let mut vars: HashMap<String, String> = std::env::vars().collect();
        let production_from_env = vars.get("AERIE_ENV").is_some_and(|v| v == "production");
        if !production_from_env {
            merge_dotenv(&mut vars, Path::new(".env"))?;
        }
        Self::build_with_file(vars)
    }

    /// [`Config::load`]'s sources judged as production judges them: `AERIE_ENV=production`
    /// and no `.env`, whatever the environment says. `aerie doctor` uses it to find what a
    /// production start would refuse.
    pub fn load_as_production() -> Result<Self, ConfigError> {
        let mut vars: HashMap<String, String> = std::env::vars().collect();
        vars.insert("AERIE_ENV".into(), "production".into());
        Self::build_with_file(vars)
    }

    /// `vars` over the TOML file named by `AERIE_CONFIG` (default `./aerie.toml`, if present).
    fn build_with_file(vars: HashMap<String, String>) -> Result<Self, ConfigError> {
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
        if let Some((old, new)) = RENAMED.iter().find(|(old, _)| env_vars.contains_key(*old)) {
            return Err(ConfigError::setting(
                old,
                format!("was renamed to {new}; set that instead"),
            ));
        }
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
        Self::validate(&raw)
    }

    /// One section after another; the first invalid setting is the error.
    fn validate(raw: &RawSettings) -> Result<Self, ConfigError> {
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
        let data_dir = raw
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("data"));
        let mut database = backend::database(raw, production, &data_dir)?;
        let tokens = backend::tokens(raw, production, &data_dir)?;
        let passwords = backend::passwords(raw, production)?;
        let content = backend::content(raw)?;
        let sessions = backend::sessions(raw, tokens.access_token_ttl)?;
        let accounts = backend::accounts(raw, production)?;
        let quotas = backend::quotas(raw)?;
        let retention = backend::retention(raw)?;
        let http = edge::http(raw, production)?;
        let redis = edge::redis(raw)?;
        let log = backend::log(raw, production)?;
        let cors = edge::cors(raw, production)?;
        let cookies = edge::cookies(raw)?;
        let tokens = backend::client_profile(raw, tokens, &sessions, cookies.mode)?;
        let tls = edge::tls(raw, production)?;
        let server = edge::server(raw, production, &tls)?;
        let audit = backend::audit(raw, production, &data_dir)?;
        let mfa = backend::mfa(raw)?;
        // Checked where the MFA key was: after the other key files, before alerts.
        database.field_keys = backend::field_keys(raw, production, &data_dir)?;
        let alerts = backend::alerts(raw)?;
        let metrics = backend::metrics(raw)?;
        let trusted_proxies =
            parse::parse_networks("AERIE_TRUSTED_PROXIES", raw.trusted_proxies.as_deref())?;
        edge::tls_proxy_is_trusted(&tls, &trusted_proxies)?;
        let rate_limits = edge::rate_limits(raw, redis)?;
        let mail = mail::mail(raw, production, &data_dir)?;
        Ok(Self {
            env,
            data_dir,
            database,
            tokens,
            passwords,
            content,
            sessions,
            accounts,
            quotas,
            retention,
            http,
            log,
            cors,
            cookies,
            tls,
            server,
            audit,
            mfa,
            alerts,
            metrics,
            trusted_proxies,
            rate_limits,
            mail,
        })
    }

    pub fn is_production(&self) -> bool {
        self.env == Environment::Production
    }
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
