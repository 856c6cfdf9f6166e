//! The layer that shapes answers: refuses an HTTP/1.1 request without exactly one `Host`
//! (see [`crate::defense::host`]), and gives every error answer from further in the
//! documented shape ([`normalize_error_body`]).
//!
//! A step that calls the stack in place (see [`crate::stack`]).

use axum::body::Body;
use axum::extract::Request;
use axum::response::IntoResponse;

use super::edge::REQUEST_ID;
use super::error::{Error, normalize_error_body};
use crate::stack::{Answer, Stack, Step};

/// See the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct ShapeAnswers;

impl<S: Stack> Step<S> for ShapeAnswers {
    type Future = Answer;

    fn call(&self, inner: &mut S, request: Request) -> Answer {
        if let Err(refused) = crate::defense::host::check(request.version(), request.headers()) {
            let refusal = Error::from(refused).into_response();
            return Box::pin(std::future::ready(Ok(refusal)));
        }
        // A clone of the header shares its bytes; only a 5xx reads it as text.
        let request_id = request.headers().get(&REQUEST_ID).cloned();
        let answer = inner.call(request);
        Box::pin(async move {
            let Ok(response) = answer.await;
            Ok(normalize_error_body(
                response.map(Body::new),
                request_id.as_ref(),
            ))
        })
    }
}
