//! Address verification, confirmed address changes, security notices.

use reqwest::StatusCode;
use serde_json::json;

use super::{app_mailing_to, registered};
use crate::common::{Engine, SmtpServer, engine_tests};

engine_tests!(
    registration_mails_a_link_that_verifies_the_address_once,
    unverified_accounts_cannot_write_when_verification_is_required,
    an_email_change_takes_effect_only_when_the_new_address_confirms,
    an_unchanged_email_stays_a_no_op,
    security_notices_reach_the_account,
);

async fn registration_mails_a_link_that_verifies_the_address_once(engine: Engine) {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let app = app_mailing_to(engine, &smtp, &[]).await;
    let user = app.register_user("kate").await;
    assert_eq!(user["emailVerified"], false);
    let token = crate::common::token_of(&user);
    let mail = smtp.wait_for("kate@example.com", "Verify", 20).await;
    let link = mail.token().expect("a link");
    let verify = |t: String| {
        let app = &app;
        async move {
            app.post("/api/auth/email/verify", None, json!({ "token": t }))
                .await
        }
    };
    verify(link.clone())
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let me = app.get("/api/user", Some(&token)).await;
    assert_eq!(me.body["user"]["emailVerified"], true, "{}", me.body);
    let again = verify(link).await;
    again.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(again.error_on("token"), Some("is invalid or has expired"));
    for bad in [
        json!({}),
        json!({ "token": 7 }),
        json!({ "token": "x", "extra": 1 }),
    ] {
        let reply = app.post("/api/auth/email/verify", None, bad).await;
        reply.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_eq!(app.audit_events("email_verified").await.len(), 1);
}

async fn unverified_accounts_cannot_write_when_verification_is_required(engine: Engine) {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let app = app_mailing_to(engine, &smtp, &[("AERIE_REQUIRE_VERIFIED_EMAIL", "true")]).await;
    let token = app.register("liam").await;
    let article = json!({"article": {"title": "Hello", "description": "d", "body": "b"}});
    let refused = app
        .post("/api/articles", Some(&token), article.clone())
        .await;
    refused.assert_status(StatusCode::FORBIDDEN);
    assert!(
        refused
            .error_on("email")
            .is_some_and(|m| m.contains("verified")),
        "{}",
        refused.body
    );
    // Reading, and the account's own routes, still work: a new link can be asked for.
    app.get("/api/articles", Some(&token))
        .await
        .assert_status(StatusCode::OK);
    app.post("/api/auth/email/verify/resend", Some(&token), json!({}))
        .await
        .assert_status(StatusCode::ACCEPTED);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while smtp.mails_to("liam@example.com").len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no second verification mail"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mails = smtp.mails_to("liam@example.com");
    let (first, second) = (
        mails[0].token().expect("link"),
        mails[1].token().expect("link"),
    );
    // A new link replaces the old one.
    app.post("/api/auth/email/verify", None, json!({ "token": first }))
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    app.post("/api/auth/email/verify", None, json!({ "token": second }))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    app.post("/api/articles", Some(&token), article)
        .await
        .assert_status(StatusCode::CREATED);
}

async fn an_email_change_takes_effect_only_when_the_new_address_confirms(engine: Engine) {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let app = app_mailing_to(engine, &smtp, &[]).await;
    let token = registered(&app, &smtp, "mia").await;
    let reply = app
        .put(
            "/api/user",
            Some(&token),
            json!({"user": {"email": "mia.new@example.com"}}),
        )
        .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["user"]["email"], "mia@example.com");
    let confirm = smtp.wait_for("mia.new@example.com", "Confirm", 20).await;
    smtp.wait_for("mia@example.com", "change of your email", 20)
        .await;
    let me = app.get("/api/user", Some(&token)).await;
    assert_eq!(me.body["user"]["email"], "mia@example.com");
    assert!(super::logs_in(&app, "mia@example.com", crate::common::PASSWORD).await);

    // The change link is not a reset or verification link.
    let link = confirm.token().expect("a link");
    super::confirm_reset(&app, &link, super::NEW_PASSWORD)
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    app.post("/api/auth/email/confirm", None, json!({ "token": link }))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let me = app.get("/api/user", Some(&token)).await;
    assert_eq!(me.body["user"]["email"], "mia.new@example.com");
    assert_eq!(me.body["user"]["emailVerified"], true);
    assert!(super::logs_in(&app, "mia.new@example.com", crate::common::PASSWORD).await);
    app.post("/api/auth/email/confirm", None, json!({ "token": link }))
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
}

async fn an_unchanged_email_stays_a_no_op(engine: Engine) {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let app = app_mailing_to(engine, &smtp, &[]).await;
    let token = registered(&app, &smtp, "noah").await;
    let reply = app
        .put(
            "/api/user",
            Some(&token),
            json!({"user": {"email": "noah@example.com", "bio": "hi"}}),
        )
        .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["user"]["bio"], "hi");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        smtp.mails_to("noah@example.com").len(),
        1,
        "only the verification mail"
    );
    assert!(app.audit_events("email_change_requested").await.is_empty());
}

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
