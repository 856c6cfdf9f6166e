//! Password reset by mail.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use super::{
    NEW_PASSWORD, app_mailing_to, app_with_a_short_statement_budget, confirm_reset, count_mails,
    logs_in, nth_mail, registered, request_reset, reset_outcomes,
};
use crate::common::{
    APP_URL, Engine, Locker, Mail, PASSWORD, SmtpServer, engine_tests, run_aerie_with,
};

engine_tests!(
    a_mailed_reset_link_sets_the_password_once_and_ends_every_session,
    a_reset_link_works_for_30_minutes_and_no_longer,
    a_reset_flood_mails_an_account_three_times_an_hour,
    a_burst_of_reset_requests_at_once_still_mails_three,
    a_disabled_account_gets_no_reset_link_and_its_old_links_stop_working,
    an_operator_reset_link_works_like_a_mailed_one,
    a_token_for_another_purpose_cannot_reset_a_password,
    reset_requests_answer_the_same_for_unknown_addresses,
    a_weak_new_password_is_refused_without_spending_the_token,
    resets_keep_mfa_and_are_audited,
    a_reset_the_database_cannot_finish_changes_nothing_and_its_link_still_works,
);

async fn a_mailed_reset_link_sets_the_password_once_and_ends_every_session(engine: Engine) {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let app = app_mailing_to(engine, &smtp, &[]).await;
    // An account made first, so the link's account is not simply the first one.
    registered(&app, &smtp, "zed").await;
    let session = registered(&app, &smtp, "alice").await;
    let other_session = crate::common::token_of(&app.login_user("alice").await);

    let reply = request_reset(&app, "alice@example.com").await;
    reply.assert_status(StatusCode::ACCEPTED);
    let mail = smtp.wait_for("alice@example.com", "Reset", 20).await;
    // The link is built from AERIE_APP_URL, whatever Host the request carried.
    assert_eq!(
        mail.link_page().as_deref(),
        Some(format!("{APP_URL}/password-reset").as_str())
    );
    let token = mail.token().expect("the mail carries a link with a token");

    confirm_reset(&app, &token, NEW_PASSWORD)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert!(logs_in(&app, "alice@example.com", NEW_PASSWORD).await);
    assert!(!logs_in(&app, "alice@example.com", PASSWORD).await);
    for old in [&session, &other_session] {
        let reply = app.get("/api/user", Some(old)).await;
        crate::common::assert_unauthorized(&reply, "a session from before the reset");
    }

    // Single use: the same link again is refused, in the documented error shape; and a
    // reset ends the account's other reset links.
    request_reset(&app, "alice@example.com").await;
    let later = nth_mail(&smtp, "alice@example.com", "Reset", 2).await;
    request_reset(&app, "alice@example.com").await;
    let last = nth_mail(&smtp, "alice@example.com", "Reset", 3).await;
    confirm_reset(&app, &later.token().expect("token"), NEW_PASSWORD)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    confirm_reset(&app, &last.token().expect("token"), NEW_PASSWORD)
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    let again = confirm_reset(&app, &token, "another fine passphrase 99").await;
    again.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(again.error_on("token"), Some("is invalid or has expired"));
    assert!(logs_in(&app, "alice@example.com", NEW_PASSWORD).await);
    assert!(
        logs_in(&app, "zed@example.com", PASSWORD).await,
        "the link set only its own account's password"
    );
}

async fn a_reset_link_works_for_30_minutes_and_no_longer(engine: Engine) {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let app = app_mailing_to(engine, &smtp, &[]).await;
    registered(&app, &smtp, "bob").await;
    request_reset(&app, "bob@example.com").await;
    let first = nth_mail(&smtp, "bob@example.com", "Reset", 1).await;
    app.clock.advance(Duration::from_secs(30 * 60 - 1));
    confirm_reset(&app, &first.token().expect("token"), NEW_PASSWORD)
        .await
        .assert_status(StatusCode::NO_CONTENT);

    request_reset(&app, "bob@example.com").await;
    let second = nth_mail(&smtp, "bob@example.com", "Reset", 2).await;
    app.clock.advance(Duration::from_secs(30 * 60 + 1));
    let reply = confirm_reset(&app, &second.token().expect("token"), PASSWORD).await;
    reply.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.error_on("token"), Some("is invalid or has expired"));
    assert!(logs_in(&app, "bob@example.com", NEW_PASSWORD).await);
}

/// Whoever knows an address cannot flood its inbox: three reset mails an hour reach an
/// account, the requests past them are recorded as refused (and answered like the others),
/// and the budget comes back an hour later.
async fn a_reset_flood_mails_an_account_three_times_an_hour(engine: Engine) {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let app = app_mailing_to(engine, &smtp, &[]).await;
    registered(&app, &smtp, "dave").await;
    // One at a time: each request's work is done before the next arrives.
    for n in 1..=5 {
        request_reset(&app, "dave@example.com")
            .await
            .assert_status(StatusCode::ACCEPTED);
        reset_outcomes(&app, n).await;
    }
    let outcomes = reset_outcomes(&app, 5).await;
    assert_eq!(
        outcomes,
        ["mailed", "mailed", "mailed", "rate_limited", "rate_limited"]
    );
    nth_mail(&smtp, "dave@example.com", "Reset", 3).await;

    app.clock.advance(Duration::from_secs(60 * 60 + 1));
    request_reset(&app, "dave@example.com").await;
    assert_eq!(reset_outcomes(&app, 6).await[5], "mailed");
    nth_mail(&smtp, "dave@example.com", "Reset", 4).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count_mails(&smtp, "dave@example.com", "Reset"), 4);
}

/// The budget holds against requests that arrive together (from many addresses, say): the
/// count and the new link are one step, so racing requests cannot all see room for one more.
async fn a_burst_of_reset_requests_at_once_still_mails_three(engine: Engine) {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let app = app_mailing_to(engine, &smtp, &[]).await;
    registered(&app, &smtp, "gina").await;
    let burst = (0..12).map(|_| request_reset(&app, "gina@example.com"));
    for reply in futures_util::future::join_all(burst).await {
        reply.assert_status(StatusCode::ACCEPTED);
    }
    let outcomes = reset_outcomes(&app, 12).await;
    let mailed = outcomes.iter().filter(|o| *o == "mailed").count();
    assert_eq!(mailed, 3, "{outcomes:?}");
    nth_mail(&smtp, "gina@example.com", "Reset", 3).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count_mails(&smtp, "gina@example.com", "Reset"), 3);
}

/// A disabled account is mailed no reset link (it could undo the administrator's decision),
/// and a link mailed before it was disabled no longer works.
async fn a_disabled_account_gets_no_reset_link_and_its_old_links_stop_working(engine: Engine) {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let app = app_mailing_to(engine, &smtp, &[]).await;
    registered(&app, &smtp, "rita").await;
    request_reset(&app, "rita@example.com").await;
    let earlier = nth_mail(&smtp, "rita@example.com", "Reset", 1).await;
    super::disabled_by_an_admin(&app, "rita").await;

    request_reset(&app, "rita@example.com")
        .await
        .assert_status(StatusCode::ACCEPTED);
    assert_eq!(reset_outcomes(&app, 2).await, ["mailed", "disabled"]);
    let reply = confirm_reset(&app, &earlier.token().expect("token"), NEW_PASSWORD).await;
    reply.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.error_on("token"), Some("is invalid or has expired"));
    // Mail goes out in the order it was queued: once a later one is in, none is pending.
    request_reset(&app, "root@example.com").await;
    smtp.wait_for("root@example.com", "Reset", 20).await;
    assert_eq!(count_mails(&smtp, "rita@example.com", "Reset"), 1);
}

/// `aerie user reset-link U` prints a link for the operator to hand over: it works once,
/// like a mailed one, sends nothing, and is recorded.
async fn an_operator_reset_link_works_like_a_mailed_one(engine: Engine) {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let app = app_mailing_to(engine, &smtp, &[]).await;
    registered(&app, &smtp, "una").await;
    let reset_link = |name: &'static str| {
        let app = &app;
        async move {
            let settings = [("AERIE_APP_URL", APP_URL)];
            run_aerie_with(app, &settings, &["user", "reset-link", name], "").await
        }
    };
    let output = reset_link("una").await;
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    let link = Mail::parse(&printed);
    assert_eq!(
        link.link_page().as_deref(),
        Some(format!("{APP_URL}/password-reset").as_str()),
        "{printed}"
    );
    let token = link.token().expect("a link with a token");
    confirm_reset(&app, &token, NEW_PASSWORD)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert!(logs_in(&app, "una@example.com", NEW_PASSWORD).await);
    confirm_reset(&app, &token, PASSWORD)
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reset_outcomes(&app, 1).await, ["link_printed"]);
    assert_eq!(count_mails(&smtp, "una@example.com", "Reset"), 0);
    assert!(
        !reset_link("nobody").await.status.success(),
        "a link for no account"
    );
}

async fn a_token_for_another_purpose_cannot_reset_a_password(engine: Engine) {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let app = app_mailing_to(engine, &smtp, &[]).await;
    app.register("carol").await;
    let verification = smtp
        .wait_for("carol@example.com", "Verify", 20)
        .await
        .token()
        .expect("token");
    let reply = confirm_reset(&app, &verification, NEW_PASSWORD).await;
    reply.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.error_on("token"), Some("is invalid or has expired"));
    assert!(logs_in(&app, "carol@example.com", PASSWORD).await);
    // Still good for what it was made for.
    app.post(
        "/api/auth/email/verify",
        None,
        json!({ "token": verification }),
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
}

async fn reset_requests_answer_the_same_for_unknown_addresses(engine: Engine) {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let app = app_mailing_to(engine, &smtp, &[]).await;
    registered(&app, &smtp, "dave").await;
    let known = request_reset(&app, "dave@example.com").await;
    let unknown = request_reset(&app, "nobody@example.com").await;
    known.assert_status(StatusCode::ACCEPTED);
    unknown.assert_status(StatusCode::ACCEPTED);
    assert_eq!(known.body, unknown.body);
    smtp.wait_for("dave@example.com", "Reset", 20).await;

    // And the same time: the answer leaves before the address is looked up. Medians of a
    // few requests each, interleaved; a gap as large as a database write plus a mail
    // insert (milliseconds) would show.
    let mut times = (Vec::new(), Vec::new());
    for _ in 0..7 {
        let start = Instant::now();
        request_reset(&app, "dave@example.com").await;
        times.0.push(start.elapsed());
        let start = Instant::now();
        request_reset(&app, "nobody@example.com").await;
        times.1.push(start.elapsed());
    }
    times.0.sort();
    times.1.sort();
    let (known, unknown) = (times.0[3], times.1[3]);
    let gap = known.abs_diff(unknown);
    assert!(
        gap < Duration::from_millis(15),
        "known {known:?} vs unknown {unknown:?}"
    );
    // Nothing was mailed for the unknown address, and malformed input is a 422.
    assert!(smtp.mails_to("nobody@example.com").is_empty());
    let reply = request_reset(&app, "not an address").await;
    reply.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.error_on("email").is_some(), "{}", reply.body);
    let reply = app
        .post("/api/auth/password-reset", None, json!({ "email": 42 }))
        .await;
    reply.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
}

async fn a_weak_new_password_is_refused_without_spending_the_token(engine: Engine) {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let app = app_mailing_to(engine, &smtp, &[]).await;
    registered(&app, &smtp, "erin").await;
    request_reset(&app, "erin@example.com").await;
    let token = smtp
        .wait_for("erin@example.com", "Reset", 20)
        .await
        .token()
        .expect("token");
    let reply = confirm_reset(&app, &token, "password").await;
    reply.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.error_on("newPassword").is_some(), "{}", reply.body);
    confirm_reset(&app, &token, NEW_PASSWORD)
        .await
        .assert_status(StatusCode::NO_CONTENT);
}

async fn resets_keep_mfa_and_are_audited(engine: Engine) {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let app = app_mailing_to(engine, &smtp, &[]).await;
    crate::security::mfa::enrolled(&app, "frank").await;
    smtp.wait_for("frank@example.com", "turned on", 20).await;
    request_reset(&app, "frank@example.com").await;
    request_reset(&app, "ghost@example.com").await;
    let token = smtp
        .wait_for("frank@example.com", "Reset", 20)
        .await
        .token()
        .expect("token");
    confirm_reset(&app, &token, NEW_PASSWORD)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    // The password alone does not sign in: the second factor is still asked.
    let reply = app.login("frank@example.com", NEW_PASSWORD).await;
    reply.assert_status(StatusCode::OK);
    assert!(reply.body["mfa"]["challenge"].is_string(), "{}", reply.body);
    assert!(reply.body.get("user").is_none(), "{}", reply.body);

    let requests = app.audit_events("password_reset_requested").await;
    let outcomes: Vec<&str> = requests
        .iter()
        .filter_map(|e| e["detail"]["outcome"].as_str())
        .collect();
    assert!(
        outcomes.contains(&"mailed") && outcomes.contains(&"unknown_account"),
        "{outcomes:?}"
    );
    assert_eq!(app.audit_events("password_reset_completed").await.len(), 1);
    // The password-changed notice follows the reset.
    smtp.wait_for("frank@example.com", "password was changed", 20)
        .await;
}

/// A reset is the password and the end of every session together: when the database cannot
/// end the sessions (their table locked past the statement budget), the answer is a 503 and
/// nothing changed, not a new password beside an attacker's live session and a spent link.
/// The same link then does the whole reset.
async fn a_reset_the_database_cannot_finish_changes_nothing_and_its_link_still_works(
    engine: Engine,
) {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let app = app_with_a_short_statement_budget(engine, &smtp).await;
    let attacker = registered(&app, &smtp, "vera").await;
    request_reset(&app, "vera@example.com").await;
    let link = smtp
        .wait_for("vera@example.com", "Reset", 20)
        .await
        .token()
        .expect("a link");

    // On PostgreSQL the link and the password can be written and the sessions cannot; on
    // SQLite nothing can be.
    let lock = Locker::take(&app, "sessions").await;
    let reply = confirm_reset(&app, &link, NEW_PASSWORD).await;
    lock.release().await;
    reply.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    app.get("/api/user", Some(&attacker))
        .await
        .assert_status(StatusCode::OK);
    assert!(logs_in(&app, "vera@example.com", PASSWORD).await);
    assert!(!logs_in(&app, "vera@example.com", NEW_PASSWORD).await);
    assert!(
        app.audit_events("password_reset_completed")
            .await
            .is_empty()
    );

    confirm_reset(&app, &link, NEW_PASSWORD)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let reply = app.get("/api/user", Some(&attacker)).await;
    crate::common::assert_unauthorized(&reply, "a session from before the reset");
    assert!(logs_in(&app, "vera@example.com", NEW_PASSWORD).await);
}
