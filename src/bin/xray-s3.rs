//! `xray-s3`: the S3 Lambda. Classifies each uploaded X-ray (an S3 notification) or each
//! object of an S3 Batch Operations job, and writes its result JSON back to S3 (see
//! `covid_xray::s3::trigger` and `covid_xray::s3::batch`).

// A panic aborts a Lambda sandbox: non-test code returns errors instead.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::process::ExitCode;

use clap::Parser;
use covid_xray::Classifier;
use covid_xray::config::{self, TriggerConfig};
use covid_xray::s3::S3Store;
use covid_xray::s3::invocation;
use lambda_runtime::{LambdaEvent, service_fn};

/// The covid-xray S3 function: classifies every X-ray uploaded under XRAY_UPLOAD_PREFIX (S3
/// notifications) or named by an S3 Batch Operations job, and writes its result JSON under
/// XRAY_RESULTS_PREFIX.
///
/// It runs only under AWS Lambda or `cargo lambda watch`. Educational software, not a
/// medical device.
#[derive(Parser)]
#[command(
    name = "xray-s3",
    version,
    after_help = "Settings (environment): XRAY_UPLOAD_PREFIX (default uploads/), \
XRAY_RESULTS_PREFIX (default results/), XRAY_RESULTS_BUCKET (default: the upload's bucket), \
XRAY_MAX_OBJECT_BYTES (default 20971520), XRAY_CONCURRENCY (default 4), XRAY_MODEL_PATH, \
RUST_LOG or AWS_LAMBDA_LOG_LEVEL, AWS_LAMBDA_LOG_FORMAT=JSON. See README.md."
)]
struct Args {}

fn main() -> ExitCode {
    Args::parse();
    config::run_binary("xray-s3", run())
}

async fn run() -> Result<(), String> {
    config::init_logging();
    // A configuration that could retrigger itself, or a bad setting, never starts.
    let config = TriggerConfig::from_env().map_err(|e| format!("refusing to start: {e}"))?;
    if !config::lambda_environment().map_err(|e| e.to_string())? {
        return Err("AWS_LAMBDA_RUNTIME_API is not set: xray-s3 answers S3 events and runs only \
                    under AWS Lambda or `cargo lambda watch` (to classify files, use `xray predict`)"
            .into());
    }
    let classifier = Classifier::from_env().map_err(|e| e.to_string())?;
    covid_xray::metrics::install(covid_xray::metrics::Metrics::from_lookup(
        |v| std::env::var(v).ok(),
        true,
    ));
    let store = S3Store::from_env().await;
    let (classifier, store, config) = (&classifier, &store, &config);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            invocation::handle(
                classifier,
                store,
                config,
                event.payload,
                &event.context.request_id,
            )
            .await
            .map_err(lambda_runtime::Error::from)
        },
    ))
    .await
    .map_err(|e| format!("the Lambda runtime stopped: {e}"))
}
