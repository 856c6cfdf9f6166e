//! `aerie doctor`: checks a deployment's configuration against the production rules before
//! it serves anyone, and says which RustSec advisory snapshot the build was checked against.
//!
//! Guards against a deployment that starts but is not what production means: development
//! mode left on, a production default overridden (API docs public, migrations at start,
//! pretty logs), a key file missing or readable by others, or a setting that weakens a
//! defence ([`crate::config::warnings`]). Each finding names the setting to change. It reads
//! settings and file modes only: no database, no key contents, no network.
//!
//! `aerie doctor --live` then checks what the settings point at, as a start would find it:
//! the key files load; the database answers, holds every migration of this build, and is
//! reached with no more rights than the server needs; the audit key seals the chain's
//! newest row; the signing keys agree with the set the other instances published; Redis
//! answers over the configured TLS with the configured credentials. It changes nothing and
//! prints no secret.

#![expect(clippy::print_stdout, reason = "the CLI's output is its interface")]

use std::path::Path;
use std::process::ExitCode;

use crate::config::{Config, ConfigError};
use crate::defense::rate_limit::Probe;
use crate::keyfile::{PrivateFileError, check_private};
use crate::server::signing_keys::{self, KeySet};
use crate::telemetry::LogFormat;

/// The RustSec advisory database snapshot this build's dependencies were checked against:
/// CI sets `ADVISORY_DB_SNAPSHOT` (the snapshot's date and commit) for every build it makes
/// and checks (`.ci/run`); any other build does not know.
pub const ADVISORY_SNAPSHOT: Option<&str> = option_env!("ADVISORY_DB_SNAPSHOT");

/// One way the configuration falls short of production: the setting to change and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub setting: String,
    pub problem: String,
}

impl Finding {
    fn new(setting: &str, problem: impl Into<String>) -> Self {
        Self {
            setting: setting.to_owned(),
            problem: problem.into(),
        }
    }

    /// A configuration that does not load at all: the error names its setting.
    fn refused(error: &ConfigError, context: &str) -> Self {
        Self::new(
            error.setting_name().unwrap_or("configuration"),
            format!("{context}: {error}"),
        )
    }
}

/// `aerie doctor [--live]`: prints the advisory snapshot, then every finding; exit code 0
/// when there is none, 1 when there are findings, 2 when the configuration does not load.
pub fn run(live: bool) -> ExitCode {
    println!("{}", advisory_line());
    let config = match Config::load() {
        Ok(config) => config,
        Err(error) => {
            print_findings(&[Finding::refused(&error, "does not load")]);
            return ExitCode::from(2);
        }
    };
    if let Some(acme) = &config.tls.acme {
        println!(
            "{}",
            crate::acme::status::status_line(acme, chrono::Utc::now().timestamp())
        );
    }
    let mut findings = production_findings(&config);
    if !config.is_production() {
        // What a production start of the same sources would refuse (the first refusal).
        if let Err(error) = Config::load_as_production() {
            findings.push(Finding::refused(&error, "production would refuse to start"));
        }
    }
    print_findings(&findings);
    if live {
        let live_findings = match tokio::runtime::Runtime::new() {
            Ok(runtime) => runtime.block_on(live_findings(&config)),
            Err(error) => vec![Finding::new(
                "configuration",
                format!("cannot start the async runtime: {error}"),
            )],
        };
        print_live_findings(&live_findings);
        findings.extend(live_findings);
    }
    if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `advisory database: RustSec snapshot <date, commit>` or `… unknown`.
pub fn advisory_line() -> String {
    match ADVISORY_SNAPSHOT {
        Some(snapshot) if !snapshot.is_empty() => {
            format!(
                "advisory database: dependencies checked against the RustSec snapshot of {snapshot}"
            )
        }
        _ => "advisory database: unknown (this build was not checked by CI)".to_owned(),
    }
}

fn print_findings(findings: &[Finding]) {
    if findings.is_empty() {
        println!("configuration: no findings; it meets the production rules");
        return;
    }
    println!("configuration: {} finding(s)", findings.len());
    for finding in findings {
        println!("  {}: {}", finding.setting, finding.problem);
    }
}

fn print_live_findings(findings: &[Finding]) {
    if findings.is_empty() {
        println!(
            "live checks: no findings; the database, key files and Redis answer as a start needs"
        );
        return;
    }
    println!("live checks: {} finding(s)", findings.len());
    for finding in findings {
        println!("  {}: {}", finding.setting, finding.problem);
    }
}

/// A finding from an error whose text starts with the setting it concerns (`AERIE_X: …`, as
/// the key, TLS and store errors do); otherwise filed under `fallback`.
fn finding_from(error: impl std::fmt::Display, fallback: &str) -> Finding {
    let text = error.to_string();
    match text.split_once(": ") {
        Some((setting, problem)) if setting.starts_with("AERIE_") && !setting.contains(' ') => {
            Finding::new(setting, problem)
        }
        _ => Finding::new(fallback, text),
    }
}

/// What `aerie doctor --live` finds in the files, database and Redis the settings name, in a
/// fixed order. Nothing is created or changed: keys missing in development (which generates
/// them at start) are skipped, and the database is opened without generating data keys.
pub async fn live_findings(config: &Config) -> Vec<Finding> {
    let mut found = Vec::new();
    let development = !config.is_production();
    let missing = |path: &Path| development && !path.exists();
    let tokens = &config.tokens;
    if !missing(&tokens.key_file)
        && let Err(error) = crate::auth::keys::Keyring::load(&tokens.key_file, false)
    {
        found.push(finding_from(error, "AERIE_SIGNING_KEY_FILE"));
    }
    if !missing(&config.audit.key_file)
        && let Err(error) = crate::audit::AuditKeys::load_or_generate(&config.audit.key_file, false)
    {
        found.push(finding_from(
            format!("AERIE_AUDIT_KEY_FILE: {error}"),
            "AERIE_AUDIT_KEY_FILE",
        ));
    }
    if let Some(files) = &config.tls.files
        && let Err(error) = crate::tls::load(files).await
    {
        found.push(finding_from(error, "AERIE_TLS_CERT"));
    }
    database_findings(config, &mut found).await;
    redis_findings(config, &mut found).await;
    found
}

/// The database: it answers, every migration is applied, the role holds no more rights than
/// the server needs, and the audit and signing keys agree with what is recorded there.
async fn database_findings(config: &Config, found: &mut Vec<Finding>) {
    let mut settings = config.database.clone();
    settings.field_keys.generate = false;
    if !config.is_production() && !settings.field_keys.file.exists() {
        // Development generates the data keys at start; without them the database cannot
        // be opened here, and nothing is created.
        return;
    }
    let store = match tokio::time::timeout(
        std::time::Duration::from_secs(15),
        crate::store::Store::connect(&settings),
    )
    .await
    {
        Ok(Ok(store)) => store,
        Ok(Err(error)) => {
            found.push(finding_from(error, "AERIE_DATABASE_URL"));
            return;
        }
        Err(_) => {
            found.push(Finding::new(
                "AERIE_DATABASE_URL",
                "the database did not answer within 15 s: check the host, port and network",
            ));
            return;
        }
    };
    match store.pending_migrations().await {
        Ok(0) => {
            store_findings(config, &store, found).await;
        }
        Ok(pending) => found.push(Finding::new(
            "AERIE_DATABASE_URL",
            format!(
                "the database lacks {pending} migration(s) of this build: run `aerie migrate` (with the owner's URL) before starting; production never migrates at start (AERIE_AUTO_MIGRATE)"
            ),
        )),
        Err(error) => found.push(Finding::new(
            "AERIE_DATABASE_URL",
            format!("cannot read the applied migrations: {error}"),
        )),
    }
    store.close().await;
}

/// The checks that need the schema in place.
async fn store_findings(config: &Config, store: &crate::store::Store, found: &mut Vec<Finding>) {
    match store.privilege_findings().await {
        Ok(problems) => {
            for problem in problems {
                found.push(Finding::new(
                    "AERIE_DATABASE_URL",
                    format!(
                        "{problem}: point it at the application role (`aerie db roles --apply`); production refuses to start otherwise"
                    ),
                ));
            }
        }
        Err(error) => found.push(Finding::new(
            "AERIE_DATABASE_URL",
            format!("cannot read the role's privileges: {error}"),
        )),
    }
    if let Ok(keyring) = crate::auth::keys::Keyring::load(&config.tokens.key_file, false)
        && let Some(mine) = KeySet::of(&keyring.public_keys())
    {
        match signing_keys::published(store).await {
            Ok(Some(published)) => {
                if let Some(problem) = signing_keys::disagreement(&mine, &published) {
                    found.push(finding_from(problem, "AERIE_SIGNING_KEY_FILE"));
                }
            }
            Ok(None) => {}
            Err(error) => found.push(Finding::new(
                "AERIE_SIGNING_KEY_FILE",
                format!("cannot read the signing keys the deployment published: {error}"),
            )),
        }
    }
    if config.audit.key_file.exists() {
        let clock: std::sync::Arc<dyn crate::clock::Clock> =
            std::sync::Arc::new(crate::clock::SystemClock);
        // A ring that does not load is reported with the key files above.
        if let Ok(audit) =
            crate::audit::AuditLog::open(store.clone(), &config.audit.key_file, false, clock)
        {
            match audit.keys_seal_the_chain().await {
                Ok(true) => {}
                Ok(false) => found.push(Finding::new(
                    "AERIE_AUDIT_KEY_FILE",
                    "does not hold the key that sealed the audit chain's newest row: give it the key file the other instances use (after `aerie keys rotate-audit`, the new one); production refuses to start otherwise",
                )),
                Err(error) => found.push(Finding::new(
                    "AERIE_AUDIT_KEY_FILE",
                    format!("cannot read the audit chain's head: {error}"),
                )),
            }
        }
    }
}

/// Redis: one PING through the configured client (TLS, CA file, credentials).
async fn redis_findings(config: &Config, found: &mut Vec<Finding>) {
    let Some(settings) = &config.rate_limits.redis else {
        return;
    };
    let clock: std::sync::Arc<dyn crate::clock::Clock> =
        std::sync::Arc::new(crate::clock::SystemClock);
    let limiter =
        match crate::defense::rate_limit::RateLimiter::from_config(&config.rate_limits, clock) {
            Ok(limiter) => limiter,
            Err(error) => {
                found.push(finding_from(error, "AERIE_REDIS_URL"));
                return;
            }
        };
    let limit = settings.timeout.max(std::time::Duration::from_secs(2));
    match limiter.probe_shared_store(limit).await {
        Some(Probe::Refused(problem)) => found.push(Finding::new("AERIE_REDIS_URL", problem)),
        Some(Probe::Unreachable(kind)) => found.push(Finding::new(
            "AERIE_REDIS_URL",
            format!(
                "Redis does not answer ({kind}): check its host and port (a rediss:// URL needs Redis's TLS port), the network, and AERIE_REDIS_TIMEOUT_MS; until it answers AERIE_REDIS_FAILURE applies"
            ),
        )),
        Some(Probe::Answers) | None => {}
    }
}

/// Every way `config` differs from what production requires or defaults to, in a fixed
/// order: the mode, the production defaults, the key files, then the start-up warnings.
pub fn production_findings(config: &Config) -> Vec<Finding> {
    let mut found = Vec::new();
    if !config.is_production() {
        found.push(Finding::new(
            "AERIE_ENV",
            "development mode: missing keys are generated, plain HTTP is served, API docs are public and migrations run at start; set AERIE_ENV=production",
        ));
    }
    if config.http.expose_api_docs {
        found.push(Finding::new(
            "AERIE_EXPOSE_API_DOCS",
            "/openapi.json and /docs are served to anyone; unset it (production's default is false)",
        ));
    }
    if config.database.auto_migrate {
        found.push(Finding::new(
            "AERIE_AUTO_MIGRATE",
            "migrations run whenever a server starts; unset it (production's default is false) and run `aerie migrate` as a deployment step",
        ));
    }
    if config.log.format != LogFormat::Json {
        found.push(Finding::new(
            "AERIE_LOG_FORMAT",
            "log lines are not JSON, so a log pipeline cannot parse them; set json (production's default)",
        ));
    }
    if config.tls.files.is_none()
        && config.tls.acme.is_none()
        && config.tls.terminated_by_proxy.is_empty()
    {
        found.push(Finding::new(
            "AERIE_TLS_CERT",
            "plain HTTP: set AERIE_ACME_DOMAINS and AERIE_ACME_CONTACT, or AERIE_TLS_CERT and AERIE_TLS_KEY, or AERIE_TLS_TERMINATED_BY_PROXY with the proxy's networks",
        ));
    }
    if let Some(problem) = config
        .tls
        .acme
        .as_ref()
        .and_then(crate::acme::status::cache_problem)
    {
        found.push(Finding::new("AERIE_ACME_CACHE", problem));
    }
    let generated = !config.is_production();
    key_file(
        &mut found,
        "AERIE_SIGNING_KEY_FILE",
        &config.tokens.key_file,
        generated,
        "create one with `aerie keys generate --out FILE`",
    );
    key_file(
        &mut found,
        "AERIE_AUDIT_KEY_FILE",
        &config.audit.key_file,
        generated,
        "create one with `head -c 32 /dev/urandom > FILE && chmod 600 FILE`",
    );
    key_file(
        &mut found,
        "AERIE_DATA_KEYS_FILE",
        &config.database.field_keys.file,
        generated,
        "create one with `aerie keys generate-data --out FILE`",
    );
    if let Some(files) = &config.tls.files {
        key_file(
            &mut found,
            "AERIE_TLS_KEY",
            &files.key,
            false,
            "point it at the certificate's private key",
        );
    }
    for warning in crate::config::warnings(config) {
        found.push(Finding::new(warning.setting, warning.message));
    }
    found
}

/// A key file must exist (unless development generates it) and be private to its owner.
fn key_file(found: &mut Vec<Finding>, setting: &str, path: &Path, generated: bool, how: &str) {
    match check_private(path) {
        Ok(()) => {}
        Err(PrivateFileError::Io(error)) if error.kind() == std::io::ErrorKind::NotFound => {
            if !generated {
                found.push(Finding::new(
                    setting,
                    format!("{} does not exist; {how}", path.display()),
                ));
            }
        }
        Err(error) => found.push(Finding::new(
            setting,
            format!("{}: {error}", path.display()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A production configuration whose key files exist and are private.
    fn production(extra: &[(&str, &str)]) -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().expect("tempdir");
        let signing = dir.path().join("signing.pem");
        let audit = dir.path().join("audit-key");
        crate::keyfile::create(&signing, b"key").expect("signing key");
        crate::keyfile::create(&audit, &[7; 32]).expect("audit key");
        let data_keys = dir.path().join("data-keys");
        crate::field_keys::KeyFile::fresh()
            .create(&data_keys)
            .expect("data keys");
        let mut vars = vec![
            ("AERIE_ENV".to_owned(), "production".to_owned()),
            (
                "AERIE_DATABASE_URL".to_owned(),
                "sqlite:///tmp/aerie.db".to_owned(),
            ),
            (
                "AERIE_SIGNING_KEY_FILE".to_owned(),
                signing.display().to_string(),
            ),
            (
                "AERIE_AUDIT_KEY_FILE".to_owned(),
                audit.display().to_string(),
            ),
            (
                "AERIE_DATA_KEYS_FILE".to_owned(),
                data_keys.display().to_string(),
            ),
            (
                "AERIE_TLS_TERMINATED_BY_PROXY".to_owned(),
                "10.0.0.1/32".to_owned(),
            ),
            ("AERIE_TRUSTED_PROXIES".to_owned(), "10.0.0.1/32".to_owned()),
            (
                "AERIE_CORS_ORIGINS".to_owned(),
                "https://app.example.com".to_owned(),
            ),
        ];
        vars.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let config = Config::from_vars(vars).expect("valid production configuration");
        (dir, config)
    }

    fn settings(findings: &[Finding]) -> Vec<&str> {
        findings.iter().map(|f| f.setting.as_str()).collect()
    }

    #[test]
    fn a_production_configuration_with_private_keys_has_no_findings() {
        let (_dir, config) = production(&[]);
        assert_eq!(production_findings(&config), Vec::new());
    }

    #[test]
    fn overridden_production_defaults_are_named_by_their_setting() {
        let (_dir, config) = production(&[
            ("AERIE_EXPOSE_API_DOCS", "true"),
            ("AERIE_AUTO_MIGRATE", "true"),
            ("AERIE_LOG_FORMAT", "pretty"),
        ]);
        assert_eq!(
            settings(&production_findings(&config)),
            [
                "AERIE_EXPOSE_API_DOCS",
                "AERIE_AUTO_MIGRATE",
                "AERIE_LOG_FORMAT"
            ]
        );
    }

    #[test]
    fn missing_or_exposed_key_files_are_findings_in_production() {
        let (dir, config) = production(&[]);
        std::fs::remove_file(dir.path().join("signing.pem")).expect("remove");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let audit = dir.path().join("audit-key");
            std::fs::set_permissions(&audit, std::fs::Permissions::from_mode(0o644))
                .expect("chmod");
        }
        let findings = production_findings(&config);
        assert_eq!(
            settings(&findings),
            ["AERIE_SIGNING_KEY_FILE", "AERIE_AUDIT_KEY_FILE"]
        );
        assert!(
            findings[0].problem.contains("aerie keys generate"),
            "{findings:?}"
        );
        assert!(findings[1].problem.contains("chmod 600"), "{findings:?}");
    }

    #[test]
    fn development_mode_is_a_finding_with_the_setting_to_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config::from_vars([("AERIE_DATA_DIR", dir.path().display().to_string())])
            .expect("development defaults");
        let findings = production_findings(&config);
        assert_eq!(
            settings(&findings),
            [
                "AERIE_ENV",
                "AERIE_EXPOSE_API_DOCS",
                "AERIE_AUTO_MIGRATE",
                "AERIE_LOG_FORMAT",
                "AERIE_TLS_CERT"
            ]
        );
        assert!(findings[0].problem.contains("AERIE_ENV=production"));
    }

    #[test]
    fn weakened_defences_from_the_start_up_warnings_are_findings() {
        let (_dir, config) = production(&[("AERIE_TRUSTED_PROXIES", "0.0.0.0/0")]);
        assert_eq!(
            settings(&production_findings(&config)),
            ["AERIE_TRUSTED_PROXIES"]
        );
    }

    #[test]
    fn the_advisory_line_says_unknown_unless_ci_set_the_snapshot() {
        let line = advisory_line();
        match ADVISORY_SNAPSHOT {
            Some(snapshot) if !snapshot.is_empty() => assert!(line.contains(snapshot)),
            _ => assert!(line.ends_with("unknown (this build was not checked by CI)")),
        }
    }
}
