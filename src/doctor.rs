//! `aerie doctor`: checks a deployment's configuration against the production rules before
//! it serves anyone, and says which RustSec advisory snapshot the build was checked against.
//!
//! Guards against a deployment that starts but is not what production means: development
//! mode left on, a production default overridden (API docs public, migrations at start,
//! pretty logs), a key file missing or readable by others, or a setting that weakens a
//! defence ([`crate::config::warnings`]). Each finding names the setting to change. It reads
//! settings and file modes only: no database, no key contents, no network.

#![expect(clippy::print_stdout, reason = "the CLI's output is its interface")]

use std::path::Path;
use std::process::ExitCode;

use crate::config::{Config, ConfigError};
use crate::keyfile::{PrivateFileError, check_private};
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

/// `aerie doctor`: prints the advisory snapshot, then every finding; exit code 0 when there
/// is none, 1 when there are findings, 2 when the configuration does not load.
pub fn run() -> ExitCode {
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
