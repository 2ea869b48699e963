//! The JSON every interface speaks: the request of `POST /predict`, the [`Answer`] to one
//! X-ray, and errors as a status plus a stable code.
//!
//! One answer type serves the HTTP API ([`PredictResponse`]), the S3 trigger's result object
//! ([`ResultObject`]) and `xray predict --json` ([`CliLine`]), so its shape changes in one
//! place. Callers find it documented in `openapi.yaml`.

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::error::Refusal;
use crate::model::{Heatmap, ModelInfo, Prediction};

/// Body of `POST /predict` when it is JSON. Exactly one of `image` and `s3` must be set.
#[derive(Debug, Deserialize)]
pub struct PredictRequest {
    /// Base64 image bytes, optionally as a `data:image/...;base64,` URL.
    #[serde(default)]
    pub image: Option<String>,
    /// An S3 object to read instead: checked by [`S3Ref::from_value`], so that a wrong shape
    /// gets a message about S3 references rather than about serde's internals.
    #[serde(default)]
    pub s3: Option<serde_json::Value>,
    /// Also answer where the model looked ([`Heatmap`]); `?explain=1` does the same.
    #[serde(default)]
    pub explain: bool,
}

/// An S3 object reference: `{"bucket": "b", "key": "k"}` or `"s3://b/k"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Ref {
    /// Bucket name.
    pub bucket: String,
    /// Object key.
    pub key: String,
}

impl S3Ref {
    /// Reads the `s3` field of a request, or says what a reference looks like.
    pub fn from_value(v: &serde_json::Value) -> Result<S3Ref, ApiError> {
        use serde_json::Value;
        let shape = || {
            ApiError::bad_request(
                "invalid_s3_reference",
                "\"s3\" must be {\"bucket\": \"...\", \"key\": \"...\"} or \"s3://bucket/key\"",
            )
        };
        let (bucket, key) = match v {
            Value::String(url) => {
                let rest = url.strip_prefix("s3://").ok_or_else(|| {
                    ApiError::bad_request("invalid_s3_reference", "an S3 URL must start with s3://")
                })?;
                let (b, k) = rest.split_once('/').unwrap_or((rest, ""));
                (b.to_string(), k.to_string())
            }
            Value::Object(map) => {
                let field = |name: &str| match map.get(name) {
                    Some(Value::String(s)) => Ok(s.clone()),
                    Some(_) => Err(ApiError::bad_request(
                        "invalid_s3_reference",
                        format!("\"s3\".\"{name}\" must be a string"),
                    )),
                    None => Err(ApiError::bad_request(
                        "invalid_s3_reference",
                        format!(
                            "the S3 reference has no \"{name}\": send {{\"bucket\": \"...\", \"key\": \"...\"}}"
                        ),
                    )),
                };
                (field("bucket")?, field("key")?)
            }
            _ => return Err(shape()),
        };
        if bucket.is_empty() || key.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_s3_reference",
                "an S3 reference needs a non-empty bucket and key",
            ));
        }
        Ok(S3Ref { bucket, key })
    }
}

/// Timings of one classification, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimingMs {
    /// Decode and preprocess.
    pub decode: f64,
    /// Network.
    pub inference: f64,
    /// The whole request or record, as its handler saw it.
    pub total: f64,
}

/// The answer to one X-ray, whichever interface asked.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    /// Label, confidence, both probabilities, threshold, model and input warnings.
    #[serde(flatten)]
    pub prediction: Prediction,
    /// Where the model looked, when the caller asked (`explain`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heatmap: Option<Heatmap>,
    /// Where the time went.
    pub timing_ms: TimingMs,
    /// Not a medical device.
    pub disclaimer: &'static str,
}

impl Answer {
    /// The answer for `prediction`, `total_ms` after its request or record began.
    pub fn new(prediction: Prediction, total_ms: f64) -> Answer {
        let timing_ms = TimingMs {
            decode: prediction.timings.decode,
            inference: prediction.timings.inference,
            total: total_ms,
        };
        Answer {
            prediction,
            heatmap: None,
            timing_ms,
            disclaimer: crate::DISCLAIMER,
        }
    }

    /// This answer with its heatmap.
    pub fn with_heatmap(self, heatmap: Option<Heatmap>) -> Answer {
        Answer { heatmap, ..self }
    }
}

/// Body of a `200` from `POST /predict`.
#[derive(Debug, Clone, Serialize)]
pub struct PredictResponse {
    /// The answer.
    #[serde(flatten)]
    pub answer: Answer,
    /// The request id (Lambda's, or one made up locally).
    pub request_id: String,
}

/// The object an S3 upload is answered with, at `results/<key>.json`: the answer or the
/// error, the object it is about, and when.
#[derive(Debug, Clone, Serialize)]
pub struct ResultObject {
    /// An answer, or an error that is final for this object.
    #[serde(flatten)]
    pub outcome: ResultOutcome,
    /// The object that was classified.
    pub source: SourceObject,
    /// When the result was written, RFC 3339 UTC.
    pub processed_at: String,
    /// The Lambda request id of the invocation that wrote it.
    pub request_id: String,
}

/// What a result object holds besides its source.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ResultOutcome {
    /// The object was classified.
    Answer(Answer),
    /// The object is not a readable X-ray, or could not be read for good.
    Error {
        /// The error.
        error: ErrorBody,
        /// The model that would have answered.
        model: ModelInfo,
        /// Its threshold.
        threshold: f32,
        /// Not a medical device.
        disclaimer: &'static str,
    },
}

/// The S3 object a result is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceObject {
    /// Bucket.
    pub bucket: String,
    /// Key, decoded.
    pub key: String,
    /// ETag as S3 sent it, quotes included.
    pub etag: Option<String>,
    /// Version id, on a versioned bucket.
    pub version_id: Option<String>,
}

/// One line of `xray predict --json`: the file, then its answer or its error.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum CliLine {
    /// The file was classified.
    Answer {
        /// The path as given or found.
        path: String,
        /// The answer.
        #[serde(flatten)]
        answer: Answer,
    },
    /// The file could not be classified; the run goes on.
    Error {
        /// The path as given or found.
        path: String,
        /// The error.
        error: ErrorBody,
    },
}

/// Body of `GET /health`.
#[derive(Debug, Serialize)]
pub struct Health {
    /// Always `"ok"` when the handler answers.
    pub status: &'static str,
    /// The loaded model.
    pub model: ModelInfo,
    /// The decision threshold.
    pub threshold: f32,
    /// How many times this process has built the model's plan: 1 on a healthy instance.
    pub plans_built: usize,
    /// Who may call `POST /predict`: what the upload page needs to sign in or explain.
    pub auth: AuthInfo,
    /// Not a medical device.
    pub disclaimer: &'static str,
}

/// The authentication in front of `POST /predict`, as `/health` tells the page.
#[derive(Debug, Clone, Serialize)]
pub struct AuthInfo {
    /// `iam`, `jwt`, `none` or `local`.
    pub mode: &'static str,
    /// With `jwt`: the issuer whose authorization-code flow the page signs in with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// With `jwt`: the public OAuth client the page signs in as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// `{"code", "message"}`, inside every error answer's `"error"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

/// An error answer: an HTTP status and `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// A 400.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(400, code, message)
    }

    /// A 413 for a body over `limit` bytes; one message wherever the limit is enforced.
    pub fn payload_too_large(size: Option<usize>, limit: usize) -> ApiError {
        let size = size.map_or_else(String::new, |s| format!(" is {s} bytes,"));
        ApiError::new(
            413,
            "payload_too_large",
            format!(
                "the body{size} over the limit of {limit} bytes (XRAY_MAX_BODY_BYTES); send large X-rays by S3 reference"
            ),
        )
    }

    /// `{"code", "message"}`.
    pub fn error_body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code.to_string(),
            message: self.message.clone(),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"error": self.error_body()})
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let status = match &e {
            Error::Empty | Error::Unreadable(_) => 400,
            Error::TooLarge { .. } => 413,
            Error::NotAnImage
            | Error::UnsupportedFormat(_)
            | Error::UnsupportedTransferSyntax(_) => 415,
            Error::Corrupt(_)
            | Error::UnsupportedModality(_)
            | Error::MultiFrame(_)
            | Error::NotAChestXray => 422,
            Error::Model(_) => 500,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<Refusal> for ApiError {
    /// An answer another layer worded: the S3 side maps its own errors
    /// (`StoreError::refusal` in `s3::store`), so the contract names none of its types.
    fn from(r: Refusal) -> ApiError {
        ApiError::new(r.status, r.code, r.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn s3_references() {
        let ok = S3Ref::from_value(&json!({"bucket": "b", "key": "k/x.jpg"})).expect("parts");
        assert_eq!((ok.bucket.as_str(), ok.key.as_str()), ("b", "k/x.jpg"));
        let ok = S3Ref::from_value(&json!("s3://b/k/x.jpg")).expect("url");
        assert_eq!((ok.bucket.as_str(), ok.key.as_str()), ("b", "k/x.jpg"));
        for bad in [
            json!({"bucket": "b"}),
            json!({"bucket": "b", "key": 3}),
            json!("https://b/k"),
            json!("s3://b"),
            json!(7),
        ] {
            let e = S3Ref::from_value(&bad).expect_err("refused");
            assert_eq!(e.code, "invalid_s3_reference", "{bad}");
            assert!(!e.message.contains("untagged"), "{}", e.message);
        }
        let e = S3Ref::from_value(&json!({"bucket": "b"})).expect_err("no key");
        assert!(e.message.contains("\"key\""), "{}", e.message);
    }

    #[test]
    fn the_413_names_the_limit_in_force() {
        let e = ApiError::payload_too_large(Some(100_001), 100_000);
        assert!(e.message.contains("limit of 100000 bytes"), "{}", e.message);
        let e = ApiError::payload_too_large(None, 6_291_456);
        assert!(
            e.message.contains("limit of 6291456 bytes"),
            "{}",
            e.message
        );
    }
}
