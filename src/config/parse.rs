//! Parsers for single values: each names the setting it reads in its error, and none echoes
//! a secret (a Redis URL, a metrics token) back.

use std::net::SocketAddr;
use std::path::Path;

use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};

use super::ConfigError;
use crate::defense::rate_limit::{Policy, Rate};

/// An `address:port`, or the setting's name in the error.
pub(super) fn socket_address(name: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse()
        .map_err(|_| ConfigError::setting(name, format!("'{text}' is not an address:port")))
}

/// `AERIE_CORS_ORIGINS`: a comma-separated list of exact origins, or `none`. Production must
/// say which (even if `none`), so cross-origin access is always a decision.
pub(super) fn parse_cors_origins(
    value: Option<&str>,
    production: bool,
) -> Result<Vec<String>, ConfigError> {
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
pub(super) fn parse_public_url(value: &str) -> Result<String, ConfigError> {
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
pub(super) fn parse_webhook(value: &str) -> Result<String, ConfigError> {
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
pub(super) fn parse_metrics_token(
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
pub(super) fn parse_networks(name: &str, value: Option<&str>) -> Result<Vec<IpNet>, ConfigError> {
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
pub(super) fn within<T: PartialOrd + std::fmt::Display>(
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
pub(super) fn parse_rate(policy: Policy, value: Option<&str>) -> Result<Rate, ConfigError> {
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
pub(super) fn body_limit(
    name: &str,
    value: Option<usize>,
    default: usize,
) -> Result<usize, ConfigError> {
    within(name, value.unwrap_or(default), 1024..=16 * 1024 * 1024)
}
