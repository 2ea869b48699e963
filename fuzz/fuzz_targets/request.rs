//! The HTTP handler on arbitrary requests: method, path, Content-Type and body.
//!
//! Invariant: every request gets a response below 500 with a JSON error body when it is not
//! 2xx, the same contract `tests/hostile.rs` checks case by case.
#![no_main]

use std::sync::OnceLock;

use covid_xray::api::App;
use covid_xray::config::HttpConfig;
use covid_xray::model::Classifier;
use lambda_http::{Body, Request};
use libfuzzer_sys::fuzz_target;

fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| {
        let classifier = Classifier::embedded().expect("the embedded model loads");
        App::new(classifier, HttpConfig::default())
    })
}

const CONTENT_TYPES: [Option<&str>; 7] = [
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("image/jpeg"),
    Some("image/png"),
    Some("application/octet-stream"),
    Some("text/plain"),
    None,
];
const ROUTES: [(&str, &str); 5] = [
    ("POST", "/predict"),
    ("POST", "/predict"),
    ("POST", "/predict"),
    ("GET", "/health"),
    ("PUT", "/predict"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    // The first byte picks the request's shape: bits 0-2 the Content-Type, bits 3-5 the
    // route, bit 7 a binary body (as API Gateway delivers `isBase64Encoded` bodies).
    let content_type = CONTENT_TYPES[usize::from(selector & 0x07) % CONTENT_TYPES.len()];
    let (method, path) = ROUTES[usize::from((selector >> 3) & 0x07) % ROUTES.len()];
    // Text bodies arrive as `Body::Text` from API Gateway; binary ones as `Body::Binary`.
    let body = match std::str::from_utf8(body) {
        Ok(text) if selector & 0x80 == 0 => Body::Text(text.to_string()),
        _ => Body::Binary(body.to_vec()),
    };
    let mut builder = lambda_http::http::Request::builder().method(method).uri(path);
    if let Some(t) = content_type {
        builder = builder.header("content-type", t);
    }
    let Ok(req): Result<Request, _> = builder.body(body) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let response = runtime.block_on(app().handle(req));
    let status = response.status().as_u16();
    assert!(status < 500, "status {status} for {method} {path} {content_type:?}");
    if status >= 400 {
        let v: serde_json::Value = serde_json::from_slice(response.body())
            .expect("error bodies are JSON");
        assert!(v["error"]["code"].is_string(), "error without a code: {v}");
    }
});
