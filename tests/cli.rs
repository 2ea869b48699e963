//! The `xray` binary as a user runs it.

mod common;

use std::process::Command;

fn xray() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xray"))
}

#[test]
fn predict_json_prints_one_object_per_image_and_goes_on_after_errors() {
    let dir = std::env::temp_dir().join(format!("xray-cli-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("nested")).expect("mkdir");
    std::fs::write(dir.join("nested/broken.png"), b"not a png").expect("write");
    std::fs::write(dir.join("notes.txt"), b"ignored: not an image name").expect("write");
    let fixtures = common::fixture_xrays();
    std::fs::copy(&fixtures[0].path, dir.join("a.jpg")).expect("copy");
    let tiny = common::fixtures().join("hostile/one-pixel.jpg");
    let out = xray()
        .args(["predict", "--json"])
        .arg(&dir)
        .arg(dir.join("missing.jpg"))
        .arg(&tiny)
        .output()
        .expect("run xray");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    let good = &lines[0];
    assert!(good.get("warnings").is_none(), "{good}");
    assert!(good["path"].as_str().expect("path").ends_with("a.jpg"));
    assert_eq!(good["label"], fixtures[0].label.as_str());
    let pc = good["probabilities"]["covid"].as_f64().expect("p");
    let pn = good["probabilities"]["normal"].as_f64().expect("p");
    assert!((pc + pn - 1.0).abs() < 1e-6);
    assert_eq!(lines[1]["error"]["code"], "not_an_image");
    assert_eq!(lines[2]["error"]["code"], "unreadable");
    // A one-pixel image decodes, and is no chest X-ray.
    assert_eq!(
        lines[3]["error"]["code"], "not_a_chest_xray",
        "{}",
        lines[3]
    );
    assert!(
        out.stderr.is_empty() || !String::from_utf8_lossy(&out.stderr).contains('\r'),
        "no progress bar when stderr is not a terminal"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn predict_table_is_readable() {
    let out = xray()
        .args(["predict"])
        .arg(common::fixtures().join("xrays/normal"))
        .output()
        .expect("run");
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    assert!(stdout.starts_with("label"));
    assert!(stdout.contains("normal"));
    assert!(stdout.contains("not a medical device"));
}

#[test]
fn a_run_that_cannot_run_fails() {
    let out = xray()
        .args(["predict"])
        .env("XRAY_MODEL_PATH", "/nonexistent/model.onnx")
        .arg(".")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let out = xray().args(["predict"]).output().expect("run");
    assert!(!out.status.success(), "no paths is a usage error");
}

#[test]
fn preprocess_writes_the_served_input_and_reproducible_tighter_framings() {
    let dir = std::env::temp_dir().join(format!("xray-pre-{}", std::process::id()));
    let (src, out) = (dir.join("src"), dir.join("out"));
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    let film = &common::fixture_xrays()[0].path;
    std::fs::copy(film, src.join("sub/film.jpg")).expect("copy");
    let run = || {
        let status = xray()
            .arg("preprocess")
            .args([&src, &out])
            .args(["--crops", "2"])
            .status()
            .expect("run xray");
        assert!(status.success());
        let read = |p: &str| image::open(out.join(p)).expect(p).into_luma8();
        (
            read("sub/film.jpg.png"),
            read("crops/sub/film.jpg.0.png"),
            read("crops/sub/film.jpg.1.png"),
        )
    };
    let (whole, crop0, crop1) = run();
    let bytes = std::fs::read(film).expect("read");
    let served = covid_xray::Classifier::embedded()
        .expect("model")
        .prepare(&bytes)
        .expect("prepare")
        .input;
    assert_eq!(
        whole, served,
        "training reads exactly what serving prepares"
    );
    let side = covid_xray::imaging::preprocess::INPUT_SIZE;
    assert_eq!(crop0.dimensions(), (side, side));
    assert_ne!(crop0, whole);
    assert_ne!(crop0, crop1);
    assert!(out.join("preprocess.json").is_file());
    // The whole film (the lung finder's input) and each film's boxes, for training.
    assert_eq!(
        image::open(out.join("whole/sub/film.jpg.png"))
            .expect("whole")
            .into_luma8()
            .dimensions(),
        (side, side)
    );
    let boxes = std::fs::read_to_string(out.join("boxes.csv")).expect("boxes.csv");
    let mut lines = boxes.lines();
    assert_eq!(
        lines.next(),
        Some("file,x,y,w,h,lungs_found,lx,ly,lw,lh,film_w,film_h")
    );
    let row: Vec<&str> = lines.next().expect("a row").split(',').collect();
    assert_eq!(row[0], "sub/film.jpg");
    assert_eq!(row.len(), 12);
    assert_eq!(run(), (whole, crop0, crop1), "the same crops on every run");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn one_image_is_one_image() {
    let fixtures = common::fixture_xrays();
    let out = xray()
        .arg("predict")
        .arg(&fixtures[0].path)
        .output()
        .expect("run");
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    assert!(stdout.contains("\n1 image;"), "{stdout}");
}

/// The CLI, the HTTP answer and the S3 result all serialise the same contract type, so one
/// film's probabilities are printed with the same digits everywhere.
#[test]
fn the_cli_prints_the_same_answer_as_the_api() {
    use base64::Engine;
    use covid_xray::Classifier;
    use covid_xray::api::App;
    use covid_xray::config::HttpConfig;

    let fixture = &common::fixture_xrays()[0];
    let out = xray()
        .args(["predict", "--json"])
        .arg(&fixture.path)
        .output()
        .expect("run");
    let cli_text = String::from_utf8(out.stdout).expect("utf8");
    let cli: serde_json::Value = serde_json::from_str(cli_text.trim()).expect("json");

    let bytes = std::fs::read(&fixture.path).expect("fixture");
    let body =
        serde_json::json!({"image": base64::engine::general_purpose::STANDARD.encode(&bytes)});
    let req = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/predict")
        .header("content-type", "application/json")
        .body(lambda_http::Body::Text(body.to_string()))
        .expect("request");
    let app = App::new(
        Classifier::embedded().expect("model"),
        HttpConfig::default(),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let response = runtime.block_on(app.handle(req));
    let api_text = String::from_utf8(response.body().to_vec()).expect("utf8");
    let api: serde_json::Value = serde_json::from_str(&api_text).expect("json");

    for field in [
        "label",
        "confidence",
        "probabilities",
        "threshold",
        "model",
        "disclaimer",
    ] {
        assert_eq!(cli[field], api[field], "{field}");
    }
    // The same digits, not only the same value after parsing.
    let digits = |text: &str| {
        let at = text.find("\"probabilities\"").expect("probabilities");
        text[at..].split('}').next().expect("object").to_string()
    };
    assert_eq!(digits(&cli_text), digits(&api_text));
    assert!(cli["path"].is_string());
}

#[test]
fn decode_check_reports_the_reduced_decodes_change() {
    // A fixture film upscaled to 2000 px (read reduced) beside the fixture itself (not).
    let dir = std::env::temp_dir().join(format!("xray-decode-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let small = common::first_of("covid");
    let film = image::load_from_memory(&small).expect("decode").to_luma8();
    let large = image::imageops::resize(&film, 2000, 2000, image::imageops::FilterType::Triangle);
    let bytes = common::encode(&large.into(), image::ImageFormat::Jpeg);
    std::fs::write(dir.join("large.jpg"), bytes).expect("write");
    std::fs::write(dir.join("small.jpg"), &small).expect("write");
    let out = xray().arg("decode-check").arg(&dir).output().expect("run");
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    let summary = &lines[2]["summary"];
    assert_eq!(summary["images"], 2);
    assert_eq!(summary["read_reduced"], 1, "{summary}");
    assert_eq!(summary["label_flips"], 0, "{summary}");
    assert_eq!(summary["chest_check_changes"], 0, "{summary}");
    assert!(
        summary["max_delta"].as_f64().expect("delta") <= 0.02,
        "{summary}"
    );
    let small_line = lines
        .iter()
        .find(|l| l["file"].as_str().is_some_and(|f| f.ends_with("small.jpg")));
    assert_eq!(small_line.expect("small")["delta"], 0.0);
}
