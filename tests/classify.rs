//! The embedded model on held-out fixture X-rays, against the training side's figures.

mod common;

use covid_xray::{Classifier, InputWarning, Label};
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

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
        assert!(
            p.warnings.is_empty(),
            "{}: {:?} on a film of the pool",
            f.name,
            p.warnings
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
    // No model.json beside it: an error naming the missing card, never the embedded one.
    let err = Classifier::from_path(&path, None).expect_err("a model without its card");
    assert_eq!(err.code(), "model_error");
    assert!(err.to_string().contains("model.json"), "{err}");
    // With its card, as a file or as the folder: the same model.
    std::fs::write(dir.join("model.json"), covid_xray::model::EMBEDDED_CARD).expect("write");
    for p in [&path, &dir] {
        let c = Classifier::from_path(p, None).expect("loads from path");
        assert_eq!(
            c.info().sha256,
            covid_xray::model::sha256_hex(covid_xray::model::EMBEDDED_MODEL)
        );
        assert_ne!(c.info().version, "unverified");
    }
    // A card that names another input size or preprocessing than the network reads.
    let card: serde_json::Value =
        serde_json::from_str(covid_xray::model::EMBEDDED_CARD).expect("card");
    let mut other_size = card.clone();
    other_size["input"]["size"] = 224.into();
    other_size["input"]["preprocess"] = "gray-trim-resize-v3".into();
    std::fs::write(dir.join("model.json"), other_size.to_string()).expect("write");
    let err = Classifier::from_path(&dir, None).expect_err("size mismatch");
    assert!(
        err.to_string().contains("xray.onnx") && err.to_string().contains("224"),
        "{err}"
    );
    let mut other_path = card.clone();
    other_path["input"]["preprocess"] = "gray-trim-resize-v9".into();
    std::fs::write(dir.join("model.json"), other_path.to_string()).expect("write");
    let err = Classifier::from_path(&dir, None).expect_err("unknown preprocessing");
    assert!(err.to_string().contains("gray-trim-resize-v9"), "{err}");
    std::fs::write(dir.join("model.json"), covid_xray::model::EMBEDDED_CARD).expect("write");
    std::fs::write(&path, b"not onnx").expect("write");
    let err = Classifier::from_path(&path, None).expect_err("garbage model must fail");
    assert_eq!(err.code(), "model_error");
    std::fs::remove_dir_all(&dir).ok();
}

/// Inputs unlike every film of the training pool are answered, with a warning that names why
/// the answer means less; the same film in gray, even stored as RGB, gets none.
#[test]
fn input_warnings_name_what_the_model_was_not_trained_for() {
    let classifier = Classifier::embedded().expect("embedded model loads");
    let film = image::load_from_memory(&common::first_of("normal"))
        .expect("decode fixture")
        .to_luma8();
    let (w, h) = film.dimensions();
    let warnings = |img: DynamicImage| {
        classifier
            .classify(&common::encode(&img, ImageFormat::Png))
            .expect("classify")
            .warnings
    };
    let gray_rgb = RgbImage::from_fn(w, h, |x, y| {
        let v = film.get_pixel(x, y).0[0];
        Rgb([v, v, v])
    });
    assert_eq!(warnings(DynamicImage::ImageRgb8(gray_rgb.clone())), vec![]);
    // A red arrow over 3% of the film, as on figures from papers: still a gray film.
    let mut arrowed = gray_rgb.clone();
    for y in 0..h / 6 {
        for x in 0..w / 6 {
            arrowed.put_pixel(x, y, Rgb([230, 20, 20]));
        }
    }
    assert_eq!(warnings(DynamicImage::ImageRgb8(arrowed)), vec![]);
    // The film tinted as a photograph of it on a screen would be.
    let tinted = RgbImage::from_fn(w, h, |x, y| {
        let v = film.get_pixel(x, y).0[0];
        Rgb([v, v / 2, 255 - v / 3])
    });
    assert_eq!(
        warnings(DynamicImage::ImageRgb8(tinted)),
        vec![InputWarning::Colour]
    );
    let small = image::imageops::resize(&film, 100, 120, image::imageops::FilterType::Triangle);
    assert_eq!(
        warnings(DynamicImage::ImageLuma8(small)),
        vec![InputWarning::Small]
    );
    // Stretched to three times as wide as high, and not small. (The top third of the film
    // cut out, neck and shoulders, is refused outright: it is no chest X-ray.)
    let stretched = image::imageops::resize(&film, 3 * h, h, image::imageops::FilterType::Triangle);
    assert_eq!(
        warnings(DynamicImage::ImageLuma8(stretched)),
        vec![InputWarning::UnusualShape]
    );
    // And the JSON a caller reads names each one by code.
    let tiny_strip = image::imageops::resize(&film, 400, 60, image::imageops::FilterType::Triangle);
    let p = classifier
        .classify(&common::encode(
            &DynamicImage::ImageLuma8(tiny_strip),
            ImageFormat::Png,
        ))
        .expect("classify");
    let v = serde_json::to_value(&p).expect("serialise");
    let codes: Vec<&str> = v["warnings"]
        .as_array()
        .expect("warnings in the JSON")
        .iter()
        .map(|w| w["code"].as_str().expect("a code"))
        .collect();
    assert_eq!(codes, ["small_image", "unusual_shape"]);
    let plain = classifier
        .classify(&common::first_of("normal"))
        .expect("classify");
    let v = serde_json::to_value(&plain).expect("serialise");
    assert!(
        v.get("warnings").is_none(),
        "no warnings key for a pool film: {v}"
    );
}

/// The lung finder as the lung-field models use it, whatever the embedded classifier reads.
fn lung_pipeline() -> covid_xray::model::Pipeline {
    covid_xray::model::Pipeline::Lungs(
        covid_xray::model::lungs::LungFinder::from_onnx(covid_xray::model::EMBEDDED_LUNGS)
            .expect("the embedded lung finder loads"),
    )
}

#[test]
fn the_lung_finder_boxes_the_lungs_of_every_fixture() {
    let pipeline = lung_pipeline();
    for f in common::fixture_xrays() {
        let bytes = std::fs::read(&f.path).expect("fixture");
        let gray = image::load_from_memory(&bytes)
            .expect("decode")
            .into_luma8();
        let p = pipeline.prepare(&gray).expect("prepare");
        assert!(p.lungs.is_some(), "{}: no lungs found", f.name);
        assert!(p.warnings.is_empty(), "{}: {:?}", f.name, p.warnings);
        let (cx, cy, cw, ch) = p.content;
        let (x, y, w, h) = p.region;
        assert!(
            x >= cx && y >= cy && x + w <= cx + cw && y + h <= cy + ch,
            "{}: {:?} outside {:?}",
            f.name,
            p.region,
            p.content
        );
        // The lungs fill most of a chest film, never all of it and never a sliver.
        let share = f64::from(w * h) / f64::from(cw * ch);
        assert!(
            (0.25..=1.0).contains(&share),
            "{}: box is {share:.2} of the film",
            f.name
        );
        assert_eq!(p.input.dimensions(), (192, 192));
        assert_ne!(
            p.input, p.whole,
            "{}: the input must be the lung crop",
            f.name
        );
    }
}

#[test]
fn a_film_without_lungs_is_read_whole_and_says_so() {
    let pipeline = lung_pipeline();
    let blank = image::GrayImage::from_pixel(400, 400, image::Luma([128]));
    let p = pipeline.prepare(&blank).expect("prepare");
    assert_eq!(p.lungs, None);
    assert_eq!(p.input, p.whole);
    assert_eq!(
        p.warnings.iter().map(|w| w.code()).collect::<Vec<_>>(),
        vec!["lungs_not_found"]
    );
}
