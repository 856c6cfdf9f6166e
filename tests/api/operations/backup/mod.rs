//! Encrypted, verifiable backups (issue 16.4): `aerie backup create | verify | restore`,
//! black-box through the real binary. A backup restores whole on either engine and from
//! SQLite into PostgreSQL; one flipped byte anywhere makes verify and restore fail without
//! writing anything; a wrong key is a clear refusal; a non-empty database is never
//! overwritten; each run is on the audit trail.

use std::path::{Path, PathBuf};
use std::process::Output;

use age::secrecy::ExposeSecret as _;
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{
    Engine, TestApp, engine_tests, fresh_postgres_database, postgres_configured, run_aerie_with,
};

mod forged;
mod kinds;
mod names;
mod targets;

const PASSPHRASE: &str = "correct horse battery staple";

/// A new file of `contents` in the test's data folder, mode 0600; answers its path.
fn private_file(app: &TestApp, name: &str, contents: &str) -> String {
    let path = app.data_dir.path().join(name);
    aerie::keyfile::create(&path, contents.as_bytes()).expect("private file");
    path.display().to_string()
}

/// An age identity file in the data folder; answers (its path, its recipient).
fn identity(app: &TestApp, name: &str) -> (String, String) {
    let identity = age::x25519::Identity::generate();
    let text = format!("{}\n", identity.to_string().expose_secret());
    (
        private_file(app, name, &text),
        identity.to_public().to_string(),
    )
}

/// Accounts, an article with tags, a comment, a favourite and a follow.
async fn traffic(app: &TestApp) -> String {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let slug = app
        .create_article(&alice, "Backups matter", &["ops", "safety"])
        .await;
    app.add_comment(&bob, &slug, "agreed").await;
    let path = format!("/api/articles/{slug}/favorite");
    app.post(&path, Some(&bob), Value::Null)
        .await
        .assert_status(StatusCode::OK);
    app.post("/api/profiles/alice/follow", Some(&bob), Value::Null)
        .await
        .assert_status(StatusCode::OK);
    slug
}

/// Runs `aerie backup …` on `database_url` (the app's own when `None`).
async fn backup(app: &TestApp, database_url: Option<&str>, args: &[&str]) -> Output {
    let mut full = vec!["backup"];
    full.extend_from_slice(args);
    let settings: Vec<(&str, &str)> = database_url
        .map(|url| ("AERIE_DATABASE_URL", url))
        .into_iter()
        .collect();
    run_aerie_with(app, &settings, &full, "").await
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Asserts the command succeeded, showing its output when it did not.
#[track_caller]
fn assert_succeeded(output: &Output) {
    assert!(output.status.success(), "{}", text(output));
}

/// Asserts the command failed and its output says `says`.
#[track_caller]
fn assert_refused(output: &Output, says: &str) {
    assert!(!output.status.success(), "{}", text(output));
    assert!(text(output).contains(says), "{}", text(output));
}

#[track_caller]
fn json_of(output: &Output) -> Value {
    assert!(output.status.success(), "{}", text(output));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|_| panic!("JSON: {}", text(output)))
}

/// A new, empty database of `engine` for a restore.
async fn empty_database(app: &TestApp, engine: Engine, name: &str) -> String {
    match engine {
        Engine::Sqlite => format!(
            "sqlite://{}?mode=rwc",
            app.data_dir.path().join(name).display()
        ),
        Engine::Postgres => fresh_postgres_database().await,
    }
}

/// Whether the database at `url` is still without a single table (nothing restored, not
/// even migrated).
async fn untouched(url: &str) -> bool {
    emptiness_at(url).await == aerie::store::Emptiness::Unmigrated
}

/// Whether the database at `url` could receive a restore (as the restore itself asks).
async fn emptiness_at(url: &str) -> aerie::store::Emptiness {
    let store = store_at(url).await;
    let emptiness = store.emptiness().await.expect("emptiness");
    store.close().await;
    emptiness
}

/// The store API on the database at `url`, with the settings a server would read for it.
async fn store_at(url: &str) -> aerie::store::Store {
    let config = aerie::config::Config::from_vars([("AERIE_DATABASE_URL", url)]).expect("config");
    aerie::store::Store::connect(&config.database)
        .await
        .expect("database")
}

/// [`traffic`], then a backup of it encrypted to [`PASSPHRASE`]; answers the slug, the
/// backup's path and the passphrase file's.
async fn backup_of_traffic(app: &TestApp) -> (String, String, String) {
    let slug = traffic(app).await;
    let passphrase = private_file(app, "passphrase", PASSPHRASE);
    let file = backup_path(app, "backup.age");
    let created = backup(
        app,
        None,
        &["create", "--out", &file, "--passphrase-file", &passphrase],
    )
    .await;
    assert_succeeded(&created);
    (slug, file, passphrase)
}

/// [`traffic`], then a backup of it encrypted to a new age identity; answers the slug, the
/// backup's path and the identity file's.
async fn recipient_backup_of_traffic(app: &TestApp) -> (String, String, String) {
    let slug = traffic(app).await;
    let (identity, recipient) = identity(app, "identity.txt");
    let file = backup_path(app, "backup.age");
    let created = backup(
        app,
        None,
        &["create", "--out", &file, "--recipient", &recipient],
    )
    .await;
    assert_succeeded(&created);
    (slug, file, identity)
}

/// Restores `file` (opened with the passphrase file `passphrase`) into `name`, a new empty
/// database of the app's engine; answers the database's URL and the command's output.
async fn restore_into_new(
    app: &TestApp,
    name: &str,
    file: &str,
    passphrase: &str,
) -> (String, Output) {
    let target = empty_database(app, app.engine, name).await;
    let output = backup(
        app,
        Some(&target),
        &["restore", file, "--passphrase-file", passphrase],
    )
    .await;
    (target, output)
}

fn backup_path(app: &TestApp, name: &str) -> String {
    app.data_dir.path().join(name).display().to_string()
}

/// The restored deployment serves the old data: alice logs in, her article, tags, comment,
/// favourite and follower are there, and new rows get fresh ids.
async fn assert_serves_the_old_data(restored: &TestApp, slug: &str) {
    let alice = restored.login_user("alice").await;
    let token = alice["token"].as_str().expect("token");
    let article = restored.article(slug, None).await;
    assert_eq!(article["favoritesCount"], 1);
    assert_eq!(article["tagList"], serde_json::json!(["ops", "safety"]));
    let comments = restored
        .get(&format!("/api/articles/{slug}/comments"), None)
        .await;
    assert_eq!(comments.body["comments"][0]["body"], "agreed");
    let tags = restored.get("/api/tags", None).await;
    assert_eq!(tags.body["tags"].as_array().map(Vec::len), Some(2));
    let listed = restored.get("/api/articles", None).await;
    assert_eq!(listed.body["articlesCount"], 1);
    // Identity sequences moved past the copied ids.
    restored
        .create_article(token, "After the restore", &[])
        .await;
    restored.register("carol").await;
}

async fn a_backup_restores_whole_on_the_same_engine(app: TestApp) {
    let slug = traffic(&app).await;
    let passphrase = private_file(&app, "passphrase", &format!("{PASSPHRASE}\n"));
    let file = backup_path(&app, "backup.age");
    let created = json_of(
        &backup(
            &app,
            None,
            &[
                "create",
                "--out",
                &file,
                "--passphrase-file",
                &passphrase,
                "--json",
            ],
        )
        .await,
    );
    let engine = match app.engine {
        Engine::Sqlite => "sqlite",
        Engine::Postgres => "postgres",
    };
    assert_eq!(created["engine"], engine);
    let users = created["tables"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "users"))
        .expect("users counted");
    assert_eq!(users["rows"], 2);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).expect("file").permissions().mode();
        assert_eq!(mode & 0o077, 0, "private to its owner: {mode:o}");
    }
    let raw = std::fs::read(&file).expect("backup");
    assert!(raw.starts_with(b"age-encryption.org/v1"), "an age file");
    assert!(!raw.windows(5).any(|w| w == b"alice"), "nothing in clear");
    // Never over an existing file.
    let again = backup(
        &app,
        None,
        &["create", "--out", &file, "--passphrase-file", &passphrase],
    )
    .await;
    assert!(!again.status.success());

    let verified = json_of(
        &backup(
            &app,
            None,
            &["verify", &file, "--passphrase-file", &passphrase, "--json"],
        )
        .await,
    );
    assert_eq!(verified["intact"], true);
    assert_eq!(verified["sha256"], created["sha256"]);

    let (target, restored) = restore_into_new(&app, "restored.db", &file, &passphrase).await;
    assert_succeeded(&restored);
    assert!(
        text(&restored).contains("audit chain intact"),
        "{}",
        text(&restored)
    );
    // Each table's rows are counted on standard error as they go in: every table the
    // backup holds, the last one too, once, with its count.
    let progress = String::from_utf8_lossy(&restored.stderr);
    let counted: Vec<&str> = progress.lines().filter(|l| l.ends_with(" rows")).collect();
    let tables = created["tables"].as_array().expect("tables");
    let expected: Vec<String> = tables
        .iter()
        .map(|t| {
            format!(
                "  {}: {} rows",
                t["name"].as_str().expect("a name"),
                t["rows"]
            )
        })
        .collect();
    assert_eq!(counted, expected, "{progress}");
    assert!(counted.contains(&"  users: 2 rows"), "{progress}");

    let server = app.spawn_sibling_on(app.engine, target, &[]).await;
    assert_serves_the_old_data(&server, &slug).await;
    let created_events = app.audit_events("backup_created").await;
    assert_eq!(created_events.len(), 1);
    assert_eq!(created_events[0]["detail"]["rows"], created["rows"]);
    assert_eq!(created_events[0]["detail"]["osUser"], "ops-alice");
    assert_eq!(created_events[0]["detail"]["encryption"], "passphrase");
    assert_eq!(app.audit_events("backup_verified").await.len(), 1);
    let restore_events = server.audit_events("backup_restored").await;
    assert_eq!(restore_events.len(), 1);
    assert_eq!(restore_events[0]["detail"]["chainIntact"], true);
}

/// An SQLite deployment grows into PostgreSQL through a backup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqlite_backup_restores_into_postgres() {
    if !postgres_configured() {
        return;
    }
    let app = TestApp::spawn(Engine::Sqlite).await;
    let (slug, file, identity) = recipient_backup_of_traffic(&app).await;
    let target = fresh_postgres_database().await;
    let restored = json_of(
        &backup(
            &app,
            Some(&target),
            &["restore", &file, "--identity", &identity, "--json"],
        )
        .await,
    );
    assert_eq!(restored["engine"], "sqlite");
    assert_eq!(restored["into"], "postgres");
    assert_eq!(restored["auditChain"]["intact"], true);
    let server = app.spawn_sibling_on(Engine::Postgres, target, &[]).await;
    assert_serves_the_old_data(&server, &slug).await;
}

/// Byte offsets spread over the whole file: the age header, the first chunk, the middle,
/// the last chunk and the very last byte.
fn offsets(len: usize) -> Vec<usize> {
    let mut offsets: Vec<usize> = [0, 5, 30, 60, 90, 120, 200]
        .into_iter()
        .chain((1..8).map(|i| len * i / 8))
        .chain([len - 20, len - 1])
        .filter(|&o| o < len)
        .collect();
    offsets.sort_unstable();
    offsets.dedup();
    offsets
}

async fn a_flipped_byte_anywhere_fails_verify_and_restore(app: TestApp) {
    let (_, file, identity) = recipient_backup_of_traffic(&app).await;
    let original = std::fs::read(&file).expect("backup");
    let target = empty_database(&app, app.engine, "target.db").await;
    let damaged = PathBuf::from(backup_path(&app, "damaged.age"));
    for offset in offsets(original.len()) {
        let mut bytes = original.clone();
        if let Some(byte) = bytes.get_mut(offset) {
            *byte ^= 0x01;
        }
        std::fs::write(&damaged, &bytes).expect("write");
        let path = damaged.display().to_string();
        let verify = backup(&app, None, &["verify", &path, "--identity", &identity]).await;
        assert!(
            !verify.status.success(),
            "verify passed with byte {offset} flipped"
        );
        let restore = backup(
            &app,
            Some(&target),
            &["restore", &path, "--identity", &identity],
        )
        .await;
        assert!(
            !restore.status.success(),
            "restore passed with byte {offset} flipped"
        );
        assert!(
            untouched(&target).await,
            "byte {offset}: the target was written"
        );
    }
    assert_eq!(
        app.audit_events("backup_verification_failed").await.len(),
        offsets(original.len()).len()
    );
    // A cut-off tail too.
    std::fs::write(
        &damaged,
        original.get(..original.len() - 1).expect("shorter"),
    )
    .expect("write");
    let path = damaged.display().to_string();
    let verify = backup(&app, None, &["verify", &path, "--identity", &identity]).await;
    assert!(!verify.status.success());
    // The undamaged file still restores.
    let restore = backup(
        &app,
        Some(&target),
        &["restore", &file, "--identity", &identity],
    )
    .await;
    assert_succeeded(&restore);
}

async fn a_wrong_passphrase_or_identity_is_refused(app: TestApp) {
    let (_, file, right) = backup_of_traffic(&app).await;
    let wrong = private_file(&app, "wrong", "not the passphrase");
    let refused = backup(&app, None, &["verify", &file, "--passphrase-file", &wrong]).await;
    assert_refused(&refused, "does not open this backup");
    let (mine, _) = identity(&app, "identity.txt");
    let refused = backup(&app, None, &["verify", &file, "--identity", &mine]).await;
    assert_refused(&refused, "give --passphrase-file");

    // Encrypted to another operator's key: mine does not open it.
    let (_, recipient) = identity(&app, "other-identity.txt");
    let to_recipient = backup_path(&app, "recipient.age");
    let created = backup(
        &app,
        None,
        &["create", "--out", &to_recipient, "--recipient", &recipient],
    )
    .await;
    assert_succeeded(&created);
    let refused = backup(&app, None, &["verify", &to_recipient, "--identity", &mine]).await;
    assert_refused(&refused, "does not open this backup");
    // A passphrase for a backup encrypted to a key: told which option opens it.
    let refused = backup(
        &app,
        None,
        &["verify", &to_recipient, "--passphrase-file", &right],
    )
    .await;
    assert_refused(&refused, "give --identity");
    let target = empty_database(&app, app.engine, "target.db").await;
    let refused = backup(
        &app,
        Some(&target),
        &["restore", &file, "--passphrase-file", &wrong],
    )
    .await;
    assert!(!refused.status.success());
    assert!(untouched(&target).await);

    // A passphrase file others can read may have leaked: refused.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&right, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let refused = backup(&app, None, &["verify", &file, "--passphrase-file", &right]).await;
        assert_refused(&refused, "chmod 600");
    }
    // No key at all: a backup is never written in clear.
    let clear = backup_path(&app, "clear.age");
    let refused = backup(&app, None, &["create", "--out", &clear]).await;
    assert!(!refused.status.success());
    assert!(!Path::new(&clear).exists());
}

engine_tests!(
    a_backup_restores_whole_on_the_same_engine,
    a_flipped_byte_anywhere_fails_verify_and_restore,
    a_wrong_passphrase_or_identity_is_refused,
);
