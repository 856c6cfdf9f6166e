//! Query-plan tests: for every list query the store runs, the engine's plan reads the index
//! built for it, never scans `articles`, `favorites` or `article_tags` whole on a filtered
//! path, and never sorts (the order comes off the index, so LIMIT stops early).
//!
//! SQLite always; PostgreSQL when `AERIE_TEST_POSTGRES_URL` is set. PostgreSQL's planner
//! rightly prefers a sequential scan of a table of a few rows, so its plans are taken with
//! `SET enable_seqscan = off` (and `enable_sort = off`), which makes a seq scan or a sort
//! appear only where no index can serve the query: exactly what these tests look for, and
//! deterministic, unlike seeding "enough" rows for the cost model. The bench
//! (`bench/growth`) checks the real plans at 100,000 articles by their throughput.

use std::time::Duration;

use secrecy::SecretString;
use sqlx::Connection;

use super::*;
use crate::store::{DatabaseSettings, Store};

/// Every list shape the store builds, by name: the id page (by offset and by keyset), its
/// count, and the enrichment of a page.
fn list_queries(pool: &Pool) -> Vec<(String, Sql)> {
    let text = |s: &str| Some(s.to_owned());
    let filters = [
        ("all", ArticleFilter::default()),
        (
            "tag",
            ArticleFilter {
                tag: text("rust"),
                ..Default::default()
            },
        ),
        (
            "author",
            ArticleFilter {
                author_key: text("alice"),
                ..Default::default()
            },
        ),
        (
            "favorited",
            ArticleFilter {
                favorited_by_key: text("bob"),
                ..Default::default()
            },
        ),
        (
            "tag+author",
            ArticleFilter {
                tag: text("rust"),
                author_key: text("alice"),
                ..Default::default()
            },
        ),
        (
            "favorited+tag",
            ArticleFilter {
                tag: text("rust"),
                favorited_by_key: text("bob"),
                ..Default::default()
            },
        ),
    ];
    let mut queries = Vec::new();
    let lists = filters
        .iter()
        .map(|(name, filter)| (name.to_string(), ArticleList::All(filter)))
        .chain([("feed".to_string(), ArticleList::Feed { follower: 2 })]);
    for (name, list) in lists {
        queries.push((
            format!("{name} by offset"),
            page_query(list, &Start::Offset(40), 21),
        ));
        queries.push((
            format!("{name} by keyset"),
            page_query(list, &Start::Before(5_000, 7), 21),
        ));
        queries.push((format!("{name} count"), count_query(list)));
    }
    queries.push(("enrichment".into(), rows_query(pool, Some(2), &[1, 2, 3])));
    queries
}

/// A store on a fresh database of `url`'s engine, migrated, with a few rows in each table.
async fn seeded(url: &str) -> Store {
    let keys = tempfile::tempdir().expect("tempdir");
    let settings = DatabaseSettings {
        url: SecretString::from(url.to_owned()),
        max_connections: 1,
        auto_migrate: true,
        statement_budget: Duration::from_secs(30),
        field_keys: crate::field_keys::FieldKeySettings {
            file: keys.path().join("data-keys"),
            generate: true,
            legacy_mfa_key: None,
        },
    };
    let store = Store::connect(&settings).await.expect("database opens");
    store.migrate().await.expect("migrations apply");
    for sql in [
        "INSERT INTO users (username, username_key, email_sealed, email_index, password_hash, created_at, updated_at)
         VALUES ('alice', 'alice', 'f1.1.x', 'i1.a', 'h', 1, 1), ('bob', 'bob', 'f1.1.y', 'i1.b', 'h', 1, 1)",
        "INSERT INTO follows (follower_id, followee_id) VALUES (2, 1)",
        "INSERT INTO articles (slug, title, description, body, author_id, created_at, updated_at)
         VALUES ('a', 'A', 'd', 'b', 1, 1000, 1000), ('b', 'B', 'd', 'b', 2, 2000, 2000),
                ('c', 'C', 'd', 'b', 1, 3000, 3000)",
        "INSERT INTO article_tags (article_id, tag) VALUES (1, 'rust'), (2, 'rust'), (3, 'web')",
        "INSERT INTO favorites (user_id, article_id) VALUES (2, 1), (2, 3), (1, 2)",
    ] {
        on_pool!(store, |pool| sqlx::query(sql).execute(pool).await.map(drop)).expect("seed row");
    }
    store
}

/// The plan of `sql`, one line per step.
async fn plan(store: &Store, sql: &Sql) -> String {
    let lines: Vec<String> = match &store.pool {
        Pool::Sqlite(pool) => {
            let text = format!("EXPLAIN QUERY PLAN {}", sql.text);
            let mut query = sqlx::query_as::<_, (i64, i64, i64, String)>(AssertSqlSafe(text));
            for bind in &sql.binds {
                query = match bind {
                    Bind::Text(text) => query.bind(text.clone()),
                    Bind::Int(n) => query.bind(*n),
                    Bind::Viewer(v) => query.bind(*v),
                };
            }
            let rows = query.fetch_all(pool).await.expect("explain");
            rows.into_iter().map(|(.., detail)| detail).collect()
        }
        Pool::Postgres(pool) => {
            let mut connection = pool.acquire().await.expect("connection");
            for setting in ["SET enable_seqscan = off", "SET enable_sort = off"] {
                sqlx::query(setting)
                    .execute(&mut *connection)
                    .await
                    .expect("set");
            }
            let text = format!("EXPLAIN {}", sql.text);
            let mut query = sqlx::query_scalar::<_, String>(AssertSqlSafe(text));
            for bind in &sql.binds {
                query = match bind {
                    Bind::Text(text) => query.bind(text.clone()),
                    Bind::Int(n) => query.bind(*n),
                    Bind::Viewer(v) => query.bind(*v),
                };
            }
            query.fetch_all(&mut *connection).await.expect("explain")
        }
    };
    lines.join("\n")
}

/// The faults a plan may not show: a whole-table read of a content table, or a sort.
fn faults(plan: &str, postgres: bool) -> Vec<String> {
    let mut faults = Vec::new();
    for line in plan.lines() {
        let line = line.trim();
        if postgres {
            let scanned = ["articles", "favorites", "article_tags"]
                .iter()
                .any(|table| line.contains(&format!("Seq Scan on {table}")));
            if scanned
                || line.contains("Sort  ")
                || line.contains("-> Sort")
                || line.starts_with("Sort")
            {
                faults.push(line.to_owned());
            }
        } else {
            // `SCAN d USING … INDEX articles_newest` is the unfiltered list reading its index
            // in order (LIMIT stops it); the page's own ids (`p`, constant rows) are the
            // page; `follows` (`fo`) grows with users, not articles, and a planner that
            // believes it tiny may read it rather than its key. Any other SCAN reads a
            // content table or index whole.
            let allowed = line.contains("INDEX articles_newest")
                || line.contains("CONSTANT ROW")
                || line == "SCAN p"
                || line.starts_with("SCAN fo ")
                || line == "SCAN fo"
                || line == "SCAN follows";
            if (line.starts_with("SCAN") && !allowed) || line.contains("TEMP B-TREE") {
                faults.push(line.to_owned());
            }
        }
    }
    faults
}

async fn every_list_query_reads_its_index(store: Store, postgres: bool) {
    let mut failures = Vec::new();
    for (name, sql) in list_queries(&store.pool) {
        let plan = plan(&store, &sql).await;
        let faults = faults(&plan, postgres);
        let indexed = plan.contains("INDEX")
            || plan.contains("Index")
            || plan.contains("article_totals")
            || plan.contains("tag_counts")
            || plan.contains("user_totals")
            || plan.contains(" t USING INTEGER PRIMARY KEY");
        if !faults.is_empty() || !indexed {
            failures.push(format!("{name}: {}\n{plan}\n", sql.text));
        }
    }
    assert!(
        failures.is_empty(),
        "plans without their index:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn sqlite_list_queries_read_their_indexes() {
    let folder = tempfile::tempdir().expect("temporary folder");
    let url = format!(
        "sqlite://{}?mode=rwc",
        folder.path().join("plans.db").display()
    );
    every_list_query_reads_its_index(seeded(&url).await, false).await;
}

/// Statistics taken while the database was small (an operator's `ANALYZE` on a young
/// database, which long-lived connections keep using as the tables grow) must not turn a
/// page into a whole-table read: the queries fix what drives them.
#[tokio::test]
async fn sqlite_list_queries_read_their_indexes_under_statistics_of_a_small_database() {
    let folder = tempfile::tempdir().expect("temporary folder");
    let url = format!(
        "sqlite://{}?mode=rwc",
        folder.path().join("plans.db").display()
    );
    let store = seeded(&url).await;
    // The one connection analyses its three-article tables and plans with what it found.
    on_pool!(store, |pool| sqlx::query("ANALYZE")
        .execute(pool)
        .await
        .map(drop))
    .expect("analyze");
    every_list_query_reads_its_index(store, false).await;
}

#[tokio::test]
async fn postgres_list_queries_read_their_indexes() {
    let Ok(base) = std::env::var("AERIE_TEST_POSTGRES_URL") else {
        eprintln!("SKIPPED: AERIE_TEST_POSTGRES_URL is not set; PostgreSQL plans not checked");
        return;
    };
    let name = format!(
        "aerie_plans_{}_{}",
        std::process::id(),
        rand::random::<u32>()
    );
    let mut admin = sqlx::PgConnection::connect(&base).await.expect("connect");
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create database");
    let (prefix, _) = base.rsplit_once('/').expect("database URL has a path");
    let url = format!("{prefix}/{name}");
    let store = seeded(&url).await;
    every_list_query_reads_its_index(store.clone(), true).await;
    store.close().await;
    let _ = sqlx::query(AssertSqlSafe(format!("DROP DATABASE {name}")))
        .execute(&mut admin)
        .await;
}
