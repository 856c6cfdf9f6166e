//! The account lifecycle by email (issue 15), against a real SMTP server on loopback
//! ([`crate::common::SmtpServer`]): the tests follow the links in the mails it receives.
//!
//! - [`delivery`]: the outbox and its sender: development `.eml` files, a relay that is down
//!   for a while, no live credential in the database.
//! - [`reset`]: password reset: single use, expiry, one purpose, sessions ended, no
//!   account enumeration.
//! - [`verification`]: address verification, confirmed address changes, security notices.

mod delivery;
mod reset;
mod verification;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Engine, PASSWORD, Reply, SmtpServer, TestApp};

/// A server whose mail goes to `smtp`, with `extra` settings.
async fn app_mailing_to(engine: Engine, smtp: &SmtpServer, extra: &[(&str, &str)]) -> TestApp {
    let settings = smtp.settings();
    let mut all: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra);
    TestApp::spawn_with(engine, &all).await
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
