//! TOTP multi-factor authentication (issue 14.2, and 14.3 for MFA users' step-up): a stolen
//! password must not be enough to log in, a code seen once must not work twice, a login
//! challenge must not outlive its five minutes, its first answer or its client, and a
//! stolen session must not be able to step up with the password alone. Codes are computed
//! with `totp-rs` at the test clock's time, so no test waits for a real 30-second step.

mod enrolment;
mod login;

use std::time::Duration;

use aerie::clock::Clock;
use reqwest::StatusCode;
use serde_json::{Value, json};
use totp_rs::{Builder, Secret};

use crate::common::{PASSWORD, Reply, TestApp, read};

/// One TOTP step: the next code is a fresh one.
pub(crate) const STEP: Duration = Duration::from_secs(30);

/// An account with MFA on: its secret, its recovery codes, and the session that enrolled.
pub(crate) struct Enrolled {
    pub(crate) secret: String,
    pub(crate) recovery_codes: Vec<String>,
    pub(crate) token: String,
}

/// The 6-digit code of `secret` (base32) at the server clock's time.
pub(crate) fn code_at(app: &TestApp, secret: &str) -> String {
    let secret = Secret::try_from_base32(secret).expect("base32 secret");
    let totp = Builder::new()
        .with_secret(secret)
        .build()
        .expect("RFC 6238 parameters");
    let seconds = u64::try_from(app.clock.now() / 1000).expect("after 1970");
    totp.generate(seconds).to_string()
}

/// A well-formed code that is not `right`: a guess certain to be wrong.
pub(crate) fn wrong_code(right: &str) -> &'static str {
    if right == "000000" {
        "111111"
    } else {
        "000000"
    }
}

/// Starts enrolment for the session `token` with the account's password.
async fn begin(app: &TestApp, token: &str) -> Reply {
    app.post(
        "/api/auth/mfa/totp",
        Some(token),
        json!({"password": PASSWORD}),
    )
    .await
}

async fn confirm(app: &TestApp, token: &str, code: &str) -> Reply {
    app.post(
        "/api/auth/mfa/totp/confirm",
        Some(token),
        json!({"code": code}),
    )
    .await
}

/// Registers `name` and turns MFA on; the clock then moves one step on, so the code that
/// confirmed is not the current one.
pub(crate) async fn enrolled(app: &TestApp, name: &str) -> Enrolled {
    let token = app.register(name).await;
    let begun = begin(app, &token).await;
    begun.assert_status(StatusCode::OK);
    let secret = begun.body["secret"].as_str().expect("a secret").to_owned();
    let confirmed = confirm(app, &token, &code_at(app, &secret)).await;
    confirmed.assert_status(StatusCode::OK);
    let recovery_codes = confirmed.body["recoveryCodes"]
        .as_array()
        .expect("recovery codes")
        .iter()
        .map(|code| code.as_str().expect("a code").to_owned())
        .collect();
    app.clock.advance(STEP);
    Enrolled {
        secret,
        recovery_codes,
        token,
    }
}

/// The password step of `name`'s login: the challenge, asserting that no token came.
pub(crate) async fn challenge_for(app: &TestApp, name: &str) -> String {
    let reply = app.login(&format!("{name}@example.com"), PASSWORD).await;
    reply.assert_status(StatusCode::OK);
    assert!(
        reply.body.get("user").is_none(),
        "no session yet: {}",
        reply.body
    );
    assert_eq!(reply.body["mfa"]["expiresIn"], 300);
    reply.body["mfa"]["challenge"]
        .as_str()
        .expect("a challenge")
        .to_owned()
}

/// `POST /api/users/login/mfa` from the test's own client.
pub(crate) async fn answer(app: &TestApp, challenge: &str, code: &str) -> Reply {
    app.post(
        "/api/users/login/mfa",
        None,
        json!({"challenge": challenge, "code": code}),
    )
    .await
}

/// `POST` with a given `User-Agent`: another client, as far as the server can tell.
async fn post_as(app: &TestApp, user_agent: &str, path: &str, body: Value) -> Reply {
    let request = app
        .client
        .post(app.url(path))
        .header("User-Agent", user_agent)
        .json(&body);
    read(request.send().await.expect("request sent")).await
}

/// A step-up with a JSON body (`{"password"}` or `{"code"}`).
async fn step_up(app: &TestApp, token: &str, body: Value) -> Reply {
    app.post("/api/auth/step-up", Some(token), body).await
}

/// The access token of a User reply.
pub(crate) fn token_in(reply: &Reply) -> String {
    reply.body["user"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("a token: {}", reply.body))
        .to_owned()
}
