//! `xray-http`: the API Gateway Lambda. When `AWS_LAMBDA_RUNTIME_API` is unset it serves the
//! same routes over plain HTTP on 127.0.0.1:3000 (`PORT` overrides) instead.

// A panic aborts a Lambda sandbox: non-test code returns errors instead.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use covid_xray::Classifier;
use covid_xray::app::{App, Config};
use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber_with_writer(std::io::stderr);
    // Built once per process, before the runtime loop: warm invocations reuse it.
    let classifier = Classifier::from_env()?;
    let config = Config::from_env();
    let mut app = App::new(classifier, config.clone());
    if !config.allowed_buckets.is_empty() {
        // One S3 client per process, built at init, only where S3 references are allowed.
        app = app.with_store(std::sync::Arc::new(
            covid_xray::s3::S3Store::from_env().await,
        ));
    }

    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return lambda_http::run(service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, std::convert::Infallible>(app.handle(req).await) }
        }))
        .await;
    }
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    println!("xray-http listening on http://{addr}/ (open it in a browser to upload an X-ray)");
    covid_xray::local::serve(app, listener).await?;
    Ok(())
}
