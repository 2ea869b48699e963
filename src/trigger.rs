//! The S3 upload trigger: every X-ray uploaded under the upload prefix is classified and its
//! result written back as JSON under the results prefix.
//!
//! Safety properties, each tested:
//! - **No retrigger loop.** A result key can never fall under the upload prefix: such a
//!   configuration is refused at start-up ([`TriggerConfig::validate`]), and each record is
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
use serde_json::{Value, json};

use crate::contract::{ApiError, TimingMs};
use crate::model::Classifier;
use crate::source::{ObjectMeta, ObjectStore, StoreError};

/// Settings of the trigger, from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerConfig {
    /// Only keys under this prefix are classified (`XRAY_UPLOAD_PREFIX`, default `uploads/`).
    pub upload_prefix: String,
    /// Where results go (`XRAY_RESULTS_BUCKET`); `None` means the upload's own bucket.
    pub results_bucket: Option<String>,
    /// Prefix of result keys (`XRAY_RESULTS_PREFIX`, default `results/`).
    pub results_prefix: String,
    /// Largest object to classify (`XRAY_MAX_OBJECT_BYTES`, default 20 MB).
    pub max_object_bytes: u64,
    /// Records of one event processed at once (`XRAY_CONCURRENCY`, default 4).
    pub concurrency: usize,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        TriggerConfig {
            upload_prefix: "uploads/".into(),
            results_bucket: None,
            results_prefix: "results/".into(),
            max_object_bytes: 20 * 1024 * 1024,
            concurrency: 4,
        }
    }
}

/// A configuration that could make the trigger fire on its own output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refusing to start: result keys under '{results_prefix}' would fall under the upload prefix '{upload_prefix}' and retrigger the function"
)]
pub struct LoopingConfig {
    /// The upload prefix.
    pub upload_prefix: String,
    /// The results prefix.
    pub results_prefix: String,
}

impl TriggerConfig {
    /// Reads the `XRAY_*` variables.
    pub fn from_env() -> TriggerConfig {
        TriggerConfig::from_lookup(|k| std::env::var(k).ok())
    }

    /// As [`TriggerConfig::from_env`], from any lookup.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> TriggerConfig {
        let d = TriggerConfig::default();
        TriggerConfig {
            upload_prefix: get("XRAY_UPLOAD_PREFIX").unwrap_or(d.upload_prefix),
            results_bucket: get("XRAY_RESULTS_BUCKET").filter(|b| !b.trim().is_empty()),
            results_prefix: get("XRAY_RESULTS_PREFIX").unwrap_or(d.results_prefix),
            max_object_bytes: get("XRAY_MAX_OBJECT_BYTES")
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(d.max_object_bytes),
            concurrency: get("XRAY_CONCURRENCY")
                .and_then(|s| s.trim().parse().ok())
                .filter(|&n| n > 0)
                .unwrap_or(d.concurrency),
        }
    }

    /// Refuses any configuration whose result keys could fall under the upload prefix.
    ///
    /// A result key is `results_prefix + rest + ".json"`; it falls under the upload prefix
    /// for some `rest` exactly when one prefix starts with the other. That holds whichever
    /// bucket the results go to, because the bucket names of a deployment are not known
    /// here: a separate results bucket with overlapping prefixes is refused too.
    pub fn validate(&self) -> Result<(), LoopingConfig> {
        let overlap = self.results_prefix.starts_with(&self.upload_prefix)
            || self.upload_prefix.starts_with(&self.results_prefix);
        if overlap {
            return Err(LoopingConfig {
                upload_prefix: self.upload_prefix.clone(),
                results_prefix: self.results_prefix.clone(),
            });
        }
        Ok(())
    }

    /// Where the result of `key` goes, or `None` when the key is not under the upload prefix.
    pub fn result_key(&self, key: &str) -> Option<String> {
        let rest = key.strip_prefix(&self.upload_prefix)?;
        Some(format!("{}{rest}.json", self.results_prefix))
    }
}

/// An S3 key as it appears in the event, decoded: `+` is a space, then percent-decoding.
/// AWS sends keys form-encoded, and the crate's `url_decoded_key` is never filled.
pub fn decode_key(raw: &str) -> String {
    let plus_as_space = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8_lossy()
        .into_owned()
}

/// What happened to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A prediction was written to `result_key`.
    Classified {
        /// Where the result went.
        result_key: String,
        /// `covid` or `normal`.
        label: &'static str,
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

/// A failure worth retrying: the whole invocation fails so Lambda retries it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{failed} of {total} records failed and will be retried: {first}")]
pub struct RetryableFailure {
    /// Records that failed.
    pub failed: usize,
    /// Records in the event.
    pub total: usize,
    /// The first failure's message.
    pub first: String,
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
    let results: Vec<Result<Outcome, String>> = futures_util::stream::iter(event.records)
        .map(|record| process_record(classifier, store, config, record, request_id))
        .buffered(config.concurrency.max(1))
        .collect()
        .await;
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    if let Some(first) = failures.first() {
        return Err(RetryableFailure {
            failed: failures.len(),
            total,
            first: (*first).clone(),
        });
    }
    Ok(results.into_iter().filter_map(Result::ok).collect())
}

async fn process_record(
    classifier: &Classifier,
    store: &dyn ObjectStore,
    config: &TriggerConfig,
    record: S3EventRecord,
    request_id: &str,
) -> Result<Outcome, String> {
    let started = Instant::now();
    let created = record
        .event_name
        .as_deref()
        .is_none_or(|n| n.starts_with("ObjectCreated"));
    let (Some(bucket), Some(raw_key)) = (record.s3.bucket.name, record.s3.object.key) else {
        tracing::warn!(request_id, "record without bucket or key ignored");
        return Ok(Outcome::Ignored);
    };
    let key = decode_key(&raw_key);
    let Some(result_key) = config.result_key(&key).filter(|_| created) else {
        tracing::debug!(request_id, "record outside the upload prefix ignored");
        return Ok(Outcome::Ignored);
    };
    let results_bucket = config
        .results_bucket
        .clone()
        .unwrap_or_else(|| bucket.clone());
    if results_bucket == bucket && result_key.starts_with(&config.upload_prefix) {
        // Unreachable with a validated configuration; checked again so no bug can loop.
        return Err(format!(
            "result key would retrigger: {}",
            redact(&result_key)
        ));
    }
    let source = |meta: &ObjectMeta| {
        json!({
            "bucket": bucket,
            "key": key,
            "etag": meta.etag.as_deref().or(record.s3.object.e_tag.as_deref()),
            "version_id": meta.version_id.as_deref().or(record.s3.object.version_id.as_deref()),
        })
    };
    let fetched = store.get(&bucket, &key, config.max_object_bytes).await;
    let (body, outcome) = match fetched {
        Ok((bytes, meta)) => {
            let worker = classifier.clone();
            let result = tokio::task::spawn_blocking(move || worker.classify(&bytes))
                .await
                .map_err(|e| format!("classification worker failed: {e}"))?;
            match result {
                Ok(p) => {
                    let label = p.label.as_str();
                    let timing_ms = TimingMs {
                        decode: p.timings.decode,
                        inference: p.timings.inference,
                        total: started.elapsed().as_secs_f64() * 1e3,
                    };
                    let mut v = serde_json::to_value(&p).map_err(|e| e.to_string())?;
                    merge(&mut v, json!({"timing_ms": timing_ms}));
                    (
                        finish(v, source(&meta), request_id),
                        Outcome::Classified {
                            result_key: result_key.clone(),
                            label,
                        },
                    )
                }
                Err(crate::Error::Model(m)) => return Err(format!("model failed: {m}")),
                Err(e) => {
                    let api = ApiError::from(e);
                    (
                        error_result(&api, source(&meta), classifier, request_id),
                        Outcome::Rejected {
                            result_key: result_key.clone(),
                            code: api.code,
                        },
                    )
                }
            }
        }
        Err(e @ (StoreError::NotFound | StoreError::TooLarge { .. })) => {
            // Deleted before we got to it, or too large to classify: final answers.
            let api = ApiError::from(e);
            (
                error_result(&api, source(&ObjectMeta::default()), classifier, request_id),
                Outcome::Rejected {
                    result_key: result_key.clone(),
                    code: api.code,
                },
            )
        }
        Err(e) => return Err(format!("reading {}: {e}", redact(&key))),
    };
    let bytes = serde_json::to_vec_pretty(&body).map_err(|e| e.to_string())?;
    store
        .put(&results_bucket, &result_key, bytes, "application/json")
        .await
        .map_err(|e| format!("writing {}: {e}", redact(&result_key)))?;
    match &outcome {
        Outcome::Classified { label, .. } => tracing::info!(
            request_id,
            key = redact(&key),
            label,
            total_ms = started.elapsed().as_secs_f64() * 1e3,
            "classified upload"
        ),
        Outcome::Rejected { code, .. } => {
            tracing::info!(request_id, key = redact(&key), code, "rejected upload")
        }
        Outcome::Ignored => {}
    }
    Ok(outcome)
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}

fn finish(mut v: Value, source: Value, request_id: &str) -> Value {
    merge(
        &mut v,
        json!({
            "source": source,
            "processed_at": rfc3339_now(),
            "request_id": request_id,
            "disclaimer": crate::DISCLAIMER,
        }),
    );
    v
}

fn error_result(e: &ApiError, source: Value, classifier: &Classifier, request_id: &str) -> Value {
    let mut v = e.body();
    merge(
        &mut v,
        json!({"model": classifier.info(), "threshold": classifier.threshold()}),
    );
    finish(v, source, request_id)
}

/// A key fit for info-level logs: its last path segment's extension only, never the full
/// key (keys can carry patient names). Debug level may show more.
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
    fn looping_configurations_are_refused() {
        let ok = TriggerConfig::default();
        assert!(ok.validate().is_ok());
        for (up, res) in [
            ("uploads/", "uploads/results/"),
            ("", "results/"),
            ("uploads/", ""),
            ("in/", "in/"),
        ] {
            let c = TriggerConfig {
                upload_prefix: up.into(),
                results_prefix: res.into(),
                ..TriggerConfig::default()
            };
            assert!(c.validate().is_err(), "{up:?} {res:?} must be refused");
        }
    }

    #[test]
    fn result_keys() {
        let c = TriggerConfig::default();
        assert_eq!(
            c.result_key("uploads/a/b c.jpg").as_deref(),
            Some("results/a/b c.jpg.json")
        );
        assert_eq!(c.result_key("other/a.jpg"), None);
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
