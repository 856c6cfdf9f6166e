//! What Aerie's hand-written tower layers wrap: the stack beneath them, which takes a request,
//! never fails, and answers with any body axum can box (tower-http's layers change the body
//! type on the way out). Named once here so each layer states its bounds in one word.
//!
//! Why hand-written layers at all: `axum::middleware::from_fn` clones the whole stack beneath
//! it for every request and boxes the clone and the future; a layer that calls the stack in
//! place boxes only its answer (BENCHMARKS.md, "Layers that call the stack in place"). Each
//! is a [`Step`] (what it holds and what it does with a request) made a layer by
//! [`InPlace`], so the tower plumbing is written once.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::BoxError;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::response::Response;
use tower::{Layer, Service};

/// A layer's answer, boxed, with axum's body.
pub type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// See the module documentation.
pub trait Stack:
    Service<
        Request,
        Response = axum::http::Response<Self::Body>,
        Error = Infallible,
        Future: Send + 'static,
    >
{
    /// The body the stack answers with.
    type Body: HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + 'static;

    /// Calls the stack, which must have been polled ready, at once; its answer with axum's
    /// body, to await inside a step's own future (no box of its own).
    fn answer(
        &mut self,
        request: Request,
    ) -> impl Future<Output = Result<Response, Infallible>> + Send + 'static + use<Self> {
        let answer = self.call(request);
        async move {
            let Ok(response) = answer.await;
            Ok(response.map(Body::new))
        }
    }

    /// [`Stack::answer`], boxed: for a step that answers with the stack's answer alone.
    fn call_boxed(&mut self, request: Request) -> Answer {
        Box::pin(self.answer(request))
    }
}

/// A step's answer when it answers itself, without calling the stack.
pub fn answered(response: Response) -> Answer {
    Box::pin(std::future::ready(Ok(response)))
}

impl<S, B> Stack for S
where
    S: Service<Request, Response = axum::http::Response<B>, Error = Infallible>,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Body = B;
}

/// A hand-written layer's step: what it holds, decided once at start, and what it does with
/// each request, given the stack beneath it to call in place. [`InPlace`] makes it a layer.
pub trait Step<S>: Clone {
    /// The step's answer.
    type Future: Future<Output = Result<Response, Infallible>> + Send + 'static;

    /// Handles `request`; `inner` has been polled ready. A step that answers later than it
    /// is called (after an `.await`) takes `inner` out and leaves a clone in its place.
    fn call(&self, inner: &mut S, request: Request) -> Self::Future;
}

/// The layer that puts a [`Step`] in front of a stack.
#[derive(Debug, Clone)]
pub struct InPlace<T>(pub T);

impl<T: Clone, S> Layer<S> for InPlace<T> {
    type Service = InPlaceService<T, S>;

    fn layer(&self, inner: S) -> Self::Service {
        InPlaceService {
            step: self.0.clone(),
            inner,
        }
    }
}

/// The step `T` in front of the stack `S`.
#[derive(Debug, Clone)]
pub struct InPlaceService<T, S> {
    step: T,
    inner: S,
}

impl<T: Step<S>, S: Stack> Service<Request> for InPlaceService<T, S> {
    type Response = Response;
    type Error = Infallible;
    type Future = T::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.step.call(&mut self.inner, request)
    }
}

/// Takes the stack that was polled ready out of `inner` for a step that answers after an
/// `.await`, leaving a clone (not yet polled) in its place.
pub fn take_ready<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}
