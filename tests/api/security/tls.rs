//! HTTPS with rustls: a real TLS client trusting a generated CA, HSTS on HTTPS only, the
//! HTTP→HTTPS redirect built from the configured public URL, and certificate hot reload.

use std::time::Duration;

use reqwest::StatusCode;

use crate::common::{Engine, TestApp};

struct TlsApp {
    app: TestApp,
    ca_pem: String,
    cert_dir: tempfile::TempDir,
}

async fn spawn_tls(extra: &[(&str, &str)]) -> TlsApp {
    let cert_dir = tempfile::tempdir().expect("tempdir");
    let files = aerie::tls::write_dev_certificate(cert_dir.path()).expect("dev certificate");
    let ca_pem = std::fs::read_to_string(cert_dir.path().join("ca.pem")).expect("ca");
    let cert = files.cert.display().to_string();
    let key = files.key.display().to_string();
    let mut settings = vec![
        ("AERIE_TLS_CERT", cert.as_str()),
        ("AERIE_TLS_KEY", key.as_str()),
        ("AERIE_TLS_RELOAD_INTERVAL_SECS", "1"),
    ];
    settings.extend_from_slice(extra);
    let app = TestApp::spawn_with(Engine::Sqlite, &settings).await;
    TlsApp {
        app,
        ca_pem,
        cert_dir,
    }
}

fn client_trusting(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("ca parses"))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

fn https_url(app: &TestApp, path: &str) -> String {
    format!(
        "{}{}",
        app.address.replace("http://127.0.0.1", "https://localhost"),
        path
    )
}

#[tokio::test]
async fn https_serves_the_api_with_hsts() {
    let tls = spawn_tls(&[]).await;
    let client = client_trusting(&tls.ca_pem);
    let reply = client
        .get(https_url(&tls.app, "/api/tags"))
        .send()
        .await
        .expect("TLS handshake with the generated CA");
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(
        reply
            .headers()
            .get("strict-transport-security")
            .and_then(|v| v.to_str().ok()),
        Some("max-age=63072000; includeSubDomains")
    );
    let missing = client
        .get(https_url(&tls.app, "/nope"))
        .send()
        .await
        .expect("sent");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(
        missing.headers().contains_key("strict-transport-security"),
        "HSTS on errors too"
    );
}

#[tokio::test]
async fn plain_http_responses_carry_no_hsts() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let reply = app.get("/api/tags", None).await;
    assert!(!reply.headers.contains_key("strict-transport-security"));
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_is_refused() {
    let tls = spawn_tls(&[]).await;
    let stranger = reqwest::Client::builder()
        .use_rustls_tls()
        .build()
        .expect("client");
    assert!(
        stranger
            .get(https_url(&tls.app, "/api/tags"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn plain_http_to_the_https_port_gets_no_api_response() {
    let tls = spawn_tls(&[]).await;
    let reply = tls.app.client.get(tls.app.url("/api/tags")).send().await;
    assert!(reply.map_or(true, |r| r.status() != StatusCode::OK));
}

#[tokio::test]
async fn redirect_listener_sends_308_to_the_public_url_never_the_host_header() {
    let tls = spawn_tls(&[
        ("AERIE_HTTP_REDIRECT_LISTEN", "127.0.0.1:0"),
        ("AERIE_PUBLIC_URL", "https://aerie.example.com"),
    ])
    .await;
    // The harness only knows the main port; find the redirect port from the server itself.
    let redirect = tls.app.redirect_address.clone().expect("redirect listener");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let reply = client
        .get(format!("{redirect}/api/articles?tag=x&limit=5"))
        .header("host", "evil.example")
        .send()
        .await
        .expect("sent");
    assert_eq!(reply.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        reply
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some("https://aerie.example.com/api/articles?tag=x&limit=5")
    );
    assert!(
        !reply.headers().contains_key("strict-transport-security"),
        "no HSTS over plain HTTP"
    );
    let sneaky = client
        .get(format!("{redirect}//evil.example/x"))
        .send()
        .await
        .expect("sent");
    let location = sneaky
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        location.starts_with("https://aerie.example.com/"),
        "{location}"
    );
    let health = client
        .get(format!("{redirect}/healthz"))
        .send()
        .await
        .expect("sent");
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn certificates_reload_without_restart_and_bad_files_keep_the_old_one() {
    let tls = spawn_tls(&[]).await;
    let dir = tls.cert_dir.path();
    // A broken certificate file: the old certificate keeps serving.
    std::fs::write(dir.join("cert.pem"), "not a certificate").expect("write");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let old_client = client_trusting(&tls.ca_pem);
    assert!(
        old_client
            .get(https_url(&tls.app, "/healthz"))
            .send()
            .await
            .is_ok(),
        "old certificate still served"
    );
    // A new CA and certificate: after the next check, only clients trusting the new CA connect.
    let fresh = tempfile::tempdir().expect("tempdir");
    aerie::tls::write_dev_certificate(fresh.path()).expect("new certificate");
    std::fs::copy(fresh.path().join("cert.pem"), dir.join("cert.pem")).expect("copy cert");
    std::fs::remove_file(dir.join("key.pem")).expect("remove key");
    std::fs::copy(fresh.path().join("key.pem"), dir.join("key.pem")).expect("copy key");
    let new_ca = std::fs::read_to_string(fresh.path().join("ca.pem")).expect("ca");
    let new_client = client_trusting(&new_ca);
    let mut served_new = false;
    for _ in 0..20 {
        // Waiting on the file watcher (a real-time external event), bounded to 10 s.
        tokio::time::sleep(Duration::from_millis(500)).await;
        if new_client
            .get(https_url(&tls.app, "/healthz"))
            .send()
            .await
            .is_ok()
        {
            served_new = true;
            break;
        }
    }
    assert!(served_new, "the new certificate was never served");
    assert!(
        client_trusting(&tls.ca_pem)
            .get(https_url(&tls.app, "/healthz"))
            .send()
            .await
            .is_err(),
        "old certificate still served"
    );
}

/// A TLS private key other local users can read may already have leaked: like the signing
/// and audit keys, it is refused at start, with the setting named.
#[tokio::test]
async fn a_group_or_world_readable_tls_key_refuses_to_start() {
    use std::os::unix::fs::PermissionsExt;
    let data = tempfile::tempdir().expect("tempdir");
    let files = aerie::tls::write_dev_certificate(&data.path().join("tls")).expect("certificate");
    std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_aerie"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AERIE_LISTEN", "127.0.0.1:0")
        .env("AERIE_DATA_DIR", data.path())
        .env("AERIE_TLS_CERT", &files.cert)
        .env("AERIE_TLS_KEY", &files.key)
        .current_dir(data.path())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("refused promptly, not served")
        .expect("ran aerie");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "started with an exposed key: {stderr}"
    );
    assert!(
        stderr.contains("AERIE_TLS_KEY") && stderr.contains("chmod 600"),
        "the error names the setting and the fix: {stderr}"
    );
}

/// A reload that finds the new key exposed keeps serving the old certificate.
#[tokio::test]
async fn a_group_readable_tls_key_is_not_reloaded() {
    use std::os::unix::fs::PermissionsExt;
    let tls = spawn_tls(&[]).await;
    let dir = tls.cert_dir.path();
    // Let the watcher take its first look at the files, so it sees the change below.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let fresh = tempfile::tempdir().expect("tempdir");
    aerie::tls::write_dev_certificate(fresh.path()).expect("new certificate");
    std::fs::copy(fresh.path().join("cert.pem"), dir.join("cert.pem")).expect("copy cert");
    std::fs::remove_file(dir.join("key.pem")).expect("remove key");
    std::fs::copy(fresh.path().join("key.pem"), dir.join("key.pem")).expect("copy key");
    std::fs::set_permissions(dir.join("key.pem"), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    // Waiting on the file watcher (1 s interval): across several checks the new certificate
    // is never served and the old one keeps serving.
    let new_ca = std::fs::read_to_string(fresh.path().join("ca.pem")).expect("ca");
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            client_trusting(&new_ca)
                .get(https_url(&tls.app, "/healthz"))
                .send()
                .await
                .is_err(),
            "the certificate with the exposed key was served"
        );
    }
    assert!(
        client_trusting(&tls.ca_pem)
            .get(https_url(&tls.app, "/healthz"))
            .send()
            .await
            .is_ok(),
        "the old certificate keeps serving"
    );
}

/// A production server whose TLS ends at a proxy in `proxy` (trusted as a proxy too), with
/// its keys made beforehand as an operator would, and a metrics listener.
async fn spawn_production_behind(proxy: &str) -> (TestApp, tempfile::TempDir) {
    let keys = tempfile::tempdir().expect("tempdir");
    let signing = keys.path().join("signing-key.pem");
    let audit = keys.path().join("audit-key");
    let data_keys = keys.path().join("data-keys");
    aerie::auth::keys::Keyring::load(&signing, true).expect("signing key");
    aerie::audit::AuditKeys::load_or_generate(&audit, true).expect("audit key");
    aerie::field_keys::KeyFile::fresh()
        .create(&data_keys)
        .expect("data keys");
    let (signing, audit) = (signing.display().to_string(), audit.display().to_string());
    let data_keys = data_keys.display().to_string();
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &[
            ("AERIE_ENV", "production"),
            ("AERIE_AUTO_MIGRATE", "true"),
            ("AERIE_SIGNING_KEY_FILE", &signing),
            ("AERIE_AUDIT_KEY_FILE", &audit),
            ("AERIE_DATA_KEYS_FILE", &data_keys),
            ("AERIE_CORS_ORIGINS", "none"),
            ("AERIE_TLS_TERMINATED_BY_PROXY", proxy),
            ("AERIE_TRUSTED_PROXIES", proxy),
            ("AERIE_METRICS_LISTEN", "127.0.0.1:0"),
        ],
    )
    .await;
    (app, keys)
}

/// `AERIE_TLS_TERMINATED_BY_PROXY` lifts production's refusal of plain HTTP for the proxy
/// alone: a client reaching the port directly (here 127.0.0.1, outside the proxy's network)
/// has its connection closed unread (no registration over plain HTTP, no HSTS sent over it),
/// and the refusal is counted.
#[tokio::test]
async fn production_behind_a_tls_proxy_refuses_plain_http_from_anyone_else() {
    let (app, _keys) = spawn_production_behind("10.20.30.0/24").await;
    let registered = app
        .client
        .post(app.url("/api/users"))
        .json(&serde_json::json!({"user": {"username": "direct", "email": "direct@example.com", "password": crate::common::PASSWORD}}))
        .send()
        .await;
    assert!(
        registered.is_err(),
        "served plain HTTP to a peer outside the proxy's network: {:?}",
        registered.map(|r| r.status())
    );
    app.internal_metrics().await.assert_value(
        "aerie_connections_refused_total",
        &[("reason", "plain_http_peer")],
        1.0,
    );
}

/// The proxy itself (127.0.0.1 here) is served, HSTS included: it speaks HTTPS to clients.
#[tokio::test]
async fn production_behind_a_tls_proxy_serves_the_proxy() {
    let (app, _keys) = spawn_production_behind("127.0.0.1/32").await;
    let reply = app.get("/api/tags", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.headers.contains_key("strict-transport-security"));
}

/// A TLS client on a blocking socket that trusts `ca_pem` and offers only `alpn`: completes
/// the handshake, sends nothing, and reports whether the server closed the connection within
/// `bound` (reading whatever it sends first, such as HTTP/2's SETTINGS).
fn closed_after_a_silent_handshake(port: u16, ca_pem: &str, alpn: &[u8], bound: Duration) -> bool {
    use rustls::pki_types::pem::PemObject;
    use std::io::Read;
    aerie::tls::install_ring_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("ca"))
        .expect("root");
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut client =
        rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("client");
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    socket.set_read_timeout(Some(bound)).expect("timeout");
    while client.is_handshaking() {
        client.complete_io(&mut socket).expect("handshake");
    }
    assert_eq!(
        client.alpn_protocol(),
        Some(alpn),
        "ALPN chose the protocol"
    );
    let mut stream = rustls::Stream::new(&mut client, &mut socket);
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(error) => {
                return !matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    }
}

/// A client that completes the TLS handshake and then sends nothing is closed after the
/// header-read timeout, over HTTP/1.1 and HTTP/2 alike (the bound, 20 s, is far above the
/// configured 1 s; it only keeps a failing test from hanging).
#[tokio::test]
async fn a_silent_client_after_the_tls_handshake_is_closed_over_h1_and_h2() {
    let tls = spawn_tls(&[("AERIE_HEADER_READ_TIMEOUT_SECS", "1")]).await;
    let port: u16 = tls
        .app
        .address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    for alpn in [b"h2".as_slice(), b"http/1.1".as_slice()] {
        let ca = tls.ca_pem.clone();
        let closed = tokio::task::spawn_blocking(move || {
            closed_after_a_silent_handshake(port, &ca, alpn, Duration::from_secs(20))
        })
        .await
        .expect("client thread");
        assert!(closed, "{}: still open", String::from_utf8_lossy(alpn));
    }
    // Served normally meanwhile.
    let reply = client_trusting(&tls.ca_pem)
        .get(https_url(&tls.app, "/api/tags"))
        .send()
        .await
        .expect("served");
    assert_eq!(reply.status(), StatusCode::OK);
}

/// HTTP/2 gets HTTP/1.1's header bounds: more than `AERIE_MAX_HEADERS` fields, or a header
/// list over `AERIE_MAX_HEADER_BYTES`, is a 431, over h2 as over h1 (both over TLS).
#[tokio::test]
async fn too_many_or_too_large_headers_are_431_over_h2_as_over_h1() {
    let tls = spawn_tls(&[]).await;
    let builder = || {
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(tls.ca_pem.as_bytes()).expect("ca parses"),
            )
            .timeout(Duration::from_secs(10))
    };
    let h2 = builder().http2_prior_knowledge().build().expect("client");
    let h1 = builder().http1_only().build().expect("client");
    for (client, version) in [
        (&h2, reqwest::Version::HTTP_2),
        (&h1, reqwest::Version::HTTP_11),
    ] {
        let url = https_url(&tls.app, "/api/tags");
        let fine = client.get(&url).send().await.expect("sent");
        assert_eq!(fine.status(), StatusCode::OK, "{version:?}");
        assert_eq!(fine.version(), version);
        let mut many = client.get(&url);
        for i in 0..100 {
            many = many.header(format!("x-h{i}"), "v");
        }
        let many = many.send().await.expect("sent");
        assert_eq!(
            many.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "100 headers over {version:?}"
        );
        let large = client
            .get(&url)
            .header("x-bomb", "a".repeat(40 * 1024))
            .send()
            .await
            .expect("sent");
        assert_eq!(
            large.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "40 KB header over {version:?}"
        );
    }
}

/// The HTTPS listener has the plain one's connection caps: past
/// `AERIE_MAX_CONNECTIONS_PER_ADDRESS`, a connection is closed at accept, before any TLS.
#[tokio::test]
async fn the_https_listener_caps_connections_per_address() {
    use tokio::io::AsyncReadExt;
    let tls = spawn_tls(&[
        ("AERIE_MAX_CONNECTIONS_PER_ADDRESS", "2"),
        ("AERIE_HEADER_READ_TIMEOUT_SECS", "60"),
    ])
    .await;
    let address = tls.app.address.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(
            tokio::net::TcpStream::connect(&address)
                .await
                .expect("connect"),
        );
    }
    let mut extra = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(10), extra.read(&mut byte)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "a third connection from one address was kept: {read:?}"
    );
    drop(held);
}
