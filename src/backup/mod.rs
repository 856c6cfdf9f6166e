//! `aerie backup create | verify | restore`: encrypted, verifiable, engine-neutral copies of
//! the whole database.
//!
//! A backup is one age file ([`sealing`]) whose plaintext is JSON lines ([`format`]): a
//! header, every table's rows, and a manifest with the row counts and a SHA-256 of all that
//! came before. The rows are read in one consistent snapshot ([`crate::store::Snapshot`]), so
//! a backup of a running server is whole. Because cells are plain values, a backup taken on
//! SQLite restores into PostgreSQL (and back).
//!
//! Guards against backups that leak, rot or lie: the file is encrypted (age's authenticated
//! stream: any changed, missing or added byte fails), created private to its owner and never
//! over an existing file; `verify` decrypts and checks everything without touching a
//! database; `restore` verifies the whole file first, writes only into an empty database and
//! only inside one transaction that commits after the manifest checked out, then walks the
//! restored audit chain.

mod create;
pub mod format;
mod restore;
pub mod sealing;

pub use create::create;
pub use format::Manifest;
pub use restore::{restore, verify};
pub use sealing::{Opening, Sealing};

/// Told how far a long copy has come (the CLI draws it on a terminal).
pub trait Progress {
    /// `rows` rows of `table` so far; `done` once the table is complete.
    fn rows(&mut self, table: &str, rows: u64, done: bool);
}

/// No progress reports.
pub struct Silent;

impl Progress for Silent {
    fn rows(&mut self, _: &str, _: u64, _: bool) {}
}

/// How often a table's progress is reported while it is read or written.
const REPORT_EVERY: u64 = 1000;
