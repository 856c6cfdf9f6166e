//! Writing a backup: snapshot → JSON lines → age → a new private file, synced to disk.

use std::io::{BufWriter, Write as _};
use std::path::Path;

use anyhow::Context as _;

use super::format::{FORMAT, Header, LineWriter, Manifest, TableCount};
use super::{Progress, REPORT_EVERY, Sealing};
use crate::clock::{Clock as _, SystemClock};
use crate::store::Store;

/// Writes a backup of `store` to `out` (a new file, mode 0600); on any failure the partial
/// file is removed.
pub async fn create(
    store: &Store,
    sealing: &Sealing,
    out: &Path,
    progress: &mut dyn Progress,
) -> anyhow::Result<Manifest> {
    let file = crate::archiving::create_private(out)?;
    let written = write(store, sealing, file, progress).await;
    if written.is_err() {
        let _ = std::fs::remove_file(out);
    }
    written
}

async fn write(
    store: &Store,
    sealing: &Sealing,
    file: std::fs::File,
    progress: &mut dyn Progress,
) -> anyhow::Result<Manifest> {
    let encrypted = sealing.encrypt(BufWriter::new(file))?;
    let mut lines = LineWriter::new(encrypted);
    let mut snapshot = store.snapshot().await?;
    let header = Header {
        format: FORMAT.into(),
        engine: snapshot.engine().into(),
        schema_version: snapshot.schema_version(),
        created_at: crate::clock::rfc3339(SystemClock.now()),
    };
    lines.header(&header)?;
    let mut counts = Vec::new();
    for table in snapshot.tables() {
        lines.table(&table)?;
        let mut rows = 0;
        let read = snapshot
            .each_row(&table, |cells| {
                rows += 1;
                if rows % REPORT_EVERY == 0 {
                    progress.rows(&table.name, rows, false);
                }
                lines.row(cells)
            })
            .await;
        let rows = match read {
            Ok(rows) => rows,
            Err(error) => {
                snapshot.close().await;
                return Err(error).context("reading the database");
            }
        };
        progress.rows(&table.name, rows, true);
        counts.push(TableCount {
            name: table.name,
            rows,
        });
    }
    snapshot.close().await;
    let (encrypted, manifest) = lines.finish(header, counts)?;
    let mut buffered = encrypted.finish().context("finishing the encryption")?;
    buffered.flush()?;
    let file = buffered
        .into_inner()
        .map_err(|e| e.into_error())
        .context("writing the backup")?;
    file.sync_all().context("syncing the backup to disk")?;
    Ok(manifest)
}
