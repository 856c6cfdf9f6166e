//! Session events reach the tamper-evident audit trail before the response (asvs.md 19, 44):
//! a refresh-token reuse is one critical event naming the session family and the client IP,
//! and each way a user ends their own sessions (logout, logout-all, deleting one session, a
//! password change) leaves its row with actor, subject and session.

use std::time::Duration;

use aerie::store::AuditRow;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{self, PASSWORD, TestApp, engine_tests, refresh_token_of, rows_of, token_of};

fn detail(row: &AuditRow) -> Value {
    serde_json::from_str(&row.detail).expect("JSON detail")
}

/// The id of the first account registered (bob, in every test here), from its event.
async fn bobs_id(app: &TestApp) -> i64 {
    let registrations = rows_of(app, "user_registered").await;
    registrations[0].subject_id.expect("subject")
}

/// The caller's session ids: (current, others).
async fn sessions(app: &TestApp, token: &str) -> (String, Vec<String>) {
    let reply = app.get("/api/auth/sessions", Some(token)).await;
    let mut current = String::new();
    let mut others = Vec::new();
    for session in reply.body["sessions"].as_array().expect("sessions") {
        let id = session["id"].as_str().expect("id").to_owned();
        if session["current"] == true {
            current = id;
        } else {
            others.push(id);
        }
    }
    (current, others)
}

async fn refresh_reuse_is_one_critical_audit_event_naming_family_and_client(app: TestApp) {
    let bob = app.register_user("bob").await;
    let (family, _) = sessions(&app, &token_of(&bob)).await;
    let stolen = refresh_token_of(&bob);
    let refresh = |token: String| {
        let app = &app;
        async move {
            app.post("/api/auth/refresh", None, json!({"refreshToken": token}))
                .await
                .status
        }
    };
    assert_eq!(refresh(stolen.clone()).await, StatusCode::OK);
    app.clock.advance(Duration::from_secs(6));
    assert_eq!(refresh(stolen.clone()).await, StatusCode::UNAUTHORIZED);
    // Presented once more, the family is already dead: no second event.
    assert_eq!(refresh(stolen).await, StatusCode::UNAUTHORIZED);
    let rows = rows_of(&app, "refresh_reuse_detected").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row.severity, "critical");
    assert_eq!(row.session_id.as_deref(), Some(family.as_str()));
    assert_eq!(detail(row)["sessionFamily"], family.as_str());
    assert_eq!(row.client_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(row.subject_id, Some(bobs_id(&app).await));
    assert_eq!(row.actor_id, None, "whoever presented it is unknown");
}

async fn logout_is_audited_with_actor_subject_and_session(app: TestApp) {
    let bob = app.register_user("bob").await;
    let (session, _) = sessions(&app, &token_of(&bob)).await;
    let reply = app
        .post("/api/auth/logout", Some(&token_of(&bob)), json!({}))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let rows = rows_of(&app, "logout").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let bob_id = bobs_id(&app).await;
    assert_eq!(
        (rows[0].actor_id, rows[0].subject_id),
        (Some(bob_id), Some(bob_id))
    );
    assert_eq!(rows[0].session_id.as_deref(), Some(session.as_str()));
    assert_eq!(rows[0].client_ip.as_deref(), Some("127.0.0.1"));
}

async fn logout_all_is_one_session_revoked_event(app: TestApp) {
    app.register_user("bob").await;
    let laptop = app.login_user("bob").await;
    let (session, others) = sessions(&app, &token_of(&laptop)).await;
    assert_eq!(others.len(), 1);
    let reply = app
        .post("/api/auth/logout-all", Some(&token_of(&laptop)), json!({}))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let rows = rows_of(&app, "session_revoked").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let bob_id = bobs_id(&app).await;
    assert_eq!(
        (rows[0].actor_id, rows[0].subject_id),
        (Some(bob_id), Some(bob_id))
    );
    assert_eq!(rows[0].session_id.as_deref(), Some(session.as_str()));
    assert_eq!(
        detail(&rows[0]),
        json!({"by": "user", "reason": "logout_all", "callerSession": session, "revoked": 2})
    );
}

async fn deleting_one_of_ones_sessions_is_audited(app: TestApp) {
    let phone = app.register_user("bob").await;
    app.login_user("bob").await;
    let alice = app.register_user("alice").await;
    let (current, others) = sessions(&app, &token_of(&phone)).await;
    let laptop = &others[0];
    // Someone else's session: 404, and nothing recorded.
    let theirs = app
        .delete(
            &format!("/api/auth/sessions/{laptop}"),
            Some(&token_of(&alice)),
        )
        .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    assert!(rows_of(&app, "session_revoked").await.is_empty());
    let reply = app
        .delete(
            &format!("/api/auth/sessions/{laptop}"),
            Some(&token_of(&phone)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let rows = rows_of(&app, "session_revoked").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].actor_id, Some(bobs_id(&app).await));
    assert_eq!(
        rows[0].session_id.as_deref(),
        Some(laptop.as_str()),
        "the session that ended"
    );
    assert_eq!(
        detail(&rows[0]),
        json!({"by": "user", "reason": "session_deleted", "callerSession": current, "revoked": 1})
    );
}

async fn a_password_change_records_the_other_sessions_it_ended(app: TestApp) {
    let here = app.register_user("bob").await;
    app.login_user("bob").await;
    app.login_user("bob").await;
    let (current, _) = sessions(&app, &token_of(&here)).await;
    let reply = app
        .put("/api/user/password", Some(&token_of(&here)), json!({"currentPassword": PASSWORD, "newPassword": "a completely different passphrase 77"}))
        .await;
    reply.assert_status(StatusCode::NO_CONTENT);
    let rows = rows_of(&app, "session_revoked").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].subject_id, Some(bobs_id(&app).await));
    assert_eq!(
        rows[0].session_id.as_deref(),
        Some(current.as_str()),
        "the session that stays"
    );
    assert_eq!(
        detail(&rows[0]),
        json!({"by": "user", "reason": "password_changed", "callerSession": current, "revoked": 2})
    );
    // Through PUT /api/user too; with no other session left, nothing is recorded.
    let again = app
        .put("/api/user", Some(&token_of(&here)), json!({"user": {"password": "yet another fine passphrase 88", "currentPassword": "a completely different passphrase 77"}}))
        .await;
    again.assert_status(StatusCode::OK);
    assert_eq!(rows_of(&app, "session_revoked").await.len(), 1);
    assert_eq!(rows_of(&app, "password_changed").await.len(), 2);
}

async fn each_refresh_rotation_is_audited_in_its_session(app: TestApp) {
    let bob = app.register_user("bob").await;
    let (family, _) = sessions(&app, &token_of(&bob)).await;
    let first = refresh_token_of(&bob);
    let reply = app
        .post("/api/auth/refresh", None, json!({"refreshToken": first}))
        .await;
    reply.assert_status(StatusCode::OK);
    let second = refresh_token_of(&reply.body["user"]);
    assert_eq!(
        app.post("/api/auth/refresh", None, json!({"refreshToken": second}))
            .await
            .status,
        StatusCode::OK
    );
    let rotated = rows_of(&app, "refresh_rotated").await;
    assert_eq!(rotated.len(), 2);
    for row in &rotated {
        assert_eq!(row.session_id.as_deref(), Some(family.as_str()));
        assert_eq!(row.subject_id, Some(bobs_id(&app).await));
        assert_eq!(row.client_ip.as_deref(), Some("127.0.0.1"));
    }
    let refused = app
        .post(
            "/api/auth/refresh",
            None,
            json!({"refreshToken": common::random_refresh_token()}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        rows_of(&app, "refresh_rotated").await.len(),
        2,
        "a refused refresh rotates nothing"
    );
}

engine_tests!(
    refresh_reuse_is_one_critical_audit_event_naming_family_and_client,
    logout_is_audited_with_actor_subject_and_session,
    logout_all_is_one_session_revoked_event,
    deleting_one_of_ones_sessions_is_audited,
    a_password_change_records_the_other_sessions_it_ended,
    each_refresh_rotation_is_audited_in_its_session,
);
