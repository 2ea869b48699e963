//! `xray-s3`: the S3 upload trigger Lambda. Classifies each uploaded X-ray and writes its
//! result JSON back to S3 (see `covid_xray::trigger`).

// A panic aborts a Lambda sandbox: non-test code returns errors instead.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use aws_lambda_events::event::s3::S3Event;
use covid_xray::Classifier;
use covid_xray::s3::S3Store;
use covid_xray::trigger::{self, TriggerConfig};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = TriggerConfig::from_env();
    // A configuration that could retrigger itself never starts.
    if let Err(e) = config.validate() {
        tracing::error!("{e}");
        eprintln!("xray-s3: {e}");
        std::process::exit(2);
    }
    let classifier = Classifier::from_env()?;
    let store = S3Store::from_env().await;
    let (classifier, store, config) = (&classifier, &store, &config);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<S3Event>| async move {
        let outcomes = trigger::handle_event(
            classifier,
            store,
            config,
            event.payload,
            &event.context.request_id,
        )
        .await?;
        Ok::<_, Error>(serde_json::json!({ "records": outcomes.len() }))
    }))
    .await
}
