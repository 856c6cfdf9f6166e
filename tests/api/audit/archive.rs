//! Audit retention (issue 22.4): `aerie audit archive` moves old rows to a file and prunes
//! them behind a checkpoint sealed with the audit key. What remains still verifies from the
//! checkpoint, tampering with it is still found, a forged checkpoint is found, and the file
//! verifies on its own.

use std::path::PathBuf;
use std::time::Duration;

use aerie::audit::{AuditEvent, EventType};
use aerie::clock::{Clock, rfc3339};

use super::trail::{
    aerie, aerie_with, assert_broken_at, assert_intact, five_events, stdout, succeeded, tamper,
};
use crate::common::{Engine, TestApp, audit_rows, engine_tests};

/// Lets `--before` name any past time.
const NO_RETENTION: &[(&str, &str)] = &[("AERIE_AUDIT_RETENTION_DAYS", "0")];

/// Five events (seq 1–5), then the clock moves on and two more (seq 6–7) follow; answers the
/// cut-off between the two groups. The server's clock moves by milliseconds only, so every
/// cut-off stays behind the wall clock the command checks `--before` against.
async fn old_and_new_events(app: &TestApp) -> String {
    five_events(app).await;
    let cut = rfc3339(app.clock.now() + 1);
    app.clock.advance(Duration::from_millis(2));
    app.register("carol").await;
    app.login_user("carol").await;
    cut
}

/// Archives the rows before `cut` into a new file in the data folder; answers its path.
fn archive(app: &TestApp, cut: &str, name: &str) -> PathBuf {
    let file = app.data_dir.path().join(name);
    let path = file.display().to_string();
    let output = aerie_with(
        app,
        NO_RETENTION,
        &["audit", "archive", "--before", cut, "--out", &path],
    );
    succeeded(&output);
    file
}

fn verify_archive(app: &TestApp, file: &std::path::Path) -> (bool, String) {
    let output = aerie(
        app,
        &["audit", "verify", "--archive", &file.display().to_string()],
    );
    (output.status.success(), stdout(&output))
}

async fn archived_rows_leave_a_chain_that_still_verifies(app: TestApp) {
    let cut = old_and_new_events(&app).await;
    // Rows younger than the retention (365 days by default) stay.
    let out = app
        .data_dir
        .path()
        .join("refused.jsonl")
        .display()
        .to_string();
    let refused = aerie(&app, &["audit", "archive", "--before", &cut, "--out", &out]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("AERIE_AUDIT_RETENTION_DAYS"));

    let file = archive(&app, &cut, "audit-1.jsonl");
    let lines = std::fs::read_to_string(&file).expect("archive written");
    assert_eq!(lines.lines().count(), 6, "five rows and the checkpoint");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("file").permissions().mode();
        assert_eq!(mode & 0o077, 0, "private to its owner: {mode:o}");
    }
    // Seq 6 and 7 remain, plus the audit_archived event the command recorded.
    assert_intact(&app, 3);
    let (ok, text) = verify_archive(&app, &file);
    assert!(ok, "{text}");
    assert!(
        text.contains("audit archive intact: 5 rows, seq 1 to 5"),
        "{text}"
    );
    let recorded = app.audit_events("audit_archived").await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["detail"]["pruned"], 5);
    assert_eq!(recorded[0]["detail"]["throughSeq"], 5);

    // The chain goes on, and a second archive starts where the first ended.
    app.register("dave").await;
    let later = rfc3339(app.clock.now() + 1);
    let second = archive(&app, &later, "audit-2.jsonl");
    let (ok, text) = verify_archive(&app, &second);
    assert!(ok && text.contains("seq 6 to"), "{text}");
    let verified = stdout(&aerie(&app, &["audit", "verify"]));
    assert!(verified.contains("audit chain intact"), "{verified}");
}

async fn tampering_after_an_archive_is_still_detected(app: TestApp) {
    let cut = old_and_new_events(&app).await;
    archive(&app, &cut, "audit.jsonl");
    assert_intact(&app, 3);
    tamper(&app, &["UPDATE audit_log SET actor_id = 999 WHERE seq = 7"]).await;
    assert_broken_at(&app, &["audit", "verify"], 7);
}

async fn deleting_past_the_checkpoint_is_refused_and_detected(app: TestApp) {
    let cut = old_and_new_events(&app).await;
    archive(&app, &cut, "audit.jsonl");
    // The trigger lets only archived rows go; without it, the gap shows.
    let pool_sql = "DELETE FROM audit_log WHERE seq = 6";
    let refused = match app.engine {
        Engine::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.database_url)
                .await
                .expect("connect");
            let refused = sqlx::raw_sql(pool_sql).execute(&pool).await.is_err();
            pool.close().await;
            refused
        }
        Engine::Postgres => {
            let pool = sqlx::PgPool::connect(&app.database_url)
                .await
                .expect("connect");
            let refused = sqlx::raw_sql(pool_sql).execute(&pool).await.is_err();
            pool.close().await;
            refused
        }
    };
    assert!(refused, "a row behind no checkpoint was deleted");
    tamper(&app, &[pool_sql]).await;
    assert_broken_at(&app, &["audit", "verify"], 6);
}

async fn a_forged_archive_checkpoint_is_detected(app: TestApp) {
    let cut = old_and_new_events(&app).await;
    archive(&app, &cut, "audit.jsonl");
    // The intruder hides row 6 by moving the checkpoint over it, without the key.
    let unlock = match app.engine {
        Engine::Sqlite => "DROP TRIGGER audit_archive_checkpoints_no_update",
        Engine::Postgres => {
            "DROP TRIGGER audit_archive_checkpoints_append_only ON audit_archive_checkpoints"
        }
    };
    tamper(
        &app,
        &[
            unlock,
            "UPDATE audit_archive_checkpoints SET through_seq = 6, pruned = 6, \
             through_mac = (SELECT mac FROM audit_log WHERE seq = 6)",
            "DELETE FROM audit_log WHERE seq = 6",
        ],
    )
    .await;
    assert_broken_at(&app, &["audit", "verify"], 6);
}

async fn an_archive_file_verifies_on_its_own_and_edits_to_it_do_not(app: TestApp) {
    let cut = old_and_new_events(&app).await;
    let file = archive(&app, &cut, "audit.jsonl");
    let original = std::fs::read_to_string(&file).expect("archive");
    assert!(verify_archive(&app, &file).0);

    let edited = original.replacen("wrong_password", "disabled", 1);
    assert_ne!(edited, original, "row 4 records the wrong password");
    let lines: Vec<&str> = original.lines().collect();
    let without_row_2 = [&lines[..1], &lines[2..]].concat().join("\n");
    let without_checkpoint = lines[..5].join("\n");
    // Cut off at either end: every link that is left holds, and the checkpoint is genuine.
    let without_the_oldest = lines[1..].join("\n");
    let without_the_newest = [&lines[..4], &lines[5..]].concat().join("\n");
    let with_a_row_after = [&lines[..], &lines[..1]].concat().join("\n");
    let with_a_stray_line = [&lines[..2], &["{}"], &lines[2..]].concat().join("\n");
    for (name, text, expected) in [
        ("edited.jsonl", edited, "broken at seq 4"),
        ("gap.jsonl", without_row_2, "broken at seq 2"),
        ("cut.jsonl", without_checkpoint, "no checkpoint"),
        (
            "oldest.jsonl",
            without_the_oldest,
            "do not match the checkpoint",
        ),
        (
            "newest.jsonl",
            without_the_newest,
            "do not match the checkpoint",
        ),
        (
            "after.jsonl",
            with_a_row_after,
            "line 7: nothing may follow",
        ),
        (
            "stray.jsonl",
            with_a_stray_line,
            "line 3: not an archive line",
        ),
    ] {
        let path = app.data_dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        let (ok, report) = verify_archive(&app, &path);
        assert!(!ok, "{name} verified: {report}");
        assert!(report.contains(expected), "{name}: {report}");
    }
}

/// Without `--before` the retention is the cut-off: an operator's routine run (a timer, a
/// cron line) keeps every row younger than it, and with a retention of zero takes them all.
async fn without_before_the_retention_is_the_cut_off(app: TestApp) {
    five_events(&app).await;
    let young = app.data_dir.path().join("young.jsonl");
    let kept = aerie(
        &app,
        &["audit", "archive", "--out", &young.display().to_string()],
    );
    let said = succeeded(&kept);
    assert!(said.contains("nothing written"), "{said}");
    assert!(!young.exists(), "an archive of nothing was left behind");
    assert_intact(&app, 5);

    let all = app.data_dir.path().join("all.jsonl");
    let taken = aerie_with(
        &app,
        NO_RETENTION,
        &["audit", "archive", "--out", &all.display().to_string()],
    );
    assert!(taken.status.success(), "{}", stdout(&taken));
    let (ok, text) = verify_archive(&app, &all);
    assert!(ok && text.contains("5 rows, seq 1 to 5"), "{text}");
}

/// An intruder edits an old row, then waits for the routine archive: archiving it would seal
/// the edit under a fresh checkpoint and prune the evidence. The archive is refused, naming
/// the broken row; nothing is pruned and no partial file is left to be mistaken for one.
async fn a_tampered_trail_is_not_laundered_by_archiving(app: TestApp) {
    let cut = old_and_new_events(&app).await;
    tamper(&app, &["UPDATE audit_log SET actor_id = 999 WHERE seq = 3"]).await;
    let file = app.data_dir.path().join("laundered.jsonl");
    let refused = aerie_with(
        &app,
        NO_RETENTION,
        &[
            "audit",
            "archive",
            "--before",
            &cut,
            "--out",
            &file.display().to_string(),
        ],
    );
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{}", stdout(&refused));
    assert!(said.contains("broken at seq 3"), "{said}");
    assert!(!file.exists(), "a partial archive was left behind");
    assert!(app.audit_events("audit_archived").await.is_empty());
    assert_broken_at(&app, &["audit", "verify"], 3);
}

/// The writer records more rows in a day than one page of the export reads (1,000): every
/// row older than the cut-off goes to the file, not the first page of them.
async fn a_trail_longer_than_a_page_is_archived_whole(app: TestApp) {
    const ROWS: usize = 2_100;
    let store = app.store().await;
    let log = aerie::audit::AuditLog::open(
        store.clone(),
        &app.data_dir.path().join("audit-key"),
        false,
        app.clock.clone(),
    )
    .expect("the server's audit key");
    let mut appends = tokio::task::JoinSet::new();
    for _ in 0..ROWS {
        let log = log.clone();
        appends.spawn(async move {
            log.record(AuditEvent::new(EventType::Logout))
                .await
                .expect("recorded")
        });
    }
    while let Some(appended) = appends.join_next().await {
        appended.expect("append task");
    }
    store.close().await;
    let cut = rfc3339(app.clock.now() + 1);
    app.clock.advance(Duration::from_millis(2));
    app.register("carol").await;
    // Verification reads every page too.
    let all = i64::try_from(audit_rows(&app).await.len()).expect("rows");
    assert_intact(&app, all);

    let file = archive(&app, &cut, "audit.jsonl");
    let (ok, text) = verify_archive(&app, &file);
    assert!(
        ok && text.contains(&format!("{ROWS} rows, seq 1 to {ROWS}")),
        "{text}"
    );
    assert_intact(&app, 2);
}

engine_tests!(
    a_tampered_trail_is_not_laundered_by_archiving,
    a_trail_longer_than_a_page_is_archived_whole,
    without_before_the_retention_is_the_cut_off,
    archived_rows_leave_a_chain_that_still_verifies,
    tampering_after_an_archive_is_still_detected,
    deleting_past_the_checkpoint_is_refused_and_detected,
    a_forged_archive_checkpoint_is_detected,
    an_archive_file_verifies_on_its_own_and_edits_to_it_do_not,
);
