//! S3 Batch Operations against a real S3-compatible server on loopback (s3s-fs, SigV4
//! checked), through the function's own entry point: the invocation JSON as Batch sends it
//! (`events/s3-batch-v*.json`) goes to `invocation::handle`, exactly as `xray-s3` hands it
//! over, and the answer is read as Batch reads it.
//!
//! The archive server adds to s3s-fs what a real archive bucket has and s3s-fs lacks: object
//! versions (a GET or HEAD with `versionId` reads that version) and a prefix the function is
//! denied (`private/`), as a bucket policy would.

mod common;
#[path = "common/s3server.rs"]
mod s3server;

use std::collections::BTreeSet;
use std::path::Path;

use covid_xray::Classifier;
use covid_xray::config::TriggerConfig;
use covid_xray::s3::client::S3Store;
use covid_xray::s3::invocation;
use covid_xray::s3::store::ObjectStore;
use futures_util::StreamExt;
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};
use s3server::{AK, BUCKET, SK, failing_server, list_keys, s3_server_with, tempdir};
use serde_json::{Value, json};

/// Where the archive server keeps version `v` of `key`.
fn version_path(key: &str, v: &str) -> String {
    format!("{key}.versions/{v}")
}

/// s3s-fs with versions and a denied prefix.
struct Archive(s3s_fs::FileSystem);

/// What the archive does before a read: refuse `private/`, and point a versioned read at
/// where that version is kept. Returns the version, for the answer to name.
fn archive_read(key: &mut String, version_id: &mut Option<String>) -> S3Result<Option<String>> {
    if key.starts_with("private/") {
        return Err(s3_error!(AccessDenied));
    }
    let version = version_id.take();
    if let Some(v) = &version {
        *key = version_path(key, v);
    }
    Ok(version)
}

#[async_trait::async_trait]
impl S3 for Archive {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.0.create_bucket(req).await
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.0.put_object(req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.0.list_objects_v2(req).await
    }

    async fn head_object(
        &self,
        mut req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let version = archive_read(&mut req.input.key, &mut req.input.version_id)?;
        let mut r = self.0.head_object(req).await?;
        r.output.version_id = version;
        Ok(r)
    }

    async fn get_object(
        &self,
        mut req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let version = archive_read(&mut req.input.key, &mut req.input.version_id)?;
        let mut r = self.0.get_object(req).await?;
        r.output.version_id = version;
        Ok(r)
    }
}

async fn archive_server() -> (S3Store, tempdir::Dir) {
    let (_endpoint, store, dir) = s3_server_with(Archive).await;
    (store, dir)
}

/// Percent-encodes a key as a Batch manifest carries it (space as %20, `+` as %2B).
fn manifest_encode(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The committed invocation of `schema` ("v1" or "v2"), its task repeated for each
/// `(task id, key, version)`, on the test bucket.
fn batch_event(schema: &str, tasks: &[(&str, &str, Option<&str>)]) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("events/s3-batch-{schema}.json"));
    let mut event: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("event")).expect("json");
    let template = event["tasks"][0].clone();
    event["tasks"] = tasks
        .iter()
        .map(|(id, key, version)| {
            let mut t = template.clone();
            t["taskId"] = json!(id);
            t["s3Key"] = json!(manifest_encode(key));
            t["s3VersionId"] = json!(version);
            if t.get("s3Bucket").is_some() {
                t["s3Bucket"] = json!(BUCKET);
            } else {
                t["s3BucketArn"] = json!(format!("arn:aws:s3:::{BUCKET}"));
            }
            t
        })
        .collect();
    event
}

async fn invoke(classifier: &Classifier, store: &S3Store, event: Value) -> Value {
    invocation::handle(
        classifier,
        store,
        &TriggerConfig::default(),
        event,
        "req-batch",
    )
    .await
    .expect("a Batch invocation is always answered")
}

async fn get_json(store: &S3Store, key: &str) -> Value {
    let (bytes, _) = store
        .get(BUCKET, key, None, 1 << 20)
        .await
        .unwrap_or_else(|e| panic!("{key}: {e}"));
    serde_json::from_slice(&bytes).expect("result JSON")
}

async fn put(store: &S3Store, key: &str, bytes: Vec<u8>) {
    store
        .put(BUCKET, key, bytes, "application/octet-stream")
        .await
        .expect("put");
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(common::fixtures().join(path)).expect("fixture")
}

/// The answer's one result, checked against the event's ids.
fn only_result<'a>(answer: &'a Value, event: &Value) -> &'a Value {
    assert_eq!(
        answer["invocationSchemaVersion"],
        event["invocationSchemaVersion"]
    );
    assert_eq!(answer["invocationId"], event["invocationId"]);
    assert_eq!(answer["treatMissingKeysAs"], "PermanentFailure");
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results.len(), 1, "{answer}");
    assert_eq!(results[0]["taskId"], event["tasks"][0]["taskId"]);
    &results[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_schemas_classify_a_key_with_spaces_and_non_ascii_characters() {
    let (store, _dir) = archive_server().await;
    let classifier = Classifier::embedded().expect("model");
    let key = "archive/ward 3/röntgen a+b.jpg";
    let film = common::first_of("covid");
    let expected = common::label_of_bytes(&film).expect("fixture label");
    put(&store, key, film).await;
    for schema in ["v1", "v2"] {
        let event = batch_event(schema, &[("task-1", key, None)]);
        let answer = invoke(&classifier, &store, event.clone()).await;
        let r = only_result(&answer, &event);
        assert_eq!(r["resultCode"], "Succeeded", "{schema}: {answer}");
        let text = r["resultString"].as_str().expect("resultString");
        let result = get_json(&store, &format!("results/{key}.json")).await;
        let p = result["probabilities"]["covid"].as_f64().expect("p");
        assert_eq!(
            text,
            format!("{} {p:.4}", result["label"].as_str().expect("label"))
        );
        assert_eq!(result["label"], expected.as_str(), "{schema}");
        assert_eq!(result["source"]["key"], key);
        assert!(
            !text.contains("röntgen") && !text.contains("archive"),
            "{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_version_is_the_one_classified() {
    let (store, _dir) = archive_server().await;
    let classifier = Classifier::embedded().expect("model");
    let key = "archive/film.jpg";
    // The current object is a normal film; version v1, overwritten since, was a COVID film.
    let (normal, covid) = (common::first_of("normal"), common::first_of("covid"));
    assert_eq!(common::label_of_bytes(&normal).as_deref(), Some("normal"));
    assert_eq!(common::label_of_bytes(&covid).as_deref(), Some("covid"));
    put(&store, key, normal).await;
    put(&store, &version_path(key, "v1"), covid).await;
    let event = batch_event("v2", &[("t-v1", key, Some("v1")), ("t-now", key, None)]);
    let answer = invoke(&classifier, &store, event).await;
    let codes: Vec<&str> = answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["resultCode"].as_str().expect("code"))
        .collect();
    assert_eq!(codes, ["Succeeded", "Succeeded"], "{answer}");
    let old = get_json(&store, "results/archive/film.jpg.version-v1.json").await;
    assert_eq!(old["label"], "covid");
    assert_eq!(old["source"]["version_id"], "v1");
    assert!(
        answer["results"][0]["resultString"]
            .as_str()
            .expect("text")
            .starts_with("covid ")
    );
    let now = get_json(&store, "results/archive/film.jpg.json").await;
    assert_eq!(now["label"], "normal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_retrying_cannot_fix_is_a_permanent_failure_with_its_code() {
    let (store, _dir) = archive_server().await;
    let classifier = Classifier::embedded().expect("model");
    put(&store, "archive/notes.jpg", b"not an image at all".to_vec()).await;
    put(&store, "archive/chart.png", fixture("not-chest/chart.png")).await;
    put(&store, "archive/ct.jpg", fixture("not-chest/ct-axial.jpg")).await;
    put(&store, "private/film.jpg", common::first_of("normal")).await;
    put(&store, "results/old.jpg.json", b"{}".to_vec()).await;
    let cases = [
        ("archive/notes.jpg", "PermanentFailure", "not_an_image"),
        ("archive/chart.png", "PermanentFailure", "not_a_chest_xray"),
        ("archive/ct.jpg", "PermanentFailure", "not_a_chest_xray"),
        (
            "archive/gone.jpg",
            "PermanentFailure",
            "s3_object_not_found",
        ),
        ("private/film.jpg", "PermanentFailure", "s3_access_denied"),
        (
            "results/old.jpg.json",
            "Succeeded",
            "skipped: a result object",
        ),
    ];
    let tasks: Vec<(&str, &str, Option<&str>)> =
        cases.iter().map(|(key, ..)| (*key, *key, None)).collect();
    let answer = invoke(&classifier, &store, batch_event("v1", &tasks)).await;
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results.len(), cases.len());
    for ((key, code, text), r) in cases.iter().zip(results) {
        assert_eq!(r["taskId"], *key);
        assert_eq!(
            (r["resultCode"].as_str(), r["resultString"].as_str()),
            (Some(*code), Some(*text)),
            "{key}"
        );
        if *code == "PermanentFailure" {
            // The error result says why, as the trigger's do.
            let result = get_json(&store, &format!("results/{key}.json")).await;
            assert_eq!(result["error"]["code"], *text, "{key}: {result}");
        }
    }
    // A result object was not classified, so it has no result of its own.
    assert!(
        store
            .get(BUCKET, "results/results/old.jpg.json.json", None, 1 << 20)
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_server_is_a_temporary_failure_so_batch_retries() {
    let classifier = Classifier::embedded().expect("model");
    for status in [500, 503] {
        let endpoint = failing_server(status).await;
        let store = S3Store::with_endpoint(&endpoint, "us-east-1", AK, SK).await;
        let event = batch_event("v2", &[("t", "archive/a.jpg", None)]);
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            invoke(&classifier, &store, event.clone()),
        )
        .await
        .expect("answered, not hung");
        let r = only_result(&answer, &event);
        assert_eq!(
            (r["resultCode"].as_str(), r["resultString"].as_str()),
            (Some("TemporaryFailure"), Some("s3_unavailable")),
            "{status}: {answer}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_200_tasks_leaves_200_results_and_loses_nothing() {
    let (store, _dir) = archive_server().await;
    let classifier = Classifier::embedded().expect("model");
    // Two real films at 100 x 120 px (the size keeps the run short), alternating.
    let films = [common::small_film("covid"), common::small_film("normal")];
    let labels: Vec<&str> = films
        .iter()
        .map(|f| {
            classifier
                .classify(f)
                .expect("a small film is still a film")
                .label
                .as_str()
        })
        .collect();
    let keys: Vec<String> = (0..200)
        .map(|i| format!("archive/ward {}/film {i:03}.png", i % 7))
        .collect();
    for (i, key) in keys.iter().enumerate() {
        put(&store, key, films[i % 2].clone()).await;
    }
    // One task per invocation, as Batch sends them, 16 at a time; then 20 of them again, as
    // Batch may deliver a task twice.
    let tasks: Vec<(String, String)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (format!("task-{i}"), k.clone()))
        .chain((0..20).map(|i| (format!("task-{}", i * 10), keys[i * 10].clone())))
        .collect();
    let answers: Vec<Value> = futures_util::stream::iter(tasks.iter())
        .map(|(id, key)| invoke(&classifier, &store, batch_event("v1", &[(id, key, None)])))
        .buffer_unordered(16)
        .collect()
        .await;
    assert_eq!(answers.len(), 220);
    let mut succeeded = BTreeSet::new();
    for a in &answers {
        let r = &a["results"][0];
        assert_eq!(r["resultCode"], "Succeeded", "{a}");
        succeeded.insert(r["taskId"].as_str().expect("id").to_string());
    }
    assert_eq!(succeeded.len(), 200, "every task answered once at least");

    let results: BTreeSet<String> = list_keys(&store, Some("results/"))
        .await
        .into_iter()
        .collect();
    let expected: BTreeSet<String> = keys.iter().map(|k| format!("results/{k}.json")).collect();
    assert_eq!(
        results, expected,
        "one result per object, none lost, none extra"
    );
    for (i, key) in keys.iter().enumerate().step_by(37) {
        let r = get_json(&store, &format!("results/{key}.json")).await;
        assert_eq!(r["source"]["key"], key.as_str());
        assert_eq!(r["label"], labels[i % 2], "{key}");
    }
}
