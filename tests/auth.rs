//! Who may call `POST /predict`, through the real events of `events/` as `lambda_http`
//! deserialises them, and the local server's bearer-token check with real RS256 tokens; and
//! the metrics each answer writes, at every log level the template allows.

mod common;

use std::path::Path;
use std::sync::OnceLock;

use covid_xray::Classifier;
use covid_xray::api::App;
use covid_xray::api::jwt::JwtVerifier;
use covid_xray::config::{AuthMode, HttpConfig};
use covid_xray::metrics::{Metrics, lambda_keeps};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

const ISSUER: &str = "https://idp.example.org/realms/radiology";
const AUDIENCE: &str = "covid-xray-page";

fn classifier() -> Classifier {
    static C: OnceLock<Classifier> = OnceLock::new();
    C.get_or_init(|| Classifier::embedded().expect("model"))
        .clone()
}

fn app(auth: AuthMode) -> App {
    App::new(
        classifier(),
        HttpConfig {
            auth,
            allowed_buckets: vec!["covid-xray-uploads".into()],
            ..HttpConfig::default()
        },
    )
}

fn event(name: &str) -> lambda_http::Request {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("events")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("read event");
    lambda_http::request::from_str(&text).expect("lambda_http accepts the event")
}

#[test]
fn signed_and_token_calls_pass_and_anonymous_ones_get_401() {
    for mode in [AuthMode::Iam, AuthMode::Jwt] {
        let (status, body) = common::respond(&app(mode), event("apigw-json-base64.json"));
        assert_eq!(status, 401, "{mode:?}: {body}");
        assert_eq!(body["error"]["code"], "unauthenticated");
        for signed in ["apigw-iam-signed.json", "apigw-jwt.json"] {
            let (status, body) = common::respond(&app(mode), event(signed));
            assert_eq!(status, 200, "{mode:?} {signed}: {body}");
            assert!(body["label"].is_string());
        }
        // What stays open in every mode: the health check and the page.
        let (status, body) = common::respond(&app(mode), event("apigw-health.json"));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["auth"]["mode"], mode.as_str());
    }
}

/// An event of events/ with its body replaced.
fn event_with_body(name: &str, body: &str) -> lambda_http::Request {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("events")
        .join(name);
    let mut raw: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("event")).expect("JSON");
    raw["body"] = body.into();
    raw["isBase64Encoded"] = false.into();
    lambda_http::request::from_str(&raw.to_string()).expect("event")
}

#[test]
fn open_modes_answer_anonymous_calls() {
    for mode in [AuthMode::None, AuthMode::Local] {
        let (status, body) = common::respond(&app(mode), event("apigw-json-base64.json"));
        assert_eq!(status, 200, "{mode:?}: {body}");
    }
}

#[test]
fn an_s3_reference_in_each_mode() {
    let s3 = r#"{"s3": {"bucket": "covid-xray-uploads", "key": "uploads/a.jpg"}}"#;
    // With the authorizer's identity, iam and jwt modes pass the call on to the store (none
    // is configured here: 503), as the local mode does.
    for (mode, signed) in [
        (AuthMode::Iam, "apigw-iam-signed.json"),
        (AuthMode::Jwt, "apigw-jwt.json"),
        (AuthMode::Local, "apigw-json-base64.json"),
    ] {
        let (status, body) = common::respond(&app(mode), event_with_body(signed, s3));
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (503, Some("s3_unavailable")),
            "{mode:?}: {body}"
        );
    }
    for mode in [AuthMode::Iam, AuthMode::Jwt] {
        let (status, body) =
            common::respond(&app(mode), event_with_body("apigw-json-base64.json", s3));
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("unauthenticated"))
        );
    }
    let (status, body) = common::respond(
        &app(AuthMode::None),
        event_with_body("apigw-iam-signed.json", s3),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("s3_refused_public"))
    );
}

#[test]
fn an_s3_reference_needs_an_identity_and_a_public_demo_reads_none() {
    // An anonymous S3 reference never reaches the store in iam mode.
    let (status, body) = common::respond(&app(AuthMode::Iam), event("apigw-s3-reference.json"));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    // In the public demo, S3 references are refused whatever the allow-list says.
    let (status, body) = common::respond(&app(AuthMode::None), event("apigw-s3-reference.json"));
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "s3_refused_public");
    // The image itself is still classified there.
    let (status, _) = common::respond(&app(AuthMode::None), event("apigw-json-base64.json"));
    assert_eq!(status, 200);
}

/// The log levels template.yaml lets an operator choose (`LogLevel`'s AllowedValues).
fn template_log_levels() -> Vec<String> {
    let template =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml"))
            .expect("template.yaml");
    let after = template
        .split("\n  LogLevel:")
        .nth(1)
        .expect("a LogLevel parameter");
    let allowed = after
        .lines()
        .find_map(|l| l.trim().strip_prefix("AllowedValues:"))
        .expect("LogLevel's AllowedValues");
    let levels: Vec<String> = allowed
        .trim()
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    assert!(levels.len() >= 4, "{levels:?}");
    levels
}

#[test]
fn every_answer_is_one_emf_line_that_survives_every_log_level() {
    for level in template_log_levels() {
        let (metrics, lines) = Metrics::memory_at(&level);
        let app = app(AuthMode::Iam).with_metrics(metrics);
        let (ok, _) = common::respond(&app, event("apigw-iam-signed.json"));
        let (refused, _) = common::respond(&app, event("apigw-malformed.json"));
        let (health, _) = common::respond(&app, event("apigw-health.json"));
        assert_eq!((ok, refused, health), (200, 401, 200));
        let lines = lines.lock().expect("lines").clone();
        assert_eq!(
            lines.len(),
            2,
            "one line per prediction or refusal: {lines:?}"
        );
        for line in &lines {
            assert!(lambda_keeps(line, &level), "{level}: Lambda drops {line}");
            assert!(!line.contains('\n'));
        }
        let prediction: Value = serde_json::from_str(&lines[0]).expect("JSON");
        let directive = &prediction["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "CovidXray");
        assert_eq!(
            directive["Dimensions"][0],
            json!(["Function", "ModelVersion", "Label"])
        );
        assert!(prediction["_aws"]["Timestamp"].as_u64().is_some());
        assert_eq!(prediction["Predictions"], 1);
        assert_eq!(prediction["Function"], "http");
        assert_eq!(
            prediction["ModelVersion"],
            classifier().info().version.as_str()
        );
        assert!(matches!(
            prediction["Label"].as_str(),
            Some("covid" | "normal")
        ));
        for m in ["DecodeMs", "InferenceMs", "TotalMs"] {
            assert!(prediction[m].as_f64().is_some_and(|v| v >= 0.0), "{m}");
        }
        // Every metric the directive names is a top-level member of the line.
        for m in directive["Metrics"].as_array().expect("metrics") {
            let name = m["Name"].as_str().expect("name");
            assert!(prediction[name].is_number(), "{name}");
        }
        let refusal: Value = serde_json::from_str(&lines[1]).expect("JSON");
        assert_eq!(refusal["Refusals"], 1);
        assert_eq!(refusal["Code"], "unauthenticated");
        assert_eq!(
            refusal["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0],
            json!(["Function", "ModelVersion", "Code"])
        );
    }
}

// The local server's bearer-token check: real RS256 tokens signed with the test issuer's key.

fn key(name: &str) -> EncodingKey {
    let der = std::fs::read(common::fixtures().join("jwt").join(name)).expect("test key");
    EncodingKey::from_rsa_der(&der)
}

fn verifier() -> JwtVerifier {
    let jwks = std::fs::read_to_string(common::fixtures().join("jwt/jwks.json")).expect("jwks");
    JwtVerifier::from_jwks(&jwks, ISSUER, &[AUDIENCE.to_string()]).expect("verifier")
}

fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

fn claims() -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "iat": now(), "nbf": now() - 5, "exp": now() + 600})
}

fn token_with(claims: &Value, alg: Algorithm, kid: Option<&str>, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, key).expect("sign")
}

fn token(claims: &Value) -> String {
    token_with(
        claims,
        Algorithm::RS256,
        Some("test-key-1"),
        &key("issuer.der"),
    )
}

fn b64(v: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[test]
fn tokens_are_checked_as_api_gateway_checks_them() {
    let v = verifier();
    let caller = v.verify(&token(&claims())).expect("a good token");
    assert_eq!(caller.audit(), format!("jwt:{ISSUER}#user-1"));
    // Cognito access tokens name the client instead of an audience.
    let mut access = claims();
    access.as_object_mut().expect("object").remove("aud");
    access["client_id"] = AUDIENCE.into();
    v.verify(&token(&access)).expect("client_id stands for aud");

    let refused = |t: &str, why: &str| {
        let e = v.verify(t).expect_err(why);
        assert!(e.0.contains(why), "{why}: {e}");
        assert!(!e.0.contains("eyJ"), "the message echoes the token: {e}");
    };
    let with = |k: &str, value: Value| {
        let mut c = claims();
        c[k] = value;
        token(&c)
    };
    refused(&with("exp", (now() - 3600).into()), "expired");
    refused(&with("nbf", (now() + 3600).into()), "not valid yet");
    refused(&with("iat", (now() + 3600).into()), "issued in the future");
    refused(&with("iss", "https://evil.example".into()), "issuer");
    refused(&with("aud", "another-app".into()), "audience");
    let mut no_sub = claims();
    no_sub.as_object_mut().expect("object").remove("sub");
    refused(&token(&no_sub), "lacks");
    // Signed by a key the issuer never published, under its kid.
    refused(
        &token_with(
            &claims(),
            Algorithm::RS256,
            Some("test-key-1"),
            &key("other.der"),
        ),
        "signature",
    );
    refused(
        &token_with(
            &claims(),
            Algorithm::RS256,
            Some("rotated-away"),
            &key("issuer.der"),
        ),
        "not one of the issuer's",
    );
    refused(
        &token_with(&claims(), Algorithm::RS256, None, &key("issuer.der")),
        "names no key",
    );
    // alg none: a token with no signature at all.
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": "test-key-1"})),
        b64(&claims())
    );
    assert!(v.verify(&none).is_err());
    // Algorithm confusion: HS256 keyed with the issuer's public JWKS bytes.
    let jwks = std::fs::read(common::fixtures().join("jwt/jwks.json")).expect("jwks");
    let confused = token_with(
        &claims(),
        Algorithm::HS256,
        Some("test-key-1"),
        &EncodingKey::from_secret(&jwks).expect("an HMAC key"),
    );
    refused(&confused, "not accepted");
    assert!(v.verify("not a token").is_err());
}

#[test]
fn the_local_server_in_jwt_mode_answers_401_without_a_good_token() {
    let app = app(AuthMode::Jwt).with_jwt_verifier(verifier());
    let image = common::small_film("normal");
    let post = |auth: Option<String>| {
        let mut req = lambda_http::http::Request::builder()
            .method("POST")
            .uri("/predict")
            .header("content-type", "image/png");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.body(lambda_http::Body::Binary(image.clone()))
            .expect("request")
    };
    let (status, body) = common::respond(&app, post(None));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    let mut expired = claims();
    expired["exp"] = (now() - 3600).into();
    let (status, body) = common::respond(&app, post(Some(format!("Bearer {}", token(&expired)))));
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("expired")
    );
    let (status, body) = common::respond(&app, post(Some(format!("Bearer {}", token(&claims())))));
    assert_eq!(status, 200, "{body}");
}
