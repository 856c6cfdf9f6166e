//! Live sessions per user are capped (issue 22.4): a script that logs in forever would
//! otherwise grow the sessions table without bound. A login beyond the cap ends the user's
//! oldest session, on the trail as a `session_revoked` with its reason.

use reqwest::StatusCode;

use crate::common::{
    Engine, TestApp, assert_unauthorized, engine_tests, refresh, refresh_token_of, token_of,
};

async fn login_beyond_the_session_cap_revokes_the_oldest(engine: Engine) {
    let app = TestApp::spawn_with(engine, &[("AERIE_SESSIONS_PER_USER", "2")]).await;
    let first = app.register_user("bob").await;
    app.tick();
    let second = app.login_user("bob").await;
    app.tick();
    let third = app.login_user("bob").await;

    let feed = |token: String| {
        let app = &app;
        async move { app.get("/api/articles/feed", Some(&token)).await }
    };
    assert_unauthorized(&feed(token_of(&first)).await, "oldest access token");
    assert_unauthorized(
        &refresh(&app, &refresh_token_of(&first)).await,
        "oldest refresh token",
    );
    for (user, which) in [(&second, "second"), (&third, "third")] {
        let reply = feed(token_of(user)).await;
        assert_eq!(reply.status, StatusCode::OK, "{which}: {}", reply.body);
    }
    let sessions = app.get("/api/auth/sessions", Some(&token_of(&third))).await;
    sessions.assert_status(StatusCode::OK);
    assert_eq!(sessions.body["sessions"].as_array().map(Vec::len), Some(2));

    let trail = app.audit_events("session_revoked").await;
    assert_eq!(trail.len(), 1, "{trail:?}");
    assert_eq!(trail[0]["detail"]["reason"], "session_limit");
    assert_eq!(trail[0]["detail"]["by"], "system");
}

engine_tests!(login_beyond_the_session_cap_revokes_the_oldest);
