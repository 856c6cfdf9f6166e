//! Redis as people deploy it (issue 18 item 4), black-box: `rediss://` with the server's
//! certificate verified against a private CA (`AERIE_REDIS_CA_FILE`), an ACL user whose
//! password comes from a private file (`AERIE_REDIS_PASSWORD_FILE`). Each test starts its own
//! `redis-server` with TLS only, on a free loopback port and in its own temporary folder, and
//! kills it by its PID when done; without `redis-server` (or one built without TLS) the tests
//! say loudly that they were skipped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Engine, TestApp, refused_to_start};

const LOGIN: &str = "/api/users/login";
const PASSWORD: &str = "correct horse battery staple";

/// A `redis-server` of this test's own: TLS only (no plain port), certificate for
/// `localhost`/`127.0.0.1` from a fresh CA, one ACL user `aerie` limited to `redis:*` keys
/// and the default user switched off. Dropped, it is killed (by PID) and its folder removed.
struct TlsRedis {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl TlsRedis {
    /// `None` (and a loud line) when `redis-server` is missing or has no TLS.
    fn start(test: &str) -> Option<Self> {
        let version = Command::new("redis-server").arg("--version").output();
        if version.is_err() {
            eprintln!("SKIPPED {test}: redis-server is not installed; rediss:// not tested");
            return None;
        }
        let dir = tempfile::tempdir().expect("temporary folder");
        let certificate = aerie::tls::generate_dev_certificate().expect("test CA");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            path
        };
        let cert = write("redis.crt", &certificate.cert_pem);
        let key = write("redis.key", &certificate.key_pem);
        write("ca.pem", &certificate.ca_pem);
        let port = free_port();
        let mut child = Command::new("redis-server")
            .args(["--port", "0", "--bind", "127.0.0.1"])
            .args(["--tls-port", &port.to_string()])
            .arg("--tls-cert-file")
            .arg(&cert)
            .arg("--tls-key-file")
            .arg(&key)
            .args([
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            // The commands the rate limiter needs, on its own keys only (docs/deployment.md):
            // the scripts' own TIME, GET and SET are checked against the user too.
            .args([
                "--user",
                "aerie",
                "on",
                &format!(">{PASSWORD}"),
                "~redis:*",
                "+@connection",
                "+evalsha",
                "+eval",
                "+script|load",
                "+get",
                "+set",
                "+time",
            ])
            .args(["--user", "default", "off"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start redis-server");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut output = String::new();
                if let Some(mut stderr) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut stderr, &mut output);
                }
                if output.contains("tls") || output.contains("TLS") {
                    eprintln!(
                        "SKIPPED {test}: redis-server has no TLS ({status}): {output}; rediss:// not tested"
                    );
                    return None;
                }
                panic!("redis-server exited ({status}): {output}");
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not listen on {port} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self { child, port, dir })
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn url(&self, user: &str) -> String {
        format!("rediss://{user}@localhost:{}", self.port)
    }

    /// A private (0600) file holding `password`, as a secrets manager would provide it.
    fn password_file(&self, name: &str, password: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        aerie::keyfile::create(&path, format!("{password}\n").as_bytes()).expect("password file");
        path
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        // Our own child, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// A prefix of this run's own, under the `redis:` keys the ACL above allows (the server is
/// this test's alone, so no other run shares it).
fn prefix() -> String {
    format!("redis:{}:", uuid::Uuid::new_v4().simple())
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

async fn wrong_login(app: &TestApp) -> StatusCode {
    app.post(
        LOGIN,
        None,
        json!({"user": {"email": "victim@example.com", "password": "not the password 123"}}),
    )
    .await
    .status
}

/// `aerie serve` with these settings in a fresh folder: it must refuse to start. Answers its
/// standard error.
async fn refused_start(settings: &[(&str, &str)]) -> String {
    let data = tempfile::tempdir().expect("temporary folder");
    let database = format!(
        "sqlite://{}?mode=rwc",
        data.path().join("aerie.db").display()
    );
    let data_dir = display(data.path());
    let mut all = vec![
        ("AERIE_LISTEN", "127.0.0.1:0"),
        ("AERIE_DATA_DIR", data_dir.as_str()),
        ("AERIE_DATABASE_URL", database.as_str()),
        ("AERIE_LOG_FORMAT", "json"),
    ];
    all.extend_from_slice(settings);
    refused_to_start(data.path(), &all).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_rediss_with_a_private_ca_and_an_acl_user_share_one_budget() {
    let Some(redis) = TlsRedis::start(
        "two_instances_on_rediss_with_a_private_ca_and_an_acl_user_share_one_budget",
    ) else {
        return;
    };
    let (url, ca) = (redis.url("aerie"), display(&redis.ca_file()));
    let password = display(&redis.password_file("redis-password", PASSWORD));
    let prefix = prefix();
    let settings = [
        ("AERIE_REDIS_URL", url.as_str()),
        ("AERIE_REDIS_CA_FILE", ca.as_str()),
        ("AERIE_REDIS_PASSWORD_FILE", password.as_str()),
        ("AERIE_REDIS_PREFIX", prefix.as_str()),
        // Fail closed: an answer below can only come from Redis, never from the fallback.
        ("AERIE_REDIS_FAILURE", "closed"),
        ("AERIE_REDIS_TIMEOUT_MS", "2000"),
        ("AERIE_RATE_LIMIT_LOGIN_IP", "4/3600"),
    ];
    let first = TestApp::spawn_with(Engine::Sqlite, &settings).await;
    let second = TestApp::spawn_with(Engine::Sqlite, &settings).await;
    for app in [&first, &second] {
        let ready = app.get("/readyz", None).await;
        assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
        assert_eq!(ready.body["redis"], "ok");
    }
    // Four guesses split across the two: on separate stores each would allow four.
    for attempt in 0..4 {
        let app = if attempt % 2 == 0 { &first } else { &second };
        assert_eq!(
            wrong_login(app).await,
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
    }
    for app in [&first, &second] {
        assert_eq!(wrong_login(app).await, StatusCode::TOO_MANY_REQUESTS);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_certificate_from_an_untrusted_ca_stops_the_start_with_the_setting_to_change() {
    let Some(redis) = TlsRedis::start(
        "a_redis_certificate_from_an_untrusted_ca_stops_the_start_with_the_setting_to_change",
    ) else {
        return;
    };
    let url = redis.url("aerie");
    let password = display(&redis.password_file("redis-password", PASSWORD));
    // Another CA than the one that issued the server's certificate.
    let other = aerie::tls::generate_dev_certificate().expect("another CA");
    let other_ca = redis.dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, other.ca_pem).expect("write");
    let other_ca = display(&other_ca);
    for ca in [Some(other_ca.as_str()), None] {
        // Without a CA file the system's roots are trusted, which do not hold the test CA.
        let mut settings = vec![
            ("AERIE_REDIS_URL", url.as_str()),
            ("AERIE_REDIS_PASSWORD_FILE", password.as_str()),
        ];
        if let Some(ca) = ca {
            settings.push(("AERIE_REDIS_CA_FILE", ca));
        }
        let stderr = refused_start(&settings).await;
        assert!(
            stderr.contains("AERIE_REDIS_URL: the Redis server's TLS certificate was refused")
                && stderr.contains("invalid peer certificate")
                && stderr.contains("AERIE_REDIS_CA_FILE"),
            "{ca:?}: {stderr}"
        );
        assert!(!stderr.contains(PASSWORD), "{stderr}");
    }
    // `#insecure`, the client's switch for not verifying, is refused outright.
    let insecure = format!("{url}/#insecure");
    let stderr = refused_start(&[("AERIE_REDIS_URL", insecure.as_str())]).await;
    assert!(
        stderr.contains("AERIE_REDIS_URL") && stderr.contains("always verified"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_redis_password_stops_the_start_and_is_never_printed() {
    let Some(redis) =
        TlsRedis::start("a_wrong_redis_password_stops_the_start_and_is_never_printed")
    else {
        return;
    };
    let (url, ca) = (redis.url("aerie"), display(&redis.ca_file()));
    let wrong = "wrong-password-hunter2";
    let wrong_file = display(&redis.password_file("wrong-password", wrong));
    let stderr = refused_start(&[
        ("AERIE_REDIS_URL", url.as_str()),
        ("AERIE_REDIS_CA_FILE", ca.as_str()),
        ("AERIE_REDIS_PASSWORD_FILE", wrong_file.as_str()),
    ])
    .await;
    assert!(
        stderr.contains("AERIE_REDIS_URL: Redis refused the credentials")
            && stderr.contains("AERIE_REDIS_PASSWORD_FILE"),
        "{stderr}"
    );
    assert!(!stderr.contains(wrong), "{stderr}");
    // No password at all: the default user is off, so Redis says NOAUTH.
    let anonymous = format!("rediss://localhost:{}", redis.port);
    let stderr = refused_start(&[
        ("AERIE_REDIS_URL", anonymous.as_str()),
        ("AERIE_REDIS_CA_FILE", ca.as_str()),
    ])
    .await;
    assert!(stderr.contains("Redis refused the credentials"), "{stderr}");
    // A password file others can read is refused before anything is sent.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let exposed = redis.password_file("exposed-password", PASSWORD);
        std::fs::set_permissions(&exposed, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let exposed = display(&exposed);
        let stderr = refused_start(&[
            ("AERIE_REDIS_URL", url.as_str()),
            ("AERIE_REDIS_CA_FILE", ca.as_str()),
            ("AERIE_REDIS_PASSWORD_FILE", exposed.as_str()),
        ])
        .await;
        assert!(
            stderr.contains("AERIE_REDIS_PASSWORD_FILE") && stderr.contains("chmod 600"),
            "{stderr}"
        );
        assert!(!stderr.contains(PASSWORD), "{stderr}");
    }
}
