//! The sections behind the HTTP edge: database, tokens, passwords, sessions, the audit trail
//! and its alerts, logs and metrics. One function per section, each turning raw values into
//! that subsystem's own settings type.

use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;

use super::ConfigError;
use super::parse::{parse_metrics_token, parse_webhook, socket_address, within};
use super::raw::RawSettings;
use crate::audit::{AlertSettings, AuditSettings};
use crate::auth::password::PasswordSettings;
use crate::auth::{ClientProfile, SessionTimes, TokenSettings};
use crate::domain::{EXPANSION_FLOOR_BYTES, MarkdownLimits, Role};
use crate::field_keys::FieldKeySettings;
use crate::http::cookies::CookieMode;
use crate::metrics::MetricsSettings;
use crate::services::StepUp;
use crate::services::accounts::{AccountDeletion, AccountRules};
use crate::services::markdown::ContentSettings;
use crate::services::mfa::MfaSettings;
use crate::services::quotas::QuotaSettings;
use crate::services::retention::RetentionSettings;
use crate::store::DatabaseSettings;
use crate::telemetry::{LogFormat, LogSettings};

const DAY: u64 = 24 * 60 * 60;

pub(super) fn database(
    raw: &RawSettings,
    production: bool,
    data_dir: &Path,
) -> Result<DatabaseSettings, ConfigError> {
    let url = match &raw.database_url {
        Some(url) => url.clone(),
        None if production => {
            return Err(ConfigError::setting(
                "AERIE_DATABASE_URL",
                "required in production (sqlite://... or postgres://...)",
            ));
        }
        None => format!("sqlite://{}?mode=rwc", data_dir.join("aerie.db").display()),
    };
    if !(url.starts_with("sqlite:") || url.starts_with("postgres")) {
        return Err(ConfigError::setting(
            "AERIE_DATABASE_URL",
            "must start with sqlite:// or postgres://",
        ));
    }
    Ok(DatabaseSettings {
        // Filled in by `field_keys` (validated later, with the other key files).
        field_keys: FieldKeySettings {
            file: data_dir.join("data-keys"),
            generate: !production,
            legacy_mfa_key: None,
        },
        url: SecretString::from(url),
        max_connections: raw.database_max_connections.unwrap_or(10).max(1),
        auto_migrate: raw.auto_migrate.unwrap_or(!production),
        statement_budget: Duration::from_millis(within(
            "AERIE_DATABASE_STATEMENT_BUDGET_MS",
            raw.database_statement_budget_ms.unwrap_or(5_000),
            1..=600_000,
        )?),
    })
}

pub(super) fn tokens(
    raw: &RawSettings,
    production: bool,
    data_dir: &Path,
) -> Result<TokenSettings, ConfigError> {
    let key_file = match &raw.signing_key_file {
        Some(path) => path.clone(),
        None if production => {
            return Err(ConfigError::setting(
                "AERIE_SIGNING_KEY_FILE",
                "required in production (create one with `aerie keys generate --out FILE`)",
            ));
        }
        None => data_dir.join("signing-key.pem"),
    };
    let ttl_secs = raw.access_token_ttl_secs.unwrap_or(15 * 60);
    if !(60..=3600).contains(&ttl_secs) {
        return Err(ConfigError::setting(
            "AERIE_ACCESS_TOKEN_TTL_SECS",
            "must be between 60 and 3600 seconds",
        ));
    }
    Ok(TokenSettings {
        key_file,
        generate_key: !production,
        issuer: raw.token_issuer.clone().unwrap_or_else(|| "aerie".into()),
        audience: raw
            .token_audience
            .clone()
            .unwrap_or_else(|| "aerie-api".into()),
        access_token_ttl: Duration::from_secs(ttl_secs),
        profile: ClientProfile::Standard,
    })
}

/// `AERIE_CLIENT_PROFILE`: `standard` (short access tokens that clients refresh) or
/// `realworld` (for clients that never refresh: the access token lives as long as the
/// session may, the idle timeout is checked on every use). The profile is refused where it
/// would weaken or contradict another setting, rather than quietly adjusted.
pub(super) fn client_profile(
    raw: &RawSettings,
    tokens: TokenSettings,
    sessions: &SessionTimes,
    cookies: CookieMode,
) -> Result<TokenSettings, ConfigError> {
    const SETTING: &str = "AERIE_CLIENT_PROFILE";
    match raw.client_profile.as_deref() {
        None | Some("standard") => return Ok(tokens),
        Some("realworld") => {}
        Some(other) => {
            return Err(ConfigError::setting(
                SETTING,
                format!("'{other}' is neither 'standard' nor 'realworld'"),
            ));
        }
    }
    if raw.access_token_ttl_secs.is_some() {
        return Err(ConfigError::setting(
            SETTING,
            "'realworld' makes access tokens live as long as their session (AERIE_SESSION_MAX_LIFETIME_SECS); unset AERIE_ACCESS_TOKEN_TTL_SECS, which it replaces",
        ));
    }
    if cookies == CookieMode::Always {
        return Err(ConfigError::setting(
            SETTING,
            "'realworld' is for clients that read the token from the login answer, and AERIE_COOKIE_MODE=always never puts it there; a browser front end that can refresh needs no profile (see docs/browser-clients.md)",
        ));
    }
    // The idle timeout is at least the standard access-token lifetime (15 min, checked with
    // the sessions), thirty times the interval at which instances share activity: a session
    // used last on another instance ends at most that interval early.
    Ok(TokenSettings {
        access_token_ttl: sessions.max_lifetime,
        profile: ClientProfile::RealWorld,
        ..tokens
    })
}

pub(super) fn passwords(
    raw: &RawSettings,
    production: bool,
) -> Result<PasswordSettings, ConfigError> {
    let min_score = raw.password_min_score.unwrap_or(3);
    if min_score > 4 || (production && min_score < 3) {
        return Err(ConfigError::setting(
            "AERIE_PASSWORD_MIN_SCORE",
            "must be 0–4, and at least 3 in production",
        ));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(PasswordSettings {
        hash_concurrency: raw.password_hash_concurrency.unwrap_or(cores).max(1),
        min_score,
    })
}

/// The Markdown limits (each within a range that keeps a render bounded) and how many
/// renders may run at once (default: the number of cores).
pub(super) fn content(raw: &RawSettings) -> Result<ContentSettings, ConfigError> {
    let defaults = MarkdownLimits::default();
    let setting = |name: &str, value: Option<usize>, default: usize, range| {
        within(name, value.unwrap_or(default), range)
    };
    let limits = MarkdownLimits {
        max_nesting_depth: setting(
            "AERIE_MARKDOWN_MAX_NESTING_DEPTH",
            raw.markdown_max_nesting_depth,
            defaults.max_nesting_depth,
            1..=1000,
        )?,
        max_table_columns: setting(
            "AERIE_MARKDOWN_MAX_TABLE_COLUMNS",
            raw.markdown_max_table_columns,
            defaults.max_table_columns,
            1..=1000,
        )?,
        max_table_cells: setting(
            "AERIE_MARKDOWN_MAX_TABLE_CELLS",
            raw.markdown_max_table_cells,
            defaults.max_table_cells,
            1..=1_000_000,
        )?,
        max_expansion: setting(
            "AERIE_MARKDOWN_MAX_EXPANSION",
            raw.markdown_max_expansion,
            defaults.max_expansion,
            1..=1000,
        )?,
        max_html_bytes: setting(
            "AERIE_MARKDOWN_MAX_HTML_BYTES",
            raw.markdown_max_html_bytes,
            defaults.max_html_bytes,
            EXPANSION_FLOOR_BYTES..=64 * 1024 * 1024,
        )?,
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(ContentSettings {
        limits,
        render_concurrency: setting(
            "AERIE_MARKDOWN_RENDER_CONCURRENCY",
            raw.markdown_render_concurrency,
            cores,
            1..=1024,
        )?,
    })
}

/// Granting the admin role needs a recent login (ten minutes by default); `http://` profile
/// images are for development only.
pub(super) fn accounts(raw: &RawSettings, production: bool) -> Result<AccountRules, ConfigError> {
    let step_up_secs = within(
        "AERIE_STEP_UP_MAX_AGE_SECS",
        raw.step_up_max_age_secs.unwrap_or(600),
        60..=86_400,
    )?;
    let deletion = match raw.account_deletion.as_deref() {
        None | Some("anonymise") => AccountDeletion::Anonymise,
        Some("remove") => AccountDeletion::Remove,
        Some(other) => {
            return Err(ConfigError::setting(
                "AERIE_ACCOUNT_DELETION",
                format!("'{other}' is neither 'anonymise' nor 'remove'"),
            ));
        }
    };
    Ok(AccountRules {
        allow_http_images: !production,
        step_up: StepUp {
            max_age: Duration::from_secs(step_up_secs),
        },
        deletion,
    })
}

/// A session outlives its access tokens and is bounded; the grace window stays short, since
/// a longer one lets a stolen refresh token be replayed unnoticed.
pub(super) fn sessions(
    raw: &RawSettings,
    access_token_ttl: Duration,
) -> Result<SessionTimes, ConfigError> {
    let ttl_secs = access_token_ttl.as_secs();
    let grace = raw.refresh_grace_secs.unwrap_or(5);
    if grace > 60 {
        return Err(ConfigError::setting(
            "AERIE_REFRESH_GRACE_SECS",
            "must be between 0 and 60 seconds: a longer window lets a stolen token be replayed unnoticed",
        ));
    }
    let idle = raw.session_idle_timeout_secs.unwrap_or(7 * DAY);
    if !(ttl_secs..=90 * DAY).contains(&idle) {
        return Err(ConfigError::setting(
            "AERIE_SESSION_IDLE_TIMEOUT_SECS",
            format!("must be between the access-token lifetime ({ttl_secs} s) and 90 days"),
        ));
    }
    let max = raw.session_max_lifetime_secs.unwrap_or(30 * DAY);
    if !(idle..=365 * DAY).contains(&max) {
        return Err(ConfigError::setting(
            "AERIE_SESSION_MAX_LIFETIME_SECS",
            "must be between the idle timeout and 365 days",
        ));
    }
    Ok(SessionTimes {
        refresh_grace: Duration::from_secs(grace),
        idle_timeout: Duration::from_secs(idle),
        max_lifetime: Duration::from_secs(max),
        max_live_per_user: within(
            "AERIE_SESSIONS_PER_USER",
            raw.sessions_per_user.unwrap_or(20),
            1..=1000,
        )?,
    })
}

/// Per-user content quotas: roomy for a person, small for a script filling the disk.
pub(super) fn quotas(raw: &RawSettings) -> Result<QuotaSettings, ConfigError> {
    Ok(QuotaSettings {
        articles_per_user: within(
            "AERIE_QUOTA_ARTICLES_PER_USER",
            raw.quota_articles_per_user.unwrap_or(1000),
            1..=1_000_000,
        )?,
        comments_per_day: within(
            "AERIE_QUOTA_COMMENTS_PER_DAY",
            raw.quota_comments_per_day.unwrap_or(500),
            1..=1_000_000,
        )?,
        tags_per_article: within(
            "AERIE_QUOTA_TAGS_PER_ARTICLE",
            raw.quota_tags_per_article.unwrap_or(10),
            1..=20,
        )?,
        body_bytes_per_day: within(
            "AERIE_QUOTA_BODY_BYTES_PER_DAY",
            raw.quota_body_bytes_per_day.unwrap_or(10 * 1024 * 1024),
            1024..=1024 * 1024 * 1024,
        )?,
    })
}

/// How often expired sessions are deleted, and how long after they ended.
pub(super) fn retention(raw: &RawSettings) -> Result<RetentionSettings, ConfigError> {
    let interval = within(
        "AERIE_RETENTION_INTERVAL_SECS",
        raw.retention_interval_secs.unwrap_or(3600),
        60..=DAY,
    )?;
    let grace = within(
        "AERIE_RETENTION_GRACE_SECS",
        raw.retention_grace_secs.unwrap_or(DAY),
        0..=365 * DAY,
    )?;
    Ok(RetentionSettings {
        interval: Duration::from_secs(interval),
        grace: Duration::from_secs(grace),
    })
}

pub(super) fn log(raw: &RawSettings, production: bool) -> Result<LogSettings, ConfigError> {
    let format = match raw.log_format.as_deref() {
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
    Ok(LogSettings {
        format,
        filter: raw.log.clone().unwrap_or_else(|| "info".into()),
    })
}

pub(super) fn audit(
    raw: &RawSettings,
    production: bool,
    data_dir: &Path,
) -> Result<AuditSettings, ConfigError> {
    let key_file = match &raw.audit_key_file {
        Some(path) => path.clone(),
        None if production => {
            return Err(ConfigError::setting(
                "AERIE_AUDIT_KEY_FILE",
                "required in production (32 random bytes, mode 0600: `head -c 32 /dev/urandom > FILE && chmod 600 FILE`)",
            ));
        }
        None => data_dir.join("audit-key"),
    };
    let checkpoint_secs = raw.audit_checkpoint_secs.unwrap_or(300);
    if !(1..=86_400).contains(&checkpoint_secs) {
        return Err(ConfigError::setting(
            "AERIE_AUDIT_CHECKPOINT_SECS",
            "must be between 1 and 86400 seconds",
        ));
    }
    let retention_days = within(
        "AERIE_AUDIT_RETENTION_DAYS",
        raw.audit_retention_days.unwrap_or(365),
        0..=36_500,
    )?;
    Ok(AuditSettings {
        key_file,
        generate_key: !production,
        checkpoint_interval: Duration::from_secs(checkpoint_secs),
        retention: Duration::from_secs(retention_days * DAY),
    })
}

/// The field-encryption keys (like the audit key: their own file, required in production,
/// generated in development). The retired MFA key is kept only to open what it sealed: the
/// one named by `AERIE_MFA_KEY_FILE`, or in development the one an older build generated
/// into the data folder.
pub(super) fn field_keys(
    raw: &RawSettings,
    production: bool,
    data_dir: &Path,
) -> Result<FieldKeySettings, ConfigError> {
    let file = match &raw.data_keys_file {
        Some(path) => path.clone(),
        None if production => {
            return Err(ConfigError::setting(
                "AERIE_DATA_KEYS_FILE",
                "required in production (create it with `aerie keys generate-data --out FILE`); it seals emails and TOTP secrets, so keep a copy with the database backups' keys",
            ));
        }
        None => data_dir.join("data-keys"),
    };
    let old_development_key = data_dir.join("mfa-key");
    let legacy_mfa_key = match &raw.mfa_key_file {
        Some(path) => Some(path.clone()),
        None if !production && old_development_key.exists() => Some(old_development_key),
        None => None,
    };
    Ok(FieldKeySettings {
        file,
        generate: !production,
        legacy_mfa_key,
    })
}

/// The roles that must have MFA.
pub(super) fn mfa(raw: &RawSettings) -> Result<MfaSettings, ConfigError> {
    let mut required_roles = Vec::new();
    for name in raw
        .mfa_required_roles
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        let role = Role::parse(name).ok_or_else(|| {
            ConfigError::setting(
                "AERIE_MFA_REQUIRED_ROLES",
                format!("'{name}' is not a role (user, editor, admin)"),
            )
        })?;
        if !required_roles.contains(&role) {
            required_roles.push(role);
        }
    }
    Ok(MfaSettings { required_roles })
}

pub(super) fn alerts(raw: &RawSettings) -> Result<AlertSettings, ConfigError> {
    let webhook = raw
        .alert_webhook
        .as_deref()
        .map(parse_webhook)
        .transpose()?;
    let failed_logins = raw.alert_failed_logins.unwrap_or(10);
    if failed_logins == 0 {
        return Err(ConfigError::setting(
            "AERIE_ALERT_FAILED_LOGINS",
            "must be at least 1",
        ));
    }
    let window_secs = raw.alert_failed_login_window_secs.unwrap_or(300);
    if !(1..=86_400).contains(&window_secs) {
        return Err(ConfigError::setting(
            "AERIE_ALERT_FAILED_LOGIN_WINDOW_SECS",
            "must be between 1 and 86400 seconds",
        ));
    }
    let server_error_threshold = within(
        "AERIE_ALERT_5XX_THRESHOLD",
        raw.alert_5xx_threshold.unwrap_or(20),
        1..=1_000_000,
    )?;
    let server_error_window_secs = within(
        "AERIE_ALERT_5XX_WINDOW_SECS",
        raw.alert_5xx_window_secs.unwrap_or(60),
        1..=86_400,
    )?;
    let max_tracked = within(
        "AERIE_ALERT_MAX_TRACKED",
        raw.alert_max_tracked
            .unwrap_or(crate::audit::alerts::DEFAULT_MAX_TRACKED),
        16..=10_000_000,
    )?;
    let denials = within(
        "AERIE_ALERT_DENIALS",
        raw.alert_denials.unwrap_or(5),
        1..=denials_sampled_per_window(window_secs),
    )?;
    Ok(AlertSettings {
        webhook,
        failed_logins,
        failed_login_window: Duration::from_secs(window_secs),
        server_error_threshold,
        server_error_window: Duration::from_secs(server_error_window_secs),
        max_tracked,
        denials,
    })
}

/// The most refusals of one user or address the trail records within the alert window: a
/// threshold above it could never be reached.
fn denials_sampled_per_window(window_secs: u64) -> u32 {
    use crate::services::denials::{PER_KEY, SAMPLE_WINDOW};
    let windows = window_secs.div_ceil(SAMPLE_WINDOW.as_secs()).max(1);
    u32::try_from(windows)
        .unwrap_or(u32::MAX)
        .saturating_mul(PER_KEY)
}

pub(super) fn metrics(raw: &RawSettings) -> Result<MetricsSettings, ConfigError> {
    let token = parse_metrics_token(raw.metrics_token.clone(), raw.metrics_token_file.as_deref())?;
    let listen = raw
        .metrics_listen
        .as_deref()
        .map(|text| socket_address("AERIE_METRICS_LISTEN", text))
        .transpose()?;
    Ok(MetricsSettings { token, listen })
}
