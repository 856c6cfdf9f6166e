//! The account lifecycle by email (issue 15), against a real SMTP server on loopback
//! ([`crate::common::SmtpServer`]): the tests follow the links in the mails it receives.
//!
//! - [`delivery`]: the outbox and its sender: development `.eml` files, a relay that is down
//!   for a while, no live credential in the database.
//! - [`reset`]: password reset: single use, expiry, one purpose, sessions ended, no
//!   account enumeration.
//! - [`verification`]: address verification and confirmed address changes.
//! - [`notices`]: the security notices account changes send, and the ones they must not.

mod delivery;
mod notices;
mod reset;
mod verification;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Engine, Mail, PASSWORD, Reply, SmtpServer, TestApp};

/// A server whose mail goes to `smtp`, with `extra` settings.
async fn app_mailing_to(engine: Engine, smtp: &SmtpServer, extra: &[(&str, &str)]) -> TestApp {
    let settings = smtp.settings();
    let mut all: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra);
    TestApp::spawn_with(engine, &all).await
}

/// [`app_mailing_to`] with a one-second statement budget: a write that waits on a table a
/// test has locked ([`crate::common::Locker`]) gives up soon, answered 503.
async fn app_with_a_short_statement_budget(engine: Engine, smtp: &SmtpServer) -> TestApp {
    app_mailing_to(
        engine,
        smtp,
        &[("AERIE_DATABASE_STATEMENT_BUDGET_MS", "1000")],
    )
    .await
}

async fn request_reset(app: &TestApp, email: &str) -> Reply {
    app.post("/api/auth/password-reset", None, json!({ "email": email }))
        .await
}

async fn confirm_reset(app: &TestApp, token: &str, password: &str) -> Reply {
    app.post(
        "/api/auth/password-reset/confirm",
        None,
        json!({ "token": token, "newPassword": password }),
    )
    .await
}

/// A strong password other than [`PASSWORD`].
const NEW_PASSWORD: &str = "purple elephants juggle quietly 77";

async fn logs_in(app: &TestApp, email: &str, password: &str) -> bool {
    let reply = app.login(email, password).await;
    match reply.status {
        StatusCode::OK => true,
        StatusCode::UNAUTHORIZED => false,
        other => panic!("login answered {other}: {}", reply.body),
    }
}

/// Registers `name` and answers its access token once the verification mail arrived.
async fn registered(app: &TestApp, smtp: &SmtpServer, name: &str) -> String {
    let token = app.register(name).await;
    smtp.wait_for(&format!("{name}@example.com"), "Verify", 20)
        .await;
    let _ = PASSWORD;
    token
}

/// Asks, as the holder of `token`, to move the account to `new_email`, and answers the token
/// of the confirmation link mailed there.
async fn email_change_link(
    app: &TestApp,
    smtp: &SmtpServer,
    token: &str,
    new_email: &str,
) -> String {
    app.put(
        "/api/user",
        Some(token),
        json!({"user": {"email": new_email}}),
    )
    .await
    .assert_status(StatusCode::OK);
    smtp.wait_for(new_email, "Confirm", 20)
        .await
        .token()
        .expect("a link")
}

/// Disables `name` as a new administrator, `root`, and answers root's access token.
async fn disabled_by_an_admin(app: &TestApp, name: &str) -> String {
    app.register("root").await;
    app.set_role("root", "admin").await;
    let admin = crate::common::token_of(&app.login_user("root").await);
    app.post(
        &format!("/api/admin/users/{name}/disable"),
        Some(&admin),
        json!({}),
    )
    .await
    .assert_status(StatusCode::OK);
    admin
}

/// Waits (up to 20 s) until `n` mails to `to` whose subject contains `subject` have arrived,
/// and answers the `n`th (mails arrive in the order they were queued).
async fn nth_mail(smtp: &SmtpServer, to: &str, subject: &str, n: usize) -> Mail {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut found: Vec<Mail> = smtp
            .mails_to(to)
            .into_iter()
            .filter(|m| m.subject.contains(subject))
            .collect();
        if found.len() >= n {
            return found.swap_remove(n - 1);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {n} mails to {to} about {subject:?} within 20 s",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many mails to `to` have a subject containing `subject`.
fn count_mails(smtp: &SmtpServer, to: &str, subject: &str) -> usize {
    smtp.mails_to(to)
        .iter()
        .filter(|m| m.subject.contains(subject))
        .count()
}

/// The outcomes of the first `n` reset requests, once all `n` are recorded (a request is
/// answered before its work is done).
async fn reset_outcomes(app: &TestApp, n: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let events = app.audit_events("password_reset_requested").await;
        if events.len() >= n {
            return events
                .iter()
                .take(n)
                .map(|e| {
                    e["detail"]["outcome"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {n} reset requests recorded",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
