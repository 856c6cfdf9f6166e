//! The real `aerie serve` as a child process, for what only a whole process shows: its log
//! lines on standard error, its start-up refusals and exit codes, the defaults it takes from
//! an environment that holds nothing but the settings given.

use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A running `aerie serve`; dropped, it is killed.
pub struct ServerProcess {
    child: tokio::process::Child,
    /// `127.0.0.1:PORT`, from the JSON `listening` line.
    pub listening: String,
    lines: Arc<Mutex<Vec<String>>>,
    data: tempfile::TempDir,
}

/// An `aerie` command with nothing in its environment but `PATH` and `settings`, run in `dir`.
fn command(dir: &Path, args: &[&str], settings: &[(&str, &str)]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_aerie"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(settings.iter().copied())
        .current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Starts `aerie serve` on a fresh data folder with JSON debug logs and `settings` added,
/// for a test that reads what the server logged.
pub async fn start_logging_server(settings: &[(&str, &str)]) -> ServerProcess {
    let data = tempfile::tempdir().expect("tempdir");
    let data_dir = data.path().display().to_string();
    let mut all = vec![
        ("AERIE_LISTEN", "127.0.0.1:0"),
        ("AERIE_DATA_DIR", data_dir.as_str()),
        ("AERIE_LOG_FORMAT", "json"),
        ("AERIE_LOG", "debug"),
    ];
    all.extend_from_slice(settings);
    start_server(data, &all).await
}

/// Starts `aerie serve` in `data` with `settings`, and waits for the JSON log line that says
/// where it listens (so the server's log lines must be JSON). Panics with the server's
/// output if it exits first.
pub async fn start_server(data: tempfile::TempDir, settings: &[(&str, &str)]) -> ServerProcess {
    let mut child = command(data.path(), &["serve"], settings)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start aerie");
    let stderr = child.stderr.take().expect("piped stderr");
    let lines: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let (address_tx, address_rx) = tokio::sync::oneshot::channel();
    let collected = lines.clone();
    tokio::spawn(async move {
        let mut address_tx = Some(address_tx);
        let mut reader = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            if let Ok(value) = serde_json::from_str::<Value>(&line)
                && value["message"] == "listening"
                && let Some(tx) = address_tx.take()
            {
                let _ = tx.send(value["address"].as_str().unwrap_or_default().to_owned());
            }
            collected.lock().expect("lock").push(line);
        }
        // Standard error closed: the process ended before saying where it listens.
        drop(address_tx);
    });
    let listening = match tokio::time::timeout(Duration::from_secs(60), address_rx).await {
        Ok(Ok(address)) => address,
        outcome => panic!(
            "aerie serve did not log a JSON `listening` line ({}): {}",
            if outcome.is_err() {
                "timed out"
            } else {
                "it exited"
            },
            lines.lock().expect("lock").join("\n")
        ),
    };
    ServerProcess {
        child,
        listening,
        lines,
        data,
    }
}

/// Runs `aerie args…` in `dir` with `settings` to its end (at most 60 s; a server that
/// starts instead of refusing is killed and the test fails) and returns its output.
pub async fn run_to_exit(dir: &Path, args: &[&str], settings: &[(&str, &str)]) -> Output {
    run_within(dir, args, settings, Duration::from_secs(60)).await
}

/// How long `aerie serve` may take to refuse a start. A refusal comes before the server
/// listens, well under a second on an idle machine; one still running after this has
/// started, and the test says so rather than wait for the test runner's timeout (a mutant
/// that lets such a server start must fail the test, not hang it).
const REFUSAL_LIMIT: Duration = Duration::from_secs(20);

/// `aerie serve` with `settings` in `dir`, which must refuse to start: its standard error.
pub async fn refused_to_start(dir: &Path, settings: &[(&str, &str)]) -> String {
    let output = run_within(dir, &["serve"], settings, REFUSAL_LIMIT).await;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "started anyway: {stderr}");
    stderr
}

async fn run_within(
    dir: &Path,
    args: &[&str],
    settings: &[(&str, &str)],
    limit: Duration,
) -> Output {
    let child = command(dir, args, settings)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run aerie");
    tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("aerie {args:?} was still running after {limit:?}"))
        .expect("output")
}

impl ServerProcess {
    /// `http://127.0.0.1:PORT{path}`.
    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.listening)
    }

    /// `https://localhost:PORT{path}` (the name the development certificate is for).
    pub fn https(&self, path: &str) -> String {
        let port = self.listening.rsplit(':').next().expect("a port");
        format!("https://localhost:{port}{path}")
    }

    /// Waits up to `limit` for a logged line containing `needle`.
    pub async fn wait_for_line(&self, needle: &str, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if self
                .lines
                .lock()
                .expect("lock")
                .iter()
                .any(|l| l.contains(needle))
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// SIGKILL (`kill -9`): the process dies at once, with no chance to finish anything.
    /// Answers its data folder, for a restart on the same database and keys.
    pub async fn kill_hard(mut self) -> tempfile::TempDir {
        self.child.kill().await.expect("SIGKILL our own child");
        self.data
    }

    /// SIGTERM, then waits for the graceful exit and returns every line logged.
    pub async fn stop(self) -> Vec<String> {
        self.terminate();
        self.exited().await
    }

    /// Sends SIGTERM (the start of a graceful shutdown) and returns at once.
    pub fn terminate(&self) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits (at most 30 s) for the process to exit with success after [`Self::terminate`],
    /// and returns every line logged.
    pub async fn exited(mut self) -> Vec<String> {
        let exit = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("graceful exit")
            .expect("exit status");
        assert!(exit.success(), "{exit}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.lines.lock().expect("lock").clone()
    }

    /// The lines logged so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lock").clone()
    }
}
