//! End to end over real HTTP: the `xray-http` binary in local mode, on a free loopback port.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use base64::Engine;
use common::http;

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn start(envs: &[(&str, &str)]) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xray-http"));
    cmd.env_remove("AWS_LAMBDA_RUNTIME_API")
        .env("PORT", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start xray-http");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("first line");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    Server { child, addr }
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

/// Method, path, headers, body, expected status, expected error code.
type Case = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
    Vec<u8>,
    u16,
    &'static str,
);

#[test]
fn predicts_fixtures_in_all_three_forms() {
    let server = start(&[]);
    let b64 = base64::engine::general_purpose::STANDARD;
    for f in common::fixture_xrays().iter().step_by(3) {
        let bytes = std::fs::read(&f.path).expect("fixture");
        let json = serde_json::json!({"image": b64.encode(&bytes)}).to_string();
        let r = http(&server.addr, "POST", "/predict", &[JSON], json.as_bytes());
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["label"], f.label.as_str(), "{}", f.name);
        let data_url =
            serde_json::json!({"image": format!("data:image/jpeg;base64,{}", b64.encode(&bytes))})
                .to_string();
        let r = http(
            &server.addr,
            "POST",
            "/predict",
            &[JSON],
            data_url.as_bytes(),
        );
        assert_eq!(r.json()["label"], f.label.as_str(), "data URL {}", f.name);
        for ct in ["image/jpeg", "application/octet-stream"] {
            let r = http(
                &server.addr,
                "POST",
                "/predict",
                &[("Content-Type", ct)],
                &bytes,
            );
            assert_eq!(r.status, 200);
            let body = r.json();
            assert_eq!(body["label"], f.label.as_str(), "{ct} {}", f.name);
            assert!((body["probabilities"]["covid"].as_f64().expect("p") - f.p_covid).abs() < 1e-4);
            assert_eq!(r.header("x-request-id"), body["request_id"].as_str());
        }
    }
    // The S3 form is part of the contract; with no allowed buckets it is refused clearly.
    let r = http(
        &server.addr,
        "POST",
        "/predict",
        &[JSON],
        br#"{"s3": "s3://bucket/key.jpg"}"#,
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["code"], "s3_not_enabled");
}

#[test]
fn every_error_class_is_a_json_4xx() {
    let server = start(&[]);
    let normal = common::first_of("normal");
    let truncated = normal[..normal.len() / 2].to_vec();
    let bomb = common::png_header_only(100_000, 100_000);
    let big = vec![b'A'; 6 * 1024 * 1024 + 10];
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/predict",
            vec![JSON],
            b"{\"image\": ".to_vec(),
            400,
            "malformed_json",
        ),
        (
            "POST",
            "/predict",
            vec![JSON],
            b"{}".to_vec(),
            400,
            "missing_image",
        ),
        (
            "POST",
            "/predict",
            vec![JSON],
            b"{\"image\": 42}".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/predict",
            vec![JSON],
            b"{\"image\": \"%%%not base64\"}".to_vec(),
            400,
            "bad_base64",
        ),
        (
            "POST",
            "/predict",
            vec![JSON],
            br#"{"image": "AAAA", "s3": "s3://b/k"}"#.to_vec(),
            400,
            "ambiguous_source",
        ),
        (
            "POST",
            "/predict",
            vec![JSON],
            b"   ".to_vec(),
            400,
            "empty_body",
        ),
        (
            "POST",
            "/predict",
            vec![("Content-Type", "image/jpeg")],
            Vec::new(),
            400,
            "empty_input",
        ),
        (
            "POST",
            "/predict",
            vec![("Content-Type", "application/octet-stream")],
            big,
            413,
            "payload_too_large",
        ),
        (
            "POST",
            "/predict",
            vec![("Content-Type", "image/png")],
            bomb,
            413,
            "too_large",
        ),
        (
            "POST",
            "/predict",
            vec![("Content-Type", "text/plain")],
            b"hello".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/predict",
            vec![],
            normal.clone(),
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/predict",
            vec![("Content-Type", "application/octet-stream")],
            b"plain text".to_vec(),
            415,
            "not_an_image",
        ),
        (
            "POST",
            "/predict",
            vec![("Content-Type", "image/gif")],
            b"GIF89a".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/predict",
            vec![("Content-Type", "application/octet-stream")],
            b"GIF89a\x01\x00\x01\x00".to_vec(),
            415,
            "unsupported_format",
        ),
        (
            "POST",
            "/predict",
            vec![("Content-Type", "image/jpeg")],
            truncated,
            422,
            "corrupt_image",
        ),
        (
            "GET",
            "/predict",
            vec![],
            Vec::new(),
            405,
            "method_not_allowed",
        ),
        (
            "DELETE",
            "/health",
            vec![],
            Vec::new(),
            405,
            "method_not_allowed",
        ),
        ("GET", "/nope", vec![], Vec::new(), 404, "not_found"),
    ];
    for (method, path, headers, body, status, code) in cases {
        let r = http(&server.addr, method, path, &headers, &body);
        assert_eq!(
            r.status,
            status,
            "{method} {path} {code}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["error"]["code"], code, "{method} {path}");
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
}

#[test]
fn page_health_and_cors() {
    let server = start(&[("XRAY_CORS_ALLOW_ORIGIN", "https://example.org")]);
    let page = http(&server.addr, "GET", "/", &[], b"");
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .is_some_and(|v| v.starts_with("text/html"))
    );
    let html = String::from_utf8_lossy(&page.body);
    assert!(html.contains("not a medical device"));
    assert!(html.contains("name=\"viewport\""));
    let health = http(&server.addr, "GET", "/health", &[], b"");
    assert_eq!(health.status, 200);
    assert_eq!(
        health.header("access-control-allow-origin"),
        Some("https://example.org")
    );
    let pre = http(
        &server.addr,
        "OPTIONS",
        "/predict",
        &[("Origin", "https://example.org")],
        b"",
    );
    assert_eq!(pre.status, 204);
    assert!(
        pre.header("access-control-allow-methods")
            .is_some_and(|m| m.contains("POST"))
    );
}

#[test]
fn the_classifier_is_built_once_across_many_requests() {
    let server = start(&[]);
    let bytes = common::first_of("covid");
    for _ in 0..12 {
        let r = http(
            &server.addr,
            "POST",
            "/predict",
            &[("Content-Type", "image/jpeg")],
            &bytes,
        );
        assert_eq!(r.status, 200);
    }
    let health = http(&server.addr, "GET", "/health", &[], b"").json();
    assert_eq!(health["plans_built"], 1, "{health}");
}

#[test]
fn an_oversized_body_names_the_limit_in_force_and_carries_a_request_id() {
    let server = start(&[("XRAY_MAX_BODY_BYTES", "100000")]);
    let body = vec![b'A'; 200_000];
    let r = http(&server.addr, "POST", "/predict", &[JSON], &body);
    assert_eq!(r.status, 413);
    let v = r.json();
    assert_eq!(v["error"]["code"], "payload_too_large");
    let message = v["error"]["message"].as_str().expect("message");
    assert!(message.contains("limit of 100000 bytes"), "{message}");
    assert!(
        r.headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("x-request-id") && !v.is_empty()),
        "{:?}",
        r.headers
    );
    // A body of exactly the limit is read and judged on its content.
    let exact = vec![b' '; 100_000];
    let r = http(&server.addr, "POST", "/predict", &[JSON], &exact);
    assert_eq!(r.json()["error"]["code"], "empty_body");
}

#[test]
fn the_browser_gets_no_404_for_its_icon() {
    let server = start(&[]);
    let r = http(&server.addr, "GET", "/favicon.ico", &[], b"");
    assert_eq!(r.status, 204);
}

/// Starts `xray-http` and returns what it printed and its exit code, waiting at most 30 s.
fn run_to_exit(cmd: &mut Command) -> (Option<i32>, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    for _ in 0..300 {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if child.try_wait().expect("wait").is_none() {
        child.kill().ok();
    }
    let out = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

fn http_bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xray-http"));
    for var in [
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "PORT",
        "XRAY_HOST",
        "XRAY_MAX_BODY_BYTES",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

#[test]
fn start_up_problems_are_said_plainly_and_exit_cleanly() {
    let (code, text) = run_to_exit(http_bin().arg("--help"));
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("PORT") && text.contains("Usage"), "{text}");
    assert!(
        !text.contains("listening"),
        "--help must not start the server: {text}"
    );

    let (code, text) = run_to_exit(http_bin().env("PORT", "abc"));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("PORT=\"abc\""), "{text}");

    let (code, text) = run_to_exit(http_bin().env("XRAY_MAX_BODY_BYTES", "1MB"));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("XRAY_MAX_BODY_BYTES"), "{text}");

    let (code, text) = run_to_exit(http_bin().env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9"));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("AWS_LAMBDA_FUNCTION_NAME"), "{text}");
    assert!(!text.contains("panicked"), "{text}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let (code, text) = run_to_exit(http_bin().env("PORT", &port));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("set PORT"), "{text}");

    let (code, text) = run_to_exit(
        Command::new(env!("CARGO_BIN_EXE_xray-s3"))
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .env_remove("XRAY_UPLOAD_PREFIX")
            .env_remove("XRAY_RESULTS_PREFIX"),
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("cargo lambda watch"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn logs_are_plain_text_when_redirected() {
    let mut child = http_bin()
        .env("PORT", "0")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("line");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .expect("address")
        .to_string();
    assert_eq!(http(&addr, "GET", "/health", &[], b"").status, 200);
    child.kill().ok();
    let out = child.wait_with_output().expect("output");
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(logs.contains("request"), "{logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "ANSI escapes in redirected logs: {logs:?}"
    );
}
