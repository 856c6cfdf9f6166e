//! The layer that shapes answers: refuses an HTTP/1.1 request without exactly one `Host`
//! (see [`crate::defense::host`]), and gives every error answer from further in the
//! documented shape ([`normalize_error_body`]).
//!
//! A step that calls the stack in place (see [`crate::stack`]).

use axum::extract::Request;
use axum::response::IntoResponse;

use super::edge::REQUEST_ID;
use super::error::{Error, normalize_error_body};
use crate::stack::{Answer, Stack, Step, answered};

/// See the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct ShapeAnswers;

impl<S: Stack> Step<S> for ShapeAnswers {
    type Future = Answer;

    fn call(&self, inner: &mut S, request: Request) -> Answer {
        if let Err(refused) = crate::defense::host::check(request.version(), request.headers()) {
            return answered(Error::from(refused).into_response());
        }
        // A clone of the header shares its bytes; only a 5xx reads it as text.
        let request_id = request.headers().get(&REQUEST_ID).cloned();
        let answer = inner.answer(request);
        Box::pin(async move {
            let Ok(response) = answer.await;
            Ok(normalize_error_body(response, request_id.as_ref()))
        })
    }
}
