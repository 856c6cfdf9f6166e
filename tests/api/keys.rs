//! Signing keys: the JWKS publishes only public keys, and rotating the key logs nobody out.

use reqwest::StatusCode;

use crate::common::{self, Engine, TestApp, aerie, engine_tests, run_aerie, token_of};

async fn jwks_publishes_only_the_public_verifying_keys(app: TestApp) {
    let token = app.register("bob").await;
    let reply = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let keys = reply.body["keys"].as_array().expect("keys").clone();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    common::assert_keys(key, &["kty", "crv", "alg", "use", "kid", "x"]);
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["use"], "sig");
    assert!(key.get("d").is_none(), "never the private half");
    let header = jsonwebtoken::decode_header(&token).expect("header");
    assert_eq!(key["kid"], header.kid.expect("kid").as_str());
}

async fn key_rotation_logs_nobody_out(app: TestApp) {
    let old = app.register("bob").await;
    let active = app.data_dir.path().join("signing-key.pem");
    let new_kid = aerie::auth::keys::Keyring::rotate(&active).expect("rotate");
    // The restarted instance: same database, the rotated keyring.
    let restarted = app.spawn_sibling().await;
    let me = restarted.get("/api/user", Some(&old)).await;
    assert_eq!(
        me.status,
        StatusCode::OK,
        "a token signed by the previous key still verifies"
    );
    let login = restarted.login("bob@example.com", common::PASSWORD).await;
    let new_token = token_of(&login.body["user"]);
    let header = jsonwebtoken::decode_header(&new_token).expect("header");
    assert_eq!(
        header.kid.as_deref(),
        Some(new_kid.as_str()),
        "the new key signs"
    );
    let jwks = restarted.get("/.well-known/jwks.json", None).await.body;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert_eq!(kids.len(), 2);
    assert_eq!(kids[0], new_kid);
}

engine_tests!(
    jwks_publishes_only_the_public_verifying_keys,
    key_rotation_logs_nobody_out,
);

/// `aerie keys generate` (the signing key) and `aerie keys generate-data` (the field keys)
/// write a file only its owner can read, which a server starts with, and never write over
/// one that exists: overwriting a key that signs sessions or seals data would log everyone
/// out or make the data unreadable.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_generation_writes_private_files_a_server_starts_with_and_never_overwrites_them() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn(Engine::Sqlite).await;
    for (command, setting, said, user) in [
        (
            "generate",
            "AERIE_SIGNING_KEY_FILE",
            "wrote signing key",
            "signer",
        ),
        (
            "generate-data",
            "AERIE_DATA_KEYS_FILE",
            "wrote field-encryption keys",
            "sealer",
        ),
    ] {
        let path = app.data_dir.path().join(format!("{command}-output"));
        let out = path.display().to_string();
        let written = aerie(&app, "", &["keys", command, "--out", &out], "").await;
        let stdout = String::from_utf8_lossy(&written.stdout);
        assert!(stdout.contains(said), "{command}: {stdout}");
        let mode = std::fs::metadata(&path)
            .expect("written")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{command}: mode {mode:o}");
        let key = std::fs::read(&path).expect("key");
        let refused = run_aerie(&app, "", &["keys", command, "--out", &out], "").await;
        assert!(!refused.status.success(), "{command} overwrote its key");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("already exists"), "{command}: {stderr}");
        assert_eq!(std::fs::read(&path).expect("key"), key, "{command}");
        let started = app.spawn_sibling_with(&[(setting, out.as_str())]).await;
        started.register(user).await;
    }
}
