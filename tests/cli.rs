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
    // A one-pixel image is answered, with the warning that says why the answer means little.
    assert!(lines[3]["label"].is_string(), "{}", lines[3]);
    assert_eq!(lines[3]["warnings"][0]["code"], "small_image");
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
    let served = covid_xray::preprocess::prepare(&bytes, &Default::default()).expect("prepare");
    assert_eq!(
        whole, served,
        "training reads exactly what serving prepares"
    );
    let side = covid_xray::preprocess::INPUT_SIZE;
    assert_eq!(crop0.dimensions(), (side, side));
    assert_ne!(crop0, whole);
    assert_ne!(crop0, crop1);
    assert!(out.join("preprocess.json").is_file());
    assert_eq!(run(), (whole, crop0, crop1), "the same crops on every run");
    std::fs::remove_dir_all(&dir).ok();
}
