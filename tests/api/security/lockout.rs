//! The lockout nobody can aim (issue 14.1): failures are counted per (account, address), per
//! address, per IPv6 /48 and per account; attackers guessing from several addresses cannot
//! hold the owner's correct login at 429, a stuffer is blocked, and every lockout is on the
//! audit trail. Clients are simulated through a trusted proxy on 127.0.0.1 and
//! `X-Forwarded-For`; the server's clock is moved instead of sleeping.

use std::time::Duration;

use aerie::clock::Clock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Engine, PASSWORD, Reply, TestApp, engine_tests};

#[track_caller]
fn assert_limited_by(reply: &Reply, policy: &str) {
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.body
    );
    let named = reply
        .headers
        .get("ratelimit-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        named.starts_with(&format!("\"{policy}\";")),
        "refused by {policy}, got {named:?}"
    );
}

/// The device token the login answered with, from its `Set-Cookie`.
fn device_token(reply: &Reply) -> String {
    reply
        .cookie("__Host-aerie-device")
        .expect("a device cookie")
}

/// Background audit appends: polls until `count` events of `kind` landed (or gives up).
async fn events_eventually(app: &TestApp, kind: &str, count: usize) -> Vec<Value> {
    let mut events = Vec::new();
    for _ in 0..100 {
        events = app.audit_events(kind).await;
        if events.len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    events
}

/// The reproduction: six addresses, one guess every 5 s each, for four minutes. The
/// owner logs in from their own address every 15 s throughout and is never refused; each
/// attacker address is slowed by its own pair budget; the account is locked for them.
async fn slow_guessers_on_six_addresses_never_lock_out_the_owner(engine: Engine) {
    let app = TestApp::spawn_with(
        engine,
        &[
            ("AERIE_TRUSTED_PROXIES", "127.0.0.1/32"),
            ("AERIE_RATE_LIMIT_LOGIN_IP", "1000/60"),
            ("AERIE_RATE_LIMIT_LOGIN_ACCOUNT", "10/900"),
            // The shipped defaults (the harness loosens every policy unless told).
            ("AERIE_RATE_LIMIT_LOGIN_PAIR", "5/900"),
            ("AERIE_RATE_LIMIT_LOGIN_PAIR_SLOW", "10/86400"),
            ("AERIE_RATE_LIMIT_LOGIN_FAIL_IP", "20/3600"),
        ],
    )
    .await;
    app.register("victim").await;
    let attackers: Vec<String> = (1..=6).map(|n| format!("203.0.113.{n}")).collect();
    let mut owner_refused = 0;
    let mut attacker_statuses = Vec::new();
    for tick in 0..48 {
        for ip in &attackers {
            let reply = app
                .login_from("victim@example.com", "a wrong guess 12345", ip)
                .await;
            attacker_statuses.push(reply.status.as_u16());
        }
        if tick % 3 == 0 {
            let owner = app
                .login_from("victim@example.com", PASSWORD, "198.51.100.7")
                .await;
            if owner.status != StatusCode::OK {
                owner_refused += 1;
            }
        }
        app.clock.advance(Duration::from_secs(5));
    }
    assert_eq!(
        owner_refused, 0,
        "the owner's correct login always succeeds"
    );
    let failures = attacker_statuses.iter().filter(|s| **s == 401).count();
    let refused = attacker_statuses.iter().filter(|s| **s == 429).count();
    assert!(
        failures <= 6 * 5 + 6 * 2,
        "each address gets its pair's burst and a refill or two: {failures}"
    );
    assert_eq!(failures + refused, attacker_statuses.len());
    assert!(
        refused > failures,
        "most guesses are refused: {attacker_statuses:?}"
    );
    let locked = events_eventually(&app, "account_locked", 1).await;
    assert!(
        locked
            .iter()
            .any(|e| e["detail"]["policy"] == "login-account"),
        "the account's lockout is recorded: {locked:?}"
    );
    assert!(
        !serde_json::to_string(&locked)
            .unwrap_or_default()
            .contains("victim@example.com"),
        "no email in the trail"
    );
}

/// Per-pair counting: with generous account and address budgets, one address that keeps
/// failing on one account meets its own wall (the pair's), and the delay grows from the quick
/// tier to the slow one.
async fn one_address_failing_on_one_account_meets_the_pair_wall(engine: Engine) {
    let app = TestApp::spawn_with(
        engine,
        &[
            ("AERIE_TRUSTED_PROXIES", "127.0.0.1/32"),
            ("AERIE_RATE_LIMIT_LOGIN_IP", "1000/60"),
            ("AERIE_RATE_LIMIT_LOGIN_ACCOUNT", "1000/60"),
            ("AERIE_RATE_LIMIT_LOGIN_FAIL_IP", "1000/60"),
            ("AERIE_RATE_LIMIT_LOGIN_PAIR", "3/60"),
            ("AERIE_RATE_LIMIT_LOGIN_PAIR_SLOW", "5/3600"),
        ],
    )
    .await;
    app.register("victim").await;
    for _ in 0..3 {
        guess(&app).await.assert_status(StatusCode::UNAUTHORIZED);
    }
    assert_limited_by(&guess(&app).await, "login-pair");
    // The same address on another account, and another address on this one, are untouched.
    app.register("bystander").await;
    app.login_from(
        "bystander@example.com",
        "a wrong guess 12345",
        "203.0.113.9",
    )
    .await
    .assert_status(StatusCode::UNAUTHORIZED);
    app.login_from("victim@example.com", PASSWORD, "198.51.100.7")
        .await
        .assert_status(StatusCode::OK);
    // The quick tier refills one guess per 20 s; the slow tier (5) then takes over: one per
    // 12 minutes.
    app.clock.advance(Duration::from_secs(20));
    guess(&app).await.assert_status(StatusCode::UNAUTHORIZED);
    app.clock.advance(Duration::from_secs(20));
    guess(&app).await.assert_status(StatusCode::UNAUTHORIZED);
    app.clock.advance(Duration::from_secs(60));
    let slowed = guess(&app).await;
    assert_limited_by(&slowed, "login-pair-slow");
    // Five guesses at 0, 0, 0, 20 and 40 s spent the slow tier's burst; its next cell (one
    // per 720 s) is due at 720 s, which is 620 s after now.
    assert_eq!(slowed.header("retry-after"), Some("620"));
    // Even the correct password waits: the pair is what guessed.
    assert_limited_by(
        &app.login_from("victim@example.com", PASSWORD, "203.0.113.9")
            .await,
        "login-pair-slow",
    );
}

/// A lockout goes on the trail from the failure that empties a budget, and only from that
/// one: a wrong password that leaves budget (an owner's typo, the first of an attack) is
/// `login_failed`, not a lockout, and the lockout's time is when the guessing crossed the line.
async fn the_lockout_is_recorded_by_the_failure_that_starts_it(engine: Engine) {
    let app = TestApp::spawn_with(
        engine,
        &[
            ("AERIE_TRUSTED_PROXIES", "127.0.0.1/32"),
            ("AERIE_RATE_LIMIT_LOGIN_IP", "1000/60"),
            ("AERIE_RATE_LIMIT_LOGIN_ACCOUNT", "1000/60"),
            ("AERIE_RATE_LIMIT_LOGIN_FAIL_IP", "1000/60"),
            ("AERIE_RATE_LIMIT_LOGIN_PAIR", "3/60"),
            ("AERIE_RATE_LIMIT_LOGIN_PAIR_SLOW", "100/3600"),
        ],
    )
    .await;
    app.register("victim").await;
    guess(&app).await.assert_status(StatusCode::UNAUTHORIZED);
    app.clock.advance(Duration::from_secs(2));
    let emptied_at = app.clock.now();
    for _ in 0..2 {
        guess(&app).await.assert_status(StatusCode::UNAUTHORIZED);
    }
    let locked = events_eventually(&app, "account_locked", 1).await;
    let policies: Vec<&Value> = locked.iter().map(|e| &e["detail"]["policy"]).collect();
    assert_eq!(
        policies,
        ["login-pair"],
        "one lockout, the pair's: the budgets the failures left untouched are no lockout"
    );
    assert!(
        app.audit_events("ip_blocked").await.is_empty(),
        "the address's budget has room: no block"
    );
    assert_eq!(
        lockout_times(&app).await,
        [emptied_at.to_string()],
        "recorded by the third failure, not the first"
    );
    // A refusal while locked adds nothing within the minute; a new lockout a minute later
    // is a new event, at its own time.
    assert_limited_by(&guess(&app).await, "login-pair");
    app.clock.advance(Duration::from_secs(61));
    let relocked_at = app.clock.now();
    for _ in 0..3 {
        guess(&app).await.assert_status(StatusCode::UNAUTHORIZED);
    }
    let locked = events_eventually(&app, "account_locked", 2).await;
    assert_eq!(
        lockout_times(&app).await,
        [emptied_at.to_string(), relocked_at.to_string()],
        "one event per lockout"
    );
    // Each is a lockout's (the pair's whole 20 s interval), none a refusal's (the wait left):
    // an event's time is when it was appended, so only its detail tells the two apart.
    let lockout = json!({"policy": "login-pair", "retryAfterSecs": 20});
    let details: Vec<&Value> = locked.iter().map(|e| &e["detail"]).collect();
    assert_eq!(
        details,
        [&lockout, &lockout],
        "none for the refusal between"
    );
}

/// When each `account_locked` event was recorded (Unix milliseconds), in trail order.
async fn lockout_times(app: &TestApp) -> Vec<String> {
    app.query_text(
        "SELECT CAST(at AS TEXT) FROM audit_log WHERE event_type = 'account_locked' ORDER BY seq",
    )
    .await
}

async fn guess(app: &TestApp) -> Reply {
    app.login_from("victim@example.com", "a wrong guess 12345", "203.0.113.9")
        .await
}

/// Credential stuffing: one address failing across many accounts is blocked, for every
/// account, and the block is recorded with its address; other addresses are unaffected.
async fn credential_stuffing_from_one_address_is_blocked(engine: Engine) {
    let app = TestApp::spawn_with(
        engine,
        &[
            ("AERIE_TRUSTED_PROXIES", "127.0.0.1/32"),
            ("AERIE_RATE_LIMIT_LOGIN_IP", "1000/60"),
            ("AERIE_RATE_LIMIT_LOGIN_FAIL_IP", "8/3600"),
        ],
    )
    .await;
    app.register("victim").await;
    for n in 0..8 {
        app.login_from(
            &format!("leaked{n}@example.com"),
            "from a breach dump 1",
            "203.0.113.50",
        )
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    }
    // Blocked now, even with a correct password for a real account.
    assert_limited_by(
        &app.login_from("victim@example.com", PASSWORD, "203.0.113.50")
            .await,
        "login-fail-ip",
    );
    app.login_from("victim@example.com", PASSWORD, "203.0.113.51")
        .await
        .assert_status(StatusCode::OK);
    let blocked = events_eventually(&app, "ip_blocked", 1).await;
    assert!(
        blocked
            .iter()
            .any(|e| e["detail"]["policy"] == "login-fail-ip"),
        "{blocked:?}"
    );
}

/// IPv6: ordinary limits are per /64, but a /48 whose /64s keep failing is blocked whole,
/// while a neighbouring /48 is not.
async fn many_failing_64s_block_their_48(engine: Engine) {
    let app = TestApp::spawn_with(
        engine,
        &[
            ("AERIE_TRUSTED_PROXIES", "127.0.0.1/32"),
            ("AERIE_RATE_LIMIT_LOGIN_IP", "1000/60"),
            ("AERIE_RATE_LIMIT_LOGIN_FAIL_IP", "3/3600"),
            ("AERIE_RATE_LIMIT_LOGIN_FAIL_PREFIX", "6/3600"),
        ],
    )
    .await;
    app.register("victim").await;
    // Two addresses of one /64 share its budget.
    for host in ["1", "2", "3"] {
        app.login_from(
            "a@example.com",
            "wrong guess 12345",
            &format!("2001:db8:1:1::{host}"),
        )
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    }
    assert_limited_by(
        &app.login_from("a@example.com", "wrong guess 12345", "2001:db8:1:1::99")
            .await,
        "login-fail-ip",
    );
    // Another /64 of the same /48 has its own, until the /48 as a whole has failed 6 times.
    for host in ["1", "2", "3"] {
        app.login_from(
            "b@example.com",
            "wrong guess 12345",
            &format!("2001:db8:1:2::{host}"),
        )
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    }
    assert_limited_by(
        &app.login_from("victim@example.com", PASSWORD, "2001:db8:1:3::1")
            .await,
        "login-fail-prefix",
    );
    app.login_from("victim@example.com", PASSWORD, "2001:db8:2:3::1")
        .await
        .assert_status(StatusCode::OK);
}

/// While attackers hold the account budget spent, the owner's correct password still works
/// from a device that logged in before, even from an address that has just failed (a typo);
/// without the device token that address waits. A forged or foreign token is no device.
async fn a_known_device_logs_in_while_the_account_is_under_attack(engine: Engine) {
    let app = TestApp::spawn_with(
        engine,
        &[
            ("AERIE_TRUSTED_PROXIES", "127.0.0.1/32"),
            ("AERIE_RATE_LIMIT_LOGIN_IP", "1000/60"),
            ("AERIE_RATE_LIMIT_LOGIN_ACCOUNT", "3/900"),
            ("AERIE_RATE_LIMIT_LOGIN_PAIR", "5/900"),
        ],
    )
    .await;
    app.register("victim").await;
    app.register("other").await;
    let home = "198.51.100.7";
    let first = app.login_from("victim@example.com", PASSWORD, home).await;
    first.assert_status(StatusCode::OK);
    let cookie_line = first
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|line| line.starts_with("__Host-aerie-device="))
        .expect("device cookie")
        .to_owned();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie_line.contains(attribute), "{cookie_line}");
    }
    let device = device_token(&first);
    let other_device = device_token(&app.login_from("other@example.com", PASSWORD, home).await);
    for n in 1..=3 {
        app.login_from(
            "victim@example.com",
            "a wrong guess 12345",
            &format!("203.0.113.{n}"),
        )
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    }
    // The owner mistypes once at home: that address is no longer clean.
    app.login_from("victim@example.com", "my typo password 1", home)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    assert_limited_by(
        &app.login_from("victim@example.com", PASSWORD, home).await,
        "login-account",
    );
    for foreign in [other_device.as_str(), "v1.AAAAAAAAAAAAAAAAAAAAAA.forged"] {
        assert_limited_by(
            &app.login_with(
                "victim@example.com",
                PASSWORD,
                &[
                    ("X-Forwarded-For", home),
                    ("Cookie", &format!("__Host-aerie-device={foreign}")),
                ],
            )
            .await,
            "login-account",
        );
    }
    let cookie = format!("__Host-aerie-device={device}");
    for headers in [
        vec![("X-Forwarded-For", home), ("Cookie", cookie.as_str())],
        vec![
            ("X-Forwarded-For", home),
            ("X-Aerie-Device", device.as_str()),
        ],
    ] {
        let known = app
            .login_with("victim@example.com", PASSWORD, &headers)
            .await;
        known.assert_status(StatusCode::OK);
        assert_eq!(device_token(&known), device, "the device keeps its id");
    }
}

engine_tests!(
    slow_guessers_on_six_addresses_never_lock_out_the_owner,
    one_address_failing_on_one_account_meets_the_pair_wall,
    the_lockout_is_recorded_by_the_failure_that_starts_it,
    credential_stuffing_from_one_address_is_blocked,
    many_failing_64s_block_their_48,
    a_known_device_logs_in_while_the_account_is_under_attack,
);
