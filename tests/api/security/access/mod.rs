//! Object-level authorization and injection (attacks.md §4 Z1–Z4, §5): nobody changes what
//! is not theirs, ids are scoped to their parent, and no input reaches SQL as code, on both
//! engines. The helpers both need are here.

mod injection;
mod ownership;

use reqwest::StatusCode;

use crate::common::TestApp;

/// A payload as one path segment: everything but unreserved characters percent-encoded.
fn segment(payload: &str) -> String {
    payload
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn comment(app: &TestApp, token: &str, slug: &str, body: &str) -> i64 {
    app.add_comment(token, slug, body).await["id"]
        .as_i64()
        .expect("comment id")
}

async fn comment_ids(app: &TestApp, slug: &str) -> Vec<i64> {
    let reply = app
        .get(&format!("/api/articles/{slug}/comments"), None)
        .await;
    reply.assert_status(StatusCode::OK);
    let mut ids: Vec<i64> = reply.body["comments"]
        .as_array()
        .expect("comments")
        .iter()
        .map(|c| c["id"].as_i64().expect("id"))
        .collect();
    ids.sort_unstable();
    ids
}
