//! What the decoders accept, checked from the header before any pixel is decoded: the one
//! place both decoders read their bounds from, so that `dicom.rs` and `preprocess.rs` each
//! use it and neither uses the other for it.

use crate::error::Error;

/// Bounds on what the decoder will accept. Checked from the header before decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest encoded input, in bytes.
    pub max_bytes: usize,
    /// Largest width or height, in pixels.
    pub max_side: u32,
    /// Largest width x height, in pixels.
    pub max_pixels: u64,
}

impl Default for Limits {
    /// 20 MB of input, 12,000 px a side, 50 megapixels: a 16-bit 7000x7000 film fits, and the
    /// decoder's buffer stays under about 200 MB (16-bit RGBA at 50 Mpx would be 400 MB, so
    /// the allocation cap below refuses that rather than allocate it).
    fn default() -> Self {
        Limits {
            max_bytes: 20 * 1024 * 1024,
            max_side: 12_000,
            max_pixels: 50_000_000,
        }
    }
}

impl Limits {
    /// Largest buffer the decoder may allocate.
    pub(crate) fn max_alloc(&self) -> u64 {
        // Two bytes per sample covers 16-bit gray and 8-bit gray+alpha at full size; wider
        // pixel formats must be proportionally smaller.
        self.max_pixels.saturating_mul(4)
    }
}

/// A `w` x `h` image within `limits`, and no side zero.
pub(crate) fn check_dimensions(w: u32, h: u32, limits: &Limits) -> Result<(), Error> {
    if w == 0 || h == 0 {
        return Err(Error::Corrupt(format!(
            "image has a zero dimension ({w}x{h})"
        )));
    }
    let pixels = u64::from(w) * u64::from(h);
    if w > limits.max_side || h > limits.max_side || pixels > limits.max_pixels {
        return Err(Error::TooLarge {
            what: "image dimensions",
            detail: format!(
                "{w}x{h}, limits {} px a side and {} pixels",
                limits.max_side, limits.max_pixels
            ),
        });
    }
    Ok(())
}
