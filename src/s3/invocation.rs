//! What `xray-s3` is invoked with, told apart by shape: an S3 event notification (an upload)
//! or an S3 Batch Operations task list (an archive). One function serves both, so a
//! deployment has one model, one configuration and one result format.

use aws_lambda_events::event::s3::S3Event;
use serde_json::Value;

use crate::config::TriggerConfig;
use crate::model::Classifier;
use crate::s3::batch::{self, BatchEvent};
use crate::s3::store::ObjectStore;
use crate::s3::trigger::{self, RetryableFailure};

/// An invocation of `xray-s3`.
#[derive(Debug, Clone)]
pub enum Invocation {
    /// S3 event notifications (`Records`).
    Notification(S3Event),
    /// S3 Batch Operations (`invocationSchemaVersion`, `tasks`).
    Batch(BatchEvent),
}

/// Why an invocation failed as a whole: Lambda retries it, or sends it to the on-failure
/// destination.
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    /// Neither an S3 notification nor a Batch invocation.
    #[error("not an S3 event notification nor an S3 Batch Operations invocation")]
    Unrecognised,
    /// The right shape with a wrong field.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// Which kind of event.
        what: &'static str,
        /// serde's message (it names fields, never values).
        detail: String,
    },
    /// Some notification records must be retried.
    #[error(transparent)]
    Retry(#[from] RetryableFailure),
}

impl Invocation {
    /// Tells the two kinds apart by their top-level fields.
    pub fn from_value(v: Value) -> Result<Invocation, InvocationError> {
        let has = |k: &str| v.get(k).is_some();
        let malformed = |what| {
            move |e: serde_json::Error| InvocationError::Malformed {
                what,
                detail: e.to_string(),
            }
        };
        if has("Records") {
            serde_json::from_value(v)
                .map(Invocation::Notification)
                .map_err(malformed("S3 event notification"))
        } else if has("invocationSchemaVersion") && has("tasks") {
            serde_json::from_value(v)
                .map(Invocation::Batch)
                .map_err(malformed("S3 Batch Operations invocation"))
        } else {
            Err(InvocationError::Unrecognised)
        }
    }
}

/// Answers any invocation: `{"records": n}` for notifications, the Batch response for a
/// Batch invocation.
pub async fn handle(
    classifier: &Classifier,
    store: &dyn ObjectStore,
    config: &TriggerConfig,
    event: Value,
    request_id: &str,
) -> Result<Value, InvocationError> {
    match Invocation::from_value(event)? {
        Invocation::Notification(e) => {
            let outcomes = trigger::handle_event(classifier, store, config, e, request_id).await?;
            Ok(serde_json::json!({ "records": outcomes.len() }))
        }
        Invocation::Batch(e) => {
            let response = batch::handle_batch(classifier, store, config, e, request_id).await;
            serde_json::to_value(response).map_err(|e| InvocationError::Malformed {
                what: "Batch response",
                detail: e.to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_told_apart() {
        let put: Value =
            serde_json::from_str(include_str!("../../events/s3-put.json")).expect("json");
        assert!(matches!(
            Invocation::from_value(put),
            Ok(Invocation::Notification(_))
        ));
        for file in [
            include_str!("../../events/s3-batch-v1.json"),
            include_str!("../../events/s3-batch-v2.json"),
        ] {
            let v: Value = serde_json::from_str(file).expect("json");
            assert!(matches!(
                Invocation::from_value(v),
                Ok(Invocation::Batch(_))
            ));
        }
        assert!(matches!(
            Invocation::from_value(serde_json::json!({"hello": 1})),
            Err(InvocationError::Unrecognised)
        ));
        assert!(matches!(
            Invocation::from_value(
                serde_json::json!({"invocationSchemaVersion": "1.0", "tasks": 3})
            ),
            Err(InvocationError::Malformed { .. })
        ));
    }
}
