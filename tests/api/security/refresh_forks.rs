//! Forking a refresh family (issue 13.1): a thief who replays a stolen refresh token, or two
//! refreshes racing, must never leave two live branches of one session. Inside the grace
//! window a replay gets the *same* successor as the first refresh; after it, any use of a
//! rotated token revokes the whole family and records the critical `refresh_reuse_detected`.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;

use crate::common::{
    self, Engine, TestApp, assert_unauthorized, engine_tests, refresh, refresh_token_of, refreshed,
    token_of,
};

/// The default grace window for a concurrent refresh.
const GRACE: Duration = Duration::from_secs(5);

/// The refresh tokens handed out by a set of answers to one token; refusals hand out none.
fn successors(replies: &[common::Reply]) -> HashSet<String> {
    replies
        .iter()
        .filter_map(|reply| match reply.status {
            StatusCode::OK => Some(refresh_token_of(&reply.body["user"])),
            StatusCode::UNAUTHORIZED => None,
            other => panic!("a refresh answered {other}: {}", reply.body),
        })
        .collect()
}

/// The caller's live sessions, as `GET /api/auth/sessions` lists them.
async fn session_count(app: &TestApp, access_token: &str) -> usize {
    let reply = app.get("/api/auth/sessions", Some(access_token)).await;
    reply.assert_status(StatusCode::OK);
    reply.body["sessions"].as_array().expect("sessions").len()
}

/// How many `refresh_reuse_detected` rows the audit trail holds.
async fn reuse_events(app: &TestApp) -> usize {
    let store = app.store().await;
    let rows = store.audit_rows_after(0, 10_000).await.expect("audit rows");
    store.close().await;
    rows.iter()
        .filter(|row| row.event_type == "refresh_reuse_detected")
        .count()
}

/// Four refreshes of one token at once, round after round along the chain: every round hands
/// out one successor at most, and the chain goes on from it.
async fn race_along_the_chain(app: &TestApp) {
    let bob = app.register_user("bob").await;
    let mut token = refresh_token_of(&bob);
    let mut access = token_of(&bob);
    for round in 0..5 {
        let (a, b, c, d) = tokio::join!(
            refresh(app, &token),
            refresh(app, &token),
            refresh(app, &token),
            refresh(app, &token)
        );
        let replies = [a, b, c, d];
        let handed_out = successors(&replies);
        assert_eq!(
            handed_out.len(),
            1,
            "round {round}: racing refreshes of one token handed out {handed_out:?}"
        );
        token = handed_out.into_iter().next().expect("one successor");
        let winner = replies.iter().find(|reply| reply.status == StatusCode::OK);
        access = token_of(&winner.expect("one refresh succeeded").body["user"]);
    }
    assert_eq!(session_count(app, &access).await, 1, "one family");
    refreshed(app, &token).await;
}

async fn racing_refreshes_of_one_token_cannot_fork_the_family(app: TestApp) {
    race_along_the_chain(&app).await;
    assert_eq!(reuse_events(&app).await, 0, "a race is not theft");
}

async fn racing_refreshes_cannot_fork_the_family_with_no_grace(engine: Engine) {
    let app = TestApp::spawn_with(engine, &[("AERIE_REFRESH_GRACE_SECS", "0")]).await;
    race_along_the_chain(&app).await;
}

async fn replay_inside_the_grace_gets_the_same_successor(app: TestApp) {
    let bob = app.register_user("bob").await;
    let stolen = refresh_token_of(&bob);
    let rightful = refreshed(&app, &stolen).await;
    app.clock.advance(GRACE - Duration::from_secs(1));
    let replayed = refreshed(&app, &stolen).await;
    assert_eq!(
        refresh_token_of(&replayed),
        refresh_token_of(&rightful),
        "a replay inside the grace window gets the same successor, not a second branch"
    );
    let again = refreshed(&app, &stolen).await;
    assert_eq!(refresh_token_of(&again), refresh_token_of(&rightful));
    assert_eq!(session_count(&app, &token_of(&replayed)).await, 1);
    refreshed(&app, &refresh_token_of(&rightful)).await;
    assert_eq!(reuse_events(&app).await, 0, "inside the grace window");
}

async fn replay_after_the_grace_revokes_the_family_and_is_recorded(app: TestApp) {
    let bob = app.register_user("bob").await;
    let stolen = refresh_token_of(&bob);
    let rightful = refreshed(&app, &stolen).await;
    app.clock.advance(GRACE + Duration::from_secs(1));
    assert_unauthorized(&refresh(&app, &stolen).await, "replayed after the grace");
    assert_unauthorized(
        &refresh(&app, &refresh_token_of(&rightful)).await,
        "the family's newest token",
    );
    assert_unauthorized(
        &app.get("/api/user", Some(&token_of(&rightful))).await,
        "the family's access token",
    );
    assert_eq!(reuse_events(&app).await, 1);
}

/// The thief replays inside the grace window and so holds the rightful client's own next
/// token: there is still one branch. Whichever of the two uses it second, once the grace
/// is over, ends the session for both.
async fn after_a_replay_the_second_holder_kills_the_only_branch(app: TestApp) {
    let bob = app.register_user("bob").await;
    let stolen = refresh_token_of(&bob);
    let rightful = refreshed(&app, &stolen).await;
    let thief = refreshed(&app, &stolen).await;
    assert_eq!(
        session_count(&app, &token_of(&rightful)).await,
        1,
        "one session listed"
    );
    let moved_on = refreshed(&app, &refresh_token_of(&rightful)).await;
    app.clock.advance(GRACE + Duration::from_secs(1));
    assert_unauthorized(
        &refresh(&app, &refresh_token_of(&thief)).await,
        "the thief's copy after the grace",
    );
    assert_unauthorized(
        &refresh(&app, &refresh_token_of(&moved_on)).await,
        "every token of the family dies with it",
    );
    assert_unauthorized(
        &app.get("/api/user", Some(&token_of(&thief))).await,
        "the thief's access token",
    );
    assert_eq!(reuse_events(&app).await, 1);
}

/// Two instances of one deployment (same database, signing key and audit key) refreshing one
/// token at once agree on its successor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_refreshes_on_two_instances_cannot_fork_the_family() {
    let Some(a) = TestApp::spawn_postgres().await else {
        eprintln!("SKIPPED: two-instance refresh race needs AERIE_TEST_POSTGRES_URL");
        return;
    };
    let b = a.spawn_sibling().await;
    let bob = a.register_user("bob").await;
    let mut token = refresh_token_of(&bob);
    for round in 0..5 {
        let (on_a, on_b) = tokio::join!(refresh(&a, &token), refresh(&b, &token));
        let handed_out = successors(&[on_a, on_b]);
        assert_eq!(handed_out.len(), 1, "round {round}: {handed_out:?}");
        token = handed_out.into_iter().next().expect("one successor");
    }
    refreshed(&b, &token).await;
}

/// An instance that derives successors with another key (its audit key not shared, a
/// misconfiguration) cannot hand out the successor the rotation chose, and must not start a
/// second branch: it refuses the replay.
async fn replay_on_an_instance_with_another_key_is_refused_not_forked(app: TestApp) {
    let other_key = app.data_dir.path().join("another-audit-key");
    let other_key = other_key.display().to_string();
    let misconfigured = app
        .spawn_sibling_with(&[("AERIE_AUDIT_KEY_FILE", other_key.as_str())])
        .await;
    let bob = app.register_user("bob").await;
    let stolen = refresh_token_of(&bob);
    let rightful = refreshed(&app, &stolen).await;
    assert_unauthorized(
        &refresh(&misconfigured, &stolen).await,
        "replay where the successor differs",
    );
    let next = refreshed(&misconfigured, &refresh_token_of(&rightful)).await;
    assert_eq!(session_count(&app, &token_of(&next)).await, 1);
}

engine_tests!(
    replay_on_an_instance_with_another_key_is_refused_not_forked,
    racing_refreshes_of_one_token_cannot_fork_the_family,
    racing_refreshes_cannot_fork_the_family_with_no_grace,
    replay_inside_the_grace_gets_the_same_successor,
    replay_after_the_grace_revokes_the_family_and_is_recorded,
    after_a_replay_the_second_holder_kills_the_only_branch,
);
