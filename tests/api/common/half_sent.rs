//! A request in flight, held open by the test: a registration whose head the server has
//! answered with `100 Continue` and whose body is not sent yet. For what happens to
//! requests under way (shutdown, readiness, connection slots); and the moment a stopping
//! server's listener closes, which those tests wait for.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::PASSWORD;
use super::raw::read_head;

/// A registration the server has started to handle, whose body is not sent yet: a request
/// in flight.
pub struct HalfSent {
    stream: TcpStream,
    body: Vec<u8>,
}

/// Sends a registration's head with `Expect: 100-continue` to the server listening at
/// `address` (`host:port`) and waits for its `100 Continue`, which hyper sends once the
/// handler starts reading the body: from then on the request is certainly under way (and
/// its connection busy).
pub async fn start_registration_at(address: &str, name: &str) -> HalfSent {
    let body = json!({"user": {"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}})
        .to_string()
        .into_bytes();
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let head = format!(
        "POST /api/users HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let interim = read_head(&mut stream, Duration::from_secs(10)).await;
    assert!(
        interim.starts_with("HTTP/1.1 100"),
        "no 100 Continue: {interim:?}"
    );
    HalfSent { stream, body }
}

impl HalfSent {
    /// Sends the body and returns the response's status code.
    pub async fn finish(mut self) -> u16 {
        self.stream.write_all(&self.body).await.expect("body");
        let head = read_head(&mut self.stream, Duration::from_secs(20)).await;
        assert!(!head.is_empty(), "no answer to the request in flight");
        head.split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0)
    }
}

/// Waits until connecting to `address` is refused: the listener has closed. Fails the test
/// if it is still open after `within`.
pub async fn until_the_listener_closes(address: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while TcpStream::connect(address).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the listener at {address} never closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
