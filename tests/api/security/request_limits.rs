//! Slow and bloated clients (attacks.md §9): cut off at the listener, bounded, while everyone
//! else is still served. Every test here is bounded in time and in connections.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{Engine, TestApp, start_registration_at};

fn socket_address(app: &TestApp) -> String {
    app.host_port().to_owned()
}

/// Writes `bytes` while reading the answer (the server may answer, and close, before the
/// whole request is written); returns what was read before the server closed.
async fn exchange(address: &str, bytes: Vec<u8>) -> String {
    let stream = TcpStream::connect(address).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(&bytes).await;
        writer
    });
    let mut response = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut response)).await;
    assert!(read.is_ok(), "the server never answered");
    drop(writing.await);
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn header_bombs_are_refused_with_431() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let address = socket_address(&app);
    let huge = format!(
        "GET /api/tags HTTP/1.1\r\nHost: x\r\nX-Bomb: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let answer = exchange(&address, huge.into_bytes()).await;
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "100 KB header: {answer:.80}"
    );
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!("GET /api/tags HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    let answer = exchange(&address, many.into_bytes()).await;
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "200 headers: {answer:.80}"
    );
    // Within the bounds, the same route answers, up to exactly the default count of 64
    // header lines (`AERIE_MAX_HEADERS`): the bound refuses a header more, not the last one.
    assert_eq!(app.get("/api/tags", None).await.status, StatusCode::OK);
    let lines = |count: usize| -> Vec<u8> {
        let extra: String = (2..count).map(|i| format!("X-H{i}: v\r\n")).collect();
        format!("GET /api/tags HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n")
            .into_bytes()
    };
    let answer = exchange(&address, lines(64)).await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "64 headers: {answer:.80}"
    );
    let answer = exchange(&address, lines(65)).await;
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "65 headers: {answer:.80}"
    );
}

#[tokio::test]
async fn slowloris_connections_are_cut_off_while_normal_requests_succeed() {
    const SLOW: usize = 100;
    let app = TestApp::spawn_with(Engine::Sqlite, &[("AERIE_HEADER_READ_TIMEOUT_SECS", "2")]).await;
    let address = socket_address(&app);
    let started = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..SLOW {
        let address = address.clone();
        slow.push(tokio::spawn(async move {
            let Ok(stream) = TcpStream::connect(&address).await else {
                return None;
            };
            let (mut reader, mut writer) = stream.into_split();
            let _ = writer
                .write_all(b"GET /api/tags HTTP/1.1\r\nHost: x\r\n")
                .await;
            // One more header line every 500 ms, for at most 8 s; the server must hang up first.
            let dribble = async {
                for i in 0..16 {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if writer
                        .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                std::future::pending::<()>().await;
            };
            let mut sink = Vec::new();
            tokio::select! {
                _ = reader.read_to_end(&mut sink) => Some(started.elapsed()),
                () = dribble => None,
            }
        }));
    }
    // Meanwhile, ordinary clients are served promptly.
    for _ in 0..10 {
        let begun = Instant::now();
        let reply = app.get("/api/tags", None).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(
            begun.elapsed() < Duration::from_secs(2),
            "served promptly during the attack"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for handle in slow {
        let cut_after = handle.await.expect("slow client task");
        let cut_after = cut_after.expect("the server hung up on a slow client");
        assert!(
            cut_after < Duration::from_secs(6),
            "cut off after {cut_after:?}"
        );
    }
}

/// Sends a `GET /api/tags` on an open connection and reads the answer to the end.
async fn tags_on(stream: &mut TcpStream, what: &str) -> String {
    stream
        .write_all(b"GET /api/tags HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("request sent");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("answered")
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    String::from_utf8_lossy(&answer).into_owned()
}

/// Whether the server closes `stream` (EOF or reset) within a bound far below the
/// header-read timeout the test configures, so only the refusal can explain it.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// When every slot is taken, a new client does not wait behind idle connections: the one
/// idle longest (here a slowloris that sent half a request line) is closed for it, and the
/// other connections are untouched.
#[tokio::test]
async fn a_full_server_closes_its_oldest_idle_connection_for_a_new_client() {
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &[
            ("AERIE_MAX_CONNECTIONS", "4"),
            ("AERIE_HEADER_READ_TIMEOUT_SECS", "60"),
            ("AERIE_METRICS_LISTEN", "127.0.0.1:0"),
        ],
    )
    .await;
    let address = socket_address(&app);
    let mut idle = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(&address).await.expect("connect");
        stream
            .write_all(b"GET /api/tags HTTP/1.1\r\n")
            .await
            .expect("write");
        idle.push(stream);
    }
    let reply = app.get("/api/tags", None).await;
    assert_eq!(reply.status, StatusCode::OK, "served in a freed slot");
    assert!(
        closed_by_server(&mut idle[0]).await,
        "the oldest idle connection was closed"
    );
    for (i, stream) in idle.iter_mut().enumerate().skip(1) {
        stream
            .write_all(b"Host: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("rest of the request");
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
            .await
            .expect("answered")
            .expect("read");
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "connection {i}: {answer:.80}"
        );
    }
    app.internal_metrics().await.assert_value(
        "aerie_connections_evicted_total",
        &[("reason", "oldest_idle")],
        1.0,
    );
}

/// When every slot is held by a request in progress, a new client waits for a slot and is
/// served once one frees. It must not be asked to close while it waits, least of all to
/// make room for itself: it would be closed the moment its turn came, before or while its
/// request is read. Here it has sent nothing yet when the slot frees (a client that opens
/// its connection ahead of the request), and is then served like any other.
#[tokio::test]
async fn a_client_waiting_behind_busy_connections_is_served_when_one_frees() {
    let app = TestApp::spawn_with(Engine::Sqlite, &[("AERIE_MAX_CONNECTIONS", "1")]).await;
    let address = socket_address(&app);
    let busy = start_registration_at(&address, "busy").await;
    let mut waiting = TcpStream::connect(&address).await.expect("connect");
    assert_eq!(
        busy.finish().await,
        201,
        "the request in progress completes"
    );
    // Time for the freed slot to be handed over: a connection wrongly asked to close is
    // closed by then, before its request arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answer = tags_on(&mut waiting, "the waiting client").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:.80}");
}

/// One address cannot occupy every connection: past `AERIE_MAX_CONNECTIONS_PER_ADDRESS` its
/// new connections are closed unread at accept, while its open ones still work and another
/// address (127.0.0.2 on the loopback) is served.
#[tokio::test]
async fn one_address_cannot_hold_more_than_its_share_of_connections() {
    const SHARE: usize = 3;
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &[
            ("AERIE_MAX_CONNECTIONS_PER_ADDRESS", "3"),
            ("AERIE_HEADER_READ_TIMEOUT_SECS", "60"),
            ("AERIE_METRICS_LISTEN", "127.0.0.1:0"),
        ],
    )
    .await;
    let address = socket_address(&app);
    let mut held = Vec::new();
    for _ in 0..SHARE {
        held.push(TcpStream::connect(&address).await.expect("connect"));
    }
    let mut extra = TcpStream::connect(&address).await.expect("connect");
    assert!(
        closed_by_server(&mut extra).await,
        "connection {} from one address was kept",
        SHARE + 1
    );
    let other = tokio::net::TcpSocket::new_v4().expect("socket");
    other
        .bind("127.0.0.2:0".parse().expect("address"))
        .expect("bind 127.0.0.2");
    let mut other = other
        .connect(address.parse().expect("address"))
        .await
        .expect("connect from 127.0.0.2");
    let answer = tags_on(&mut other, "127.0.0.2").await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "127.0.0.2: {answer:.80}"
    );
    let answer = tags_on(&mut held[0], "held").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "held: {answer:.80}");
    // Its slot is given back once the server has seen it close: the address may connect
    // again (retried while the close travels, bounded).
    drop(held.remove(0));
    let mut served_again = false;
    for _ in 0..50 {
        let mut again = TcpStream::connect(&address).await.expect("connect");
        let _ = again
            .write_all(b"GET /api/tags HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), again.read_to_end(&mut answer)).await;
        if answer.starts_with(b"HTTP/1.1 200") {
            served_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        served_again,
        "the closed connection's slot was never given back"
    );
    app.internal_metrics().await.assert_value(
        "aerie_connections_refused_total",
        &[("reason", "per_address_limit")],
        1.0,
    );
}
