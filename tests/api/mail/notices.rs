//! Security notices: a mail to the account when something about its security changed, and
//! none when nothing did (a notice for every sign-out would teach people to ignore them).

use reqwest::StatusCode;
use serde_json::json;

use super::{app_mailing_to, count_mails, registered};
use crate::common::{Engine, PASSWORD, SmtpServer, engine_tests};
use crate::security::mfa::{STEP, answer, challenge_for, code_at, enrolled, token_in};

engine_tests!(
    security_notices_reach_the_account,
    turning_mfa_off_is_told_and_signing_yourself_out_is_not,
);

async fn security_notices_reach_the_account(engine: Engine) {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let app = app_mailing_to(engine, &smtp, &[("AERIE_TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    registered(&app, &smtp, "olga").await;
    // A login from a device and network the account has not used: a notice.
    let reply = app
        .client
        .post(app.url("/api/users/login"))
        .header("X-Forwarded-For", "203.0.113.9")
        .header("User-Agent", "curl/8.5.0")
        .json(&json!({"user": {"email": "olga@example.com", "password": crate::common::PASSWORD}}))
        .send()
        .await
        .expect("login");
    assert_eq!(reply.status(), StatusCode::OK);
    smtp.wait_for("olga@example.com", "New sign-in", 20).await;
    // An administrator ending the account's sessions: a notice.
    app.register("root").await;
    app.set_role("root", "admin").await;
    let admin = crate::common::token_of(&app.login_user("root").await);
    app.delete("/api/admin/users/olga/sessions", Some(&admin))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    smtp.wait_for("olga@example.com", "signed out by an administrator", 20)
        .await;
    let token = crate::common::token_of(&app.login_user("olga").await);
    let reply = app
        .put(
            "/api/user/password",
            Some(&token),
            json!({"currentPassword": crate::common::PASSWORD, "newPassword": super::NEW_PASSWORD}),
        )
        .await;
    reply.assert_status(StatusCode::NO_CONTENT);
    let notice = smtp
        .wait_for("olga@example.com", "password was changed", 20)
        .await;
    assert!(notice.token().is_none(), "a notice carries no link token");
}

/// The account's own sign-outs (a logout; every other session ended by turning MFA off)
/// are not an administrator's: no "signed out by an administrator" notice. Turning MFA off
/// is told: it weakens the account.
async fn turning_mfa_off_is_told_and_signing_yourself_out_is_not(engine: Engine) {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let app = app_mailing_to(engine, &smtp, &[]).await;
    let tess = enrolled(&app, "tess").await;
    smtp.wait_for("tess@example.com", "turned on", 20).await;
    // Two more sessions (a code is good once: each takes the next one): one logs out, the
    // other is ended by turning MFA off.
    let mut sessions = Vec::new();
    for _ in 0..2 {
        app.clock.advance(STEP);
        let challenge = challenge_for(&app, "tess").await;
        sessions.push(token_in(
            &answer(&app, &challenge, &code_at(&app, &tess.secret)).await,
        ));
    }
    app.post("/api/auth/logout", Some(&sessions[0]), json!({}))
        .await
        .assert_status(StatusCode::NO_CONTENT);

    let request = app
        .client
        .delete(app.url("/api/auth/mfa/totp"))
        .header("Authorization", format!("Token {}", tess.token))
        .json(&json!({ "password": PASSWORD }));
    crate::common::read(request.send().await.expect("sent"))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    app.get("/api/user", Some(&sessions[1]))
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    assert!(
        !app.audit_events("session_revoked").await.is_empty(),
        "turning MFA off ended the other session"
    );
    smtp.wait_for("tess@example.com", "turned off", 20).await;
    // Mail goes out in the order it was queued: once the notice of a later change is in, a
    // sign-out notice would be too.
    app.put(
        "/api/user/password",
        Some(&tess.token),
        json!({"currentPassword": PASSWORD, "newPassword": super::NEW_PASSWORD}),
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
    smtp.wait_for("tess@example.com", "password was changed", 20)
        .await;
    assert_eq!(
        count_mails(&smtp, "tess@example.com", "signed out"),
        0,
        "{:?}",
        smtp.mails_to("tess@example.com")
            .iter()
            .map(|m| &m.subject)
            .collect::<Vec<_>>()
    );
}
