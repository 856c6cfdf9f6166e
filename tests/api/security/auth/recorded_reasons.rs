//! The client sees one 401 for every refused token, but the audit trail must tell them apart
//! (ASVS 16.3.2, attacks.md §1): each `token_rejected` event names the check the token
//! failed, and says whether it was made up (`forged`: another algorithm, a key source in the
//! header, a key that is not ours, a bad signature, claims for another server) or merely old
//! or odd, and which role the unverified token claimed. The `privilege_escalation_attempts`
//! alert counts only the forged ones, so a token recorded under the wrong reason either hides
//! an attack or raises false alarms.
//!
//! Also here: the length bound checked before any parsing, exactly at its limit.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{assert_unauthorized, attacker_key, me, segment, server_key, server_now, sign, victim};
use crate::common::{TestApp, engine_tests, token_of};

/// Longer tokens are refused before they are parsed (`MAX_TOKEN_BYTES` in the server).
const MAX_TOKEN_BYTES: usize = 4096;

/// The trail's `token_rejected` events, as (reason, forged, claimed role) sorted.
async fn recorded_rejections(app: &TestApp) -> Vec<(String, bool, Option<String>)> {
    app.register("auditor").await;
    app.set_role("auditor", "admin").await;
    let admin = token_of(&app.login_user("auditor").await);
    let reply = app
        .get(
            "/api/admin/audit?type=token_rejected&limit=100",
            Some(&admin),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut seen: Vec<(String, bool, Option<String>)> = reply.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|event| {
            let detail = &event["detail"];
            (
                detail["reason"].as_str().unwrap_or("(none)").to_owned(),
                detail["forged"].as_bool().unwrap_or_default(),
                detail["claimedRole"].as_str().map(str::to_owned),
            )
        })
        .collect();
    seen.sort();
    seen
}

async fn each_refused_token_is_recorded_with_the_check_it_failed(app: TestApp) {
    let bob = victim(&app, "bob").await;
    let key = server_key(&app);
    // Claims the server accepts for the whole test (it lasts 8 minutes of its clock), with
    // `changes` applied.
    let now = server_now(&app);
    let claims = |changes: &[(&str, Value)]| {
        let mut claims = bob.claims.clone();
        claims["iat"] = json!(now);
        claims["exp"] = json!(now + 900);
        for (claim, value) in changes {
            claims[*claim] = value.clone();
        }
        claims
    };
    let header = |changes: &[(&str, Value)]| {
        let mut header = bob.header.clone();
        for (field, value) in changes {
            header[*field] = value.clone();
        }
        header
    };
    let alg_none = header(&[("alg", json!("none"))]);
    let jku = header(&[("jku", json!("https://attacker.example/jwks"))]);
    // (the reason the trail must give, whether that reason means forged, the token)
    let cases = [
        ("malformed", false, "garbage".to_owned()),
        (
            "algorithm",
            true,
            format!("{}.{}.", segment(&alg_none), segment(&claims(&[]))),
        ),
        ("header", true, sign(&key, &jku, &claims(&[]))),
        (
            "key_id",
            true,
            sign(&key, &header(&[("kid", json!("not-ours"))]), &claims(&[])),
        ),
        (
            "signature",
            true,
            sign(
                &attacker_key(),
                &bob.header,
                &claims(&[("role", json!("admin"))]),
            ),
        ),
        (
            "claims",
            true,
            sign(&key, &bob.header, &claims(&[("aud", json!("another-api"))])),
        ),
        (
            "not_yet_valid",
            false,
            sign(&key, &bob.header, &claims(&[("nbf", json!(now + 3600))])),
        ),
        (
            "lifetime",
            false,
            sign(&key, &bob.header, &claims(&[("exp", json!(now + 901))])),
        ),
    ];
    let mut expected = Vec::new();
    for (reason, forged, token) in cases {
        assert_unauthorized(&me(&app, &token).await, reason);
        // What the unverified token claimed: bob's own role, or the admin role the forged
        // signature was after; nothing readable in garbage.
        let claimed = match reason {
            "malformed" => None,
            "signature" => Some("admin".to_owned()),
            _ => Some("user".to_owned()),
        };
        expected.push((reason.to_owned(), forged, claimed));
        // The trail samples five refusals per address a minute: one case a minute.
        app.clock.advance(Duration::from_secs(61));
    }
    expected.sort();
    assert_eq!(recorded_rejections(&app).await, expected);
}

/// A token with `claims` padded (by an extra claim) to exactly `length` bytes, or `None`
/// when base64 cannot make that length with this header.
fn padded_to(
    key: &ed25519_dalek::SigningKey,
    header: &Value,
    claims: &Value,
    length: usize,
) -> Option<String> {
    (0..length).find_map(|pad| {
        let mut padded = claims.clone();
        padded["pad"] = json!("x".repeat(pad));
        let token = sign(key, header, &padded);
        (token.len() == length).then_some(token)
    })
}

/// A token longer than any the server issues is refused before it is read (no parsing work
/// for an attacker's megabyte of base64); one of exactly the longest length is read, so the
/// bound is the documented one.
async fn a_token_longer_than_the_bound_is_refused_unread(app: TestApp) {
    let bob = victim(&app, "bob").await;
    let key = server_key(&app);
    let mut typed = bob.header.clone();
    typed["typ"] = json!("JWT");
    let mut untyped = bob.header.clone();
    untyped.as_object_mut().expect("object").remove("typ");
    let at = |length| {
        padded_to(&key, &typed, &bob.claims, length)
            .or_else(|| padded_to(&key, &untyped, &bob.claims, length))
            .expect("one of the headers reaches the length")
    };
    let longest = me(&app, &at(MAX_TOKEN_BYTES)).await;
    assert_eq!(longest.status, StatusCode::OK, "{}", longest.body);
    assert_unauthorized(&me(&app, &at(MAX_TOKEN_BYTES + 1)).await, "one byte over");
    app.clock.advance(Duration::from_secs(61));
    assert_eq!(
        recorded_rejections(&app).await,
        [("malformed".to_owned(), false, Some("user".to_owned()))]
    );
}

engine_tests!(
    each_refused_token_is_recorded_with_the_check_it_failed,
    a_token_longer_than_the_bound_is_refused_unread,
);
