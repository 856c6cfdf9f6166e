//! New-device and anomaly events (issue 14.5): a login from a device and network the account
//! has not used before is recorded and alerted; a refresh from another network is recorded;
//! the session list shows where and with what each session was last used. Clients are
//! simulated through a trusted proxy on 127.0.0.1 and `X-Forwarded-For`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::audit::alerts::receiver;
use crate::common::{
    self, Engine, PASSWORD, Reply, TestApp, engine_tests, refresh_token_of, token_of,
};
use crate::security::mfa::{STEP, code_at, enrolled};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const FIREFOX_NEXT: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0";

async fn send(app: &TestApp, path: &str, body: Value, ip: &str, agent: &str) -> Reply {
    send_from_device(app, path, body, ip, agent, None).await
}

/// [`send`], presenting `device` as the device token (`X-Aerie-Device`) when given.
async fn send_from_device(
    app: &TestApp,
    path: &str,
    body: Value,
    ip: &str,
    agent: &str,
    device: Option<&str>,
) -> Reply {
    let mut request = app
        .client
        .post(app.url(path))
        .header("X-Forwarded-For", ip)
        .header("User-Agent", agent)
        .json(&body);
    if let Some(device) = device {
        request = request.header("X-Aerie-Device", device);
    }
    common::read(request.send().await.expect("request sent")).await
}

async fn login(app: &TestApp, ip: &str, agent: &str) -> Reply {
    login_from_device(app, ip, agent, None).await
}

/// neo's password login (its only step, or the first of an MFA login), asserted to succeed.
async fn login_from_device(app: &TestApp, ip: &str, agent: &str, device: Option<&str>) -> Reply {
    let body = json!({"user": {"email": "neo@example.com", "password": PASSWORD}});
    let reply = send_from_device(app, "/api/users/login", body, ip, agent, device).await;
    reply.assert_status(StatusCode::OK);
    reply
}

const BEHIND_PROXY: (&str, &str) = ("AERIE_TRUSTED_PROXIES", "127.0.0.1/32");

async fn a_login_from_a_new_device_and_network_is_recorded_and_alerted(engine: Engine) {
    let (webhook, mut alerts) = receiver(0).await;
    let app = TestApp::spawn_with(engine, &[BEHIND_PROXY, ("AERIE_ALERT_WEBHOOK", &webhook)]).await;
    let register =
        json!({"user": {"username": "neo", "email": "neo@example.com", "password": PASSWORD}});
    send(&app, "/api/users", register, "198.51.100.7", FIREFOX)
        .await
        .assert_status(StatusCode::CREATED);
    // The registering device, a newer version of it, another address of its /24: known.
    login(&app, "198.51.100.7", FIREFOX).await;
    login(&app, "198.51.100.99", FIREFOX_NEXT).await;
    assert!(app.audit_events("login_new_device").await.is_empty());

    login(&app, "203.0.113.9", "curl/8.5.0").await;
    let events = app.audit_events("login_new_device").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0]["detail"],
        json!({"device": "curl", "network": "203.0.113.0/24"})
    );
    assert!(events[0]["subject"].is_i64());
    // Remembered from now on.
    login(&app, "203.0.113.10", "curl/8.6.0").await;
    assert_eq!(app.audit_events("login_new_device").await.len(), 1);

    let alert = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let alert = alerts.recv().await.expect("receiver open");
            if alert["rule"] == "login_new_device" {
                return alert;
            }
        }
    })
    .await
    .expect("the new device raises an alert");
    assert_eq!(
        alert["subject"], events[0]["subject"],
        "names the account: {alert}"
    );
}

/// The device token a login hands out proves the device: the same client logging in again
/// from a network and with a user agent the account has never seen is not a new device; a
/// client without the token, from there, is.
async fn a_device_that_logged_in_before_is_known_on_any_network(engine: Engine) {
    let app = TestApp::spawn_with(engine, &[BEHIND_PROXY]).await;
    let register =
        json!({"user": {"username": "neo", "email": "neo@example.com", "password": PASSWORD}});
    send(&app, "/api/users", register, "198.51.100.7", FIREFOX)
        .await
        .assert_status(StatusCode::CREATED);
    let first = login(&app, "198.51.100.7", FIREFOX).await;
    let device = first
        .cookie("__Host-aerie-device")
        .expect("the login sets the device cookie");
    login_from_device(&app, "2001:db8:9::1", "okhttp/4.12", Some(&device)).await;
    assert!(
        app.audit_events("login_new_device").await.is_empty(),
        "a known device on a new network"
    );
    login(&app, "2001:db8:10::1", "okhttp/4.12").await;
    assert_eq!(app.audit_events("login_new_device").await.len(), 1);
}

/// Both steps of neo's MFA login from `ip` with `agent`, presenting `device` to each; the
/// password step's reply, which carries the device cookie.
async fn mfa_login(
    app: &TestApp,
    secret: &str,
    ip: &str,
    agent: &str,
    device: Option<&str>,
) -> Reply {
    let first = login_from_device(app, ip, agent, device).await;
    let challenge = first.body["mfa"]["challenge"]
        .as_str()
        .expect("a challenge");
    app.clock.advance(STEP);
    let answer = json!({"challenge": challenge, "code": code_at(app, secret)});
    send_from_device(app, "/api/users/login/mfa", answer, ip, agent, device)
        .await
        .assert_status(StatusCode::OK);
    first
}

/// With MFA on, the device is judged again at the code step, against the challenge's
/// account: the device token of the account's own earlier login makes a new network no new
/// device, and another account's token (an attacker's own, from logging in to theirs) hides
/// nothing.
async fn an_mfa_login_knows_a_device_by_its_own_accounts_token_only(engine: Engine) {
    let app = TestApp::spawn_with(engine, &[BEHIND_PROXY]).await;
    let neo = enrolled(&app, "neo").await;
    app.register("mallory").await;
    let mallory = json!({"user": {"email": "mallory@example.com", "password": PASSWORD}});
    let mallorys = send(
        &app,
        "/api/users/login",
        mallory,
        "203.0.113.66",
        "curl/8.5.0",
    )
    .await;
    mallorys.assert_status(StatusCode::OK);
    let foreign = mallorys
        .cookie("__Host-aerie-device")
        .expect("mallory's login sets her device cookie");
    let new_devices = async || app.audit_events("login_new_device").await.len();
    let before = new_devices().await;

    let first = mfa_login(&app, &neo.secret, "198.51.100.7", FIREFOX, None).await;
    assert_eq!(new_devices().await, before + 1, "a new device and network");
    let device = first
        .cookie("__Host-aerie-device")
        .expect("the password step sets the device cookie");
    mfa_login(
        &app,
        &neo.secret,
        "2001:db8:9::1",
        "okhttp/4.12",
        Some(&device),
    )
    .await;
    assert_eq!(
        new_devices().await,
        before + 1,
        "its own device on a new network"
    );
    mfa_login(
        &app,
        &neo.secret,
        "2001:db8:10::1",
        "curl/8.6.0",
        Some(&foreign),
    )
    .await;
    assert_eq!(
        new_devices().await,
        before + 2,
        "another account's device token"
    );
}

async fn a_refresh_from_another_network_is_recorded_and_shown(engine: Engine) {
    let app = TestApp::spawn_with(engine, &[BEHIND_PROXY]).await;
    app.register("neo").await;
    let user = login(&app, "198.51.100.7", FIREFOX).await.body["user"].clone();
    let mut refresh_token = refresh_token_of(&user);
    let mut token = token_of(&user);
    for (ip, agent) in [
        ("198.51.100.8", FIREFOX),
        ("203.0.113.5", FIREFOX),
        ("2001:db8:7::1", "curl/8.5.0"),
    ] {
        let reply = send(
            &app,
            "/api/auth/refresh",
            json!({"refreshToken": refresh_token}),
            ip,
            agent,
        )
        .await;
        reply.assert_status(StatusCode::OK);
        refresh_token = refresh_token_of(&reply.body["user"]);
        token = token_of(&reply.body["user"]);
    }
    let moved = app.audit_events("session_ip_changed").await;
    let details: Vec<&Value> = moved.iter().map(|e| &e["detail"]).collect();
    assert_eq!(
        details,
        [
            &json!({"fromNetwork": "198.51.100.0/24", "toNetwork": "203.0.113.0/24"}),
            &json!({"fromNetwork": "203.0.113.0/24", "toNetwork": "2001:db8:7::/48"}),
        ],
        "a move within a /24 is not recorded; a change of network or family is"
    );
    let sessions = app.get("/api/auth/sessions", Some(&token)).await;
    sessions.assert_status(StatusCode::OK);
    let current = sessions.body["sessions"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["current"] == true))
        .cloned()
        .expect("the current session is listed");
    assert_eq!(current["ip"], "198.51.100.7", "where it opened");
    assert_eq!(current["lastIp"], "2001:db8:7::1", "where it was last used");
    assert_eq!(current["lastDevice"], "curl");
}

/// A session with no address on record (its client's address unknown when it opened and
/// ever since) has nothing to move from: its first refresh records no move; once an address
/// is on record, a move away from it is.
async fn a_session_with_no_address_on_record_records_no_move(engine: Engine) {
    let app = TestApp::spawn_with(engine, &[BEHIND_PROXY]).await;
    app.register("neo").await;
    let user = login(&app, "198.51.100.7", FIREFOX).await.body["user"].clone();
    app.execute_sql("UPDATE sessions SET client_ip = NULL, last_ip = NULL")
        .await;
    let mut refresh_token = refresh_token_of(&user);
    for ip in ["203.0.113.5", "2001:db8:7::1"] {
        let body = json!({"refreshToken": refresh_token});
        let reply = send(&app, "/api/auth/refresh", body, ip, FIREFOX).await;
        reply.assert_status(StatusCode::OK);
        refresh_token = refresh_token_of(&reply.body["user"]);
    }
    let moved = app.audit_events("session_ip_changed").await;
    let details: Vec<&Value> = moved.iter().map(|e| &e["detail"]).collect();
    assert_eq!(
        details,
        [&json!({"fromNetwork": "203.0.113.0/24", "toNetwork": "2001:db8:7::/48"})]
    );
}

engine_tests!(
    a_login_from_a_new_device_and_network_is_recorded_and_alerted,
    a_device_that_logged_in_before_is_known_on_any_network,
    a_refresh_from_another_network_is_recorded_and_shown,
    a_session_with_no_address_on_record_records_no_move,
    an_mfa_login_knows_a_device_by_its_own_accounts_token_only,
);
