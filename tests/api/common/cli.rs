//! Runs the real `aerie` binary against a test server's database and data folder, as an
//! operator at the command line would.

use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::TestApp;

/// Runs `aerie args…` as the OS user `ops-alice`, alerts to `webhook` (none when empty), with
/// `stdin` on its standard input; returns its output whether it succeeded or not.
pub async fn run_aerie(app: &TestApp, webhook: &str, args: &[&str], stdin: &str) -> Output {
    let alerts: &[(&str, &str)] = if webhook.is_empty() {
        &[]
    } else {
        &[("AERIE_ALERT_WEBHOOK", webhook)]
    };
    run_aerie_with(app, alerts, args, stdin).await
}

/// [`run_aerie`] with extra settings, which win over the test's own (another
/// `AERIE_DATABASE_URL`, say).
pub async fn run_aerie_with(
    app: &TestApp,
    settings: &[(&str, &str)],
    args: &[&str],
    stdin: &str,
) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_aerie"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    let mut child = command
        .args(args)
        .env("USER", "ops-alice")
        .env("AERIE_DATABASE_URL", &app.database_url)
        .env("AERIE_DATA_DIR", app.data_dir.path())
        .env("AERIE_LOG_FORMAT", "json")
        .envs(settings.iter().copied())
        .current_dir(app.data_dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run aerie");
    let mut input = child.stdin.take().expect("piped stdin");
    // A command that reads no input may exit before it is written.
    if let Err(error) = input.write_all(stdin.as_bytes()).await {
        assert_eq!(
            error.kind(),
            std::io::ErrorKind::BrokenPipe,
            "stdin: {error}"
        );
    }
    drop(input);
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the command finished")
        .expect("output")
}

/// [`run_aerie`], asserting that the command succeeded.
pub async fn aerie(app: &TestApp, webhook: &str, args: &[&str], stdin: &str) -> Output {
    let output = run_aerie(app, webhook, args, stdin).await;
    assert!(
        output.status.success(),
        "aerie {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
