//! DICOM in: X-rays as they leave the modality and the PACS, read as a viewer shows them.
//!
//! A file is DICOM when it has the `DICM` marker after its 128-byte preamble. Its pixels
//! become the 8-bit gray film a viewer would show, then go through the same preprocessing as
//! every JPEG and PNG:
//! 1. the transfer syntax must be one the pure-Rust codecs read (implicit and explicit VR
//!    little endian, RLE lossless, JPEG baseline, extended and lossless); any other is
//!    refused, naming its UID;
//! 2. the modality must be a radiograph: CR, DX or DR, or a secondary capture (SC, OT) whose
//!    body part is the chest; CT, MR, US, NM and the rest are refused;
//! 3. one frame only, and Rows x Columns within the same limits as any image, checked before
//!    the pixel data is decoded;
//! 4. the Modality LUT (rescale slope and intercept), then the first window (centre, width
//!    and VOI LUT function, as the standard defines them), or the stored range when the file
//!    has no window; MONOCHROME1 is inverted so that bone is always bright.
//!
//! **Every length is checked before the parser sees it.** A DICOM element declares its own
//! length, and a parser that trusts it allocates that much before reading: a 6 MB body that
//! claims a 4 GB element would end the process. [`check_lengths`] walks the file's element
//! headers first (the file meta group, the data set, sequences, items and encapsulated
//! fragments) and refuses any that claims more bytes than the file holds. Deflated and
//! big-endian data sets, which it cannot walk, are refused as unsupported.
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

use super::limits::{Limits, check_dimensions};
use crate::error::Error;

/// Bytes before the `DICM` marker.
pub const PREAMBLE: usize = 128;

/// Whether `bytes` are a DICOM file (Part 10: a 128-byte preamble, then `DICM`).
pub fn is_dicom(bytes: &[u8]) -> bool {
    bytes.get(PREAMBLE..PREAMBLE + 4) == Some(b"DICM".as_slice())
}

/// Implicit VR little endian, the one transfer syntax whose data set has no VRs.
const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";

/// Transfer syntaxes whose data sets [`check_lengths`] cannot walk: deflated explicit VR
/// little endian (compressed), explicit VR big endian (retired).
const NOT_WALKED: [&str; 3] = [
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.4.50.99",
];

/// VRs of explicit encoding whose length is the 2 bytes after the VR (PS3.5 7.1.2). Every
/// other VR, an unknown one included, has 2 reserved bytes and a 4-byte length: the parser
/// reads an unknown VR as UN, so the walk must too, or a file could show the walk a short
/// length and the parser a 4 GB one.
const SHORT_VRS: [&[u8; 2]; 21] = [
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN",
    b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
];

/// What [`check_lengths`] walks: the file meta group alone (before its transfer syntax is
/// known), or the whole file with a data set in explicit or implicit VR.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Walk {
    MetaGroup,
    Explicit,
    Implicit,
}

/// Walks every element header of `body` (the file after its preamble: `DICM`, the file meta
/// group in explicit VR, then the data set, explicit or implicit) and refuses any element,
/// item or fragment that claims more bytes than remain. Sequences and items are walked into,
/// so nested lengths are checked too; nothing is allocated.
///
/// The walk reads the file as the parser does, or a file could show it one thing and the
/// parser another: the meta group is the group length element, then whole elements (of any
/// group) until that many bytes are read; the data set starts where they end.
pub fn check_lengths(body: &[u8], walk: Walk) -> Result<(), Error> {
    let start = walk_meta_group(body)?;
    match walk {
        Walk::MetaGroup => Ok(()),
        Walk::Explicit => walk_data_set(body, start, false),
        Walk::Implicit => walk_data_set(body, start, true),
    }
}

fn too_long() -> Error {
    Error::Corrupt("a DICOM element claims more bytes than the file holds".into())
}

fn truncated() -> Error {
    Error::Corrupt("the DICOM file ends inside an element header".into())
}

fn u16_at(body: &[u8], at: usize) -> Result<u16, Error> {
    body.get(at..at + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or_else(truncated)
}

fn u32_at(body: &[u8], at: usize) -> Result<u32, Error> {
    body.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(truncated)
}

/// One element header at `pos`: its tag, its size in bytes, the value's declared length,
/// and whether it is a sequence by its VR.
fn header_at(
    body: &[u8],
    pos: usize,
    explicit: bool,
) -> Result<((u16, u16), usize, u32, bool), Error> {
    let tag = (u16_at(body, pos)?, u16_at(body, pos + 2)?);
    if tag.0 == 0xFFFE {
        // Item, item delimiter, sequence delimiter: tag and a 4-byte length, no VR.
        return Ok((tag, 8, u32_at(body, pos + 4)?, false));
    }
    if !explicit {
        return Ok((tag, 8, u32_at(body, pos + 4)?, false));
    }
    let vr = body.get(pos + 4..pos + 6).ok_or_else(truncated)?;
    if SHORT_VRS.iter().any(|v| v.as_slice() == vr) {
        Ok((tag, 8, u32::from(u16_at(body, pos + 6)?), false))
    } else {
        Ok((tag, 12, u32_at(body, pos + 8)?, vr == b"SQ"))
    }
}

/// The file meta group as the meta reader reads it; returns where the data set starts.
fn walk_meta_group(body: &[u8]) -> Result<usize, Error> {
    let (tag, header, length, _) = header_at(body, 4, true)?;
    if tag != (0x0002, 0x0000) || length != 4 {
        return Err(Error::Corrupt(
            "the DICOM file meta group does not start with its length".into(),
        ));
    }
    let group_length = u32_at(body, 4 + header)? as usize;
    let mut pos = 4 + header + 4;
    let mut read = 0usize;
    while read < group_length {
        let (_, header, length, _) = header_at(body, pos, true)?;
        if length == u32::MAX {
            // The meta reader refuses an undefined length; nothing past it is read.
            return Ok(pos);
        }
        if length as usize > body.len().saturating_sub(pos + header) {
            return Err(too_long());
        }
        pos += header + length as usize;
        read += header + length as usize;
    }
    Ok(pos)
}

/// The data set from `pos` to the end, sequences, items and fragments included.
fn walk_data_set(body: &[u8], mut pos: usize, implicit: bool) -> Result<(), Error> {
    // Inside encapsulated pixel data, an item holds fragment bytes, not elements.
    let mut fragments = false;
    while pos < body.len() {
        let ((group, element), header, length, sequence) = header_at(body, pos, !implicit)?;
        let container = if group == 0xFFFE {
            // An item of a sequence holds elements (walked into); a fragment holds bytes.
            if element == 0xE0DD {
                fragments = false;
            }
            element == 0xE000 && !fragments
        } else if implicit {
            // Implicit VR names no SQ: a value that starts with an item tag is a sequence.
            body.get(pos + 8..pos + 12) == Some([0xFE, 0xFF, 0x00, 0xE0].as_slice())
        } else {
            sequence
        };
        let value = pos + header;
        if (group, element) == (0x7FE0, 0x0010) && length == u32::MAX {
            fragments = true;
        }
        if length != u32::MAX && length as usize > body.len().saturating_sub(value) {
            return Err(too_long());
        }
        if length == u32::MAX || container {
            // Undefined length (sequences, encapsulated pixel data) or a container of defined
            // length: what follows is more headers, walked in turn.
            pos = value;
        } else {
            // A value, a delimiter (length 0) or an encapsulated fragment (its bytes).
            pos = value + length as usize;
        }
    }
    Ok(())
}

/// The prefix of the JPEG transfer syntaxes (baseline, extended, lossless, ...).
const JPEG_FAMILY: &str = "1.2.840.10008.1.2.4.";

/// The JPEG decoder sizes its buffers from the JPEG frame header, not from Rows and Columns:
/// every start-of-frame marker in the encapsulated data must describe at most the image the
/// data set declares. Inside entropy-coded data an `FF` byte is always followed by `00` or a
/// restart marker, so a start-of-frame marker cannot appear there by accident.
fn check_jpeg_frames(body: &[u8], cols: u32, rows: u32) -> Result<(), Error> {
    for at in 0..body.len().saturating_sub(9) {
        let sof = body[at] == 0xFF
            && matches!(body[at + 1], 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF);
        if !sof {
            continue;
        }
        let h = u32::from(u16::from_be_bytes([body[at + 5], body[at + 6]]));
        let w = u32::from(u16::from_be_bytes([body[at + 7], body[at + 8]]));
        if h > rows || w > cols {
            return Err(Error::Corrupt(format!(
                "a JPEG frame of {w}x{h} in a DICOM image of {cols}x{rows}"
            )));
        }
    }
    Ok(())
}

/// Modalities whose images are projection radiographs.
const RADIOGRAPHS: [&str; 3] = ["CR", "DX", "DR"];

/// Decodes a DICOM file to the 8-bit gray film a viewer shows.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<GrayImage, Error> {
    let body = bytes.get(PREAMBLE..).unwrap_or_default();
    // The meta reader, too, allocates what an element claims before reading it.
    check_lengths(body, Walk::MetaGroup)?;
    let meta = FileMetaTable::from_reader(body)
        .map_err(|_| Error::Corrupt("the DICOM file meta information could not be read".into()))?;
    let uid = meta.transfer_syntax().to_string();
    let supported = TransferSyntaxRegistry
        .get(&uid)
        .is_some_and(|ts| ts.can_decode_all());
    let walk = if uid == IMPLICIT_VR_LE {
        Walk::Implicit
    } else {
        Walk::Explicit
    };
    if !supported || NOT_WALKED.contains(&uid.as_str()) {
        return Err(Error::UnsupportedTransferSyntax(printable(&uid)));
    }
    check_lengths(body, walk)?;
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
    check_dimensions(side(cols), side(rows), limits)?;
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
    let Some(pixel_data) = obj.element_opt(tags::PIXEL_DATA).ok().flatten() else {
        return Err(Error::Corrupt("the DICOM file has no pixel data".into()));
    };
    // The decoders allocate what Rows x Columns x samples say; uncompressed pixel data must
    // hold that many bytes, so a small file cannot make them allocate a large image.
    let needed = side(rows) as u64 * side(cols) as u64 * samples as u64 * (allocated as u64 / 8);
    if let Some(held) = pixel_data.header().len.get()
        && u64::from(held) < needed
    {
        return Err(Error::Corrupt(format!(
            "the pixel data holds {held} bytes where {cols}x{rows} needs {needed}"
        )));
    }
    // A colour capture is converted through three values per pixel.
    if samples == 3 && 3 * side(rows) as u64 * side(cols) as u64 > limits.max_pixels {
        return Err(Error::Corrupt(
            "a colour DICOM image larger than a third of the pixel limit".into(),
        ));
    }

    if uid.starts_with(JPEG_FAMILY) {
        check_jpeg_frames(body, side(cols), side(rows))?;
    }
    // The codecs index into the data as its headers say, and a hostile file can make one of
    // them panic (the fuzzer found it in the RLE decoder): contain it as a corrupt image.
    let corrupt = || Error::Corrupt("the DICOM pixel data could not be decoded".into());
    let decoded =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| obj.decode_pixel_data()))
            .map_err(|_| corrupt())?
            .map_err(|_| corrupt())?;
    let (w, h) = (decoded.columns(), decoded.rows());
    let pixels = (w as usize) * (h as usize);
    // Modality LUT only; the window is applied below, to 8 bits.
    let values: Vec<f32> = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decoded.to_vec_frame_with_options(
            0,
            &ConvertOptions::new().with_voi_lut(VoiLutOption::Identity),
        )
    }))
    .map_err(|_| corrupt())?
    .map_err(|_| corrupt())?;
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
fn to_8bit(values: &[f32], window: Option<WindowLevelTransform>) -> Vec<u8> {
    match window {
        Some(t) => values
            .iter()
            .map(|&v| t.apply(f64::from(v), 255.0).round().clamp(0.0, 255.0) as u8)
            .collect(),
        None => {
            let (lo, hi) = values
                .iter()
                .filter(|v| v.is_finite())
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
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
        assert_eq!(to_8bit(&[f32::NAN, 1.0, 3.0], None), vec![0, 0, 255]);
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
    fn lengths_past_the_end_are_refused_before_parsing() {
        // DICM, the meta group's length (12), (0002,0010) UI of 4 bytes, then (7FE0,0010) OB
        // claiming 4 GB - 2.
        let meta_group = |elements: &[u8]| {
            let mut m = b"DICM".to_vec();
            m.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0]);
            m.extend_from_slice(&(elements.len() as u32).to_le_bytes());
            m.extend_from_slice(elements);
            m
        };
        let mut body = meta_group(b"\x02\x00\x10\x00UI\x04\x001.2\0");
        let head = body.clone();
        body.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0]);
        body.extend_from_slice(&0xFFFF_FFFEu32.to_le_bytes());
        body.extend_from_slice(&[1, 2, 3, 4]);
        assert!(check_lengths(&body, Walk::Explicit).is_err());
        assert!(check_lengths(&head, Walk::Explicit).is_ok());
        // The same element honest about its 4 bytes.
        let mut ok = head.clone();
        ok.extend_from_slice(&[
            0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 4, 0, 0, 0, 1, 2, 3, 4,
        ]);
        assert!(check_lengths(&ok, Walk::Explicit).is_ok());
        // Implicit VR: (7FE0,0010) claiming 4 GB - 2.
        let mut implicit = head.clone();
        implicit.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00]);
        implicit.extend_from_slice(&0xFFFF_FFFEu32.to_le_bytes());
        assert!(check_lengths(&implicit, Walk::Implicit).is_err());
        // An item inside an undefined-length sequence that claims too much.
        let mut nested = head.clone();
        nested.extend_from_slice(&[
            0x08, 0x00, 0x15, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
        ]);
        nested.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 8, 0, 0, 0]);
        nested.extend_from_slice(&[0x08, 0x00, 0x50, 0x11, b'U', b'T', 0, 0]);
        nested.extend_from_slice(&0x7FFF_FFFFu32.to_le_bytes());
        assert!(check_lengths(&nested, Walk::Explicit).is_err());
        // A VR the standard does not define has a 4-byte length, as the parser reads it: in
        // the file meta group, before the transfer syntax is known, it claims 2.3 GB.
        let unknown = meta_group(b"\x02\x00\x03\x00U~\x7e\x83\x84\x86\x87\x891.2\0");
        assert!(check_lengths(&unknown, Walk::MetaGroup).is_err());
        // The meta reader reads whole elements of any group until the group length is used
        // up, so the walk does too: a (0000,0002) element inside it is walked, not an end.
        let other_group = meta_group(
            b"\x00\x00\x02\x00UI\x04\x001.2\0\x02\x00\x03\x00U~\x00\x00\xff\xff\xff\x7f",
        );
        assert!(check_lengths(&other_group, Walk::MetaGroup).is_err());
        // The meta group walk stops where the data set starts, whatever follows.
        let mut meta = head.clone();
        meta.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00]);
        meta.extend_from_slice(&0xFFFF_FFFEu32.to_le_bytes());
        assert!(check_lengths(&meta, Walk::MetaGroup).is_ok());
        // No group length first: refused, as the meta reader refuses it.
        assert!(check_lengths(b"DICM\x02\x00\x10\x00UI\x04\x001.2\0", Walk::MetaGroup).is_err());
        // Every test file walks clean, but the one the fuzzer made.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dicom");
        for entry in std::fs::read_dir(dir).expect("fixtures") {
            let path = entry.expect("entry").path();
            let hostile = path.to_string_lossy().contains("hostile");
            if path.extension().is_some_and(|e| e == "dcm") && !hostile {
                let bytes = std::fs::read(&path).expect("read");
                let walk = if path.to_string_lossy().contains("implicit") {
                    Walk::Implicit
                } else {
                    Walk::Explicit
                };
                assert!(
                    check_lengths(&bytes[PREAMBLE..], walk).is_ok(),
                    "{}",
                    path.display()
                );
            }
        }
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
