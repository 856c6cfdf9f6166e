//! Checking a backup (`verify`: decrypt and read it all, touching no database) and writing
//! it into an empty database (`restore`: verify first, then again inside one transaction
//! that commits only when the manifest checks out a second time).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use anyhow::Context as _;

use super::format::{Item, Manifest, Reader};
use super::{Opening, Progress, REPORT_EVERY};
use crate::store::{Emptiness, Store};

/// Opens `file` and reads its header.
fn open(opening: &Opening, file: &Path) -> anyhow::Result<Reader<impl std::io::BufRead>> {
    let input = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let plaintext = opening.decrypt(BufReader::new(input))?;
    Ok(Reader::open(BufReader::new(plaintext))?)
}

/// Decrypts and reads the whole backup: every chunk authenticated, every row well formed,
/// the counts and the hash as the manifest says. Answers the manifest; touches no database.
pub async fn verify(
    opening: &Opening,
    file: &Path,
    progress: &mut dyn Progress,
) -> anyhow::Result<Manifest> {
    read(opening, file, None, progress).await
}

/// Restores `file` into `store`, which must be empty (and is migrated first if it has no
/// tables at all). Nothing is written unless the whole file verified.
pub async fn restore(
    store: &Store,
    opening: &Opening,
    file: &Path,
    progress: &mut dyn Progress,
) -> anyhow::Result<Manifest> {
    let emptiness = store.emptiness().await?;
    if let Emptiness::Holds(table) = &emptiness {
        anyhow::bail!(
            "the database is not empty (table {table} has rows): restore only into a new, empty database"
        );
    }
    let manifest = verify(opening, file, &mut super::Silent).await?;
    let version = manifest.header.schema_version;
    if version != store.latest_migration() {
        anyhow::bail!(
            "the backup is at schema version {version} and this build's is {}: restore it with the build that made it, then upgrade",
            store.latest_migration()
        );
    }
    if emptiness == Emptiness::Unmigrated {
        store.migrate().await?;
    } else if store.pending_migrations().await? > 0 {
        anyhow::bail!("the database lacks migrations of this build: run `aerie migrate` first");
    }
    let mut target = store.begin_restore().await?;
    match read(opening, file, Some(&mut target), progress).await {
        // The commit checks the rows triggers rebuilt first; refused, it rolls back.
        Ok(manifest) => match target.commit().await {
            Ok(()) => Ok(manifest),
            Err(error) => Err(anyhow::Error::from(error).context("nothing was restored")),
        },
        Err(error) => {
            target.abandon().await;
            Err(error.context("nothing was restored"))
        }
    }
}

/// Reads the backup through, handing each table and row to `target` when there is one.
async fn read(
    opening: &Opening,
    file: &Path,
    mut target: Option<&mut crate::store::Restore>,
    progress: &mut dyn Progress,
) -> anyhow::Result<Manifest> {
    let mut reader = open(opening, file)?;
    let mut table = String::new();
    let mut rows = 0;
    while let Some(item) = reader.next_item()? {
        match item {
            Item::Table(info) => {
                if !table.is_empty() {
                    progress.rows(&table, rows, true);
                }
                if let Some(target) = target.as_deref_mut() {
                    target.start_table(&info).await?;
                }
                (table, rows) = (info.name, 0);
            }
            Item::Row(cells) => {
                if let Some(target) = target.as_deref_mut() {
                    target.insert(&cells).await?;
                }
                rows += 1;
                if rows % REPORT_EVERY == 0 {
                    progress.rows(&table, rows, false);
                }
            }
        }
    }
    if !table.is_empty() {
        progress.rows(&table, rows, true);
    }
    reader
        .manifest()
        .cloned()
        .context("the backup has no manifest")
}
