//! Account administration from the command line (issue 13.2): `aerie user create --role
//! admin`, `user set-role`, `user disable/enable` and `sessions revoke` each leave an audit
//! event naming the CLI and the OS user who ran it, an admin grant raises the same alert as
//! through the API, and the chain still verifies.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use super::alerts::receiver;
use crate::common::{PASSWORD, TestApp, aerie, engine_tests, token_of};

async fn minting_an_admin_from_the_cli_is_audited_and_alerts(app: TestApp) {
    let (webhook, mut alerts) = receiver(0).await;
    let run = |args: &'static [&'static str]| aerie(&app, &webhook, args, "");
    let password_line = format!("{PASSWORD}\n");
    aerie(
        &app,
        &webhook,
        &[
            "user",
            "create",
            "--username",
            "root2",
            "--email",
            "root2@example.com",
            "--role",
            "admin",
        ],
        &password_line,
    )
    .await;
    app.register("target").await;
    run(&["user", "set-role", "target", "editor"]).await;
    run(&["user", "disable", "target"]).await;
    run(&["user", "enable", "target"]).await;
    run(&["sessions", "revoke", "--user", "target"]).await;
    run(&["sessions", "revoke", "--all"]).await;
    run(&["user", "set-role", "target", "admin"]).await;

    let export = run(&["audit", "export", "--since", "2000-01-01T00:00:00Z"]).await;
    let events: Vec<Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    let by_cli: Vec<&Value> = events
        .iter()
        .filter(|e| e["detail"]["by"] == "cli")
        .collect();
    let kinds: Vec<&str> = by_cli.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "user_registered",
            "role_changed",
            "user_disabled",
            "user_enabled",
            "session_revoked",
            "session_revoked",
            "role_changed",
        ],
        "{events:#?}"
    );
    for event in &by_cli {
        assert_eq!(event["detail"]["osUser"], "ops-alice", "{event}");
        assert!(event["detail"]["uid"].is_u64(), "{event}");
        assert!(event["actor"].is_null(), "no account acted: {event}");
    }
    let created = by_cli[0];
    assert_eq!(created["detail"]["role"], "admin", "{created}");
    assert!(created["subject"].is_number(), "{created}");
    assert_eq!(by_cli[1]["detail"]["to"], "editor");
    assert_eq!(by_cli[4]["detail"]["scope"], "all");
    assert!(by_cli[4]["subject"].is_number());
    assert_eq!(by_cli[5]["detail"]["scope"], "everyone");
    assert_eq!(by_cli[6]["detail"]["to"], "admin");

    // Both admin grants (the creation and the role change) reached the webhook.
    for _ in 0..2 {
        let alert = tokio::time::timeout(Duration::from_secs(10), alerts.recv())
            .await
            .expect("an admin grant alerts the webhook before the command exits")
            .expect("receiver open");
        assert_eq!(alert["rule"], "admin_role_granted", "{alert}");
    }

    let verify = run(&["audit", "verify"]).await;
    let verdict = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verdict.contains(&format!("intact: {} rows", events.len())),
        "{verdict}"
    );

    // The account holds the role it was created with, not only an event saying so.
    let root = token_of(&app.login_user("root2").await);
    let admin_only = app.get("/api/admin/users", Some(&root)).await;
    assert_eq!(admin_only.status, StatusCode::OK, "{}", admin_only.body);
}

engine_tests!(minting_an_admin_from_the_cli_is_audited_and_alerts);
