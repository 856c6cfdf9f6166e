//! Field encryption at rest (issue 16 items 1 and 2): someone holding a copy of the database
//! (the SQLite file with its WAL, or every table of PostgreSQL) after real traffic finds no
//! email, password, token or TOTP secret in it; a sealed value moved to another row, altered
//! or relabelled with another key id does not open (a 500 naming only the request id, never
//! a wrong account's data); rows left in clear by an older build are sealed at start; and the
//! data key rotates while the server serves, old keys retiring only once nothing uses them.
//! The keys are the file's: a copy of the database served with any other key file finds no
//! account.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::mfa::{STEP, answer, challenge_for, code_at, enrolled};
use crate::common::{
    Engine, PASSWORD, Reply, TestApp, aerie, engine_tests, refresh, refresh_token_of, rows_of,
    run_aerie, token_of,
};

engine_tests!(
    nothing_personal_or_secret_is_stored_in_clear,
    a_sealed_email_moved_to_another_row_does_not_open,
    altered_or_relabelled_values_do_not_open,
    an_email_planted_as_the_totp_secret_does_not_open,
    rows_an_older_build_left_in_clear_are_sealed_at_start,
    totp_secrets_of_the_retired_mfa_key_are_resealed_at_start,
    the_data_key_rotates_while_the_server_serves,
    a_running_server_seals_under_a_rotated_key_from_its_next_recheck,
    a_stolen_database_served_with_another_key_file_reveals_no_account,
    old_keys_are_not_retired_while_a_value_uses_them,
);

/// Everything someone with a copy of the database can read: on SQLite the file, its WAL and
/// its shared-memory index, byte for byte; on PostgreSQL every row of every table, as text.
async fn everything_stored(app: &TestApp) -> Vec<u8> {
    match app.engine {
        Engine::Sqlite => {
            let mut bytes = Vec::new();
            for file in ["aerie.db", "aerie.db-wal", "aerie.db-shm"] {
                if let Ok(content) = std::fs::read(app.data_dir.path().join(file)) {
                    bytes.extend_from_slice(&content);
                }
            }
            assert!(bytes.len() > 4096, "the database was read");
            bytes
        }
        Engine::Postgres => {
            let tables = app
                .query_text(
                    "SELECT CAST(table_name AS TEXT) FROM information_schema.tables
                     WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
                )
                .await;
            assert!(tables.iter().any(|t| t == "users"), "{tables:?}");
            let mut text = String::new();
            for table in tables {
                let rows = app
                    .query_text(&format!("SELECT CAST(t AS TEXT) FROM \"{table}\" t"))
                    .await;
                text.push_str(&rows.join("\n"));
            }
            text.into_bytes()
        }
    }
}

/// Whether `needle` occurs in `haystack`, ignoring ASCII case.
fn contains(haystack: &[u8], needle: &str) -> bool {
    let needle = needle.to_ascii_lowercase().into_bytes();
    haystack
        .windows(needle.len())
        .any(|window| window.to_ascii_lowercase() == needle)
}

async fn register_with_email(app: &TestApp, name: &str, email: &str) -> Value {
    let reply = app
        .post(
            "/api/users",
            None,
            json!({"user": {"username": name, "email": email, "password": PASSWORD}}),
        )
        .await;
    reply.assert_status(StatusCode::CREATED);
    reply.body["user"].clone()
}

async fn nothing_personal_or_secret_is_stored_in_clear(app: TestApp) {
    let mut needles: Vec<String> = vec![PASSWORD.to_owned()];
    let alice = register_with_email(&app, "alice", "Alice.Private@Example.org").await;
    needles.push("alice.private@example.org".into());
    let login = app.login("alice.private@example.org", PASSWORD).await;
    login.assert_status(StatusCode::OK);
    let refreshed = refresh(&app, &refresh_token_of(&login.body["user"])).await;
    refreshed.assert_status(StatusCode::OK);
    for user in [&alice, &login.body["user"], &refreshed.body["user"]] {
        needles.push(token_of(user));
        needles.push(refresh_token_of(user));
    }
    // A new address, after a fresh login (a recent password authentication).
    let changed = app
        .put(
            "/api/user",
            Some(&token_of(&refreshed.body["user"])),
            json!({"user": {"email": "alice.moved@example.net"}}),
        )
        .await;
    changed.assert_status(StatusCode::OK);
    // Development mails the new address a link (an `.eml` file); following it moves the
    // account, and until then the new address waits sealed.
    let link = app
        .outbox_mail("alice.moved@example.net", "Confirm")
        .await
        .token()
        .expect("a confirmation link");
    needles.push(link.clone());
    app.post("/api/auth/email/confirm", None, json!({ "token": link }))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    needles.push("alice.moved@example.net".into());
    // MFA: the secret, its raw bytes in hex, the recovery codes; then a login with a code.
    let bob = enrolled(&app, "bob").await;
    needles.push("bob@example.com".into());
    needles.push(bob.secret.clone());
    let raw = totp_rs::Secret::try_from_base32(&bob.secret).expect("base32");
    needles.push(raw.as_ref().iter().map(|b| format!("{b:02x}")).collect());
    for code in &bob.recovery_codes {
        needles.push(code.clone());
        needles.push(code.replace('-', ""));
    }
    let challenge = challenge_for(&app, "bob").await;
    needles.push(challenge.clone());
    answer(&app, &challenge, &code_at(&app, &bob.secret))
        .await
        .assert_status(StatusCode::OK);
    // A failed login for an address nobody has.
    app.login("nobody.here@example.com", "wrong password 123")
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    needles.push("nobody.here@example.com".into());

    let stored = everything_stored(&app).await;
    for needle in &needles {
        assert!(!contains(&stored, needle), "found in clear: {needle}");
    }
    // The control: without its seal the address would be found where the test looks.
    assert!(
        contains(&stored, "alice"),
        "usernames are public and in clear"
    );
    let emails = app.query_text("SELECT email_sealed FROM users").await;
    assert!(emails.iter().all(|e| e.starts_with("f1.1.")), "{emails:?}");
}

async fn a_sealed_email_moved_to_another_row_does_not_open(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    app.execute_sql(
        "UPDATE users SET email_sealed = (SELECT email_sealed FROM users WHERE username_key = 'alice')
         WHERE username_key = 'bob'",
    )
    .await;
    let refused = app.get("/api/user", Some(&bob)).await;
    assert_internal_without_data(&refused, "alice@example.com");
    // Bob's login finds his row by his own address's index, and still refuses to show
    // alice's address as his.
    let login = app.login("bob@example.com", PASSWORD).await;
    assert_internal_without_data(&login, "alice@example.com");
    let own = app.get("/api/user", Some(&alice)).await;
    own.assert_status(StatusCode::OK);
    assert_eq!(own.body["user"]["email"], "alice@example.com");
}

async fn altered_or_relabelled_values_do_not_open(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = enrolled(&app, "bob").await;
    // One character of alice's sealed address changed.
    let sealed = app
        .query_text("SELECT email_sealed FROM users WHERE username_key = 'alice'")
        .await
        .remove(0);
    let last = sealed.chars().last().expect("not empty");
    let altered = format!(
        "{}{}",
        &sealed[..sealed.len() - 1],
        if last == 'A' { 'B' } else { 'A' }
    );
    app.execute_sql(&format!(
        "UPDATE users SET email_sealed = '{altered}' WHERE username_key = 'alice'"
    ))
    .await;
    assert_internal_without_data(&app.get("/api/user", Some(&alice)).await, "alice@");
    // Bob's TOTP secret relabelled with a key id the keyring does not hold.
    app.execute_sql("UPDATE mfa_totp SET secret_sealed = REPLACE(secret_sealed, 'f1.1.', 'f1.7.')")
        .await;
    app.clock.advance(STEP);
    let step_up = app
        .post(
            "/api/auth/step-up",
            Some(&bob.token),
            json!({"code": code_at(&app, &bob.secret)}),
        )
        .await;
    assert_internal_without_data(&step_up, &bob.secret);
}

/// Someone who can write the database but holds no key wants to answer an account's second
/// factor: they copy a sealed value whose plaintext they know (the account's own email, of
/// the same row) over its TOTP secret. The seal covers the column, so the planted value does
/// not open, and no code derived from the address passes.
async fn an_email_planted_as_the_totp_secret_does_not_open(app: TestApp) {
    // An address of 16 bytes or more, so that it would be a usable TOTP secret.
    let email = "robert.builder@example.com";
    let bob = enrolled(&app, "robert.builder").await;
    app.execute_sql(
        "UPDATE mfa_totp SET secret_sealed =
         (SELECT email_sealed FROM users WHERE users.id = mfa_totp.user_id)",
    )
    .await;
    let known = totp_rs::Secret::from(email.as_bytes().to_vec()).to_base32();
    app.clock.advance(STEP);
    let step_up = app
        .post(
            "/api/auth/step-up",
            Some(&bob.token),
            json!({"code": code_at(&app, &known)}),
        )
        .await;
    assert_internal_without_data(&step_up, email);
}

/// A 500 whose body is the generic error with a request id: nothing of the row.
fn assert_internal_without_data(reply: &Reply, data: &str) {
    reply.assert_status(StatusCode::INTERNAL_SERVER_ERROR);
    let body = reply.body.to_string();
    for leak in [data, "f1.", "sealed", "key"] {
        assert!(!body.contains(leak), "{leak} in {body}");
    }
}

async fn rows_an_older_build_left_in_clear_are_sealed_at_start(app: TestApp) {
    app.register("dave").await;
    // What the upgrade's migration leaves: the address and its lowercase key in clear.
    app.execute_sql(
        "UPDATE users SET email_sealed = 'Dave.Legacy@example.com',
                          email_index = 'dave.legacy@example.com'
         WHERE username_key = 'dave'",
    )
    .await;
    let restarted = app.spawn_sibling().await;
    let login = restarted.login("dave.legacy@example.com", PASSWORD).await;
    login.assert_status(StatusCode::OK);
    assert_eq!(login.body["user"]["email"], "Dave.Legacy@example.com");
    let stored = app
        .query_text("SELECT email_sealed || ' ' || email_index FROM users")
        .await;
    assert!(
        stored
            .iter()
            .all(|s| s.starts_with("f1.1.") && s.contains(" i1.")),
        "{stored:?}"
    );
    // SQLite keeps old pages: the start compacted the file and emptied the WAL.
    assert!(!contains(&everything_stored(&app).await, "dave.legacy"));
}

/// What the retired MFA sealer stored: `v1.` and base64 of nonce, ciphertext and tag, with
/// the account and column as associated data.
fn sealed_by_the_retired_mfa_key(key: &[u8; 32], user_id: &str, secret: &[u8]) -> String {
    use base64::Engine as _;
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    let cipher = chacha20poly1305::XChaCha20Poly1305::new(&(*key).into());
    let nonce: [u8; 24] = rand::random();
    let aad = format!("aerie:mfa_totp.secret_sealed:{user_id}");
    let sealed = cipher
        .encrypt(
            &nonce.into(),
            Payload {
                msg: secret,
                aad: aad.as_bytes(),
            },
        )
        .expect("seals");
    let mut stored = nonce.to_vec();
    stored.extend_from_slice(&sealed);
    format!(
        "v1.{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(stored)
    )
}

async fn totp_secrets_of_the_retired_mfa_key_are_resealed_at_start(app: TestApp) {
    let bob = enrolled(&app, "bob").await;
    let id = app
        .query_text("SELECT CAST(id AS TEXT) FROM users WHERE username_key = 'bob'")
        .await
        .remove(0);
    // An older build's key and bob's secret sealed by it.
    let key: [u8; 32] = rand::random();
    let key_file = app.data_dir.path().join("mfa-key");
    aerie::keyfile::create(&key_file, &key).expect("old key");
    let raw = totp_rs::Secret::try_from_base32(&bob.secret).expect("base32");
    let legacy = sealed_by_the_retired_mfa_key(&key, &id, raw.as_ref());
    app.execute_sql(&format!("UPDATE mfa_totp SET secret_sealed = '{legacy}'"))
        .await;
    let key_file = key_file.display().to_string();
    let restarted = app
        .spawn_sibling_with(&[("AERIE_MFA_KEY_FILE", key_file.as_str())])
        .await;
    let stored = app.query_text("SELECT secret_sealed FROM mfa_totp").await;
    assert!(stored[0].starts_with("f1.1."), "{stored:?}");
    // What the retired key opens does not linger in the SQLite file's old pages or its WAL
    // (the start compacted it), where a copy of the file and the old key would read it.
    assert!(!contains(&everything_stored(&app).await, &legacy));
    restarted.clock.advance(STEP * 2);
    answer(
        &restarted,
        &challenge_for(&restarted, "bob").await,
        &code_at(&restarted, &bob.secret),
    )
    .await
    .assert_status(StatusCode::OK);
}

async fn the_data_key_rotates_while_the_server_serves(app: TestApp) {
    app.register("alice").await;
    let bob = enrolled(&app, "bob").await;
    // A row an upgrade left in clear (as the migration to field encryption leaves them) is
    // sealed by the rotation too.
    app.execute_sql(
        "UPDATE users SET email_sealed = 'alice@example.com', email_index = 'alice@example.com'
         WHERE username_key = 'alice'",
    )
    .await;
    let output = aerie(&app, "", &["keys", "rotate-data", "--batch", "1"], "").await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("data key 2 added"), "{stdout}");
    assert!(
        stdout.contains("sealed 1 row(s) an upgrade had left in clear"),
        "{stdout}"
    );
    assert!(
        stdout.contains("every value is sealed under key 2; no value uses key(s) [1]"),
        "{stdout}"
    );
    let sealed = app
        .query_text("SELECT email_sealed FROM users UNION ALL SELECT secret_sealed FROM mfa_totp")
        .await;
    assert_eq!(sealed.len(), 3);
    assert!(sealed.iter().all(|s| s.starts_with("f1.2.")), "{sealed:?}");
    // The running server opens key-2 values (loading the key on first sight) and then seals
    // under it.
    app.login_user("alice").await;
    app.clock.advance(STEP);
    answer(
        &app,
        &challenge_for(&app, "bob").await,
        &code_at(&app, &bob.secret),
    )
    .await
    .assert_status(StatusCode::OK);
    app.register("carol").await;
    let carol = app
        .query_text("SELECT email_sealed FROM users WHERE username_key = 'carol'")
        .await;
    assert!(carol[0].starts_with("f1.2."), "{carol:?}");

    aerie(&app, "", &["keys", "rotate-data", "--retire"], "").await;
    let keys = std::fs::read_to_string(app.data_dir.path().join("data-keys")).expect("keys");
    assert!(
        !keys.contains("\nkey 1 ") && keys.contains("\nkey 2 "),
        "{keys}"
    );
    let restarted = app.spawn_sibling().await;
    restarted.login_user("alice").await;
    restarted.login_user("carol").await;
    let rotated = rows_of(&app, "key_rotated").await;
    assert_eq!(rotated.len(), 1);
    assert!(
        rotated[0].detail.contains(r#""key":"data""#)
            && rotated[0].detail.contains(r#""keys":[1,2]"#),
        "{}",
        rotated[0].detail
    );
    // The trail says what each key sealed when the pass ended, field by field.
    let resealed = rows_of(&app, "data_resealed").await;
    assert_eq!(resealed.len(), 1);
    assert!(
        resealed[0]
            .detail
            .contains(r#""users.email_sealed":{"byKey":{"1":0,"2":2},"other":0}"#)
            && resealed[0]
                .detail
                .contains(r#""mfa_totp.secret_sealed":{"byKey":{"0":0,"1":0,"2":1},"other":0}"#),
        "{}",
        resealed[0].detail
    );
    let retired = rows_of(&app, "key_retired").await;
    assert_eq!(retired.len(), 1);
    assert!(
        retired[0].detail.contains(r#""retired":[1]"#),
        "{}",
        retired[0].detail
    );
}

/// Adds data key 2 to the deployment's key file without `aerie keys rotate-data`: no value
/// is moved to it. Answers the file's path.
fn add_data_key_2_by_hand(app: &TestApp) -> std::path::PathBuf {
    let path = app.data_dir.path().join("data-keys");
    let mut file = aerie::field_keys::KeyFile::read(&path).expect("keys");
    assert_eq!(file.add_key(), 2);
    file.replace(&path).expect("written");
    path
}

async fn old_keys_are_not_retired_while_a_value_uses_them(app: TestApp) {
    app.register("alice").await;
    // A new key the values have not moved to yet (as after an interrupted rotation).
    let path = add_data_key_2_by_hand(&app);
    let refused = run_aerie(&app, "", &["keys", "rotate-data", "--retire"], "").await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("not sealed under the active key 2")
            && stderr.contains("key 1: 1")
            && !stderr.contains("unknown key or not sealed"),
        "{stderr}"
    );
    let keys = std::fs::read_to_string(&path).expect("keys");
    assert!(keys.contains("\nkey 1 "), "nothing retired: {keys}");
    app.login_user("alice").await;
    // `--resume` finishes the move without another key; then retiring works.
    let resumed = aerie(&app, "", &["keys", "rotate-data", "--resume"], "").await;
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert!(
        stdout.contains("every value is sealed under key 2")
            && stdout.contains("users.email_sealed: 1/1 rows read, 1 re-sealed")
            && !stdout.contains("left in clear"),
        "{stdout}"
    );
    // A resume re-seals only what is not under the active key yet: one interrupted over
    // millions of rows does not do its finished part again.
    let again = aerie(&app, "", &["keys", "rotate-data", "--resume"], "").await;
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(
        stdout.contains("users.email_sealed: 1/1 rows read, 0 re-sealed"),
        "{stdout}"
    );
    aerie(&app, "", &["keys", "rotate-data", "--retire"], "").await;
    app.login_user("alice").await;
    assert!(rows_of(&app, "key_rotated").await.is_empty());
    // A value under a key the file does not hold (a row from another deployment's backup,
    // say) also stops a retirement, and is named as such.
    app.execute_sql("UPDATE users SET email_sealed = REPLACE(email_sealed, 'f1.2.', 'f1.7.')")
        .await;
    let refused = run_aerie(&app, "", &["keys", "rotate-data", "--retire"], "").await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("users.email_sealed: key 2: 0, unknown key or not sealed: 1"),
        "{stderr}"
    );
}

/// The email a user's row is sealed under, as stored.
async fn sealed_email_of(app: &TestApp, username: &str) -> String {
    let sql = format!("SELECT email_sealed FROM users WHERE username_key = '{username}'");
    let mut rows = app.query_text(&sql).await;
    assert_eq!(rows.len(), 1, "{username}");
    rows.remove(0)
}

/// A key added to the file by hand (or by `rotate-data` on another host) reaches a server
/// that never meets a value sealed under it: the server checks the file every 5 s of its
/// clock before sealing, so the rows it writes after that are under the new key, and a
/// retired (perhaps leaked) key does not go on sealing new data until a restart.
async fn a_running_server_seals_under_a_rotated_key_from_its_next_recheck(app: TestApp) {
    app.register("alice").await;
    add_data_key_2_by_hand(&app);
    // Until the check is due the keys in memory seal: no file read for every sealed value.
    app.register("bob").await;
    assert!(sealed_email_of(&app, "bob").await.starts_with("f1.1."));
    // Exactly the interval.
    app.clock.advance(Duration::from_secs(5));
    app.register("carol").await;
    let carol = sealed_email_of(&app, "carol").await;
    assert!(carol.starts_with("f1.2."), "{carol}");
    for name in ["alice", "bob", "carol"] {
        app.login_user(name).await;
    }
}

/// Someone with a copy of the database (a dump, a backup, a replica) and a server of their
/// own, but not the key file: their server, started with a key file of its own, finds no
/// account by its email, so neither logins nor lookups by address work for them.
async fn a_stolen_database_served_with_another_key_file_reveals_no_account(app: TestApp) {
    app.register("alice").await;
    app.login_user("alice").await;
    let other = app.data_dir.path().join("their-data-keys");
    aerie::field_keys::KeyFile::fresh()
        .create(&other)
        .expect("written");
    let other = other.display().to_string();
    let theirs = app
        .spawn_sibling_with(&[("AERIE_DATA_KEYS_FILE", other.as_str())])
        .await;
    let login = theirs.login("alice@example.com", PASSWORD).await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED, "{}", login.body);
}
