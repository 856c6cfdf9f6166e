//! One accepted connection, served until it ends: HTTP/1.1 with hyper's header bounds and a
//! lingering close.
//!
//! Guards against a refusal the client never sees: when the server answers early (a 413 for
//! a declared body over the limit, a 431) and closes while the request body is still
//! arriving, the kernel answers the unread bytes with a reset, and the reset destroys the
//! answer in the client's receive buffer. So after HTTP/1.1 is done, the write side is shut
//! (the client sees the answer end) and what the client still sends is read and thrown away,
//! at most [`LINGER_BYTES`] for at most [`LINGER_TIME`], before the socket closes.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tower::ServiceExt;

use super::slots::{Activity, Claim};
use crate::config::ConnectionLimits;

/// The most a client may still send after its connection was answered and closed; beyond
/// it, the close resets. Enough for a body that was in flight when the 413 left (the socket
/// buffers of both ends); small enough that discarding it costs nothing.
pub(super) const LINGER_BYTES: usize = 1024 * 1024;

/// How long the discarding goes on at most: a client that keeps sending is cut off then.
pub(super) const LINGER_TIME: Duration = Duration::from_secs(2);

type Response = axum::response::Response;
type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// The router as hyper's service for a connection from `peer`, which handlers read as
/// `ConnectInfo`. The future is boxed, so the connection is `Unpin` and can hand its socket
/// back when it ends.
fn service(
    app: Router,
    peer: SocketAddr,
    activity: Arc<Activity>,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = Response,
    Error = Infallible,
    Future = ResponseFuture,
> + Clone {
    hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        let busy = activity.busy();
        let answer = app.clone().oneshot(request);
        Box::pin(async move {
            let response = answer.await;
            drop(busy);
            response
        }) as ResponseFuture
    })
}

/// Serves HTTP/1.1 on `io` until the client leaves, an error or timeout ends it, or `stop`
/// turns true or the slots ask it to close (then the request in progress finishes first);
/// then lingers, unless the server itself asked it to close.
pub(super) async fn serve_http1<I>(
    io: I,
    app: Router,
    peer: SocketAddr,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
    claim: Claim,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_header_bytes)
        .serve_connection(TokioIo::new(io), service(app, peer, claim.activity.clone()));
    let mut stopping = false;
    let ended = loop {
        tokio::select! {
            ended = std::future::poll_fn(|cx| connection.poll_without_shutdown(cx)) => break ended,
            _ = stop.wait_for(|stop| *stop), if !stopping => {
                stopping = true;
                Pin::new(&mut connection).graceful_shutdown();
            }
            () = claim.activity.close_requested(), if !stopping => {
                // hyper's graceful shutdown waits for a first request that may never come:
                // with no request in progress (none can start while this task is here), the
                // connection is simply closed.
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
