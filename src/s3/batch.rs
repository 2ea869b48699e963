//! S3 Batch Operations: classify every object of a manifest (a CSV or an S3 Inventory
//! report) through the `LambdaInvoke` operation, so that an archive needs no fan-out code of
//! its own. Batch invokes the function for each task, retries the tasks it is told to, and
//! writes a completion report; this module answers one invocation.
//!
//! Each task goes through the trigger's own path ([`classify_to_result`]), so a film
//! classified by a batch job gets the same result object as an uploaded one. Its key is
//! `XRAY_RESULTS_PREFIX` + the object's whole key (+ `.version-<id>` when the task names a
//! version) + `.json`, in `XRAY_RESULTS_BUCKET` or the object's bucket: distinct objects and
//! distinct versions get distinct results, and a retried task rewrites its own.
//!
//! The answer tells Batch what to do with each task:
//! - `Succeeded`: a prediction was written (`resultString` "covid 0.9312").
//! - `PermanentFailure`: retrying cannot help, and the error result says why where it could
//!   be written: not an image, not a chest X-ray, no such key, access denied, too large.
//! - `TemporaryFailure`: S3 throttled, answered 5xx or timed out, or the model failed: Batch
//!   retries the task.
//!
//! `resultString` never holds the key (keys can name patients), only a label and P(covid), or
//! an error code.
//!
//! Both invocation schemas are read: 1.0 names the bucket by ARN (`s3BucketArn`), 2.0 by name
//! (`s3Bucket`, as directory buckets need) and may carry `job.userArguments`. Keys arrive
//! URL-encoded as in the manifest and are percent-decoded (`+` stays a plus, as S3's own
//! examples decode them).

use std::collections::BTreeMap;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::config::TriggerConfig;
use crate::model::Classifier;
use crate::s3::store::{ObjectStore, StoreError};
use crate::s3::trigger::{Outcome, RecordError, Target, classify_to_result, redact};

/// One invocation of the function by S3 Batch Operations (schema 1.0 or 2.0).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BatchEvent {
    /// `1.0` or `2.0`; echoed in the answer.
    pub invocation_schema_version: String,
    /// Echoed in the answer.
    pub invocation_id: String,
    /// The job.
    #[serde(default)]
    pub job: BatchJob,
    /// The tasks: one per object (Batch sends one per invocation today).
    pub tasks: Vec<BatchTask>,
}

/// The job an invocation belongs to.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BatchJob {
    /// The job id.
    #[serde(default)]
    pub id: Option<String>,
    /// Schema 2.0's key-value arguments of the job. None is read today; they are accepted so
    /// that a job created with them still runs.
    #[serde(default)]
    pub user_arguments: Option<BTreeMap<String, String>>,
}

/// One object to process.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BatchTask {
    /// Echoed in the answer.
    pub task_id: String,
    /// The key, URL-encoded as in the manifest.
    #[serde(default)]
    pub s3_key: Option<String>,
    /// The version, when the manifest names one.
    #[serde(default)]
    pub s3_version_id: Option<String>,
    /// Schema 1.0: `arn:aws:s3:::bucket`.
    #[serde(default)]
    pub s3_bucket_arn: Option<String>,
    /// Schema 2.0: the bucket's name.
    #[serde(default)]
    pub s3_bucket: Option<String>,
}

impl BatchTask {
    /// The bucket's name, from either schema.
    pub fn bucket(&self) -> Option<&str> {
        let from_arn = || {
            self.s3_bucket_arn
                .as_deref()
                .and_then(|arn| arn.rsplit(':').next())
        };
        self.s3_bucket
            .as_deref()
            .or_else(from_arn)
            .filter(|b| !b.is_empty())
    }
}

/// What Batch is told about a task.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
pub enum ResultCode {
    /// Done: a prediction was written.
    Succeeded,
    /// Worth retrying: Batch retries the task.
    TemporaryFailure,
    /// Final: Batch records it in the completion report.
    PermanentFailure,
}

/// The answer to one task.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TaskResult {
    /// The task's id.
    pub task_id: String,
    /// What Batch does next.
    pub result_code: ResultCode,
    /// Label and P(covid), or an error code: never the key.
    pub result_string: String,
}

/// The answer to an invocation, as Batch reads it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    /// The event's.
    pub invocation_schema_version: String,
    /// What Batch makes of a task missing from `results`. Every task is answered, so this
    /// only matters if that ever fails: such a task is reported, not silently retried.
    pub treat_missing_keys_as: ResultCode,
    /// The event's.
    pub invocation_id: String,
    /// One per task, in the event's order.
    pub results: Vec<TaskResult>,
}

/// The result key of a batch task: the whole key under the results prefix, and the version
/// when one is named, so that neither two objects nor two versions share a result.
pub fn result_key(config: &TriggerConfig, key: &str, version_id: Option<&str>) -> String {
    match version_id {
        Some(v) => format!("{}{key}.version-{v}.json", config.results_prefix),
        None => format!("{}{key}.json", config.results_prefix),
    }
}

/// Answers one invocation: every task is processed (at most `config.concurrency` at a time)
/// and answered, in the event's order.
pub async fn handle_batch(
    classifier: &Classifier,
    store: &dyn ObjectStore,
    config: &TriggerConfig,
    event: BatchEvent,
    request_id: &str,
) -> BatchResponse {
    let results = futures_util::stream::iter(event.tasks)
        .map(|task| process_task(classifier, store, config, task, request_id))
        .buffered(config.concurrency.max(1))
        .collect()
        .await;
    BatchResponse {
        invocation_schema_version: event.invocation_schema_version,
        treat_missing_keys_as: ResultCode::PermanentFailure,
        invocation_id: event.invocation_id,
        results,
    }
}

async fn process_task(
    classifier: &Classifier,
    store: &dyn ObjectStore,
    config: &TriggerConfig,
    task: BatchTask,
    request_id: &str,
) -> TaskResult {
    let answer = |result_code, result_string: &str| TaskResult {
        task_id: task.task_id.clone(),
        result_code,
        result_string: result_string.to_string(),
    };
    let (Some(bucket), Some(raw_key)) = (task.bucket(), task.s3_key.as_deref()) else {
        tracing::warn!(request_id, "batch task without a bucket or key");
        return answer(
            ResultCode::PermanentFailure,
            "invalid_task: no bucket or key",
        );
    };
    let key = decode_key(raw_key);
    let results_bucket = config
        .results_bucket
        .clone()
        .unwrap_or_else(|| bucket.to_string());
    // An inventory of the whole bucket lists the results too: they are not X-rays, and a
    // result of a result would only clutter the prefix.
    if results_bucket == bucket && key.starts_with(&config.results_prefix) {
        tracing::info!(request_id, key = redact(&key), "result object skipped");
        return answer(ResultCode::Succeeded, "skipped: a result object");
    }
    let version_id = task.s3_version_id.clone().filter(|v| !v.is_empty());
    let target = Target {
        bucket: bucket.to_string(),
        result_key: result_key(config, &key, version_id.as_deref()),
        key,
        version_id,
        etag: None,
        results_bucket,
    };
    // Every read failure but a transient one is final for a batch task: Batch reports it, and
    // running the job again (or its failed tasks) after the cause is fixed retries it.
    let final_read = |e: &StoreError| !matches!(e, StoreError::Transient(_));
    match classify_to_result(classifier, store, config, target, &final_read, request_id).await {
        Ok(Outcome::Classified { label, p_covid, .. }) => {
            answer(ResultCode::Succeeded, &format!("{label} {p_covid:.4}"))
        }
        Ok(Outcome::Rejected { code, .. }) => answer(ResultCode::PermanentFailure, code),
        Ok(Outcome::Ignored) => answer(ResultCode::Succeeded, "skipped"),
        Err(e) => {
            tracing::warn!(request_id, error = %e, "batch task failed");
            let (code, text) = failure(&e);
            answer(code, text)
        }
    }
}

/// A task that wrote nothing: retry what may pass later, report the rest.
fn failure(e: &RecordError) -> (ResultCode, &'static str) {
    use ResultCode::{PermanentFailure, TemporaryFailure};
    match e {
        RecordError::Read {
            source: StoreError::Transient(_),
            ..
        } => (TemporaryFailure, "s3_unavailable"),
        RecordError::Write { source, .. } => match source {
            StoreError::Transient(_) => (TemporaryFailure, "s3_unavailable: writing the result"),
            StoreError::AccessDenied => (PermanentFailure, "results_access_denied"),
            StoreError::NotFound => (PermanentFailure, "results_bucket_not_found"),
            StoreError::TooLarge { .. } => (PermanentFailure, "result_too_large"),
        },
        // Unreachable: every other read failure is final and written as an error result.
        RecordError::Read { .. } => (PermanentFailure, "s3_read_failed"),
        RecordError::Classify(_) => (TemporaryFailure, "model_error"),
        RecordError::WouldRetrigger(_) => (PermanentFailure, "would_retrigger"),
        RecordError::Serialise(_) => (PermanentFailure, "internal_error"),
    }
}

/// A key as a Batch manifest carries it: percent-encoded, with `+` a plus (the trigger's
/// notifications are form-encoded instead: [`crate::s3::trigger::decode_key`]).
pub fn decode_key(raw: &str) -> String {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_schemas_name_the_bucket() {
        let v1: BatchEvent = serde_json::from_str(include_str!("../../events/s3-batch-v1.json"))
            .expect("schema 1.0");
        let v2: BatchEvent = serde_json::from_str(include_str!("../../events/s3-batch-v2.json"))
            .expect("schema 2.0");
        assert_eq!(v1.tasks[0].bucket(), Some("xray-archive"));
        assert_eq!(v2.tasks[0].bucket(), Some("xray-archive"));
        assert!(v2.job.user_arguments.is_some());
        assert_eq!(v1.invocation_schema_version, "1.0");
        assert_eq!(v2.invocation_schema_version, "2.0");
    }

    #[test]
    fn keys_are_percent_decoded_and_plus_stays() {
        assert_eq!(
            decode_key("archive/ward%203/r%C3%B6ntgen%20a+b.png"),
            "archive/ward 3/röntgen a+b.png"
        );
    }

    #[test]
    fn result_keys_keep_versions_apart() {
        let c = TriggerConfig::default();
        assert_eq!(result_key(&c, "a/b.png", None), "results/a/b.png.json");
        assert_eq!(
            result_key(&c, "a/b.png", Some("v1")),
            "results/a/b.png.version-v1.json"
        );
        assert_ne!(
            result_key(&c, "a/b.png", Some("v1")),
            result_key(&c, "a/b.png", Some("v2"))
        );
    }

    #[test]
    fn the_answer_is_shaped_as_batch_reads_it() {
        let r = BatchResponse {
            invocation_schema_version: "2.0".into(),
            treat_missing_keys_as: ResultCode::PermanentFailure,
            invocation_id: "inv".into(),
            results: vec![TaskResult {
                task_id: "t".into(),
                result_code: ResultCode::TemporaryFailure,
                result_string: "s3_unavailable".into(),
            }],
        };
        let v = serde_json::to_value(&r).expect("json");
        assert_eq!(
            v,
            serde_json::json!({
                "invocationSchemaVersion": "2.0",
                "treatMissingKeysAs": "PermanentFailure",
                "invocationId": "inv",
                "results": [{"taskId": "t", "resultCode": "TemporaryFailure", "resultString": "s3_unavailable"}]
            })
        );
    }
}
