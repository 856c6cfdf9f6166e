//! One admitted connection, served until it ends: plain or TLS (handshake within the
//! header-read timeout), HTTP/1.1 or HTTP/2 (by ALPN), each with the same bounds on header
//! count, header size and time without a request, and HTTP/1.1 with a lingering close.
//!
//! Guards against a refusal the client never sees: when the server answers early (a 413 for
//! a declared body over the limit, a 431) and closes while the request body is still
//! arriving, the kernel answers the unread bytes with a reset, and the reset destroys the
//! answer in the client's receive buffer. So after HTTP/1.1 is done, the write side is shut
//! (the client sees the answer end) and what the client still sends is read and thrown away,
//! at most [`LINGER_BYTES`] for at most [`LINGER_TIME`], before the socket closes.
//!
//! And against a close the client does not see coming: an HTTP/1.1 answer after which the
//! connection closes says `Connection: close`, so a client does not send its next request
//! into it and lose it. hyper decides to close when the request's body was not read only
//! after the answer's head has gone out ([`BodyRead`] tells it), and its graceful shutdown
//! closes a connection whose first request is still arriving as idle (so at the stop, such a
//! connection is served that request instead).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::future::RouteFuture;
use axum_server::accept::Accept;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tower::Service;

use super::slots::{Activity, Busy, Claim};
use super::unread_body::BodyRead;
use crate::config::ConnectionLimits;

/// The most a client may still send after its connection was answered and closed; beyond
/// it, the close resets. Enough for a body that was in flight when the 413 left (the socket
/// buffers of both ends); small enough that discarding it costs nothing.
pub(super) const LINGER_BYTES: usize = 1024 * 1024;

/// How long the discarding goes on at most: a client that keeps sending is cut off then.
pub(super) const LINGER_TIME: Duration = Duration::from_secs(2);

/// Requests one HTTP/2 connection may have in progress at once.
const MAX_STREAMS: u32 = 100;

type Response = axum::response::Response;
/// The router as hyper's service for a connection from `peer`, which handlers read as
/// `ConnectInfo`. Its answer is a named future that is `Unpin`, so the connection is too
/// and can hand its socket back when it ends. On HTTP/1.x, an answer given before its
/// request's body was read says `Connection: close` ([`BodyRead`]).
fn service(
    app: Router,
    peer: SocketAddr,
    activity: Arc<Activity>,
    max_headers: usize,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = Response,
    Error = Infallible,
    Future = Answer,
> + Clone {
    hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        // HTTP/1.1 is bounded by hyper's parser already; HTTP/2 has no count of its own.
        if request.headers().len() > max_headers {
            return Answer::Refused(Some(too_many_headers()));
        }
        let (mut request, read) = BodyRead::watch(request);
        request.extensions_mut().insert(ConnectInfo(peer));
        let busy = activity.busy();
        // The router is always ready (axum's `poll_ready` is `Ready` at once).
        let routed = app.clone().call(request);
        Answer::Routed(routed, Some(busy), read)
    })
}

/// A request's answer: the router's, holding the connection busy until it is ready, or a
/// refusal made before routing. The router's says `Connection: close` when it is the
/// connection's last after the stop, or came before its request's body was read. Not boxed:
/// the router's future is `Unpin` already, and a box per request cost an allocation and a
/// copy of the future (BENCHMARKS.md, bare-server section, "The access step takes the body
/// limit").
#[expect(
    clippy::large_enum_variant,
    reason = "one per request, held in place; boxing the router's is the allocation removed"
)]
enum Answer {
    Refused(Option<Response>),
    /// The busy mark is let go as soon as the answer is ready, as the connection's idle
    /// time (its keep-alive and the drain at stop) starts then. The body's watch, when
    /// there is one, closes the connection after an answer given before the body was read.
    Routed(RouteFuture<Infallible>, Option<Busy>, Option<BodyRead>),
}

impl Future for Answer {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            // Polled again after its answer, it answers the refusal's default: hyper never does.
            Answer::Refused(refusal) => Poll::Ready(Ok(refusal.take().unwrap_or_default())),
            Answer::Routed(routed, busy, read) => {
                let Ok(mut answer) = std::task::ready!(Pin::new(routed).poll(cx));
                let last = busy.take().is_some_and(|busy| busy.is_last());
                let unread = read.as_ref().is_some_and(|read| !read.was_read());
                if last || unread {
                    answer
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Poll::Ready(Ok(answer))
            }
        }
    }
}

/// One admitted connection, before its protocol is known.
pub(super) struct Connection {
    pub(super) app: Router,
    pub(super) peer: SocketAddr,
    pub(super) limits: ConnectionLimits,
    pub(super) stop: watch::Receiver<bool>,
    pub(super) claim: Claim,
    /// Taken from the listener's backlog after the stop: HTTP/1.1 serves the one request
    /// the client already counts on (answered with `Connection: close`) instead of closing
    /// before reading it. HTTP/2 says GOAWAY as at any stop, which tells the client which
    /// requests were never seen and may be sent again.
    pub(super) one_request: bool,
}

impl Connection {
    /// Completes the TLS handshake within `header_read_timeout`, then serves the protocol
    /// ALPN chose: HTTP/2 or HTTP/1.1.
    pub(super) async fn serve_tls(self, stream: TcpStream, tls: RustlsConfig) {
        let handshake = RustlsAcceptor::new(tls)
            .handshake_timeout(self.limits.header_read_timeout)
            .accept(stream, ());
        let Ok((stream, _)) = handshake.await else {
            return; // a failed or timed-out handshake: nothing to answer
        };
        let alpn = stream.get_ref().1.alpn_protocol();
        if alpn == Some(crate::acme::ACME_TLS_ALPN) {
            return; // a TLS-ALPN-01 validation: the handshake was the answer (RFC 8737)
        }
        let h2 = alpn == Some(b"h2".as_slice());
        if h2 {
            self.serve_http2(stream).await;
        } else {
            self.serve_http1(stream).await;
        }
    }

    /// Serves HTTP/1.1 on `io` until the client leaves, an error or timeout ends it, or `stop`
    /// turns true or the slots ask it to close (then the request in progress finishes first);
    /// then lingers, unless the server itself asked it to close. hyper's header-read timer
    /// runs whenever a request head is awaited, a fresh or kept-alive connection included.
    pub(super) async fn serve_http1<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            app,
            peer,
            limits,
            mut stop,
            claim,
            one_request,
        } = self;
        let mut connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .keep_alive(!one_request)
            .header_read_timeout(limits.header_read_timeout)
            .max_headers(limits.max_headers)
            .max_buf_size(limits.max_header_bytes)
            .serve_connection(
                TokioIo::new(io),
                service(app, peer, claim.activity.clone(), limits.max_headers),
            );
        let mut stopping = false;
        let ended = loop {
            tokio::select! {
                ended = std::future::poll_fn(|cx| connection.poll_without_shutdown(cx)) => break ended,
                _ = stop.wait_for(|stop| *stop), if !stopping && !one_request => {
                    stopping = true;
                    if claim.activity.has_begun() {
                        Pin::new(&mut connection).graceful_shutdown();
                    } else {
                        // Connected before the stop, its first request not yet read (hyper
                        // would close it as idle): served that one request, like a client
                        // taken from the backlog, within the header-read timeout.
                        claim.activity.answer_last();
                    }
                }
                () = claim.activity.close_requested(), if !stopping => {
                    // hyper's graceful shutdown waits for a first request that may never
                    // come: with no request in progress (none can start while this task is
                    // here), the connection is simply closed.
                    if claim.activity.is_idle() {
                        return;
                    }
                    stopping = true;
                    Pin::new(&mut connection).graceful_shutdown();
                }
            }
        };
        // A client that timed out or broke the protocol mid-headers gets no more time.
        let linger = match &ended {
            Ok(()) => !stopping,
            Err(error) => error.is_parse() || error.is_parse_too_large(),
        };
        let mut io = connection.into_parts().io.into_inner();
        if linger {
            lingering_close(&mut io).await;
        } else {
            let _ = io.shutdown().await;
        }
    }

    /// Serves HTTP/2 with the bounds of HTTP/1.1: the header list is limited to
    /// `max_header_bytes` (h2 answers 431 past it), the header count to `max_headers` (431
    /// from [`service`]), and a connection with no request in progress for
    /// `header_read_timeout` (one that completed its handshake and sent nothing, or went
    /// quiet after its last answer) is closed, as hyper's header-read timer does for HTTP/1.1.
    async fn serve_http2<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            app,
            peer,
            limits,
            mut stop,
            claim,
            one_request: _,
        } = self;
        let header_list = u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX);
        let connection = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_header_list_size(header_list)
            .max_concurrent_streams(MAX_STREAMS)
            .serve_connection(
                TokioIo::new(io),
                service(app, peer, claim.activity.clone(), limits.max_headers),
            );
        let mut connection = std::pin::pin!(connection);
        let idle_limit = limits.header_read_timeout;
        let mut stopping = false;
        loop {
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = stop.wait_for(|stop| *stop), if !stopping => {
                    stopping = true;
                    connection.as_mut().graceful_shutdown();
                }
                () = claim.activity.close_requested() => {
                    if claim.activity.is_idle() {
                        return;
                    }
                    connection.as_mut().graceful_shutdown();
                }
                // Checked at a quarter of the limit: closed between 1 and 1.25 times it.
                () = tokio::time::sleep(idle_limit / 4) => {
                    if claim.activity.idle_for() >= Some(idle_limit) {
                        return;
                    }
                }
            }
        }
    }
}

/// The 431 for a request with more than `AERIE_MAX_HEADERS` fields, in the error shape.
fn too_many_headers() -> Response {
    let body = serde_json::json!({ "errors": { "headers": ["too many header fields"] } });
    let mut response = axum::Json(body).into_response();
    *response.status_mut() = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
    response
}

/// Ends the response stream, then reads and discards what the client still sends (bounded
/// by [`LINGER_BYTES`] and [`LINGER_TIME`]), so the close does not reset the answer away.
async fn lingering_close<I: AsyncRead + AsyncWrite + Unpin>(io: &mut I) {
    if io.shutdown().await.is_err() {
        return;
    }
    let mut sink = vec![0u8; 16 * 1024];
    let mut left = LINGER_BYTES;
    let _ = tokio::time::timeout(LINGER_TIME, async {
        while left > 0 {
            match io.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}
