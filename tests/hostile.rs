//! The hostile-input suite: every case gets a 4xx JSON error or a correct 200, never a 5xx
//! and never a panic, through the library *and* through the HTTP handler (as a raw body and
//! as JSON base64). Memory and time are bounded by the decoder limits, which the bomb cases
//! hit from the header, before any pixel buffer exists; no wall-clock assert.

mod common;

use std::path::Path;

use base64::Engine;
use covid_xray::api::App;
use covid_xray::config::HttpConfig;
use covid_xray::contract::ApiError;
use covid_xray::imaging::preprocess::Limits;
use covid_xray::{Classifier, Error};
use lambda_http::Body;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn hostile(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/hostile")
            .join(name),
    )
    .expect("hostile fixture")
}

/// A PNG header (no data) with a given bit depth and colour type.
fn png_header(w: u32, h: u32, depth: u8, color: u8) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[depth, color, 0, 0, 0]);
    common::push_chunk(&mut out, b"IHDR", &ihdr);
    out
}

/// A PNG header followed by a tiny IDAT and IEND: decoders get past the header to the data.
fn png_with_stub_data(w: u32, h: u32, depth: u8, color: u8) -> Vec<u8> {
    let mut out = png_header(w, h, depth, color);
    common::push_chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    common::push_chunk(&mut out, b"IEND", &[]);
    out
}

/// A real JPEG whose SOF header is rewritten to claim `w` x `h`.
fn jpeg_claiming(w: u16, h: u16) -> Vec<u8> {
    let mut bytes = common::first_of("normal");
    let sof = bytes
        .windows(2)
        .position(|m| m[0] == 0xFF && (m[1] == 0xC0 || m[1] == 0xC2))
        .expect("SOF");
    bytes[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    bytes
}

/// A real JPEG with every byte of its Huffman tables replaced.
fn jpeg_with_corrupt_huffman() -> Vec<u8> {
    let mut bytes = common::first_of("normal");
    let mut i = 0;
    while i + 4 < bytes.len() {
        if bytes[i] == 0xFF && bytes[i + 1] == 0xC4 {
            let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
            let end = (i + 2 + len).min(bytes.len());
            for b in &mut bytes[i + 5..end] {
                *b = 0xFE;
            }
            i += 2 + len;
        } else {
            i += 1;
        }
    }
    bytes
}

/// A valid PNG with one byte of its pixel data flipped (CRC now wrong).
fn png_with_bad_crc() -> Vec<u8> {
    let img = image::load_from_memory(&common::first_of("covid"))
        .expect("decode")
        .to_luma8();
    let mut png = common::encode(&img.into(), image::ImageFormat::Png);
    let idat = png.windows(4).position(|w| w == b"IDAT").expect("IDAT");
    png[idat + 40] ^= 0x55;
    png
}

/// A 1x1 24-bit BMP, byte by byte (the BMP encoder is not compiled in).
fn bmp_1x1() -> Vec<u8> {
    let mut b = b"BM".to_vec();
    b.extend_from_slice(&58u32.to_le_bytes()); // file size
    b.extend_from_slice(&[0, 0, 0, 0]);
    b.extend_from_slice(&54u32.to_le_bytes()); // pixel data offset
    b.extend_from_slice(&40u32.to_le_bytes()); // BITMAPINFOHEADER
    b.extend_from_slice(&1i32.to_le_bytes());
    b.extend_from_slice(&1i32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&24u16.to_le_bytes());
    b.extend_from_slice(&[0u8; 24]);
    b.extend_from_slice(&[0x80, 0x80, 0x80, 0]);
    b
}

fn reencoded(color: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    common::encode(&color, format)
}

fn fixture_gray() -> image::GrayImage {
    image::load_from_memory(&common::first_of("normal"))
        .expect("decode")
        .to_luma8()
}

/// What a case may answer: exact status sets.
#[derive(Clone, Copy, Debug)]
enum Expect {
    Ok,
    Status(u16),
    /// Either a correct 200 or this 4xx (decoders may legitimately differ on damaged data).
    OkOr(u16),
}

impl Expect {
    fn allows(self, status: u16) -> bool {
        match self {
            Expect::Ok => status == 200,
            Expect::Status(s) => status == s,
            Expect::OkOr(s) => status == 200 || status == s,
        }
    }
}

/// Image-level cases: bytes as a client would upload them.
fn image_cases() -> Vec<(&'static str, Vec<u8>, Expect)> {
    let normal = common::first_of("normal");
    let gray = fixture_gray();
    let mut polyglot_tail = normal.clone();
    polyglot_tail.extend_from_slice(b"PK\x03\x04<html><script>alert(1)</script></html>");
    let mut gif_then_png = b"GIF89a".to_vec();
    gif_then_png.extend_from_slice(&reencoded(gray.clone().into(), image::ImageFormat::Png));
    vec![
        ("empty", Vec::new(), Expect::Status(400)),
        ("text", b"hello world, not an image".to_vec(), Expect::Status(415)),
        ("html", b"<!doctype html><html></html>".to_vec(), Expect::Status(415)),
        ("jpeg signature only", vec![0xFF, 0xD8, 0xFF], Expect::Status(422)),
        ("truncated jpeg, 20 bytes", normal[..20].to_vec(), Expect::Status(422)),
        ("truncated jpeg, half", normal[..normal.len() / 2].to_vec(), Expect::Status(422)),
        ("truncated jpeg, all but EOI", normal[..normal.len() - 2].to_vec(), Expect::Status(422)),
        ("truncated png", {
            let png = reencoded(gray.clone().into(), image::ImageFormat::Png);
            png[..png.len() / 2].to_vec()
        }, Expect::Status(422)),
        ("png signature only", b"\x89PNG\r\n\x1a\n".to_vec(), Expect::Status(422)),
        ("corrupt huffman tables", jpeg_with_corrupt_huffman(), Expect::OkOr(422)),
        ("png with a bad CRC", png_with_bad_crc(), Expect::OkOr(422)),
        ("png header 100000x100000", png_header(100_000, 100_000, 8, 0), Expect::Status(413)),
        ("png header 65535x65535", png_header(65_535, 65_535, 8, 0), Expect::Status(413)),
        ("png header 12000x1 (allowed, no data)", png_header(12_000, 1, 8, 0), Expect::Status(422)),
        ("png 7000x7000 rgba16 (over alloc cap)", png_with_stub_data(7_000, 7_000, 16, 6), Expect::Status(413)),
        ("png 7000x7000 gray, data cut short", png_with_stub_data(7_000, 7_000, 8, 0), Expect::Status(422)),
        ("png header 0x0", png_header(0, 0, 8, 0), Expect::Status(422)),
        ("jpeg header 65535x65535", jpeg_claiming(65_535, 65_535), Expect::Status(413)),
        ("jpeg header 0x10", jpeg_claiming(0, 10), Expect::Status(422)),
        ("gif", b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x00\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;".to_vec(), Expect::Status(415)),
        ("bmp 1x1", bmp_1x1(), Expect::Status(415)),
        ("tiff", b"II*\x00\x08\x00\x00\x00\x00\x00".to_vec(), Expect::Status(415)),
        ("webp", b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00".to_vec(), Expect::Status(415)),
        ("gif magic then a png", gif_then_png, Expect::Status(415)),
        ("jpeg + zip/html polyglot tail", polyglot_tail, Expect::Ok),
        ("animated png", hostile("animated.png"), Expect::Ok),
        ("16-bit png", reencoded(image::DynamicImage::ImageLuma16(image::DynamicImage::ImageLuma8(gray.clone()).to_luma16()), image::ImageFormat::Png), Expect::Ok),
        ("palette png", hostile("palette.png"), Expect::Ok),
        ("gray+alpha png", hostile("gray-alpha.png"), Expect::Ok),
        ("rgba png", reencoded(image::DynamicImage::ImageRgba8(image::DynamicImage::ImageLuma8(gray.clone()).to_rgba8()), image::ImageFormat::Png), Expect::Ok),
        ("rgb jpeg", reencoded(image::DynamicImage::ImageRgb8(image::DynamicImage::ImageLuma8(gray.clone()).to_rgb8()), image::ImageFormat::Jpeg), Expect::Ok),
        ("cmyk jpeg", hostile("cmyk.jpg"), Expect::Ok),
        ("exif-rotated jpeg", hostile("exif-rotated.jpg"), Expect::Ok),
        ("progressive jpeg", hostile("progressive.jpg"), Expect::Ok),
        // Decodable, and no chest X-ray: the chest check refuses them.
        ("1x1 jpeg", hostile("one-pixel.jpg"), Expect::Status(422)),
        ("1x1 png", reencoded(image::DynamicImage::ImageLuma8(image::GrayImage::new(1, 1)), image::ImageFormat::Png), Expect::Status(422)),
        ("flat white png", reencoded(image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(64, 64, image::Luma([255]))), image::ImageFormat::Png), Expect::Status(422)),
    ]
}

/// Body-level cases: (content type, body, expected status).
fn body_cases() -> Vec<(&'static str, &'static str, Vec<u8>, u16)> {
    let normal = common::first_of("normal");
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&normal);
    let mut huge = b"{\"image\": \"".to_vec();
    huge.extend(std::iter::repeat_n(b'A', 6 * 1024 * 1024));
    huge.extend_from_slice(b"\"}");
    vec![
        ("empty JSON body", "application/json", Vec::new(), 400),
        (
            "whitespace JSON body",
            "application/json",
            b" \n\t ".to_vec(),
            400,
        ),
        ("JSON array", "application/json", b"[1,2,3]".to_vec(), 400),
        ("JSON string", "application/json", b"\"abc\"".to_vec(), 400),
        ("JSON number", "application/json", b"42".to_vec(), 400),
        (
            "image null",
            "application/json",
            b"{\"image\": null}".to_vec(),
            400,
        ),
        (
            "image number",
            "application/json",
            b"{\"image\": 42}".to_vec(),
            400,
        ),
        (
            "image array",
            "application/json",
            b"{\"image\": [\"a\"]}".to_vec(),
            400,
        ),
        (
            "image object",
            "application/json",
            b"{\"image\": {\"a\": 1}}".to_vec(),
            400,
        ),
        (
            "s3 number",
            "application/json",
            b"{\"s3\": 5}".to_vec(),
            400,
        ),
        (
            "s3 without key",
            "application/json",
            b"{\"s3\": {\"bucket\": \"b\"}}".to_vec(),
            400,
        ),
        (
            "deeply nested JSON",
            "application/json",
            deep.into_bytes(),
            400,
        ),
        (
            "base64 with bad characters",
            "application/json",
            b"{\"image\": \"@@@@\"}".to_vec(),
            400,
        ),
        (
            "base64 with bad padding",
            "application/json",
            format!("{{\"image\": \"{}===\"}}", B64.encode(&normal)).into_bytes(),
            400,
        ),
        (
            "url-safe base64 without padding",
            "application/json",
            format!("{{\"image\": \"{url_safe}\"}}").into_bytes(),
            200,
        ),
        (
            "data URL of text/plain",
            "application/json",
            format!(
                "{{\"image\": \"data:text/plain;base64,{}\"}}",
                B64.encode(&normal)
            )
            .into_bytes(),
            415,
        ),
        (
            "data URL without ;base64",
            "application/json",
            b"{\"image\": \"data:image/png,abc\"}".to_vec(),
            400,
        ),
        (
            "data URL labelled png holding a jpeg",
            "application/json",
            format!(
                "{{\"image\": \"data:image/png;base64,{}\"}}",
                B64.encode(&normal)
            )
            .into_bytes(),
            200,
        ),
        ("6 MB+ body", "application/json", huge, 413),
        ("text/plain body", "text/plain", b"hello".to_vec(), 415),
        (
            "multipart body",
            "multipart/form-data; boundary=x",
            b"--x\r\n".to_vec(),
            415,
        ),
        ("image/png label on jpeg bytes", "image/png", normal, 200),
    ]
}

fn app() -> App {
    App::new(
        Classifier::embedded().expect("model"),
        HttpConfig::default(),
    )
}

fn call(
    app: &App,
    rt: &tokio::runtime::Runtime,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let req = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/predict")
        .header("content-type", content_type)
        .body(if body.is_empty() {
            Body::Empty
        } else {
            Body::Binary(body)
        })
        .expect("request");
    let resp = rt.block_on(app.handle(req));
    let status = resp.status().as_u16();
    let v: serde_json::Value = serde_json::from_slice(resp.body()).expect("every answer is JSON");
    (status, v)
}

#[test]
fn there_are_at_least_forty_cases() {
    assert!(image_cases().len() + body_cases().len() >= 40);
}

#[test]
fn image_cases_through_the_library() {
    let c = Classifier::embedded().expect("model");
    for (name, bytes, expect) in image_cases() {
        let status = match c.classify(&bytes) {
            Ok(p) => {
                assert!(
                    p.probabilities.covid.is_finite()
                        && (0.0..=1.0).contains(&p.probabilities.covid),
                    "{name}"
                );
                200
            }
            Err(e) => {
                assert!(!matches!(e, Error::Model(_)), "{name}: {e}");
                ApiError::from(e).status
            }
        };
        assert!(
            expect.allows(status),
            "{name}: library answered {status}, expected {expect:?}"
        );
    }
}

#[test]
fn image_cases_through_the_handler_raw_and_base64() {
    let app = app();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    for (name, bytes, expect) in image_cases() {
        let (status, v) = call(&app, &rt, "application/octet-stream", bytes.clone());
        assert!(expect.allows(status), "{name} (raw): {status} {v}");
        if status != 200 {
            assert!(
                v["error"]["code"].as_str().is_some_and(|c| !c.is_empty()),
                "{name}: {v}"
            );
        }
        let json = serde_json::json!({"image": B64.encode(&bytes)})
            .to_string()
            .into_bytes();
        let (status, v) = call(&app, &rt, "application/json", json);
        let expect_json = if bytes.is_empty() {
            Expect::Status(400)
        } else {
            expect
        };
        assert!(expect_json.allows(status), "{name} (base64): {status} {v}");
    }
}

#[test]
fn body_cases_through_the_handler() {
    let app = app();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    for (name, ct, body, expected) in body_cases() {
        let (status, v) = call(&app, &rt, ct, body);
        assert_eq!(status, expected, "{name}: {v}");
        if status != 200 {
            assert!(
                v["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{name}: {v}"
            );
        } else {
            assert!(v["label"].is_string(), "{name}: {v}");
        }
    }
}

#[test]
fn exif_orientation_is_applied() {
    // The rotated file, once its EXIF orientation is applied, is the upright film again.
    let upright = image::load_from_memory(&hostile("progressive.jpg"))
        .expect("decode")
        .to_luma8();
    let rotated = covid_xray::imaging::preprocess::decode_gray(
        &hostile("exif-rotated.jpg"),
        &Limits::default(),
    )
    .expect("decode");
    assert_eq!(rotated.dimensions(), upright.dimensions());
    let diff: f64 = rotated
        .pixels()
        .zip(upright.pixels())
        .map(|(a, b)| (f64::from(a.0[0]) - f64::from(b.0[0])).abs())
        .sum::<f64>()
        / f64::from(rotated.width() * rotated.height());
    assert!(
        diff < 8.0,
        "mean abs difference {diff}: orientation not applied"
    );
}

#[test]
fn the_bounds_stated_in_the_api_docs_are_the_ones_in_force() {
    let l = Limits::default();
    assert_eq!(
        (l.max_bytes, l.max_side, l.max_pixels),
        (20 * 1024 * 1024, 12_000, 50_000_000)
    );
    assert_eq!(HttpConfig::default().max_body_bytes, 6 * 1024 * 1024);
    let docs = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/api.md"))
        .expect("docs/api.md");
    assert!(docs.contains("12,000 px a side and 50 megapixels"));
    assert!(docs.contains("at most 6 MiB"));
}

// Large JPEGs: a film at least four times the model input a side is decoded at reduced DCT
// scale (src/imaging/jpeg.rs), with the full decode as the fallback for whatever that path
// declines. Each case gets, through the handler, the status the full decode gives it, and
// a film that both read gets nearly the same P(covid).

/// A real film upscaled to `w` x `h` px: large enough for the reduced decode.
fn large_film(w: u32, h: u32) -> image::GrayImage {
    image::imageops::resize(&fixture_gray(), w, h, image::imageops::FilterType::Triangle)
}

/// `img` encoded by jpeg-encoder with the given settings.
fn encode_with(
    data: &[u8],
    (w, h): (u32, u32),
    colour: jpeg_encoder::ColorType,
    set: impl FnOnce(&mut jpeg_encoder::Encoder<&mut Vec<u8>>),
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, 85);
    set(&mut encoder);
    encoder
        .encode(data, w as u16, h as u16, colour)
        .expect("encode");
    out
}

fn marker_at(bytes: &[u8], marker: u8) -> usize {
    bytes
        .windows(2)
        .position(|m| m == [0xFF, marker])
        .expect("marker")
}

/// What the full decode answers: the status of the path every image took before the
/// reduced decode, and P(covid) when it classifies.
fn full_decode_answer(c: &Classifier, bytes: &[u8]) -> (u16, Option<f32>) {
    let answer = c.prepare_full(bytes).and_then(|p| {
        c.chest_check().check(&p.whole)?;
        c.classify_prepared(&p.input)
    });
    match answer {
        Ok(p) => (200, Some(p.probabilities.covid)),
        Err(e) => (ApiError::from(e).status, None),
    }
}

fn large_cases() -> Vec<(&'static str, Vec<u8>, bool)> {
    let gray = large_film(2048, 2048);
    let rgb = image::DynamicImage::ImageLuma8(gray.clone()).to_rgb8();
    let cmyk: Vec<u8> = gray
        .as_raw()
        .iter()
        .flat_map(|&v| [0, 0, 0, 255 - v])
        .collect();
    let dims = gray.dimensions();
    let luma = jpeg_encoder::ColorType::Luma;
    let baseline = encode_with(gray.as_raw(), dims, luma, |_| {});
    let progressive = encode_with(gray.as_raw(), dims, luma, |e| e.set_progressive(true));
    let restarts = encode_with(gray.as_raw(), dims, luma, |e| e.set_restart_interval(7));
    let colour_420 = encode_with(rgb.as_raw(), dims, jpeg_encoder::ColorType::Rgb, |e| {
        e.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_2_0)
    });
    let tinted: Vec<u8> = gray
        .as_raw()
        .iter()
        .flat_map(|&v| [v, (u16::from(v) * 3 / 5) as u8, v / 4])
        .collect();
    let tinted = encode_with(&tinted, dims, jpeg_encoder::ColorType::Rgb, |_| {});
    let colour_progressive = encode_with(rgb.as_raw(), dims, jpeg_encoder::ColorType::Rgb, |e| {
        e.set_progressive(true)
    });
    let sof = marker_at(&baseline, 0xC0);
    let sos = marker_at(&baseline, 0xDA);
    let with = |at: usize, byte: u8| {
        let mut b = baseline.clone();
        b[at] = byte;
        b
    };
    let mut cut = baseline[..baseline.len() / 2].to_vec();
    cut.extend_from_slice(&[0xFF, 0xD9]);
    let mut corrupt = baseline.clone();
    for at in (sos + 400..corrupt.len() - 2).step_by(5003) {
        corrupt[at] ^= 0x5A;
    }
    let mut wrong_restart = restarts.clone();
    let rst = wrong_restart
        .windows(2)
        .rposition(|m| m[0] == 0xFF && (0xD0..=0xD7).contains(&m[1]))
        .expect("a restart marker");
    wrong_restart[rst + 1] = 0xD0 + (wrong_restart[rst + 1] - 0xD0 + 3) % 8;
    let mut lying = baseline.clone();
    lying[sof + 5..sof + 7].copy_from_slice(&2400u16.to_be_bytes());
    lying[sof + 7..sof + 9].copy_from_slice(&2400u16.to_be_bytes());
    // The EXIF segment (orientation 6) of the small rotated fixture, after the large film's SOI.
    let exif_source = hostile("exif-rotated.jpg");
    let app1 = marker_at(&exif_source, 0xE1);
    let app1_len = usize::from(u16::from_be_bytes([
        exif_source[app1 + 2],
        exif_source[app1 + 3],
    ]));
    let wide = large_film(2600, 2000);
    let wide = encode_with(wide.as_raw(), wide.dimensions(), luma, |_| {});
    let mut rotated = wide[..2].to_vec();
    rotated.extend_from_slice(&exif_source[app1..app1 + 2 + app1_len]);
    rotated.extend_from_slice(&wide[2..]);
    let smaller = large_film(1400, 1400);
    let quarter = encode_with(smaller.as_raw(), smaller.dimensions(), luma, |_| {});
    // (name, bytes, whether the reduced decode reads it)
    vec![
        ("1400 px baseline gray (read at 1/4)", quarter, true),
        ("large, EXIF orientation 6", rotated, true),
        ("large baseline gray", baseline.clone(), true),
        ("large progressive gray", progressive, true),
        ("large gray with restart markers", restarts, true),
        ("large colour 4:2:0", colour_420, true),
        ("large progressive colour", colour_progressive, true),
        ("large, tinted (a colour picture)", tinted, true),
        (
            "large CMYK",
            encode_with(&cmyk, dims, jpeg_encoder::ColorType::Cmyk, |_| {}),
            false,
        ),
        ("large, cut in the scan, EOI appended", cut, false),
        ("large, corrupt entropy data", corrupt, false),
        ("large, a restart marker out of order", wrong_restart, false),
        ("large, 12-bit in the header", with(sof + 4, 12), false),
        (
            "large, arithmetic-coded in the header",
            with(sof + 1, 0xC9),
            false,
        ),
        ("large, lossless in the header", with(sof + 1, 0xC3), false),
        ("large, header claims 2400x2400", lying, false),
    ]
}

#[test]
fn large_jpegs_get_the_full_decodes_answer_through_the_handler() {
    let classifier = Classifier::embedded().expect("model");
    let app = app();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for (name, bytes, reduced) in large_cases() {
        let (full_status, full_p) = full_decode_answer(&classifier, &bytes);
        let (status, v) = call(&app, &rt, "application/octet-stream", bytes.clone());
        assert_eq!(
            status, full_status,
            "{name}: handler {status} {v}, full decode {full_status}"
        );
        assert!(status < 500, "{name}: {status} {v}");
        if let Some(p_full) = full_p {
            let p = v["probabilities"]["covid"].as_f64().expect("p") as f32;
            assert!(
                (p - p_full).abs() <= 0.02,
                "{name}: P(covid) {p} against {p_full} in full"
            );
        }
        // Whether the reduced decode read it: the content box is then in pixels of the
        // reduced film.
        let served = classifier.prepare(&bytes);
        let full = classifier.prepare_full(&bytes);
        if let (Ok(served), Ok(full)) = (served, full) {
            // The same warnings (colour above all: the reduced path tells it from the chroma
            // DC coefficients).
            assert_eq!(served.warnings, full.warnings, "{name}: warnings");
            assert_eq!(
                served
                    .warnings
                    .contains(&covid_xray::imaging::InputWarning::Colour),
                name.contains("tinted"),
                "{name}: colour warning"
            );
            // Oriented alike: the content box is wide or tall on both paths.
            let wide = |(_, _, w, h): (u32, u32, u32, u32)| w > h;
            assert_eq!(
                wide(served.content),
                wide(full.content),
                "{name}: orientation"
            );
            assert_eq!(
                served.content != full.content,
                reduced,
                "{name}: read reduced {}, expected {reduced}",
                served.content != full.content
            );
        } else {
            assert!(!reduced, "{name} should have been read reduced");
        }
    }
}
