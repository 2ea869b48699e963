//! `xray-http`: the API Gateway Lambda. When `AWS_LAMBDA_RUNTIME_API` is unset it serves the
//! same routes over plain HTTP on 127.0.0.1:3000 (`XRAY_HOST` and `PORT` override) instead.

// A panic aborts a Lambda sandbox: non-test code returns errors instead.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use covid_xray::Classifier;
use covid_xray::api::App;
use covid_xray::api::jwt::JwtVerifier;
use covid_xray::config::{self, AuthMode, HttpConfig, ServerConfig};
use lambda_http::service_fn;

/// The covid-xray HTTP service: POST /predict, GET /health and the upload page at GET /.
///
/// Under AWS Lambda (or `cargo lambda watch`) it answers API Gateway events; elsewhere it
/// serves plain HTTP. Educational software, not a medical device.
#[derive(Parser)]
#[command(
    name = "xray-http",
    version,
    after_help = "Settings (environment): XRAY_HOST (default 127.0.0.1), PORT (default 3000), \
XRAY_MAX_BODY_BYTES (default 6291456), XRAY_ALLOWED_BUCKETS, XRAY_MAX_OBJECT_BYTES \
(default 20971520), XRAY_CORS_ALLOW_ORIGIN, XRAY_MODEL_PATH, XRAY_AUTH (iam, jwt or none; \
required on Lambda), XRAY_JWT_ISSUER, XRAY_JWT_AUDIENCE, XRAY_JWT_CLIENT_ID, XRAY_JWKS_FILE, \
XRAY_METRICS (emf or off), RUST_LOG or AWS_LAMBDA_LOG_LEVEL, AWS_LAMBDA_LOG_FORMAT=JSON. \
See README.md."
)]
struct Args {}

fn main() -> ExitCode {
    Args::parse();
    config::run_binary("xray-http", run())
}

/// The local server's token check in `jwt` mode, from `XRAY_JWKS_FILE`, `XRAY_JWT_ISSUER`
/// and `XRAY_JWT_AUDIENCE`: all three are needed, or the server does not start.
fn local_jwt_verifier(http: &HttpConfig) -> Result<JwtVerifier, String> {
    let missing =
        |var: &str| format!("XRAY_AUTH=jwt off Lambda needs {var} (README: running locally)");
    let path = http
        .jwks_file
        .as_ref()
        .ok_or_else(|| missing("XRAY_JWKS_FILE"))?;
    let issuer = http
        .jwt_issuer
        .as_deref()
        .ok_or_else(|| missing("XRAY_JWT_ISSUER"))?;
    if http.jwt_audiences.is_empty() {
        return Err(missing("XRAY_JWT_AUDIENCE"));
    }
    let jwks = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read XRAY_JWKS_FILE {}: {e}", path.display()))?;
    JwtVerifier::from_jwks(&jwks, issuer, &http.jwt_audiences)
        .map_err(|e| format!("XRAY_JWKS_FILE {}: {e}", path.display()))
}

async fn run() -> Result<(), String> {
    config::init_logging();
    // Settings first: a bad one is refused before anything else starts.
    let on_lambda = config::lambda_environment().map_err(|e| e.to_string())?;
    let http = HttpConfig::from_env().map_err(|e| e.to_string())?;
    let server = if on_lambda {
        None
    } else {
        Some(ServerConfig::from_env().map_err(|e| e.to_string())?)
    };
    // Built once per process, before the runtime loop: warm invocations reuse it.
    let classifier = Classifier::from_env().map_err(|e| e.to_string())?;
    let metrics = covid_xray::metrics::Metrics::from_lookup(|v| std::env::var(v).ok(), on_lambda);
    let mut app = App::new(classifier, http.clone()).with_metrics(metrics);
    if http.auth == AuthMode::Jwt && !on_lambda {
        // No API Gateway in front: check bearer tokens here, as its JWT authorizer would.
        app = app.with_jwt_verifier(local_jwt_verifier(&http)?);
    }
    if !http.allowed_buckets.is_empty() {
        // One S3 client per process, built at init, only where S3 references are allowed.
        app = app.with_store(Arc::new(covid_xray::s3::S3Store::from_env().await));
    }

    let Some(server) = server else {
        return lambda_http::run(service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, std::convert::Infallible>(app.handle(req).await) }
        }))
        .await
        .map_err(|e| format!("the Lambda runtime stopped: {e}"));
    };
    let listener = tokio::net::TcpListener::bind((server.host, server.port))
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {}:{}: {e}; set PORT (and XRAY_HOST) to a free address",
                server.host, server.port
            )
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("the listening socket has no address: {e}"))?;
    println!("xray-http listening on http://{addr}/ (open it in a browser to upload an X-ray)");
    covid_xray::api::local::serve(app, listener)
        .await
        .map_err(|e| format!("the server stopped: {e}"))
}
