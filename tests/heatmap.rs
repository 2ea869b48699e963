//! Where the model looked: the class activation map through the library, the HTTP handler
//! (API Gateway events as AWS sends them) and the CLI.

mod common;

use std::path::Path;

use base64::Engine;
use covid_xray::Classifier;
use covid_xray::api::App;
use covid_xray::config::HttpConfig;

fn png_of(b64: &str) -> image::DynamicImage {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    png_of_bytes(&bytes)
}

fn png_of_bytes(bytes: &[u8]) -> image::DynamicImage {
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    image::load_from_memory_with_format(bytes, image::ImageFormat::Png).expect("a valid PNG")
}

/// The exported network's calibration, `P(covid) = sigmoid(a * z + b)` with `z` the logit
/// difference: `a` and `b` from its `scale` and `shift` initializers.
fn calibration() -> (f64, f64) {
    use tract_onnx::prelude::Framework;
    let proto = tract_onnx::onnx()
        .proto_model_for_read(&mut std::io::Cursor::new(covid_xray::model::EMBEDDED_MODEL))
        .expect("proto");
    let graph = proto.graph.expect("graph");
    let value = |name: &str| {
        let t = graph
            .initializer
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no {name}"));
        covid_xray::model::cam::floats(t).expect("floats")
    };
    let (scale, shift) = (value("scale"), value("shift"));
    (f64::from(scale[0]), f64::from(shift[0] - shift[1]))
}

#[test]
fn the_map_is_the_models_own_evidence() {
    let c = Classifier::embedded().expect("model");
    assert!(c.explains());
    let head = covid_xray::model::cam::CamHead::find(covid_xray::model::EMBEDDED_MODEL)
        .expect("ONNX")
        .expect("a head CAM explains");
    let (a, b) = calibration();
    for f in common::fixture_xrays() {
        let bytes = std::fs::read(&f.path).expect("fixture");
        let plain = c.classify(&bytes).expect("classify");
        let (explained, heatmap) = c.explain(&bytes).expect("explain");
        // Explaining changes nothing of the answer.
        assert_eq!(plain.probabilities, explained.probabilities);
        assert_eq!(plain.label, explained.label);
        assert_eq!(heatmap.label, plain.label);
        let png = png_of_bytes(&heatmap.png);
        assert_eq!((png.width(), png.height()), (192, 192));
        assert_eq!(heatmap.size, 192);
        assert!(matches!(png, image::DynamicImage::ImageRgb8(_)));
        assert_eq!((heatmap.grid.width, heatmap.grid.height), (6, 6));
        assert_eq!(heatmap.grid.values.len(), 36);
        // The map's mean plus the head's bias is the logit difference the network computed:
        // through the calibration it gives the answer's probability.
        let mean = heatmap
            .grid
            .values
            .iter()
            .map(|&v| f64::from(v))
            .sum::<f64>()
            / 36.0;
        let z = mean + f64::from(head.bias);
        let p = 1.0 / (1.0 + (-(a * z + b)).exp());
        let answered = f64::from(plain.probabilities.covid);
        assert!(
            (p - answered).abs() < 1e-4,
            "{}: the map gives P(covid) {p}, the model {answered}",
            f.name
        );
    }
}

fn app() -> App {
    App::new(
        Classifier::embedded().expect("model"),
        HttpConfig::default(),
    )
}

fn event(name: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("events")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).expect("event")).expect("JSON")
}

fn run(app: &App, event: &serde_json::Value) -> (u16, serde_json::Value) {
    let req = lambda_http::request::from_str(&event.to_string()).expect("lambda_http event");
    common::respond(app, req)
}

#[test]
fn the_handler_answers_a_heatmap_when_asked_and_only_then() {
    let app = app();
    // Plain: no heatmap, the answer as before.
    let (status, plain) = run(&app, &event("apigw-raw-jpeg.json"));
    assert_eq!(status, 200, "{plain}");
    assert!(plain.get("heatmap").is_none(), "{plain}");

    // `?explain=1` on a raw JPEG body.
    let mut query = event("apigw-raw-jpeg.json");
    query["rawQueryString"] = "explain=1".into();
    query["queryStringParameters"] = serde_json::json!({"explain": "1"});
    let (status, explained) = run(&app, &query);
    assert_eq!(status, 200, "{explained}");
    assert_eq!(explained["label"], plain["label"]);
    assert_eq!(explained["probabilities"], plain["probabilities"]);
    let heatmap = &explained["heatmap"];
    let png = png_of(heatmap["png"].as_str().expect("png"));
    assert_eq!((png.width(), png.height()), (192, 192));
    assert_eq!(heatmap["grid"]["width"], 6);
    assert_eq!(
        heatmap["grid"]["values"].as_array().expect("values").len(),
        36
    );
    assert_eq!(heatmap["label"], plain["label"]);

    // `"explain": true` in a JSON body.
    let mut json = event("apigw-json-base64.json");
    let mut inner: serde_json::Value =
        serde_json::from_str(json["body"].as_str().expect("body")).expect("inner");
    inner["explain"] = true.into();
    json["body"] = inner.to_string().into();
    let (status, body) = run(&app, &json);
    assert_eq!(status, 200, "{body}");
    assert!(body["heatmap"]["png"].is_string());

    // `"explain": false` and `?explain=0` are plain answers; a value that means neither is
    // a 400 that says so.
    inner["explain"] = false.into();
    json["body"] = inner.to_string().into();
    assert!(run(&app, &json).1.get("heatmap").is_none());
    query["rawQueryString"] = "explain=0".into();
    query["queryStringParameters"] = serde_json::json!({"explain": "0"});
    assert!(run(&app, &query).1.get("heatmap").is_none());
    query["rawQueryString"] = "explain=maybe".into();
    query["queryStringParameters"] = serde_json::json!({"explain": "maybe"});
    let (status, body) = run(&app, &query);
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("explain")
    );
}

#[test]
fn the_cli_writes_a_heatmap_beside_each_answer() {
    let dir = std::env::temp_dir().join(format!("xray-heatmaps-{}", std::process::id()));
    let fixtures = common::fixture_xrays();
    let first = &fixtures[0].path;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xray"))
        .args(["predict", "--json", "--heatmap"])
        .arg(&dir)
        .arg(first)
        .output()
        .expect("run xray");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value =
        serde_json::from_slice(out.stdout.trim_ascii()).expect("one JSON line");
    assert!(line["heatmap"]["grid"]["values"].is_array());
    let stem = first.file_stem().expect("stem").to_string_lossy();
    let written = dir.join(format!("{stem}.heatmap.png"));
    let png = image::open(&written).expect("a PNG written");
    assert_eq!((png.width(), png.height()), (192, 192));
    std::fs::remove_dir_all(&dir).expect("clean up");
}
