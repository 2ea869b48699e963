//! Helpers shared by the integration tests: fixture X-rays and hostile inputs made in code.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The fixtures folder.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// One fixture X-ray with what the training side (onnxruntime) recorded for it.
pub struct Fixture {
    pub name: String,
    pub path: PathBuf,
    pub label: String,
    pub p_covid: f64,
}

/// Every fixture listed in tests/fixtures/expected.json.
pub fn fixture_xrays() -> Vec<Fixture> {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).expect("expected.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("expected.json parses");
    let images = v["images"].as_object().expect("images");
    let mut out: Vec<Fixture> = images
        .iter()
        .map(|(name, e)| Fixture {
            name: name.clone(),
            path: fixtures().join("xrays").join(name),
            label: e["label"].as_str().expect("label").to_string(),
            p_covid: e["p_covid"].as_f64().expect("p_covid"),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The bytes of the first fixture of a class.
pub fn first_of(label: &str) -> Vec<u8> {
    let f = fixture_xrays()
        .into_iter()
        .find(|f| f.label == label)
        .expect("fixture");
    std::fs::read(f.path).expect("read fixture")
}

/// A PNG whose IHDR claims `w` x `h` pixels and that holds no pixel data at all.
pub fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit gray, deflate, no filter, no interlace
    push_chunk(&mut out, b"IHDR", &ihdr);
    out
}

/// Appends a PNG chunk with its CRC.
pub fn push_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
}

/// Encodes an image buffer in memory.
pub fn encode(img: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode");
    out.into_inner()
}
