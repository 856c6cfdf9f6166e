//! The layer that shapes answers: refuses an HTTP/1.1 request without exactly one `Host`
//! (see [`crate::defense::host`]), answers a panic anywhere further in as a bare 500 (the
//! server goes on; the cause goes to the log, never to the client), and gives every error
//! answer from further in the documented shape ([`normalize_error_body`]).
//!
//! A step that calls the stack in place (see [`crate::stack`]). Catching panics here rather
//! than in `tower-http`'s `CatchPanicLayer` beneath it saves a layer, its future and the box
//! it puts every body in (BENCHMARKS.md, "Fat LTO, and panics and the request span at the steps").

use std::any::Any;
use std::panic::AssertUnwindSafe;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;

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
        // The stack can panic while it is called as well as while its answer is polled.
        let answer = match std::panic::catch_unwind(AssertUnwindSafe(|| inner.answer(request))) {
            Ok(answer) => answer,
            Err(panic) => {
                return answered(normalize_error_body(
                    panicked(panic.as_ref()),
                    request_id.as_ref(),
                ));
            }
        };
        Box::pin(async move {
            let response = match AssertUnwindSafe(answer).catch_unwind().await {
                Ok(Ok(response)) => response,
                Err(panic) => panicked(panic.as_ref()),
            };
            Ok(normalize_error_body(response, request_id.as_ref()))
        })
    }
}

/// The answer to a panic: a 500 with no detail, which [`normalize_error_body`] then shapes
/// with the request id; the panic's message is logged, escaped like any untrusted text.
fn panicked(panic: &(dyn Any + Send)) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(not text)");
    tracing::error!(
        panic = %crate::telemetry::untrusted(message),
        "a request's handling panicked"
    );
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::body::Body;
    use tower::{Layer, ServiceExt};

    use super::*;
    use crate::stack::InPlace;

    async fn answer_of<S>(stack: S) -> (StatusCode, serde_json::Value)
    where
        S: Stack + Clone,
    {
        let request = Request::builder()
            .uri("/")
            .header(axum::http::header::HOST, "localhost")
            .header(REQUEST_ID, "ticket-7")
            .body(Body::empty())
            .expect("request");
        let Ok(response) = InPlace(ShapeAnswers).layer(stack).oneshot(request).await;
        crate::http::answers_for_tests::status_and_json(response).await
    }

    /// A stack that panics when called, before it has a future to poll, and one whose future
    /// panics when polled: both are a shaped 500 that names the request and nothing else.
    #[tokio::test]
    async fn a_panic_while_calling_or_polling_the_stack_is_a_shaped_500() {
        let shaped = serde_json::json!({
            "errors": {"body": ["internal error"]},
            "requestId": "ticket-7",
        });
        let panics_when_called = tower::service_fn(
            |_: Request| -> std::future::Ready<Result<Response, Infallible>> {
                panic!("secret detail: called")
            },
        );
        assert_eq!(
            answer_of(panics_when_called).await,
            (StatusCode::INTERNAL_SERVER_ERROR, shaped.clone())
        );
        let panics_when_polled = tower::service_fn(|_: Request| async {
            if true {
                panic!("secret detail: polled");
            }
            Ok::<Response, Infallible>(StatusCode::OK.into_response())
        });
        assert_eq!(
            answer_of(panics_when_polled).await,
            (StatusCode::INTERNAL_SERVER_ERROR, shaped)
        );
    }
}
