//! The mail section: `AERIE_SMTP_URL` and friends.

use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;

use super::ConfigError;
use super::parse::within;
use super::raw::RawSettings;
use crate::mail::{Delivery, MailSettings, SmtpSecurity, SmtpSettings};

pub(super) fn mail(
    raw: &RawSettings,
    production: bool,
    data_dir: &Path,
) -> Result<MailSettings, ConfigError> {
    let defaults = MailSettings::default();
    let delivery = match raw.smtp_url.as_deref() {
        Some(url) => Delivery::Smtp(smtp(raw, url, production)?),
        None if production => Delivery::Off,
        None => Delivery::Files(data_dir.join("outbox")),
    };
    let require_verified_email = raw.require_verified_email.unwrap_or(false);
    if require_verified_email && matches!(delivery, Delivery::Off) {
        return Err(ConfigError::setting(
            "AERIE_REQUIRE_VERIFIED_EMAIL",
            "needs mail: set AERIE_SMTP_URL (production sends no mail without it)",
        ));
    }
    let app_url = match raw.app_url.as_deref() {
        Some(text) => app_url(text, production)?,
        None if production && !matches!(delivery, Delivery::Off) => {
            return Err(ConfigError::setting(
                "AERIE_APP_URL",
                "is required with AERIE_SMTP_URL in production: mailed links are built from it alone",
            ));
        }
        None => defaults.app_url.clone(),
    };
    let from = raw.mail_from.clone().unwrap_or(defaults.from);
    if from.parse::<lettre::message::Mailbox>().is_err() {
        return Err(ConfigError::setting(
            "AERIE_MAIL_FROM",
            "is not a mailbox (`Name <address@example.com>` or `address@example.com`)",
        ));
    }
    let retry_max = within(
        "AERIE_MAIL_RETRY_MAX_SECS",
        raw.mail_retry_max_secs.unwrap_or(600),
        1..=86_400,
    )?;
    let alert_after = within(
        "AERIE_MAIL_ALERT_AFTER_SECS",
        raw.mail_alert_after_secs.unwrap_or(900),
        1..=604_800,
    )?;
    Ok(MailSettings {
        delivery,
        from,
        app_url,
        retry_max: Duration::from_secs(retry_max),
        retry_base: Duration::from_secs(1).min(Duration::from_secs(retry_max)),
        alert_after: Duration::from_secs(alert_after),
        require_verified_email,
    })
}

fn app_url(text: &str, production: bool) -> Result<String, ConfigError> {
    let url = url::Url::parse(text)
        .map_err(|e| ConfigError::setting("AERIE_APP_URL", format!("is not a URL: {e}")))?;
    let scheme_ok = url.scheme() == "https" || (!production && url.scheme() == "http");
    if !scheme_ok || url.host_str().is_none() || url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::setting(
            "AERIE_APP_URL",
            "must be an https:// URL (http:// in development) with a host and no query or fragment",
        ));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

fn smtp(raw: &RawSettings, text: &str, production: bool) -> Result<SmtpSettings, ConfigError> {
    let bad = |problem: &str| ConfigError::setting("AERIE_SMTP_URL", problem);
    let url = url::Url::parse(text).map_err(|_| bad("is not a URL"))?;
    let tls_none = url.query_pairs().any(|(k, v)| k == "tls" && v == "none");
    let unknown_query = url.query_pairs().any(|(k, v)| !(k == "tls" && v == "none"));
    if unknown_query {
        return Err(bad("takes no query but `?tls=none` (development only)"));
    }
    let (security, default_port) = match (url.scheme(), tls_none) {
        ("smtps", false) => (SmtpSecurity::Wrapper, 465),
        ("smtp", false) => (SmtpSecurity::StartTls, 587),
        ("smtp", true) if !production => (SmtpSecurity::None, 25),
        ("smtp", true) => return Err(bad("`?tls=none` sends mail in clear: development only")),
        _ => {
            return Err(bad(
                "must start with smtp:// (STARTTLS required) or smtps://",
            ));
        }
    };
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let username = Some(url.username())
        .filter(|u| !u.is_empty())
        .map(percent_decode)
        .transpose()
        .map_err(|()| bad("the user name is not valid percent-encoded UTF-8"))?;
    let in_url = url
        .password()
        .map(percent_decode)
        .transpose()
        .map_err(|()| bad("the password is not valid percent-encoded UTF-8"))?;
    let password = match (in_url, raw.smtp_password_file.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "carries a password and AERIE_SMTP_PASSWORD_FILE is set: use one",
            ));
        }
        (Some(password), None) => Some(SecretString::from(password)),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::setting(
                    "AERIE_SMTP_PASSWORD_FILE",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            Some(SecretString::from(text.trim_end().to_owned()))
        }
        (None, None) => None,
    };
    if password.is_some() && username.is_none() {
        return Err(bad("a password needs a user name (smtp://USER@host)"));
    }
    if password.is_some() && security == SmtpSecurity::None {
        return Err(bad("credentials are never sent in clear: drop `?tls=none`"));
    }
    if let Some(path) = &raw.smtp_ca_file
        && !path.is_file()
    {
        return Err(ConfigError::setting(
            "AERIE_SMTP_CA_FILE",
            format!("{} is not a readable file", path.display()),
        ));
    }
    Ok(SmtpSettings {
        host,
        port: url.port().unwrap_or(default_port),
        security,
        username,
        password,
        ca_file: raw.smtp_ca_file.clone(),
        timeout: Duration::from_secs(30),
    })
}

fn percent_decode(text: &str) -> Result<String, ()> {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .ok_or(())
}
