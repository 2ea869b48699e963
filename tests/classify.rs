//! The embedded model on held-out fixture X-rays, against the training side's figures.

mod common;

use covid_xray::{Classifier, Label};

#[test]
fn fixtures_get_the_right_label_and_match_onnxruntime() {
    let classifier = Classifier::embedded().expect("embedded model loads");
    let fixtures = common::fixture_xrays();
    for label in ["covid", "normal"] {
        let n = fixtures.iter().filter(|f| f.label == label).count();
        assert!(n >= 10, "only {n} {label} fixtures");
    }
    for f in &fixtures {
        let bytes = std::fs::read(&f.path).expect("read fixture");
        let p = classifier.classify(&bytes).expect("classify fixture");
        assert_eq!(
            p.label.as_str(),
            f.label,
            "{}: P(covid)={}",
            f.name,
            p.probabilities.covid
        );
        let diff = (f64::from(p.probabilities.covid) - f.p_covid).abs();
        assert!(
            diff <= 1e-4,
            "{}: tract {} vs onnxruntime {} (diff {diff:e})",
            f.name,
            p.probabilities.covid,
            f.p_covid
        );
    }
}

#[test]
fn prediction_is_consistent() {
    let classifier = Classifier::embedded().expect("embedded model loads");
    for label in ["covid", "normal"] {
        let p = classifier
            .classify(&common::first_of(label))
            .expect("classify");
        let sum = p.probabilities.covid + p.probabilities.normal;
        assert!((sum - 1.0).abs() < 1e-6);
        let chosen = match p.label {
            Label::Covid => p.probabilities.covid,
            Label::Normal => p.probabilities.normal,
        };
        assert_eq!(p.confidence, chosen);
        assert_eq!(
            p.label == Label::Covid,
            p.probabilities.covid >= p.threshold
        );
        assert_eq!(
            p.model.sha256,
            covid_xray::model::sha256_hex(covid_xray::model::EMBEDDED_MODEL)
        );
        assert_eq!(p.model.name, "covid-xray-cnn");
    }
}

#[test]
fn png_gray16_rgb_and_rgba_encodings_of_one_xray_agree() {
    // The same film as 8-bit gray JPEG, then re-encoded as PNG in four pixel formats: the
    // decoders differ, the gray image (and so the answer) must not, beyond 16-bit rounding.
    let classifier = Classifier::embedded().expect("embedded model loads");
    let bytes = common::first_of("covid");
    let gray = image::load_from_memory(&bytes).expect("decode").to_luma8();
    let reference = classifier
        .classify(&common::encode(
            &gray.clone().into(),
            image::ImageFormat::Png,
        ))
        .expect("gray png");
    let variants = [
        image::DynamicImage::ImageLuma16(image::DynamicImage::ImageLuma8(gray.clone()).to_luma16()),
        image::DynamicImage::ImageRgb8(image::DynamicImage::ImageLuma8(gray.clone()).to_rgb8()),
        image::DynamicImage::ImageRgba8(image::DynamicImage::ImageLuma8(gray.clone()).to_rgba8()),
    ];
    for v in variants {
        let p = classifier
            .classify(&common::encode(&v, image::ImageFormat::Png))
            .expect("variant");
        assert!(
            (p.probabilities.covid - reference.probabilities.covid).abs() < 1e-3,
            "{:?}",
            v.color()
        );
    }
}

#[test]
fn model_path_override_is_honoured() {
    let dir = std::env::temp_dir().join(format!("xray-override-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("xray.onnx");
    std::fs::write(&path, covid_xray::model::EMBEDDED_MODEL).expect("write");
    // No model.json beside it: the embedded card applies, and the bytes match it.
    let c = Classifier::from_path(&path).expect("loads from path");
    assert_eq!(
        c.info().sha256,
        covid_xray::model::sha256_hex(covid_xray::model::EMBEDDED_MODEL)
    );
    std::fs::write(&path, b"not onnx").expect("write");
    let err = Classifier::from_path(&path).expect_err("garbage model must fail");
    assert_eq!(err.code(), "model_error");
    std::fs::remove_dir_all(&dir).ok();
}
