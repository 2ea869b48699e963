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

/// A response read off the wire.
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 client over a plain socket, so tests can also send what a polite client
/// would not. One request per connection.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .expect("timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("write head");
    s.write_all(body).expect("write body");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..eol]).unwrap_or("0").trim(), 16)
                .unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
    out
}

/// The first fixture film of `label` at 100 x 120 px, as PNG: smaller than any training
/// film, still a chest X-ray, and quick to classify.
pub fn small_film(label: &str) -> Vec<u8> {
    let film = image::load_from_memory(&first_of(label))
        .expect("fixture")
        .to_luma8();
    let small = image::imageops::resize(&film, 100, 120, image::imageops::FilterType::Triangle);
    encode(
        &image::DynamicImage::ImageLuma8(small),
        image::ImageFormat::Png,
    )
}

/// The fixture label of an image, matched by its bytes.
pub fn label_of_bytes(bytes: &[u8]) -> Option<String> {
    fixture_xrays()
        .into_iter()
        .find(|f| std::fs::read(&f.path).map(|b| b == bytes).unwrap_or(false))
        .map(|f| f.label)
}

/// Sends `req` through the handler on a fresh runtime: its status and its JSON body (always
/// text: the handler answers JSON).
pub fn respond(app: &covid_xray::api::App, req: lambda_http::Request) -> (u16, serde_json::Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let resp = rt.block_on(app.handle(req));
    let status = resp.status().as_u16();
    let body = match resp.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).expect("JSON body"),
        other => panic!("expected a text body, got {other:?}"),
    };
    (status, body)
}

/// Log output at every level, written to memory.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `f` with every tracing event, TRACE included, captured: its result and the log text.
pub fn capture_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&captured.0.lock().expect("lock")).into_owned();
    (out, text)
}
