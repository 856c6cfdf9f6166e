//! The command line: every subcommand, its arguments and its help text (clap).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::domain::Role;

/// Aerie: a secure-by-default backend server (accounts, sessions, RBAC and the RealWorld
/// Conduit API).
///
/// Configuration comes from AERIE_* environment variables, an optional aerie.toml and, in
/// development, a .env file. With no configuration at all Aerie runs in development mode on
/// http://127.0.0.1:8080 with an SQLite database and signing key under ./data.
#[derive(Parser)]
#[command(name = "aerie", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
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
    /// Mail delivery (AERIE_SMTP_URL).
    Mail {
        #[command(subcommand)]
        command: MailCommand,
    },
    /// Find (and disable) dormant accounts.
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
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
    /// Encrypted, verifiable backups of the whole database (either engine).
    Backup {
        #[command(subcommand)]
        command: BackupCommand,
    },
    /// Database administration (PostgreSQL roles).
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Check the configuration against the production rules and print each finding with the
    /// setting to change, and the advisory database snapshot this build was checked against.
    /// Reads settings only: no database, key or network access, unless `--live`. Exits 1 when
    /// anything is found.
    Doctor {
        /// Also check what the settings point at: the key files load, the database answers
        /// with every migration applied and no more rights than needed, the audit and
        /// signing keys agree with the database, Redis answers over its TLS with its
        /// credentials. Changes nothing.
        #[arg(long)]
        live: bool,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
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
    /// Delete an account: its sessions end, then it is anonymised or removed as
    /// AERIE_ACCOUNT_DELETION says (`account_deleted` on the audit trail).
    Delete { username: String },
    /// Print a single-use password-reset link (valid 30 minutes) for the operator to hand to
    /// the account's owner; no mail is sent. Recorded on the audit trail.
    ResetLink { username: String },
}

#[derive(Subcommand)]
pub enum MailCommand {
    /// Send a test mail now (not through the outbox) and report the relay's answer, or
    /// where the `.eml` file went in development.
    Test {
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand)]
pub enum AccountsCommand {
    /// List enabled accounts that have not logged in for DAYS days (never logged in: since
    /// they were created); with --disable, disable each (its sessions end, `user_disabled`
    /// on the audit trail).
    Dormant {
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=36_500))]
        days: u32,
        #[arg(long)]
        disable: bool,
    },
}

#[derive(Subcommand)]
pub enum SessionsCommand {
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
pub enum AuditCommand {
    /// Walk the whole chain; exit non-zero and print the first broken sequence number if any
    /// row was edited, deleted, reordered or inserted, or the tail was cut off.
    Verify {
        /// A checkpoint from the log (`SEQ:MAC`, the `checkpoint` field of an "audit
        /// checkpoint" line): the chain must reach it with exactly that MAC.
        #[arg(long, value_name = "SEQ:MAC", conflicts_with = "archive")]
        expect_at_least: Option<crate::audit::Checkpoint>,
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
pub enum MaintenanceCommand {
    /// Delete expired and long-revoked sessions and their refresh tokens now (the server
    /// does it every AERIE_RETENTION_INTERVAL_SECS).
    Prune,
}

#[derive(Subcommand)]
pub enum KeysCommand {
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
    /// Write a new field-encryption key file (an index key and data key 1, mode 0600) for
    /// AERIE_DATA_KEYS_FILE.
    GenerateData {
        /// Where to write the keys; the file must not exist yet.
        #[arg(long)]
        out: PathBuf,
    },
    /// Add a new data key to AERIE_DATA_KEYS_FILE, make it the sealing key, and re-seal every
    /// sealed value (emails, TOTP secrets) under it in batches, while servers keep serving
    /// (they pick the new key up on their own). Safe to interrupt: `--resume` finishes the
    /// re-sealing without adding another key. Old keys keep opening until `--retire` drops
    /// them, which it refuses while any value still uses one.
    RotateData {
        /// Re-seal under the current key without adding a new one (after an interruption,
        /// or when the report still counted values under old keys).
        #[arg(long, conflicts_with = "retire")]
        resume: bool,
        /// Drop every key but the active one, once no stored value uses them.
        #[arg(long)]
        retire: bool,
        /// Rows read per batch (each re-sealed row is its own short statement).
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        batch: i64,
    },
    /// Add a new key to AERIE_AUDIT_KEY_FILE and continue the audit chain under it: an
    /// `audit_key_rotated` row, sealed by the current key, names the new one, and every row
    /// after it is sealed by the new key. Older keys stay in the file to verify their
    /// segments. Running servers follow on their next event (they read the file again; with
    /// several machines, the file must reach each of them). Run it again after an
    /// interruption: a key added but not yet in use is started, not another one added.
    RotateAudit,
}

#[derive(Subcommand)]
pub enum BackupCommand {
    /// Write a consistent snapshot of every table, encrypted with age, to a new file (mode
    /// 0600), with a manifest (engine, schema version, row counts, content hash).
    Create {
        /// The backup file to create (never overwritten).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        sealing: SealingArgs,
        /// Print the manifest as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Decrypt the backup and check its manifest, hash and row counts, without restoring.
    Verify {
        file: PathBuf,
        #[command(flatten)]
        opening: OpeningArgs,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Restore a backup into an empty database (AERIE_DATABASE_URL, with the owner's rights
    /// on PostgreSQL; either engine, whichever made the backup), then verify the audit
    /// chain. The whole file is verified before anything is written, and the rows go in
    /// one transaction.
    Restore {
        file: PathBuf,
        #[command(flatten)]
        opening: OpeningArgs,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
pub struct SealingArgs {
    /// Encrypt to this age recipient (`age1…`; keep its identity file off this machine).
    #[arg(long, env = "AERIE_BACKUP_RECIPIENT", value_name = "AGE_RECIPIENT")]
    pub recipient: Option<String>,
    /// Encrypt with the passphrase in this file (mode 0600; its first line).
    #[arg(long, env = "AERIE_BACKUP_PASSPHRASE_FILE", value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct OpeningArgs {
    /// The age identity file that matches the recipient the backup was made for (mode 0600).
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// The file holding the backup's passphrase (mode 0600; its first line).
    #[arg(long, env = "AERIE_BACKUP_PASSPHRASE_FILE", value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum DbCommand {
    /// Print (or with --apply, run) the SQL that gives a migrated PostgreSQL database an
    /// owner role (migrations, archiving, restores) and an application role for the server
    /// (DML only, no DDL, INSERT and SELECT only on the audit log). Connect with a superuser
    /// or the current owner. Passwords read from files are used, never printed.
    Roles {
        /// The owner role: owns the schema and every table.
        #[arg(long, default_value = "aerie_owner")]
        owner: String,
        /// The application role the server connects as.
        #[arg(long, default_value = "aerie_app")]
        app: String,
        /// Give the owner role this password (the file's first line).
        #[arg(long, value_name = "FILE")]
        owner_password_file: Option<PathBuf>,
        /// Give the application role this password (the file's first line).
        #[arg(long, value_name = "FILE")]
        app_password_file: Option<PathBuf>,
        /// Run the statements (in one transaction) instead of only printing them.
        #[arg(long)]
        apply: bool,
    },
}
