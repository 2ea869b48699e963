//! The S3 upload trigger: every X-ray uploaded under the upload prefix is classified and its
//! result written back as JSON under the results prefix.
//!
//! Safety properties, each tested:
//! - **No retrigger loop.** A result key can never fall under the upload prefix: such a
//!   configuration is refused at start-up ([`TriggerConfig::validate`](crate::config::TriggerConfig::validate)), and each record is
//!   checked again before writing.
//! - **Nothing lost.** A record ends in a result object (a prediction, or an error result for
//!   an object that is not a readable X-ray: a final answer), or the invocation fails so that
//!   Lambda retries it (S3 unreachable, throttled, 5xx) and, after its retries, sends it to
//!   the on-failure destination.
//! - **Idempotent.** The result key depends only on the source key, so a retry rewrites the
//!   same object with the same answer.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::s3::{S3Event, S3EventRecord};
use futures_util::StreamExt;

use crate::config::TriggerConfig;
use crate::contract::{Answer, ApiError, ResultObject, ResultOutcome, SourceObject};
use crate::model::Classifier;
use crate::s3::store::{ObjectMeta, ObjectStore, StoreError};

/// An S3 key as it appears in the event, decoded: `+` is a space, then percent-decoding.
/// AWS sends keys form-encoded, and the crate's `url_decoded_key` is never filled.
pub fn decode_key(raw: &str) -> String {
    let plus_as_space = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8_lossy()
        .into_owned()
}

/// What happened to one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A prediction was written to `result_key`.
    Classified {
        /// Where the result went.
        result_key: String,
        /// `covid` or `normal`.
        label: &'static str,
        /// P(covid), calibrated.
        p_covid: f32,
    },
    /// An error result was written: the object is not a readable X-ray. Final.
    Rejected {
        /// Where the error result went.
        result_key: String,
        /// The error code.
        code: &'static str,
    },
    /// Not under the upload prefix, or not an object-created record: nothing to do.
    Ignored,
}

/// Why one record could not be answered now. Every variant is worth retrying: the
/// invocation fails so that Lambda retries the event. Messages never hold a full key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The object could not be read: S3 unreachable, throttled, a 5xx.
    #[error("reading {key}: {source}")]
    Read {
        /// The key, redacted.
        key: String,
        /// What the store said.
        source: StoreError,
    },
    /// The result could not be written.
    #[error("writing {key}: {source}")]
    Write {
        /// The result key, redacted.
        key: String,
        /// What the store said.
        source: StoreError,
    },
    /// The model or its worker failed: a deployment fault, not the object's.
    #[error("classification failed: {0}")]
    Classify(String),
    /// The result would land under the upload prefix. Unreachable with a validated
    /// configuration; checked again so that no bug can loop.
    #[error("result key would retrigger: {0}")]
    WouldRetrigger(String),
    /// The result could not be serialised.
    #[error("serialising the result: {0}")]
    Serialise(String),
}

/// A failure worth retrying: the whole invocation fails so Lambda retries it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{failed} of {total} records failed and will be retried: {first}")]
pub struct RetryableFailure {
    /// Records that failed.
    pub failed: usize,
    /// Records in the event.
    pub total: usize,
    /// The first failure.
    pub first: RecordError,
}

/// Processes every record of an S3 event, at most `config.concurrency` at a time.
///
/// `Ok` lists each record's outcome; `Err` means at least one record must be retried (the
/// others were written, and rewriting them on the retry is harmless).
pub async fn handle_event(
    classifier: &Classifier,
    store: &dyn ObjectStore,
    config: &TriggerConfig,
    event: S3Event,
    request_id: &str,
) -> Result<Vec<Outcome>, RetryableFailure> {
    let total = event.records.len();
    let results: Vec<Result<Outcome, RecordError>> = futures_util::stream::iter(event.records)
        .map(|record| process_record(classifier, store, config, record, request_id))
        .buffered(config.concurrency.max(1))
        .collect()
        .await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    let mut outcomes = Vec::with_capacity(total);
    let mut first = None;
    for r in results {
        match r {
            Ok(o) => outcomes.push(o),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    match first {
        Some(first) => Err(RetryableFailure {
            failed,
            total,
            first,
        }),
        None => Ok(outcomes),
    }
}

async fn process_record(
    classifier: &Classifier,
    store: &dyn ObjectStore,
    config: &TriggerConfig,
    record: S3EventRecord,
    request_id: &str,
) -> Result<Outcome, RecordError> {
    let created = record
        .event_name
        .as_deref()
        .is_none_or(|n| n.starts_with("ObjectCreated"));
    let (Some(bucket), Some(raw_key)) = (record.s3.bucket.name, record.s3.object.key) else {
        tracing::warn!(request_id, "record without bucket or key ignored");
        return Ok(Outcome::Ignored);
    };
    let key = decode_key(&raw_key);
    if !created {
        tracing::info!(
            request_id,
            key = redact(&key),
            event = record.event_name.as_deref(),
            "record that is not an object creation ignored"
        );
        return Ok(Outcome::Ignored);
    }
    let Some(result_key) = config.result_key(&key) else {
        tracing::info!(
            request_id,
            key = redact(&key),
            upload_prefix = config.upload_prefix,
            "record outside the upload prefix ignored"
        );
        return Ok(Outcome::Ignored);
    };
    let results_bucket = config
        .results_bucket
        .clone()
        .unwrap_or_else(|| bucket.clone());
    let target = Target {
        bucket,
        key,
        // The notification's version: the object that was uploaded, even if a newer one has
        // replaced it since.
        version_id: record.s3.object.version_id,
        etag: record.s3.object.e_tag,
        results_bucket,
        result_key,
    };
    // Deleted before we got to it, or too large: final answers. Denied, throttled or
    // unreachable: the invocation fails and Lambda retries it.
    let final_read =
        |e: &StoreError| matches!(e, StoreError::NotFound | StoreError::TooLarge { .. });
    classify_to_result(classifier, store, config, target, &final_read, request_id).await
}

/// One object to classify and where its result goes.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The object's bucket.
    pub bucket: String,
    /// Its key, decoded.
    pub key: String,
    /// The version to read; `None` reads the current one.
    pub version_id: Option<String>,
    /// The ETag the event carried, recorded when the store does not send one.
    pub etag: Option<String>,
    /// Where the result goes.
    pub results_bucket: String,
    /// The result's key.
    pub result_key: String,
}

/// Reads one object, classifies it and writes its result object: the prediction, or an error
/// result when the object is not a readable X-ray or `final_read` calls its read failure a
/// final answer. The trigger and S3 Batch Operations share it, so their results are one shape.
///
/// `Err` means nothing was written: the caller retries (the trigger fails its invocation,
/// a Batch task answers `TemporaryFailure`) or reports it.
pub(crate) async fn classify_to_result(
    classifier: &Classifier,
    store: &dyn ObjectStore,
    config: &TriggerConfig,
    target: Target,
    final_read: &(dyn Fn(&StoreError) -> bool + Sync),
    request_id: &str,
) -> Result<Outcome, RecordError> {
    let started = Instant::now();
    let Target {
        bucket,
        key,
        version_id,
        etag,
        results_bucket,
        result_key,
    } = target;
    if results_bucket == bucket && result_key.starts_with(&config.upload_prefix) {
        return Err(RecordError::WouldRetrigger(redact(&result_key)));
    }
    let source = |meta: ObjectMeta| SourceObject {
        bucket: bucket.clone(),
        key: key.clone(),
        etag: meta.etag.or_else(|| etag.clone()),
        version_id: meta.version_id.or_else(|| version_id.clone()),
    };
    let rejected = |e: ApiError| {
        let outcome = ResultOutcome::Error {
            error: e.error_body(),
            model: classifier.info().clone(),
            threshold: classifier.threshold(),
            disclaimer: crate::DISCLAIMER,
        };
        (
            outcome,
            Outcome::Rejected {
                result_key: result_key.clone(),
                code: e.code,
            },
        )
    };
    let read = store
        .get(
            &bucket,
            &key,
            version_id.as_deref(),
            config.max_object_bytes,
        )
        .await;
    let ((outcome, result), meta) = match read {
        Ok((bytes, meta)) => {
            let worker = classifier.clone();
            let classified = tokio::task::spawn_blocking(move || worker.classify(&bytes))
                .await
                .map_err(|e| RecordError::Classify(format!("worker: {e}")))?;
            match classified {
                Ok(p) => {
                    let label = p.label.as_str();
                    let p_covid = p.probabilities.covid;
                    let answer = Answer::new(p, started.elapsed().as_secs_f64() * 1e3);
                    crate::metrics::process().prediction(
                        "s3",
                        &classifier.info().version,
                        label,
                        crate::metrics::Timing {
                            decode: answer.timing_ms.decode,
                            inference: answer.timing_ms.inference,
                            total: answer.timing_ms.total,
                        },
                    );
                    let classified = Outcome::Classified {
                        result_key: result_key.clone(),
                        label,
                        p_covid,
                    };
                    ((ResultOutcome::Answer(answer), classified), meta)
                }
                Err(crate::Error::Model(m)) => return Err(RecordError::Classify(m)),
                Err(e) => (rejected(ApiError::from(e)), meta),
            }
        }
        Err(e) if final_read(&e) => (rejected(ApiError::from(e.refusal())), ObjectMeta::default()),
        Err(e) => {
            return Err(RecordError::Read {
                key: redact(&key),
                source: e,
            });
        }
    };
    let object = ResultObject {
        outcome,
        source: source(meta),
        processed_at: rfc3339_now(),
        request_id: request_id.to_string(),
    };
    let bytes =
        serde_json::to_vec_pretty(&object).map_err(|e| RecordError::Serialise(e.to_string()))?;
    store
        .put(&results_bucket, &result_key, bytes, "application/json")
        .await
        .map_err(|e| RecordError::Write {
            key: redact(&result_key),
            source: e,
        })?;
    match &result {
        Outcome::Classified { label, .. } => tracing::info!(
            request_id,
            key = redact(&key),
            label,
            total_ms = started.elapsed().as_secs_f64() * 1e3,
            "classified object"
        ),
        Outcome::Rejected { code, .. } => {
            crate::metrics::process().refusal("s3", &classifier.info().version, code);
            tracing::info!(request_id, key = redact(&key), code, "rejected object")
        }
        Outcome::Ignored => {}
    }
    Ok(result)
}

/// A key fit for logs at any level: its length, depth and extension, never its text (keys
/// can carry patient names).
pub fn redact(key: &str) -> String {
    let name = key.rsplit('/').next().unwrap_or("");
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    let depth = key.matches('/').count();
    format!("<{} bytes, depth {depth}, .{ext}>", key.len())
}

/// The current UTC time as RFC 3339, to the millisecond.
pub fn rfc3339_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_decoded_as_aws_encodes_them() {
        assert_eq!(
            decode_key("uploads/ward+3/r%C3%B6ntgen+%2B1.jpg"),
            "uploads/ward 3/röntgen +1.jpg"
        );
        assert_eq!(decode_key("plain.png"), "plain.png");
    }

    #[test]
    fn time_format() {
        let t = rfc3339_now();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }

    #[test]
    fn redaction_hides_names() {
        let r = redact("uploads/Jane Doe 1970-01-01/chest.jpg");
        assert!(!r.contains("Jane") && !r.contains("chest"));
    }
}
