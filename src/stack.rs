//! What Aerie's hand-written tower layers wrap: the stack beneath them, which takes a request,
//! never fails, and answers with any body axum can box (tower-http's layers change the body
//! type on the way out). Named once here so each layer states its bounds in one word.
//!
//! Why hand-written layers at all: `axum::middleware::from_fn` clones the whole stack beneath
//! it for every request and boxes the clone and the future; a layer that calls the stack in
//! place boxes only its answer (BENCHMARKS.md, "Layers that call the stack in place").

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;

use axum::BoxError;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::response::Response;
use tower::Service;

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

    /// Calls the stack, which must have been polled ready; its answer boxed with axum's body.
    fn call_boxed(&mut self, request: Request) -> Answer {
        let answer = self.call(request);
        Box::pin(async move {
            let Ok(response) = answer.await;
            Ok(response.map(Body::new))
        })
    }
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
