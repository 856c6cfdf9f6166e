//! The login's second step and step-up with a code: replay, expiry, single use, client
//! binding, guessing, recovery codes.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{
    STEP, answer, challenge_for, code_at, enrolled, post_as, step_up, token_in, wrong_code,
};
use crate::common::{
    Engine, PASSWORD, Reply, TestApp, assert_unauthorized, engine_tests, read, rows_of, token_of,
};

/// Past the step-up window (600 s by default).
const STALE: Duration = Duration::from_secs(601);

async fn a_password_alone_no_longer_logs_in(app: TestApp) {
    let bob = enrolled(&app, "bob").await;
    let challenge = challenge_for(&app, "bob").await;
    let reply = answer(&app, &challenge, &code_at(&app, &bob.secret)).await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["user"]["username"], "bob");
    assert!(reply.body["user"]["refreshToken"].is_string());
    let token = token_in(&reply);
    app.get("/api/user", Some(&token))
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(rows_of(&app, "login_succeeded").await.len(), 1);
}

/// RFC 6238 §5.2: a code seen once (over a shoulder, through a phishing proxy) must not log
/// in again, nor step up.
async fn a_code_is_accepted_only_once(app: TestApp) {
    let bob = enrolled(&app, "bob").await;
    let code = code_at(&app, &bob.secret);
    let first = challenge_for(&app, "bob").await;
    answer(&app, &first, &code)
        .await
        .assert_status(StatusCode::OK);
    let second = challenge_for(&app, "bob").await;
    let replayed = answer(&app, &second, &code).await;
    replayed.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(replayed.error_on("code"), Some("is incorrect"));
    let step_replay = step_up(&app, &bob.token, json!({"code": code})).await;
    step_replay.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(step_replay.error_on("code"), Some("is incorrect"));
    // The challenge survived the wrong code; the next step's code answers it.
    app.clock.advance(STEP);
    answer(&app, &second, &code_at(&app, &bob.secret))
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(rows_of(&app, "mfa_failed").await.len(), 2);
}

async fn a_challenge_answers_once(app: TestApp) {
    let bob = enrolled(&app, "bob").await;
    let challenge = challenge_for(&app, "bob").await;
    answer(&app, &challenge, &code_at(&app, &bob.secret))
        .await
        .assert_status(StatusCode::OK);
    app.clock.advance(STEP);
    let again = answer(&app, &challenge, &code_at(&app, &bob.secret)).await;
    assert_unauthorized(&again, "a used challenge");
}

async fn a_challenge_expires_after_five_minutes(app: TestApp) {
    let bob = enrolled(&app, "bob").await;
    let in_time = challenge_for(&app, "bob").await;
    let late = challenge_for(&app, "bob").await;
    app.clock.advance(Duration::from_secs(299));
    answer(&app, &in_time, &code_at(&app, &bob.secret))
        .await
        .assert_status(StatusCode::OK);
    app.clock.advance(Duration::from_secs(2) + STEP);
    let expired = answer(&app, &late, &code_at(&app, &bob.secret)).await;
    assert_unauthorized(&expired, "a challenge 331 s old");
}

/// An account disabled between the password and the code (an administrator acting on an
/// alarm) opens no session with the challenge it was already given.
async fn a_challenge_of_an_account_disabled_since_opens_nothing(app: TestApp) {
    let bob = enrolled(&app, "bob").await;
    app.register("admin").await;
    app.set_role("admin", "admin").await;
    let admin = token_of(&app.login_user("admin").await);
    let logins_before = rows_of(&app, "login_succeeded").await.len();
    let challenge = challenge_for(&app, "bob").await;
    app.post("/api/admin/users/bob/disable", Some(&admin), json!({}))
        .await
        .assert_status(StatusCode::OK);
    let reply = answer(&app, &challenge, &code_at(&app, &bob.secret)).await;
    assert_unauthorized(&reply, "a disabled account's challenge");
    app.assert_audited("mfa_failed", "reason", "disabled").await;
    assert_eq!(rows_of(&app, "login_succeeded").await.len(), logins_before);
}

/// A challenge lifted from the page (a log, an extension, a proxy) is refused from another
/// client: it is bound to the address and user agent that gave the password.
async fn a_challenge_is_bound_to_its_client(app: TestApp) {
    let bob = enrolled(&app, "bob").await;
    let login = json!({"user": {"email": "bob@example.com", "password": PASSWORD}});
    let reply = post_as(&app, "bob's browser", "/api/users/login", login).await;
    let challenge = reply.body["mfa"]["challenge"]
        .as_str()
        .expect("a challenge")
        .to_owned();
    let body = json!({"challenge": challenge, "code": code_at(&app, &bob.secret)});
    let stolen = post_as(&app, "mallory's script", "/api/users/login/mfa", body).await;
    assert_unauthorized(&stolen, "another client");
    let reply = post_as(
        &app,
        "bob's browser",
        "/api/users/login/mfa",
        json!({"challenge": challenge, "code": code_at(&app, &bob.secret)}),
    )
    .await;
    assert_unauthorized(&reply, "a challenge presented elsewhere is spent");
}

/// Five wrong codes spend a challenge: guessing needs the password again each time.
async fn wrong_codes_spend_the_challenge(app: TestApp) {
    let bob = enrolled(&app, "bob").await;
    let challenge = challenge_for(&app, "bob").await;
    let right = code_at(&app, &bob.secret);
    let wrong = wrong_code(&right);
    for _ in 0..5 {
        answer(&app, &challenge, wrong)
            .await
            .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_unauthorized(&answer(&app, &challenge, &right).await, "spent");
    assert_eq!(rows_of(&app, "mfa_failed").await.len(), 6);
}

/// `AERIE_RATE_LIMIT_MFA` meters every MFA route per address (and each code per account).
async fn mfa_routes_are_rate_limited(engine: crate::common::Engine) {
    let app = TestApp::spawn_with(engine, &[("AERIE_RATE_LIMIT_MFA", "4/300")]).await;
    // Enrolment spends two of the address's four (begin, confirm).
    let bob = enrolled(&app, "bob").await;
    let challenge = challenge_for(&app, "bob").await;
    for _ in 0..2 {
        answer(&app, &challenge, "000001")
            .await
            .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    }
    let limited = answer(&app, &challenge, &code_at(&app, &bob.secret)).await;
    limited.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers.contains_key("retry-after"));
}

async fn a_recovery_code_logs_in_once(app: TestApp) {
    let bob = enrolled(&app, "bob").await;
    assert_eq!(bob.recovery_codes.len(), 10);
    let code = bob.recovery_codes.first().expect("a code").clone();
    logs_bob_in_once_then_is_spent(&app, &code.to_lowercase(), &code).await;
}

/// Bob's login with a recovery code typed as `first` (the audit trail counting 9 left), then
/// the same code, typed as `again`, refused as spent.
async fn logs_bob_in_once_then_is_spent(app: &TestApp, first: &str, again: &str) {
    let challenge = challenge_for(app, "bob").await;
    answer(app, &challenge, first)
        .await
        .assert_status(StatusCode::OK);
    let events = app.audit_events("mfa_recovery_code_used").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["detail"]["left"], 9);
    let challenge = challenge_for(app, "bob").await;
    let reply = answer(app, &challenge, again).await;
    reply.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.error_on("code"), Some("is incorrect"));
}

/// Recovery codes issued before the keyring were stored as their plain SHA-256 digest; a
/// code printed then (and kept in a drawer) must still log in after an upgrade, once, typed
/// with spaces or dashes, in any case.
async fn a_recovery_code_printed_before_the_keyring_logs_in_once(app: TestApp) {
    enrolled(&app, "bob").await;
    let printed = "abcd efgh ijkl mnop";
    let legacy_digest = URL_SAFE_NO_PAD.encode(Sha256::digest(b"ABCDEFGHIJKLMNOP"));
    app.execute_sql(&format!(
        "UPDATE mfa_recovery_codes SET code_hash = '{legacy_digest}'
         WHERE code_hash = (SELECT MIN(code_hash) FROM mfa_recovery_codes)"
    ))
    .await;
    logs_bob_in_once_then_is_spent(&app, printed, "ABCD-EFGH-IJKL-MNOP").await;
}

/// A step-up with a code from the address `ip`, through the loopback proxy the app trusts.
async fn step_up_from(app: &TestApp, token: &str, ip: &str, code: &str) -> Reply {
    let request = app
        .client
        .post(app.url("/api/auth/step-up"))
        .header("Authorization", format!("Token {token}"))
        .header("X-Forwarded-For", ip)
        .json(&json!({"code": code}));
    read(request.send().await.expect("request sent")).await
}

/// Code guesses spread over many addresses (a botnet with a stolen session) each meet a
/// fresh address limit, but every one is charged to the account's own MFA budget too, so
/// the spread gains nothing.
async fn code_guesses_from_many_addresses_spend_the_account_budget(engine: Engine) {
    let app = TestApp::spawn_with(
        engine,
        &[
            ("AERIE_TRUSTED_PROXIES", "127.0.0.1/32"),
            ("AERIE_RATE_LIMIT_MFA", "4/300"),
        ],
    )
    .await;
    // The enrolment's confirmation spent one of the account's four.
    let bob = enrolled(&app, "bob").await;
    let right = code_at(&app, &bob.secret);
    let wrong = wrong_code(&right);
    for n in 1..=3 {
        let ip = format!("203.0.113.{n}");
        step_up_from(&app, &bob.token, &ip, wrong)
            .await
            .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    }
    let limited = step_up_from(&app, &bob.token, "203.0.113.4", &right).await;
    limited.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers.contains_key("retry-after"));
    assert_eq!(
        rows_of(&app, "mfa_failed").await.len(),
        3,
        "the fourth was never checked"
    );
}

/// Issue 14.3: with MFA on, the password is the factor a thief is likeliest to hold, so
/// step-up needs a code.
async fn step_up_with_mfa_needs_a_code(app: TestApp) {
    let bob = enrolled(&app, "bob").await;
    app.clock.advance(STALE);
    let change = json!({"user": {"email": "bob2@example.com"}});
    let password = step_up(&app, &bob.token, json!({"password": PASSWORD})).await;
    password.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        password.error_on("code"),
        Some("is required: this account has MFA on")
    );
    app.put("/api/user", Some(&bob.token), change.clone())
        .await
        .assert_status(StatusCode::FORBIDDEN);
    let stepped = step_up(
        &app,
        &bob.token,
        json!({"code": code_at(&app, &bob.secret)}),
    )
    .await;
    stepped.assert_status(StatusCode::OK);
    app.put("/api/user", Some(&token_in(&stepped)), change)
        .await
        .assert_status(StatusCode::OK);

    let carol = app.register("carol").await;
    let code = step_up(&app, &carol, json!({"code": "123456"})).await;
    code.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(code.error_on("mfa"), Some("is not on for this account"));
}

engine_tests!(
    a_password_alone_no_longer_logs_in,
    a_code_is_accepted_only_once,
    a_challenge_answers_once,
    a_challenge_expires_after_five_minutes,
    a_challenge_of_an_account_disabled_since_opens_nothing,
    a_challenge_is_bound_to_its_client,
    wrong_codes_spend_the_challenge,
    mfa_routes_are_rate_limited,
    a_recovery_code_logs_in_once,
    a_recovery_code_printed_before_the_keyring_logs_in_once,
    code_guesses_from_many_addresses_spend_the_account_budget,
    step_up_with_mfa_needs_a_code,
);
