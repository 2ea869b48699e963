//! The HTTP routes as one service. Lambda (through `lambda_http`) and the local server both
//! call [`App::handle`], so there is one router and one behaviour to test.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | the upload page |
//! | `GET /health` | model identity and threshold |
//! | `POST /predict` | a prediction, from JSON base64, a raw image body, or an S3 reference |
//!
//! Every failure is a 4xx `Response` with a JSON body, never an `Err`: an `Err` returned to
//! `lambda_http` reaches the caller as API Gateway's opaque 500/502.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};

use super::auth::Caller;
use crate::config::{AuthMode, HttpConfig};
use crate::contract::{Answer, ApiError, AuthInfo, Health, PredictRequest, PredictResponse, S3Ref};
use crate::metrics::{Metrics, Timing};
use crate::model::Classifier;
use crate::s3::store::ObjectStore;

/// The upload page, served at `GET /`.
pub const PAGE: &str = include_str!("page.html");

/// The service: a classifier built once, settings, and optionally an object store.
#[derive(Clone)]
pub struct App {
    classifier: Classifier,
    config: Arc<HttpConfig>,
    store: Option<Arc<dyn ObjectStore>>,
    /// Classifications in flight at once, at most one per CPU. The work is CPU-bound, so more
    /// would not finish sooner; each would hold its own decoded film and malloc arena, and
    /// under 8 concurrent clients the local server's memory grew from 38 MB to 120-140 MB.
    classify_slots: Arc<tokio::sync::Semaphore>,
    /// Where each prediction and refusal is counted (CloudWatch EMF on Lambda).
    metrics: Metrics,
    /// The local server's own bearer-token check in `jwt` mode (on Lambda, API Gateway's).
    #[cfg(feature = "jwt")]
    jwt: Option<Arc<super::jwt::JwtVerifier>>,
}

/// Where the bytes of a predict request come from.
enum ImageSource {
    Inline(Vec<u8>),
    S3 { bucket: String, key: String },
}

impl App {
    /// A service without an object store (S3 references answer 503 if allowed at all).
    pub fn new(classifier: Classifier, config: HttpConfig) -> App {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        App {
            classifier,
            config: Arc::new(config),
            store: None,
            classify_slots: Arc::new(tokio::sync::Semaphore::new(cpus)),
            metrics: Metrics::Off,
            #[cfg(feature = "jwt")]
            jwt: None,
        }
    }

    /// Checks bearer tokens itself, as API Gateway's JWT authorizer would (the local server
    /// in `jwt` mode).
    #[cfg(feature = "jwt")]
    pub fn with_jwt_verifier(mut self, verifier: super::jwt::JwtVerifier) -> App {
        self.jwt = Some(Arc::new(verifier));
        self
    }

    /// Counts predictions and refusals into `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> App {
        self.metrics = metrics;
        self
    }

    /// Adds the store S3 references are read from.
    pub fn with_store(mut self, store: Arc<dyn ObjectStore>) -> App {
        self.store = Some(store);
        self
    }

    /// The settings in force.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// The classifier this service shares across requests.
    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// Handles one request. Never fails and never panics on caller input.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let started = Instant::now();
        let request_id = request_id(&req);
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        // Only `POST /predict` needs the caller: other routes verify no token.
        let mut audit = None;
        let (result, label) = match (path.as_str(), &method) {
            ("/", &Method::GET | &Method::HEAD) => (Ok(html(PAGE)), None),
            ("/health", &Method::GET | &Method::HEAD) => (Ok(self.health()), None),
            // Browsers ask for it on every page load; "no icon" is an answer, not a 404.
            ("/favicon.ico", &Method::GET | &Method::HEAD) => (Ok(no_content()), None),
            ("/predict", &Method::POST) => {
                let caller = self.caller(&req);
                audit = caller
                    .as_ref()
                    .ok()
                    .and_then(Option::as_ref)
                    .map(Caller::audit);
                let checked = caller.and_then(|c| self.authenticated(c.as_ref()));
                let answered = match checked {
                    Ok(_) => self.predict(req, &request_id, started).await,
                    Err(e) => Err(e),
                };
                let version = &self.classifier.info().version;
                match answered {
                    Ok((resp, label, timing)) => {
                        self.metrics.prediction("http", version, label, timing);
                        (Ok(resp), Some(label))
                    }
                    Err(e) => {
                        self.metrics.refusal("http", version, e.code);
                        (Err(e), None)
                    }
                }
            }
            (_, &Method::OPTIONS) if known_path(&path) => (Ok(preflight(&path)), None),
            _ if known_path(&path) => (
                Err(ApiError::new(
                    405,
                    "method_not_allowed",
                    format!("{method} is not allowed on {path}; use {}", allowed(&path)),
                )),
                None,
            ),
            _ => (
                Err(ApiError::new(
                    404,
                    "not_found",
                    format!("no route {path}; try POST /predict, GET /health or GET /"),
                )),
                None,
            ),
        };
        let response = match result {
            Ok(r) => r,
            Err(e) => error_response(&e, &path),
        };
        self.finish(
            response,
            &request_id,
            &method,
            &path,
            (label, audit.as_deref()),
            started,
        )
    }

    /// Who called: the identity API Gateway's authorizer put in the event or, where this
    /// process checks bearer tokens itself, the token's subject; a token that does not
    /// verify is a 401 naming the failed check.
    fn caller(&self, req: &Request) -> Result<Option<Caller>, ApiError> {
        #[cfg(feature = "jwt")]
        if let Some(verifier) = &self.jwt {
            let token = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .map(str::trim);
            return match token {
                None => Ok(None),
                Some(t) => verifier
                    .verify(t)
                    .map(Some)
                    .map_err(|e| ApiError::new(401, "unauthenticated", e.0)),
            };
        }
        Ok(Caller::of(req))
    }

    /// In `iam` and `jwt` modes, a call to `POST /predict` must carry the identity API
    /// Gateway's authorizer established; a route added without one is refused here.
    fn authenticated(&self, caller: Option<&Caller>) -> Result<Option<Caller>, ApiError> {
        let mode = self.config.auth;
        if mode.needs_identity() && caller.is_none() {
            return Err(ApiError::new(
                401,
                "unauthenticated",
                format!(
                    "this deployment takes only authenticated calls ({}); the request carried no \
                     authorizer identity",
                    mode.as_str()
                ),
            ));
        }
        Ok(caller.cloned())
    }

    /// Answers `error` for a request that never reached [`App::handle`] (the local server
    /// refuses a body over the limit while it arrives), with the same headers and log line.
    pub fn reject(
        &self,
        error: &ApiError,
        method: &Method,
        path: &str,
        started: Instant,
    ) -> Response<Body> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let response = error_response(error, path);
        self.finish(response, &request_id, method, path, (None, None), started)
    }

    /// Adds the common headers and writes the one log line of a request: with the label, and
    /// the caller's identity (an IAM ARN, or a JWT's issuer and subject) for audit.
    fn finish(
        &self,
        mut response: Response<Body>,
        request_id: &str,
        method: &Method,
        path: &str,
        (label, caller): (Option<&'static str>, Option<&str>),
        started: Instant,
    ) -> Response<Body> {
        self.add_common_headers(&mut response, request_id);
        let status = response.status().as_u16();
        let total_ms = started.elapsed().as_secs_f64() * 1e3;
        if status >= 500 {
            tracing::error!(request_id, %method, path, status, caller, total_ms, "request");
        } else {
            tracing::info!(request_id, %method, path, status, label, caller, total_ms, "request");
        }
        response
    }

    fn health(&self) -> Response<Body> {
        json_response(
            StatusCode::OK,
            &Health {
                status: "ok",
                model: self.classifier.info().clone(),
                threshold: self.classifier.threshold(),
                plans_built: Classifier::plans_built(),
                auth: AuthInfo {
                    mode: self.config.auth.as_str(),
                    issuer: self.config.jwt_issuer.clone(),
                    client_id: self.config.jwt_client_id.clone(),
                },
                disclaimer: crate::DISCLAIMER,
            },
        )
    }

    async fn predict(
        &self,
        req: Request,
        request_id: &str,
        started: Instant,
    ) -> Result<(Response<Body>, &'static str, Timing), ApiError> {
        let content_type = media_type(&req);
        let explain_query = explain_query(&req)?;
        let body = req.into_body();
        if body.len() > self.config.max_body_bytes {
            return Err(ApiError::payload_too_large(
                Some(body.len()),
                self.config.max_body_bytes,
            ));
        }
        let (source, explain_json) = parse_predict_body(content_type.as_deref(), body)?;
        let explain = explain_query || explain_json;
        let bytes = match source {
            ImageSource::Inline(bytes) => bytes,
            ImageSource::S3 { .. } if self.config.auth == AuthMode::None => {
                return Err(ApiError::new(
                    403,
                    "s3_refused_public",
                    "this deployment is open to anyone (ApiAuth NONE), so it reads no S3 \
                     references; send the image itself",
                ));
            }
            ImageSource::S3 { bucket, key } => self.fetch_s3(&bucket, &key).await?,
        };
        let classifier = self.classifier.clone();
        // The semaphore is never closed, so acquiring cannot fail; the error arm is for form.
        let _slot = self.classify_slots.acquire().await.map_err(|e| {
            ApiError::new(500, "internal_error", format!("classify slots closed: {e}"))
        })?;
        let (prediction, heatmap) = tokio::task::spawn_blocking(move || {
            if explain {
                classifier.explain(&bytes).map(|(p, h)| (p, Some(h)))
            } else {
                classifier.classify(&bytes).map(|p| (p, None))
            }
        })
        .await
        .map_err(|e| ApiError::new(500, "internal_error", format!("worker failed: {e}")))?
        .map_err(ApiError::from)?;
        let answer =
            Answer::new(prediction, started.elapsed().as_secs_f64() * 1e3).with_heatmap(heatmap);
        tracing::debug!(
            request_id,
            decode_ms = answer.timing_ms.decode,
            inference_ms = answer.timing_ms.inference,
            "classified"
        );
        let label = answer.prediction.label.as_str();
        let timing = Timing {
            decode: answer.timing_ms.decode,
            inference: answer.timing_ms.inference,
            total: answer.timing_ms.total,
        };
        let body = PredictResponse {
            answer,
            request_id: request_id.to_string(),
        };
        Ok((json_response(StatusCode::OK, &body), label, timing))
    }

    async fn fetch_s3(&self, bucket: &str, key: &str) -> Result<Vec<u8>, ApiError> {
        if self.config.allowed_buckets.is_empty() {
            return Err(ApiError::new(
                403,
                "s3_not_enabled",
                "S3 references are disabled on this deployment (XRAY_ALLOWED_BUCKETS is unset)",
            ));
        }
        if !self.config.allowed_buckets.iter().any(|b| b == bucket) {
            return Err(ApiError::new(
                403,
                "bucket_not_allowed",
                format!("bucket '{bucket}' is not in the allowed list"),
            ));
        }
        let store = self
            .store
            .as_ref()
            .ok_or_else(|| ApiError::new(503, "s3_unavailable", "no S3 client is configured"))?;
        store
            .get(bucket, key, None, self.config.max_object_bytes)
            .await
            .map(|(bytes, _meta)| bytes)
            .map_err(|e| ApiError::from(e.refusal()))
    }

    fn add_common_headers(&self, response: &mut Response<Body>, request_id: &str) {
        let headers = response.headers_mut();
        if let Ok(v) = HeaderValue::from_str(request_id) {
            headers.insert("x-request-id", v);
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        if let Some(origin) = &self.config.cors_allow_origin
            && let Ok(v) = HeaderValue::from_str(origin)
        {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("content-type, authorization"),
            );
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, OPTIONS"),
            );
        }
    }
}

fn known_path(path: &str) -> bool {
    matches!(path, "/" | "/health" | "/predict")
}

fn allowed(path: &str) -> &'static str {
    match path {
        "/predict" => "POST, OPTIONS",
        _ => "GET, HEAD, OPTIONS",
    }
}

fn no_content() -> Response<Body> {
    let mut r = Response::new(Body::Empty);
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

fn preflight(path: &str) -> Response<Body> {
    let mut r = Response::new(Body::Empty);
    *r.status_mut() = StatusCode::NO_CONTENT;
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allowed(path)));
    r
}

/// The request id: Lambda's when on Lambda, otherwise a fresh UUID.
fn request_id(req: &Request) -> String {
    req.lambda_context_ref()
        .map(|c| c.request_id.clone())
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// The media type of the body, lower-cased, without parameters.
fn media_type(req: &Request) -> Option<String> {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|v| !v.is_empty())
}

/// `?explain=1` (or `true`, `yes`; `0`, `false`, `no` and empty are off). Read from the
/// query API Gateway parsed, else from the URI (the local server).
fn explain_query(req: &Request) -> Result<bool, ApiError> {
    let parsed = req
        .query_string_parameters_ref()
        .and_then(|q| q.first("explain").map(str::to_string));
    let value = parsed.or_else(|| {
        req.uri().query().and_then(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
                .find(|(k, _)| *k == "explain")
                .map(|(_, v)| v.to_string())
        })
    });
    match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("" | "0" | "false" | "no") => Ok(false),
        Some("1" | "true" | "yes") => Ok(true),
        Some(_) => Err(ApiError::bad_request(
            "invalid_request",
            "explain must be 1 or 0 (true or false)",
        )),
    }
}

/// The image source, and whether a JSON body asked for the heatmap.
fn parse_predict_body(
    content_type: Option<&str>,
    body: Body,
) -> Result<(ImageSource, bool), ApiError> {
    let is_json = |t: &str| t == "application/json" || t.ends_with("+json");
    match content_type {
        Some(t) if is_json(t) => parse_json_body(&body),
        Some("image/jpeg" | "image/png" | "application/dicom" | "application/octet-stream") => {
            Ok((ImageSource::Inline(body_bytes(body)), false))
        }
        Some(other) => Err(ApiError::new(
            415,
            "unsupported_media_type",
            format!(
                "Content-Type '{other}' is not accepted; use application/json, image/jpeg, image/png, application/dicom or application/octet-stream"
            ),
        )),
        None => Err(ApiError::new(
            415,
            "unsupported_media_type",
            "a Content-Type header is required: application/json, image/jpeg, image/png, application/dicom or application/octet-stream",
        )),
    }
}

fn body_bytes(body: Body) -> Vec<u8> {
    match body {
        Body::Empty => Vec::new(),
        Body::Text(s) => s.into_bytes(),
        Body::Binary(b) => b,
        // `Body` is non-exhaustive upstream; treat anything new as its bytes.
        #[allow(unreachable_patterns)]
        other => other.to_vec(),
    }
}

fn parse_json_body(body: &Body) -> Result<(ImageSource, bool), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "empty_body",
            "the request body is empty; send {\"image\": \"<base64>\"} or {\"s3\": ...}",
        ));
    }
    let req: PredictRequest = serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            ApiError::bad_request(
                "invalid_request",
                format!("the JSON has the wrong shape: {e}"),
            )
        } else {
            ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}"))
        }
    })?;
    let source = match (req.image, req.s3) {
        (Some(image), None) => decode_image_field(&image).map(ImageSource::Inline),
        (None, Some(s3)) => {
            let S3Ref { bucket, key } = S3Ref::from_value(&s3)?;
            Ok(ImageSource::S3 { bucket, key })
        }
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "ambiguous_source",
            "send either \"image\" or \"s3\", not both",
        )),
        (None, None) => Err(ApiError::bad_request(
            "missing_image",
            "the JSON needs an \"image\" (base64) or an \"s3\" reference",
        )),
    };
    source.map(|s| (s, req.explain))
}

/// Decodes the `image` field: plain base64 (standard or URL-safe alphabet, padding optional,
/// whitespace ignored) or a `data:image/...;base64,` URL.
fn decode_image_field(field: &str) -> Result<Vec<u8>, ApiError> {
    let payload = match field.strip_prefix("data:") {
        Some(rest) => {
            let (meta, data) = rest.split_once(',').ok_or_else(|| {
                ApiError::bad_request("bad_data_url", "a data URL needs a comma before its data")
            })?;
            let mut parts = meta.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            if !parts.any(|p| p.trim().eq_ignore_ascii_case("base64")) {
                return Err(ApiError::bad_request(
                    "bad_data_url",
                    "only base64 data URLs are accepted",
                ));
            }
            if !media.starts_with("image/") && media != "application/dicom" {
                return Err(ApiError::new(
                    415,
                    "unsupported_media_type",
                    format!("the data URL's media type '{media}' is not an image"),
                ));
            }
            data
        }
        None => field,
    };
    // Line-wrapped base64 (MIME, `base64` without `-w0`) is accepted. Most bodies have no
    // whitespace at all; they are decoded in place rather than copied byte by byte.
    let compact: Cow<'_, [u8]> = if payload.bytes().any(|b| b.is_ascii_whitespace()) {
        Cow::Owned(
            payload
                .bytes()
                .filter(|b| !b.is_ascii_whitespace())
                .collect(),
        )
    } else {
        Cow::Borrowed(payload.as_bytes())
    };
    if compact.is_empty() {
        return Err(ApiError::bad_request(
            "empty_input",
            "the \"image\" field is empty",
        ));
    }
    let config = base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent);
    let standard = base64::engine::GeneralPurpose::new(&base64::alphabet::STANDARD, config);
    let url_safe = base64::engine::GeneralPurpose::new(&base64::alphabet::URL_SAFE, config);
    standard
        .decode(&*compact)
        .or_else(|_| url_safe.decode(&*compact))
        .map_err(|e| {
            ApiError::bad_request("bad_base64", format!("\"image\" is not valid base64: {e}"))
        })
}

fn html(page: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::Text(page.to_string()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    let text = serde_json::to_string(value).unwrap_or_else(|e| {
        format!(r#"{{"error":{{"code":"internal_error","message":"serialising the answer failed: {e}"}}}}"#)
    });
    let mut r = Response::new(Body::Text(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error_response(e: &ApiError, path: &str) -> Response<Body> {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut r = json_response(status, &e.body());
    if status == StatusCode::METHOD_NOT_ALLOWED {
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allowed(path)));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_and_alphabets() {
        let b64 = base64::engine::general_purpose::STANDARD.encode([0xFBu8, 0xFF, 0x01]);
        assert_eq!(
            decode_image_field(&b64).expect("std"),
            vec![0xFB, 0xFF, 0x01]
        );
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xFBu8, 0xFF, 0x01]);
        assert_eq!(
            decode_image_field(&url).expect("url-safe"),
            vec![0xFB, 0xFF, 0x01]
        );
        let data = format!("data:image/png;base64,{b64}");
        assert_eq!(
            decode_image_field(&data).expect("data url"),
            vec![0xFB, 0xFF, 0x01]
        );
        assert_eq!(
            decode_image_field("data:text/plain;base64,AAAA")
                .expect_err("415")
                .status,
            415
        );
        assert_eq!(
            decode_image_field("data:image/png,AAAA")
                .expect_err("400")
                .code,
            "bad_data_url"
        );
        assert_eq!(
            decode_image_field("@@@").expect_err("400").code,
            "bad_base64"
        );
    }
}
