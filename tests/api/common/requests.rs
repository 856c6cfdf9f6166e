//! Requests as a client sends them, and their replies read once.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::TestApp;

/// A response, read once: status, headers and the JSON body (Null when not JSON).
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    /// The path the request went to (which credential a 401 refused depends on it).
    pub path: String,
}

impl Reply {
    /// Asserts the status, showing the body when it is not the one expected.
    #[track_caller]
    pub fn assert_status(&self, expected: StatusCode) {
        assert_eq!(self.status, expected, "{}", self.body);
    }

    /// The header `name`, when the reply has it as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The value of the cookie `name` this reply sets, if it sets one.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
            .and_then(|rest| rest.split(';').next())
            .map(str::to_owned)
    }

    /// The first message for `field` in a RealWorld error body.
    pub fn error_on(&self, field: &str) -> Option<&str> {
        self.body["errors"][field][0].as_str()
    }
}

/// The one message of every missing or refused access token (API.md: one generic 401).
pub const TOKEN_REFUSED: &str = "is missing, invalid or expired; please log in";

/// The body of every refusal of the credential that `path` takes: a login's email and
/// password, a refresh token, a login challenge, or (everywhere else) the access token.
/// Each says what to check, never why it failed.
pub fn refusal_body(path: &str) -> Value {
    match path {
        "/api/users/login" => serde_json::json!({"errors": {"email or password": ["is invalid"]}}),
        "/api/auth/refresh" => serde_json::json!(
            {"errors": {"refreshToken": ["is invalid or has expired; please log in"]}}
        ),
        "/api/users/login/mfa" => serde_json::json!(
            {"errors": {"challenge": ["is invalid or has expired; please log in again"]}}
        ),
        _ => serde_json::json!({"errors": {"token": [TOKEN_REFUSED]}}),
    }
}

/// Asserts the generic 401 that every refused credential of its route gets (it never says
/// why).
#[track_caller]
pub fn assert_unauthorized(reply: &Reply, case: &str) {
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "{case}: {}",
        reply.body
    );
    assert_eq!(reply.body, refusal_body(&reply.path), "{case}");
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Sends a request with an optional token (`Token` scheme) and JSON body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Token {token}"));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        read(request.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.request(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.request(Method::POST, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.request(Method::PUT, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.request(Method::DELETE, path, token, None).await
    }

    /// Sends `Content-Type: application/json` with no body at all, as RealWorld clients do
    /// for follow, favorite and delete.
    pub async fn send_without_body(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> Reply {
        let mut request = self
            .client
            .request(method, self.url(path))
            .header("Content-Type", "application/json");
        if let Some(token) = token {
            request = request.header("Authorization", format!("Token {token}"));
        }
        read(request.send().await.expect("request sent")).await
    }
}

pub async fn read(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let path = response.url().path().to_owned();
    let bytes = response.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        path,
    }
}
