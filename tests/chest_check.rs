//! What is not a frontal chest X-ray is refused (`not_a_chest_xray`), through the library, the
//! HTTP handler (an API Gateway event as AWS sends it) and the CLI; every fixture X-ray passes.
//! The S3 trigger's case is in tests/s3.rs.

mod common;

use std::path::{Path, PathBuf};

use base64::Engine;
use covid_xray::api::App;
use covid_xray::config::HttpConfig;
use covid_xray::{Classifier, Error};

/// Real CT slices (axial, coronal) and a lateral film of held-out groups, and a drawn chart.
fn not_chest() -> Vec<PathBuf> {
    let dir = common::fixtures().join("not-chest");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/fixtures/not-chest")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "jpg" || x == "png"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    files
}

#[test]
fn ct_slices_a_lateral_film_and_a_chart_are_refused_and_every_fixture_xray_passes() {
    let c = Classifier::embedded().expect("model");
    let threshold = c.chest_check().threshold();
    for f in not_chest() {
        let bytes = std::fs::read(&f).expect("fixture");
        let e = c.classify(&bytes).expect_err("refused");
        assert!(matches!(e, Error::NotAChestXray), "{}: {e}", f.display());
        assert_eq!(e.code(), "not_a_chest_xray");
        assert!(matches!(c.explain(&bytes), Err(Error::NotAChestXray)));
    }
    for f in common::fixture_xrays() {
        let bytes = std::fs::read(&f.path).expect("fixture");
        let whole = c.prepare(&bytes).expect("prepared").whole;
        let score = c.chest_check().score(&whole).expect("scored");
        assert!(score >= threshold, "{}: {score} < {threshold}", f.name);
        c.classify(&bytes)
            .expect("a frontal chest X-ray is answered");
    }
    // The DICOM films pass too.
    let dicom = common::fixtures().join("dicom/normal-12bit-window.dcm");
    c.classify(&std::fs::read(dicom).expect("DICOM"))
        .expect("answered");
}

fn event_with_body(bytes: &[u8], content_type: &str) -> lambda_http::Request {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("events/apigw-raw-jpeg.json");
    let mut event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("event")).expect("JSON");
    event["body"] = base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .into();
    event["headers"]["content-type"] = content_type.into();
    lambda_http::request::from_str(&event.to_string()).expect("lambda_http event")
}

#[test]
fn the_handler_answers_422_not_a_chest_xray() {
    let app = App::new(
        Classifier::embedded().expect("model"),
        HttpConfig::default(),
    );
    for f in not_chest() {
        let ct = if f.extension().is_some_and(|x| x == "png") {
            "image/png"
        } else {
            "image/jpeg"
        };
        let (status, body) =
            common::respond(&app, event_with_body(&std::fs::read(&f).expect("read"), ct));
        assert_eq!(status, 422, "{}", f.display());
        assert_eq!(body["error"]["code"], "not_a_chest_xray", "{body}");
        assert!(body.get("label").is_none());
    }
}

#[test]
fn the_cli_prints_the_error_line_and_goes_on() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xray"))
        .args(["predict", "--json"])
        .arg(common::fixtures().join("not-chest"))
        .arg(&common::fixture_xrays()[0].path)
        .output()
        .expect("run xray");
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let refused = lines
        .iter()
        .filter(|l| l["error"]["code"] == "not_a_chest_xray")
        .count();
    assert_eq!(refused, not_chest().len(), "{lines:?}");
    assert!(lines.last().expect("the X-ray")["label"].is_string());
}
