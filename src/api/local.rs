//! The local HTTP server: the same [`App`] as on Lambda, over plain HTTP/1.1 with hyper.
//! Used when `AWS_LAMBDA_RUNTIME_API` is unset (`cargo run`), and by the end-to-end tests.

use std::convert::Infallible;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use lambda_http::Body;
use tokio::net::TcpListener;

use super::App;
use crate::contract::ApiError;

/// How long a client may take to send its headers, then its body.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts connections on `listener` until the process ends; one task per connection.
pub async fn serve(app: App, listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let app = app.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(handle(&app, req).await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(READ_TIMEOUT);
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
}

/// Converts a hyper request into the `lambda_http` shape, runs the app, converts back.
async fn handle(app: &App, req: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
    let started = std::time::Instant::now();
    let (parts, incoming) = req.into_parts();
    let limit = app.config().max_body_bytes;
    // One byte over the limit is read, so a body of exactly the limit passes and the app's
    // own check sees the rest.
    let collected = tokio::time::timeout(
        READ_TIMEOUT,
        Limited::new(incoming, limit.saturating_add(1)).collect(),
    )
    .await;
    let early = match collected {
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::payload_too_large(None, limit))
        }
        Ok(Err(e)) => Err(ApiError::bad_request(
            "bad_body",
            format!("the body could not be read: {e}"),
        )),
        Err(_) => Err(ApiError::new(
            408,
            "request_timeout",
            "the body took too long to arrive",
        )),
    };
    let response = match early {
        Ok(body) => {
            let body = if body.is_empty() {
                Body::Empty
            } else {
                Body::Binary(body.to_vec())
            };
            app.handle(lambda_http::Request::from_parts(parts, body))
                .await
        }
        Err(e) => app.reject(&e, &parts.method, parts.uri.path(), started),
    };
    let (parts, body) = response.into_parts();
    hyper::Response::from_parts(parts, Full::new(Bytes::from(body.to_vec())))
}
