//! Least privilege on PostgreSQL: the SQL that splits the database between an owner role
//! (migrations, `aerie audit archive`, restores) and an application role (the server: the
//! DML it needs, no DDL, and on the audit trail INSERT and SELECT only), and the server's
//! check of its own rights at start.
//!
//! Guards against a compromised server rewriting its own evidence: the application role
//! cannot UPDATE, DELETE or TRUNCATE audit rows, nor ALTER or DROP a table (or the audit
//! trigger), because it owns nothing and is granted nothing more.

use secrecy::{ExposeSecret, SecretString};

use super::{Pool, Store, snapshot::plain_identifier};

/// What the application role may do on the tables that need less than full DML.
const NARROW: &[(&str, &str)] = &[
    ("audit_log", "SELECT, INSERT"),
    ("audit_archive_checkpoints", "SELECT"),
    ("audit_chain_head", "SELECT, UPDATE"),
    ("_sqlx_migrations", "SELECT"),
];

/// The roles to set up, with the passwords to give them (read from files, never printed).
pub struct RolePlan {
    pub owner: String,
    pub app: String,
    pub owner_password: Option<SecretString>,
    pub app_password: Option<SecretString>,
}

/// One statement: what runs (may hold a password) and what is shown (never does).
pub struct Statement {
    pub run: SecretString,
    pub shown: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RolesError {
    #[error(
        "database roles are a PostgreSQL feature; an SQLite file is protected by its mode (0600) instead"
    )]
    NotPostgres,
    #[error("the database has no tables yet: run `aerie migrate` first, then `aerie db roles`")]
    Unmigrated,
    #[error("role name {0:?}: use lowercase letters, digits and underscores (at most 63)")]
    BadName(String),
    #[error("the owner and application roles must be two different roles")]
    SameRole,
    #[error("{0}")]
    Database(#[from] sqlx::Error),
}

impl Store {
    /// The statements that set up `plan` on this database (read only).
    pub async fn role_statements(&self, plan: &RolePlan) -> Result<Vec<Statement>, RolesError> {
        let Pool::Postgres(pool) = &self.pool else {
            return Err(RolesError::NotPostgres);
        };
        for name in [&plan.owner, &plan.app] {
            if !plain_identifier(name) {
                return Err(RolesError::BadName(name.clone()));
            }
        }
        if plan.owner == plan.app {
            return Err(RolesError::SameRole);
        }
        let (database, schema): (String, String) =
            sqlx::query_as("SELECT current_database()::text, current_schema()::text")
                .fetch_one(pool)
                .await?;
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT relname::text FROM pg_class WHERE relkind = 'r' \
             AND relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) ORDER BY relname",
        )
        .fetch_all(pool)
        .await?;
        let functions: Vec<String> = sqlx::query_scalar(
            "SELECT proname::text FROM pg_proc WHERE pronargs = 0 \
             AND pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) ORDER BY proname",
        )
        .fetch_all(pool)
        .await?;
        if !tables.iter().any(|t| t == "audit_log") {
            return Err(RolesError::Unmigrated);
        }
        let names = [&database, &schema]
            .into_iter()
            .chain(&tables)
            .chain(&functions);
        if let Some(strange) = names.into_iter().find(|n| !plain_identifier(n)) {
            return Err(RolesError::BadName(strange.clone()));
        }
        Ok(statements(plan, &database, &schema, &tables, &functions))
    }

    /// Runs `statements` in one transaction: all of them or none.
    pub async fn apply_statements(&self, statements: &[Statement]) -> Result<(), RolesError> {
        let Pool::Postgres(pool) = &self.pool else {
            return Err(RolesError::NotPostgres);
        };
        let mut tx = pool.begin().await?;
        for statement in statements {
            let sql = statement.run.expose_secret().to_owned();
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// What the connected role may do that the server must not: empty when it is a plain
    /// application role (and always on SQLite, which has no roles).
    pub async fn privilege_findings(&self) -> Result<Vec<String>, sqlx::Error> {
        let Pool::Postgres(pool) = &self.pool else {
            return Ok(Vec::new());
        };
        let sql = "SELECT current_user::text, current_schema()::text, r.rolsuper, \
             EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = current_schema() \
                     AND pg_has_role(n.nspowner, 'MEMBER')), \
             EXISTS (SELECT 1 FROM pg_class c WHERE c.relkind = 'r' \
                     AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) \
                     AND pg_has_role(c.relowner, 'MEMBER')), \
             has_schema_privilege(current_schema(), 'CREATE'), \
             has_table_privilege('audit_log', 'UPDATE'), \
             has_table_privilege('audit_log', 'DELETE'), \
             has_table_privilege('audit_log', 'TRUNCATE') \
             FROM pg_roles r WHERE r.rolname = current_user";
        let row: (String, String, bool, bool, bool, bool, bool, bool, bool) =
            sqlx::query_as(sql).fetch_one(pool).await?;
        let (user, schema, superuser, owns_schema, owns_tables, create, update, delete, truncate) =
            row;
        let mut findings = Vec::new();
        if superuser {
            findings.push(format!("{user} is a PostgreSQL superuser"));
        }
        if owns_schema || owns_tables {
            findings.push(format!(
                "{user} owns the schema {schema} or its tables (it can ALTER or DROP them and switch off the audit trigger)"
            ));
        }
        if create {
            findings.push(format!("{user} may CREATE in the schema {schema}"));
        }
        let writes: Vec<&str> = [
            (update, "UPDATE"),
            (delete, "DELETE"),
            (truncate, "TRUNCATE"),
        ]
        .into_iter()
        .filter_map(|(granted, what)| granted.then_some(what))
        .collect();
        if !writes.is_empty() {
            findings.push(format!("{user} may {} audit_log", writes.join("/")));
        }
        Ok(findings)
    }
}

/// The setup, in order; every name was checked to be a plain identifier.
fn statements(
    plan: &RolePlan,
    database: &str,
    schema: &str,
    tables: &[String],
    functions: &[String],
) -> Vec<Statement> {
    let (owner, app, s) = (&plan.owner, &plan.app, schema);
    let mut out: Vec<Statement> = Vec::new();
    let mut plain = |sql: String| {
        out.push(Statement {
            run: SecretString::from(sql.clone()),
            shown: sql,
        });
    };
    for role in [owner, app] {
        plain(format!(
            "DO $$ BEGIN CREATE ROLE \"{role}\"; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        ));
    }
    let mut role_rights = Vec::new();
    for (role, password, option) in [
        (owner, &plan.owner_password, "--owner-password-file"),
        (app, &plan.app_password, "--app-password-file"),
    ] {
        let base = format!(
            "ALTER ROLE \"{role}\" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
        );
        role_rights.push(match password {
            Some(password) => Statement {
                run: SecretString::from(format!(
                    "{base} PASSWORD '{}'",
                    password.expose_secret().replace('\'', "''")
                )),
                shown: format!("{base} PASSWORD '<from {option}>'"),
            },
            None => Statement {
                run: SecretString::from(base.clone()),
                shown: base,
            },
        });
    }
    let mut plain = |sql: String| {
        role_rights.push(Statement {
            run: SecretString::from(sql.clone()),
            shown: sql,
        });
    };
    plain(format!(
        "GRANT CONNECT, TEMPORARY ON DATABASE \"{database}\" TO \"{owner}\""
    ));
    plain(format!(
        "GRANT CONNECT ON DATABASE \"{database}\" TO \"{app}\""
    ));
    plain(format!("ALTER SCHEMA \"{s}\" OWNER TO \"{owner}\""));
    plain(format!("REVOKE CREATE ON SCHEMA \"{s}\" FROM PUBLIC"));
    plain(format!("GRANT USAGE ON SCHEMA \"{s}\" TO \"{app}\""));
    for table in tables {
        plain(format!(
            "ALTER TABLE \"{s}\".\"{table}\" OWNER TO \"{owner}\""
        ));
    }
    for function in functions {
        plain(format!(
            "ALTER FUNCTION \"{s}\".\"{function}\"() OWNER TO \"{owner}\""
        ));
    }
    plain(format!(
        "REVOKE ALL ON ALL TABLES IN SCHEMA \"{s}\" FROM \"{app}\""
    ));
    plain(format!(
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA \"{s}\" TO \"{app}\""
    ));
    for (table, rights) in NARROW {
        if tables.iter().any(|t| t == table) {
            plain(format!("REVOKE ALL ON \"{s}\".\"{table}\" FROM \"{app}\""));
            plain(format!(
                "GRANT {rights} ON \"{s}\".\"{table}\" TO \"{app}\""
            ));
        }
    }
    plain(format!(
        "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA \"{s}\" TO \"{app}\""
    ));
    plain(format!(
        "ALTER DEFAULT PRIVILEGES FOR ROLE \"{owner}\" IN SCHEMA \"{s}\" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO \"{app}\""
    ));
    plain(format!(
        "ALTER DEFAULT PRIVILEGES FOR ROLE \"{owner}\" IN SCHEMA \"{s}\" GRANT USAGE, SELECT ON SEQUENCES TO \"{app}\""
    ));
    out.extend(role_rights);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_run_but_are_never_shown() {
        let plan = RolePlan {
            owner: "o".into(),
            app: "a".into(),
            owner_password: None,
            app_password: Some(SecretString::from("it's-secret")),
        };
        let tables = ["audit_log".to_owned(), "users".to_owned()];
        let all = statements(&plan, "db", "public", &tables, &[]);
        let shown: String = all.iter().map(|s| s.shown.clone()).collect();
        assert!(!shown.contains("secret"), "{shown}");
        assert!(
            all.iter()
                .any(|s| s.run.expose_secret().contains("PASSWORD 'it''s-secret'"))
        );
        assert!(shown.contains("GRANT SELECT, INSERT ON \"public\".\"audit_log\" TO \"a\""));
        assert!(
            !shown.contains("audit_archive_checkpoints"),
            "absent tables are skipped"
        );
    }
}
