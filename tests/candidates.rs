//! Every candidate model of `model/candidates/` loads the way a user loads it (its folder in
//! `XRAY_MODEL_PATH`), matches its own card, and answers the fixture X-rays; and a folder
//! whose card is missing or names another input than its network reads does not load.

mod common;

use std::path::{Path, PathBuf};

use covid_xray::Classifier;

fn candidates() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("model/candidates");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("model/candidates")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    found.sort();
    found
}

#[test]
fn every_candidate_loads_and_answers() {
    let folders = candidates();
    let names: Vec<String> = folders
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for required in ["plain", "plain-lungs", "plain-probe", "ref-4.0.0"] {
        assert!(
            names.iter().any(|n| n == required),
            "{required} missing: {names:?}"
        );
    }
    let films = common::fixture_xrays();
    for folder in &folders {
        let classifier = Classifier::from_path(folder, None)
            .unwrap_or_else(|e| panic!("{}: {e}", folder.display()));
        let card: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(folder.join("model.json")).expect("model.json"),
        )
        .expect("card");
        // The sha256 of the file matches its card, so the answer names the card's version.
        assert_eq!(
            classifier.info().version,
            card["version"].as_str().expect("version"),
            "{}",
            folder.display()
        );
        assert!(
            (classifier.threshold() - card["threshold"].as_f64().expect("threshold") as f32).abs()
                < 1e-6
        );
        let mut right = 0;
        for f in &films {
            let bytes = std::fs::read(&f.path).expect("fixture");
            let p = classifier
                .classify(&bytes)
                .unwrap_or_else(|e| panic!("{} on {}: {e}", folder.display(), f.name));
            assert!((0.0..=1.0).contains(&p.probabilities.covid));
            right += usize::from(p.label.as_str() == f.label);
        }
        // Held-out films: a candidate that reads them at chance is a broken folder, not a
        // weaker model.
        assert!(
            right * 3 >= films.len() * 2,
            "{}: {right} of {} fixtures right",
            folder.display(),
            films.len()
        );
    }
}

#[test]
fn a_folder_without_its_card_is_refused_by_name() {
    let dir = std::env::temp_dir().join(format!("xray-candidate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let plain = Path::new(env!("CARGO_MANIFEST_DIR")).join("model/candidates/plain");
    std::fs::copy(plain.join("xray.onnx"), dir.join("xray.onnx")).expect("copy");
    let err = Classifier::from_path(&dir, None).expect_err("no card");
    assert!(err.to_string().contains("model.json"), "{err}");
    // The plain network's card says the equalised path: its ONNX metadata says otherwise.
    let mut card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(plain.join("model.json")).expect("card"))
            .expect("card");
    card["input"]["preprocess"] = "gray-trim-resize-equalize-v1".into();
    std::fs::write(dir.join("model.json"), card.to_string()).expect("write");
    let err = Classifier::from_path(&dir, None).expect_err("another preprocessing");
    let msg = err.to_string();
    assert!(
        msg.contains("xray.onnx") && msg.contains("gray-trim-resize-v3"),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
