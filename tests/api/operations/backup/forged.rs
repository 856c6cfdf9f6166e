//! Backups forged by someone who holds their passphrase: decrypted, edited and sealed again
//! with a manifest that matches, so age and the manifest both check out. What guards the
//! database then is the restore itself: a copy this build's schema does not hold, a value
//! of the wrong kind, derived rows that disagree with their sources or an edited audit row
//! is refused (or, for the audit trail, reported broken) and the rows never land.

use std::io::BufReader;

use aerie::backup::format::{Header, Item, LineWriter, Reader, TableCount};
use aerie::backup::{Opening, Sealing};
use aerie::store::{Cell, TableInfo};
use age::secrecy::SecretString;

use super::{
    PASSPHRASE, assert_refused, assert_succeeded, backup, backup_of_traffic, backup_path,
    emptiness_at, empty_database, restore_into_new, text,
};
use crate::common::{TestApp, engine_tests};

/// A backup's plaintext, opened.
pub(super) struct Plain {
    pub(super) header: Header,
    pub(super) items: Vec<Item>,
}

impl Plain {
    /// The rows of `table`, as (position in `items`, cells).
    pub(super) fn rows_of(&self, table: &str) -> Vec<usize> {
        let mut current = "";
        let mut found = Vec::new();
        for (at, item) in self.items.iter().enumerate() {
            match item {
                Item::Table(info) => current = info.name.as_str(),
                Item::Row(_) if current == table => found.push(at),
                Item::Row(_) => {}
            }
        }
        found
    }

    /// Where `table`'s header item is.
    fn table_at(&self, table: &str) -> usize {
        self.items
            .iter()
            .position(|item| matches!(item, Item::Table(info) if info.name == table))
            .unwrap_or_else(|| panic!("the backup holds no table {table}"))
    }

    /// The index of `column` in `table`.
    fn column(&self, table: &str, column: &str) -> usize {
        match &self.items[self.table_at(table)] {
            Item::Table(info) => info
                .columns
                .iter()
                .position(|c| c == column)
                .unwrap_or_else(|| panic!("{table} has no column {column}")),
            Item::Row(_) => panic!("table_at finds tables"),
        }
    }

    /// The cells of the row at `at`, to edit.
    fn row(&mut self, at: usize) -> &mut Vec<Cell> {
        match &mut self.items[at] {
            Item::Row(cells) => cells,
            Item::Table(_) => panic!("item {at} is a table"),
        }
    }

    /// The table header at `at`, to edit.
    fn table(&mut self, at: usize) -> &mut TableInfo {
        match &mut self.items[at] {
            Item::Table(info) => info,
            Item::Row(_) => panic!("item {at} is a row"),
        }
    }
}

fn passphrase() -> SecretString {
    SecretString::from(PASSPHRASE.to_owned())
}

/// Decrypts and reads the backup at `path` (made with [`PASSPHRASE`]).
pub(super) fn open(path: &str) -> Plain {
    let file = std::fs::File::open(path).expect("backup");
    let plaintext = Opening::Passphrase(passphrase())
        .decrypt(BufReader::new(file))
        .expect("the passphrase opens it");
    let mut reader = Reader::open(BufReader::new(plaintext)).expect("a backup header");
    let header = reader.header().clone();
    let mut items = Vec::new();
    while let Some(item) = reader.next_item().expect("a sound backup") {
        items.push(item);
    }
    Plain { header, items }
}

/// Seals `plain` into a new backup at `path` with the manifest its items call for.
fn seal(plain: &Plain, path: &str) {
    let file = std::fs::File::create(path).expect("forged file");
    let encrypted = Sealing::Passphrase(passphrase())
        .encrypt(file)
        .expect("encrypting");
    let mut lines = LineWriter::new(encrypted);
    lines.header(&plain.header).expect("header");
    let mut counts: Vec<TableCount> = Vec::new();
    for item in &plain.items {
        match item {
            Item::Table(info) => {
                lines.table(info).expect("table");
                counts.push(TableCount {
                    name: info.name.clone(),
                    rows: 0,
                });
            }
            Item::Row(cells) => {
                lines.row(cells).expect("row");
                counts.last_mut().expect("a table first").rows += 1;
            }
        }
    }
    let (encrypted, _) = lines
        .finish(plain.header.clone(), counts)
        .expect("manifest");
    encrypted.finish().expect("the final chunk");
}

/// A deployment with traffic, its honest backup, and a forger's copy of it edited by
/// `edit`; answers the forged file's path and the passphrase file's.
async fn forged(app: &TestApp, edit: impl FnOnce(&mut Plain)) -> (String, String) {
    let (_, honest, passphrase_file) = backup_of_traffic(app).await;
    let mut plain = open(&honest);
    edit(&mut plain);
    let forged = backup_path(app, "forged.age");
    seal(&plain, &forged);
    // The forgery is a sound backup as far as age and the manifest can tell.
    let verified = backup(
        app,
        None,
        &["verify", &forged, "--passphrase-file", &passphrase_file],
    )
    .await;
    assert_succeeded(&verified);
    (forged, passphrase_file)
}

/// Restores `file` into a new empty database and asserts it was refused with `says`, and
/// that not one row landed.
async fn assert_restore_refused(app: &TestApp, file: &str, passphrase_file: &str, says: &str) {
    let (target, refused) = restore_into_new(app, "target.db", file, passphrase_file).await;
    assert_refused(&refused, says);
    assert_refused(&refused, "nothing was restored");
    assert_no_rows(app, &target).await;
}

/// Nothing but what the migrations put there: no account, no audit row.
async fn assert_no_rows(app: &TestApp, url: &str) {
    let emptiness = emptiness_at(url).await;
    assert!(
        matches!(
            emptiness,
            aerie::store::Emptiness::Empty | aerie::store::Emptiness::Unmigrated
        ),
        "{:?}: rows landed: {emptiness:?}",
        app.engine
    );
}

/// A copy that claims more articles than its articles (the derived totals edited) would
/// restore a deployment whose counts lie; the triggers rebuild them and the restore
/// compares.
async fn a_backup_whose_derived_counts_lie_is_refused(app: TestApp) {
    let (file, passphrase) = forged(&app, |plain| {
        let total = plain.column("article_totals", "articles");
        let at = plain.rows_of("article_totals")[0];
        plain.row(at)[total] = Cell::Int(41);
    })
    .await;
    assert_restore_refused(
        &app,
        &file,
        &passphrase,
        "table article_totals: the rows the triggers rebuilt differ",
    )
    .await;
}

/// A table this build's schema does not have: refused, not silently dropped.
async fn a_backup_with_a_table_the_schema_lacks_is_refused(app: TestApp) {
    let (file, passphrase) = forged(&app, |plain| {
        let at = plain.table_at("article_tags");
        plain.table(at).name = "shadow_admins".into();
    })
    .await;
    assert_restore_refused(&app, &file, &passphrase, "no table shadow_admins").await;
}

/// A column this build's schema does not have: refused, not silently dropped.
async fn a_backup_with_a_column_the_schema_lacks_is_refused(app: TestApp) {
    let (file, passphrase) = forged(&app, |plain| {
        let at = plain.table_at("users");
        let bio = plain.column("users", "bio");
        plain.table(at).columns[bio] = "is_superuser".into();
    })
    .await;
    assert_restore_refused(&app, &file, &passphrase, "no column users.is_superuser").await;
}

/// A value of the wrong kind (text where the schema stores integers) is refused by the
/// restore, on SQLite too, whose columns would otherwise take it.
async fn a_backup_with_a_value_of_the_wrong_kind_is_refused(app: TestApp) {
    let (file, passphrase) = forged(&app, |plain| {
        let id = plain.column("users", "id");
        let at = plain.rows_of("users")[0];
        plain.row(at)[id] = Cell::Text("1 OR 1=1".into());
    })
    .await;
    assert_restore_refused(
        &app,
        &file,
        &passphrase,
        "column users.id: the backup holds a text value where the database stores Int",
    )
    .await;
}

/// A backup from another build's schema is refused before anything is written: its
/// columns would not mean what this build's mean.
async fn a_backup_of_another_schema_version_is_refused(app: TestApp) {
    let (file, passphrase) = forged(&app, |plain| plain.header.schema_version -= 1).await;
    let (target, refused) = restore_into_new(&app, "target.db", &file, &passphrase).await;
    assert_refused(&refused, "the backup is at schema version");
    assert!(super::untouched(&target).await, "{}", text(&refused));
}

/// An audit row edited in the copy (its time moved) restores, but the restore walks
/// the restored chain, says where it breaks, fails, and records that it did.
async fn a_backup_with_an_edited_audit_row_restores_as_broken(app: TestApp) {
    let (file, passphrase) = forged(&app, |plain| {
        let time = plain.column("audit_log", "at");
        let at = plain.rows_of("audit_log")[1];
        let row = plain.row(at);
        row[time] = match row[time] {
            Cell::Int(millis) => Cell::Int(millis - 60_000),
            ref other => panic!("audit_log.at holds {other:?}"),
        };
    })
    .await;
    let target = empty_database(&app, app.engine, "target.db").await;
    let restored = backup(
        &app,
        Some(&target),
        &["restore", &file, "--passphrase-file", &passphrase, "--json"],
    )
    .await;
    assert!(!restored.status.success(), "{}", text(&restored));
    let report: serde_json::Value =
        serde_json::from_slice(&restored.stdout).unwrap_or_else(|_| panic!("{}", text(&restored)));
    assert_eq!(report["auditChain"]["intact"], false, "{report}");
    assert_eq!(report["auditChain"]["brokenAt"], 2, "{report}");
    let server = app.spawn_sibling_on(app.engine, target, &[]).await;
    let events = server.audit_events("backup_restored").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["detail"]["chainIntact"], false);
}

engine_tests!(
    a_backup_whose_derived_counts_lie_is_refused,
    a_backup_with_a_table_the_schema_lacks_is_refused,
    a_backup_with_a_column_the_schema_lacks_is_refused,
    a_backup_with_a_value_of_the_wrong_kind_is_refused,
    a_backup_of_another_schema_version_is_refused,
    a_backup_with_an_edited_audit_row_restores_as_broken,
);
