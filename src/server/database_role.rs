//! The server's check of its own database rights at start (PostgreSQL): in production it
//! refuses to serve as a superuser, as the owner of the schema or its tables, with CREATE on
//! the schema, or with UPDATE/DELETE/TRUNCATE on the audit log; in development it warns.
//!
//! Guards against deployments that quietly run the server as `postgres`: then a compromised
//! server could rewrite its audit trail or drop the trigger that keeps it append-only.

use anyhow::Context as _;

use crate::store::Store;

pub(super) async fn check(store: &Store, production: bool) -> anyhow::Result<()> {
    let findings = store
        .privilege_findings()
        .await
        .context("reading the database role's privileges")?;
    if findings.is_empty() {
        return Ok(());
    }
    if production {
        anyhow::bail!(
            "AERIE_DATABASE_URL: the server refuses to run in production with more database rights than it needs: {}. Set up the roles with `aerie db roles --apply` (as the owner or a superuser) and point AERIE_DATABASE_URL at the application role; run `aerie migrate`, `aerie audit archive` and `aerie backup restore` with the owner's URL",
            findings.join("; ")
        );
    }
    for finding in findings {
        tracing::warn!("database role: {finding}; production refuses this (see `aerie db roles`)");
    }
    Ok(())
}
