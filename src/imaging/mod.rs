//! Image bytes to the model's input: decoders, the one preprocessing path shared by serving
//! and training, and the resize it uses.

pub mod preprocess;
mod resize;

pub use preprocess::{InputWarning, Limits};
