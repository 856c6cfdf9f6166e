//! Audit-log retention: old rows move to a file, out of the database, without weakening what
//! `aerie audit verify` can prove.
//!
//! Guards against two things at once: an audit table that grows forever, and pruning as a way
//! to erase evidence. [`export`] walks the rows older than the cut-off, from the newest
//! archive checkpoint on, checking every link as it goes (a broken chain is never archived),
//! and writes them as JSON lines followed by a checkpoint line. The checkpoint names the MAC
//! before the first archived row and the MAC of the last one, and how many rows lie between;
//! it is sealed with the audit key like a chain row, under its own format tag so neither can
//! pass for the other. Once the file is on disk, [`prune`] stores the checkpoint and deletes
//! exactly those rows in one transaction (the table's trigger refuses any other deletion).
//! [`super::verify`] then starts from the checkpoint, and the file verifies on its own
//! ([`verify_file`]).

use std::io::{BufRead, Write};

use serde::Deserialize;

use super::chain::{Break, Segments, seal_checkpoint};
use super::key::AuditKeys;
use crate::clock::UnixMillis;
use crate::store::{ArchiveCheckpoint, AuditRow, ChainHead, PruneMismatch, Store};

const PAGE: i64 = 1000;

/// One line of an archive file: `{"row": {...}}` for each row, then `{"checkpoint": {...}}`.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum ArchiveLine {
    Row(AuditRow),
    Checkpoint(ArchiveCheckpoint),
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Store(#[from] sqlx::Error),
    #[error("writing the archive: {0}")]
    Io(#[from] std::io::Error),
    #[error("writing the archive: {0}")]
    Json(#[from] serde_json::Error),
    /// The chain is broken where the archive would start or inside it: nothing is archived.
    #[error("the audit chain is broken at seq {0}: {1}; nothing archived")]
    Broken(i64, Break),
    #[error(transparent)]
    Prune(#[from] PruneMismatch),
}

/// Where the chain stands in the database, and under which key: after the newest archive
/// checkpoint, whose seal is checked first.
async fn chain_start<'k>(
    store: &Store,
    keys: &'k AuditKeys,
) -> Result<(ChainHead, Segments<'k>), ArchiveError> {
    match store.latest_archive_checkpoint().await? {
        None => Ok((
            ChainHead {
                seq: 0,
                mac: String::new(),
            },
            Segments::from_start(keys),
        )),
        Some(c) => match Segments::after_checkpoint(keys, &c) {
            Some(segments) => Ok((
                ChainHead {
                    seq: c.through_seq,
                    mac: c.through_mac,
                },
                segments,
            )),
            None => Err(ArchiveError::Broken(
                c.through_seq,
                Break::ArchiveCheckpointForged,
            )),
        },
    }
}

/// Writes the rows older than `before` (from the newest checkpoint on, up to the first row
/// at or after `before`) to `out`, each link checked, followed by their checkpoint, sealed
/// with the key in force after its last row (the one a walk from it continues under).
/// Answers the checkpoint to hand to [`prune`] once `out` is safely stored, or `None` when
/// no row is old enough (then nothing is written).
pub async fn export(
    store: &Store,
    keys: &AuditKeys,
    before: UnixMillis,
    now: UnixMillis,
    out: &mut impl Write,
) -> Result<Option<ArchiveCheckpoint>, ArchiveError> {
    let (from, mut segments) = chain_start(store, keys).await?;
    let mut last = from.clone();
    'pages: loop {
        let rows = store.audit_rows_after(last.seq, PAGE).await?;
        let page_len = rows.len();
        for row in rows {
            if row.at >= before {
                break 'pages;
            }
            if let Some(why) = segments.step(&last, &row) {
                return Err(ArchiveError::Broken(last.seq + 1, why));
            }
            serde_json::to_writer(&mut *out, &serde_json::json!({ "row": &row }))?;
            out.write_all(b"\n")?;
            last = ChainHead {
                seq: row.seq,
                mac: row.mac,
            };
        }
        if usize::try_from(PAGE).is_ok_and(|page| page_len < page) {
            break;
        }
    }
    if last.seq == from.seq {
        return Ok(None);
    }
    let checkpoint = seal_checkpoint(segments.key(), &from, &last, now);
    serde_json::to_writer(&mut *out, &serde_json::json!({ "checkpoint": &checkpoint }))?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(Some(checkpoint))
}

/// Stores the checkpoint and deletes the rows it covers, in one transaction.
pub async fn prune(store: &Store, checkpoint: &ArchiveCheckpoint) -> Result<u64, ArchiveError> {
    Ok(store.prune_audit_behind(checkpoint).await??)
}

/// Why an archive file does not verify.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveFileError {
    #[error("reading the archive: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {0}: not an archive line: {1}")]
    Line(usize, serde_json::Error),
    #[error("broken at seq {0}: {1}")]
    Broken(i64, Break),
    #[error("line {0}: nothing may follow the checkpoint")]
    AfterCheckpoint(usize),
    #[error("no checkpoint line: the file is incomplete")]
    NoCheckpoint,
    #[error("the checkpoint is not sealed by the audit key")]
    CheckpointForged,
    #[error("the rows ({0}) do not match the checkpoint (from seq {1}, through seq {2}, {3} rows)")]
    Mismatch(String, i64, i64, i64),
}

/// Checks an archive file on its own: every row sealed by the key in force and linked to the
/// one before, the checkpoint sealed by the key in force after the last row, and the rows
/// exactly the ones it names. Answers the checkpoint.
pub fn verify_file(
    keys: &AuditKeys,
    file: impl BufRead,
) -> Result<ArchiveCheckpoint, ArchiveFileError> {
    let mut span: Option<(ChainHead, ChainHead)> = None;
    let mut segments: Option<Segments<'_>> = None;
    let mut checkpoint = None;
    for (index, line) in file.lines().enumerate() {
        let number = index + 1;
        let line = line?;
        if checkpoint.is_some() {
            return Err(ArchiveFileError::AfterCheckpoint(number));
        }
        match serde_json::from_str(&line).map_err(|e| ArchiveFileError::Line(number, e))? {
            ArchiveLine::Checkpoint(c) => checkpoint = Some(c),
            ArchiveLine::Row(row) => {
                // The first row's predecessor is whatever it names; the checkpoint pins it.
                let (first, last) = span.take().unwrap_or_else(|| {
                    let before = ChainHead {
                        seq: row.seq.saturating_sub(1),
                        mac: row.prev_mac.clone(),
                    };
                    (before.clone(), before)
                });
                let walk = match segments.as_mut() {
                    Some(walk) => walk,
                    None => segments.insert(
                        Segments::from_row(keys, &row)
                            .ok_or(ArchiveFileError::Broken(row.seq, Break::Altered))?,
                    ),
                };
                if let Some(why) = walk.step(&last, &row) {
                    return Err(ArchiveFileError::Broken(last.seq + 1, why));
                }
                let last = ChainHead {
                    seq: row.seq,
                    mac: row.mac,
                };
                span = Some((first, last));
            }
        }
    }
    let checkpoint = checkpoint.ok_or(ArchiveFileError::NoCheckpoint)?;
    let sealed =
        segments.is_some_and(|walk| super::chain::checkpoint_matches(walk.key(), &checkpoint));
    if !sealed {
        return Err(ArchiveFileError::CheckpointForged);
    }
    let c = &checkpoint;
    let matches = span.as_ref().is_some_and(|(first, last)| {
        (first.seq, first.mac.as_str(), last.seq, last.mac.as_str())
            == (
                c.from_seq,
                c.from_mac.as_str(),
                c.through_seq,
                c.through_mac.as_str(),
            )
    });
    if !matches || c.pruned != c.through_seq - c.from_seq {
        let found = span.map_or_else(
            || "none".to_owned(),
            |(first, last)| format!("seq {} to {}", first.seq + 1, last.seq),
        );
        return Err(ArchiveFileError::Mismatch(
            found,
            c.from_seq,
            c.through_seq,
            c.pruned,
        ));
    }
    Ok(checkpoint)
}

#[cfg(test)]
mod tests {
    use super::super::chain::checkpoint_matches;
    use super::super::key::AuditKey;
    use super::*;

    #[test]
    fn a_checkpoint_is_sealed_over_every_field() {
        let key = AuditKey::from_bytes([7; 32]);
        let from = ChainHead {
            seq: 3,
            mac: "ab".repeat(32),
        };
        let through = ChainHead {
            seq: 9,
            mac: "cd".repeat(32),
        };
        let sealed = seal_checkpoint(&key, &from, &through, 1_000);
        assert_eq!(sealed.pruned, 6);
        assert!(checkpoint_matches(&key, &sealed));
        let edits: [fn(&mut ArchiveCheckpoint); 5] = [
            |c| c.through_seq += 1,
            |c| c.from_seq -= 1,
            |c| c.pruned += 1,
            |c| c.through_mac = "ef".repeat(32),
            |c| c.at += 1,
        ];
        for edit in edits {
            let mut edited = sealed.clone();
            edit(&mut edited);
            assert!(!checkpoint_matches(&key, &edited), "{edited:?}");
        }
        assert!(!checkpoint_matches(&AuditKey::from_bytes([8; 32]), &sealed));
    }
}
