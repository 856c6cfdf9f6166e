//! Rotating the audit key (issue 16 item 2): `aerie keys rotate-audit` continues the chain
//! under a new key while the server keeps recording, older keys stay only to verify their
//! segments, an unfinished rotation is found and finished, and a leaked older key cannot
//! extend the chain unnoticed.

use std::path::PathBuf;

use aerie::audit::{AuditEvent, AuditKeys, EventType, chain};
use aerie::store::ChainHead;

use super::trail::{
    aerie, assert_broken_at, assert_intact, five_events, stdout, succeeded, tamper,
};
use crate::common::{TestApp, audit_rows, engine_tests, rows_of};

engine_tests!(
    the_audit_key_rotates_while_the_server_keeps_recording,
    an_unfinished_audit_key_rotation_is_found_and_finished,
    a_leaked_older_audit_key_cannot_extend_the_chain,
);

fn key_file(app: &TestApp) -> PathBuf {
    app.data_dir.path().join("audit-key")
}

/// Runs `aerie keys rotate-audit`; answers the seq of its `audit_key_rotated` row.
async fn rotate(app: &TestApp) -> i64 {
    let output = aerie(app, &["keys", "rotate-audit"]);
    succeeded(&output);
    let rotated = rows_of(app, "audit_key_rotated").await;
    let last = rotated.last().expect("an audit_key_rotated row");
    assert!(
        stdout(&output).contains(&format!("after seq {}", last.seq)),
        "{}",
        stdout(&output)
    );
    last.seq
}

async fn the_audit_key_rotates_while_the_server_keeps_recording(app: TestApp) {
    five_events(&app).await;
    let before = std::fs::read(key_file(&app)).expect("key file");
    let rotated_at = rotate(&app).await;
    let after = std::fs::read(key_file(&app)).expect("key file");
    assert_eq!(after.len(), 64, "one key added");
    assert_eq!(
        after.get(..32),
        Some(before.as_slice()),
        "the old key stays"
    );
    let row = rows_of(&app, "audit_key_rotated").await.remove(0);
    assert!(row.detail.contains(r#""next_key":""#), "{}", row.detail);
    assert!(row.detail.contains(r#""by":"cli""#), "{}", row.detail);

    // The running server follows: its next rows are sealed by the new key (under the old
    // one the row after the rotation would not verify).
    app.register("carol").await;
    app.login_user("carol").await;
    assert_intact(&app, rotated_at + 2);

    // The rows after the rotation need the new key: without it the chain cannot be verified.
    std::fs::write(key_file(&app), &before).expect("old ring only");
    assert_broken_at(&app, &["audit", "verify"], rotated_at);
    std::fs::write(key_file(&app), &after).expect("ring restored");

    // A second rotation adds a third key; every segment still verifies.
    let second = rotate(&app).await;
    assert_eq!(std::fs::read(key_file(&app)).expect("ring").len(), 96);
    app.register("dave").await;
    assert_intact(&app, second + 1);
}

async fn an_unfinished_audit_key_rotation_is_found_and_finished(app: TestApp) {
    five_events(&app).await;
    // As an interrupted run leaves it: a key added to the file, the chain not moved to it.
    let mut ring = std::fs::read(key_file(&app)).expect("key file");
    ring.extend_from_slice(&[42u8; 32]);
    std::fs::write(key_file(&app), &ring).expect("key added");
    let output = aerie(&app, &["audit", "verify"]);
    assert!(!output.status.success(), "{}", stdout(&output));
    assert!(
        stdout(&output).contains("not sealed by the newest key"),
        "{}",
        stdout(&output)
    );

    let rotated_at = rotate(&app).await;
    assert_eq!(
        std::fs::read(key_file(&app)).expect("ring"),
        ring,
        "the key already added is started, not another one added"
    );
    app.register("carol").await;
    assert_intact(&app, rotated_at + 1);
}

/// Someone who kept the old key (and can write the database) erases the rotation and
/// continues the chain under the old key: every link is valid under that key, but the tail is
/// not sealed by the newest one, and verification says so.
async fn a_leaked_older_audit_key_cannot_extend_the_chain(app: TestApp) {
    five_events(&app).await;
    let old_ring = std::fs::read(key_file(&app)).expect("key file");
    let rotated_at = rotate(&app).await;
    app.register("carol").await;
    assert_intact(&app, rotated_at + 1);

    let leaked_file = app.data_dir.path().join("leaked-audit-key");
    std::fs::write(&leaked_file, &old_ring).expect("leaked copy");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&leaked_file, std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
    }
    let leaked = AuditKeys::load_or_generate(&leaked_file, false).expect("leaked key");
    let last_kept = audit_rows(&app)
        .await
        .into_iter()
        .find(|row| row.seq == rotated_at - 1)
        .expect("the row before the rotation");
    let head = ChainHead {
        seq: last_kept.seq,
        mac: last_kept.mac.clone(),
    };
    let forged = chain::seal(
        leaked.first(),
        &head,
        last_kept.at + 1,
        &AuditEvent::new(EventType::Logout),
    );
    let insert = format!(
        "INSERT INTO audit_log (seq, at, event_type, severity, detail, prev_mac, mac) \
         VALUES ({}, {}, '{}', '{}', '{}', '{}', '{}')",
        forged.seq,
        forged.at,
        forged.event_type,
        forged.severity,
        forged.detail,
        forged.prev_mac,
        forged.mac
    );
    let cut = format!("DELETE FROM audit_log WHERE seq >= {rotated_at}");
    let rewind = format!(
        "UPDATE audit_chain_head SET seq = {}, mac = '{}', key_id = ''",
        forged.seq, forged.mac
    );
    tamper(&app, &[&cut, &insert, &rewind]).await;
    let output = aerie(&app, &["audit", "verify"]);
    assert!(!output.status.success(), "{}", stdout(&output));
    assert!(
        stdout(&output).contains(&format!("broken at seq {rotated_at}:"))
            && stdout(&output).contains("not sealed by the newest key"),
        "{}",
        stdout(&output)
    );
}
