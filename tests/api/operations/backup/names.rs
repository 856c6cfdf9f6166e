//! A backup reads table and column names from the database's own catalogue and quotes
//! them into SQL. A name that is not a plain lowercase identifier (added by hand, by
//! another tool, or by someone with write access to the database) stops the backup before
//! it is quoted anywhere, and no file is left behind.

use std::path::Path;

use super::{PASSPHRASE, assert_refused, backup, backup_path, private_file};
use crate::common::{TestApp, engine_tests};

/// `aerie backup create` refuses, saying `says`, and leaves no file behind.
pub(super) async fn assert_backup_refused(app: &TestApp, name: &str, says: &str) {
    let passphrase = private_file(app, &format!("{name}.passphrase"), PASSPHRASE);
    let file = backup_path(app, &format!("{name}.age"));
    let refused = backup(
        app,
        None,
        &["create", "--out", &file, "--passphrase-file", &passphrase],
    )
    .await;
    assert_refused(&refused, says);
    assert!(
        !Path::new(&file).exists(),
        "a partial backup was left behind"
    );
}

async fn a_strange_column_name_stops_the_backup(app: TestApp) {
    app.register("alice").await;
    app.execute_sql(r#"ALTER TABLE users ADD COLUMN "x"", ""y" TEXT"#)
        .await;
    assert_backup_refused(
        &app,
        "column",
        r#"a table or column named "x\", \"y", which backups do not handle"#,
    )
    .await;
}

async fn a_strange_table_name_stops_the_backup(app: TestApp) {
    app.register("alice").await;
    app.execute_sql(r#"CREATE TABLE "Notes" (id BIGINT)"#).await;
    assert_backup_refused(
        &app,
        "table",
        r#"a table or column named "Notes", which backups do not handle"#,
    )
    .await;
}

engine_tests!(
    a_strange_column_name_stops_the_backup,
    a_strange_table_name_stops_the_backup,
);
