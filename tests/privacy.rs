//! Medical images and their names stay out of the logs: a request and a trigger event are
//! run with a trace-level subscriber (every level) capturing every line, which must hold no image bytes
//! (raw or base64) and no full object key.

mod common;

use std::sync::Mutex;

use base64::Engine;
use covid_xray::Classifier;
use covid_xray::api::App;
use covid_xray::config::HttpConfig;
use covid_xray::config::TriggerConfig;
use covid_xray::s3::store::{BoxFuture, ObjectMeta, ObjectStore, StoreError};
use covid_xray::s3::trigger;
use lambda_http::Body;

/// An in-memory store that serves one object: privacy is about what we log, not about S3.
struct OneObject(Vec<u8>, Mutex<Vec<String>>);

impl ObjectStore for OneObject {
    fn get<'a>(
        &'a self,
        _b: &'a str,
        _k: &'a str,
        _v: Option<&'a str>,
        _m: u64,
    ) -> BoxFuture<'a, Result<(Vec<u8>, ObjectMeta), StoreError>> {
        Box::pin(async move { Ok((self.0.clone(), ObjectMeta::default())) })
    }
    fn put<'a>(
        &'a self,
        _b: &'a str,
        key: &'a str,
        _body: Vec<u8>,
        _ct: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.1.lock().expect("lock").push(key.to_string());
            Ok(())
        })
    }
}

fn assert_no_image(logs: &str, image: &[u8]) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(image);
    for window in [&b64[100..140], &b64[b64.len() / 2..b64.len() / 2 + 40]] {
        assert!(!logs.contains(window), "base64 image bytes in the logs");
    }
    assert!(!logs.contains("JFIF"), "raw JPEG bytes in the logs");
}

#[test]
fn an_http_request_logs_no_image_bytes() {
    let image = common::first_of("covid");
    let app = App::new(
        Classifier::embedded().expect("model"),
        HttpConfig::default(),
    );
    let body =
        serde_json::json!({"image": base64::engine::general_purpose::STANDARD.encode(&image)})
            .to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let (status, logs) = common::capture_logs(|| {
        let req = lambda_http::http::Request::builder()
            .method("POST")
            .uri("/predict")
            .header("content-type", "application/json")
            .body(Body::Text(body.clone()))
            .expect("request");
        rt.block_on(app.handle(req)).status()
    });
    assert_eq!(status, 200);
    assert!(
        logs.contains("request"),
        "one line per request is expected: {logs}"
    );
    assert!(logs.contains("status=200"), "{logs}");
    assert_no_image(&logs, &image);
}

#[test]
fn a_trigger_event_logs_no_image_bytes_and_no_full_key() {
    let image = common::first_of("normal");
    let key = "uploads/Jane Q Patient 1970-01-01/chest-pa.jpg";
    let store = OneObject(image.clone(), Mutex::new(Vec::new()));
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events/s3-put.json");
    let mut raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("event")).expect("JSON");
    raw["Records"][0]["s3"]["object"]["key"] =
        "uploads/Jane+Q+Patient+1970-01-01/chest-pa.jpg".into();
    let event: aws_lambda_events::event::s3::S3Event = serde_json::from_value(raw).expect("event");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let classifier = Classifier::embedded().expect("model");
    let (outcomes, logs) = common::capture_logs(|| {
        rt.block_on(trigger::handle_event(
            &classifier,
            &store,
            &TriggerConfig::default(),
            event,
            "req",
        ))
    });
    assert_eq!(outcomes.expect("handled").len(), 1);
    assert_eq!(
        store.1.lock().expect("lock").as_slice(),
        ["results/Jane Q Patient 1970-01-01/chest-pa.jpg.json"]
    );
    assert!(logs.contains("classified object"), "{logs}");
    for secret in [key, "Jane", "Patient", "chest-pa"] {
        assert!(!logs.contains(secret), "{secret:?} in the logs: {logs}");
    }
    assert_no_image(&logs, &image);
}

#[test]
fn a_batch_task_logs_and_answers_no_image_bytes_and_no_key() {
    let image = common::first_of("covid");
    let store = OneObject(image.clone(), Mutex::new(Vec::new()));
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events/s3-batch-v2.json");
    let mut event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("event")).expect("JSON");
    event["tasks"][0]["s3Key"] = "archive/Jane%20Q%20Patient%201970-01-01/chest-pa.jpg".into();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let classifier = Classifier::embedded().expect("model");
    let (answer, logs) = common::capture_logs(|| {
        rt.block_on(covid_xray::s3::invocation::handle(
            &classifier,
            &store,
            &TriggerConfig::default(),
            event,
            "req",
        ))
    });
    let answer = answer.expect("answered").to_string();
    assert!(answer.contains("Succeeded"), "{answer}");
    assert!(logs.contains("classified object"), "{logs}");
    for secret in ["Jane", "Patient", "chest-pa", "1970"] {
        assert!(!logs.contains(secret), "{secret:?} in the logs: {logs}");
        assert!(
            !answer.contains(secret),
            "{secret:?} in the answer: {answer}"
        );
    }
    assert_no_image(&logs, &image);
}

/// The request's log line names the authenticated caller for audit (an IAM ARN, or a JWT's
/// issuer and subject), and nothing of a token.
#[test]
fn the_audit_line_names_the_caller_and_nothing_of_the_token() {
    use covid_xray::config::AuthMode;
    let event = |name: &str| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("events")
            .join(name);
        lambda_http::request::from_str(&std::fs::read_to_string(path).expect("event"))
            .expect("event")
    };
    let app = |auth| {
        App::new(
            Classifier::embedded().expect("model"),
            HttpConfig {
                auth,
                ..HttpConfig::default()
            },
        )
    };
    let (statuses, logs) = common::capture_logs(|| {
        [
            common::respond(&app(AuthMode::Jwt), event("apigw-jwt.json")).0,
            common::respond(&app(AuthMode::Iam), event("apigw-iam-signed.json")).0,
        ]
    });
    assert_eq!(statuses, [200, 200]);
    assert!(
        logs.contains(
            "jwt:https://idp.example.org/realms/radiology#6c1f3e0a-3b7d-4d8e-9a41-2f8c5e9b7d10"
        ),
        "{logs}"
    );
    assert!(
        logs.contains("iam:arn:aws:iam::123456789012:user/radiology-batch"),
        "{logs}"
    );
    assert!(!logs.contains("eyJ"), "a token reached the logs: {logs}");
}
