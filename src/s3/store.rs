//! Where image bytes come from when a request names an object instead of carrying it.
//!
//! Handlers take an [`ObjectStore`] so tests can give them a real local S3 server, and `main`
//! wires up the AWS one.

use std::future::Future;
use std::pin::Pin;

use crate::error::Refusal;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why an object could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No such bucket or key.
    #[error("no such object")]
    NotFound,
    /// The store refused access.
    #[error("access to the object was denied")]
    AccessDenied,
    /// The object is larger than the caller may read.
    #[error("the object is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// Object size, when known.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The store failed or could not be reached; worth retrying.
    #[error("the object store failed: {0}")]
    Transient(String),
}

impl StoreError {
    /// What this error answers with, in the HTTP API and in the trigger's error results
    /// alike: the S3 side words its own errors, and the contract takes the words.
    pub fn refusal(&self) -> Refusal {
        let (status, code, message) = match self {
            StoreError::NotFound => (404, "s3_object_not_found", "no such S3 object".to_string()),
            StoreError::AccessDenied => (
                403,
                "s3_access_denied",
                "S3 denied access to the object".to_string(),
            ),
            e @ StoreError::TooLarge { .. } => (413, "s3_object_too_large", e.to_string()),
            StoreError::Transient(m) => (
                503,
                "s3_unavailable",
                format!("S3 could not be read, try again: {m}"),
            ),
        };
        Refusal {
            status,
            code,
            message,
        }
    }
}

/// What the store says about an object besides its bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The ETag, quotes included, as S3 sends it.
    pub etag: Option<String>,
    /// The version id, on a versioned bucket.
    pub version_id: Option<String>,
}

/// Reads and writes objects. `get` refuses objects larger than `max_bytes` before
/// downloading their body.
pub trait ObjectStore: Send + Sync {
    /// The whole object, at most `max_bytes` long, with its metadata: the version named by
    /// `version_id` on a versioned bucket, else the current one.
    fn get<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
        max_bytes: u64,
    ) -> BoxFuture<'a, Result<(Vec<u8>, ObjectMeta), StoreError>>;

    /// Writes (or overwrites) an object.
    fn put<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        body: Vec<u8>,
        content_type: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}
