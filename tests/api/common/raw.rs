//! Raw HTTP/1.1 over a socket, for what an HTTP client will not send or cannot see: a body
//! framed by hand, and the answer to a request the server refuses before reading it whole.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use super::{Reply, TestApp};

impl TestApp {
    /// `host:port` of the plain listener: what a raw request's socket and `Host` name.
    pub fn host_port(&self) -> &str {
        self.address.trim_start_matches("http://")
    }

    /// A plain TCP connection to the server, for requests an HTTP client will not send.
    pub async fn connect_raw(&self) -> tokio::net::TcpStream {
        tokio::net::TcpStream::connect(self.host_port())
            .await
            .expect("connect")
    }

    /// POSTs a JSON body over a raw socket, framed by `Content-Length` or, when `chunked`,
    /// by `Transfer-Encoding: chunked` with no length, and reads the response. The answer is
    /// read while the body is still being written, so a server that refuses early (a 413
    /// before the whole body arrived) is seen answering, where an HTTP client would report a
    /// reset connection.
    pub async fn raw_post(&self, path: &str, body: Vec<u8>, chunked: bool) -> Reply {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let address = self.host_port();
        let stream = self.connect_raw().await;
        let (mut reader, mut writer) = stream.into_split();
        let framing = if chunked {
            "Transfer-Encoding: chunked".to_owned()
        } else {
            format!("Content-Length: {}", body.len())
        };
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n{framing}\r\nConnection: close\r\n\r\n"
        );
        let writing = tokio::spawn(async move {
            writer.write_all(head.as_bytes()).await?;
            for chunk in body.chunks(4096) {
                if chunked {
                    writer
                        .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                        .await?;
                }
                writer.write_all(chunk).await?;
                if chunked {
                    writer.write_all(b"\r\n").await?;
                }
            }
            if chunked {
                writer.write_all(b"0\r\n\r\n").await?;
            }
            writer.flush().await?;
            // Returned, not dropped: dropping it half-closes the socket, which the server
            // takes as the client leaving before its answer.
            Ok::<_, std::io::Error>(writer)
        });
        let mut response = Vec::new();
        let mut buffer = [0u8; 8192];
        let read = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match reader.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => response.extend_from_slice(&buffer[..n]),
                }
            }
        })
        .await;
        assert!(read.is_ok(), "the server never finished answering");
        let _ = writing.await; // the server may close before the whole body is sent
        parse_raw_response(&response, path)
    }
}

impl TestApp {
    /// Sends `request` exactly as written (the caller frames it, and asks for
    /// `Connection: close`) and reads the response until the server closes.
    pub async fn raw_request(&self, request: &str) -> Reply {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = self.connect_raw().await;
        stream
            .write_all(request.as_bytes())
            .await
            .expect("request sent");
        let mut response = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut response)).await;
        assert!(read.is_ok(), "the server never finished answering");
        // The request target of the request line, as written.
        let path = request.split(' ').nth(1).unwrap_or_default();
        parse_raw_response(&response, path)
    }
}

/// Status, headers and JSON body (Null when not JSON) of a raw HTTP/1.1 response.
fn parse_raw_response(raw: &[u8], path: &str) -> Reply {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| StatusCode::from_bytes(code.as_bytes()).ok())
        .unwrap_or_else(|| panic!("no status line: {head:?}"));
    let mut headers = reqwest::header::HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').expect("header line");
        headers.append(
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()).expect("header name"),
            reqwest::header::HeaderValue::from_str(value.trim()).expect("header value"),
        );
    }
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        headers,
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
        path: path.to_owned(),
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// The head of the next answer on `stream` (status line and fields, through its blank line),
/// read a byte at a time so that nothing after it is taken from the stream; empty when the
/// stream ends or fails before a whole head, or none comes within `within`.
pub async fn read_head(stream: &mut tokio::net::TcpStream, within: Duration) -> String {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let whole = tokio::time::timeout(within, async {
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte).await {
                Ok(0) | Err(_) => return false,
                Ok(_) => head.push(byte[0]),
            }
        }
        true
    })
    .await;
    if whole == Ok(true) {
        String::from_utf8_lossy(&head).into_owned()
    } else {
        String::new()
    }
}
