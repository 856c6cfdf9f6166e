//! How a connection ends after the server has answered a client that is still sending
//! (attacks.md §9): the close lingers, reading and discarding what still comes, so the answer
//! is not reset away; and the lingering is bounded, so a client cannot keep a connection and
//! the server's reads busy by sending for ever. An answer given before its request's body was
//! read says `Connection: close`, so that no client sends its next request into the closing
//! connection. Every test here is bounded in time.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{self, Engine, TestApp};

/// A server, and a connection to it that has sent a request head hyper cannot parse (a
/// space inside a header name), with no size problem: answered 400 by the HTTP layer itself,
/// before any route. The head announces a body, which the tests send (or not) after it.
async fn a_refused_head_sent() -> (TestApp, TcpStream) {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let mut stream = app.connect_raw().await;
    let head = format!(
        "POST /api/users HTTP/1.1\r\nHost: {}\r\nBad Header: x\r\nContent-Length: 1048576\r\n\r\n",
        app.host_port()
    );
    stream.write_all(head.as_bytes()).await.expect("head sent");
    (app, stream)
}

/// A client whose head is refused while its body is still on the way (a form post with a
/// mangled header from a broken proxy) must still read the 400: closing at once with the
/// body unread would reset the connection, failing the client's next write and destroying
/// the answer. The close after a malformed head lingers as the close after a 413 does.
#[tokio::test]
async fn a_malformed_head_with_its_body_still_coming_gets_its_400_not_a_reset() {
    const CHUNK: usize = 16 * 1024;
    const CHUNKS: usize = 16; // 256 KiB, a quarter of what the lingering close reads at most
    let (_app, mut stream) = a_refused_head_sent().await;
    // Each piece goes out after the server has had time to answer and close.
    for chunk in 0..CHUNKS {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let written = stream.write_all(&[b' '; CHUNK]).await;
        assert!(written.is_ok(), "chunk {chunk}: {written:?}");
    }
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("the server closed the connection");
    assert!(read.is_ok(), "the connection was reset: {read:?}");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 400"), "{text:.200}");
}

/// The other side of lingering: a client that goes on sending after its answer (a flood
/// aimed at the server's reads, or at holding the connection) is read only up to the
/// lingering bound (1 MiB), then the socket closes and the client's writes fail. Without the
/// bound the server would read, and the connection stay, for as long as the client sends
/// (up to the lingering time, two seconds: hundreds of MiB on loopback). No clock is read:
/// what is checked is how much the client could write before the server let go.
#[tokio::test]
async fn a_client_sending_on_after_its_answer_is_cut_off_after_the_lingering_bound() {
    const CHUNK: usize = 64 * 1024;
    // Eight times what gets through before the close on loopback (the lingering bound plus
    // both sockets' buffers: 3.75 MiB measured), yet little enough for a server reading
    // without the bound to take it all within the lingering time, even on a busy machine.
    const CLIENT_SENDS_AT_MOST: usize = 32 * 1024 * 1024;
    let (_app, mut stream) = a_refused_head_sent().await;
    let chunk = vec![b' '; CHUNK];
    let mut sent = 0;
    let outcome = tokio::time::timeout(Duration::from_secs(30), async {
        while sent < CLIENT_SENDS_AT_MOST {
            stream.write_all(&chunk).await?;
            sent += CHUNK;
        }
        Ok::<(), std::io::Error>(())
    })
    .await
    .expect("the server neither read nor closed: the client's writes hung");
    assert!(
        outcome.is_err(),
        "the server read all {sent} bytes the client sent after its answer"
    );
}

/// An answer given before its request's body was read (here the access table's 401 for a
/// request without a token) says `Connection: close`: the server closes after it, and a client
/// that pooled the connection would send its next request into a closing socket and lose it.
/// An answer to a request whose body was read keeps the connection open for the next one.
#[tokio::test]
async fn an_answer_before_the_body_was_read_says_the_connection_closes() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let address = app.host_port();
    let mut stream = app.connect_raw().await;
    let head = format!(
        "POST /api/articles HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head sent");
    stream
        .write_all(&[b' '; 1024])
        .await
        .expect("part of the body sent");
    let refused = answer_head(&mut stream).await;
    assert!(refused.starts_with("http/1.1 401"), "{refused}");
    assert!(refused.contains("\r\nconnection: close\r\n"), "{refused}");

    let mut stream = app.connect_raw().await;
    let invalid = r#"{"user":{}}"#;
    let request = format!(
        "POST /api/users HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{invalid}",
        invalid.len()
    );
    stream.write_all(request.as_bytes()).await.expect("sent");
    let answered = answer_head(&mut stream).await;
    assert!(answered.starts_with("http/1.1 422"), "{answered}");
    assert!(!answered.contains("connection: close"), "{answered}");
    // Nor does a request without a body lose its connection, though nothing reads one.
    let request = format!("GET /api/tags HTTP/1.1\r\nHost: {address}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("sent");
    let answered = answer_head(&mut stream).await;
    assert!(answered.starts_with("http/1.1 200"), "{answered}");
    assert!(!answered.contains("connection: close"), "{answered}");
}

/// The head of the next answer on `stream`, lowercased; its body (of the length the head
/// declares) is read too, so that the stream is left at the answer after it.
async fn answer_head(stream: &mut TcpStream) -> String {
    let head = common::read_head(stream, Duration::from_secs(10))
        .await
        .to_ascii_lowercase();
    assert!(!head.is_empty(), "no answer's head");
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length: "))
        .map_or(0, |length| length.trim().parse().expect("a length"));
    let mut body = vec![0u8; length];
    stream
        .read_exact(&mut body)
        .await
        .expect("the answer's body");
    head
}
