//! Reading an answer in a unit test: its status and its body as JSON.

use axum::http::StatusCode;
use axum::response::Response;
use http_body_util::BodyExt;
use serde_json::Value;

/// The answer's status and JSON body (`Null` when the body is not JSON).
pub async fn status_and_json(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}
