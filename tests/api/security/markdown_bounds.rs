//! What one Markdown body may cost (issue 22 item 1): bodies are rendered once, when
//! written, within limits on nesting depth, table size and expansion; reads serve the stored
//! HTML and render nothing; comments are listed a page at a time with the total. Work is
//! asserted as counts (renders, comments served) and sizes (bytes), never as times.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Engine, Reply, TestApp, engine_tests};

const METRICS_TOKEN: &str = "bWFya2Rvd24tYm91bmRzLXRlc3QtdG9rZW4tMzItYnl0ZXM";

async fn with_metrics(engine: Engine) -> TestApp {
    TestApp::spawn_with(engine, &[("AERIE_METRICS_TOKEN", METRICS_TOKEN)]).await
}

/// How many bodies this server has rendered, from its own metrics.
async fn renders(app: &TestApp) -> u64 {
    let metrics = app.metrics(METRICS_TOKEN).await;
    metrics.value("aerie_markdown_renders_total", &[]) as u64
}

async fn post_article(app: &TestApp, token: &str, body: &str) -> Reply {
    let article = json!({"article": {"title": "Heavy", "description": "d", "body": body}});
    app.post("/api/articles", Some(token), article).await
}

#[track_caller]
fn assert_refused(reply: &Reply, message: &str) {
    reply.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.body, json!({"errors": {"body": [message]}}));
}

/// Twenty GFM tables whose header declares 362 columns (about 30 KB of source).
fn wide_tables() -> String {
    let table = format!("{}|\n{}|\n|x|\n\n", "|a".repeat(362), "|-".repeat(362));
    table.repeat(20)
}

/// A body at the limits: quotes 32 deep, a 64-column table, nested lists, prose and code.
fn heavy_allowed_body() -> String {
    let mut body = String::new();
    for depth in 1..=32 {
        body.push_str(&format!("{} quoted at depth {depth}\n", ">".repeat(depth)));
    }
    body.push('\n');
    body.push_str(&format!("{}|\n{}|\n", "|col".repeat(64), "|---".repeat(64)));
    for row in 0..40 {
        body.push_str(&format!("{}|\n", format!("|{row}").repeat(64)));
    }
    body.push('\n');
    for depth in 0..16 {
        body.push_str(&format!(
            "{}- item *{depth}* with [a link](https://example.com)\n",
            "  ".repeat(depth)
        ));
    }
    body.push_str("\n```\nlet code = \"<script>\";\n```\n\n");
    while body.len() < 40_000 {
        body.push_str("Plain **prose** with `code` and _emphasis_, repeated to weigh.\n\n");
    }
    body
}

async fn sixty_thousand_quote_markers_are_refused_naming_the_depth(engine: Engine) {
    let app = with_metrics(engine).await;
    let alice = app.register("alice").await;
    let deep = ">".repeat(60_000);
    assert_refused(
        &post_article(&app, &alice, &deep).await,
        "is nested more than 32 levels deep",
    );
    let slug = app.create_article(&alice, "Shallow", &[]).await;
    let update = json!({"article": {"body": deep}});
    let reply = app
        .put(&format!("/api/articles/{slug}"), Some(&alice), update)
        .await;
    assert_refused(&reply, "is nested more than 32 levels deep");
    let comment = json!({"comment": {"body": ">".repeat(10_000)}});
    let reply = app
        .post(
            &format!("/api/articles/{slug}/comments"),
            Some(&alice),
            comment,
        )
        .await;
    assert_refused(&reply, "is nested more than 32 levels deep");
    // Nothing refused was rendered or stored: the one article rendered is the accepted one.
    assert_eq!(renders(&app).await, 1);
    // Operators see which limit refused them, by name.
    app.metrics(METRICS_TOKEN).await.assert_value(
        "aerie_markdown_refused_total",
        &[("limit", "nesting_depth")],
        3.0,
    );
    assert_eq!(app.article(&slug, None).await["body"], "# Body\n\ntext");
}

async fn a_table_of_362_columns_is_refused(app: TestApp) {
    let alice = app.register("alice").await;
    let reply = post_article(&app, &alice, &wide_tables()).await;
    assert_refused(&reply, "has a table wider than 64 columns");
}

async fn a_table_of_exactly_ten_thousand_cells_is_kept_and_one_row_more_is_refused(app: TestApp) {
    let alice = app.register("alice").await;
    // 50 columns by 200 rows, the header included: the cell limit exactly. Rows are full,
    // so the HTML stays about five times the source, within the ratio.
    let table = |rows: usize| {
        let row = format!("{}|\n", "|x".repeat(50));
        format!(
            "{}|\n{}|\n{}",
            "|a".repeat(50),
            "|-".repeat(50),
            row.repeat(rows)
        )
    };
    post_article(&app, &alice, &table(199))
        .await
        .assert_status(StatusCode::CREATED);
    let reply = post_article(&app, &alice, &table(200)).await;
    assert_refused(&reply, "has tables of more than 10000 cells");
}

async fn a_body_that_expands_past_the_ratio_is_refused(app: TestApp) {
    let alice = app.register("alice").await;
    // A 64-column table whose 150 rows hold one cell each: every row is padded to 64 cells,
    // about 700 bytes of source for 90 KB of HTML (within the column and cell limits).
    let padded = format!(
        "{}|\n{}|\n{}",
        "|a".repeat(64),
        "|-".repeat(64),
        "|x\n".repeat(150)
    );
    let reply = post_article(&app, &alice, &padded).await;
    assert_refused(&reply, "renders to more than 16 times its size in HTML");
}

async fn a_heavy_body_within_limits_is_rendered_once_and_served_as_stored(engine: Engine) {
    let app = with_metrics(engine).await;
    let alice = app.register("alice").await;
    let body = heavy_allowed_body();
    let created = post_article(&app, &alice, &body).await;
    created.assert_status(StatusCode::CREATED);
    let slug = created.body["article"]["slug"]
        .as_str()
        .expect("slug")
        .to_owned();
    let html = created.body["article"]["bodyHtml"]
        .as_str()
        .expect("html")
        .to_owned();
    assert!(
        html.contains("<table>") && html.contains("<blockquote>"),
        "rendered"
    );
    assert!(
        html.len() <= 16 * body.len(),
        "{} bytes of HTML",
        html.len()
    );
    assert_eq!(renders(&app).await, 1);
    for viewer in [None, Some(alice.as_str()), None] {
        let article = app.article(&slug, viewer).await;
        assert_eq!(article["body"], body.as_str(), "the source, unchanged");
        assert_eq!(
            article["bodyHtml"],
            html.as_str(),
            "the stored HTML, unchanged"
        );
    }
    // Three reads, no render: the HTML comes from the row.
    assert_eq!(renders(&app).await, 1);
    // Proof by the row itself: what GET serves is the column, whatever it holds.
    app.execute_sql("UPDATE articles SET body_html = '<p>stored</p>'")
        .await;
    assert_eq!(app.article(&slug, None).await["bodyHtml"], "<p>stored</p>");
    // A changed body is rendered once more, when written.
    let update = json!({"article": {"body": "*new*"}});
    let reply = app
        .put(&format!("/api/articles/{slug}"), Some(&alice), update)
        .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["article"]["bodyHtml"], "<p><em>new</em></p>\n");
    assert_eq!(renders(&app).await, 2);
}

async fn rows_stored_without_html_are_rendered_once_on_first_read(engine: Engine) {
    let app = with_metrics(engine).await;
    let alice = app.register("alice").await;
    let slug = app.create_article(&alice, "Legacy", &[]).await;
    // Rows from before migration 0005, one of them a body today's limits refuse.
    app.execute_sql(&format!(
        "UPDATE articles SET body_html = NULL, body = '{}'",
        ">".repeat(60_000)
    ))
    .await;
    let before = renders(&app).await;
    let first = app.article(&slug, None).await;
    let html = first["bodyHtml"].as_str().expect("html").to_owned();
    // Served as its escaped source: bounded, inert.
    assert!(html.starts_with("<pre><code>&gt;&gt;"), "{}", &html[..40]);
    assert!(html.len() <= 5 * 60_000, "{} bytes", html.len());
    assert_eq!(app.article(&slug, None).await["bodyHtml"], html.as_str());
    assert_eq!(
        renders(&app).await,
        before + 1,
        "rendered on the first read only"
    );
}

/// Inserts `count` comments on the (only) article straight into the database, as rows from
/// before migration 0005 (no HTML): faster than the API, and it exercises the backfill.
async fn insert_legacy_comments(app: &TestApp, count: u32) {
    app.execute_sql(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count})
         INSERT INTO comments (article_id, author_id, body, created_at, updated_at)
         SELECT a.id, a.author_id, 'comment ' || CAST(n.i AS TEXT), n.i, n.i FROM n, articles a"
    ))
    .await;
}

fn page_of(reply: &Reply) -> (Vec<Value>, i64) {
    reply.assert_status(StatusCode::OK);
    let comments = reply.body["comments"].as_array().expect("comments").clone();
    (
        comments,
        reply.body["commentsCount"].as_i64().expect("commentsCount"),
    )
}

async fn a_long_thread_is_served_a_bounded_page_at_a_time_with_the_total(engine: Engine) {
    let app = with_metrics(engine).await;
    let alice = app.register("alice").await;
    let slug = app.create_article(&alice, "Thread", &[]).await;
    insert_legacy_comments(&app, 150).await;
    let path = format!("/api/articles/{slug}/comments");
    let before = renders(&app).await;
    // A RealWorld client sends no paging parameters: the first 100, and the total.
    let (first, total) = page_of(&app.get(&path, None).await);
    assert_eq!((first.len(), total), (100, 150));
    assert_eq!(first[0]["body"], "comment 1");
    assert_eq!(first[0]["bodyHtml"], "<p>comment 1</p>\n");
    assert_eq!(
        renders(&app).await,
        before + 100,
        "only the page is rendered"
    );
    let (again, _) = page_of(&app.get(&path, None).await);
    assert_eq!(again, first);
    assert_eq!(renders(&app).await, before + 100, "and only once");
    let (rest, total) = page_of(&app.get(&format!("{path}?limit=10&offset=145"), None).await);
    assert_eq!((rest.len(), total), (5, 150));
    assert_eq!(rest[4]["body"], "comment 150");
    let (most, _) = page_of(&app.get(&format!("{path}?limit=500"), None).await);
    assert_eq!(most.len(), 150);
    for query in ["limit=501", "limit=0", "offset=-1", "page=2"] {
        let reply = app.get(&format!("{path}?{query}"), None).await;
        reply.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    }
}

engine_tests!(
    sixty_thousand_quote_markers_are_refused_naming_the_depth,
    a_table_of_362_columns_is_refused,
    a_table_of_exactly_ten_thousand_cells_is_kept_and_one_row_more_is_refused,
    a_body_that_expands_past_the_ratio_is_refused,
    a_heavy_body_within_limits_is_rendered_once_and_served_as_stored,
    rows_stored_without_html_are_rendered_once_on_first_read,
    a_long_thread_is_served_a_bounded_page_at_a_time_with_the_total,
);
