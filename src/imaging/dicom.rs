//! DICOM in: X-rays as they leave the modality and the PACS, read as a viewer shows them.
//!
//! A file is DICOM when it has the `DICM` marker after its 128-byte preamble. Its pixels
//! become the 8-bit gray film a viewer would show, then go through the same preprocessing as
//! every JPEG and PNG:
//! 1. the transfer syntax must be one the pure-Rust codecs read (implicit and explicit VR
//!    little endian, deflated, RLE lossless, JPEG baseline, extended and lossless); any other
//!    is refused, naming its UID;
//! 2. the modality must be a radiograph: CR, DX or DR, or a secondary capture (SC, OT) whose
//!    body part is the chest; CT, MR, US, NM and the rest are refused;
//! 3. one frame only, and Rows x Columns within the same limits as any image, checked before
//!    the pixel data is decoded;
//! 4. the Modality LUT (rescale slope and intercept), then the first window (centre, width
//!    and VOI LUT function, as the standard defines them), or the stored range when the file
//!    has no window; MONOCHROME1 is inverted so that bone is always bright.
//!
//! **Patient data never leaves this module.** Only the technical attributes (modality,
//! photometric interpretation, bits stored, transfer syntax) may appear in an error message,
//! and the parser's own errors, which could quote a value, are replaced by fixed text.

use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::file::ReadPreamble;
use dicom_object::{FileMetaTable, OpenFileOptions};
use dicom_pixeldata::{
    ConvertOptions, PhotometricInterpretation, PixelDecoder, VoiLutFunction, VoiLutOption,
    WindowLevelTransform,
};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use image::GrayImage;

use super::preprocess::Limits;
use crate::error::Error;

/// Bytes before the `DICM` marker.
pub const PREAMBLE: usize = 128;

/// Whether `bytes` are a DICOM file (Part 10: a 128-byte preamble, then `DICM`).
pub fn is_dicom(bytes: &[u8]) -> bool {
    bytes.get(PREAMBLE..PREAMBLE + 4) == Some(b"DICM".as_slice())
}

/// Modalities whose images are projection radiographs.
const RADIOGRAPHS: [&str; 3] = ["CR", "DX", "DR"];

/// Decodes a DICOM file to the 8-bit gray film a viewer shows.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<GrayImage, Error> {
    let body = bytes.get(PREAMBLE..).unwrap_or_default();
    let meta = FileMetaTable::from_reader(body)
        .map_err(|_| Error::Corrupt("the DICOM file meta information could not be read".into()))?;
    let uid = meta.transfer_syntax().to_string();
    let supported = TransferSyntaxRegistry
        .get(&uid)
        .is_some_and(|ts| ts.can_decode_all());
    if !supported {
        return Err(Error::UnsupportedTransferSyntax(printable(&uid)));
    }
    let obj = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Never)
        .from_reader(body)
        .map_err(|_| Error::Corrupt("the DICOM data set could not be read".into()))?;
    let text = |tag| {
        obj.element_opt(tag)
            .ok()
            .flatten()
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim().to_ascii_uppercase())
    };
    let number = |tag| {
        obj.element_opt(tag)
            .ok()
            .flatten()
            .and_then(|e| e.to_int::<i64>().ok())
    };

    let modality = text(tags::MODALITY).unwrap_or_default();
    let chest = text(tags::BODY_PART_EXAMINED).is_some_and(|b| b.contains("CHEST"));
    let radiograph = RADIOGRAPHS.contains(&modality.as_str())
        || (matches!(modality.as_str(), "SC" | "OT") && chest);
    if !radiograph {
        return Err(Error::UnsupportedModality(if modality.is_empty() {
            "none given".into()
        } else {
            printable(&modality)
        }));
    }
    let frames = number(tags::NUMBER_OF_FRAMES).unwrap_or(1);
    if frames > 1 {
        return Err(Error::MultiFrame(frames));
    }
    let rows = number(tags::ROWS).unwrap_or(0);
    let cols = number(tags::COLUMNS).unwrap_or(0);
    let side = |v: i64| u32::try_from(v).unwrap_or(0);
    super::preprocess::check_dimensions(side(cols), side(rows), limits)?;
    let samples = number(tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    if samples != 1 && samples != 3 {
        return Err(Error::Corrupt(format!(
            "{samples} samples per pixel: a radiograph has 1 (or 3 for a colour capture)"
        )));
    }
    let allocated = number(tags::BITS_ALLOCATED).unwrap_or(0);
    if !matches!(allocated, 8 | 16) {
        return Err(Error::Corrupt(format!(
            "{allocated} bits allocated: only 8 and 16 are read"
        )));
    }
    if obj.element_opt(tags::PIXEL_DATA).ok().flatten().is_none() {
        return Err(Error::Corrupt("the DICOM file has no pixel data".into()));
    }

    let decoded = obj
        .decode_pixel_data()
        .map_err(|_| Error::Corrupt("the DICOM pixel data could not be decoded".into()))?;
    let (w, h) = (decoded.columns(), decoded.rows());
    let pixels = (w as usize) * (h as usize);
    // Modality LUT only; the window is applied below, to 8 bits.
    let values: Vec<f64> = decoded
        .to_vec_frame_with_options(
            0,
            &ConvertOptions::new().with_voi_lut(VoiLutOption::Identity),
        )
        .map_err(|_| Error::Corrupt("the DICOM pixel values could not be read".into()))?;
    let gray: Vec<u8> = if samples == 3 {
        let rgb = to_8bit(&values, None);
        rgb.chunks_exact(3)
            .map(|p| {
                let y = 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]);
                y.round().clamp(0.0, 255.0) as u8
            })
            .collect()
    } else {
        let window = decoded
            .window()
            .ok()
            .flatten()
            .and_then(|w| w.first().copied())
            .filter(|w| w.width.is_finite() && w.center.is_finite() && w.width >= 1.0);
        let function = decoded
            .voi_lut_function()
            .ok()
            .flatten()
            .and_then(|f| f.first().copied())
            .unwrap_or(VoiLutFunction::Linear);
        let mut g = to_8bit(
            &values,
            window.map(|w| WindowLevelTransform::new(function, w)),
        );
        if matches!(
            decoded.photometric_interpretation(),
            PhotometricInterpretation::Monochrome1
        ) {
            g.iter_mut().for_each(|v| *v = 255 - *v);
        }
        g
    };
    if gray.len() != pixels {
        return Err(Error::Corrupt(format!(
            "the pixel data holds {} values for {w}x{h}",
            gray.len()
        )));
    }
    GrayImage::from_raw(w, h, gray)
        .ok_or_else(|| Error::Corrupt("the DICOM pixel data does not fill the image".into()))
}

/// Values to 0-255: through the window when there is one, else their own range.
fn to_8bit(values: &[f64], window: Option<WindowLevelTransform>) -> Vec<u8> {
    match window {
        Some(t) => values
            .iter()
            .map(|&v| t.apply(v, 255.0).round().clamp(0.0, 255.0) as u8)
            .collect(),
        None => {
            let (lo, hi) = values
                .iter()
                .filter(|v| v.is_finite())
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                });
            let span = if hi > lo { hi - lo } else { 1.0 };
            values
                .iter()
                .map(|&v| {
                    let v = if v.is_finite() { v } else { lo };
                    ((v - lo) / span * 255.0).round().clamp(0.0, 255.0) as u8
                })
                .collect()
        }
    }
}

/// A technical code as it may be shown: printable ASCII, at most 64 characters.
fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_decides() {
        let mut bytes = vec![0u8; 200];
        assert!(!is_dicom(&bytes));
        bytes[128..132].copy_from_slice(b"DICM");
        assert!(is_dicom(&bytes));
        assert!(!is_dicom(&bytes[..131]));
    }

    #[test]
    fn the_stored_range_or_the_window_gives_eight_bits() {
        assert_eq!(to_8bit(&[100.0, 612.5, 1125.0], None), vec![0, 128, 255]);
        let window = WindowLevelTransform::new(
            VoiLutFunction::Linear,
            dicom_pixeldata::WindowLevel {
                width: 101.0,
                center: 50.5,
            },
        );
        let g = to_8bit(&[-1000.0, 0.0, 50.0, 100.0, 4000.0], Some(window));
        assert_eq!((g[0], g[1], g[4]), (0, 0, 255));
        assert!((126..=129).contains(&g[2]), "{g:?}");
    }

    #[test]
    fn codes_are_printable_and_short() {
        assert_eq!(
            printable("1.2.840.10008.1.2.4.90\0"),
            "1.2.840.10008.1.2.4.90"
        );
        assert_eq!(printable(&"9".repeat(100)).len(), 64);
    }
}
