//! Automatic certificates over ACME against Pebble, Let's Encrypt's test CA, with real
//! challenge validation on the server's own ports: first issuance, a handshake verified
//! against Pebble's issuing root, a renewal swapped into the running listener while a client
//! keeps its connection, a CA outage with recovery, and the safe failures (a domain that does
//! not point here, a cache folder open to others), and sslyze's verdict on the issued
//! certificate. Each test that needs Pebble says SKIPPED and passes when it is not installed.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{Engine, PebblePorts, TestApp, pebble_installed, rows_of, run_aerie_with};

/// Pebble's validity for the tests' certificates: a year (renewal due after ~243 days).
const YEAR_SECS: u64 = 365 * 86_400;

fn acme_settings(ports: &PebblePorts, domains: &str) -> Vec<(String, String)> {
    vec![
        ("AERIE_ACME_DOMAINS".into(), domains.into()),
        ("AERIE_ACME_CONTACT".into(), "ops@example.com".into()),
        ("AERIE_ACME_DIRECTORY".into(), ports.directory()),
        ("AERIE_ACME_DIRECTORY_ROOT".into(), ports.tls_root_path()),
        ("AERIE_ACME_CHECK_INTERVAL_SECS".into(), "1".into()),
        ("AERIE_METRICS_LISTEN".into(), "127.0.0.1:0".into()),
    ]
}

fn borrowed(settings: &[(String, String)]) -> Vec<(&str, &str)> {
    settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// A client that trusts only `root_pem` and reports the certificate each connection got.
fn client_trusting(root_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(root_pem.as_bytes()).expect("root"))
        .tls_info(true)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

fn https(app: &TestApp, path: &str) -> String {
    format!(
        "{}{path}",
        app.address.replace("http://127.0.0.1", "https://localhost")
    )
}

/// GETs `path` over HTTPS: the status, the JSON body and the certificate the connection got.
async fn get(client: &reqwest::Client, url: &str) -> Result<(StatusCode, Value, Vec<u8>), String> {
    let reply = client.get(url).send().await.map_err(|e| format!("{e:?}"))?;
    let certificate = reply
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate().map(<[u8]>::to_vec))
        .unwrap_or_default();
    let status = reply.status();
    let body = reply.json().await.unwrap_or(Value::Null);
    Ok((status, body, certificate))
}

/// Polls `/readyz` over HTTPS until a handshake verified against `root_pem` succeeds;
/// returns the served certificate.
async fn wait_until_served(app: &TestApp, root_pem: &str, within: Duration) -> Vec<u8> {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < within {
        // A fresh client each time: a new connection, so the newest certificate.
        match get(&client_trusting(root_pem), &https(app, "/readyz")).await {
            Ok((StatusCode::OK, body, certificate)) => {
                assert_eq!(body["certificate"], "ok", "{body}");
                return certificate;
            }
            Ok((status, body, _)) => last = format!("{status} {body}"),
            Err(error) => last = error,
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("no certificate served within {within:?}; last: {last}");
}

async fn wait_for_rows(
    app: &TestApp,
    event: &str,
    within: Duration,
) -> Vec<aerie::store::AuditRow> {
    let started = Instant::now();
    loop {
        let rows = rows_of(app, event).await;
        if !rows.is_empty() || started.elapsed() > within {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The certificate's expiry, as the metrics listener reports it.
async fn certificate_expiry(app: &TestApp) -> Option<f64> {
    let metrics = app.internal_metrics().await;
    metrics.get("aerie_tls_certificate_expiry_timestamp_seconds", &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_issues_a_certificate_that_verifies_against_the_ca_root() {
    if !pebble_installed("acme_issues_a_certificate_that_verifies_against_the_ca_root") {
        return;
    }
    let ports = PebblePorts::new();
    let mut settings = acme_settings(&ports, "localhost");
    // With the plain listener on, its HTTP-01 responder is mounted (TLS-ALPN-01 is still
    // the challenge used: Pebble offers it).
    settings.push(("AERIE_HTTP_REDIRECT_LISTEN".into(), "127.0.0.1:0".into()));
    settings.push(("AERIE_PUBLIC_URL".into(), "https://localhost".into()));
    let (app, pebble) = TestApp::spawn_then(Engine::Sqlite, &borrowed(&settings), |tls, http| {
        ports.start(tls, http, YEAR_SECS)
    })
    .await;
    let root = pebble.issuing_root().await;
    let certificate = wait_until_served(&app, &root, Duration::from_secs(60)).await;
    assert!(!certificate.is_empty());

    // The HTTP-01 responder answers only the tokens of a pending order: any other token is a
    // 404, and nothing of the request is reflected (no oracle, no injected content).
    let redirect = app.redirect_address.clone().expect("redirect listener");
    let probe = reqwest::get(format!(
        "{redirect}/.well-known/acme-challenge/not-a-pending-token"
    ))
    .await
    .expect("plain HTTP answers");
    assert_eq!(probe.status(), StatusCode::NOT_FOUND);
    let body = probe.text().await.unwrap_or_default();
    assert!(!body.contains("not-a-pending-token"), "{body}");

    // The API is served over it, verified against Pebble's root, and nobody else's.
    let (status, _, _) = get(&client_trusting(&root), &https(&app, "/api/tags"))
        .await
        .expect("verified handshake");
    assert_eq!(status, StatusCode::OK);
    let stranger = reqwest::Client::builder()
        .use_rustls_tls()
        .build()
        .expect("client");
    assert!(stranger.get(https(&app, "/api/tags")).send().await.is_err());

    // Cached privately: the folder 0700, the key and the account 0600.
    let cache = app.data_dir.path().join("acme");
    let mode = |file: &str| {
        std::fs::metadata(cache.join(file))
            .expect("cached")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(""), 0o700);
    assert_eq!(mode("key.pem"), 0o600);
    assert_eq!(mode("account.json"), 0o600);
    assert!(cache.join("cert.pem").exists());

    let issued = rows_of(&app, "certificate_issued").await;
    assert_eq!(issued.len(), 1, "{issued:?}");
    assert!(
        issued[0].detail.contains("\"renewal\":false"),
        "{}",
        issued[0].detail
    );
    assert!(!issued[0].detail.contains("PRIVATE KEY"));
    let expiry = certificate_expiry(&app).await.expect("expiry metric");
    let now = chrono::Utc::now().timestamp() as f64;
    assert!(expiry > now + 300.0 * 86_400.0, "expiry {expiry}");

    // `aerie doctor` says which certificate is cached, when it expires and when it renews.
    let doctor = run_aerie_with(&app, &borrowed(&settings), &["doctor"], "").await;
    let said = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        said.contains("ACME: localhost from https://127.0.0.1:")
            && said.contains("certificate for localhost expires")
            && said.contains("renewal due"),
        "{said}"
    );
    assert!(!said.contains("AERIE_ACME_CACHE"), "{said}");

    // sslyze judges the listener with the issued certificate as CI judges it with the
    // development one: Mozilla's intermediate configuration.
    sslyze_finds_it_compliant(&app, &root).await;
}

/// Runs sslyze (`--mozilla_config intermediate`) against the app's TLS listener, trusting
/// `root_pem`; skipped, said loudly, when sslyze is not installed (CI installs it).
async fn sslyze_finds_it_compliant(app: &TestApp, root_pem: &str) {
    let installed = tokio::process::Command::new("python3")
        .args(["-m", "sslyze", "--help"])
        .output()
        .await
        .is_ok_and(|output| output.status.success());
    if !installed {
        eprintln!("SKIPPED: sslyze on the ACME certificate needs `pip install sslyze`");
        return;
    }
    let root = app.data_dir.path().join("pebble-root.pem");
    std::fs::write(&root, root_pem).expect("root written");
    let target = app.address.replace("http://127.0.0.1", "localhost");
    let output = tokio::process::Command::new("python3")
        .args([
            "-m",
            "sslyze",
            "--mozilla_config",
            "intermediate",
            "--certinfo_ca_file",
        ])
        .arg(&root)
        .arg(&target)
        .output()
        .await
        .expect("sslyze runs");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains(&format!("{target}: OK - Compliant")),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_is_served_without_a_restart_while_a_connection_stays_open() {
    if !pebble_installed("a_renewal_is_served_without_a_restart_while_a_connection_stays_open") {
        return;
    }
    let ports = PebblePorts::new();
    let settings = acme_settings(&ports, "localhost");
    let (app, pebble) = TestApp::spawn_then(Engine::Sqlite, &borrowed(&settings), |tls, http| {
        ports.start(tls, http, YEAR_SECS)
    })
    .await;
    let root = pebble.issuing_root().await;
    let first = wait_until_served(&app, &root, Duration::from_secs(60)).await;
    let first_expiry = certificate_expiry(&app).await.expect("expiry");

    // One client keeps one connection busy throughout.
    let keeper = client_trusting(&root);
    let url = https(&app, "/api/tags");
    let (_, _, kept) = get(&keeper, &url).await.expect("kept connection");
    assert_eq!(kept, first);

    // Past two thirds of the lifetime (the injected clock): the renewal is due.
    app.clock.advance(Duration::from_secs(YEAR_SECS * 3 / 4));
    let started = Instant::now();
    let renewed = loop {
        let (status, _, seen) = get(&keeper, &url)
            .await
            .expect("the kept connection still serves");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(seen, first, "the kept connection was not dropped");
        if let Ok((_, _, fresh)) = get(&client_trusting(&root), &url).await
            && fresh != first
        {
            break fresh;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no renewal served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(!renewed.is_empty());
    let (status, _, seen) = get(&keeper, &url).await.expect("still open after the swap");
    assert_eq!((status, seen), (StatusCode::OK, first));

    let issued = rows_of(&app, "certificate_issued").await;
    assert_eq!(issued.len(), 2);
    assert!(
        issued[1].detail.contains("\"renewal\":true"),
        "{}",
        issued[1].detail
    );
    let second_expiry = certificate_expiry(&app).await.expect("expiry");
    assert!(
        second_expiry >= first_expiry,
        "{second_expiry} < {first_expiry}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_outage_refuses_handshakes_records_the_failure_and_recovers() {
    if !pebble_installed("a_ca_outage_refuses_handshakes_records_the_failure_and_recovers") {
        return;
    }
    let ports = PebblePorts::new();
    let settings = acme_settings(&ports, "localhost");
    // The CA is down when the server starts.
    let (app, (tls, http)) = TestApp::spawn_then(
        Engine::Sqlite,
        &borrowed(&settings),
        |tls, http| async move { (tls, http) },
    )
    .await;
    let failed = wait_for_rows(&app, "certificate_renewal_failed", Duration::from_secs(30)).await;
    assert!(!failed.is_empty(), "the failure is on the audit trail");
    assert!(
        failed[0].detail.contains("\"kind\":\"unreachable\""),
        "{}",
        failed[0].detail
    );
    // No certificate: the handshake is refused, and plain HTTP gets no API answer either.
    let refused = reqwest::Client::builder()
        .use_rustls_tls()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client")
        .get(https(&app, "/readyz"))
        .send()
        .await;
    assert!(refused.is_err(), "{refused:?}");
    let plain = app.client.get(app.url("/api/tags")).send().await;
    assert!(plain.map_or(true, |r| r.status() != StatusCode::OK));

    // The CA comes back: the next attempt (a jittered 8–12 s later) issues.
    let pebble = ports.start(tls, http, YEAR_SECS).await;
    let root = pebble.issuing_root().await;
    wait_until_served(&app, &root, Duration::from_secs(60)).await;
    assert_eq!(rows_of(&app, "certificate_issued").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_that_does_not_point_here_is_refused_by_the_ca_and_recorded() {
    if !pebble_installed("a_domain_that_does_not_point_here_is_refused_by_the_ca_and_recorded") {
        return;
    }
    let ports = PebblePorts::new();
    let settings = acme_settings(&ports, "aerie-elsewhere.invalid");
    let (app, _pebble) = TestApp::spawn_then(Engine::Sqlite, &borrowed(&settings), |tls, http| {
        ports.start(tls, http, YEAR_SECS)
    })
    .await;
    let failed = wait_for_rows(&app, "certificate_renewal_failed", Duration::from_secs(60)).await;
    assert!(!failed.is_empty(), "the refusal is on the audit trail");
    assert!(
        failed[0].detail.contains("\"kind\":\"refused\""),
        "{}",
        failed[0].detail
    );
    assert!(rows_of(&app, "certificate_issued").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_folder_open_to_others_is_refused_and_nothing_is_ordered() {
    let cache = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let cache_path = cache.path().display().to_string();
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &[
            ("AERIE_ACME_DOMAINS", "localhost"),
            ("AERIE_ACME_CONTACT", "ops@example.com"),
            ("AERIE_ACME_DIRECTORY", "https://127.0.0.1:9/dir"),
            ("AERIE_ACME_CACHE", &cache_path),
        ],
    )
    .await;
    let failed = wait_for_rows(&app, "certificate_renewal_failed", Duration::from_secs(30)).await;
    assert!(!failed.is_empty(), "the refusal is on the audit trail");
    assert!(
        failed[0].detail.contains("\"kind\":\"cache\""),
        "{}",
        failed[0].detail
    );
    assert!(
        failed[0].detail.contains("chmod 700"),
        "{}",
        failed[0].detail
    );
    assert!(
        std::fs::read_dir(cache.path())
            .expect("cache")
            .next()
            .is_none(),
        "nothing written into an open folder"
    );
    // Still up, still no plain HTTP on the TLS port.
    let plain = app.client.get(app.url("/api/tags")).send().await;
    assert!(plain.map_or(true, |r| r.status() != StatusCode::OK));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgresql_order_once_and_serve_the_same_certificate() {
    if !pebble_installed(
        "two_instances_on_one_postgresql_order_once_and_serve_the_same_certificate",
    ) || !crate::common::postgres_configured()
    {
        return;
    }
    let ports = PebblePorts::new();
    let settings = acme_settings(&ports, "localhost");
    // The CA is down while both start, so both are ready to order when it comes back.
    let (first, (tls, http)) = TestApp::spawn_then(
        Engine::Postgres,
        &borrowed(&settings),
        |tls, http| async move { (tls, http) },
    )
    .await;
    let (second, ()) = first
        .spawn_sibling_then(&borrowed(&settings), |_, _| async {})
        .await;
    // Pebble validates on the first instance's ports only, as if a load balancer sent every
    // validation there: whichever instance orders, the other must serve its answers.
    let pebble = ports.start(tls, http, YEAR_SECS).await;
    let root = pebble.issuing_root().await;
    let served_first = wait_until_served(&first, &root, Duration::from_secs(90)).await;
    let served_second = wait_until_served(&second, &root, Duration::from_secs(90)).await;
    assert_eq!(served_first, served_second, "one certificate for both");
    let issued = rows_of(&first, "certificate_issued").await;
    assert_eq!(issued.len(), 1, "ordered once: {issued:?}");
    // The database holds it sealed: no private key in clear.
    let stored = first.query_text("SELECT sealed FROM acme_state").await;
    assert!(!stored.is_empty());
    assert!(
        stored.iter().all(|value| !value.contains("PRIVATE KEY")),
        "{stored:?}"
    );
    // One order at a time: while one holds the lock, nobody else gets it.
    let store = first.store().await;
    let held = store.try_acme_lock().await.expect("lock").expect("free");
    assert!(
        store.try_acme_lock().await.expect("lock").is_none(),
        "held elsewhere"
    );
    held.release().await;
    let again = store.try_acme_lock().await.expect("lock");
    assert!(again.is_some(), "free once released");
    if let Some(lock) = again {
        lock.release().await;
    }
    store.close().await;
}
