//! Forged signatures and algorithms (attacks.md §1 J1–J9, J16): `alg: none`, a stripped or
//! borrowed signature, a tampered payload, another key, HMAC keyed with the public key.

use ed25519_dalek::pkcs8::EncodePublicKey as _;
use jsonwebtoken::Algorithm;
use reqwest::StatusCode;
use serde_json::json;

use super::{
    assert_unauthorized, attacker_key, b64, me, segment, server_key, sign, sign_hmac, victim,
};
use crate::common::{TestApp, engine_tests};

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

engine_tests!(
    alg_none_is_refused,
    stripped_signature_is_refused,
    signature_from_another_token_is_refused,
    tampered_payload_is_refused,
    token_signed_by_another_key_is_refused,
    hmac_signed_with_the_public_key_is_refused,
);
