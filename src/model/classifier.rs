//! The [`Classifier`]: the ONNX CNN turned into a tract plan once, then shared by every call.
//!
//! The model file is embedded in the binary (`include_bytes!`), because SAM's Rust builder
//! deploys the `bootstrap` binary alone. `XRAY_MODEL_PATH` points at another model instead:
//! a folder holding `model.json` and the ONNX file it names (a candidate of
//! `model/candidates/`), or an ONNX file with its `model.json` beside it. A model on disk
//! never borrows the embedded card: without its own, it does not load.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tract_onnx::prelude::*;

use super::cam::{ActivationMap, CamHead, Heatmap};
use super::chest::ChestCheck;

use super::lungs::LungFinder;
use super::pipeline::{Pipeline, Prepared};
use super::plan::{Plan, runnable_plan_of};
use crate::error::Error;
use crate::imaging::preprocess::{self, INPUT_SIZE, InputWarning, Limits};

/// The embedded ONNX model.
pub static EMBEDDED_MODEL: &[u8] = include_bytes!("../../model/xray.onnx");
/// The embedded model card (machine-readable part).
pub static EMBEDDED_CARD: &str = include_str!("../../model/model.json");
/// The embedded lung finder, for models trained on the lung fields.
pub static EMBEDDED_LUNGS: &[u8] = include_bytes!("../../model/lungs.onnx");

/// How many plans this process has built. Tests use it to show that the model loads once.
static PLANS_BUILT: AtomicUsize = AtomicUsize::new(0);

/// The two classes, in the order of the model's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    /// Looks like COVID-19 pneumonia.
    Covid,
    /// Looks like a normal chest.
    Normal,
}

impl Label {
    /// `"covid"` or `"normal"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Covid => "covid",
            Label::Normal => "normal",
        }
    }
}

/// Identity of the model that answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Model name from the card.
    pub name: String,
    /// Model version from the card; `"unverified"` when the file does not match its card.
    pub version: String,
    /// SHA-256 of the ONNX bytes actually loaded, hex.
    pub sha256: String,
}

/// Probabilities of both classes; they sum to 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Probabilities {
    /// P(COVID-19).
    pub covid: f32,
    /// P(normal) = 1 - P(COVID-19).
    pub normal: f32,
}

/// Where the time of one call went, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Timings {
    /// Decode and preprocess.
    pub decode: f64,
    /// Running the network.
    pub inference: f64,
}

/// One answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// The chosen label: `covid` when P(covid) >= threshold.
    pub label: Label,
    /// Probability of the chosen label.
    pub confidence: f32,
    /// Both class probabilities.
    pub probabilities: Probabilities,
    /// The decision threshold on P(covid).
    pub threshold: f32,
    /// Which model answered.
    pub model: ModelInfo,
    /// What about the input the model was not trained for (a colour image, a tiny one, a
    /// strip): the answer means less. Left out of the JSON when there is none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<InputWarning>,
    /// Where the time went.
    #[serde(skip)]
    pub timings: Timings,
}

/// The parts of `model/model.json` that serving needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Card {
    /// Model name.
    pub name: String,
    /// Model version.
    pub version: String,
    /// SHA-256 of the ONNX file, hex.
    pub sha256: String,
    /// Decision threshold on P(covid).
    pub threshold: f32,
    /// Output order of the network.
    pub labels: Vec<String>,
    /// Input description.
    pub input: InputSpec,
}

/// The input the model expects; checked against this build's preprocessing at load time.
#[derive(Debug, Clone, Deserialize)]
pub struct InputSpec {
    /// Square side in pixels.
    pub size: u32,
    /// Preprocessing version the model was trained with.
    pub preprocess: String,
}

/// A loaded model, cheap to clone, `Send + Sync`: build it once per process and share it.
#[derive(Clone)]
pub struct Classifier {
    inner: Arc<Inner>,
}

struct Inner {
    plan: Plan,
    /// The check that refuses what is not a frontal chest X-ray.
    chest: ChestCheck,
    /// The classifier's head, when it is one that class activation mapping explains; the
    /// plan then has the feature grid as its second output.
    cam: Option<CamHead>,
    pipeline: Pipeline,
    info: ModelInfo,
    threshold: f32,
    limits: Limits,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("model", &self.inner.info)
            .field("threshold", &self.inner.threshold)
            .finish()
    }
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Classifier {
    /// The embedded model, or the file named by `XRAY_MODEL_PATH` when that is set; the
    /// lung finder from `XRAY_LUNG_MODEL_PATH` when that is set.
    pub fn from_env() -> Result<Classifier, Error> {
        let lungs = crate::config::lung_model_path()
            .map(|p| read(&p))
            .transpose()?;
        match crate::config::model_path() {
            Some(path) => Classifier::from_path(&path, lungs.as_deref()),
            None => Classifier::from_parts(
                EMBEDDED_MODEL,
                EMBEDDED_CARD,
                Some(lungs.as_deref().unwrap_or(EMBEDDED_LUNGS)),
            ),
        }
    }

    /// The model compiled into this binary.
    pub fn embedded() -> Result<Classifier, Error> {
        Classifier::from_parts(EMBEDDED_MODEL, EMBEDDED_CARD, Some(EMBEDDED_LUNGS))
    }

    /// A model on disk: a folder with `model.json` and the ONNX file its `file` names, or an
    /// ONNX file with `model.json` beside it. Its lung finder is `lungs` when given, else the
    /// `lungs.onnx` beside it, else the embedded one.
    ///
    /// A missing or unreadable card, or one that does not fit the ONNX file, is an error that
    /// names the file: a candidate served under the embedded card's threshold and
    /// preprocessing would answer plausibly and wrongly.
    pub fn from_path(path: &std::path::Path, lungs: Option<&[u8]>) -> Result<Classifier, Error> {
        let (dir, onnx_path, card) = if path.is_dir() {
            let card_path = path.join("model.json");
            let card = read_card(&card_path)?;
            let file = serde_json::from_str::<serde_json::Value>(&card)
                .ok()
                .and_then(|v| v.get("file")?.as_str().map(str::to_string))
                .unwrap_or_else(|| "xray.onnx".to_string());
            (path.to_path_buf(), path.join(file), card)
        } else {
            let dir = path.parent().map_or_else(
                || std::path::PathBuf::from("."),
                std::path::Path::to_path_buf,
            );
            let card = read_card(&dir.join("model.json"))?;
            (dir, path.to_path_buf(), card)
        };
        let bytes = read(&onnx_path)?;
        let beside = Some(dir.join("lungs.onnx"))
            .filter(|p| p.exists())
            .map(|p| read(&p))
            .transpose()?;
        let lungs = lungs.or(beside.as_deref()).unwrap_or(EMBEDDED_LUNGS);
        Classifier::from_parts(&bytes, &card, Some(lungs)).map_err(|e| match e {
            Error::Model(m) => Error::Model(format!("{}: {m}", onnx_path.display())),
            other => other,
        })
    }

    /// Builds the tract plans from ONNX bytes, a card and, for a model trained on the lung
    /// fields, the lung finder's ONNX bytes.
    pub fn from_parts(
        onnx: &[u8],
        card_json: &str,
        lungs: Option<&[u8]>,
    ) -> Result<Classifier, Error> {
        let card: Card = serde_json::from_str(card_json)
            .map_err(|e| Error::Model(format!("model card: {e}")))?;
        let size = card.input.size;
        let plain_size = || {
            if preprocess::PLAIN_INPUT_SIDES.contains(&size) {
                Ok(size)
            } else {
                Err(Error::Model(format!(
                    "the card's input size {size} is outside {:?}",
                    preprocess::PLAIN_INPUT_SIDES
                )))
            }
        };
        let finder = || match lungs {
            Some(lungs) => LungFinder::from_onnx(lungs),
            None => Err(Error::Model(
                "the model reads the lung fields, and no lung finder was given".into(),
            )),
        };
        let pipeline = match card.input.preprocess.as_str() {
            v if v == preprocess::PREPROCESS_VERSION => Pipeline::Whole,
            v if v == preprocess::LUNGS_PREPROCESS_VERSION => Pipeline::Lungs(finder()?),
            v if v == preprocess::PLAIN_PREPROCESS_VERSION => Pipeline::Plain {
                size: plain_size()?,
            },
            v if v == preprocess::PLAIN_LUNGS_PREPROCESS_VERSION => Pipeline::PlainLungs {
                finder: finder()?,
                size: plain_size()?,
            },
            v => {
                return Err(Error::Model(format!(
                    "the model expects input from '{v}'; this build makes '{}', '{}', '{}' or '{}'",
                    preprocess::PREPROCESS_VERSION,
                    preprocess::LUNGS_PREPROCESS_VERSION,
                    preprocess::PLAIN_PREPROCESS_VERSION,
                    preprocess::PLAIN_LUNGS_PREPROCESS_VERSION
                )));
            }
        };
        if pipeline.input_size() != size {
            return Err(Error::Model(format!(
                "the card names {size}x{size} input; '{}' makes {INPUT_SIZE}x{INPUT_SIZE}",
                card.input.preprocess
            )));
        }
        if card.labels != ["covid", "normal"] {
            return Err(Error::Model(format!("unexpected labels {:?}", card.labels)));
        }
        let sha256 = sha256_hex(onnx);
        let version = if sha256 == card.sha256 {
            card.version.clone()
        } else {
            "unverified".to_string()
        };
        // Parsed once: the heatmap head is read from the same model the plan is built from.
        let proto = tract_onnx::onnx()
            .proto_model_for_read(&mut std::io::Cursor::new(onnx))
            .map_err(model_err)?;
        check_onnx_fits_card(&proto, &card)?;
        let cam = CamHead::of(&proto);
        let plan = runnable_plan_of(&proto, size, cam.as_ref().map(|c| c.features.as_str()))
            .map_err(model_err)?;
        PLANS_BUILT.fetch_add(1, Ordering::SeqCst);
        let chest = ChestCheck::embedded()?;
        Ok(Classifier {
            inner: Arc::new(Inner {
                plan,
                chest,
                cam,
                pipeline,
                info: ModelInfo {
                    name: card.name,
                    version,
                    sha256,
                },
                threshold: card.threshold,
                limits: Limits::default(),
            }),
        })
    }

    /// Replaces the decoder limits (the default is [`Limits::default`]).
    pub fn with_limits(self, limits: Limits) -> Classifier {
        let inner = &self.inner;
        Classifier {
            inner: Arc::new(Inner {
                plan: inner.plan.clone(),
                chest: inner.chest.clone(),
                cam: inner.cam.clone(),
                pipeline: inner.pipeline.clone(),
                info: inner.info.clone(),
                threshold: inner.threshold,
                limits,
            }),
        }
    }

    /// Which model this is.
    pub fn info(&self) -> &ModelInfo {
        &self.inner.info
    }

    /// The decision threshold on P(covid).
    pub fn threshold(&self) -> f32 {
        self.inner.threshold
    }

    /// The decoder limits in force.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// How many plans this process has built so far, all classifiers together.
    pub fn plans_built() -> usize {
        PLANS_BUILT.load(Ordering::SeqCst)
    }

    /// The preprocessing this model was trained with.
    pub fn pipeline(&self) -> &Pipeline {
        &self.inner.pipeline
    }

    /// Decodes and preprocesses one encoded image: what [`Classifier::classify`] reads.
    ///
    /// A large JPEG is decoded at a reduced DCT scale when the region the pipeline reads
    /// keeps at least [`Pipeline::decode_side`] pixels a side ([`Pipeline::read`]).
    pub fn prepare(&self, bytes: &[u8]) -> Result<Prepared, Error> {
        let (mut prepared, _, warnings) = self.inner.pipeline.read(bytes, &self.inner.limits)?;
        prepared.warnings.splice(0..0, warnings);
        Ok(prepared)
    }

    /// [`Classifier::prepare`] with every pixel of the film decoded, whatever its size: what
    /// the reduced-scale decode is measured against (`xray decode-check`).
    pub fn prepare_full(&self, bytes: &[u8]) -> Result<Prepared, Error> {
        let (gray, warnings) = preprocess::decode_gray_noted(bytes, &self.inner.limits)?;
        let mut prepared = self.inner.pipeline.prepare(&gray)?;
        prepared.warnings.splice(0..0, warnings);
        Ok(prepared)
    }

    /// [`Classifier::prepare`], then the chest check: [`Error::NotAChestXray`] for what is
    /// not a frontal chest X-ray.
    pub fn prepare_checked(&self, bytes: &[u8]) -> Result<Prepared, Error> {
        let prepared = self.prepare(bytes)?;
        // Every path prepares the whole film equalised at the check's size.
        self.inner.chest.check(&prepared.whole)?;
        Ok(prepared)
    }

    /// The chest check in force.
    pub fn chest_check(&self) -> &ChestCheck {
        &self.inner.chest
    }

    /// Decodes, preprocesses, checks and classifies one encoded image (JPEG, PNG or DICOM).
    pub fn classify(&self, bytes: &[u8]) -> Result<Prediction, Error> {
        let start = Instant::now();
        let prepared = self.prepare_checked(bytes)?;
        let decode = start.elapsed().as_secs_f64() * 1e3;
        let mut prediction = self.classify_prepared(&prepared.input)?;
        prediction.timings.decode = decode;
        prediction.warnings = prepared.warnings;
        Ok(prediction)
    }

    /// Decodes, preprocesses and classifies one encoded image, and draws where the model
    /// looked over the prepared image ([`Heatmap`]).
    pub fn explain(&self, bytes: &[u8]) -> Result<(Prediction, Heatmap), Error> {
        let start = Instant::now();
        let prepared = self.prepare_checked(bytes)?;
        let decode = start.elapsed().as_secs_f64() * 1e3;
        let (mut prediction, map) = self.classify_mapped(&prepared.input)?;
        prediction.timings.decode = decode;
        prediction.warnings = prepared.warnings;
        let map = map.ok_or_else(|| {
            Error::Model(
                "this model's network has no head that class activation mapping explains".into(),
            )
        })?;
        let heatmap = Heatmap::new(&map, &prepared.input, prediction.label)?;
        Ok((prediction, heatmap))
    }

    /// Whether [`Classifier::explain`] can draw this model's heatmaps.
    pub fn explains(&self) -> bool {
        self.inner.cam.is_some()
    }

    /// Classifies an image that has already been through the model's [`Pipeline`] (the chest
    /// check is the caller's: [`Classifier::prepare_checked`]).
    pub fn classify_prepared(&self, prepared: &image::GrayImage) -> Result<Prediction, Error> {
        self.classify_mapped(prepared).map(|(p, _)| p)
    }

    /// [`Classifier::classify_prepared`], and the class activation map when the model has one.
    pub fn classify_mapped(
        &self,
        prepared: &image::GrayImage,
    ) -> Result<(Prediction, Option<ActivationMap>), Error> {
        let start = Instant::now();
        let (p_covid, features) = self.run(prepared)?;
        let inference = start.elapsed().as_secs_f64() * 1e3;
        let map = match (&self.inner.cam, features) {
            (Some(head), Some(f)) => Some(ActivationMap::from_features(&f, head)?),
            _ => None,
        };
        let threshold = self.inner.threshold;
        let label = if p_covid >= threshold {
            Label::Covid
        } else {
            Label::Normal
        };
        let probabilities = Probabilities {
            covid: p_covid,
            normal: 1.0 - p_covid,
        };
        let prediction = Prediction {
            label,
            confidence: match label {
                Label::Covid => probabilities.covid,
                Label::Normal => probabilities.normal,
            },
            probabilities,
            threshold,
            model: self.inner.info.clone(),
            warnings: Vec::new(),
            timings: Timings {
                decode: 0.0,
                inference,
            },
        };
        Ok((prediction, map))
    }

    /// P(covid), and the feature grid when the plan outputs it.
    fn run(&self, prepared: &image::GrayImage) -> Result<(f32, Option<TValue>), Error> {
        let size = self.inner.pipeline.input_size();
        let side = size as usize;
        if prepared.dimensions() != (size, size) {
            return Err(Error::Model(format!(
                "prepared image is {:?}, expected {side}x{side}",
                prepared.dimensions()
            )));
        }
        let data = preprocess::to_tensor_data(prepared);
        let input = Tensor::from_shape(&[1, 1, side, side], &data).map_err(model_err)?;
        let mut outputs = self
            .inner
            .plan
            .run(tvec!(input.into()))
            .map_err(model_err)?;
        let features = (outputs.len() > 1).then(|| outputs.remove(1));
        let probs = outputs
            .first()
            .ok_or_else(|| Error::Model("the model returned no output".into()))?
            .to_plain_array_view::<f32>()
            .map_err(model_err)?;
        let p = probs
            .iter()
            .next()
            .copied()
            .ok_or_else(|| Error::Model("the model returned an empty output".into()))?;
        if !p.is_finite() {
            return Err(Error::Model(format!("the model returned {p}")));
        }
        Ok((p.clamp(0.0, 1.0), features))
    }
}

/// The card of a model on disk, or an error naming the file.
fn read_card(path: &std::path::Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| {
        Error::Model(format!(
            "cannot read the model card {}: {e} (a model on disk needs its own model.json)",
            path.display()
        ))
    })
}

/// The ONNX file's input is `[1, 1, size, size]` for the card's size, and the preprocessing
/// and size its metadata names (training writes `preprocess` and `input_size`) are the
/// card's. Files without that metadata (models before 5.0.0) are checked by shape alone.
fn check_onnx_fits_card(proto: &tract_onnx::pb::ModelProto, card: &Card) -> Result<(), Error> {
    use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
    use tract_onnx::pb::type_proto::Value as Type;
    let size = card.input.size;
    let dims: Option<Vec<i64>> = proto
        .graph
        .as_ref()
        .and_then(|g| g.input.first())
        .and_then(|i| i.r#type.as_ref()?.value.as_ref())
        .and_then(|Type::TensorType(t)| t.shape.as_ref())
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(Dim::DimValue(v)) => v,
                    _ => -1,
                })
                .collect()
        });
    let expected = [1, 1, i64::from(size), i64::from(size)];
    if let Some(dims) = dims.filter(|d| d.iter().all(|&v| v > 0))
        && dims != expected
    {
        return Err(Error::Model(format!(
            "the network reads {dims:?}; its card names {size}x{size} input"
        )));
    }
    for entry in &proto.metadata_props {
        let stated = match entry.key.as_str() {
            "preprocess" => card.input.preprocess.clone(),
            "input_size" => size.to_string(),
            _ => continue,
        };
        if entry.value != stated {
            return Err(Error::Model(format!(
                "the network was trained on {} '{}'; its card says '{stated}'",
                entry.key, entry.value
            )));
        }
    }
    Ok(())
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::Model(format!("cannot read {}: {e}", path.display())))
}

fn model_err(e: impl std::fmt::Display) -> Error {
    Error::Model(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifier_is_send_and_sync() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Classifier>();
    }

    #[test]
    fn embedded_model_matches_its_card() {
        let card: Card = serde_json::from_str(EMBEDDED_CARD).expect("card parses");
        assert_eq!(sha256_hex(EMBEDDED_MODEL), card.sha256);
        assert!(EMBEDDED_MODEL.len() <= 10 * 1024 * 1024);
    }

    #[test]
    fn mismatched_bytes_are_unverified() {
        let c = Classifier::embedded().expect("loads");
        assert_ne!(c.info().version, "unverified");
        assert_eq!(c.info().sha256, sha256_hex(EMBEDDED_MODEL));
    }
}
