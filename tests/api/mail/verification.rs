//! Address verification and confirmed address changes.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use super::{
    app_mailing_to, app_with_a_short_statement_budget, count_mails, disabled_by_an_admin,
    email_change_link, nth_mail, registered,
};
use crate::common::{Engine, Locker, SmtpServer, engine_tests};

engine_tests!(
    registration_mails_a_link_that_verifies_the_address_once,
    unverified_accounts_cannot_write_when_verification_is_required,
    an_email_change_takes_effect_only_when_the_new_address_confirms,
    an_unchanged_email_stays_a_no_op,
    a_verified_address_is_sent_no_new_verification_link,
    an_email_change_link_expires_after_30_minutes,
    two_accounts_asking_for_one_new_address_get_it_once,
    email_change_links_are_three_an_hour_and_a_fourth_request_changes_nothing,
    a_confirmed_change_the_database_cannot_save_is_a_503_not_a_taken_address,
    a_disabled_accounts_email_change_link_changes_nothing,
);

async fn registration_mails_a_link_that_verifies_the_address_once(engine: Engine) {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let app = app_mailing_to(engine, &smtp, &[]).await;
    let user = app.register_user("kate").await;
    assert_eq!(user["emailVerified"], false);
    let token = crate::common::token_of(&user);
    // Verification is not required unless configured: an unverified account writes.
    let article = json!({"article": {"title": "Before", "description": "d", "body": "b"}});
    app.post("/api/articles", Some(&token), article)
        .await
        .assert_status(StatusCode::CREATED);
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

/// Asking again for a verified address sends nothing (the answer is the same): the resend
/// route is no way to mail an account at will.
async fn a_verified_address_is_sent_no_new_verification_link(engine: Engine) {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let app = app_mailing_to(engine, &smtp, &[]).await;
    let token = app.register("owen").await;
    let link = nth_mail(&smtp, "owen@example.com", "Verify", 1).await;
    app.post(
        "/api/auth/email/verify",
        None,
        json!({ "token": link.token().expect("a link") }),
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
    app.post("/api/auth/email/verify/resend", Some(&token), json!({}))
        .await
        .assert_status(StatusCode::ACCEPTED);
    // Mail goes out in the order it was queued: once a later one is in, none is pending.
    super::request_reset(&app, "owen@example.com").await;
    smtp.wait_for("owen@example.com", "Reset", 20).await;
    assert_eq!(count_mails(&smtp, "owen@example.com", "Verify"), 1);
}

async fn an_email_change_link_expires_after_30_minutes(engine: Engine) {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let app = app_mailing_to(engine, &smtp, &[]).await;
    let token = registered(&app, &smtp, "pete").await;
    let link = email_change_link(&app, &smtp, &token, "pete.new@example.com").await;
    app.clock.advance(Duration::from_secs(30 * 60 + 1));
    let reply = app
        .post("/api/auth/email/confirm", None, json!({ "token": link }))
        .await;
    reply.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.error_on("token"), Some("is invalid or has expired"));
    let me = app
        .get(
            "/api/user",
            Some(&crate::common::token_of(&app.login_user("pete").await)),
        )
        .await;
    assert_eq!(me.body["user"]["email"], "pete@example.com");
}

/// A link asked for before an administrator disabled the account (perhaps by whoever had
/// taken it over) does not move its address: from the new one, a reset would retake the
/// account once it is enabled again.
async fn a_disabled_accounts_email_change_link_changes_nothing(engine: Engine) {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let app = app_mailing_to(engine, &smtp, &[]).await;
    let token = registered(&app, &smtp, "vera").await;
    let link = email_change_link(&app, &smtp, &token, "vera.new@example.com").await;
    let admin = disabled_by_an_admin(&app, "vera").await;

    let reply = app
        .post("/api/auth/email/confirm", None, json!({ "token": link }))
        .await;
    reply.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.error_on("token"), Some("is invalid or has expired"));
    assert!(app.audit_events("email_changed").await.is_empty());
    let listed = app.get("/api/admin/users?query=vera", Some(&admin)).await;
    listed.assert_status(StatusCode::OK);
    assert_eq!(
        listed.body["users"][0]["email"], "vera@example.com",
        "{}",
        listed.body
    );
}

/// Two accounts may both ask for an address nobody has yet; the first to confirm gets it and
/// the second is told it is taken, in the documented shape (not a 500, not a shared address).
async fn two_accounts_asking_for_one_new_address_get_it_once(engine: Engine) {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let app = app_mailing_to(engine, &smtp, &[]).await;
    let mut links = Vec::new();
    for (n, name) in ["ruth", "sara"].into_iter().enumerate() {
        let token = registered(&app, &smtp, name).await;
        app.put(
            "/api/user",
            Some(&token),
            json!({"user": {"email": "shared@example.com"}}),
        )
        .await
        .assert_status(StatusCode::OK);
        let mail = nth_mail(&smtp, "shared@example.com", "Confirm", n + 1).await;
        links.push(mail.token().expect("a link"));
    }
    let confirm = |link: String| {
        let app = &app;
        async move {
            app.post("/api/auth/email/confirm", None, json!({ "token": link }))
                .await
        }
    };
    confirm(links[0].clone())
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let second = confirm(links[1].clone()).await;
    second.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(second.error_on("email"), Some("has already been taken"));
    let sara = app.login_user("sara").await;
    assert_eq!(sara["email"], "sara@example.com");
    let ruth = app
        .login("shared@example.com", crate::common::PASSWORD)
        .await;
    ruth.assert_status(StatusCode::OK);
    assert_eq!(ruth.body["user"]["username"], "ruth");
}

/// The change form mails an address that is not yet the account's, so it is budgeted like
/// the other mails: three links an hour. A fourth request is refused with 429 before
/// anything in it is saved, and the links already sent keep working.
async fn email_change_links_are_three_an_hour_and_a_fourth_request_changes_nothing(engine: Engine) {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let app = app_mailing_to(engine, &smtp, &[]).await;
    let token = registered(&app, &smtp, "yara").await;
    let change = |email: String, bio: &'static str| {
        let (app, token) = (&app, &token);
        async move {
            let user = json!({"user": {"email": email, "bio": bio}});
            app.put("/api/user", Some(token), user).await
        }
    };
    for n in 1..=3 {
        change(format!("yara{n}@example.com"), "saved")
            .await
            .assert_status(StatusCode::OK);
    }
    let refused = change("yara4@example.com".into(), "not saved").await;
    refused.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert!(
        refused
            .error_on("quota")
            .is_some_and(|m| m.contains("3 links an hour")),
        "{}",
        refused.body
    );
    assert!(
        refused.header("retry-after").is_some(),
        "{:?}",
        refused.headers
    );
    let me = app.get("/api/user", Some(&token)).await;
    assert_eq!(me.body["user"]["bio"], "saved", "{}", me.body);
    assert_eq!(me.body["user"]["email"], "yara@example.com");
    assert_eq!(app.audit_events("email_change_requested").await.len(), 3);

    // The last link sent is still good (earlier ones were replaced by it).
    let last = nth_mail(&smtp, "yara3@example.com", "Confirm", 1).await;
    app.post(
        "/api/auth/email/confirm",
        None,
        json!({ "token": last.token().expect("a link") }),
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
    app.clock.advance(Duration::from_secs(60 * 60 + 1));
    let token = crate::common::token_of(
        &app.login("yara3@example.com", crate::common::PASSWORD)
            .await
            .body["user"],
    );
    app.put(
        "/api/user",
        Some(&token),
        json!({"user": {"email": "yara5@example.com"}}),
    )
    .await
    .assert_status(StatusCode::OK);
    nth_mail(&smtp, "yara5@example.com", "Confirm", 1).await;
}

/// Only a second account holding the address is "taken": a database that cannot save the
/// change in time is a 503 (retry later), the account keeps its address, and the link is
/// not spent: the same link makes the change once the database can.
async fn a_confirmed_change_the_database_cannot_save_is_a_503_not_a_taken_address(engine: Engine) {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let app = app_with_a_short_statement_budget(engine, &smtp).await;
    let token = registered(&app, &smtp, "zoe").await;
    app.put(
        "/api/user",
        Some(&token),
        json!({"user": {"email": "zoe.new@example.com"}}),
    )
    .await
    .assert_status(StatusCode::OK);
    let link = smtp
        .wait_for("zoe.new@example.com", "Confirm", 20)
        .await
        .token()
        .expect("a link");
    // On PostgreSQL the link's row can be written and the account's cannot; on SQLite
    // nothing can be.
    let lock = Locker::take(&app, "users").await;
    let confirm = || app.post("/api/auth/email/confirm", None, json!({ "token": link }));
    let reply = confirm().await;
    lock.release().await;
    reply.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    let me = app.get("/api/user", Some(&token)).await;
    assert_eq!(me.body["user"]["email"], "zoe@example.com");
    assert!(app.audit_events("email_changed").await.is_empty());

    confirm().await.assert_status(StatusCode::NO_CONTENT);
    let me = app.get("/api/user", Some(&token)).await;
    assert_eq!(me.body["user"]["email"], "zoe.new@example.com");
    confirm()
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
}
