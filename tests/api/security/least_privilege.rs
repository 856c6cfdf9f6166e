//! Least privilege on PostgreSQL (issue 16.3): `aerie db roles` splits a migrated database
//! between an owner role and an application role. The server runs as the application role
//! through real traffic, and that role cannot UPDATE, DELETE or TRUNCATE audit rows, switch
//! off the audit trigger, or ALTER, DROP or CREATE tables. In production the server refuses
//! to start as a superuser or as the owner. PostgreSQL only: SQLite has no roles.
//!
//! Roles belong to the whole cluster, which every test shares: the names are unique per run
//! and dropped at the end, whatever happens.

use sqlx::Connection as _;

use super::production_defaults::Deployment;
use crate::common::{
    Engine, TestApp, fresh_postgres_database, postgres_configured, run_aerie, run_to_exit,
    start_server,
};

/// Drops the test's roles when it ends (even by a failed assertion): whatever they own or
/// were granted in the test database goes first.
struct DropRoles {
    admin_url: String,
    roles: Vec<String>,
}

impl Drop for DropRoles {
    fn drop(&mut self) {
        let (url, roles) = (self.admin_url.clone(), self.roles.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("runtime");
            runtime.block_on(async move {
                let mut connection = sqlx::PgConnection::connect(&url).await.ok()?;
                for role in &roles {
                    for sql in [
                        format!("REASSIGN OWNED BY {role} TO CURRENT_USER"),
                        format!("DROP OWNED BY {role}"),
                        format!("DROP ROLE IF EXISTS {role}"),
                    ] {
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                            .execute(&mut connection)
                            .await;
                    }
                }
                Some(())
            })
        })
        .join();
        if dropped.ok().flatten().is_none() {
            eprintln!("could not drop the test roles {:?}", self.roles);
        }
    }
}

/// `admin_url` with another user and password.
fn url_as(admin_url: &str, user: &str, password: &str) -> String {
    let mut url = url::Url::parse(admin_url).expect("database URL");
    url.set_username(user).expect("user");
    url.set_password(Some(password)).expect("password");
    url.to_string()
}

fn output_text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The production deployment's settings on the database at `url`.
fn production<'a>(deployment: &'a Deployment, url: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut settings = deployment.settings(&["AERIE_DATABASE_URL"]);
    settings.push(("AERIE_DATABASE_URL", url));
    settings
}

/// The SQLSTATE of a refused statement.
fn code_of(error: &sqlx::Error) -> String {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned())
        .unwrap_or_else(|| format!("not a database error: {error}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_application_role_cannot_alter_the_audit_trail_or_the_schema() {
    if !postgres_configured() {
        return;
    }
    let admin = fresh_postgres_database().await;
    let suffix = rand::random::<u32>();
    let (owner, app_role) = (format!("aerie_own_{suffix}"), format!("aerie_app_{suffix}"));
    let _cleanup = DropRoles {
        admin_url: admin.clone(),
        roles: vec![app_role.clone(), owner.clone()],
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().display().to_string();
    let as_admin = [
        ("AERIE_DATABASE_URL", admin.as_str()),
        ("AERIE_DATA_DIR", data.as_str()),
    ];
    let migrated = run_to_exit(dir.path(), &["migrate"], &as_admin).await;
    assert!(migrated.status.success(), "{}", output_text(&migrated));

    let (owner_password, app_password) = (
        format!("o{}", rand::random::<u64>()),
        format!("a{}", rand::random::<u64>()),
    );
    let owner_file = dir.path().join("owner-password");
    let app_file = dir.path().join("app-password");
    aerie::keyfile::create(&owner_file, owner_password.as_bytes()).expect("file");
    aerie::keyfile::create(&app_file, format!("{app_password}\n").as_bytes()).expect("file");
    let (owner_file, app_file) = (
        owner_file.display().to_string(),
        app_file.display().to_string(),
    );
    let roles = [
        "db",
        "roles",
        "--owner",
        &owner,
        "--app",
        &app_role,
        "--owner-password-file",
        &owner_file,
        "--app-password-file",
        &app_file,
    ];
    let printed = run_to_exit(dir.path(), &roles, &as_admin).await;
    let text = output_text(&printed);
    assert!(printed.status.success(), "{text}");
    assert!(
        text.contains("GRANT SELECT, INSERT ON \"public\".\"audit_log\""),
        "{text}"
    );
    let app_url = url_as(&admin, &app_role, &app_password);
    let owner_url = url_as(&admin, &owner, &owner_password);
    assert!(
        sqlx::PgConnection::connect(&app_url).await.is_err(),
        "printing applies nothing"
    );
    let applied = run_to_exit(dir.path(), &[&roles[..], &["--apply"]].concat(), &as_admin).await;
    let text = format!("{}{}", output_text(&printed), output_text(&applied));
    assert!(applied.status.success(), "{text}");
    for secret in [&owner_password, &app_password] {
        assert!(
            !text.contains(secret.as_str()),
            "a password was printed: {text}"
        );
    }

    // Real traffic as the application role.
    let server = TestApp::spawn_at(
        Engine::Postgres,
        app_url.clone(),
        &[("AERIE_AUTO_MIGRATE", "false")],
    )
    .await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let slug = server
        .create_article(&alice, "Least privilege", &["pg"])
        .await;
    server.add_comment(&bob, &slug, "nice").await;
    server.login_user("alice").await;
    let verified = run_aerie(&server, "", &["audit", "verify"], "").await;
    assert!(verified.status.success(), "{}", output_text(&verified));

    let mut connection = sqlx::PgConnection::connect(&app_url)
        .await
        .expect("connect as app");
    for sql in [
        "UPDATE audit_log SET actor_id = 999",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
        "DROP TRIGGER audit_log_append_only ON audit_log",
        "DELETE FROM audit_archive_checkpoints",
        "INSERT INTO audit_archive_checkpoints VALUES (999, '', 0, '', 999, 0, '')",
        "UPDATE _sqlx_migrations SET success = false",
        "ALTER TABLE users ADD COLUMN evil TEXT",
        "DROP TABLE articles",
        "CREATE TABLE evil (id BIGINT)",
    ] {
        let error = sqlx::raw_sql(sql)
            .execute(&mut connection)
            .await
            .expect_err(sql);
        assert_eq!(code_of(&error), "42501", "{sql}: {error}");
    }
    connection.close().await.ok();
    let verified = run_aerie(&server, "", &["audit", "verify"], "").await;
    assert!(verified.status.success(), "{}", output_text(&verified));
    // Production checks its own rights at start, with the key that sealed this chain (else it
    // refuses for that first).
    let deployment = Deployment::new();
    deployment.adopt_audit_key(&server.data_dir.path().join("audit-key"));
    // And its signing key: the instances on this database published theirs.
    deployment.adopt_signing_key(&server.data_dir.path().join("signing-key.pem"));
    drop(server);
    let refused = deployment.refused(&production(&deployment, &admin)).await;
    assert!(
        refused.contains("superuser") && refused.contains("aerie db roles"),
        "{refused}"
    );
    let refused = deployment
        .refused(&production(&deployment, &owner_url))
        .await;
    assert!(refused.contains("owns the schema"), "{refused}");
    let settings = production(&deployment, &app_url);
    let serving = start_server(tempfile::tempdir().expect("tempdir"), &settings).await;
    let health = deployment
        .client()
        .get(serving.https("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    serving.stop().await;
}
