//! The check before the classifier: is this a frontal chest X-ray at all?
//!
//! The classifier knows two answers, COVID-19 and normal, and gives one of them to anything:
//! a CT slice, a lateral film, a chart. The [`ChestCheck`] is a small CNN
//! (`training/chest_check.py`, 3 MMAC) that reads the same prepared whole film (trimmed,
//! 192x192, equalised) and gives P(frontal chest X-ray); below its card's threshold the answer
//! is [`Error::NotAChestXray`] (`not_a_chest_xray`, HTTP 422), never a label. It is embedded
//! like the classifier and built into a tract plan once per process.

use std::sync::Arc;

use image::GrayImage;
use serde::Deserialize;
use tract_onnx::prelude::*;

use crate::error::Error;
use crate::imaging::preprocess::{self, INPUT_SIZE, PREPROCESS_VERSION};

/// The embedded check.
pub static EMBEDDED_CHEST: &[u8] = include_bytes!("../../model/chest.onnx");
/// Its card: name, version, sha256, threshold, the preprocessing it reads, its figures.
pub static EMBEDDED_CHEST_CARD: &str = include_str!("../../model/chest.json");

/// The parts of `model/chest.json` that serving needs.
#[derive(Debug, Clone, Deserialize)]
struct ChestCard {
    name: String,
    version: String,
    sha256: String,
    threshold: f32,
    input: super::InputSpec,
}

/// The check, cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct ChestCheck {
    plan: Arc<TypedSimplePlan>,
    threshold: f32,
    /// `name version`, for errors and logs.
    pub id: String,
}

impl std::fmt::Debug for ChestCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChestCheck")
            .field("id", &self.id)
            .field("threshold", &self.threshold)
            .finish()
    }
}

impl ChestCheck {
    /// The check compiled into this binary.
    pub fn embedded() -> Result<ChestCheck, Error> {
        ChestCheck::from_parts(EMBEDDED_CHEST, EMBEDDED_CHEST_CARD)
    }

    /// A check from its ONNX bytes and card; the card must describe these bytes and the
    /// whole-film preprocessing this build makes.
    pub fn from_parts(onnx: &[u8], card_json: &str) -> Result<ChestCheck, Error> {
        let card: ChestCard = serde_json::from_str(card_json)
            .map_err(|e| Error::Model(format!("chest check card: {e}")))?;
        if super::sha256_hex(onnx) != card.sha256 {
            return Err(Error::Model(
                "the chest check's ONNX file does not match its card".into(),
            ));
        }
        if card.input.preprocess != PREPROCESS_VERSION || card.input.size != INPUT_SIZE {
            return Err(Error::Model(format!(
                "the chest check expects '{}' at {} px; this build makes '{PREPROCESS_VERSION}' at {INPUT_SIZE} px",
                card.input.preprocess, card.input.size
            )));
        }
        let plan = super::plan::runnable_plan(onnx, None)
            .map_err(|e| Error::Model(format!("chest check: {e}")))?;
        Ok(ChestCheck {
            plan,
            threshold: card.threshold,
            id: format!("{} {}", card.name, card.version),
        })
    }

    /// P(frontal chest X-ray) of a prepared whole film (trimmed, resized, equalised).
    pub fn score(&self, whole: &GrayImage) -> Result<f32, Error> {
        let side = INPUT_SIZE as usize;
        let data = preprocess::to_tensor_data(whole);
        let input = Tensor::from_shape(&[1, 1, side, side], &data)
            .map_err(|e| Error::Model(e.to_string()))?;
        let out = self
            .plan
            .run(tvec!(input.into()))
            .map_err(|e| Error::Model(e.to_string()))?;
        let p = out
            .first()
            .and_then(|t| t.to_plain_array_view::<f32>().ok()?.iter().next().copied())
            .ok_or_else(|| Error::Model("the chest check returned no output".into()))?;
        if !p.is_finite() {
            return Err(Error::Model(format!("the chest check returned {p}")));
        }
        Ok(p)
    }

    /// `Ok` for a frontal chest X-ray, [`Error::NotAChestXray`] for anything else.
    pub fn check(&self, whole: &GrayImage) -> Result<f32, Error> {
        let p = self.score(whole)?;
        if p < self.threshold {
            return Err(Error::NotAChestXray);
        }
        Ok(p)
    }

    /// Below this score an input is refused.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }
}
