//! The configuration's validation: defaults, production refusals, and errors that name
//! their setting without echoing secrets.

use std::time::Duration;

use secrecy::ExposeSecret;

use super::*;
use crate::defense::rate_limit::StoreFailure;

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
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
    assert!(
        config
            .database
            .url
            .expose_secret()
            .starts_with("sqlite://data/")
    );
    assert!(config.tokens.generate_key);
    assert_eq!(config.tokens.access_token_ttl, Duration::from_secs(900));
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
        ("AERIE_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.0/24"),
        ("AERIE_AUDIT_KEY_FILE", "/etc/aerie/audit-key"),
        ("AERIE_DATA_KEYS_FILE", "/etc/aerie/data-keys"),
    ])
    .expect("TLS at a trusted proxy is acceptable");
    assert!(behind_proxy.tls.sends_hsts());
}

#[test]
fn production_refuses_missing_audit_key() {
    let error = error_of(&[
        ("AERIE_ENV", "production"),
        ("AERIE_DATABASE_URL", "postgres://db/aerie"),
        ("AERIE_SIGNING_KEY_FILE", "/etc/aerie/key.pem"),
        ("AERIE_CORS_ORIGINS", "none"),
        ("AERIE_TLS_TERMINATED_BY_PROXY", "10.0.0.0/8"),
        ("AERIE_TRUSTED_PROXIES", "10.0.0.0/8"),
    ]);
    assert!(error.contains("AERIE_AUDIT_KEY_FILE"), "{error}");
}

#[test]
fn production_refuses_missing_data_keys() {
    let error = error_of(&[
        ("AERIE_ENV", "production"),
        ("AERIE_DATABASE_URL", "postgres://db/aerie"),
        ("AERIE_SIGNING_KEY_FILE", "/etc/aerie/key.pem"),
        ("AERIE_AUDIT_KEY_FILE", "/etc/aerie/audit-key"),
        ("AERIE_CORS_ORIGINS", "none"),
        ("AERIE_TLS_TERMINATED_BY_PROXY", "10.0.0.0/8"),
        ("AERIE_TRUSTED_PROXIES", "10.0.0.0/8"),
    ]);
    assert!(error.contains("AERIE_DATA_KEYS_FILE"), "{error}");
}

#[test]
fn development_keeps_data_keys_in_the_data_folder_and_reads_the_retired_mfa_key() {
    let config = Config::from_vars([("AERIE_DATA_DIR", "/srv/aerie")]).expect("valid");
    let keys = &config.database.field_keys;
    assert_eq!(keys.file, std::path::Path::new("/srv/aerie/data-keys"));
    assert!(keys.generate);
    assert_eq!(keys.legacy_mfa_key, None);
    let config = Config::from_vars([
        ("AERIE_DATA_KEYS_FILE", "/etc/aerie/data-keys"),
        ("AERIE_MFA_KEY_FILE", "/etc/aerie/mfa-key"),
    ])
    .expect("valid");
    let keys = &config.database.field_keys;
    assert_eq!(keys.file, std::path::Path::new("/etc/aerie/data-keys"));
    assert_eq!(
        keys.legacy_mfa_key.as_deref(),
        Some(std::path::Path::new("/etc/aerie/mfa-key"))
    );
}

#[test]
fn account_deletion_anonymises_unless_told_to_remove() {
    use crate::services::accounts::AccountDeletion;
    let deletion = |vars: &[(&str, &str)]| {
        Config::from_vars(vars.iter().copied())
            .expect("valid")
            .accounts
            .deletion
    };
    assert_eq!(deletion(&[]), AccountDeletion::Anonymise);
    assert_eq!(
        deletion(&[("AERIE_ACCOUNT_DELETION", "remove")]),
        AccountDeletion::Remove
    );
    let error = error_of(&[("AERIE_ACCOUNT_DELETION", "shred")]);
    assert!(error.contains("AERIE_ACCOUNT_DELETION"), "{error}");
}

#[test]
fn mfa_required_roles_name_roles() {
    let config = Config::from_vars([("AERIE_MFA_REQUIRED_ROLES", " admin, editor,admin ")])
        .expect("valid roles");
    assert_eq!(
        config.mfa.required_roles,
        vec![crate::domain::Role::Admin, crate::domain::Role::Editor]
    );
    assert!(
        Config::from_vars([("AERIE_MFA_REQUIRED_ROLES", "")])
            .expect("none")
            .mfa
            .required_roles
            .is_empty()
    );
    let error = error_of(&[("AERIE_MFA_REQUIRED_ROLES", "admin,root")]);
    assert!(
        error.contains("AERIE_MFA_REQUIRED_ROLES") && error.contains("root"),
        "{error}"
    );
}

/// The proxy that ends TLS carries every client: unless its forwarding headers are believed,
/// every client is limited and audited as the proxy. Start-up refuses a TLS proxy outside
/// `AERIE_TRUSTED_PROXIES`, in any environment.
#[test]
fn a_tls_proxy_outside_the_trusted_proxies_is_refused() {
    for (terminated, trusted) in [
        ("10.0.0.0/8", None),
        ("10.0.0.0/8", Some("10.1.0.0/16")),
        ("10.0.0.5, 192.168.1.7", Some("10.0.0.0/24")),
    ] {
        let mut vars = vec![("AERIE_TLS_TERMINATED_BY_PROXY", terminated)];
        vars.extend(trusted.map(|t| ("AERIE_TRUSTED_PROXIES", t)));
        let error = error_of(&vars);
        assert!(
            error.contains("AERIE_TLS_TERMINATED_BY_PROXY")
                && error.contains("AERIE_TRUSTED_PROXIES"),
            "{terminated} / {trusted:?}: {error}"
        );
    }
    for (terminated, trusted) in [
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("10.0.0.5, 192.168.1.7", "10.0.0.0/24, 192.168.0.0/16"),
    ] {
        let config = Config::from_vars([
            ("AERIE_TLS_TERMINATED_BY_PROXY", terminated),
            ("AERIE_TRUSTED_PROXIES", trusted),
        ]);
        assert!(config.is_ok(), "{terminated} / {trusted}");
    }
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
    assert!(error_of(&[("AERIE_ALERT_FAILED_LOGINS", "0")]).contains("AERIE_ALERT_FAILED_LOGINS"));
    assert!(
        error_of(&[("AERIE_AUDIT_CHECKPOINT_SECS", "0")]).contains("AERIE_AUDIT_CHECKPOINT_SECS")
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
    assert!(error_of(&[("AERIE_ALERT_5XX_THRESHOLD", "0")]).contains("AERIE_ALERT_5XX_THRESHOLD"));
    assert!(
        error_of(&[("AERIE_ALERT_5XX_WINDOW_SECS", "0")]).contains("AERIE_ALERT_5XX_WINDOW_SECS")
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
    let loaded = config.metrics.token.as_ref().expect("token");
    assert_eq!(loaded.expose_secret(), token, "trailing newline dropped");
    assert!(!format!("{config:?}").contains(token));
    assert_eq!(
        config.server.shutdown_delay,
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
        error_of(&[("AERIE_PUBLIC_URL", "https://x.io/?next=//evil")]).contains("AERIE_PUBLIC_URL")
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
    assert_eq!(config.cors.origins, ["https://a.io", "https://b.io:8443"]);
}

#[test]
fn bad_values_name_their_setting() {
    assert!(error_of(&[("AERIE_LISTEN", "nowhere")]).contains("AERIE_LISTEN"));
    assert!(error_of(&[("AERIE_ENV", "staging")]).contains("AERIE_ENV"));
    assert!(error_of(&[("AERIE_DATABASE_URL", "mysql://x")]).contains("AERIE_DATABASE_URL"));
    assert!(error_of(&[("AERIE_ACCESS_TOKEN_TTL_SECS", "86400")]).contains("TTL"));
    assert!(error_of(&[("AERIE_REFRESH_GRACE_SECS", "600")]).contains("AERIE_REFRESH_GRACE_SECS"));
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
        error_of(&[("AERIE_RATE_LIMIT_LOGIN_IP", "0/60")]).contains("AERIE_RATE_LIMIT_LOGIN_IP")
    );
    assert!(error_of(&[("AERIE_RATE_LIMIT_WRITES", "ten")]).contains("AERIE_RATE_LIMIT_WRITES"));
    for login_failures in [
        "AERIE_RATE_LIMIT_LOGIN_PAIR",
        "AERIE_RATE_LIMIT_LOGIN_PAIR_SLOW",
        "AERIE_RATE_LIMIT_LOGIN_FAIL_IP",
        "AERIE_RATE_LIMIT_LOGIN_FAIL_PREFIX",
    ] {
        assert!(error_of(&[(login_failures, "5/0")]).contains(login_failures));
    }
    assert!(error_of(&[("AERIE_RATE_LIMIT_MAX_KEYS", "15")]).contains("AERIE_RATE_LIMIT_MAX_KEYS"));
    assert!(error_of(&[("AERIE_ALERT_MAX_TRACKED", "0")]).contains("AERIE_ALERT_MAX_TRACKED"));
    assert!(error_of(&[("AERIE_ALERT_DENIALS", "0")]).contains("AERIE_ALERT_DENIALS"));
    // Above what the sampling records in a 5-minute window (5 per minute): never reachable.
    assert!(error_of(&[("AERIE_ALERT_DENIALS", "26")]).contains("AERIE_ALERT_DENIALS"));
    let denials = Config::from_vars([("AERIE_ALERT_DENIALS", "25")]).expect("valid");
    assert_eq!(denials.alerts.denials, 25);
    let bounded = Config::from_vars([
        ("AERIE_RATE_LIMIT_MAX_KEYS", "5000"),
        ("AERIE_ALERT_MAX_TRACKED", "7000"),
    ])
    .expect("valid");
    assert_eq!(bounded.rate_limits.max_tracked_keys, 5000);
    assert_eq!(bounded.alerts.max_tracked, 7000);
    assert!(error_of(&[("AERIE_MAX_HEADER_BYTES", "100")]).contains("AERIE_MAX_HEADER_BYTES"));
    assert!(error_of(&[("AERIE_MAX_CONNECTIONS", "0")]).contains("AERIE_MAX_CONNECTIONS"));
    assert!(
        error_of(&[("AERIE_MAX_CONNECTIONS_PER_ADDRESS", "0")])
            .contains("AERIE_MAX_CONNECTIONS_PER_ADDRESS")
    );
    assert!(error_of(&[("AERIE_COOKIE_MODE", "on")]).contains("AERIE_COOKIE_MODE"));
}

#[test]
fn one_address_holds_64_connections_unless_configured() {
    let default = Config::from_vars(Vec::<(String, String)>::new()).expect("valid");
    assert_eq!(
        default.server.connection_limits.max_connections_per_address,
        64
    );
    let set = Config::from_vars([("AERIE_MAX_CONNECTIONS_PER_ADDRESS", "8")]).expect("valid");
    assert_eq!(set.server.connection_limits.max_connections_per_address, 8);
}

#[test]
fn database_url_never_prints() {
    let config =
        Config::from_vars([("AERIE_DATABASE_URL", "postgres://u:hunter2@db/x")]).expect("valid");
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[test]
fn alert_webhook_secret_path_never_prints() {
    let config = Config::from_vars([(
        "AERIE_ALERT_WEBHOOK",
        "https://hooks.example.com/services/T0/B0/hunter2",
    )])
    .expect("valid");
    assert!(config.alerts.webhook.is_some());
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[test]
fn redis_settings_are_checked_and_the_password_never_prints() {
    let config =
        Config::from_vars([("AERIE_REDIS_URL", "redis://:hunter2@cache:6379/0")]).expect("valid");
    let redis = config.rate_limits.redis.as_ref().expect("configured");
    assert_eq!(redis.prefix, "aerie:");
    assert_eq!(redis.timeout, Duration::from_millis(200));
    assert_eq!(redis.failure, StoreFailure::Open);
    assert!(!format!("{config:?}").contains("hunter2"));
    for (name, value) in [
        ("AERIE_REDIS_URL", "rediss://:hunter2@cache:6379/#insecure"),
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
    // A CA file is for TLS only, and must exist.
    assert!(with("AERIE_REDIS_CA_FILE", "/etc/hosts").contains("only for a rediss://"));
    let tls = |name, value| error_of(&[("AERIE_REDIS_URL", "rediss://cache"), (name, value)]);
    assert!(tls("AERIE_REDIS_CA_FILE", "/nonexistent/ca.pem").contains("AERIE_REDIS_CA_FILE"));
    let config = Config::from_vars([("AERIE_REDIS_URL", "rediss://aerie@cache:6380")])
        .expect("rediss:// is built in");
    let redis = config.rate_limits.redis.as_ref().expect("configured");
    assert!(redis.password.is_none() && redis.ca_file.is_none());
    // The password from a private file, never beside one in the URL, never printed.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("redis-password");
    crate::keyfile::create(&file, b"hunter2\n").expect("password file");
    let file = file.display().to_string();
    let config = Config::from_vars([
        ("AERIE_REDIS_URL", "rediss://aerie@cache:6380"),
        ("AERIE_REDIS_PASSWORD_FILE", file.as_str()),
    ])
    .expect("valid");
    let redis = config.rate_limits.redis.as_ref().expect("configured");
    assert_eq!(
        redis.password.as_ref().map(ExposeSecret::expose_secret),
        Some("hunter2")
    );
    assert!(!format!("{config:?}").contains("hunter2"));
    let both = error_of(&[
        ("AERIE_REDIS_URL", "rediss://aerie:other@cache:6380"),
        ("AERIE_REDIS_PASSWORD_FILE", file.as_str()),
    ]);
    assert!(
        both.contains("AERIE_REDIS_PASSWORD_FILE") && !both.contains("other"),
        "{both}"
    );
    assert!(
        Config::from_vars(Vec::<(String, String)>::new())
            .expect("valid")
            .rate_limits
            .redis
            .is_none()
    );
}

#[test]
fn markdown_limits_have_defaults_and_ranges() {
    let config = Config::from_vars(Vec::<(String, String)>::new()).expect("valid");
    assert_eq!(
        config.content.limits,
        crate::domain::MarkdownLimits::default()
    );
    assert!(config.content.render_concurrency >= 1);
    let config = Config::from_vars([
        ("AERIE_MARKDOWN_MAX_NESTING_DEPTH", "8"),
        ("AERIE_MARKDOWN_MAX_TABLE_COLUMNS", "10"),
        ("AERIE_MARKDOWN_MAX_TABLE_CELLS", "100"),
        ("AERIE_MARKDOWN_MAX_EXPANSION", "4"),
        ("AERIE_MARKDOWN_MAX_HTML_BYTES", "65536"),
        ("AERIE_MARKDOWN_RENDER_CONCURRENCY", "3"),
    ])
    .expect("valid");
    let limits = config.content.limits;
    assert_eq!(
        (
            limits.max_nesting_depth,
            limits.max_table_columns,
            limits.max_table_cells
        ),
        (8, 10, 100)
    );
    assert_eq!((limits.max_expansion, limits.max_html_bytes), (4, 65536));
    assert_eq!(config.content.render_concurrency, 3);
    for (name, value) in [
        ("AERIE_MARKDOWN_MAX_NESTING_DEPTH", "0"),
        ("AERIE_MARKDOWN_MAX_HTML_BYTES", "100"),
        ("AERIE_MARKDOWN_MAX_EXPANSION", "0"),
        ("AERIE_MARKDOWN_RENDER_CONCURRENCY", "0"),
    ] {
        assert!(error_of(&[(name, value)]).contains(name), "{name}={value}");
    }
}

#[test]
fn body_limits_per_route_group() {
    let config = Config::from_vars(Vec::<(String, String)>::new()).expect("valid");
    assert_eq!(config.http.body_limit_auth_bytes, 64 * 1024);
    assert_eq!(config.http.body_limit_articles_bytes, 256 * 1024);
    let config = Config::from_vars([("AERIE_BODY_LIMIT_AUTH_BYTES", "16384")]).expect("valid");
    assert_eq!(config.http.body_limit_auth_bytes, 16 * 1024);
    assert!(
        error_of(&[("AERIE_BODY_LIMIT_ARTICLES_BYTES", "100")])
            .contains("AERIE_BODY_LIMIT_ARTICLES_BYTES")
    );
}

#[test]
fn growth_limits_have_defaults_and_bounds() {
    let config = Config::from_vars(Vec::<(String, String)>::new()).expect("valid");
    assert_eq!(config.http.tags_listed, 100);
    assert_eq!(config.sessions.max_live_per_user, 20);
    assert_eq!(config.quotas.articles_per_user, 1000);
    assert_eq!(config.quotas.comments_per_day, 500);
    assert_eq!(config.quotas.tags_per_article, 10);
    assert_eq!(config.quotas.body_bytes_per_day, 10 * 1024 * 1024);
    assert_eq!(config.retention.interval, Duration::from_secs(3600));
    assert_eq!(config.retention.grace, Duration::from_secs(86_400));
    assert_eq!(config.audit.retention, Duration::from_secs(365 * 86_400));
    let config = Config::from_vars([
        ("AERIE_TAGS_LISTED", "3"),
        ("AERIE_SESSIONS_PER_USER", "2"),
        ("AERIE_QUOTA_TAGS_PER_ARTICLE", "20"),
        ("AERIE_RETENTION_GRACE_SECS", "0"),
    ])
    .expect("valid");
    assert_eq!(config.http.tags_listed, 3);
    assert_eq!(config.sessions.max_live_per_user, 2);
    assert_eq!(config.quotas.tags_per_article, 20);
    assert_eq!(config.retention.grace, Duration::ZERO);
    for (name, value) in [
        ("AERIE_TAGS_LISTED", "0"),
        ("AERIE_TAGS_LISTED", "1001"),
        ("AERIE_SESSIONS_PER_USER", "0"),
        ("AERIE_QUOTA_ARTICLES_PER_USER", "0"),
        ("AERIE_QUOTA_COMMENTS_PER_DAY", "0"),
        ("AERIE_QUOTA_TAGS_PER_ARTICLE", "21"),
        ("AERIE_QUOTA_BODY_BYTES_PER_DAY", "100"),
        ("AERIE_RETENTION_INTERVAL_SECS", "10"),
        ("AERIE_AUDIT_RETENTION_DAYS", "36501"),
    ] {
        assert!(error_of(&[(name, value)]).contains(name), "{name}={value}");
    }
}

#[test]
fn a_renamed_setting_is_refused_with_its_new_name() {
    let error = error_of(&[("AERIE_ADMIN_GRANT_MAX_AUTH_AGE_SECS", "300")]);
    assert!(error.contains("AERIE_STEP_UP_MAX_AGE_SECS"), "{error}");
}

#[test]
fn step_up_max_age_defaults_to_ten_minutes_and_is_bounded() {
    let config = Config::from_vars(Vec::<(String, String)>::new()).expect("defaults are valid");
    assert_eq!(config.accounts.step_up.max_age, Duration::from_secs(600));
    let config = Config::from_vars([("AERIE_STEP_UP_MAX_AGE_SECS", "120")]).expect("valid");
    assert_eq!(config.accounts.step_up.max_age, Duration::from_secs(120));
    for bad in ["0", "59", "86401"] {
        assert!(
            error_of(&[("AERIE_STEP_UP_MAX_AGE_SECS", bad)]).contains("AERIE_STEP_UP_MAX_AGE_SECS"),
            "{bad}"
        );
    }
}

#[test]
fn the_realworld_profile_makes_tokens_last_the_session_and_refuses_what_it_would_weaken() {
    use crate::auth::ClientProfile;
    let standard = Config::from_vars([("AERIE_CLIENT_PROFILE", "standard")]).expect("valid");
    assert_eq!(standard.tokens.profile, ClientProfile::Standard);
    assert_eq!(standard.tokens.access_token_ttl, Duration::from_secs(900));
    let realworld = Config::from_vars([
        ("AERIE_CLIENT_PROFILE", "realworld"),
        ("AERIE_SESSION_IDLE_TIMEOUT_SECS", "3600"),
        ("AERIE_SESSION_MAX_LIFETIME_SECS", "86400"),
    ])
    .expect("valid");
    assert_eq!(realworld.tokens.profile, ClientProfile::RealWorld);
    assert_eq!(
        realworld.tokens.access_token_ttl,
        Duration::from_secs(86400),
        "as long as the session may live"
    );
    assert_eq!(realworld.sessions.idle_timeout, Duration::from_secs(3600));
    for refused in [
        vec![("AERIE_CLIENT_PROFILE", "spa")],
        vec![
            ("AERIE_CLIENT_PROFILE", "realworld"),
            ("AERIE_ACCESS_TOKEN_TTL_SECS", "900"),
        ],
        vec![
            ("AERIE_CLIENT_PROFILE", "realworld"),
            ("AERIE_COOKIE_MODE", "always"),
        ],
    ] {
        let error = error_of(&refused);
        assert!(
            error.contains("AERIE_CLIENT_PROFILE"),
            "{refused:?}: {error}"
        );
    }
}

#[test]
fn acme_settings_are_parsed_with_named_directories_and_checked() {
    let config = Config::from_vars([
        ("AERIE_ACME_DOMAINS", " API.example.com., www.example.com "),
        ("AERIE_ACME_CONTACT", "ops@example.com"),
        ("AERIE_ACME_DIRECTORY", "letsencrypt-staging"),
        ("AERIE_DATA_DIR", "/var/lib/aerie"),
    ])
    .expect("valid");
    let acme = config.tls.acme.as_ref().expect("ACME on");
    assert_eq!(acme.domains, ["api.example.com", "www.example.com"]);
    assert_eq!(acme.contact, "mailto:ops@example.com");
    assert_eq!(acme.directory, crate::acme::LETS_ENCRYPT_STAGING);
    assert_eq!(acme.cache, std::path::Path::new("/var/lib/aerie/acme"));
    assert_eq!(acme.check_interval, Duration::from_secs(60));
    assert!(config.tls.sends_hsts());
    let default = Config::from_vars([
        ("AERIE_ACME_DOMAINS", "a.example.com"),
        ("AERIE_ACME_CONTACT", "mailto:ops@example.com"),
    ])
    .expect("valid");
    assert_eq!(
        default.tls.acme.expect("ACME on").directory,
        crate::acme::LETS_ENCRYPT
    );
    let refused = |vars: &[(&str, &str)]| error_of(vars);
    for (domains, contact, directory, setting) in [
        (
            "*.example.com",
            "ops@example.com",
            "letsencrypt",
            "AERIE_ACME_DOMAINS",
        ),
        (
            "192.0.2.1",
            "ops@example.com",
            "letsencrypt",
            "AERIE_ACME_DOMAINS",
        ),
        (
            "a..example.com",
            "ops@example.com",
            "letsencrypt",
            "AERIE_ACME_DOMAINS",
        ),
        (
            "a.example.com",
            "not an email",
            "letsencrypt",
            "AERIE_ACME_CONTACT",
        ),
        (
            "a.example.com",
            "ops@example.com",
            "http://ca.example/dir",
            "AERIE_ACME_DIRECTORY",
        ),
        (
            "a.example.com",
            "ops@example.com",
            "zerossl-maybe",
            "AERIE_ACME_DIRECTORY",
        ),
    ] {
        let error = refused(&[
            ("AERIE_ACME_DOMAINS", domains),
            ("AERIE_ACME_CONTACT", contact),
            ("AERIE_ACME_DIRECTORY", directory),
        ]);
        assert!(
            error.contains(setting),
            "{domains} {contact} {directory}: {error}"
        );
    }
    assert!(refused(&[("AERIE_ACME_DOMAINS", "a.example.com")]).contains("AERIE_ACME_CONTACT"));
    assert!(
        refused(&[
            ("AERIE_ACME_DOMAINS", "a.example.com"),
            ("AERIE_ACME_CONTACT", "ops@example.com"),
            ("AERIE_TLS_CERT", "/c.pem"),
            ("AERIE_TLS_KEY", "/k.pem"),
        ])
        .contains("exclude each other")
    );
    // The redirect listener (HTTP-01) is allowed with ACME alone.
    Config::from_vars([
        ("AERIE_ACME_DOMAINS", "a.example.com"),
        ("AERIE_ACME_CONTACT", "ops@example.com"),
        ("AERIE_HTTP_REDIRECT_LISTEN", "127.0.0.1:0"),
        ("AERIE_PUBLIC_URL", "https://a.example.com"),
    ])
    .expect("redirect listener with ACME");
}

#[test]
fn mail_goes_to_eml_files_in_development_and_is_off_in_production_without_smtp() {
    let config = Config::from_vars(Vec::<(String, String)>::new()).expect("defaults");
    assert!(matches!(
        &config.mail.delivery,
        crate::mail::Delivery::Files(dir) if dir.ends_with("outbox")
    ));
    let production = [
        ("AERIE_ENV", "production"),
        ("AERIE_DATABASE_URL", "postgres://db/aerie"),
        ("AERIE_SIGNING_KEY_FILE", "/etc/aerie/key.pem"),
        ("AERIE_CORS_ORIGINS", "none"),
        ("AERIE_TLS_TERMINATED_BY_PROXY", "10.0.0.0/8"),
        ("AERIE_TRUSTED_PROXIES", "10.0.0.0/8"),
        ("AERIE_AUDIT_KEY_FILE", "/etc/aerie/audit-key"),
        ("AERIE_DATA_KEYS_FILE", "/etc/aerie/data-keys"),
    ];
    let config = Config::from_vars(production).expect("valid production settings");
    assert!(!config.mail.enabled(), "no SMTP: production sends no mail");
    let mut verified = production.to_vec();
    verified.push(("AERIE_REQUIRE_VERIFIED_EMAIL", "true"));
    let error = error_of(&verified);
    assert!(error.contains("AERIE_REQUIRE_VERIFIED_EMAIL"), "{error}");
    let mut smtp = production.to_vec();
    smtp.push(("AERIE_SMTP_URL", "smtps://relay.example"));
    let error = error_of(&smtp);
    assert!(error.contains("AERIE_APP_URL"), "{error}");
}

#[test]
fn smtp_urls_require_tls_and_never_print_their_password() {
    let config = Config::from_vars([
        (
            "AERIE_SMTP_URL",
            "smtp://mailer:s3cret-pass@relay.example:2525",
        ),
        ("AERIE_APP_URL", "https://app.example/"),
    ])
    .expect("valid");
    let crate::mail::Delivery::Smtp(smtp) = &config.mail.delivery else {
        panic!("SMTP delivery expected");
    };
    assert_eq!(smtp.security, crate::mail::SmtpSecurity::StartTls);
    assert_eq!((smtp.host.as_str(), smtp.port), ("relay.example", 2525));
    assert_eq!(smtp.username.as_deref(), Some("mailer"));
    assert_eq!(config.mail.app_url, "https://app.example");
    assert!(!format!("{config:?}").contains("s3cret-pass"));
    let wrapper = Config::from_vars([("AERIE_SMTP_URL", "smtps://relay.example")]).expect("valid");
    let crate::mail::Delivery::Smtp(smtp) = &wrapper.mail.delivery else {
        panic!("SMTP delivery expected");
    };
    assert_eq!(
        (smtp.security, smtp.port),
        (crate::mail::SmtpSecurity::Wrapper, 465)
    );
    for (url, setting) in [
        ("http://relay.example", "AERIE_SMTP_URL"),
        ("smtp://relay.example?tls=opportunistic", "AERIE_SMTP_URL"),
        ("smtp://user:pw@relay.example?tls=none", "AERIE_SMTP_URL"),
    ] {
        let error = error_of(&[("AERIE_SMTP_URL", url)]);
        assert!(error.contains(setting), "{url}: {error}");
        assert!(!error.contains("pw@"), "{error}");
    }
    let error = error_of(&[("AERIE_APP_URL", "javascript:alert(1)")]);
    assert!(error.contains("AERIE_APP_URL"), "{error}");
    let error = error_of(&[("AERIE_MAIL_FROM", "not a mailbox")]);
    assert!(error.contains("AERIE_MAIL_FROM"), "{error}");
}
