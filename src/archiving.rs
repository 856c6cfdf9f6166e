//! The operator's side of audit retention: `aerie audit archive` and
//! `aerie audit verify --archive FILE` (the rules are [`crate::audit::archive`]'s).
//!
//! Guards against losing rows while pruning them: the archive file is created new (never
//! overwriting), private to its owner, written and synced to disk before a single row is
//! deleted, and the pruning itself is recorded on the trail.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;

use anyhow::Context;

use crate::audit::archive;
use crate::audit::{AlertSettings, AuditEvent, AuditKeys, AuditSettings, EventType};
use crate::clock::{Clock, SystemClock, UnixMillis};
use crate::store::{ArchiveCheckpoint, Store};

/// What an archive run did.
pub enum Archived {
    /// No row was older than the cut-off: no file written, nothing pruned.
    Nothing,
    /// Rows after `from_seq` through `through_seq` went to the file and out of the database.
    Rows(ArchiveCheckpoint),
}

/// Archives the rows older than `before` (default: the retention) into `out`, then prunes
/// them behind their checkpoint and records `audit_archived`.
pub async fn archive(
    store: &Store,
    audit: &AuditSettings,
    alerts: &AlertSettings,
    before: Option<UnixMillis>,
    out: &Path,
) -> anyhow::Result<Archived> {
    let now = SystemClock.now();
    let latest = now.saturating_sub(i64::try_from(audit.retention.as_millis()).unwrap_or(i64::MAX));
    let before = before.unwrap_or(latest);
    if before > latest {
        anyhow::bail!(
            "--before is later than AERIE_AUDIT_RETENTION_DAYS allows (rows younger than {} days stay); archive up to {} at most",
            audit.retention.as_secs() / 86_400,
            crate::clock::rfc3339(latest)
        );
    }
    // Never generated here: archiving under a fresh key would seal nothing of the chain.
    let keys = AuditKeys::load_or_generate(&audit.key_file, false)?;
    let file = create_private(out)?;
    let mut writer = BufWriter::new(file);
    let exported = archive::export(store, &keys, before, now, &mut writer).await;
    let written = writer
        .into_inner()
        .map_err(|e| e.into_error())
        .context("writing the archive");
    let (checkpoint, file) = match (exported, written) {
        (Ok(Some(checkpoint)), Ok(file)) => (checkpoint, file),
        (exported, written) => {
            // Nothing to archive, or a failure: no file is left to pass for an archive.
            let written = written.map(drop);
            std::fs::remove_file(out).context("removing the unfinished archive file")?;
            exported?;
            written?;
            return Ok(Archived::Nothing);
        }
    };
    file.sync_all().context("syncing the archive to disk")?;
    archive::prune(store, &checkpoint).await?;
    record(store, audit, alerts, &checkpoint).await?;
    Ok(Archived::Rows(checkpoint))
}

/// Creates `path` for writing, mode 0600, refusing an existing file.
pub(crate) fn create_private(path: &Path) -> anyhow::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).with_context(|| {
        format!(
            "creating {} (an existing file is never overwritten)",
            path.display()
        )
    })
}

async fn record(
    store: &Store,
    audit: &AuditSettings,
    alerts: &AlertSettings,
    checkpoint: &ArchiveCheckpoint,
) -> anyhow::Result<()> {
    let trail = crate::cli::trail::CommandTrail::open(store, audit, alerts)?;
    let mut detail = crate::cli::trail::operator().detail();
    detail.insert("fromSeq".into(), checkpoint.from_seq.into());
    detail.insert("throughSeq".into(), checkpoint.through_seq.into());
    detail.insert("pruned".into(), checkpoint.pruned.into());
    let event = AuditEvent::new(EventType::AuditArchived).detail(detail.into());
    trail.audit.record(event).await?;
    trail.finish().await;
    Ok(())
}

/// Checks an archive file with the audit keys; answers its checkpoint.
pub fn verify_file(audit: &AuditSettings, path: &Path) -> anyhow::Result<ArchiveCheckpoint> {
    let keys = AuditKeys::load_or_generate(&audit.key_file, false)?;
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(archive::verify_file(&keys, BufReader::new(file))?)
}
