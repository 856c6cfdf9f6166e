//! instant-acme's HTTP client, on the reqwest client Aerie already carries (rustls on ring,
//! the Mozilla roots), so the ACME client adds no second TLS stack; plus, for a private or
//! test CA, one extra root certificate (`AERIE_ACME_DIRECTORY_ROOT`).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use instant_acme::{BodyWrapper, BytesResponse, Error, HttpClient};

/// A directory that does not answer within this long counts as down.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub struct ReqwestClient(reqwest::Client);

impl ReqwestClient {
    pub fn new(extra_root: Option<&Path>) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .https_only(true);
        if let Some(path) = extra_root {
            let pem = std::fs::read(path)
                .map_err(|e| format!("AERIE_ACME_DIRECTORY_ROOT {}: {e}", path.display()))?;
            let root = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| format!("AERIE_ACME_DIRECTORY_ROOT {}: {e}", path.display()))?;
            builder = builder.add_root_certificate(root);
        }
        builder
            .build()
            .map(Self)
            .map_err(|e| format!("ACME HTTP client: {e}"))
    }
}

fn other(error: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Other(Box::new(error))
}

impl HttpClient for ReqwestClient {
    fn request(
        &self,
        request: axum::http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, Error>> + Send>> {
        let client = self.0.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(never) => match never {},
            };
            let response = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(other)?;
            let mut builder = axum::http::Response::builder().status(response.status());
            if let Some(headers) = builder.headers_mut() {
                *headers = response.headers().clone();
            }
            let bytes = response.bytes().await.map_err(other)?;
            let response = builder.body(Full::new(bytes)).map_err(other)?;
            Ok(BytesResponse::from(response))
        })
    }
}
