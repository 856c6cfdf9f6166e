//! When the trail cannot take a record, the request that needed one fails and nothing is
//! half-recorded ("an unrecorded security action is worse than a refused one"). How it fails
//! tells the operator what to do: a database that cannot write in time is a 503, which a
//! client may retry and which passes by itself; a key the instance lacks is a 500, which only
//! the operator can mend. Either way the trail resumes, intact, without a restart.

use reqwest::StatusCode;

use super::trail::{aerie_with, assert_intact, succeeded};
use crate::common::{Locker, PASSWORD, TestApp, audit_rows, engine_tests};

engine_tests!(
    a_trail_the_database_cannot_write_in_time_is_a_503_and_resumes,
    an_instance_without_the_key_the_chain_moved_to_appends_nothing_until_it_has_it,
);

const WRONG: &str = "not the password at all";

/// A wrong password is recorded and writes nothing else: the audit append is the write
/// the lock holds up.
async fn a_trail_the_database_cannot_write_in_time_is_a_503_and_resumes(
    engine: crate::common::Engine,
) {
    let app = TestApp::spawn_with(engine, &[("AERIE_DATABASE_STATEMENT_BUDGET_MS", "1000")]).await;
    app.register("alice").await;
    let recorded = audit_rows(&app).await.len();
    let lock = Locker::take(&app, "audit_log").await;
    let held_up = app.login("alice@example.com", WRONG).await;
    assert_eq!(
        held_up.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        held_up.body
    );
    lock.release().await;
    assert_eq!(
        audit_rows(&app).await.len(),
        recorded,
        "a row from the refused append"
    );

    app.login("alice@example.com", WRONG)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    app.login("alice@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::OK);
    assert_intact(&app, i64::try_from(recorded).expect("rows") + 2);
}

/// `aerie keys rotate-audit` run against another instance's copy of the key file moves the
/// chain to a key this instance's file lacks. Appending under the old key would break the
/// chain, so the instance appends nothing and answers 500 (retrying cannot help), until its
/// file has the key: it reads the file again and goes on.
async fn an_instance_without_the_key_the_chain_moved_to_appends_nothing_until_it_has_it(
    app: TestApp,
) {
    app.register("alice").await;
    let own = app.data_dir.path().join("audit-key");
    let elsewhere = app.data_dir.path().join("audit-key-elsewhere");
    std::fs::copy(&own, &elsewhere).expect("the other instance's copy");
    let elsewhere_setting = elsewhere.display().to_string();
    let rotated = aerie_with(
        &app,
        &[("AERIE_AUDIT_KEY_FILE", elsewhere_setting.as_str())],
        &["keys", "rotate-audit"],
    );
    succeeded(&rotated);
    let recorded = audit_rows(&app).await.len();

    let refused = app.login("alice@example.com", WRONG).await;
    assert_eq!(
        refused.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        refused.body
    );
    assert!(
        !refused.body.to_string().contains("audit-key"),
        "the key file named to the client: {}",
        refused.body
    );
    assert_eq!(
        audit_rows(&app).await.len(),
        recorded,
        "a row under the old key"
    );

    std::fs::copy(&elsewhere, &own).expect("the rotated ring");
    app.login("alice@example.com", WRONG)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    assert_intact(&app, i64::try_from(recorded).expect("rows") + 1);
}
