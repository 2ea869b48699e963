//! Errors as types. Each variant has a stable machine-readable [`Error::code`] that the CLI and
//! the HTTP API put in their JSON, so callers can branch on it without parsing messages.

/// Everything that can go wrong between input bytes and a prediction.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Zero bytes were given.
    #[error("the input is empty")]
    Empty,
    /// The bytes start with no image signature we recognise.
    #[error("the input is not an image (no JPEG, PNG or DICOM signature)")]
    NotAnImage,
    /// A DICOM file in a transfer syntax the pure-Rust codecs do not read (JPEG 2000,
    /// JPEG-LS, ...); the UID names it.
    #[error(
        "DICOM transfer syntax {0} is not supported: send uncompressed (little endian), RLE or JPEG (baseline or lossless) DICOM"
    )]
    UnsupportedTransferSyntax(String),
    /// A DICOM file of a modality that makes no projection radiograph (CT, MR, US, ...).
    #[error(
        "DICOM modality {0} is not a chest radiograph: CR, DX, DR, or SC/OT of the chest are read"
    )]
    UnsupportedModality(String),
    /// A multi-frame DICOM file: a series, not one film.
    #[error("a DICOM file of {0} frames is a series, not one film: send one frame")]
    MultiFrame(i64),
    /// The chest check found no frontal chest X-ray: a CT slice, a lateral film, a photo, a
    /// chart. The classifier's two answers would mean nothing for it.
    #[error(
        "the image does not look like a frontal (PA or AP) chest X-ray, so it is not classified: CT slices, lateral films, photographs and drawings are refused"
    )]
    NotAChestXray,
    /// A recognised image format that we do not read (GIF, BMP, TIFF, WebP, ...).
    #[error("unsupported image format '{0}': send JPEG or PNG")]
    UnsupportedFormat(String),
    /// Input or dimensions over the configured limits.
    #[error("{what} too large: {detail}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Sizes and limits.
        detail: String,
    },
    /// The header was readable but the data is not: truncated, corrupt, inconsistent.
    #[error("the image could not be decoded: {0}")]
    Corrupt(String),
    /// The input could not be read (a file that is missing or unreadable).
    #[error("the input could not be read: {0}")]
    Unreadable(String),
    /// The model file could not be loaded or run. A deployment fault, not a caller fault.
    #[error("model error: {0}")]
    Model(String),
}

impl Error {
    /// A stable snake_case code for JSON error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Empty => "empty_input",
            Error::NotAnImage => "not_an_image",
            Error::UnsupportedTransferSyntax(_) => "unsupported_transfer_syntax",
            Error::UnsupportedModality(_) => "unsupported_modality",
            Error::MultiFrame(_) => "multi_frame",
            Error::NotAChestXray => "not_a_chest_xray",
            Error::UnsupportedFormat(_) => "unsupported_format",
            Error::TooLarge { .. } => "too_large",
            Error::Corrupt(_) => "corrupt_image",
            Error::Unreadable(_) => "unreadable",
            Error::Model(_) => "model_error",
        }
    }

    /// Maps an `image` crate error onto ours.
    pub(crate) fn from_image(e: image::ImageError) -> Error {
        use image::ImageError as E;
        match e {
            E::Limits(l) => Error::TooLarge {
                what: "image",
                detail: l.to_string(),
            },
            E::Unsupported(u) => Error::UnsupportedFormat(u.to_string()),
            E::Decoding(d) => Error::Corrupt(d.to_string()),
            E::Parameter(p) => Error::Corrupt(p.to_string()),
            E::IoError(io) => Error::Corrupt(io.to_string()),
            E::Encoding(en) => Error::Corrupt(en.to_string()),
        }
    }
}

/// A status, a stable code and a message: how a layer below the contract says what its
/// error answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}
