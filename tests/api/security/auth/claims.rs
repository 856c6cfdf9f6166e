//! Claims (attacks.md §1 J17–J21): expiry, not-before, issuer, audience and subject are
//! checked, each on its own, and no token may claim a longer life than the configured one.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use super::{assert_unauthorized, me, server_key, server_now, sign, victim};
use crate::common::{Engine, TestApp, engine_tests};

async fn expired_token_is_refused(app: TestApp) {
    let bob = victim(&app, "bob").await;
    // 15 minutes of lifetime plus 30 seconds of leeway: still fine just before.
    app.clock.advance(Duration::from_secs(15 * 60 + 29));
    assert_eq!(me(&app, &bob.token).await.status, StatusCode::OK);
    app.clock.advance(Duration::from_secs(2));
    assert_unauthorized(&me(&app, &bob.token).await, "expired");
    // Re-signing with a stale `exp` moved forward needs the key, which is the point.
    app.clock.advance(Duration::from_secs(86_400));
    assert_unauthorized(&me(&app, &bob.token).await, "a day later");
}

/// A token not valid before, or issued at, a moment more than the 30 s leeway ahead of the
/// server's clock is refused; one exactly at the edge of the leeway is accepted, so the
/// leeway is what it says. Each token is otherwise valid (its lifetime is exactly the
/// configured one), so only the one claim can refuse it.
async fn token_from_the_future_is_refused(app: TestApp) {
    let bob = victim(&app, "bob").await;
    let key = server_key(&app);
    let now = server_now(&app);
    for (ahead, accepted) in [(30, true), (31, false), (120, false)] {
        let mut not_before = bob.claims.clone();
        not_before["iat"] = json!(now);
        not_before["exp"] = json!(now + 900);
        not_before["nbf"] = json!(now + ahead);
        let mut issued = bob.claims.clone();
        issued["iat"] = json!(now + ahead);
        issued["exp"] = json!(now + ahead + 900);
        for (claim, claims) in [("nbf", not_before), ("iat", issued)] {
            let reply = me(&app, &sign(&key, &bob.header, &claims)).await;
            let case = format!("{claim} {ahead} s ahead");
            if accepted {
                assert_eq!(reply.status, StatusCode::OK, "{case}: {}", reply.body);
            } else {
                assert_unauthorized(&reply, &case);
            }
        }
    }
}

async fn missing_required_claims_are_refused(app: TestApp) {
    let bob = victim(&app, "bob").await;
    let key = server_key(&app);
    for claim in ["exp", "iat", "iss", "aud", "sub", "sid", "role"] {
        let mut claims = bob.claims.clone();
        claims.as_object_mut().expect("object").remove(claim);
        assert_unauthorized(
            &me(&app, &sign(&key, &bob.header, &claims)).await,
            &format!("no {claim}"),
        );
    }
    let mut forever = bob.claims.clone();
    forever["exp"] = json!(null);
    assert_unauthorized(
        &me(&app, &sign(&key, &bob.header, &forever)).await,
        "exp null",
    );
}

async fn wrong_issuer_or_audience_is_refused(app: TestApp) {
    let bob = victim(&app, "bob").await;
    let key = server_key(&app);
    let iss = bob.claims["iss"].as_str().expect("iss").to_owned();
    let aud = bob.claims["aud"].as_str().expect("aud").to_owned();
    for (claim, value) in [
        ("iss", json!("someone-else")),
        ("iss", json!(iss.to_uppercase())),
        ("iss", json!(format!("{iss} "))),
        ("iss", json!([iss.clone(), "other"])),
        ("aud", json!("another-api")),
        ("aud", json!(format!("{aud}x"))),
        ("aud", json!(["another-api"])),
        ("aud", json!([])),
    ] {
        let mut claims = bob.claims.clone();
        claims[claim] = value.clone();
        assert_unauthorized(
            &me(&app, &sign(&key, &bob.header, &claims)).await,
            &format!("{claim} = {value}"),
        );
    }
}

async fn confused_subject_claims_are_refused(app: TestApp) {
    let alice = victim(&app, "alice").await;
    let bob = victim(&app, "bob").await;
    let key = server_key(&app);
    let alice_id = alice.claims["sub"].as_str().expect("sub").to_owned();
    let bob_id = bob.claims["sub"].as_str().expect("sub").to_owned();
    for sub in [
        json!([bob_id.clone(), alice_id.clone()]),
        json!(null),
        json!(bob_id.parse::<i64>().expect("numeric id")),
        json!({"id": bob_id}),
        json!("bob"),
        json!(""),
        json!(format!("{bob_id} ")),
        json!(format!("{bob_id}.0")),
        json!("99999999999999999999"),
        json!("987654"),
    ] {
        let mut claims = bob.claims.clone();
        claims["sub"] = sub.clone();
        let reply = me(&app, &sign(&key, &bob.header, &claims)).await;
        assert_unauthorized(&reply, &format!("sub = {sub}"));
    }
    for role in [
        json!("superuser"),
        json!(["admin"]),
        json!(null),
        json!("ADMIN"),
    ] {
        let mut claims = bob.claims.clone();
        claims["role"] = role.clone();
        assert_unauthorized(
            &me(&app, &sign(&key, &bob.header, &claims)).await,
            &format!("role = {role}"),
        );
    }
}

/// Lowering `AERIE_ACCESS_TOKEN_TTL_SECS` and restarting must not let tokens issued for the
/// old, longer lifetime live on: revocations and key pruning only remember the new one.
async fn token_longer_than_the_lowered_lifetime_is_refused_after_restart(engine: Engine) {
    let long_lived = TestApp::spawn_with(engine, &[("AERIE_ACCESS_TOKEN_TTL_SECS", "3600")]).await;
    let bob = victim(&long_lived, "bob").await;
    assert_eq!(me(&long_lived, &bob.token).await.status, StatusCode::OK);
    let restarted = long_lived
        .spawn_sibling_with(&[("AERIE_ACCESS_TOKEN_TTL_SECS", "900")])
        .await;
    assert_unauthorized(&me(&restarted, &bob.token).await, "exp − iat above 900 s");
    let fresh = victim(&restarted, "alice").await;
    assert_eq!(me(&restarted, &fresh.token).await.status, StatusCode::OK);
}

/// Even signed with the real key, a token whose `exp − iat` exceeds the lifetime is refused.
async fn token_claiming_a_longer_life_is_refused(app: TestApp) {
    let bob = victim(&app, "bob").await;
    let mut claims = bob.claims.clone();
    let iat = claims["iat"].as_i64().expect("iat");
    claims["exp"] = json!(iat + 15 * 60 + 1);
    let forged = sign(&server_key(&app), &bob.header, &claims);
    assert_unauthorized(&me(&app, &forged).await, "one second too long");
}

engine_tests!(
    token_longer_than_the_lowered_lifetime_is_refused_after_restart,
    token_claiming_a_longer_life_is_refused,
    expired_token_is_refused,
    token_from_the_future_is_refused,
    missing_required_claims_are_refused,
    wrong_issuer_or_audience_is_refused,
    confused_subject_claims_are_refused,
);
