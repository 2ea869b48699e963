//! What the service answers, as CloudWatch metrics: Embedded Metric Format (EMF) lines.
//!
//! Each line is a JSON object of its own on stdout, never nested inside a log record, so that
//! CloudWatch Logs turns it into metrics without an agent or an API call: predictions by
//! label, refusals by error code, and the decode, inference and total milliseconds, each with
//! the model version as a dimension. A line carries no image, key or patient data.
//!
//! Lambda's log-level filtering (the template's `LogLevel`) drops JSON lines whose `level` is
//! below the configured one, and reads a line without `level` as INFO: with `LogLevel: WARN`
//! a plain EMF line would vanish. So each line states the level Lambda is filtering at
//! (`AWS_LAMBDA_LOG_LEVEL`), which always passes.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// The CloudWatch namespace of the service's metrics.
pub const NAMESPACE: &str = "CovidXray";

/// Where metric lines go.
#[derive(Clone, Default)]
pub enum Metrics {
    /// Nowhere (the local server and the CLI, unless `XRAY_METRICS=emf`).
    #[default]
    Off,
    /// One line each on stdout, at the level Lambda filters at.
    Stdout {
        /// The `level` each line states.
        level: &'static str,
    },
    /// Kept in memory with the `level` they would state, for tests.
    Memory(Arc<Mutex<Vec<String>>>, &'static str),
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Metrics::Off => "Metrics::Off",
            Metrics::Stdout { .. } => "Metrics::Stdout",
            Metrics::Memory(..) => "Metrics::Memory",
        })
    }
}

/// The levels Lambda's log-level filtering knows, lowest first.
pub const LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/// The level a line must state to pass Lambda's filter at `configured` (its
/// `AWS_LAMBDA_LOG_LEVEL`): that level itself; INFO when unset or unknown.
pub fn level_for(configured: Option<&str>) -> &'static str {
    configured
        .map(|c| c.trim().to_ascii_uppercase())
        .and_then(|c| LEVELS.iter().copied().find(|l| *l == c))
        .unwrap_or("INFO")
}

/// Whether Lambda keeps a JSON log line under `ApplicationLogLevel` `configured`: a missing or
/// unknown `level` counts as INFO (the filter as Lambda documents it).
pub fn lambda_keeps(line: &str, configured: &str) -> bool {
    let rank = |l: &str| LEVELS.iter().position(|x| x.eq_ignore_ascii_case(l));
    let stated = serde_json::from_str::<Value>(line)
        .ok()
        .and_then(|v| v.get("level")?.as_str().and_then(rank))
        .unwrap_or(2);
    rank(configured).is_none_or(|c| stated >= c)
}

impl Metrics {
    /// `XRAY_METRICS` (`emf` or `off`); by default EMF on Lambda and off elsewhere.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>, on_lambda: bool) -> Metrics {
        let emf = match get("XRAY_METRICS").map(|v| v.trim().to_ascii_lowercase()) {
            Some(v) if v == "emf" => true,
            Some(v) if v == "off" => false,
            _ => on_lambda,
        };
        if emf {
            Metrics::Stdout {
                level: level_for(get("AWS_LAMBDA_LOG_LEVEL").as_deref()),
            }
        } else {
            Metrics::Off
        }
    }

    /// A sink that keeps its lines, and the lines.
    pub fn memory() -> (Metrics, Arc<Mutex<Vec<String>>>) {
        Metrics::memory_at("INFO")
    }

    /// [`Metrics::memory`] as the process would write under `AWS_LAMBDA_LOG_LEVEL=configured`.
    pub fn memory_at(configured: &str) -> (Metrics, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        (
            Metrics::Memory(lines.clone(), level_for(Some(configured))),
            lines,
        )
    }

    /// One prediction: its label, and where its time went.
    pub fn prediction(&self, function: &str, model_version: &str, label: &str, ms: Timing) {
        self.emit(
            function,
            model_version,
            ("Label", label),
            &[
                ("Predictions", "Count", json!(1)),
                ("DecodeMs", "Milliseconds", json!(round(ms.decode))),
                ("InferenceMs", "Milliseconds", json!(round(ms.inference))),
                ("TotalMs", "Milliseconds", json!(round(ms.total))),
            ],
        );
    }

    /// One refusal, by the stable error code its answer carries.
    pub fn refusal(&self, function: &str, model_version: &str, code: &str) {
        self.emit(
            function,
            model_version,
            ("Code", code),
            &[("Refusals", "Count", json!(1))],
        );
    }

    /// One EMF line: `metrics` (name, unit, value) by `Function` and `ModelVersion`, and by
    /// those and the one extra dimension `(name, value)` as well.
    fn emit(
        &self,
        function: &str,
        model_version: &str,
        (dimension, value): (&str, &str),
        metrics: &[(&str, &str, Value)],
    ) {
        if matches!(self, Metrics::Off) {
            return;
        }
        let mut line = json!({
            "_aws": {
                "Timestamp": now_ms(),
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Function", "ModelVersion", dimension], ["Function", "ModelVersion"]],
                    "Metrics": metrics
                        .iter()
                        .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
                        .collect::<Vec<_>>(),
                }],
            },
            "Function": function,
            "ModelVersion": model_version,
        });
        line[dimension] = value.into();
        for (name, _, v) in metrics {
            line[*name] = v.clone();
        }
        self.write(line);
    }

    fn write(&self, mut line: Value) {
        match self {
            Metrics::Off => {}
            Metrics::Stdout { level } => {
                line["level"] = (*level).into();
                println!("{line}");
            }
            Metrics::Memory(lines, level) => {
                line["level"] = (*level).into();
                if let Ok(mut l) = lines.lock() {
                    l.push(line.to_string());
                }
            }
        }
    }
}

static PROCESS: OnceLock<Metrics> = OnceLock::new();

/// Sets the sink of this process (the binaries call it once at start-up, before serving);
/// later calls change nothing.
pub fn install(metrics: Metrics) {
    let _ = PROCESS.set(metrics);
}

/// The sink [`install`] set, or [`Metrics::Off`].
pub fn process() -> &'static Metrics {
    PROCESS.get_or_init(Metrics::default)
}

/// Milliseconds of one prediction.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    /// Decoding and preprocessing.
    pub decode: f64,
    /// The network.
    pub inference: f64,
    /// The whole request or object.
    pub total: f64,
}

fn round(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_pass_every_level_lambda_filters_at() {
        for configured in LEVELS {
            let level = level_for(Some(configured));
            let line = json!({"level": level, "Predictions": 1}).to_string();
            assert!(lambda_keeps(&line, configured), "{configured}");
        }
        // Without a level Lambda reads INFO: dropped at WARN, which is why lines state one.
        assert!(!lambda_keeps(r#"{"Predictions": 1}"#, "WARN"));
        assert_eq!(level_for(None), "INFO");
        assert_eq!(level_for(Some("warn")), "WARN");
    }
}
