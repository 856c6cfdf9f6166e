//! Production defaults (issue 24 item 3; asvs.md 41, 42, 46): the real binary started with
//! `AERIE_ENV=production` and nothing else but what an operator must provide (database URL,
//! key files, certificate, CORS origins), so every other setting is production's default.
//! It hides the API documents and the metrics, logs JSON, never migrates on its own, never
//! generates a key, and refuses plain HTTP. `aerie doctor` judges the same deployment.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;

use crate::common::{ServerProcess, refused_to_start, run_to_exit, start_server};

/// What an operator prepares before starting production: a signing key, an audit key, the
/// data keys and a certificate (each mode 0600), and a database URL. The database starts empty.
pub(crate) struct Deployment {
    dir: tempfile::TempDir,
    database: PathBuf,
    database_url: String,
    signing_key: String,
    audit_key: String,
    data_keys: String,
    cert: String,
    tls_key: String,
    ca_pem: String,
    data_dir: String,
}

impl Deployment {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = |name: &str| dir.path().join(name);
        let signing_key = path("signing-key.pem");
        aerie::auth::keys::SigningKey::load_or_generate(&signing_key, true).expect("signing key");
        let audit_key = path("audit-key");
        aerie::audit::AuditKeys::load_or_generate(&audit_key, true).expect("audit key");
        let data_keys = path("data-keys");
        aerie::field_keys::KeyFile::fresh()
            .create(&data_keys)
            .expect("data keys");
        let files = aerie::tls::write_dev_certificate(&path("tls")).expect("certificate");
        let ca_pem = std::fs::read_to_string(path("tls").join("ca.pem")).expect("ca");
        let database = path("aerie.db");
        Self {
            database_url: format!("sqlite://{}?mode=rwc", database.display()),
            database,
            signing_key: signing_key.display().to_string(),
            audit_key: audit_key.display().to_string(),
            data_keys: data_keys.display().to_string(),
            cert: files.cert.display().to_string(),
            tls_key: files.key.display().to_string(),
            ca_pem,
            // Where development would put generated keys: production must leave it alone.
            data_dir: path("data").display().to_string(),
            dir,
        }
    }

    /// The folder holding the key files and the database.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The active signing key's file (its previous keys are in `<file>.previous`).
    pub(crate) fn signing_key(&self) -> PathBuf {
        PathBuf::from(&self.signing_key)
    }

    /// Takes over another deployment's signing keys (to serve a database whose instances
    /// published theirs).
    pub(crate) fn adopt_signing_key(&self, key: &Path) {
        std::fs::copy(key, &self.signing_key).expect("signing key copied");
    }

    /// Takes over another deployment's audit key ring (to serve a database it sealed).
    pub(crate) fn adopt_audit_key(&self, ring: &Path) {
        std::fs::copy(ring, &self.audit_key).expect("audit key copied");
    }

    /// The production environment, without the settings named in `left_out`.
    pub(crate) fn settings(&self, left_out: &[&str]) -> Vec<(&str, &str)> {
        [
            ("AERIE_ENV", "production"),
            ("AERIE_LISTEN", "127.0.0.1:0"),
            ("AERIE_DATA_DIR", self.data_dir.as_str()),
            ("AERIE_DATABASE_URL", self.database_url.as_str()),
            ("AERIE_SIGNING_KEY_FILE", self.signing_key.as_str()),
            ("AERIE_AUDIT_KEY_FILE", self.audit_key.as_str()),
            ("AERIE_DATA_KEYS_FILE", self.data_keys.as_str()),
            ("AERIE_TLS_CERT", self.cert.as_str()),
            ("AERIE_TLS_KEY", self.tls_key.as_str()),
            ("AERIE_CORS_ORIGINS", "none"),
        ]
        .into_iter()
        .filter(|(name, _)| !left_out.contains(name))
        .collect()
    }

    /// `aerie migrate`, the deployment step production requires.
    pub(crate) async fn migrate(&self) {
        let output = run_to_exit(self.dir.path(), &["migrate"], &self.settings(&[])).await;
        assert!(output.status.success(), "{}", stderr(&output));
    }

    pub(crate) async fn start(&self) -> ServerProcess {
        start_server(tempfile::tempdir().expect("tempdir"), &self.settings(&[])).await
    }

    /// `aerie serve` with `settings`, expected to refuse to start: its standard error.
    pub(crate) async fn refused(&self, settings: &[(&str, &str)]) -> String {
        refused_to_start(self.dir.path(), settings).await
    }

    pub(crate) fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("ca parses"),
            )
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client")
    }
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The tables of an SQLite database file, read without changing it.
async fn tables_of(database: &Path) -> Vec<String> {
    let url = format!("sqlite://{}?mode=ro", database.display());
    let pool = sqlx::SqlitePool::connect(&url)
        .await
        .expect("open read-only");
    let tables = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
        .fetch_all(&pool)
        .await
        .expect("sqlite_master");
    pool.close().await;
    tables
}

/// The API documents and the metrics are not served, and every log line is JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_hides_api_docs_and_metrics_and_logs_json() {
    let deployment = Deployment::new();
    deployment.migrate().await;
    let server = deployment.start().await;
    let client = deployment.client();

    let health = client
        .get(server.https("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), StatusCode::OK, "the server does serve");
    for path in ["/openapi.json", "/docs", "/metrics"] {
        let reply = client.get(server.https(path)).send().await.expect(path);
        assert_eq!(reply.status(), StatusCode::NOT_FOUND, "{path}");
    }

    let lines = server.stop().await;
    assert!(
        lines.iter().any(|l| l.contains("\"response\"")),
        "one line per request: {lines:?}"
    );
    for line in &lines {
        let parsed = serde_json::from_str::<serde_json::Value>(line);
        assert!(
            parsed.is_ok_and(|v| v.is_object()),
            "not a JSON log line: {line:?}"
        );
    }
}

/// Without a certificate (or a named TLS proxy) production does not start; with one, the port
/// gives no HTTP answer over plain HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_refuses_plain_http() {
    let deployment = Deployment::new();
    deployment.migrate().await;
    let refusal = deployment
        .refused(&deployment.settings(&["AERIE_TLS_CERT", "AERIE_TLS_KEY"]))
        .await;
    assert!(
        refusal.contains("AERIE_TLS_CERT: production refuses plain HTTP"),
        "{refusal}"
    );

    let server = deployment.start().await;
    let plain = reqwest::Client::new()
        .get(server.http("/api/tags"))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(
        plain.is_err(),
        "answered plain HTTP: {:?}",
        plain.map(|r| r.status())
    );
    drop(server);
}

/// A missing key is never generated: unset, the setting is named; set to a file that does
/// not exist, the start fails naming the file, and no key appears there or in the data folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_never_generates_keys() {
    let deployment = Deployment::new();
    deployment.migrate().await;
    for setting in [
        "AERIE_SIGNING_KEY_FILE",
        "AERIE_AUDIT_KEY_FILE",
        "AERIE_DATA_KEYS_FILE",
    ] {
        let refusal = deployment.refused(&deployment.settings(&[setting])).await;
        assert!(
            refusal.contains(&format!("{setting}: required in production")),
            "{refusal}"
        );
    }

    let missing = deployment.dir.path().join("absent").join("key");
    let missing_path = missing.display().to_string();
    for setting in [
        "AERIE_SIGNING_KEY_FILE",
        "AERIE_AUDIT_KEY_FILE",
        "AERIE_DATA_KEYS_FILE",
    ] {
        let mut settings = deployment.settings(&[setting]);
        settings.push((setting, missing_path.as_str()));
        let refusal = deployment.refused(&settings).await;
        assert!(refusal.contains(&missing_path), "{setting}: {refusal}");
        assert!(!missing.exists(), "{setting}: a key was generated");
    }
    assert!(
        !Path::new(&deployment.data_dir).exists(),
        "production wrote into the data folder"
    );
}

/// An instance given another audit key than the one that sealed the chain refuses to start:
/// it would append rows under the wrong key, and the chain would fail verification from
/// there on. Refused too: the ring from before a rotation, which lacks the key the chain
/// moved to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_refuses_an_audit_key_that_did_not_seal_the_chain() {
    let deployment = Deployment::new();
    deployment.migrate().await;
    let before_rotation = std::fs::read(&deployment.audit_key).expect("audit key");
    // The chain's first row: a rotation, sealed by the first key and naming a second.
    let rotated = run_to_exit(
        deployment.dir.path(),
        &["keys", "rotate-audit"],
        &deployment.settings(&[]),
    )
    .await;
    assert!(rotated.status.success(), "{}", stderr(&rotated));

    let other = deployment.dir.path().join("other-audit-key");
    aerie::audit::AuditKeys::load_or_generate(&other, true).expect("another key");
    let old_ring = deployment.dir.path().join("ring-before-rotation");
    aerie::keyfile::create(&old_ring, &before_rotation).expect("old ring");
    for file in [&other, &old_ring] {
        let path = file.display().to_string();
        let mut settings = deployment.settings(&["AERIE_AUDIT_KEY_FILE"]);
        settings.push(("AERIE_AUDIT_KEY_FILE", path.as_str()));
        let refusal = deployment.refused(&settings).await;
        assert!(
            refusal.contains("does not hold the key that sealed the audit chain's newest row"),
            "{path}: {refusal}"
        );
    }
    drop(deployment.start().await);
}

/// An unmigrated database stays untouched: the start fails saying to run `aerie migrate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_never_migrates_on_its_own() {
    let deployment = Deployment::new();
    let refusal = deployment.refused(&deployment.settings(&[])).await;
    assert!(refusal.contains("run `aerie migrate` first"), "{refusal}");
    assert_eq!(tables_of(&deployment.database).await, Vec::<String>::new());

    deployment.migrate().await;
    assert!(
        tables_of(&deployment.database)
            .await
            .contains(&"users".to_owned())
    );
    drop(deployment.start().await);
}

/// `aerie doctor` finds nothing to change in this deployment; in development it names
/// `AERIE_ENV` and what production would refuse. It prints the advisory snapshot either way,
/// and creates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_judges_the_configuration_against_the_production_rules() {
    let deployment = Deployment::new();
    let clean = run_to_exit(
        deployment.dir.path(),
        &["doctor"],
        &deployment.settings(&[]),
    )
    .await;
    let report = String::from_utf8_lossy(&clean.stdout);
    assert!(clean.status.success(), "{report}{}", stderr(&clean));
    assert!(report.starts_with("advisory database: "), "{report}");
    assert!(report.contains("no findings"), "{report}");

    let mut docs_on = deployment.settings(&[]);
    docs_on.push(("AERIE_EXPOSE_API_DOCS", "true"));
    let flagged = run_to_exit(deployment.dir.path(), &["doctor"], &docs_on).await;
    let report = String::from_utf8_lossy(&flagged.stdout);
    assert_eq!(flagged.status.code(), Some(1), "{report}");
    assert!(report.contains("  AERIE_EXPOSE_API_DOCS: "), "{report}");

    let development = [("AERIE_DATA_DIR", deployment.data_dir.as_str())];
    let dev = run_to_exit(deployment.dir.path(), &["doctor"], &development).await;
    let report = String::from_utf8_lossy(&dev.stdout);
    assert_eq!(dev.status.code(), Some(1), "{report}");
    assert!(report.contains("  AERIE_ENV: development mode"), "{report}");
    assert!(
        report.contains(
            "  AERIE_DATABASE_URL: production would refuse to start: configuration: AERIE_DATABASE_URL: required in production"
        ),
        "{report}"
    );
    assert!(
        !Path::new(&deployment.data_dir).exists(),
        "doctor created files"
    );
    assert!(!deployment.database.exists(), "doctor opened the database");
}

/// `aerie doctor --live` checks what the settings point at: a database that lacks this
/// build's migrations, a key file that does not load although its mode is right, an audit key
/// that did not seal the chain, a Redis that does not answer; each finding names the setting
/// to change. Once they are fixed it finds nothing, and it never changes the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_live_checks_the_database_keys_and_redis_behind_the_settings() {
    let deployment = Deployment::new();
    let doctor = |settings: Vec<(&'static str, String)>| {
        let dir = deployment.dir.path().to_owned();
        let mut all: Vec<(String, String)> = deployment
            .settings(&[])
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        all.extend(settings.into_iter().map(|(k, v)| (k.to_owned(), v)));
        async move {
            let borrowed: Vec<(&str, &str)> =
                all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let output = run_to_exit(&dir, &["doctor", "--live"], &borrowed).await;
            let report = String::from_utf8_lossy(&output.stdout).into_owned();
            (output.status.code(), report)
        }
    };
    // The settings meet the rules, but the database was never migrated.
    let (code, report) = doctor(vec![]).await;
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report.contains("configuration: no findings")
            && report.contains("live checks: 1 finding(s)"),
        "{report}"
    );
    assert!(
        report.contains("  AERIE_DATABASE_URL: the database lacks ")
            && report.contains("run `aerie migrate`"),
        "{report}"
    );
    assert_eq!(
        tables_of(&deployment.database).await.len(),
        0,
        "doctor migrated"
    );

    deployment.migrate().await;
    drop(deployment.start().await);
    let (code, report) = doctor(vec![]).await;
    assert_eq!(code, Some(0), "{report}");
    assert!(report.contains("live checks: no findings"), "{report}");

    // A signing key file with the right mode that is not a key; an audit key ring that did
    // not seal this chain; a Redis where nothing listens.
    let broken = deployment.dir.path().join("not-a-key.pem");
    aerie::keyfile::create(&broken, b"not a key").expect("file");
    let other_ring = deployment.dir.path().join("other-audit-key");
    aerie::audit::AuditKeys::load_or_generate(&other_ring, true).expect("ring");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port();
    let (code, report) = doctor(vec![
        ("AERIE_SIGNING_KEY_FILE", broken.display().to_string()),
        ("AERIE_AUDIT_KEY_FILE", other_ring.display().to_string()),
        ("AERIE_REDIS_URL", format!("redis://127.0.0.1:{closed}")),
    ])
    .await;
    assert_eq!(code, Some(1), "{report}");
    let live = report
        .split("live checks: ")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let settings: Vec<&str> = live
        .lines()
        .skip(1)
        .filter_map(|line| line.trim_start().split(':').next())
        .collect();
    assert_eq!(
        settings,
        [
            "AERIE_SIGNING_KEY_FILE",
            "AERIE_AUDIT_KEY_FILE",
            "AERIE_REDIS_URL"
        ],
        "{report}"
    );
    assert!(
        live.contains("not a PKCS#8 PEM Ed25519 private key"),
        "{report}"
    );
    assert!(
        live.contains("does not hold the key that sealed"),
        "{report}"
    );
    assert!(live.contains("Redis does not answer"), "{report}");
}

/// A production deployment, started, with one account `name` registered over HTTPS; answers
/// the account's access token.
async fn started_with_an_account(name: &str) -> (Deployment, ServerProcess, String) {
    let deployment = Deployment::new();
    deployment.migrate().await;
    let server = deployment.start().await;
    let registered: serde_json::Value = deployment
        .client()
        .post(server.https("/api/users"))
        .json(&serde_json::json!({"user": {
            "username": name,
            "email": format!("{name}@example.com"),
            "password": "correct horse battery staple 42",
        }}))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("user");
    let token = registered["user"]["token"].as_str().expect("token");
    (deployment, server, token.to_owned())
}

/// Production without `AERIE_SMTP_URL` has no mail flows: their routes answer 404 `mail`
/// rather than take a token no mail could have carried, or queue mail nobody will send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_without_mail_answers_the_mail_routes_404() {
    let (deployment, server, token) = started_with_an_account("fern").await;
    let client = deployment.client();
    let a_token = "A".repeat(43);
    let calls = [
        (
            "/api/auth/password-reset",
            serde_json::json!({"email": "fern@example.com"}),
        ),
        (
            "/api/auth/password-reset/confirm",
            serde_json::json!({"token": a_token, "newPassword": "an entirely new passphrase 7"}),
        ),
        ("/api/auth/email/verify/resend", serde_json::json!({})),
        // Links mailed while mail was on are refused too.
        (
            "/api/auth/email/verify",
            serde_json::json!({"token": a_token}),
        ),
        (
            "/api/auth/email/confirm",
            serde_json::json!({"token": a_token}),
        ),
    ];
    for (path, body) in calls {
        let reply = client
            .post(server.https(path))
            .header("Authorization", format!("Token {token}"))
            .json(&body)
            .send()
            .await
            .expect("sent");
        assert_eq!(reply.status(), StatusCode::NOT_FOUND, "{path}");
        let body: serde_json::Value = reply.json().await.expect("error body");
        assert_eq!(body["errors"]["mail"][0], "not found", "{path}: {body}");
    }
}

/// Production without `AERIE_SMTP_URL` sends no mail, so a new email address cannot wait for
/// a confirmation link: it applies at once, after step-up, and the trail records it as
/// `email_changed` (an account takeover's first move, locking the owner out of resets). An
/// address saved unchanged records nothing, or the trail would cry wolf on every profile save.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_without_mail_applies_an_email_change_at_once_and_records_it() {
    let (deployment, server, token) = started_with_an_account("erin").await;
    let client = deployment.client();
    let update = async |user: serde_json::Value| {
        let reply = client
            .put(server.https("/api/user"))
            .header("Authorization", format!("Token {token}"))
            .json(&serde_json::json!({ "user": user }))
            .send()
            .await
            .expect("update");
        assert_eq!(reply.status(), StatusCode::OK);
        let body: serde_json::Value = reply.json().await.expect("user");
        body["user"]["email"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    // Changed, saved unchanged, changed again: two changes, so two records, whichever order
    // a broken comparison would swap.
    for (email, bio) in [
        ("erin.new@example.com", "first"),
        ("erin.new@example.com", "unchanged"),
        ("erin.third@example.com", "again"),
    ] {
        let saved = update(serde_json::json!({"email": email, "bio": bio})).await;
        assert_eq!(saved, email, "applied at once: no mail to confirm by");
    }
    drop(server);

    let export = run_to_exit(
        deployment.dir(),
        &["audit", "export", "--since", "2000-01-01T00:00:00Z"],
        &deployment.settings(&[]),
    )
    .await;
    assert!(export.status.success(), "{}", stderr(&export));
    let types: Vec<String> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|event| event["type"].as_str().map(str::to_owned))
        // The start's own record (the instance's signing keys) is not the account's.
        .filter(|kind| kind != "signing_keys_published")
        .collect();
    assert_eq!(
        types,
        ["user_registered", "email_changed", "email_changed"],
        "one record per change, none for the unchanged save"
    );
}
