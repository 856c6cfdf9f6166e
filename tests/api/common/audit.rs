//! Reading the test database's audit trail directly, as `aerie audit export` would.

use aerie::store::AuditRow;

use super::TestApp;

/// Every audit row of the test's database, oldest first.
pub async fn audit_rows(app: &TestApp) -> Vec<AuditRow> {
    let store = app.store().await;
    let rows = store.audit_rows_after(0, 10_000).await.expect("audit rows");
    store.close().await;
    rows
}

/// The rows of one event type.
pub async fn rows_of(app: &TestApp, event_type: &str) -> Vec<AuditRow> {
    let mut rows = audit_rows(app).await;
    rows.retain(|row| row.event_type == event_type);
    rows
}
