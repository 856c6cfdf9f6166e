//! Pebble, Let's Encrypt's test ACME server (Debian package `pebble`), on loopback: a config
//! file written per test (random free ports; challenge validation pointed at the server's
//! own ports), its HTTPS listener on a certificate from a CA generated here (the Debian
//! package ships none), and the issuing root read from its management interface.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Whether `pebble` is on the PATH; prints SKIPPED (the test then passes) when it is not.
pub fn pebble_installed(test: &str) -> bool {
    let found = std::process::Command::new("pebble")
        .arg("-h")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!(
            "SKIPPED {test}: pebble is not installed (apt-get install pebble); ACME not tested"
        );
    }
    found
}

/// A free loopback port (bound, then released for the service that takes it).
pub(super) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Where a Pebble will listen, chosen before the server under test boots (it needs the
/// directory URL in its settings); [`PebblePorts::start`] starts it once that server's ports
/// are known.
pub struct PebblePorts {
    pub listen: u16,
    pub management: u16,
    dir: tempfile::TempDir,
    /// The CA of Pebble's own HTTPS certificate: what the server under test trusts for the
    /// directory (`AERIE_ACME_DIRECTORY_ROOT`).
    pub tls_root: PathBuf,
    ca_pem: String,
}

pub struct Pebble {
    child: Option<tokio::process::Child>,
    pub ports: PebblePorts,
    config: PathBuf,
}

impl PebblePorts {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let generated = aerie::tls::generate_dev_certificate().expect("pebble certificate");
        std::fs::write(dir.path().join("cert.pem"), &generated.cert_pem).expect("cert");
        std::fs::write(dir.path().join("key.pem"), &generated.key_pem).expect("key");
        let tls_root = dir.path().join("ca.pem");
        std::fs::write(&tls_root, &generated.ca_pem).expect("ca");
        Self {
            listen: free_port(),
            management: free_port(),
            dir,
            tls_root,
            ca_pem: generated.ca_pem,
        }
    }

    pub fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.listen)
    }

    pub fn tls_root_path(&self) -> String {
        self.tls_root.display().to_string()
    }

    /// Starts Pebble validating TLS-ALPN-01 on `tls` and HTTP-01 on `http` (the redirect
    /// listener, or an unused port), issuing certificates valid `validity_secs`.
    pub async fn start(
        self,
        tls: SocketAddr,
        http: Option<SocketAddr>,
        validity_secs: u64,
    ) -> Pebble {
        let config = self.dir.path().join("pebble-config.json");
        let json = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{}", self.listen),
                "managementListenAddress": format!("127.0.0.1:{}", self.management),
                "certificate": self.dir.path().join("cert.pem"),
                "privateKey": self.dir.path().join("key.pem"),
                "httpPort": http.map_or_else(free_port, |a| a.port()),
                "tlsPort": tls.port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "certificateValidityPeriod": validity_secs,
            }
        });
        std::fs::write(&config, json.to_string()).expect("pebble config");
        let mut pebble = Pebble {
            child: None,
            ports: self,
            config,
        };
        pebble.resume().await;
        pebble
    }
}

impl Pebble {
    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.ports.ca_pem.as_bytes()).expect("ca"),
            )
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client")
    }

    /// Starts the process and waits until its directory answers.
    async fn resume(&mut self) {
        let child = tokio::process::Command::new("pebble")
            .arg("-config")
            .arg(&self.config)
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("pebble starts");
        self.child = Some(child);
        let client = self.client();
        for _ in 0..100 {
            if client
                .get(self.ports.directory())
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("pebble did not answer on {}", self.ports.directory());
    }

    /// The root that issues Pebble's certificates (regenerated each start).
    pub async fn issuing_root(&self) -> String {
        self.client()
            .get(format!(
                "https://127.0.0.1:{}/roots/0",
                self.ports.management
            ))
            .send()
            .await
            .expect("pebble management answers")
            .text()
            .await
            .expect("root PEM")
    }
}
