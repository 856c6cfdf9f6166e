//! Which pooled PostgreSQL connections are checked before a request gets one.
//!
//! sqlx pings every connection it hands out by default, and again every connection that comes
//! back; each ping is a round trip to the server, one of the three a cheap read makes. A
//! connection that came back moments ago passed the second ping then. One that has sat idle
//! longer is where a restarted server, a failover or a proxy's idle cut shows: it is pinged,
//! and a dead one is replaced before any request meets it. A connection that breaks in the
//! moment between (the server going down under load) fails its statement, which answers 503
//! like every other lost connection, and the ping on its way back closes it.
//!
//! SQLite needs no such check: arming the statement budget (`budget.rs`) is a round trip to
//! the connection's worker thread on every hand-out already.

use std::time::Duration;

use sqlx::Connection;

/// How long a connection may sit in the pool before it is checked on its way out.
const CHECK_CONNECTIONS_IDLE_FOR: Duration = Duration::from_secs(1);

/// The pool's `before_acquire` hook: pings a connection idle for
/// [`CHECK_CONNECTIONS_IDLE_FOR`] or more; an error closes it and the pool opens another.
pub(super) async fn check_if_idle(
    connection: &mut sqlx::PgConnection,
    idle_for: Duration,
) -> Result<bool, sqlx::Error> {
    if idle_for >= CHECK_CONNECTIONS_IDLE_FOR {
        connection.ping().await?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection whose server side has ended (an administrator's `pg_terminate_backend`,
    /// as a restart or failover would) is handed out as it is while it is fresh from the pool,
    /// and found dead once it has been idle for the threshold. A live one passes either way.
    #[tokio::test]
    async fn a_connection_idle_for_the_threshold_is_pinged_and_a_dead_one_refused() {
        let Ok(url) = std::env::var("AERIE_TEST_POSTGRES_URL") else {
            eprintln!("SKIPPED: AERIE_TEST_POSTGRES_URL is not set; idle check not exercised");
            return;
        };
        let mut admin = sqlx::PgConnection::connect(&url).await.expect("connect");
        let mut pooled = sqlx::PgConnection::connect(&url).await.expect("connect");
        let idle = CHECK_CONNECTIONS_IDLE_FOR;
        assert!(check_if_idle(&mut pooled, idle).await.expect("alive"));

        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut pooled)
            .await
            .expect("its backend");
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(&mut admin)
            .await
            .expect("end its backend");
        // pg_terminate_backend only signals; wait (bounded) until the backend has gone.
        for _ in 0..200 {
            let present: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
                    .bind(pid)
                    .fetch_one(&mut admin)
                    .await
                    .expect("look");
            if !present {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        let fresh = idle.saturating_sub(Duration::from_millis(1));
        assert!(
            check_if_idle(&mut pooled, fresh).await.expect("not pinged"),
            "a connection back from a request moments ago is handed out without a round trip"
        );
        assert!(
            check_if_idle(&mut pooled, idle).await.is_err(),
            "a dead connection idle for the threshold is found by the ping"
        );
    }
}
