//! # covid-xray
//!
//! Classifies a frontal chest X-ray as COVID-19 pneumonia or normal, with a calibrated
//! confidence. **Educational software, not a medical device**: never use it to diagnose,
//! treat or triage anyone.
//!
//! The library holds everything that can be tested without AWS Lambda; the binaries in
//! `src/bin/` are thin entry points. By concern:
//! - [`error`]: typed errors with stable codes;
//! - [`config`]: every setting of every binary, read from the environment in one place;
//! - [`metrics`]: CloudWatch Embedded Metric Format lines of what the service answers;
//! - [`imaging`]: decoding and the one preprocessing path, shared by serving and training;
//! - [`model`]: the [`Classifier`], an ONNX CNN run by tract, loaded once and shared;
//! - [`s3`]: the object store that S3-referenced images come from, and the upload trigger;
//! - [`contract`]: the JSON of every interface, the [`contract::Answer`] to one X-ray above all;
//! - [`api`]: the HTTP routes, one service for Lambda and for the local server.
//!
//! Each file uses only those before it in this order: `error`, `config`, `metrics`, `imaging`, `model`,
//! `s3::store` and `s3::client`, `contract`, then `s3::trigger` and `api`, which both write
//! the contract's types and never use each other.

// A panic aborts a Lambda sandbox: non-test code returns errors instead.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod api;
pub mod config;
pub mod contract;
pub mod error;
pub mod imaging;
pub mod metrics;
pub mod model;
pub mod s3;

pub use error::Error;
pub use imaging::InputWarning;
pub use model::{Classifier, Label, ModelInfo, Prediction, Probabilities};

/// The statement every answer carries.
pub const DISCLAIMER: &str = "Educational software, not a medical device. Not for diagnosis, treatment or triage; a qualified clinician must read every X-ray.";
