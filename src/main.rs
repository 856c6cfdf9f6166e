//! The `aerie` command: parses arguments and calls into the library.

// The CLI talks to its operator on stdout and stderr; the server itself logs via `tracing`.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the CLI's output is its interface"
)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use aerie::accounts::{self, SessionTarget};
use aerie::clock::SystemClock;
use aerie::config::Config;
use aerie::domain::Role;
use aerie::server::{Server, shutdown_signal};
use aerie::store::Store;
use anyhow::Context as _;
use clap::{Parser, Subcommand};

/// Aerie: a secure-by-default backend server (accounts, sessions, RBAC and the RealWorld
/// Conduit API).
///
/// Configuration comes from AERIE_* environment variables, an optional aerie.toml and, in
/// development, a .env file. With no configuration at all Aerie runs in development mode on
/// http://127.0.0.1:8080 with an SQLite database and signing key under ./data.
#[derive(Parser)]
#[command(name = "aerie", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default when no command is given).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Write a local certificate authority and a localhost certificate for HTTPS in development.
    DevCert {
        /// Folder for ca.pem, cert.pem and key.pem (mode 0600).
        #[arg(long, default_value = "data/dev-cert")]
        out: PathBuf,
    },
    /// Administer accounts (each change revokes the user's sessions).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Revoke sessions.
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// Check and export the tamper-evident audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Housekeeping the server also does on its own.
    Maintenance {
        #[command(subcommand)]
        command: MaintenanceCommand,
    },
    /// Manage the access-token signing key.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account. The password is read from the terminal (or one line of stdin),
    /// never from the command line.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "user", value_parser = parse_role)]
        role: Role,
    },
    /// Set a user's role: user, editor or admin.
    SetRole {
        username: String,
        #[arg(value_parser = parse_role)]
        role: Role,
    },
    /// Set a user's password (an operator's reset), read from the terminal (or one line of
    /// stdin), never from the command line; every session of the account ends.
    SetPassword { username: String },
    /// Disable an account: it can no longer log in and its sessions end.
    Disable { username: String },
    /// Enable a disabled account.
    Enable { username: String },
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// Revoke the sessions of one user (--user) or of everyone (--all).
    Revoke {
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        user: Option<String>,
        #[arg(long)]
        all: bool,
    },
}

fn parse_role(value: &str) -> Result<Role, String> {
    Role::parse(value).ok_or_else(|| "expected user, editor or admin".to_owned())
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the whole chain; exit non-zero and print the first broken sequence number if any
    /// row was edited, deleted, reordered or inserted, or the tail was cut off.
    Verify {
        /// A checkpoint from the log (`SEQ:MAC`, the `checkpoint` field of an "audit
        /// checkpoint" line): the chain must reach it with exactly that MAC.
        #[arg(long, value_name = "SEQ:MAC", conflicts_with = "archive")]
        expect_at_least: Option<aerie::audit::Checkpoint>,
        /// Check an archive file written by `aerie audit archive` instead of the database.
        #[arg(long, value_name = "FILE")]
        archive: Option<PathBuf>,
    },
    /// Move rows older than AERIE_AUDIT_RETENTION_DAYS (or --before) to a new JSON-lines
    /// file, then delete them behind a checkpoint sealed with the audit key, so `audit
    /// verify` still verifies the rest and the file verifies on its own.
    Archive {
        /// Archive only rows before this time (RFC 3339); at most the retention allows.
        #[arg(long, value_name = "RFC3339")]
        before: Option<chrono::DateTime<chrono::FixedOffset>>,
        /// The archive file to create (never overwritten; mode 0600).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print events as JSON lines (one object per line), oldest first, for a SIEM.
    Export {
        /// Only events at or after this time (RFC 3339, e.g. 2026-11-28T00:00:00Z).
        #[arg(long, value_name = "RFC3339")]
        since: chrono::DateTime<chrono::FixedOffset>,
    },
}

#[derive(Subcommand)]
enum MaintenanceCommand {
    /// Delete expired and long-revoked sessions and their refresh tokens now (the server
    /// does it every AERIE_RETENTION_INTERVAL_SECS).
    Prune,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Write a new Ed25519 signing key (PKCS#8 PEM, mode 0600) for AERIE_SIGNING_KEY_FILE.
    Generate {
        /// Where to write the key; the file must not exist yet.
        #[arg(long)]
        out: PathBuf,
    },
    /// Make a new signing key active. The old key moves to the keyring's previous keys
    /// (`<AERIE_SIGNING_KEY_FILE>.previous/<retired at>.<kid>.pem`) and keeps verifying the
    /// tokens it signed, so nobody is logged out; restart the instances to sign with the new
    /// key. Previous keys retired longer ago than an access token lives are deleted.
    Rotate,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("aerie: {error}");
            return ExitCode::from(2);
        }
    };
    aerie::telemetry::init(&config.log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("aerie: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(config).await,
            Command::Migrate => migrate(config).await,
            Command::Keys {
                command: KeysCommand::Generate { out },
            } => generate_key(&out),
            Command::Keys {
                command: KeysCommand::Rotate,
            } => rotate_key(&config).await,
            Command::DevCert { out } => dev_cert(&out),
            Command::User { command } => user(config, command).await,
            Command::Sessions {
                command: SessionsCommand::Revoke { user, all: _ },
            } => {
                let target = user.map_or(SessionTarget::Everyone, SessionTarget::User);
                accounts::revoke_sessions(&account_settings(&config), target).await
            }
            Command::Maintenance {
                command: MaintenanceCommand::Prune,
            } => prune(config).await,
            Command::Audit {
                command:
                    AuditCommand::Verify {
                        archive: Some(file),
                        ..
                    },
            } => audit_verify_archive(&config, &file),
            Command::Audit {
                command:
                    AuditCommand::Verify {
                        expect_at_least,
                        archive: None,
                    },
            } => audit_verify(config, expect_at_least).await,
            Command::Audit {
                command: AuditCommand::Archive { before, out },
            } => audit_archive(config, before.map(|b| b.timestamp_millis()), &out).await,
            Command::Audit {
                command: AuditCommand::Export { since },
            } => audit_export(config, since.timestamp_millis()).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is::<ChainBroken>() => ExitCode::from(3),
        Err(error) => {
            eprintln!("aerie: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    if !config.is_production() {
        tracing::warn!(
            "development mode: keys are generated into the data folder and http:// is allowed; set AERIE_ENV=production for a real deployment"
        );
    }
    let server = Server::build(config, Arc::new(SystemClock)).await?;
    tracing::info!(address = %server.local_addr()?, "listening");
    server.run(shutdown_signal()).await?;
    Ok(())
}

async fn migrate(config: Config) -> anyhow::Result<()> {
    let store = Store::connect(&config.database).await?;
    store.migrate().await?;
    store.close().await;
    println!("migrations applied");
    Ok(())
}

async fn prune(config: Config) -> anyhow::Result<()> {
    let store = Store::connect(&config.database).await?;
    let retention = aerie::services::retention::Retention::new(
        store.clone(),
        Arc::new(SystemClock),
        config.retention,
        config.sessions,
        config.tokens.access_token_ttl,
    );
    let pruned = retention.run_once().await;
    store.close().await;
    let pruned = pruned?;
    println!(
        "deleted {} sessions and {} refresh tokens",
        pruned.sessions, pruned.refresh_tokens
    );
    Ok(())
}

/// The sections the account and session commands need.
fn account_settings(config: &Config) -> accounts::AccountSettings<'_> {
    accounts::AccountSettings {
        database: &config.database,
        passwords: &config.passwords,
        rules: &config.accounts,
        audit: &config.audit,
        alerts: &config.alerts,
    }
}

async fn user(config: Config, command: UserCommand) -> anyhow::Result<()> {
    let settings = account_settings(&config);
    match command {
        UserCommand::Create {
            username,
            email,
            role,
        } => {
            let password = accounts::read_password()?;
            accounts::create(&settings, username, email, password, role).await
        }
        UserCommand::SetRole { username, role } => {
            accounts::set_role(&settings, &username, role).await
        }
        UserCommand::SetPassword { username } => {
            let password = accounts::read_password()?;
            accounts::set_password(&settings, &username, password).await
        }
        UserCommand::Disable { username } => {
            accounts::set_disabled(&settings, &username, true).await
        }
        UserCommand::Enable { username } => {
            accounts::set_disabled(&settings, &username, false).await
        }
    }
}

/// The chain failed verification (exit code 3; the details are already printed).
#[derive(Debug, thiserror::Error)]
#[error("audit chain verification failed")]
struct ChainBroken;

async fn audit_verify(
    config: Config,
    checkpoint: Option<aerie::audit::Checkpoint>,
) -> anyhow::Result<()> {
    // Never generated here: verifying with a fresh key would only report a forgery.
    let key = aerie::audit::AuditKey::load_or_generate(&config.audit.key_file, false)?;
    let store = Store::connect(&config.database).await?;
    let report = aerie::audit::verify(&store, &key, checkpoint.as_ref()).await;
    store.close().await;
    let report = report?;
    match report.broken {
        None => {
            let archived = match report.archived_through {
                0 => String::new(),
                seq => format!(" after the archive through seq {seq}"),
            };
            println!(
                "audit chain intact: {} rows{archived}; head {}:{}",
                report.intact_rows, report.last.seq, report.last.mac
            );
            Ok(())
        }
        Some((seq, why)) => {
            println!("audit chain broken at seq {seq}: {why}");
            println!(
                "rows {}..{} verified intact",
                report.archived_through + 1,
                report.last.seq
            );
            let alert = aerie::audit::alerts::Alert {
                rule: "audit_verification_failed",
                severity: aerie::audit::Severity::Critical,
                time: aerie::clock::rfc3339(aerie::clock::Clock::now(&SystemClock)),
                message: format!("the audit chain is broken at seq {seq}: {why}"),
                seq: Some(seq),
                subject: None,
                client_ip: None,
            };
            // Logged here; posted synchronously, since the process exits right after.
            tracing::error!(target: "aerie::alert", rule = alert.rule, seq, "ALERT: {}", alert.message);
            if let Some(url) = &config.alerts.webhook {
                aerie::audit::webhook::send_now(url, &alert).await;
            }
            Err(ChainBroken.into())
        }
    }
}

fn audit_verify_archive(config: &Config, file: &std::path::Path) -> anyhow::Result<()> {
    match aerie::archiving::verify_file(&config.audit, file) {
        Ok(checkpoint) => {
            println!(
                "audit archive intact: {} rows, seq {} to {}; checkpoint {}:{}",
                checkpoint.pruned,
                checkpoint.from_seq + 1,
                checkpoint.through_seq,
                checkpoint.through_seq,
                checkpoint.through_mac
            );
            Ok(())
        }
        Err(error) => {
            println!("audit archive broken: {error:#}");
            Err(ChainBroken.into())
        }
    }
}

async fn audit_archive(
    config: Config,
    before: Option<i64>,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    use aerie::archiving::Archived;
    let store = Store::connect(&config.database).await?;
    let archived =
        aerie::archiving::archive(&store, &config.audit, &config.alerts, before, out).await;
    store.close().await;
    match archived? {
        Archived::Nothing => println!("no audit rows old enough to archive; nothing written"),
        Archived::Rows(checkpoint) => println!(
            "archived and pruned {} audit rows (seq {} to {}) into {}",
            checkpoint.pruned,
            checkpoint.from_seq + 1,
            checkpoint.through_seq,
            out.display()
        ),
    }
    Ok(())
}

async fn audit_export(config: Config, since: i64) -> anyhow::Result<()> {
    use std::io::Write;
    let store = Store::connect(&config.database).await?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut after = 0;
    loop {
        let rows = store.audit_rows_since(since, after, 1000).await?;
        let Some(last) = rows.last() else { break };
        after = last.seq;
        for row in &rows {
            serde_json::to_writer(&mut out, &aerie::audit::export_line(row))?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    store.close().await;
    Ok(())
}

fn dev_cert(out: &std::path::Path) -> anyhow::Result<()> {
    let files = aerie::tls::write_dev_certificate(out)?;
    println!(
        "wrote {}/ca.pem (trust this in your browser or client), cert.pem and key.pem",
        out.display()
    );
    println!(
        "serve HTTPS with:\n  AERIE_TLS_CERT={} AERIE_TLS_KEY={} aerie",
        files.cert.display(),
        files.key.display()
    );
    Ok(())
}

async fn rotate_key(config: &Config) -> anyhow::Result<()> {
    use aerie::auth::keys::Keyring;
    use aerie::clock::Clock as _;
    let active = &config.tokens.key_file;
    let now = SystemClock.now();
    let kid = Keyring::rotate_at(active, now)?;
    println!(
        "new active signing key {} (kid {kid}); the previous key keeps verifying from {}",
        active.display(),
        aerie::auth::keys::previous_keys_dir(active).display()
    );
    let pruned = Keyring::prune(
        active,
        now,
        Keyring::retention(config.tokens.access_token_ttl),
    )?;
    for kid in &pruned {
        println!("deleted previous key {kid}: every token it signed has expired");
    }
    // On the trail like any other security event; the key is already in force, so a
    // failure here is reported, not undone.
    record_key_rotation(config, &kid, &pruned)
        .await
        .with_context(|| {
            format!("key {kid} is active, but the key_rotated audit event was not recorded")
        })
}

async fn record_key_rotation(config: &Config, kid: &str, pruned: &[String]) -> anyhow::Result<()> {
    use aerie::audit::{AuditEvent, EventType};
    let store = Store::connect(&config.database).await?;
    let recorded = async {
        let trail = aerie::cli::CommandTrail::open(&store, &config.audit, &config.alerts)?;
        let mut detail = aerie::cli::operator().detail();
        detail.insert("key".into(), "signing".into());
        detail.insert("kid".into(), kid.into());
        detail.insert("pruned".into(), pruned.into());
        let event = AuditEvent::new(EventType::KeyRotated).detail(detail.into());
        trail.audit.record(event).await?;
        trail.finish().await;
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    recorded
}

fn generate_key(out: &std::path::Path) -> anyhow::Result<()> {
    if out.exists() {
        anyhow::bail!(
            "{} already exists; refusing to overwrite a key",
            out.display()
        );
    }
    let key = aerie::auth::keys::SigningKey::load_or_generate(out, true)?;
    println!("wrote signing key {} (kid {})", out.display(), key.kid());
    Ok(())
}
