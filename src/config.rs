//! Every setting of every binary, read from the environment in one place.
//!
//! A setting that is present but cannot be used (`PORT=abc`, `XRAY_MAX_BODY_BYTES=1MB`) is
//! refused with a [`ConfigError`] naming the variable, the value and what was expected: a
//! service that silently falls back to a default listens on the wrong port or accepts the
//! wrong sizes, and nobody notices until it matters. An unset or empty variable takes its
//! default.

use std::net::IpAddr;
use std::path::PathBuf;

/// API Gateway's synchronous Lambda payload limit, the default largest request body.
pub const LAMBDA_PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;

/// The default largest S3 object to read (`XRAY_MAX_OBJECT_BYTES`).
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 20 * 1024 * 1024;

/// The default port of the local server (`PORT`).
pub const DEFAULT_PORT: u16 = 3000;

/// The variables the Lambda runtime reads at start-up and cannot do without. `lambda_runtime`
/// panics when one is missing; the binaries check them first and say so instead.
pub const LAMBDA_REQUIRED: [&str; 3] = [
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

/// A setting that cannot be used, or an environment the process cannot start in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A variable is set to a value that does not parse.
    #[error("{var}={value:?} is not valid: expected {expected}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What a valid value looks like.
        expected: &'static str,
    },
    /// `AWS_LAMBDA_RUNTIME_API` is set, so the process believes it runs on Lambda, but
    /// variables that Lambda always sets are missing.
    #[error(
        "AWS_LAMBDA_RUNTIME_API is set but {} {} missing: run it under AWS Lambda or `cargo lambda watch`, or unset AWS_LAMBDA_RUNTIME_API",
        .0.join(", "),
        if .0.len() == 1 { "is" } else { "are" }
    )]
    PartialLambdaEnvironment(Vec<&'static str>),
    /// The S3 trigger's result keys could fall under its upload prefix.
    #[error(
        "result keys under '{results_prefix}' would fall under the upload prefix '{upload_prefix}' and retrigger the function"
    )]
    Looping {
        /// The upload prefix.
        upload_prefix: String,
        /// The results prefix.
        results_prefix: String,
    },
}

/// Reads a variable, treating an empty or blank value as unset.
fn present(get: &impl Fn(&str) -> Option<String>, var: &str) -> Option<String> {
    get(var).filter(|v| !v.trim().is_empty())
}

/// A comma-separated variable as its non-empty, trimmed items; empty when unset.
fn list(get: &impl Fn(&str) -> Option<String>, var: &str) -> Vec<String> {
    present(get, var)
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Parses a variable with `FromStr`, or returns `default` when it is unset.
fn parsed<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    expected: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match present(get, var) {
        None => Ok(default),
        Some(value) => value.trim().parse().map_err(|_| ConfigError::Invalid {
            var,
            value,
            expected,
        }),
    }
}

/// A size in bytes: a positive whole number.
fn bytes<T: std::str::FromStr + PartialEq + Default>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    const EXPECTED: &str = "a positive whole number of bytes, such as 6291456";
    let v = parsed(get, var, EXPECTED, default)?;
    if v == T::default() {
        return Err(ConfigError::Invalid {
            var,
            value: "0".into(),
            expected: EXPECTED,
        });
    }
    Ok(v)
}

/// The environment of this process.
fn env_lookup(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

/// The authentication a deployment put in front of `POST /predict` (`XRAY_AUTH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// SigV4-signed calls (API Gateway's `AWS_IAM` authorizer).
    Iam,
    /// Bearer tokens checked by API Gateway's JWT authorizer.
    Jwt,
    /// An explicit public demo: anyone may classify an image they send; S3 references are
    /// refused whatever `XRAY_ALLOWED_BUCKETS` says.
    None,
    /// `XRAY_AUTH` unset off Lambda: the local server, open on its own address, S3
    /// references as the allow-list says.
    Local,
}

impl AuthMode {
    /// `XRAY_AUTH` as read by `get`. On Lambda (`on_lambda`) the variable must be set: a
    /// function that does not know who may call it does not start.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
        on_lambda: bool,
    ) -> Result<AuthMode, ConfigError> {
        let value = get("XRAY_AUTH").map(|v| v.trim().to_ascii_lowercase());
        match value.as_deref() {
            Some("iam") => Ok(AuthMode::Iam),
            Some("jwt") => Ok(AuthMode::Jwt),
            Some("none") => Ok(AuthMode::None),
            None | Some("") if !on_lambda => Ok(AuthMode::Local),
            other => Err(ConfigError::Invalid {
                var: "XRAY_AUTH",
                value: other.unwrap_or("").to_string(),
                expected: "iam, jwt or none (template.yaml sets it from ApiAuth)",
            }),
        }
    }

    /// The name logs and `/health` give the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Iam => "iam",
            AuthMode::Jwt => "jwt",
            AuthMode::None => "none",
            AuthMode::Local => "local",
        }
    }

    /// Whether calls must carry an authorizer's identity.
    pub fn needs_identity(self) -> bool {
        matches!(self, AuthMode::Iam | AuthMode::Jwt)
    }
}

/// Settings of the HTTP service (`xray-http`, on Lambda and locally).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// `Access-Control-Allow-Origin` to send; `None` sends no CORS headers
    /// (`XRAY_CORS_ALLOW_ORIGIN`).
    pub cors_allow_origin: Option<String>,
    /// Largest request body in bytes (`XRAY_MAX_BODY_BYTES`, default 6 MiB).
    pub max_body_bytes: usize,
    /// Buckets that S3 references may name (`XRAY_ALLOWED_BUCKETS`, comma-separated); empty
    /// means S3 references are refused.
    pub allowed_buckets: Vec<String>,
    /// Largest S3 object to read, in bytes (`XRAY_MAX_OBJECT_BYTES`, default 20 MiB).
    pub max_object_bytes: u64,
    /// Who may call `POST /predict` (`XRAY_AUTH`): required on Lambda.
    pub auth: AuthMode,
    /// The issuer of accepted JWTs (`XRAY_JWT_ISSUER`), in `jwt` mode.
    pub jwt_issuer: Option<String>,
    /// Accepted audiences (`XRAY_JWT_AUDIENCE`, comma-separated): `aud` or `client_id`.
    pub jwt_audiences: Vec<String>,
    /// The OAuth client the upload page signs in as (`XRAY_JWT_CLIENT_ID`).
    pub jwt_client_id: Option<String>,
    /// The issuer's keys, saved from its `jwks_uri` (`XRAY_JWKS_FILE`): the local server
    /// checks tokens itself in `jwt` mode, where API Gateway is not in front of it.
    pub jwks_file: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            cors_allow_origin: None,
            max_body_bytes: LAMBDA_PAYLOAD_LIMIT,
            allowed_buckets: Vec::new(),
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES,
            auth: AuthMode::Local,
            jwt_issuer: None,
            jwt_audiences: Vec::new(),
            jwt_client_id: None,
            jwks_file: None,
        }
    }
}

impl HttpConfig {
    /// Reads the `XRAY_*` variables of the HTTP service.
    pub fn from_env() -> Result<HttpConfig, ConfigError> {
        HttpConfig::from_lookup(env_lookup)
    }

    /// As [`HttpConfig::from_env`], from any lookup (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<HttpConfig, ConfigError> {
        let d = HttpConfig::default();
        Ok(HttpConfig {
            cors_allow_origin: present(&get, "XRAY_CORS_ALLOW_ORIGIN"),
            max_body_bytes: bytes(&get, "XRAY_MAX_BODY_BYTES", d.max_body_bytes)?,
            allowed_buckets: list(&get, "XRAY_ALLOWED_BUCKETS"),
            max_object_bytes: bytes(&get, "XRAY_MAX_OBJECT_BYTES", d.max_object_bytes)?,
            auth: AuthMode::from_lookup(&get, get("AWS_LAMBDA_RUNTIME_API").is_some())?,
            jwt_issuer: present(&get, "XRAY_JWT_ISSUER"),
            jwt_audiences: list(&get, "XRAY_JWT_AUDIENCE"),
            jwt_client_id: present(&get, "XRAY_JWT_CLIENT_ID"),
            jwks_file: present(&get, "XRAY_JWKS_FILE").map(PathBuf::from),
        })
    }
}

/// Where the local server listens (`xray-http` outside Lambda).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// The address to bind (`XRAY_HOST`, default 127.0.0.1; `0.0.0.0` in a container or VM).
    pub host: IpAddr,
    /// The port (`PORT`, default 3000; 0 picks a free one).
    pub port: u16,
}

impl ServerConfig {
    /// Reads `XRAY_HOST` and `PORT`.
    pub fn from_env() -> Result<ServerConfig, ConfigError> {
        ServerConfig::from_lookup(env_lookup)
    }

    /// As [`ServerConfig::from_env`], from any lookup.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<ServerConfig, ConfigError> {
        Ok(ServerConfig {
            host: parsed(
                &get,
                "XRAY_HOST",
                "an IP address such as 127.0.0.1 or 0.0.0.0",
                IpAddr::from([127, 0, 0, 1]),
            )?,
            port: parsed(&get, "PORT", "a port number from 0 to 65535", DEFAULT_PORT)?,
        })
    }
}

/// Settings of the S3 upload trigger (`xray-s3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerConfig {
    /// Only keys under this prefix are classified (`XRAY_UPLOAD_PREFIX`, default `uploads/`).
    pub upload_prefix: String,
    /// Where results go (`XRAY_RESULTS_BUCKET`); `None` means the upload's own bucket.
    pub results_bucket: Option<String>,
    /// Prefix of result keys (`XRAY_RESULTS_PREFIX`, default `results/`).
    pub results_prefix: String,
    /// Largest object to classify (`XRAY_MAX_OBJECT_BYTES`, default 20 MiB).
    pub max_object_bytes: u64,
    /// Records of one event processed at once (`XRAY_CONCURRENCY`, default 4).
    pub concurrency: usize,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        TriggerConfig {
            upload_prefix: "uploads/".into(),
            results_bucket: None,
            results_prefix: "results/".into(),
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES,
            concurrency: 4,
        }
    }
}

impl TriggerConfig {
    /// Reads the `XRAY_*` variables of the trigger and refuses a looping configuration.
    pub fn from_env() -> Result<TriggerConfig, ConfigError> {
        TriggerConfig::from_lookup(env_lookup)
    }

    /// As [`TriggerConfig::from_env`], from any lookup.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<TriggerConfig, ConfigError> {
        let d = TriggerConfig::default();
        let concurrency = parsed(
            &get,
            "XRAY_CONCURRENCY",
            "a whole number from 1 up",
            d.concurrency,
        )?;
        if concurrency == 0 {
            return Err(ConfigError::Invalid {
                var: "XRAY_CONCURRENCY",
                value: "0".into(),
                expected: "a whole number from 1 up",
            });
        }
        let config = TriggerConfig {
            // An empty upload prefix is a real choice (the whole bucket), so it is kept.
            upload_prefix: get("XRAY_UPLOAD_PREFIX").unwrap_or(d.upload_prefix),
            results_bucket: present(&get, "XRAY_RESULTS_BUCKET"),
            results_prefix: get("XRAY_RESULTS_PREFIX").unwrap_or(d.results_prefix),
            max_object_bytes: bytes(&get, "XRAY_MAX_OBJECT_BYTES", d.max_object_bytes)?,
            concurrency,
        };
        config.validate()?;
        Ok(config)
    }

    /// Refuses any configuration whose result keys could fall under the upload prefix.
    ///
    /// A result key is `results_prefix + rest + ".json"`; it falls under the upload prefix
    /// for some `rest` exactly when one prefix starts with the other. That holds whichever
    /// bucket the results go to, because the bucket names of a deployment are not known
    /// here: a separate results bucket with overlapping prefixes is refused too.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let overlap = self.results_prefix.starts_with(&self.upload_prefix)
            || self.upload_prefix.starts_with(&self.results_prefix);
        if overlap {
            return Err(ConfigError::Looping {
                upload_prefix: self.upload_prefix.clone(),
                results_prefix: self.results_prefix.clone(),
            });
        }
        Ok(())
    }

    /// Where the result of `key` goes, or `None` when the key is not under the upload prefix.
    pub fn result_key(&self, key: &str) -> Option<String> {
        let rest = key.strip_prefix(&self.upload_prefix)?;
        Some(format!("{}{rest}.json", self.results_prefix))
    }
}

/// Another ONNX file to serve instead of the embedded one (`XRAY_MODEL_PATH`).
pub fn model_path() -> Option<PathBuf> {
    present(&env_lookup, "XRAY_MODEL_PATH").map(PathBuf::from)
}

/// Another lung finder instead of the embedded one (`XRAY_LUNG_MODEL_PATH`).
pub fn lung_model_path() -> Option<PathBuf> {
    present(&env_lookup, "XRAY_LUNG_MODEL_PATH").map(PathBuf::from)
}

/// Whether this process runs under a Lambda runtime API (AWS or `cargo lambda watch`).
///
/// `Ok(false)` when `AWS_LAMBDA_RUNTIME_API` is unset; an error when it is set but the
/// variables Lambda always sets beside it are not, which would otherwise panic inside the
/// runtime.
pub fn lambda_environment() -> Result<bool, ConfigError> {
    lambda_environment_from(env_lookup)
}

/// As [`lambda_environment`], from any lookup.
pub fn lambda_environment_from(get: impl Fn(&str) -> Option<String>) -> Result<bool, ConfigError> {
    let Some(api) = present(&get, "AWS_LAMBDA_RUNTIME_API") else {
        return Ok(false);
    };
    // The runtime turns it into a URI and panics when it cannot.
    if api.trim().parse::<lambda_http::http::Uri>().is_err() {
        return Err(ConfigError::Invalid {
            var: "AWS_LAMBDA_RUNTIME_API",
            value: api,
            expected: "host:port as Lambda sets it, or a URL such as http://127.0.0.1:9000/.rt/xray-http",
        });
    }
    let missing: Vec<&'static str> = LAMBDA_REQUIRED
        .into_iter()
        .filter(|v| present(&get, v).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(ConfigError::PartialLambdaEnvironment(missing));
    }
    if let Some(m) = present(&get, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        && m.trim().parse::<i32>().is_err()
    {
        return Err(ConfigError::Invalid {
            var: "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            value: m,
            expected: "the function's memory in MB, such as 512",
        });
    }
    Ok(true)
}

/// The `main` of a binary whose work is `body`, run on a fresh async runtime: a failure to
/// start (a bad setting, a port in use, a partial Lambda environment) is one line on stderr
/// and in the log, and exit status 2, never a panic or a backtrace.
pub fn run_binary(
    name: &str,
    body: impl std::future::Future<Output = Result<(), String>>,
) -> std::process::ExitCode {
    let fail = |message: &str| {
        tracing::error!("{message}");
        eprintln!("{name}: {message}");
        std::process::ExitCode::from(2)
    };
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => match runtime.block_on(body) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(message) => fail(&message),
        },
        Err(e) => fail(&format!("cannot start the async runtime: {e}")),
    }
}

/// Starts logging to stderr as Lambda's advanced logging controls ask: JSON lines when
/// `AWS_LAMBDA_LOG_FORMAT=JSON`, the level from `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`,
/// else info. Colours only when stderr is a terminal, so redirected logs stay plain text.
pub fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::filter::{EnvFilter, LevelFilter};

    let level = present(&env_lookup, "AWS_LAMBDA_LOG_LEVEL")
        .or_else(|| present(&env_lookup, "RUST_LOG"))
        .and_then(|l| l.trim().parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let json = present(&env_lookup, "AWS_LAMBDA_LOG_FORMAT")
        .is_some_and(|f| f.trim().eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::builder()
                .with_default_directive(level.into())
                .from_env_lossy(),
        )
        .with_writer(std::io::stderr);
    // A second call (tests) finds a subscriber already set; that is fine.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn http_defaults_and_lists() {
        let c = HttpConfig::from_lookup(lookup(&[("XRAY_ALLOWED_BUCKETS", " a, b ,,")]))
            .expect("valid");
        assert_eq!(c.allowed_buckets, vec!["a", "b"]);
        assert_eq!(c.max_body_bytes, LAMBDA_PAYLOAD_LIMIT);
        assert_eq!(c.cors_allow_origin, None);
        assert_eq!(c.max_object_bytes, DEFAULT_MAX_OBJECT_BYTES);
    }

    #[test]
    fn bad_values_are_refused_not_ignored() {
        let e = HttpConfig::from_lookup(lookup(&[("XRAY_MAX_BODY_BYTES", "1MB")]))
            .expect_err("1MB is not a byte count");
        let m = e.to_string();
        assert!(
            m.contains("XRAY_MAX_BODY_BYTES") && m.contains("1MB"),
            "{m}"
        );
        assert!(HttpConfig::from_lookup(lookup(&[("XRAY_MAX_OBJECT_BYTES", "0")])).is_err());
        let e = ServerConfig::from_lookup(lookup(&[("PORT", "abc")])).expect_err("abc");
        assert!(e.to_string().contains("PORT"), "{e}");
        assert!(ServerConfig::from_lookup(lookup(&[("XRAY_HOST", "localhost:80")])).is_err());
        assert!(TriggerConfig::from_lookup(lookup(&[("XRAY_CONCURRENCY", "0")])).is_err());
        assert!(TriggerConfig::from_lookup(lookup(&[("XRAY_CONCURRENCY", "four")])).is_err());
    }

    #[test]
    fn server_host_and_port() {
        let c = ServerConfig::from_lookup(lookup(&[])).expect("defaults");
        assert_eq!((c.host.to_string(), c.port), ("127.0.0.1".into(), 3000));
        let c = ServerConfig::from_lookup(lookup(&[("XRAY_HOST", "0.0.0.0"), ("PORT", "8080")]))
            .expect("valid");
        assert_eq!((c.host.to_string(), c.port), ("0.0.0.0".into(), 8080));
    }

    #[test]
    fn looping_trigger_configurations_are_refused() {
        assert!(TriggerConfig::default().validate().is_ok());
        for (up, res) in [
            ("uploads/", "uploads/results/"),
            ("", "results/"),
            ("uploads/", ""),
            ("in/", "in/"),
        ] {
            let c = TriggerConfig {
                upload_prefix: up.into(),
                results_prefix: res.into(),
                ..TriggerConfig::default()
            };
            assert!(c.validate().is_err(), "{up:?} {res:?} must be refused");
            let from_env = TriggerConfig::from_lookup(lookup(&[
                ("XRAY_UPLOAD_PREFIX", up),
                ("XRAY_RESULTS_PREFIX", res),
            ]));
            assert!(matches!(from_env, Err(ConfigError::Looping { .. })));
        }
    }

    #[test]
    fn result_keys() {
        let c = TriggerConfig::default();
        assert_eq!(
            c.result_key("uploads/a/b c.jpg").as_deref(),
            Some("results/a/b c.jpg.json")
        );
        assert_eq!(c.result_key("other/a.jpg"), None);
    }

    #[test]
    fn partial_lambda_environments_are_named() {
        assert_eq!(lambda_environment_from(lookup(&[])), Ok(false));
        let e = lambda_environment_from(lookup(&[("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")]))
            .expect_err("partial");
        let m = e.to_string();
        assert!(
            m.contains("AWS_LAMBDA_FUNCTION_NAME") && m.contains("are missing"),
            "{m}"
        );
        let full = lookup(&[
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
            ("AWS_LAMBDA_FUNCTION_NAME", "f"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ]);
        assert_eq!(lambda_environment_from(full), Ok(true));
        let bad = lookup(&[
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9000/.rt/xray-http"),
            ("AWS_LAMBDA_FUNCTION_NAME", "f"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ]);
        let e = lambda_environment_from(bad).expect_err("a path needs a scheme");
        assert!(e.to_string().contains("AWS_LAMBDA_RUNTIME_API"), "{e}");
    }

    fn auth_lookup(value: Option<&'static str>) -> impl Fn(&str) -> Option<String> {
        move |k| {
            (k == "XRAY_AUTH")
                .then(|| value.map(str::to_string))
                .flatten()
        }
    }

    #[test]
    fn lambda_fails_closed_without_a_mode() {
        assert!(AuthMode::from_lookup(auth_lookup(None), true).is_err());
        assert!(AuthMode::from_lookup(auth_lookup(Some("")), true).is_err());
        assert!(AuthMode::from_lookup(auth_lookup(Some("open")), true).is_err());
        assert!(AuthMode::from_lookup(auth_lookup(Some("open")), false).is_err());
        assert_eq!(
            AuthMode::from_lookup(auth_lookup(Some("IAM")), true).ok(),
            Some(AuthMode::Iam)
        );
        assert_eq!(
            AuthMode::from_lookup(auth_lookup(Some("jwt")), true).ok(),
            Some(AuthMode::Jwt)
        );
        assert_eq!(
            AuthMode::from_lookup(auth_lookup(Some("none")), true).ok(),
            Some(AuthMode::None)
        );
        assert_eq!(
            AuthMode::from_lookup(auth_lookup(None), false).ok(),
            Some(AuthMode::Local)
        );
    }
}
