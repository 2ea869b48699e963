//! DICOM in: files made by `tests/fixtures/dicom/make.py` (pydicom) from two fixture films, in
//! the encodings modalities and PACS send, through the library, the HTTP handler and the CLI.

mod common;

use std::path::PathBuf;

use base64::Engine;
use covid_xray::Classifier;
use covid_xray::api::App;
use covid_xray::config::HttpConfig;

fn dir() -> PathBuf {
    common::fixtures().join("dicom")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn classifier() -> Classifier {
    Classifier::embedded().expect("model")
}

/// Every readable file, with the class of the film it holds.
const READABLE: [(&str, &str); 12] = [
    ("covid-8bit-explicit", "covid"),
    ("covid-8bit-mono1-implicit", "covid"),
    ("covid-12bit-window", "covid"),
    ("covid-16bit-signed-rescale", "covid"),
    ("normal-8bit-explicit", "normal"),
    ("normal-8bit-mono1-implicit", "normal"),
    ("normal-12bit-window", "normal"),
    ("normal-16bit-signed-rescale", "normal"),
    ("normal-16bit-nowindow", "normal"),
    ("normal-rle", "normal"),
    ("normal-jpeg-baseline", "normal"),
    ("normal-ot-chest", "normal"),
];

#[test]
fn a_dicom_film_gets_the_answer_of_the_picture_a_viewer_shows() {
    let c = classifier();
    for (name, label) in READABLE {
        let dicom = c
            .classify(&read(&format!("{name}.dcm")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let viewer = c
            .classify(&read(&format!("{name}.png")))
            .unwrap_or_else(|e| panic!("{name}.png: {e}"));
        let d = (dicom.probabilities.covid - viewer.probabilities.covid).abs();
        assert!(
            d <= 0.03,
            "{name}: P(covid) {} from DICOM, {} from the viewer's picture",
            dicom.probabilities.covid,
            viewer.probabilities.covid
        );
        assert_eq!(dicom.label.as_str(), viewer.label.as_str(), "{name}");
        let _ = label;
    }
}

#[test]
fn files_that_are_no_chest_radiograph_or_cannot_be_read_are_refused() {
    let c = classifier();
    let code = |bytes: &[u8]| {
        c.classify(bytes)
            .map(|_| ())
            .map_err(|e| (e.code(), e.to_string()))
    };
    let (ct, message) = code(&read("refused-ct.dcm")).expect_err("CT");
    assert_eq!(ct, "unsupported_modality");
    assert!(message.contains("CT"), "{message}");
    let (ts, message) = code(&read("refused-jpeg2000.dcm")).expect_err("JPEG 2000");
    assert_eq!(ts, "unsupported_transfer_syntax");
    assert!(message.contains("1.2.840.10008.1.2.4.90"), "{message}");
    assert_eq!(
        code(&read("refused-two-frames.dcm")).expect_err("frames").0,
        "multi_frame"
    );
    assert_eq!(
        code(&read("refused-huge.dcm")).expect_err("huge").0,
        "too_large"
    );
    assert_eq!(
        code(&read("refused-7bit.dcm")).expect_err("7 bits").0,
        "corrupt_image"
    );
    assert_eq!(
        code(&read("refused-no-pixels.dcm"))
            .expect_err("no pixels")
            .0,
        "corrupt_image"
    );
    // Found by the dicom fuzz target: an element whose declared length runs past the end of
    // the file, which a parser trusting it would allocate (the fuzzer's process reached
    // 2.7 GB), refused from the header walk before the parser runs; and RLE data that made
    // the RLE decoder index out of bounds, a panic contained and refused; and a file meta
    // element with a VR the standard does not define, whose 4-byte length (2.3 GB) the meta
    // reader allocated before reading, now walked before the meta reader runs; and the
    // same behind a (0000,0002) element, which the meta reader reads on (it stops at the
    // group length, not at the first element of another group).
    for name in [
        "hostile-fuzzed-oom.dcm",
        "hostile-fuzzed-rle-panic.dcm",
        "hostile-fuzzed-meta-oom.dcm",
        "hostile-fuzzed-meta-group-oom.dcm",
    ] {
        assert_eq!(
            code(&read(name)).expect_err(name).0,
            "corrupt_image",
            "{name}"
        );
    }
    // Uncompressed pixel data shorter than Rows x Columns says: refused before a decoder
    // allocates the image the header claims.
    let mut short = read("normal-8bit-explicit.dcm");
    let rows = short
        .windows(6)
        .position(|w| w == [0x28, 0x00, 0x10, 0x00, b'U', b'S'])
        .expect("a Rows element");
    short[rows + 8..rows + 10].copy_from_slice(&4000u16.to_le_bytes());
    let e = code(&short).expect_err("short pixel data");
    assert_eq!(e.0, "corrupt_image");
    assert!(e.1.contains("pixel data holds"), "{}", e.1);
    // A JPEG frame header that claims more than the data set's Rows and Columns.
    let mut jpeg = read("normal-jpeg-baseline.dcm");
    let sof = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("a baseline frame header");
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xF0, 0xFF, 0xF0]);
    assert_eq!(code(&jpeg).expect_err("huge JPEG frame").0, "corrupt_image");
    // Truncated anywhere: an error, never a panic.
    let whole = read("normal-12bit-window.dcm");
    for cut in [130, 140, 300, 1_000, whole.len() / 2, whole.len() - 1] {
        let e = c.classify(&whole[..cut]).expect_err("truncated");
        assert!(
            matches!(e.code(), "corrupt_image" | "not_an_image"),
            "cut at {cut}: {}",
            e.code()
        );
    }
    // Bytes flipped at random places: an answer or an error, never a panic.
    let mut state = 0x2545_f491_u64;
    for _ in 0..200 {
        let mut bytes = whole.clone();
        for _ in 0..8 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = 128 + (state as usize) % (bytes.len() - 128);
            bytes[at] = (state >> 32) as u8;
        }
        let _ = c.classify(&bytes);
    }
}

fn handle(app: &App, content_type: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
    let req = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/predict")
        .header("content-type", content_type)
        .body(lambda_http::Body::Binary(body))
        .expect("request");
    common::respond(app, req)
}

#[test]
fn the_http_api_reads_dicom_raw_sniffed_and_as_base64() {
    let app = App::new(classifier(), HttpConfig::default());
    let film = read("covid-8bit-explicit.dcm");
    for content_type in ["application/dicom", "application/octet-stream"] {
        let (status, body) = handle(&app, content_type, film.clone());
        assert_eq!(status, 200, "{content_type}: {body}");
        assert!(body["label"].is_string());
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(&film);
    for image in [b64.clone(), format!("data:application/dicom;base64,{b64}")] {
        let json = serde_json::json!({ "image": image })
            .to_string()
            .into_bytes();
        let (status, body) = handle(&app, "application/json", json);
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = handle(&app, "application/dicom", read("refused-ct.dcm"));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("unsupported_modality"))
    );
    let (status, body) = handle(&app, "application/dicom", read("refused-jpeg2000.dcm"));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (415, Some("unsupported_transfer_syntax"))
    );
    let (status, body) = handle(&app, "application/dicom", read("refused-huge.dcm"));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("too_large"))
    );
}

/// A log sink that keeps every line.
#[test]
fn patient_data_never_reaches_an_answer_or_a_log() {
    let app = App::new(classifier(), HttpConfig::default());
    let mut answers = String::new();
    let ((), logs) = common::capture_logs(|| {
        for name in [
            "normal-8bit-explicit.dcm",
            "refused-ct.dcm",
            "refused-7bit.dcm",
        ] {
            let (_, body) = handle(&app, "application/dicom", read(name));
            answers.push_str(&body.to_string());
        }
    });
    assert!(logs.contains("request"), "the requests were logged: {logs}");
    for secret in ["Doe", "Jane", "PID-SECRET", "19700101"] {
        assert!(
            !answers.contains(secret),
            "{secret} in an answer: {answers}"
        );
        assert!(!logs.contains(secret), "{secret} in the logs");
    }
}

#[test]
fn the_cli_finds_dcm_files_in_directories() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xray"))
        .args(["predict", "--json"])
        .arg(dir())
        .output()
        .expect("run xray");
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.contains(".dcm"))
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let files = std::fs::read_dir(dir())
        .expect("fixtures")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "dcm"))
        })
        .count();
    assert!(files >= 20);
    assert_eq!(lines.len(), files, "one line per .dcm file: {stdout}");
    let answered = lines.iter().filter(|l| l["label"].is_string()).count();
    assert_eq!(answered, READABLE.len(), "{stdout}");
    assert!(!stdout.contains("PID-SECRET"));
}
