//! Where a restore may write: only into a database with nothing in it, migrated by this
//! build or not at all. A deployment's live database, or one an older build migrated (its
//! columns would not be the backup's), is refused before a row is written.

use aerie::store::{Cell, TableInfo};
use reqwest::StatusCode;

use super::{assert_refused, assert_succeeded, backup, backup_of_traffic, empty_database};
use crate::common::{TestApp, engine_tests, execute_sql_at, query_text_at, run_aerie_with};

async fn a_restore_into_a_non_empty_database_is_refused(app: TestApp) {
    let (_, file, passphrase) = backup_of_traffic(&app).await;
    let before = app.store().await.audit_chain_head().await.expect("head");
    let refused = backup(
        &app,
        None,
        &["restore", &file, "--passphrase-file", &passphrase],
    )
    .await;
    assert_refused(&refused, "not empty");
    let after = app.store().await.audit_chain_head().await.expect("head");
    assert_eq!(before, after, "nothing written, not even an event");
    // Still only alice and bob.
    let carol = app
        .login("carol@example.com", crate::common::PASSWORD)
        .await;
    assert_ne!(carol.status, StatusCode::OK);
}

/// An empty database this build migrated (`aerie migrate`, as a new deployment's start
/// would) takes a restore; one an older build migrated, lacking this build's last
/// migration, is refused before anything is written, with the command that fixes it.
async fn a_restore_wants_every_migration_of_this_build(app: TestApp) {
    let (_, file, passphrase) = backup_of_traffic(&app).await;
    let restore = async |target: &str| {
        backup(
            &app,
            Some(target),
            &["restore", &file, "--passphrase-file", &passphrase],
        )
        .await
    };

    let older = migrated_empty_database(&app, "older.db").await;
    execute_sql_at(
        app.engine,
        &older,
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
    )
    .await;
    assert_refused(&restore(&older).await, "run `aerie migrate` first");
    let users = query_text_at(app.engine, &older, "SELECT username FROM users").await;
    assert!(users.is_empty(), "restored into an older schema: {users:?}");

    let current = migrated_empty_database(&app, "current.db").await;
    assert_succeeded(&restore(&current).await);
    let users = query_text_at(
        app.engine,
        &current,
        "SELECT username FROM users ORDER BY username",
    )
    .await;
    assert_eq!(users, ["alice", "bob"]);
}

/// A new database of the app's engine, migrated by `aerie migrate` and nothing else.
pub(super) async fn migrated_empty_database(app: &TestApp, name: &str) -> String {
    let url = empty_database(app, app.engine, name).await;
    let settings = [("AERIE_DATABASE_URL", url.as_str())];
    assert_succeeded(&run_aerie_with(app, &settings, &["migrate"], "").await);
    url
}

/// The restore's own writer, not only the backup's reader, refuses a row that does not
/// fit its table and a row before any table (a caller other than `aerie backup restore`
/// gets the same guard), and the refused transaction leaves the database empty.
async fn the_restore_writer_refuses_rows_that_do_not_fit(app: TestApp) {
    let url = migrated_empty_database(&app, "target.db").await;
    let store = super::store_at(&url).await;
    let mut restore = store.begin_restore().await.expect("an empty database");
    let row = [Cell::Int(1), Cell::Text("x".into())];
    let early = restore.insert(&row).await.map_err(|e| e.to_string());
    assert_eq!(early, Err("a row came before its table's header".into()));
    let tags = TableInfo {
        name: "article_tags".into(),
        columns: vec!["article_id".into(), "tag".into()],
    };
    restore.start_table(&tags).await.expect("a known table");
    let wide = [Cell::Int(1), Cell::Text("x".into()), Cell::Null];
    let refused = restore.insert(&wide).await.map_err(|e| e.to_string());
    assert_eq!(
        refused,
        Err("the backup's row has 3 values for 2 columns".into())
    );
    restore.abandon().await;
    store.close().await;
    assert_eq!(
        super::emptiness_at(&url).await,
        aerie::store::Emptiness::Empty
    );
}

engine_tests!(
    the_restore_writer_refuses_rows_that_do_not_fit,
    a_restore_into_a_non_empty_database_is_refused,
    a_restore_wants_every_migration_of_this_build,
);
