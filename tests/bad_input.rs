//! Bad input returns the typed error without panicking, and before any large allocation.

mod common;

use covid_xray::{Classifier, Error};

fn classifier() -> Classifier {
    Classifier::embedded().expect("embedded model loads")
}

fn code_of(bytes: &[u8]) -> &'static str {
    match classifier().classify(bytes) {
        Ok(p) => panic!("expected an error, got {p:?}"),
        Err(e) => e.code(),
    }
}

#[test]
fn empty_bytes() {
    assert!(matches!(classifier().classify(b""), Err(Error::Empty)));
}

#[test]
fn text_is_not_an_image() {
    assert_eq!(
        code_of(b"hello, I am a chest X-ray, honestly"),
        "not_an_image"
    );
    assert_eq!(code_of(b"{\"image\": \"abc\"}"), "not_an_image");
}

#[test]
fn truncated_jpeg_is_corrupt() {
    let bytes = common::first_of("normal");
    for keep in [20, bytes.len() / 3, bytes.len() / 2, bytes.len() - 200] {
        assert_eq!(
            code_of(&bytes[..keep]),
            "corrupt_image",
            "kept {keep} of {} bytes",
            bytes.len()
        );
    }
}

#[test]
fn a_jpeg_signature_alone_is_not_an_image() {
    assert_eq!(code_of(&[0xFF, 0xD8]), "not_an_image");
    assert_eq!(code_of(&[0xFF, 0xD8, 0xFF]), "corrupt_image");
}

#[test]
fn truncated_png_is_corrupt() {
    let img = image::load_from_memory(&common::first_of("covid"))
        .expect("decode")
        .to_luma8();
    let png = common::encode(&img.into(), image::ImageFormat::Png);
    assert_eq!(code_of(&png[..png.len() / 2]), "corrupt_image");
}

#[test]
fn png_claiming_100000_square_is_refused_from_its_header() {
    let bytes = common::png_header_only(100_000, 100_000);
    match classifier().classify(&bytes) {
        Err(Error::TooLarge { what, .. }) => {
            assert!(what.contains("dimensions") || what == "image")
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn zero_dimension_png_is_corrupt() {
    assert_eq!(code_of(&common::png_header_only(0, 10)), "corrupt_image");
}

#[test]
fn other_formats_are_unsupported() {
    let img = image::DynamicImage::new_luma8(8, 8);
    // Signatures of formats we do not decode: GIF, BMP, TIFF, WebP.
    for magic in [
        &b"GIF89a\x08\x00\x08\x00"[..],
        b"BM\x36\x00\x00\x00\x00\x00",
        b"II*\x00\x08\x00\x00\x00",
        b"RIFF\x10\x00\x00\x00WEBPVP8 ",
    ] {
        let mut bytes = magic.to_vec();
        bytes.extend_from_slice(&[0u8; 64]);
        assert_eq!(code_of(&bytes), "unsupported_format", "{:?}", &magic[..4]);
    }
    drop(img);
}

#[test]
fn tiny_images_are_refused_as_no_chest_xray_not_a_panic() {
    for (w, h) in [(1, 1), (1, 7), (3, 2)] {
        let img =
            image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(w, h, image::Luma([90])));
        let e = classifier()
            .classify(&common::encode(&img, image::ImageFormat::Png))
            .expect_err("a tiny flat image is no chest X-ray");
        assert!(matches!(e, Error::NotAChestXray), "{w}x{h}: {e}");
    }
}

#[test]
fn oversized_input_bytes_are_refused() {
    let limits = covid_xray::imaging::preprocess::Limits {
        max_bytes: 1000,
        ..Default::default()
    };
    let c = classifier().with_limits(limits);
    let bytes = common::first_of("covid");
    assert!(matches!(c.classify(&bytes), Err(Error::TooLarge { .. })));
}

#[test]
fn one_pixel_limit_gives_one_message() {
    let message = |w, h| match classifier().classify(&common::png_header_only(w, h)) {
        Ok(p) => panic!("expected an error, got {p:?}"),
        Err(e) => (e.code(), e.to_string()),
    };
    // Over the side limit, which the decoder's own limits refuse before ours see the
    // header: the same code and message as every other size refusal, naming both limits.
    for (w, h) in [(13_000, 100), (100, 13_000), (100_000, 100_000)] {
        let (code, text) = message(w, h);
        assert_eq!(code, "too_large", "{w}x{h}");
        assert!(
            text.starts_with(&format!(
                "image dimensions too large: {w}x{h}, limits 12000 px a side"
            )),
            "{w}x{h}: {text}"
        );
    }
}
