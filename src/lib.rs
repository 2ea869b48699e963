//! # covid-xray
//!
//! Classifies a frontal chest X-ray as COVID-19 pneumonia or normal, with a calibrated
//! confidence. **Educational software, not a medical device**: never use it to diagnose,
//! treat or triage anyone.
//!
//! The library holds everything that can be tested without AWS Lambda:
//! - [`preprocess`]: the one preprocessing path, shared by serving and training;
//! - [`model`]: the [`Classifier`], an ONNX CNN run by tract, loaded once and shared;
//! - [`error`]: typed errors with stable codes;
//! - [`app`] and [`contract`]: the HTTP routes and their JSON, one service for Lambda and for
//!   the [`local`] server;
//! - [`source`] and [`s3`]: where S3-referenced images come from;
//! - [`trigger`]: the S3 upload trigger.

// A panic aborts a Lambda sandbox: non-test code returns errors instead.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod app;
pub mod contract;
pub mod error;
pub mod local;
pub mod model;
pub mod preprocess;
mod resize;
#[cfg(feature = "s3")]
pub mod s3;
pub mod source;
pub mod trigger;

pub use error::Error;
pub use model::{Classifier, Label, ModelInfo, Prediction, Probabilities};
pub use preprocess::InputWarning;

/// The statement every answer carries.
pub const DISCLAIMER: &str = "Educational software, not a medical device. Not for diagnosis, treatment or triage; a qualified clinician must read every X-ray.";
