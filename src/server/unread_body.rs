//! Whether a request's body was read, so that an HTTP/1.1 answer given before it was can say
//! `Connection: close` ([`super::connection`]).
//!
//! hyper keeps a connection whose request body was not read to its end only when the rest
//! of the body already sits in its buffer; otherwise it closes after the answer. It decides
//! that after the answer's head has gone out, so the head does not say so, and a client
//! that pools the connection sends its next request into a closing socket and loses it
//! (`IncompleteMessage`). An answer given early (a refusal by the access table or a rate
//! limit, a body past its limit, a handler that ignores the body) therefore says
//! `Connection: close` itself: the client opens a fresh connection for what comes next,
//! and the lingering close ([`super::connection`]) still reads away what it was sending.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::http::{Request, Version};
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// Whether a request's body has been read to its end; shared by the body and its answer.
#[derive(Clone, Default)]
pub(super) struct BodyRead(Arc<AtomicBool>);

impl BodyRead {
    /// The request as the router takes it, its body wrapped so that reading it to its end is
    /// seen. Only on HTTP/1.x: HTTP/2 ends an unread request's stream, not the connection.
    /// A body already at its end (none at all, or `Content-Length: 0`) has nothing to watch.
    pub(super) fn watch(request: Request<Incoming>) -> (Request<axum::body::Body>, Option<Self>) {
        if request.version() == Version::HTTP_2 || request.body().is_end_stream() {
            return (request.map(axum::body::Body::new), None);
        }
        let read = Self::default();
        let request = request.map(|inner| {
            axum::body::Body::new(Watched {
                inner,
                read: read.clone(),
            })
        });
        (request, Some(read))
    }

    /// Whether the body has been read to its end.
    pub(super) fn was_read(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A request body that records when it has been read to its end.
struct Watched {
    inner: Incoming,
    read: BodyRead,
}

impl Body for Watched {
    type Data = <Incoming as Body>::Data;
    type Error = <Incoming as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        // Read to its end when there is no frame left, which every reader of a whole body
        // (axum's extractors collect it) is told. `is_end_stream` is not forwarded, so none
        // stops one frame short of being told.
        if frame.is_none() {
            self.read.0.store(true, Ordering::Release);
        }
        Poll::Ready(frame)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
