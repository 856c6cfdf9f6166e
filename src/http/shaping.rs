//! The layer that shapes answers: refuses an HTTP/1.1 request without exactly one `Host`
//! (see [`crate::defense::host`]), and gives every error answer from further in the
//! documented shape ([`normalize_error_body`]).
//!
//! A tower service that calls the stack in place (see [`crate::stack`]).

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use super::edge::REQUEST_ID;
use super::error::{Error, normalize_error_body};
use crate::stack::{Answer, Stack};

/// See the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct ShapeAnswers;

impl<S> Layer<S> for ShapeAnswers {
    type Service = ShapeAnswersService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ShapeAnswersService { inner }
    }
}

/// [`ShapeAnswers`] around the stack `S`.
#[derive(Debug, Clone)]
pub struct ShapeAnswersService<S> {
    inner: S,
}

impl<S: Stack> Service<Request> for ShapeAnswersService<S> {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if let Err(refused) = crate::defense::host::check(request.version(), request.headers()) {
            let refusal = Error::from(refused).into_response();
            return Box::pin(std::future::ready(Ok(refusal)));
        }
        // A clone of the header shares its bytes; only a 5xx reads it as text.
        let request_id = request.headers().get(&REQUEST_ID).cloned();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let Ok(response) = answer.await;
            Ok(normalize_error_body(
                response.map(Body::new),
                request_id.as_ref(),
            ))
        })
    }
}
