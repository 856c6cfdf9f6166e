//! The sections of the HTTP edge: the API's limits, browsers (CORS, cookies), TLS, the
//! listeners and rate limiting. One function per section, each turning raw values into that
//! subsystem's own settings type.

use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;
use secrecy::SecretString;

use super::parse::{
    body_limit, parse_cors_origins, parse_networks, parse_public_url, parse_rate, socket_address,
    within,
};
use super::raw::RawSettings;
use super::{ConfigError, ConnectionLimits, ServerSettings};
use crate::acme::AcmeSettings;
use crate::defense::cors::CorsSettings;
use crate::defense::rate_limit::{Policy, RateLimits, RedisSettings, StoreFailure};
use crate::http::HttpSettings;
use crate::http::cookies::{CookieMode, CookieSettings};
use crate::tls::{TlsFiles, TlsSettings};

pub(super) fn http(raw: &RawSettings, production: bool) -> Result<HttpSettings, ConfigError> {
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
    Ok(HttpSettings {
        body_limit_bytes,
        body_limit_auth_bytes,
        body_limit_articles_bytes,
        request_timeout: Duration::from_secs(raw.request_timeout_secs.unwrap_or(30).max(1)),
        expose_api_docs: raw.expose_api_docs.unwrap_or(!production),
        tags_listed: within(
            "AERIE_TAGS_LISTED",
            raw.tags_listed.unwrap_or(100),
            1..=1000,
        )?,
        max_list_offset: within(
            "AERIE_MAX_LIST_OFFSET",
            raw.max_list_offset.unwrap_or(10_000),
            0..=1_000_000,
        )?,
    })
}

pub(super) fn cors(raw: &RawSettings, production: bool) -> Result<CorsSettings, ConfigError> {
    Ok(CorsSettings {
        origins: parse_cors_origins(raw.cors_origins.as_deref(), production)?,
        allow_local_dev: !production,
    })
}

pub(super) fn cookies(raw: &RawSettings) -> Result<CookieSettings, ConfigError> {
    let mode = match raw.cookie_mode.as_deref() {
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
    Ok(CookieSettings { mode })
}

/// Production refuses plain HTTP unless TLS ends at a proxy it names.
pub(super) fn tls(
    raw: &RawSettings,
    production: bool,
    data_dir: &Path,
) -> Result<TlsSettings, ConfigError> {
    let files = match (&raw.tls_cert, &raw.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        (None, None) => None,
        _ => {
            return Err(ConfigError::setting(
                "AERIE_TLS_CERT",
                "AERIE_TLS_CERT and AERIE_TLS_KEY go together",
            ));
        }
    };
    let terminated_by_proxy = parse_networks(
        "AERIE_TLS_TERMINATED_BY_PROXY",
        raw.tls_terminated_by_proxy.as_deref(),
    )?;
    let acme = acme(raw, data_dir)?;
    if acme.is_some() && files.is_some() {
        return Err(ConfigError::setting(
            "AERIE_ACME_DOMAINS",
            "AERIE_ACME_DOMAINS and AERIE_TLS_CERT exclude each other: either the certificate comes from ACME or from files",
        ));
    }
    if production && files.is_none() && acme.is_none() && terminated_by_proxy.is_empty() {
        return Err(ConfigError::setting(
            "AERIE_TLS_CERT",
            "production refuses plain HTTP: set AERIE_ACME_DOMAINS and AERIE_ACME_CONTACT, or AERIE_TLS_CERT and AERIE_TLS_KEY, or AERIE_TLS_TERMINATED_BY_PROXY with the proxy's networks",
        ));
    }
    Ok(TlsSettings {
        files,
        acme,
        reload_interval: Duration::from_secs(raw.tls_reload_interval_secs.unwrap_or(10).max(1)),
        terminated_by_proxy,
        hsts_preload: raw.hsts_preload.unwrap_or(false),
    })
}

/// ACME: the domains (comma-separated DNS names, no wildcards: TLS-ALPN-01 and HTTP-01
/// cannot prove them), a contact, the directory (a named CA or an https URL), the cache.
fn acme(raw: &RawSettings, data_dir: &Path) -> Result<Option<AcmeSettings>, ConfigError> {
    let Some(domains) = raw.acme_domains.as_deref().filter(|d| !d.trim().is_empty()) else {
        return Ok(None);
    };
    let domains = domains
        .split(',')
        .map(|domain| {
            let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
            if is_dns_name(&domain) {
                Ok(domain)
            } else {
                Err(ConfigError::setting(
                    "AERIE_ACME_DOMAINS",
                    format!("'{domain}' is not a DNS name (letters, digits, hyphens and dots; no wildcards, no IP addresses)"),
                ))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let contact = match raw.acme_contact.as_deref().map(str::trim) {
        Some(contact) if is_email(contact.strip_prefix("mailto:").unwrap_or(contact)) => {
            format!(
                "mailto:{}",
                contact.strip_prefix("mailto:").unwrap_or(contact)
            )
        }
        Some(_) => {
            return Err(ConfigError::setting(
                "AERIE_ACME_CONTACT",
                "must be an email address (the CA writes to it about the account)",
            ));
        }
        None => {
            return Err(ConfigError::setting(
                "AERIE_ACME_CONTACT",
                "AERIE_ACME_DOMAINS needs AERIE_ACME_CONTACT, an email address for the CA account",
            ));
        }
    };
    let directory = match raw.acme_directory.as_deref().map(str::trim) {
        None | Some("" | "letsencrypt") => crate::acme::LETS_ENCRYPT.to_owned(),
        Some("letsencrypt-staging") => crate::acme::LETS_ENCRYPT_STAGING.to_owned(),
        Some(url) => match url::Url::parse(url) {
            Ok(parsed) if parsed.scheme() == "https" && parsed.host().is_some() => url.to_owned(),
            _ => {
                return Err(ConfigError::setting(
                    "AERIE_ACME_DIRECTORY",
                    "must be 'letsencrypt', 'letsencrypt-staging' or an https:// directory URL (RFC 8555)",
                ));
            }
        },
    };
    let check_interval_secs = within(
        "AERIE_ACME_CHECK_INTERVAL_SECS",
        raw.acme_check_interval_secs.unwrap_or(60),
        1..=3600,
    )?;
    Ok(Some(AcmeSettings {
        domains,
        contact,
        directory,
        cache: raw
            .acme_cache
            .clone()
            .unwrap_or_else(|| data_dir.join("acme")),
        directory_root: raw.acme_directory_root.clone(),
        check_interval: Duration::from_secs(check_interval_secs),
    }))
}

fn is_dns_name(name: &str) -> bool {
    name.len() <= 253
        && name.parse::<std::net::IpAddr>().is_err()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn is_email(text: &str) -> bool {
    match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && text.len() <= 254
                && is_dns_name(domain)
                && !text
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == ',')
        }
        None => false,
    }
}

/// A TLS-terminating proxy carries every client's connection, so its forwarding headers must
/// be believed (`AERIE_TRUSTED_PROXIES`), or every client would be limited and audited as the
/// proxy's one address. Each network of `AERIE_TLS_TERMINATED_BY_PROXY` must lie inside a
/// trusted network.
pub(super) fn tls_proxy_is_trusted(
    tls: &TlsSettings,
    trusted: &[IpNet],
) -> Result<(), ConfigError> {
    let untrusted = tls
        .terminated_by_proxy
        .iter()
        .find(|proxy| !trusted.iter().any(|network| network.contains(*proxy)));
    match untrusted {
        None => Ok(()),
        Some(proxy) => Err(ConfigError::setting(
            "AERIE_TLS_TERMINATED_BY_PROXY",
            format!(
                "{proxy} is not inside AERIE_TRUSTED_PROXIES: the proxy that ends TLS must also be trusted to name the client"
            ),
        )),
    }
}

/// The listeners: the main one, the HTTP-to-HTTPS redirect (which needs TLS and the public
/// URL it redirects to), the shutdown delay and the per-connection bounds.
pub(super) fn server(
    raw: &RawSettings,
    production: bool,
    tls: &TlsSettings,
) -> Result<ServerSettings, ConfigError> {
    let listen = socket_address(
        "AERIE_LISTEN",
        raw.listen.as_deref().unwrap_or("127.0.0.1:8080"),
    )?;
    let public_url = raw
        .public_url
        .as_deref()
        .map(parse_public_url)
        .transpose()?;
    let http_redirect_listen = match raw.http_redirect_listen.as_deref() {
        None => None,
        Some(text) => {
            if (tls.files.is_none() && tls.acme.is_none()) || public_url.is_none() {
                return Err(ConfigError::setting(
                    "AERIE_HTTP_REDIRECT_LISTEN",
                    "needs AERIE_TLS_CERT/AERIE_TLS_KEY (or AERIE_ACME_DOMAINS) and AERIE_PUBLIC_URL",
                ));
            }
            Some(socket_address("AERIE_HTTP_REDIRECT_LISTEN", text)?)
        }
    };
    let shutdown_delay_secs = within(
        "AERIE_SHUTDOWN_DELAY_SECS",
        raw.shutdown_delay_secs
            .unwrap_or(if production { 5 } else { 0 }),
        0..=300,
    )?;
    Ok(ServerSettings {
        listen,
        http_redirect_listen,
        public_url,
        shutdown_delay: Duration::from_secs(shutdown_delay_secs),
        connection_limits: connection_limits(raw)?,
    })
}

fn connection_limits(raw: &RawSettings) -> Result<ConnectionLimits, ConfigError> {
    Ok(ConnectionLimits {
        max_connections: within(
            "AERIE_MAX_CONNECTIONS",
            raw.max_connections.unwrap_or(1024),
            1..=1_000_000,
        )?,
        max_connections_per_address: within(
            "AERIE_MAX_CONNECTIONS_PER_ADDRESS",
            raw.max_connections_per_address.unwrap_or(64),
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
    })
}

pub(super) fn rate_limits(
    raw: &RawSettings,
    redis: Option<RedisSettings>,
) -> Result<RateLimits, ConfigError> {
    Ok(RateLimits {
        rates: [
            (Policy::Global, &raw.rate_limit_global),
            (Policy::LoginIp, &raw.rate_limit_login_ip),
            (Policy::LoginAccount, &raw.rate_limit_login_account),
            (Policy::LoginPair, &raw.rate_limit_login_pair),
            (Policy::LoginPairSlow, &raw.rate_limit_login_pair_slow),
            (Policy::LoginFailIp, &raw.rate_limit_login_fail_ip),
            (Policy::LoginFailPrefix, &raw.rate_limit_login_fail_prefix),
            (Policy::Register, &raw.rate_limit_register),
            (Policy::Refresh, &raw.rate_limit_refresh),
            (Policy::Mfa, &raw.rate_limit_mfa),
            (Policy::Writes, &raw.rate_limit_writes),
            (Policy::Mail, &raw.rate_limit_mail),
        ]
        .into_iter()
        .map(|(policy, value)| parse_rate(policy, value.as_deref()).map(|r| (policy, r)))
        .collect::<Result<_, _>>()?,
        allowlist: parse_networks(
            "AERIE_RATE_LIMIT_ALLOWLIST",
            raw.rate_limit_allowlist.as_deref(),
        )?,
        redis,
        max_tracked_keys: within(
            "AERIE_RATE_LIMIT_MAX_KEYS",
            raw.rate_limit_max_keys
                .unwrap_or(crate::defense::rate_limit::DEFAULT_MAX_TRACKED_KEYS),
            16..=10_000_000,
        )?,
    })
}

/// `AERIE_REDIS_*`: the rate limiter's shared store, when a URL is given. `rediss://` is TLS
/// with the certificate always verified (against `AERIE_REDIS_CA_FILE` when set, else the
/// system's roots); the password may come from `AERIE_REDIS_PASSWORD_FILE` instead of the URL.
pub(super) fn redis(raw: &RawSettings) -> Result<Option<RedisSettings>, ConfigError> {
    let Some(text) = raw.redis_url.as_deref().filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    // Never echo the URL: it may hold the Redis password.
    let url = url::Url::parse(text).map_err(|_| {
        ConfigError::setting(
            "AERIE_REDIS_URL",
            "not a URL like redis://host:6379 or rediss://host:6380",
        )
    })?;
    let tls = match url.scheme() {
        "redis" if url.host_str().is_some() => false,
        "rediss" if url.host_str().is_some() => true,
        _ => {
            return Err(ConfigError::setting(
                "AERIE_REDIS_URL",
                "must be redis://[user[:password]@]host[:port][/db] or rediss://… (TLS)",
            ));
        }
    };
    // `#insecure` is the client's switch for skipping certificate verification: never.
    if url.fragment().is_some() {
        return Err(ConfigError::setting(
            "AERIE_REDIS_URL",
            "takes no #fragment: the certificate of a rediss:// server is always verified (trust a private CA with AERIE_REDIS_CA_FILE)",
        ));
    }
    let ca_file = raw.redis_ca_file.clone();
    if let Some(path) = &ca_file {
        if !tls {
            return Err(ConfigError::setting(
                "AERIE_REDIS_CA_FILE",
                "is only for a rediss:// (TLS) AERIE_REDIS_URL",
            ));
        }
        if !path.is_file() {
            return Err(ConfigError::setting(
                "AERIE_REDIS_CA_FILE",
                format!("{} is not a readable file", path.display()),
            ));
        }
    }
    let password = match (url.password(), raw.redis_password_file.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::setting(
                "AERIE_REDIS_PASSWORD_FILE",
                "AERIE_REDIS_URL carries a password too: use one",
            ));
        }
        (_, Some(path)) => Some(
            crate::keyfile::read_secret_line(path)
                .map_err(|e| ConfigError::setting("AERIE_REDIS_PASSWORD_FILE", e))?,
        ),
        (_, None) => None,
    };
    let prefix = raw.redis_prefix.as_deref().unwrap_or("aerie:").to_owned();
    if !(1..=64).contains(&prefix.len()) || !prefix.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::setting(
            "AERIE_REDIS_PREFIX",
            "must be 1–64 printable ASCII characters without spaces",
        ));
    }
    let timeout = within(
        "AERIE_REDIS_TIMEOUT_MS",
        raw.redis_timeout_ms.unwrap_or(200),
        10..=5000,
    )?;
    let failure_text = raw.redis_failure.as_deref().unwrap_or("open");
    let failure = StoreFailure::parse(failure_text).ok_or_else(|| {
        ConfigError::setting(
            "AERIE_REDIS_FAILURE",
            format!("'{failure_text}' is not one of open, closed, auth-closed"),
        )
    })?;
    Ok(Some(RedisSettings {
        url: SecretString::from(text.to_owned()),
        password,
        ca_file,
        prefix,
        timeout: Duration::from_millis(timeout),
        failure,
    }))
}
