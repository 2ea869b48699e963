//! The HTTP API's JSON: request and response types, and every error as a status plus a stable
//! code. Documented for callers in README.md and `openapi.yaml`.

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::model::{ModelInfo, Prediction};
use crate::source::StoreError;

/// Body of `POST /predict` when it is JSON. Exactly one of `image` and `s3` must be set.
#[derive(Debug, Deserialize)]
pub struct PredictRequest {
    /// Base64 image bytes, optionally as a `data:image/...;base64,` URL.
    #[serde(default)]
    pub image: Option<String>,
    /// An S3 object to read instead.
    #[serde(default)]
    pub s3: Option<S3Ref>,
}

/// An S3 object reference: `{"bucket": "b", "key": "k"}` or `"s3://b/k"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum S3Ref {
    /// Bucket and key as fields.
    Parts {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
    },
    /// An `s3://bucket/key` URL.
    Url(String),
}

impl S3Ref {
    /// `(bucket, key)`, or an error for a malformed URL or empty part.
    pub fn parts(&self) -> Result<(String, String), ApiError> {
        let (bucket, key) = match self {
            S3Ref::Parts { bucket, key } => (bucket.clone(), key.clone()),
            S3Ref::Url(url) => {
                let rest = url.strip_prefix("s3://").ok_or_else(|| {
                    ApiError::bad_request("invalid_s3_reference", "an S3 URL must start with s3://")
                })?;
                let (b, k) = rest.split_once('/').unwrap_or((rest, ""));
                (b.to_string(), k.to_string())
            }
        };
        if bucket.is_empty() || key.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_s3_reference",
                "an S3 reference needs a non-empty bucket and key",
            ));
        }
        Ok((bucket, key))
    }
}

/// Timings of one request, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TimingMs {
    /// Decode and preprocess.
    pub decode: f64,
    /// Network.
    pub inference: f64,
    /// The whole request, as the handler saw it.
    pub total: f64,
}

/// Body of a `200` from `POST /predict`.
#[derive(Debug, Serialize)]
pub struct PredictResponse {
    /// The prediction (label, confidence, probabilities, threshold, model).
    #[serde(flatten)]
    pub prediction: Prediction,
    /// Where the time went.
    pub timing_ms: TimingMs,
    /// The request id (Lambda's, or one made up locally).
    pub request_id: String,
    /// Not a medical device.
    pub disclaimer: &'static str,
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
    /// Not a medical device.
    pub disclaimer: &'static str,
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

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"error": {"code": self.code, "message": self.message}})
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let status = match &e {
            Error::Empty | Error::Unreadable(_) => 400,
            Error::TooLarge { .. } => 413,
            Error::NotAnImage | Error::UnsupportedFormat(_) => 415,
            Error::Corrupt(_) => 422,
            Error::Model(_) => 500,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<StoreError> for ApiError {
    /// One mapping for the HTTP API and the trigger's error results.
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound => ApiError::new(404, "s3_object_not_found", "no such S3 object"),
            StoreError::AccessDenied => {
                ApiError::new(403, "s3_access_denied", "S3 denied access to the object")
            }
            e @ StoreError::TooLarge { .. } => {
                ApiError::new(413, "s3_object_too_large", e.to_string())
            }
            StoreError::Transient(m) => ApiError::new(
                503,
                "s3_unavailable",
                format!("S3 could not be read, try again: {m}"),
            ),
        }
    }
}
