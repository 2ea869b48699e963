//! The [`ObjectStore`] on Amazon S3 (or any S3-compatible server), through `aws-sdk-s3`.
//!
//! One client per process, built at init. `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3` point it
//! at a local server, and then path-style addressing is used. Timeouts are set so that a slow
//! or dead S3 answers with an error long before the Lambda timeout.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;

use super::store::{BoxFuture, ObjectMeta, ObjectStore, StoreError};

/// Connect timeout for S3.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Budget for one attempt of one S3 call, up to the response headers; also the budget for
/// reading a streamed object body, which the SDK's attempt timeout does not cover.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Budget for one S3 call, retries included. Below the template's function timeouts.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(20);

/// The time limits an [`S3Store`] works under. The defaults are the constants above; tests
/// shorten them to show a slow server's effect in a second instead of half a minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP (and TLS) connect.
    pub connect: Duration,
    /// One attempt, up to the response headers; and the whole read of a body.
    pub attempt: Duration,
    /// One call, retries included.
    pub operation: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: CONNECT_TIMEOUT,
            attempt: ATTEMPT_TIMEOUT,
            operation: OPERATION_TIMEOUT,
        }
    }
}

/// S3 through the AWS SDK.
#[derive(Clone, Debug)]
pub struct S3Store {
    client: Client,
    timeouts: Timeouts,
}

impl S3Store {
    /// The standard AWS environment (region, credentials, endpoint variables), with the
    /// timeouts above, three attempts, and path-style addressing when an endpoint is set.
    pub async fn from_env() -> S3Store {
        let custom_endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
        let timeouts = Timeouts::default();
        S3Store::build(
            base_loader(timeouts).load().await,
            custom_endpoint,
            timeouts,
        )
    }

    /// An S3-compatible server at `endpoint` with static credentials, path-style, and the
    /// same client, timeouts and retries as [`S3Store::from_env`]. For local servers.
    pub async fn with_endpoint(
        endpoint: &str,
        region: &str,
        access_key: &str,
        secret_key: &str,
    ) -> S3Store {
        S3Store::with_endpoint_and_timeouts(
            endpoint,
            region,
            access_key,
            secret_key,
            Timeouts::default(),
        )
        .await
    }

    /// [`S3Store::with_endpoint`] with other time limits.
    pub async fn with_endpoint_and_timeouts(
        endpoint: &str,
        region: &str,
        access_key: &str,
        secret_key: &str,
        timeouts: Timeouts,
    ) -> S3Store {
        let credentials = aws_sdk_s3::config::Credentials::new(
            access_key,
            secret_key,
            None,
            None,
            "covid-xray-static",
        );
        let shared = base_loader(timeouts)
            .endpoint_url(endpoint)
            .region(aws_config::Region::new(region.to_string()))
            .credentials_provider(credentials)
            .load()
            .await;
        S3Store::build(shared, true, timeouts)
    }

    fn build(shared: aws_config::SdkConfig, path_style: bool, timeouts: Timeouts) -> S3Store {
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(path_style)
            .build();
        S3Store {
            client: Client::from_conf(config),
            timeouts,
        }
    }

    /// Wraps a client built elsewhere (tests build one for a local server). Body reads get
    /// the default [`ATTEMPT_TIMEOUT`].
    pub fn from_client(client: Client) -> S3Store {
        S3Store {
            client,
            timeouts: Timeouts::default(),
        }
    }

    /// The SDK client.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// The loader every client starts from: rustls with ring (no C toolchain beyond `cc` needed
/// to cross-build for arm64), explicit timeouts, three attempts.
fn base_loader(timeouts: Timeouts) -> aws_config::ConfigLoader {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(timeouts.connect)
                .read_timeout(timeouts.attempt)
                .operation_attempt_timeout(timeouts.attempt)
                .operation_timeout(timeouts.operation)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3))
}

/// Maps an SDK error to ours: 404/NoSuchKey/NoSuchBucket is final, 403 is denial, the rest
/// (timeouts, connection failures, 5xx, throttling) is worth retrying.
fn classify<E>(e: &SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::fmt::Debug,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().unwrap_or("");
    match (status, code) {
        (Some(404), _) | (_, "NoSuchKey" | "NoSuchBucket" | "NotFound") => StoreError::NotFound,
        (Some(403), _) | (_, "AccessDenied" | "Forbidden") => StoreError::AccessDenied,
        _ => StoreError::Transient(match e {
            SdkError::ServiceError(se) => format!(
                "S3 answered {} {}",
                status.map(|s| s.to_string()).unwrap_or_default(),
                se.err().message().unwrap_or(code)
            ),
            SdkError::TimeoutError(_) => "S3 timed out".to_string(),
            SdkError::DispatchFailure(_) => "S3 could not be reached".to_string(),
            SdkError::ResponseError(_) => "S3's response could not be read".to_string(),
            other => format!("S3 request failed: {other:?}")
                .chars()
                .take(300)
                .collect(),
        }),
    }
}

impl ObjectStore for S3Store {
    fn get<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
        max_bytes: u64,
    ) -> BoxFuture<'a, Result<(Vec<u8>, ObjectMeta), StoreError>> {
        Box::pin(async move {
            // The size first, so an oversize object is refused without downloading it.
            let head = self
                .client
                .head_object()
                .bucket(bucket)
                .key(key)
                .set_version_id(version_id.map(String::from))
                .send()
                .await
                .map_err(|e| classify(&e))?;
            let size = head.content_length().unwrap_or(0).max(0) as u64;
            if size > max_bytes {
                return Err(StoreError::TooLarge {
                    size,
                    limit: max_bytes,
                });
            }
            let out = self
                .client
                .get_object()
                .bucket(bucket)
                .key(key)
                .set_version_id(version_id.map(String::from))
                .send()
                .await
                .map_err(|e| classify(&e))?;
            let meta = ObjectMeta {
                etag: out.e_tag().map(String::from),
                version_id: out.version_id().map(String::from),
            };
            // The object may have grown since HEAD: cap the stream anyway. The SDK's attempt
            // timeout ends at the response headers, so a server that stalls mid-body is cut
            // off here rather than holding the invocation until Lambda kills it.
            let mut body = out.body;
            let mut bytes = Vec::with_capacity(size.min(max_bytes) as usize);
            let read = async {
                while let Some(chunk) = body.try_next().await.map_err(|e| {
                    StoreError::Transient(format!("reading the S3 body failed: {e}"))
                })? {
                    if (bytes.len() + chunk.len()) as u64 > max_bytes {
                        return Err(StoreError::TooLarge {
                            size: (bytes.len() + chunk.len()) as u64,
                            limit: max_bytes,
                        });
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(())
            };
            tokio::time::timeout(self.timeouts.attempt, read)
                .await
                .map_err(|_| StoreError::Transient("reading the S3 body timed out".into()))??;
            Ok((bytes, meta))
        })
    }

    fn put<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        body: Vec<u8>,
        content_type: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.client
                .put_object()
                .bucket(bucket)
                .key(key)
                .content_type(content_type)
                .body(ByteStream::from(body))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(&e))
        })
    }
}
