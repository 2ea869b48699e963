//! S3 against a real S3-compatible server on loopback: s3s-fs speaking the S3 protocol over
//! HTTP (SigV4 checked), started in-process. No mocked client: the handlers use `S3Store`,
//! the same aws-sdk-s3 client as on Lambda.

mod common;
#[path = "common/s3server.rs"]
mod s3server;

use std::path::Path;
use std::sync::Arc;

use aws_lambda_events::event::s3::S3Event;
use covid_xray::Classifier;
use covid_xray::api::App;
use covid_xray::config::HttpConfig;
use covid_xray::config::TriggerConfig;
use covid_xray::s3::client::{S3Store, Timeouts};
use covid_xray::s3::store::ObjectStore;
use covid_xray::s3::trigger::{self, Outcome};
use lambda_http::Body;

use s3server::{AK, BUCKET, SK, closed_port, failing_server, list_keys, s3_server};

/// Encodes a key as S3 event notifications do: form encoding, space as '+'.
fn event_encode(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The committed put event, with one record per key.
fn put_event(keys: &[&str]) -> S3Event {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("events/s3-put.json");
    let template: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("event")).expect("json");
    let record = template["Records"][0].clone();
    let records: Vec<serde_json::Value> = keys
        .iter()
        .map(|k| {
            let mut r = record.clone();
            r["s3"]["bucket"]["name"] = BUCKET.into();
            r["s3"]["object"]["key"] = event_encode(k).into();
            r
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).expect("S3Event")
}

async fn get_json(store: &S3Store, key: &str) -> serde_json::Value {
    let (bytes, _) = store
        .get(BUCKET, key, None, 1 << 20)
        .await
        .unwrap_or_else(|e| panic!("{key}: {e}"));
    serde_json::from_slice(&bytes).expect("result JSON")
}

/// Puts each `(key, bytes, content type)` in the bucket, then runs the trigger, default
/// configuration, on one S3 event that names them all.
async fn upload_and_trigger(
    store: &S3Store,
    uploads: &[(&str, Vec<u8>, &str)],
    request_id: &str,
) -> Result<Vec<Outcome>, trigger::RetryableFailure> {
    for (key, bytes, content_type) in uploads {
        store
            .put(BUCKET, key, bytes.clone(), content_type)
            .await
            .expect("put upload");
    }
    let keys: Vec<&str> = uploads.iter().map(|u| u.0).collect();
    trigger::handle_event(
        &classifier(),
        store,
        &TriggerConfig::default(),
        put_event(&keys),
        request_id,
    )
    .await
}

fn classifier() -> Classifier {
    Classifier::embedded().expect("model")
}

#[test]
fn committed_put_event_decodes_its_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("events/s3-put.json");
    let event: S3Event =
        serde_json::from_str(&std::fs::read_to_string(path).expect("event")).expect("S3Event");
    let raw = event.records[0].s3.object.key.clone().expect("key");
    let key = trigger::decode_key(&raw);
    assert!(key.contains(' ') && !key.is_ascii(), "{key}");
    assert_eq!(key, "uploads/ward 3/röntgen film.jpg");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_round_trip_on_a_real_s3_server() {
    let (_endpoint, store, _dir) = s3_server().await;
    let covid = common::first_of("covid");
    let normal = common::first_of("normal");
    let uploads: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        (
            "uploads/ward 3/röntgen film.jpg",
            covid.clone(),
            Some("covid"),
        ),
        ("uploads/a+b/normal 1.jpg", normal.clone(), Some("normal")),
        (
            "uploads/nested/deeper/still/x-ray.jpg",
            normal.clone(),
            Some("normal"),
        ),
        ("uploads/notes.txt", b"this is not an X-ray".to_vec(), None),
        ("other/ignored.jpg", covid.clone(), None),
        ("uploads/small.png", common::small_film("normal"), None),
    ];
    for (key, bytes, _) in &uploads {
        store
            .put(BUCKET, key, bytes.clone(), "application/octet-stream")
            .await
            .expect("put upload");
    }
    let keys: Vec<&str> = uploads.iter().map(|u| u.0).collect();
    let config = TriggerConfig::default();
    let c = classifier();
    for round in 0..2 {
        // The second round is Lambda retrying the same event: same results, no harm.
        let outcomes = trigger::handle_event(&c, &store, &config, put_event(&keys), "req-1")
            .await
            .expect("handled");
        assert_eq!(outcomes.len(), uploads.len());
        assert_eq!(outcomes[4], Outcome::Ignored, "round {round}");
        assert!(
            matches!(
                outcomes[3],
                Outcome::Rejected {
                    code: "not_an_image",
                    ..
                }
            ),
            "{:?}",
            outcomes[3]
        );
    }
    for (key, _, label) in &uploads[..3] {
        let result_key = format!("results/{}.json", key.trim_start_matches("uploads/"));
        let v = get_json(&store, &result_key).await;
        assert_eq!(v["label"], label.expect("label"), "{key}");
        assert_eq!(v["source"]["bucket"], BUCKET);
        assert_eq!(v["source"]["key"], *key);
        assert!(v["source"]["etag"].as_str().is_some_and(|e| !e.is_empty()));
        assert!(v["processed_at"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert!(
            v["disclaimer"]
                .as_str()
                .is_some_and(|d| d.contains("not a medical device"))
        );
        for field in [
            "confidence",
            "probabilities",
            "threshold",
            "model",
            "timing_ms",
            "request_id",
        ] {
            assert!(!v[field].is_null(), "{field} missing in {v}");
        }
    }
    // A film the model was not trained for is classified, and its result says why it means little.
    let tiny = get_json(&store, "results/small.png.json").await;
    assert!(tiny["label"].is_string(), "{tiny}");
    assert_eq!(tiny["warnings"][0]["code"], "small_image", "{tiny}");
    let plain = get_json(&store, "results/a+b/normal 1.jpg.json").await;
    assert!(plain.get("warnings").is_none(), "{plain}");
    let err = get_json(&store, "results/notes.txt.json").await;
    assert_eq!(err["error"]["code"], "not_an_image");
    assert_eq!(err["source"]["key"], "uploads/notes.txt");
    // Nothing was written for the ignored key, and nothing under the upload prefix.
    let all = list_keys(&store, None).await;
    assert_eq!(
        all.iter().filter(|k| k.starts_with("results/")).count(),
        5,
        "{all:?}"
    );
    assert_eq!(
        all.iter().filter(|k| k.starts_with("uploads/")).count(),
        5,
        "{all:?}"
    );
    assert!(
        !all.iter()
            .any(|k| k.starts_with("results/") && k.contains("ignored"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dicom_uploads_are_classified_or_refused_and_name_no_patient() {
    let (_endpoint, store, _dir) = s3_server().await;
    let dicom = |name: &str| {
        std::fs::read(common::fixtures().join("dicom").join(name)).expect("DICOM fixture")
    };
    let uploads = [
        (
            "uploads/ward 3/film.dcm",
            dicom("covid-12bit-window.dcm"),
            "application/dicom",
        ),
        (
            "uploads/ct.dcm",
            dicom("refused-ct.dcm"),
            "application/dicom",
        ),
    ];
    let outcomes = upload_and_trigger(&store, &uploads, "req-dicom")
        .await
        .expect("handled");
    assert!(
        matches!(outcomes[0], Outcome::Classified { .. }),
        "{outcomes:?}"
    );
    assert!(
        matches!(
            outcomes[1],
            Outcome::Rejected {
                code: "unsupported_modality",
                ..
            }
        ),
        "{outcomes:?}"
    );
    let film = get_json(&store, "results/ward 3/film.dcm.json").await;
    assert!(film["label"].is_string(), "{film}");
    let ct = get_json(&store, "results/ct.dcm.json").await;
    assert_eq!(ct["error"]["code"], "unsupported_modality");
    for v in [film, ct] {
        let text = v.to_string();
        assert!(
            !text.contains("PID-SECRET") && !text.contains("Doe"),
            "{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_that_are_not_chest_xrays_get_a_final_error_result() {
    let (_endpoint, store, _dir) = s3_server().await;
    let read = |name: &str| {
        std::fs::read(common::fixtures().join("not-chest").join(name)).expect("fixture")
    };
    let uploads = [
        ("uploads/ct-axial.jpg", read("ct-axial.jpg"), "image/jpeg"),
        ("uploads/lateral.jpg", read("lateral.jpg"), "image/jpeg"),
        ("uploads/chart.png", read("chart.png"), "image/png"),
        ("uploads/film.jpg", common::first_of("normal"), "image/jpeg"),
    ];
    let outcomes = upload_and_trigger(&store, &uploads, "req-not-chest")
        .await
        .expect("handled: a refused upload is an answer, not a retry");
    for outcome in &outcomes[..3] {
        assert!(
            matches!(
                outcome,
                Outcome::Rejected {
                    code: "not_a_chest_xray",
                    ..
                }
            ),
            "{outcomes:?}"
        );
    }
    assert!(
        matches!(outcomes[3], Outcome::Classified { .. }),
        "{outcomes:?}"
    );
    for name in ["ct-axial.jpg", "lateral.jpg", "chart.png"] {
        let result = get_json(&store, &format!("results/{name}.json")).await;
        assert_eq!(result["error"]["code"], "not_a_chest_xray", "{result}");
        assert!(result.get("label").is_none());
    }
}

#[test]
fn a_looping_configuration_never_starts() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xray-s3"))
        .env("XRAY_UPLOAD_PREFIX", "uploads/")
        .env("XRAY_RESULTS_PREFIX", "uploads/results/")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
        .expect("run xray-s3");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("retrigger"), "{stderr}");
}

fn s3_request(body: &str) -> lambda_http::Request {
    lambda_http::http::Request::builder()
        .method("POST")
        .uri("/predict")
        .header("content-type", "application/json")
        .body(Body::Text(body.to_string()))
        .expect("request")
}

async fn call(app: &App, body: &str) -> (u16, serde_json::Value) {
    let resp = app.handle(s3_request(body)).await;
    let status = resp.status().as_u16();
    let v = serde_json::from_slice(resp.body()).expect("JSON");
    (status, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_s3_references() {
    let (_endpoint, store, _dir) = s3_server().await;
    let normal = common::first_of("normal");
    store
        .put(
            BUCKET,
            "uploads/films/ä 1.jpg",
            normal.clone(),
            "image/jpeg",
        )
        .await
        .expect("put");
    let config = HttpConfig {
        allowed_buckets: vec![BUCKET.into()],
        max_object_bytes: normal.len() as u64 + 10,
        ..HttpConfig::default()
    };
    let app = App::new(classifier(), config).with_store(Arc::new(store.clone()));

    let (status, v) = call(
        &app,
        &serde_json::json!({"s3": {"bucket": BUCKET, "key": "uploads/films/ä 1.jpg"}}).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["label"], "normal");
    let (status, v) = call(
        &app,
        &serde_json::json!({"s3": format!("s3://{BUCKET}/uploads/films/ä 1.jpg")}).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{v}");

    let (status, v) = call(
        &app,
        r#"{"s3": {"bucket": "someone-elses-bucket", "key": "x.jpg"}}"#,
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (403, Some("bucket_not_allowed"))
    );
    let (status, v) = call(
        &app,
        &serde_json::json!({"s3": {"bucket": BUCKET, "key": "uploads/missing.jpg"}}).to_string(),
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("s3_object_not_found")),
        "{v}"
    );
    store
        .put(
            BUCKET,
            "uploads/huge.jpg",
            vec![0u8; normal.len() + 100],
            "image/jpeg",
        )
        .await
        .expect("put");
    let (status, v) = call(
        &app,
        &serde_json::json!({"s3": {"bucket": BUCKET, "key": "uploads/huge.jpg"}}).to_string(),
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (413, Some("s3_object_too_large")),
        "{v}"
    );
    let (status, v) = call(&app, r#"{"s3": "s3://only-a-bucket"}"#).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("invalid_s3_reference"))
    );

    // S3 references are refused outright when no bucket is allowed.
    let closed = App::new(classifier(), HttpConfig::default()).with_store(Arc::new(store));
    let (status, v) = call(
        &closed,
        &serde_json::json!({"s3": {"bucket": BUCKET, "key": "uploads/films/ä 1.jpg"}}).to_string(),
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (403, Some("s3_not_enabled"))
    );
}

/// What every unreachable or failing S3 must look like: the trigger reports both records of
/// an event failed (so Lambda retries it) and the API answers 503 `s3_unavailable`, each
/// within `bound`, a hang detector rather than a speed measurement.
async fn assert_retryable_failure(what: &str, store: S3Store, bound: std::time::Duration) {
    let err = tokio::time::timeout(
        bound,
        trigger::handle_event(
            &classifier(),
            &store,
            &TriggerConfig::default(),
            put_event(&["uploads/a.jpg", "uploads/b.jpg"]),
            "req-2",
        ),
    )
    .await
    .unwrap_or_else(|_| panic!("{what}: the trigger hung"))
    .expect_err("must fail so Lambda retries");
    assert_eq!((err.failed, err.total), (2, 2), "{what}: {err}");

    let config = HttpConfig {
        allowed_buckets: vec![BUCKET.into()],
        ..HttpConfig::default()
    };
    let app = App::new(classifier(), config).with_store(Arc::new(store));
    let body = serde_json::json!({"s3": {"bucket": BUCKET, "key": "uploads/a.jpg"}});
    let (status, v) = tokio::time::timeout(bound, call(&app, &body.to_string()))
        .await
        .unwrap_or_else(|_| panic!("{what}: the API hung"));
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (503, Some("s3_unavailable")),
        "{what}: {v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_or_failing_server_is_a_retryable_failure_not_a_lost_record() {
    for endpoint in [
        closed_port().await,
        failing_server(500).await,
        failing_server(503).await,
    ] {
        let store = S3Store::with_endpoint(&endpoint, "us-east-1", AK, SK).await;
        // The default limits allow 20 s per call; these servers answer at once.
        assert_retryable_failure(&endpoint, store, std::time::Duration::from_secs(60)).await;
    }
}

/// A raw TCP server that reads each request head, then either never answers
/// (`stall_before_headers`), or sends headers promising 100,000 bytes and 1,000 of them and
/// then closes the connection (`mid_body_close`) or stalls. HEAD gets the headers alone.
async fn raw_server(stall_before_headers: bool, mid_body_close: bool) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                break;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                if stall_before_headers {
                    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                    return;
                }
                let is_head = head.starts_with(b"HEAD");
                let headers = "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\nETag: \"abc\"\r\n\r\n";
                if stream.write_all(headers.as_bytes()).await.is_err() || is_head {
                    // HEAD: headers only; keep the connection for the GET.
                    if is_head {
                        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                    }
                    return;
                }
                let _ = stream.write_all(&[0xFF; 1000]).await;
                if mid_body_close {
                    let _ = stream.shutdown().await;
                } else {
                    // Stall mid-body.
                    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                }
            });
        }
    });
    format!("http://{addr}")
}

/// Slow, stalled and cut-off servers: each S3 read fails as retryable within the store's
/// time limits (well inside a Lambda timeout), the trigger reports every record as failed so
/// that Lambda retries the event, and the HTTP API answers 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_stalled_or_cut_off_servers_fail_in_bounded_time_and_lose_nothing() {
    let timeouts = Timeouts {
        connect: std::time::Duration::from_millis(500),
        attempt: std::time::Duration::from_millis(400),
        operation: std::time::Duration::from_millis(1500),
    };
    for (what, endpoint) in [
        ("no response headers", raw_server(true, false).await),
        ("stalls mid-body", raw_server(false, false).await),
        ("closes mid-body", raw_server(false, true).await),
    ] {
        let store =
            S3Store::with_endpoint_and_timeouts(&endpoint, "us-east-1", AK, SK, timeouts).await;
        // The store's limits are 1.5 s per call; the servers stall for 30 s, so a bound of
        // 20 s catches a limit that is not applied.
        assert_retryable_failure(what, store, std::time::Duration::from_secs(20)).await;
    }
}
