//! Every event in events/ through the handler, deserialised as lambda_http does on Lambda.

mod common;

use std::path::Path;

use base64::Engine;
use covid_xray::Classifier;
use covid_xray::api::App;
use covid_xray::config::HttpConfig;

fn app() -> App {
    App::new(
        Classifier::embedded().expect("model"),
        HttpConfig::default(),
    )
}

fn event(name: &str) -> (serde_json::Value, lambda_http::Request) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("events")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("read event");
    let raw: serde_json::Value = serde_json::from_str(&text).expect("event JSON");
    let req = lambda_http::request::from_str(&text).expect("lambda_http accepts the event");
    (raw, req)
}

fn run(app: &App, req: lambda_http::Request) -> (u16, serde_json::Value) {
    common::respond(app, req)
}

#[test]
fn json_base64_event_classifies() {
    let (raw, req) = event("apigw-json-base64.json");
    let inner: serde_json::Value =
        serde_json::from_str(raw["body"].as_str().expect("body")).expect("inner JSON");
    let image = base64::engine::general_purpose::STANDARD
        .decode(inner["image"].as_str().expect("image"))
        .expect("b64");
    let expected = common::label_of_bytes(&image).expect("the event carries a fixture X-ray");
    let (status, body) = run(&app(), req);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["label"], expected.as_str());
    assert!(
        body["disclaimer"]
            .as_str()
            .expect("disclaimer")
            .contains("not a medical device")
    );
    for field in ["confidence", "threshold"] {
        assert!(body[field].as_f64().is_some(), "{field}");
    }
    for field in ["decode", "inference", "total"] {
        assert!(
            body["timing_ms"][field].as_f64().is_some(),
            "timing {field}"
        );
    }
    assert_eq!(body["model"]["name"], "covid-xray-cnn");
    assert!(!body["request_id"].as_str().expect("id").is_empty());
}

#[test]
fn raw_jpeg_event_with_is_base64_encoded_classifies() {
    let (raw, req) = event("apigw-raw-jpeg.json");
    assert_eq!(raw["isBase64Encoded"], true);
    let image = base64::engine::general_purpose::STANDARD
        .decode(raw["body"].as_str().expect("body"))
        .expect("b64");
    let expected = common::label_of_bytes(&image).expect("fixture");
    let (status, body) = run(&app(), req);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["label"], expected.as_str());
}

/// A film in colour (a photograph of a screen) is still answered (200), and the answer says
/// why it means little; a colour picture that is no X-ray is refused (422).
#[test]
fn colour_images_are_answered_with_a_warning_or_refused() {
    let film = image::load_from_memory(&common::first_of("normal"))
        .expect("fixture")
        .to_luma8();
    let tinted = image::RgbImage::from_fn(film.width(), film.height(), |x, y| {
        let v = film.get_pixel(x, y).0[0];
        image::Rgb([v, v / 2, 255 - v / 3])
    });
    let gradient = image::RgbImage::from_fn(240, 200, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    for (picture, status) in [(tinted, 200), (gradient, 422)] {
        let (mut raw, _) = event("apigw-raw-jpeg.json");
        let jpeg = common::encode(
            &image::DynamicImage::ImageRgb8(picture),
            image::ImageFormat::Jpeg,
        );
        raw["body"] = base64::engine::general_purpose::STANDARD
            .encode(jpeg)
            .into();
        let req = lambda_http::request::from_str(&raw.to_string()).expect("event");
        let (got, body) = run(&app(), req);
        assert_eq!(got, status, "{body}");
        if status == 200 {
            assert_eq!(body["warnings"][0]["code"], "colour_image", "{body}");
            assert!(body["label"].is_string());
        } else {
            assert_eq!(body["error"]["code"], "not_a_chest_xray", "{body}");
        }
    }
}

#[test]
fn s3_reference_event_is_refused_when_s3_is_not_enabled() {
    let (_, req) = event("apigw-s3-reference.json");
    let (status, body) = run(&app(), req);
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "s3_not_enabled");
}

#[test]
fn s3_reference_event_outside_the_allow_list_is_refused() {
    let (_, req) = event("apigw-s3-reference.json");
    let config = HttpConfig {
        allowed_buckets: vec!["some-other-bucket".into()],
        ..HttpConfig::default()
    };
    let app = App::new(Classifier::embedded().expect("model"), config);
    let (status, body) = run(&app, req);
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "bucket_not_allowed");
}

#[test]
fn malformed_event_is_a_400() {
    let (_, req) = event("apigw-malformed.json");
    let (status, body) = run(&app(), req);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "malformed_json");
}

#[test]
fn health_event_names_the_model() {
    let (_, req) = event("apigw-health.json");
    let (status, body) = run(&app(), req);
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(
        body["model"]["sha256"],
        covid_xray::model::sha256_hex(covid_xray::model::EMBEDDED_MODEL)
    );
}

#[test]
fn every_event_file_is_covered() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
    let tested = [
        "apigw-json-base64.json",
        "apigw-raw-jpeg.json",
        "apigw-s3-reference.json",
        "apigw-malformed.json",
        "apigw-health.json",
        // Their authorizer identities are tested in tests/auth.rs and tests/privacy.rs.
        "apigw-iam-signed.json",
        "apigw-jwt.json",
    ];
    for entry in std::fs::read_dir(dir).expect("events/") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .to_string();
        if name.starts_with("apigw-") {
            assert!(tested.contains(&name.as_str()), "events/{name} has no test");
        }
    }
}
