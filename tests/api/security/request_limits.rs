//! Slow and bloated clients (attacks.md §9): cut off at the listener, bounded, while everyone
//! else is still served. Every test here is bounded in time and in connections.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{Engine, TestApp};

fn socket_address(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
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
    // Within the bounds, the same route answers.
    assert_eq!(app.get("/api/tags", None).await.status, StatusCode::OK);
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

#[tokio::test]
async fn connection_flood_waits_for_a_slot_instead_of_exhausting_the_server() {
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &[
            ("AERIE_MAX_CONNECTIONS", "4"),
            ("AERIE_HEADER_READ_TIMEOUT_SECS", "1"),
        ],
    )
    .await;
    let address = socket_address(&app);
    let mut idle = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(&address).await.expect("connect");
        // A partial request line takes the slot (and starts the header-read clock).
        stream
            .write_all(b"GET /api/tags HTTP/1.1\r\n")
            .await
            .expect("write");
        idle.push(stream);
    }
    let begun = Instant::now();
    let reply = app.get("/api/tags", None).await;
    assert_eq!(reply.status, StatusCode::OK, "served once a slot is free");
    assert!(
        begun.elapsed() >= Duration::from_millis(500),
        "the cap held: served after {:?}",
        begun.elapsed()
    );
    for mut stream in idle {
        let mut sink = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut sink)).await;
        assert!(closed.is_ok(), "an idle connection was cut off");
    }
}
