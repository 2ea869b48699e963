//! Image bytes to the model's input: decoders (JPEG and PNG through `image`, DICOM through
//! dicom-rs), the one preprocessing path shared by serving and training, and its resize.

pub mod dicom;
pub mod jpeg;
pub mod limits;
pub mod preprocess;
mod resize;

pub use limits::Limits;
pub use preprocess::InputWarning;
