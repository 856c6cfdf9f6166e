//! The incident-response runbook (docs/incident-response.md) is true (issue 24.6): every
//! `aerie` command it shows, in its code blocks and in its text, is read from the document
//! itself, its placeholders filled in, and run with the real binary against a test database;
//! each must succeed. `aerie user set-password`, the operator's password reset, is checked
//! for its effect: the new password logs in, the old one no longer does, the account's
//! sessions end and the trail names the operator; a weak password changes nothing.

use reqwest::StatusCode;

use crate::common::{
    PASSWORD, TestApp, aerie, assert_unauthorized, engine_tests, refresh, refresh_token_of,
    rows_of, run_aerie,
};

const RUNBOOK: &str = include_str!("../../../docs/incident-response.md");
const NEW_PASSWORD: &str = "a fresh operator-set passphrase 31";
/// Any time before the test: every row is after it.
const LONG_AGO: &str = "2000-01-01T00:00:00Z";

/// Every `aerie …` command of the runbook, in order of first appearance: the lines of its
/// code blocks (without comments, redirections and what follows `&&`) and its inline code.
fn runbook_commands() -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_block = false;
    for line in RUNBOOK.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block && line.trim_start().starts_with("aerie ") {
            commands.push(the_command(line));
        }
    }
    for (i, span) in RUNBOOK.split('`').enumerate() {
        if i % 2 == 1 && span.starts_with("aerie ") {
            commands.push(the_command(span));
        }
    }
    let mut seen = std::collections::HashSet::new();
    commands.retain(|command| seen.insert(command.clone()));
    commands
}

/// The `aerie` command of a shell line: without its comment, its output redirection and
/// what follows `&&`, on one line.
fn the_command(line: &str) -> String {
    let command = line.split(" #").next().unwrap_or_default();
    let command = command.split(" > ").next().unwrap_or_default();
    let command = command.split(" && ").next().unwrap_or_default();
    command.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The command's words with each `<placeholder>` (and the example checkpoint) filled in:
/// from `files` when a key of it is in the placeholder (`backup file`, …), else a user name,
/// the checkpoint or a time.
fn filled_in(command: &str, checkpoint: &str, files: &[(&str, &str)]) -> Vec<String> {
    let mut words = Vec::new();
    let mut placeholder: Option<String> = None;
    for word in command.split_whitespace() {
        if let Some(open) = placeholder.as_mut() {
            open.push(' ');
            open.push_str(word);
        } else if word.starts_with('<') {
            placeholder = Some(word.to_owned());
        } else if word.contains('…') {
            words.push(checkpoint.to_owned());
            continue;
        } else {
            words.push(word.to_owned());
            continue;
        }
        if let Some(open) = placeholder.take_if(|open| open.ends_with('>')) {
            let file = files.iter().find(|(key, _)| open.contains(key));
            words.push(match open.as_str() {
                _ if file.is_some() => file
                    .map(|(_, value)| (*value).to_owned())
                    .unwrap_or_default(),
                p if p.contains("checkpoint") || p.contains("SEQ:MAC") => checkpoint.to_owned(),
                p if p.contains("user") || p.contains("name") => "bob".to_owned(),
                _ => LONG_AGO.to_owned(),
            });
        }
    }
    words.remove(0); // "aerie"
    words
}

async fn every_account_and_session_command_of_the_runbook_works(app: TestApp) {
    app.register("bob").await;
    let commands = runbook_commands();
    for expected in [
        "aerie user set-password bob",
        "aerie user disable bob",
        "aerie sessions revoke --all",
        "aerie keys rotate",
        "aerie backup create --out <backup file> --recipient <age recipient>",
        "aerie backup verify <backup file> --identity <identity file>",
    ] {
        assert!(
            commands.iter().any(|c| c == expected),
            "{expected}: {commands:#?}"
        );
    }
    let verified = aerie(&app, "", &["audit", "verify"], "").await;
    let verified = String::from_utf8_lossy(&verified.stdout).into_owned();
    let checkpoint = verified
        .split("head ")
        .nth(1)
        .map(str::trim)
        .expect("verify names the chain's head")
        .to_owned();
    let stdin = format!("{NEW_PASSWORD}\n");
    let identity = age::x25519::Identity::generate();
    let identity_file = app.data_dir.path().join("backup-identity.txt");
    let secret = age::secrecy::ExposeSecret::expose_secret(&identity.to_string()).to_owned();
    aerie::keyfile::create(&identity_file, secret.as_bytes()).expect("identity file");
    let (identity_file, backup_file) = (
        identity_file.display().to_string(),
        app.data_dir
            .path()
            .join("runbook.age")
            .display()
            .to_string(),
    );
    let recipient = identity.to_public().to_string();
    let files = [
        ("backup file", backup_file.as_str()),
        ("identity file", identity_file.as_str()),
        ("age recipient", recipient.as_str()),
    ];
    let mut run = std::collections::HashSet::new();
    for command in &commands {
        let words = filled_in(command, &checkpoint, &files);
        if !run.insert(words.clone()) {
            continue;
        }
        let args: Vec<&str> = words.iter().map(String::as_str).collect();
        aerie(&app, "", &args, &stdin).await;
    }

    app.login("bob@example.com", NEW_PASSWORD)
        .await
        .assert_status(StatusCode::OK);
    app.login("bob@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    let changed = rows_of(&app, "password_changed").await;
    assert_eq!(changed.len(), 1);
    assert!(
        changed[0].detail.contains("\"osUser\":\"ops-alice\""),
        "{}",
        changed[0].detail
    );
}

async fn a_weak_password_from_the_cli_is_refused_and_changes_nothing(app: TestApp) {
    let token = app.register("bob").await;
    let weak = run_aerie(&app, "", &["user", "set-password", "bob"], "password\n").await;
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("password"));
    let unknown = run_aerie(&app, "", &["user", "set-password", "nobody"], "x\n").await;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no user named 'nobody'"));
    assert!(rows_of(&app, "password_changed").await.is_empty());
    assert_eq!(
        app.get("/api/articles/feed", Some(&token)).await.status,
        StatusCode::OK,
        "a refused reset ends no session"
    );
    app.login("bob@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::OK);
}

async fn a_password_set_from_the_cli_ends_the_accounts_sessions(app: TestApp) {
    let bob = app.register_user("bob").await;
    let stdin = format!("{NEW_PASSWORD}\n");
    let output = aerie(&app, "", &["user", "set-password", "bob"], &stdin).await;
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("1 session(s) revoked"),
        "{output:?}"
    );
    assert_unauthorized(
        &refresh(&app, &refresh_token_of(&bob)).await,
        "refresh after the reset",
    );
}

engine_tests!(
    every_account_and_session_command_of_the_runbook_works,
    a_password_set_from_the_cli_ends_the_accounts_sessions,
    a_weak_password_from_the_cli_is_refused_and_changes_nothing,
);
