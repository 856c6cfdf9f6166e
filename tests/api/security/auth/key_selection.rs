//! Key selection (attacks.md §1 J10–J15): `kid` names a key only from the server's own set;
//! `jku`, `x5u`, `jwk`, `x5c` and other header parameters are refused, never followed.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{assert_unauthorized, attacker_key, b64, me, server_key, sign, sign_raw, victim};
use crate::common::{TestApp, engine_tests};

async fn unknown_or_hostile_kid_is_refused(app: TestApp) {
    let bob = victim(&app, "bob").await;
    let key = server_key(&app);
    for kid in [
        json!("unknown"),
        json!(""),
        json!("../../../../dev/null"),
        json!("/proc/self/environ"),
        json!("x' UNION SELECT 'secret'--"),
        json!("1' OR '1'='1"),
        json!("$(sleep 10)"),
        json!("|id"),
        json!(null),
        json!(1),
        json!([bob.header["kid"].clone()]),
    ] {
        let mut header = bob.header.clone();
        header["kid"] = kid.clone();
        let started = Instant::now();
        // Signed with the real key: only the kid is wrong.
        assert_unauthorized(
            &me(&app, &sign(&key, &header, &bob.claims)).await,
            &kid.to_string(),
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "kid {kid} was slow"
        );
    }
    let mut header = bob.header.clone();
    header.as_object_mut().expect("object").remove("kid");
    assert_unauthorized(&me(&app, &sign(&key, &header, &bob.claims)).await, "no kid");
}

async fn jku_x5u_jwk_and_x5c_headers_are_refused(app: TestApp) {
    let bob = victim(&app, "bob").await;
    let key = server_key(&app);
    let attacker = attacker_key();
    // A listener the server would have to contact to fetch the attacker's keys.
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let trap_url = format!("http://{}/jwks.json", trap.local_addr().expect("addr"));
    let attacker_jwk =
        json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&attacker.verifying_key().to_bytes())});
    let server_jwk =
        json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&key.verifying_key().to_bytes())});
    let cert = b64(b"not really a certificate");
    for (name, value) in [
        ("jku", json!(trap_url)),
        ("x5u", json!(trap_url)),
        ("jwk", attacker_jwk.clone()),
        ("jwk", server_jwk),
        ("x5c", json!([cert])),
    ] {
        let mut header = bob.header.clone();
        header[name] = value;
        // Signed with the real key and kid, so only the extra header can make it fail.
        assert_unauthorized(
            &me(&app, &sign(&key, &header, &bob.claims)).await,
            &format!("{name} + real key"),
        );
        // Signed with the attacker's key that the header points to (CVE-2018-0114 style).
        assert_unauthorized(
            &me(&app, &sign(&attacker, &header, &bob.claims)).await,
            &format!("{name} + attacker key"),
        );
        let mut no_kid = header.clone();
        no_kid.as_object_mut().expect("object").remove("kid");
        assert_unauthorized(
            &me(&app, &sign(&attacker, &no_kid, &bob.claims)).await,
            &format!("{name} + attacker key, no kid"),
        );
    }
    let fetched = tokio::time::timeout(Duration::from_millis(200), trap.accept()).await;
    assert!(
        fetched.is_err(),
        "the server fetched a key from a URL in a token header"
    );
}

async fn abused_header_parameters_are_refused(app: TestApp) {
    let bob = victim(&app, "bob").await;
    let key = server_key(&app);
    let kid = bob.header["kid"].as_str().expect("kid");
    // Duplicate `alg` (J22): whichever copy a parser keeps, the token must not pass.
    for raw in [
        format!(r#"{{"alg":"none","alg":"EdDSA","kid":"{kid}"}}"#),
        format!(r#"{{"alg":"EdDSA","alg":"none","kid":"{kid}"}}"#),
        format!(r#"{{"alg":"EdDSA","kid":"{kid}","kid":"other"}}"#),
    ] {
        assert_unauthorized(&me(&app, &sign_raw(&key, &raw, &bob.claims)).await, &raw);
    }
    // A critical extension the server does not understand must be refused (RFC 7515
    // §4.1.11), even on an otherwise valid token.
    for crit in [json!(["exp"]), json!(["x-unknown"]), json!(["b64"])] {
        let mut header = bob.header.clone();
        header["crit"] = crit.clone();
        header["x-unknown"] = json!(true);
        header["b64"] = json!(false);
        assert_unauthorized(
            &me(&app, &sign(&key, &header, &bob.claims)).await,
            &crit.to_string(),
        );
    }
}

engine_tests!(
    unknown_or_hostile_kid_is_refused,
    jku_x5u_jwk_and_x5c_headers_are_refused,
    abused_header_parameters_are_refused,
);
