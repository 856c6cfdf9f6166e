//! Password guessing with a stolen session (issue 13.8, 14.1): a wrong current password at
//! `PUT /api/user/password` is charged by the login guard exactly like a failed login, to the
//! session's own pair budget (spent: 429, even for the right password) and to the account's
//! (which login shares: an address that has failed meets it), each wrong guess is an audit
//! event, and a burst of them raises the failed-login alert. Guessers elsewhere cannot stop
//! the owner (see `step_up.rs`).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::audit::alerts::receiver;
use crate::common::{Engine, PASSWORD, TestApp, engine_tests, rows_of};

const NEW_PASSWORD: &str = "a different strong passphrase 77";

async fn change_password(app: &TestApp, token: &str, current: &str) -> crate::common::Reply {
    let body = json!({"currentPassword": current, "newPassword": NEW_PASSWORD});
    app.put("/api/user/password", Some(token), body).await
}

async fn current_password_guesses_spend_the_login_budget_and_alert(engine: Engine) {
    let (webhook, mut alerts) = receiver(0).await;
    let app = TestApp::spawn_with(
        engine,
        &[
            ("AERIE_RATE_LIMIT_LOGIN_PAIR", "3/900"),
            ("AERIE_RATE_LIMIT_LOGIN_ACCOUNT", "3/900"),
            ("AERIE_ALERT_WEBHOOK", webhook.as_str()),
            ("AERIE_ALERT_FAILED_LOGINS", "3"),
        ],
    )
    .await;
    let token = app.register("gina").await;
    for guess in 1..=3 {
        let reply = change_password(&app, &token, &format!("guess number {guess}")).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            reply.body
        );
        assert_eq!(reply.error_on("currentPassword"), Some("is incorrect"));
    }
    let spent = change_password(&app, &token, PASSWORD).await;
    spent.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert!(
        spent.headers["ratelimit-policy"]
            .to_str()
            .unwrap_or_default()
            .starts_with("\"login-pair\";"),
        "the session's own budget: {:?}",
        spent.headers
    );
    // Login shares the account budget: an address that has failed a login meets it (a clean
    // one, the owner's, does not: see `security/lockout.rs`).
    app.login("gina@example.com", "a wrong login guess 1")
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    let login = app.login("gina@example.com", PASSWORD).await;
    login.assert_status(StatusCode::TOO_MANY_REQUESTS);

    let failures = rows_of(&app, "password_change_failed").await;
    assert_eq!(
        failures.len(),
        3,
        "one event per wrong guess, none for the refused"
    );
    assert!(
        failures
            .iter()
            .all(|row| row.subject_id.is_some() && row.actor_id.is_some())
    );
    let mut rules = Vec::new();
    while !rules.contains(&"failed_logins_account".to_owned()) {
        let alert = tokio::time::timeout(Duration::from_secs(15), alerts.recv())
            .await
            .expect("the burst of wrong passwords alerts")
            .expect("receiver open");
        rules.push(alert["rule"].as_str().unwrap_or_default().to_owned());
    }
    // The password is unchanged: the old one still logs in once the budget refills.
    app.clock.advance(Duration::from_secs(900));
    app.login("gina@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::OK);
}

engine_tests!(current_password_guesses_spend_the_login_budget_and_alert);
