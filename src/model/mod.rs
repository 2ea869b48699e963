//! The networks and what they compute: the [`Classifier`] (an ONNX CNN turned into a tract
//! plan once per process), the [`lungs::LungFinder`] that crops films to their lung fields,
//! the [`pipeline::Pipeline`] that joins them, and the types of an answer.

pub mod cam;
pub mod chest;
mod classifier;
pub mod lungs;
pub mod pipeline;
mod plan;

pub use cam::Heatmap;
pub use classifier::{
    Card, Classifier, EMBEDDED_CARD, EMBEDDED_LUNGS, EMBEDDED_MODEL, InputSpec, Label, ModelInfo,
    Prediction, Probabilities, Timings, sha256_hex,
};
pub use pipeline::{Pipeline, Prepared};
