//! The networks and what they compute: the [`Classifier`] (an ONNX CNN turned into a tract
//! plan once per process) and the types of its answer.

mod classifier;

pub use classifier::{
    Card, Classifier, EMBEDDED_CARD, EMBEDDED_MODEL, InputSpec, Label, ModelInfo, Prediction,
    Probabilities, Timings, sha256_hex,
};
