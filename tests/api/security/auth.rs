//! Authentication attacks (attacks.md §1 JWT, §2 S12, §3 A4, A7, A10, A11): every forged,
//! stale or misplaced credential gets the same 401, on both engines.
//!
//! Forged tokens are built by hand (base64url + ed25519-dalek, HMAC through jsonwebtoken), so
//! each case is exact. Several are signed with the server's *real* key, read from the test's
//! data folder: such a token fails only because of the one thing the case changes, so the
//! test would notice if the server stopped checking that thing.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _};
use jsonwebtoken::{Algorithm, EncodingKey};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{self, PASSWORD, Reply, TestApp, engine_tests};

/// The one body every 401 carries.
fn generic_401() -> Value {
    json!({"errors": {"body": ["authentication required"]}})
}

/// Asserts the generic 401: status, body and the `WWW-Authenticate` challenge.
#[track_caller]
fn assert_unauthorized(reply: &Reply, case: &str) {
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "{case}: {}",
        reply.body
    );
    assert_eq!(reply.body, generic_401(), "{case}");
    assert_eq!(
        reply
            .headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Token"),
        "{case}: WWW-Authenticate"
    );
}

/// `GET /api/user` with a raw `Authorization` header value.
async fn me_with_header(app: &TestApp, authorization: &str) -> Reply {
    let request = app
        .client
        .get(app.url("/api/user"))
        .header("Authorization", authorization);
    common::read(request.send().await.expect("request sent")).await
}

async fn me(app: &TestApp, token: &str) -> Reply {
    app.get("/api/user", Some(token)).await
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn segment(value: &Value) -> String {
    b64(value.to_string().as_bytes())
}

/// The header and claims of a token, decoded without any check.
fn decode(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut next = || {
        let part = parts.next().expect("token segment");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
    };
    let header = next();
    let claims = next();
    (header, claims)
}

/// The key the server signs with (generated into the data folder in development mode).
fn server_key(app: &TestApp) -> ed25519_dalek::SigningKey {
    let pem = std::fs::read_to_string(app.data_dir.path().join("signing-key.pem"))
        .expect("signing key file");
    ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).expect("PKCS#8 Ed25519 key")
}

fn attacker_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng)
}

/// Signs `header_json` (sent verbatim, so it may be malformed on purpose) and `claims` with
/// Ed25519.
fn sign_raw(key: &ed25519_dalek::SigningKey, header_json: &str, claims: &Value) -> String {
    let input = format!("{}.{}", b64(header_json.as_bytes()), segment(claims));
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64(&signature.to_bytes()))
}

fn sign(key: &ed25519_dalek::SigningKey, header: &Value, claims: &Value) -> String {
    sign_raw(key, &header.to_string(), claims)
}

/// An HMAC-signed token (`alg` HS256/384/512) with `secret` as the key.
fn sign_hmac(alg: Algorithm, secret: &[u8], header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", segment(header), segment(claims));
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(secret), alg)
            .expect("HMAC signs");
    format!("{input}.{signature}")
}

/// A registered user with a valid token, plus that token's decoded header and claims.
struct Victim {
    token: String,
    header: Value,
    claims: Value,
}

async fn victim(app: &TestApp, name: &str) -> Victim {
    let token = app.register(name).await;
    let (header, claims) = decode(&token);
    Victim {
        token,
        header,
        claims,
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

// ---------------------------------------------------------------------------------------
// The baseline: the forging helpers make tokens the server accepts.

async fn hand_built_tokens_with_the_real_key_are_accepted(app: TestApp) {
    let bob = victim(&app, "bob").await;
    assert_eq!(me(&app, &bob.token).await.status, StatusCode::OK);
    let rebuilt = sign(&server_key(&app), &bob.header, &bob.claims);
    let reply = me(&app, &rebuilt).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "the harness's own signing must be valid: {}",
        reply.body
    );
    assert_eq!(reply.body["user"]["username"], "bob");
    let bearer = me_with_header(&app, &format!("Bearer {}", bob.token)).await;
    assert_eq!(
        bearer.status,
        StatusCode::OK,
        "Bearer is documented as accepted"
    );
}

// ---------------------------------------------------------------------------------------
// No token, a malformed one, the wrong scheme

async fn every_authenticated_route_refuses_a_missing_token(app: TestApp) {
    let alice = app.register("alice").await;
    app.register("bob").await;
    let slug = app.create_article(&alice, "Guarded", &["x"]).await;
    let comment = app
        .post(
            &format!("/api/articles/{slug}/comments"),
            Some(&alice),
            json!({"comment": {"body": "mine"}}),
        )
        .await;
    let comment_id = comment.body["comment"]["id"].as_i64().expect("comment id");
    let article = json!({"article": {"title": "t", "description": "d", "body": "b"}});
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/api/user".into(), None),
        (
            Method::PUT,
            "/api/user".into(),
            Some(json!({"user": {"bio": "x"}})),
        ),
        (Method::POST, "/api/profiles/bob/follow".into(), None),
        (Method::DELETE, "/api/profiles/bob/follow".into(), None),
        (Method::GET, "/api/articles/feed".into(), None),
        (Method::POST, "/api/articles".into(), Some(article.clone())),
        (Method::PUT, format!("/api/articles/{slug}"), Some(article)),
        (Method::DELETE, format!("/api/articles/{slug}"), None),
        (
            Method::POST,
            format!("/api/articles/{slug}/comments"),
            Some(json!({"comment": {"body": "x"}})),
        ),
        (
            Method::DELETE,
            format!("/api/articles/{slug}/comments/{comment_id}"),
            None,
        ),
        (Method::POST, format!("/api/articles/{slug}/favorite"), None),
        (
            Method::DELETE,
            format!("/api/articles/{slug}/favorite"),
            None,
        ),
    ];
    for (method, path, body) in routes {
        let reply = app.request(method.clone(), &path, None, body.clone()).await;
        assert_unauthorized(&reply, &format!("{method} {path} without a token"));
        let reply = app
            .request(method.clone(), &path, Some("not-a-token"), body)
            .await;
        assert_unauthorized(&reply, &format!("{method} {path} with a malformed token"));
    }
    // Nothing happened: the article and the comment are still there, unfavorited.
    let article = app.get(&format!("/api/articles/{slug}"), None).await;
    assert_eq!(article.body["article"]["title"], "Guarded");
    assert_eq!(article.body["article"]["favoritesCount"], 0);
    let comments = app
        .get(&format!("/api/articles/{slug}/comments"), None)
        .await;
    assert_eq!(comments.body["comments"].as_array().map(Vec::len), Some(1));
}

async fn bad_token_on_optional_auth_routes_is_not_treated_as_anonymous(app: TestApp) {
    let bob = victim(&app, "bob").await;
    let slug = app.create_article(&bob.token, "Public", &[]).await;
    let forged = sign(&attacker_key(), &bob.header, &bob.claims);
    for path in [
        "/api/articles".to_owned(),
        format!("/api/articles/{slug}"),
        format!("/api/articles/{slug}/comments"),
        "/api/profiles/bob".to_owned(),
    ] {
        assert_eq!(
            app.get(&path, None).await.status,
            StatusCode::OK,
            "{path} is public"
        );
        assert_unauthorized(&app.get(&path, Some(&forged)).await, &path);
        assert_unauthorized(&app.get(&path, Some("garbage")).await, &path);
    }
}

async fn malformed_tokens_are_refused(app: TestApp) {
    let bob = victim(&app, "bob").await;
    let (h, p) = bob.token.split_at(bob.token.find('.').expect("dot"));
    let cases = [
        "x".to_owned(),
        "a.b.c".to_owned(),
        "..".to_owned(),
        "...".to_owned(),
        format!("{}.{}", b64(b"{"), b64(b"{}")),
        format!("{}.{}.", b64(b"not json"), b64(b"{}")),
        format!("{h}{p}.extra"),
        format!("{}.{}", bob.token, "more"),
        bob.token.replace('.', ""),
        bob.token.to_uppercase(),
        format!("{}=", bob.token),
        bob.token.chars().rev().collect(),
    ];
    for token in cases {
        assert_unauthorized(&me(&app, &token).await, &token);
    }
}

async fn scheme_confusion_is_refused(app: TestApp) {
    let bob = victim(&app, "bob").await;
    let token = &bob.token;
    for header in [
        format!("token {token}"),
        format!("TOKEN {token}"),
        format!("bearer {token}"),
        format!("Token  {token}"),
        format!("Token {token} extra"),
        format!("Token\t{token}"),
        format!("Token{token}"),
        format!("Basic {token}"),
        format!("JWT {token}"),
        token.clone(),
        "Token".to_owned(),
        "Token ".to_owned(),
    ] {
        assert_unauthorized(&me_with_header(&app, &header).await, &header);
    }
    // Two Authorization headers, even when both are valid, are ambiguous.
    let request = app
        .client
        .get(app.url("/api/user"))
        .header("Authorization", format!("Token {token}"))
        .header("Authorization", format!("Token {token}"));
    let reply = common::read(request.send().await.expect("sent")).await;
    assert_unauthorized(&reply, "two Authorization headers");
}

async fn token_in_the_query_string_is_ignored(app: TestApp) {
    let bob = victim(&app, "bob").await;
    for name in ["token", "access_token", "jwt", "auth", "authorization"] {
        let reply = app
            .get(&format!("/api/user?{name}={}", bob.token), None)
            .await;
        assert_unauthorized(&reply, name);
    }
    // Nor from a cookie or a custom header.
    for (header, value) in [
        ("Cookie", format!("token={}", bob.token)),
        ("X-Access-Token", bob.token.clone()),
        ("X-Auth-Token", bob.token.clone()),
    ] {
        let request = app.client.get(app.url("/api/user")).header(header, value);
        let reply = common::read(request.send().await.expect("sent")).await;
        assert_unauthorized(&reply, header);
    }
}

async fn oversized_authorization_header_is_refused_without_a_crash(app: TestApp) {
    let bob = victim(&app, "bob").await;
    let huge = format!("Token {}", "A".repeat(64 * 1024));
    let request = app
        .client
        .get(app.url("/api/user"))
        .header("Authorization", huge);
    let reply = common::read(request.send().await.expect("sent")).await;
    assert!(
        matches!(
            reply.status,
            StatusCode::BAD_REQUEST
                | StatusCode::UNAUTHORIZED
                | StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        ),
        "{}",
        reply.status
    );
    // A correctly signed token with a 64 KB `sub` is refused too, before any parsing.
    let mut claims = bob.claims.clone();
    claims["sub"] = json!("1".repeat(64 * 1024));
    let forged = sign(&server_key(&app), &bob.header, &claims);
    let reply = me(&app, &forged).await;
    assert!(
        matches!(
            reply.status,
            StatusCode::BAD_REQUEST
                | StatusCode::UNAUTHORIZED
                | StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        ),
        "{}",
        reply.status
    );
    // The server is still serving.
    assert_eq!(me(&app, &bob.token).await.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------
// Forged signatures and algorithms (J1–J9, J16)

async fn alg_none_is_refused(app: TestApp) {
    let bob = victim(&app, "bob").await;
    let mut claims = bob.claims.clone();
    claims["role"] = json!("admin");
    let kid = bob.header["kid"].clone();
    for alg in ["none", "None", "NONE", "nOnE", " none", "none\u{0}", ""] {
        for header in [
            json!({"alg": alg, "typ": "JWT"}),
            json!({"alg": alg, "typ": "JWT", "kid": kid}),
        ] {
            let unsigned = format!("{}.{}", segment(&header), segment(&claims));
            assert_unauthorized(
                &me(&app, &format!("{unsigned}.")).await,
                &format!("alg {alg:?}, H.P."),
            );
            assert_unauthorized(&me(&app, &unsigned).await, &format!("alg {alg:?}, H.P"));
            // The old signature kept alongside `none` does not help either.
            let with_old_signature = format!(
                "{unsigned}.{}",
                bob.token.rsplit('.').next().expect("signature")
            );
            assert_unauthorized(
                &me(&app, &with_old_signature).await,
                &format!("alg {alg:?}, H.P.S"),
            );
        }
    }
}

async fn stripped_signature_is_refused(app: TestApp) {
    let bob = victim(&app, "bob").await;
    let (unsigned, _) = bob.token.rsplit_once('.').expect("three segments");
    assert_unauthorized(&me(&app, &format!("{unsigned}.")).await, "H.P.");
    assert_unauthorized(&me(&app, unsigned).await, "H.P");
    assert_unauthorized(
        &me(&app, &format!("{unsigned}.{}", b64(&[0u8; 64]))).await,
        "zero signature",
    );
}

async fn signature_from_another_token_is_refused(app: TestApp) {
    let alice = victim(&app, "alice").await;
    let bob = victim(&app, "bob").await;
    let (alice_hp, _) = alice.token.rsplit_once('.').expect("alice");
    let (_, bob_signature) = bob.token.rsplit_once('.').expect("bob");
    assert_unauthorized(
        &me(&app, &format!("{alice_hp}.{bob_signature}")).await,
        "H.P of alice + S of bob",
    );
    assert_eq!(me(&app, &alice.token).await.status, StatusCode::OK);
}

async fn tampered_payload_is_refused(app: TestApp) {
    let alice = victim(&app, "alice").await;
    let bob = victim(&app, "bob").await;
    let signature = bob.token.rsplit('.').next().expect("signature");
    for (claim, value) in [
        ("sub", alice.claims["sub"].clone()),
        ("role", json!("admin")),
        (
            "exp",
            json!(bob.claims["exp"].as_i64().expect("exp") + 86_400),
        ),
    ] {
        let mut claims = bob.claims.clone();
        claims[claim] = value;
        let tampered = format!("{}.{}.{signature}", segment(&bob.header), segment(&claims));
        assert_unauthorized(&me(&app, &tampered).await, claim);
    }
}

async fn token_signed_by_another_key_is_refused(app: TestApp) {
    let bob = victim(&app, "bob").await;
    let mut admin = bob.claims.clone();
    admin["role"] = json!("admin");
    let attacker = attacker_key();
    for claims in [&bob.claims, &admin] {
        // With the server's kid, with the attacker's own kid, and with none.
        for header in [
            bob.header.clone(),
            json!({"alg": "EdDSA", "typ": "JWT", "kid": "attacker"}),
            json!({"alg": "EdDSA", "typ": "JWT"}),
        ] {
            assert_unauthorized(
                &me(&app, &sign(&attacker, &header, claims)).await,
                &header.to_string(),
            );
        }
    }
}

async fn hmac_signed_with_the_public_key_is_refused(app: TestApp) {
    let bob = victim(&app, "bob").await;
    let public = server_key(&app).verifying_key();
    let pem = public.to_public_key_pem(Default::default()).expect("PEM");
    let der = public.to_public_key_der().expect("DER");
    let secrets: Vec<Vec<u8>> = vec![
        public.to_bytes().to_vec(),
        b64(&public.to_bytes()).into_bytes(),
        pem.clone().into_bytes(),
        pem.trim_end().as_bytes().to_vec(),
        der.as_bytes().to_vec(),
        Vec::new(),
        b"secret".to_vec(),
    ];
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        for secret in &secrets {
            let mut header = bob.header.clone();
            header["alg"] = json!(format!("{alg:?}"));
            let forged = sign_hmac(alg, secret, &header, &bob.claims);
            assert_unauthorized(
                &me(&app, &forged).await,
                &format!("{alg:?} with a {}-byte key", secret.len()),
            );
        }
    }
    // HS256 with an empty signature (J9).
    let mut header = bob.header.clone();
    header["alg"] = json!("HS256");
    let empty = format!("{}.{}.", segment(&header), segment(&bob.claims));
    assert_unauthorized(&me(&app, &empty).await, "HS256, empty signature");
    // Other algorithms the server never uses, including ECDSA r=s=0 (CVE-2022-21449).
    for alg in ["ES256", "ES384", "RS256", "PS256", "Ed25519", "EdDSA "] {
        let mut header = bob.header.clone();
        header["alg"] = json!(alg);
        let forged = format!(
            "{}.{}.{}",
            segment(&header),
            segment(&bob.claims),
            b64(&[0u8; 64])
        );
        assert_unauthorized(&me(&app, &forged).await, alg);
        let forged = format!("{}.{}.MAYCAQACAQA", segment(&header), segment(&bob.claims));
        assert_unauthorized(&me(&app, &forged).await, alg);
    }
}

// ---------------------------------------------------------------------------------------
// Key selection: kid, jku, x5u, jwk, x5c (J10–J15)

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

// ---------------------------------------------------------------------------------------
// Claims: time, issuer, audience, subject (J17–J21)

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

async fn token_from_the_future_is_refused(app: TestApp) {
    let bob = victim(&app, "bob").await;
    let key = server_key(&app);
    let now = now_secs();
    for (claim, value) in [("nbf", now + 120), ("iat", now + 120)] {
        let mut claims = bob.claims.clone();
        claims[claim] = json!(value);
        claims["exp"] = json!(now + 900);
        assert_unauthorized(&me(&app, &sign(&key, &bob.header, &claims)).await, claim);
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

// ---------------------------------------------------------------------------------------
// Login (A4, A7, A10, A11)

async fn login_does_not_reveal_whether_an_email_is_registered(app: TestApp) {
    app.register("known").await;
    let login =
        |email: &str, password: &str| json!({"user": {"email": email, "password": password}});
    let unknown = app
        .post(
            "/api/users/login",
            None,
            login("nobody@example.com", "wrong password 123"),
        )
        .await;
    let wrong = app
        .post(
            "/api/users/login",
            None,
            login("known@example.com", "wrong password 123"),
        )
        .await;
    let wrong_case = app
        .post(
            "/api/users/login",
            None,
            login("KNOWN@example.com", "wrong password 123"),
        )
        .await;
    for reply in [&unknown, &wrong, &wrong_case] {
        assert_unauthorized(reply, "failed login");
    }
    assert_eq!(unknown.body, wrong.body);
    let names = |reply: &Reply| {
        let mut names: Vec<(String, String)> = reply
            .headers
            .iter()
            // `RateLimit` counts the caller's own attempts down, whatever the account.
            .filter(|(name, _)| !matches!(name.as_str(), "x-request-id" | "date" | "ratelimit"))
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("?").to_owned()))
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names(&unknown),
        names(&wrong),
        "headers differ between unknown and known email"
    );
}

async fn huge_password_at_login_is_refused_quickly(app: TestApp) {
    app.register("target").await;
    // 1 MB: over the body limit, refused before any parsing.
    let started = Instant::now();
    let body =
        json!({"user": {"email": "target@example.com", "password": "p".repeat(1024 * 1024)}});
    let reply = app
        .raw_post("/api/users/login", body.to_string().into_bytes(), false)
        .await;
    reply.assert_status(StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        reply.body["errors"]["body"][0].is_string(),
        "{}",
        reply.body
    );
    // 60 KB: under the body limit but far over any real password; refused before hashing.
    let reply = app
        .login("target@example.com", &"p".repeat(60 * 1024))
        .await;
    assert_unauthorized(&reply, "60 KB password");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // Registration refuses it with a field error, not a hash of 60 KB.
    let reply = app
        .post("/api/users", None, json!({"user": {"username": "longpw", "email": "longpw@example.com", "password": "p".repeat(60 * 1024)}}))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.error_on("password").is_some(), "{}", reply.body);
}

async fn default_credentials_are_refused(app: TestApp) {
    app.register("someone").await;
    for (email, password) in [
        ("admin", "admin"),
        ("admin", "password"),
        ("admin@example.com", "admin"),
        ("admin@localhost", "admin"),
        ("root", "root"),
        ("administrator@example.com", "changeme"),
    ] {
        let reply = app.login(email, password).await;
        assert_unauthorized(&reply, email);
    }
}

async fn unicode_lookalike_usernames_are_refused(app: TestApp) {
    app.register("bob").await;
    for name in [
        "ЬоЬ",
        "ｂｏｂ",
        "bоb",
        "bob\u{200b}",
        "\u{202e}bob",
        "bob\u{301}",
        "BOB",
        "Bob",
    ] {
        let reply = app
            .post("/api/users", None, json!({"user": {"username": name, "email": format!("{}@example.com", b64(name.as_bytes())), "password": PASSWORD}}))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name:?}: {}",
            reply.body
        );
        assert!(
            reply.error_on("username").is_some(),
            "{name:?}: {}",
            reply.body
        );
    }
    // The email is unique ignoring case, too.
    let reply = app
        .post(
            "/api/users",
            None,
            json!({"user": {"username": "bob2", "email": "BOB@Example.COM", "password": PASSWORD}}),
        )
        .await;
    reply.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.error_on("email").is_some(), "{}", reply.body);
    // The profile is still the one bob.
    assert_eq!(
        app.get("/api/profiles/BOB", None).await.body["profile"]["username"],
        "bob"
    );
}

engine_tests!(
    hand_built_tokens_with_the_real_key_are_accepted,
    every_authenticated_route_refuses_a_missing_token,
    bad_token_on_optional_auth_routes_is_not_treated_as_anonymous,
    malformed_tokens_are_refused,
    scheme_confusion_is_refused,
    token_in_the_query_string_is_ignored,
    oversized_authorization_header_is_refused_without_a_crash,
    alg_none_is_refused,
    stripped_signature_is_refused,
    signature_from_another_token_is_refused,
    tampered_payload_is_refused,
    token_signed_by_another_key_is_refused,
    hmac_signed_with_the_public_key_is_refused,
    unknown_or_hostile_kid_is_refused,
    jku_x5u_jwk_and_x5c_headers_are_refused,
    abused_header_parameters_are_refused,
    expired_token_is_refused,
    token_from_the_future_is_refused,
    missing_required_claims_are_refused,
    wrong_issuer_or_audience_is_refused,
    confused_subject_claims_are_refused,
    login_does_not_reveal_whether_an_email_is_registered,
    huge_password_at_login_is_refused_quickly,
    default_credentials_are_refused,
    unicode_lookalike_usernames_are_refused,
);
