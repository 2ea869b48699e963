//! The one preprocessing path: bytes -> validated 8-bit gray -> model input.
//!
//! Serving calls [`prepare`] and [`to_tensor_data`]; training reads the 8-bit images that
//! `xray preprocess` writes with [`prepare`], applies augmentation on top, and normalises
//! with the same [`MEAN`] and [`STD`]. So what the model sees in production is what it saw in
//! training, bit for bit before augmentation.
//!
//! The steps, in order:
//! 1. Sniff the format from the magic bytes (never trust a file name or a `Content-Type`).
//! 2. Read the header and refuse dimensions over [`Limits`] *before* any pixel is allocated,
//!    so a 100-byte PNG cannot claim a 10-gigapixel canvas.
//! 3. Decode (JPEG, PNG; 8- or 16-bit; gray, gray+alpha, RGB, RGBA, palette), apply the EXIF
//!    orientation, and convert to 8-bit luma (Rec. 709 weights, alpha ignored). A JPEG of at
//!    least 4x the model input a side is decoded at 1/8 or 1/4 scale instead (`jpeg.rs`: the
//!    full decode box-averaged, its YCbCr luma), when the region the path reads keeps the
//!    model input ([`decode_read`]); the training pool, at most 512 px, never is.
//! 4. Trim uniform borders: rows and columns at the edges whose pixels are all nearly the same
//!    value (black or white frames around films cropped from papers). At most
//!    [`MAX_TRIM_FRACTION`] of each side goes. Borders are a collection marker, not anatomy.
//! 5. Resize to [`INPUT_SIZE`] x [`INPUT_SIZE`] with a triangle (bilinear, antialiased) filter
//!    (the `image` crate's, reimplemented byte for byte in `resize.rs` for speed), ignoring
//!    aspect ratio: padding would paint the aspect ratio into the picture as a border.
//!    Films over 4x the input on their short side are box-averaged by an integer factor first
//!    (a speed step that the training pool, at most 512 px, never takes).
//! 6. Histogram-equalise. Collections differ most in exposure and contrast curves; equalising
//!    takes that cue away and gives every film the same intensity distribution.
//! 7. Normalise to `f32`: `(v / 255 - MEAN) / STD`, laid out NCHW `[1, 1, S, S]`.

use std::io::Cursor;

use image::{DynamicImage, GenericImageView, GrayImage, ImageDecoder, ImageFormat, ImageReader};

pub use super::limits::Limits;
use super::limits::check_dimensions;
use super::resize::resize_triangle;
use crate::error::Error;

/// Side of the square model input, in pixels.
pub const INPUT_SIZE: u32 = 192;
/// Mean subtracted after scaling to `[0, 1]`. An equalised image is close to uniform on
/// `[0, 1]`, whose mean is 0.5 and standard deviation `1/sqrt(12)`.
pub const MEAN: f32 = 0.5;
/// Standard deviation divided out after subtracting [`MEAN`].
pub const STD: f32 = 0.2887;
/// A row or column is border when its values span at most this many gray levels.
pub const BORDER_SPREAD: u8 = 12;
/// At most this fraction of the width (or height) is trimmed from each side.
pub const MAX_TRIM_FRACTION: f32 = 0.2;
/// Version of this preprocessing; the model card records the one the model was trained with.
pub const PREPROCESS_VERSION: &str = "gray-trim-resize-equalize-v1";
/// The preprocessing of models that read the lung fields: as [`PREPROCESS_VERSION`], then the
/// lung finder's box of the prepared whole film, and the film cropped to that box is
/// resized and equalised again (`covid_xray::model::lungs`).
pub const LUNGS_PREPROCESS_VERSION: &str = "gray-trim-lungbox-resize-equalize-v2";
/// The preprocessing of models that standardise each image themselves: as
/// [`PREPROCESS_VERSION`] without the equalisation. The network's first operation subtracts
/// the image's own mean and divides by its own standard deviation, so a hospital's overall
/// exposure and contrast do not reach it, while the shape of its histogram, which
/// equalisation flattens, does.
pub const PLAIN_PREPROCESS_VERSION: &str = "gray-trim-resize-v3";
/// The lung fields without equalisation: as [`LUNGS_PREPROCESS_VERSION`] (the lung finder
/// reads the equalised whole film), then the film cropped to the lung box is resized and
/// not equalised, for networks that standardise each image themselves.
pub const PLAIN_LUNGS_PREPROCESS_VERSION: &str = "gray-trim-lungbox-resize-v4";
/// The input sides the unequalised paths accept from a model card; the equalised ones read
/// [`INPUT_SIZE`] only.
pub const PLAIN_INPUT_SIDES: std::ops::RangeInclusive<u32> = 64..=512;

/// Below this many pixels on its shorter side an image gets [`InputWarning::Small`]: the
/// model input is [`INPUT_SIZE`] px, and every film of the training pool has at least 156.
pub const SMALL_SIDE: u32 = 128;
/// Above this ratio of its longer to its shorter side an image gets
/// [`InputWarning::UnusualShape`]: frontal chest films are near square (the training pool
/// reaches 2.24, a film cropped from a paper).
pub const MAX_ASPECT: f32 = 2.5;
/// A pixel is colourful when its channels span more than this many levels (of 255)...
pub const CHROMA_LEVELS: u8 = 32;
/// ...and an image is [`InputWarning::Colour`] when more than this fraction of its pixels
/// are. A gray film stored as RGB spans a few levels of JPEG chroma noise; coloured arrows or
/// labels on a film from a paper cover a few percent; a photograph covers most of itself.
pub const COLOUR_FRACTION: f32 = 0.1;

/// Something about an input that the model was not trained for. The answer is still given,
/// with the warning beside it, because none of these makes the film unreadable; each makes
/// the calibrated confidence mean less. Nothing here changes the prepared image: training
/// and serving still see exactly the same pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputWarning {
    /// A colour image: X-rays are gray, so this is likely a photograph, a screenshot or an
    /// annotated figure, and the model reads only its luma.
    Colour,
    /// Under [`SMALL_SIDE`] px on a side: upscaled to the model input, with little detail.
    Small,
    /// Longer than [`MAX_ASPECT`] times its width (or the reverse): not a frontal chest film,
    /// or one cropped to a strip; the resize to a square stretches it.
    UnusualShape,
    /// The lung finder found no lung fields, so the whole film was classified.
    NoLungs,
}

impl InputWarning {
    /// Stable code for callers.
    pub fn code(self) -> &'static str {
        match self {
            InputWarning::Colour => "colour_image",
            InputWarning::Small => "small_image",
            InputWarning::UnusualShape => "unusual_shape",
            InputWarning::NoLungs => "lungs_not_found",
        }
    }

    /// What it means, for a person.
    pub fn message(self) -> &'static str {
        match self {
            InputWarning::Colour => {
                "the image is in colour; X-rays are gray, so this may not be a chest X-ray and the answer may mean nothing"
            }
            InputWarning::Small => {
                "the image is under 128 px on a side; the model reads 192 px films, so detail is missing"
            }
            InputWarning::UnusualShape => {
                "the image is more than 2.5 times as long as it is wide; a frontal chest X-ray is near square"
            }
            InputWarning::NoLungs => {
                "no lung fields were found, so the whole image was classified; this may not be a frontal chest X-ray"
            }
        }
    }
}

impl serde::Serialize for InputWarning {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("InputWarning", 2)?;
        st.serialize_field("code", self.code())?;
        st.serialize_field("message", self.message())?;
        st.end()
    }
}

/// The shape warnings of a `w` x `h` image.
fn shape_warnings(w: u32, h: u32) -> Vec<InputWarning> {
    let (short, long) = (w.min(h), w.max(h));
    let mut out = Vec::new();
    if short < SMALL_SIDE {
        out.push(InputWarning::Small);
    }
    if long as f32 > MAX_ASPECT * short as f32 {
        out.push(InputWarning::UnusualShape);
    }
    out
}

/// Whether more than [`COLOUR_FRACTION`] of `img`'s pixels are colourful, from a sample of
/// at most about 65,536 of them (a regular grid), so a 50-megapixel photo costs no more than
/// a small one. Gray and gray+alpha images are never colour; every colour format is read as
/// 8-bit RGBA through the `image` crate's own conversion.
fn is_colour(img: &DynamicImage) -> bool {
    if !img.color().has_color() {
        return false;
    }
    let (w, h) = (img.width(), img.height());
    let step = ((u64::from(w) * u64::from(h) / 65_536) as f64)
        .sqrt()
        .max(1.0) as usize;
    let (mut seen, mut colourful) = (0u32, 0u32);
    for y in (0..h).step_by(step) {
        for x in (0..w).step_by(step) {
            let [r, g, b, _] = img.get_pixel(x, y).0;
            seen += 1;
            colourful += u32::from(is_colourful([r, g, b]));
        }
    }
    mostly_colourful(colourful, seen)
}

/// Whether one pixel's channels span more than [`CHROMA_LEVELS`].
pub(super) fn is_colourful([r, g, b]: [u8; 3]) -> bool {
    r.max(g).max(b) - r.min(g).min(b) > CHROMA_LEVELS
}

/// Whether `colourful` of `seen` sampled pixels make an image [`InputWarning::Colour`].
pub(super) fn mostly_colourful(colourful: u32, seen: u32) -> bool {
    seen > 0 && colourful as f32 > COLOUR_FRACTION * seen as f32
}

/// Decodes an encoded image to 8-bit gray, enforcing `limits`.
pub fn decode_gray(bytes: &[u8], limits: &Limits) -> Result<GrayImage, Error> {
    decode_gray_noted(bytes, limits).map(|(gray, _)| gray)
}

/// [`decode_gray`], and what about the input the model was not trained for
/// ([`InputWarning`]): every pixel decoded, whatever the film's size.
pub fn decode_gray_noted(
    bytes: &[u8],
    limits: &Limits,
) -> Result<(GrayImage, Vec<InputWarning>), Error> {
    match open(bytes, limits)? {
        Opened::Dicom(gray) => {
            let warnings = shape_warnings(gray.width(), gray.height());
            Ok((gray, warnings))
        }
        Opened::Image(decoder, _) => decode_full(decoder),
    }
}

/// Decodes an image and runs `read` on it (a preprocessing path), decoding a large JPEG at
/// a reduced DCT scale (`jpeg.rs`) when what `read` takes of it still has at least `side`
/// pixels a side.
///
/// `read` returns what it made and the shorter side, in pixels of the image it was given,
/// of the region it read. A JPEG whose shorter side is at least 4 x `side` is decoded at
/// 1/8 and, when the region read of that keeps fewer than `side` pixels, at 1/4: the
/// coarsest whose region keeps `side` pixels is kept. Every other image,
/// a file the reduced decoder declines (damage, arithmetic coding, 12-bit, CMYK...), and a
/// region still too small is decoded in full, exactly as [`decode_gray_noted`] does, so the
/// answer to a damaged file is the full decoder's. Limits are checked from the header
/// first, either way. Returns what `read` made, the image it read, and the warnings.
pub fn decode_read<T>(
    bytes: &[u8],
    limits: &Limits,
    side: u32,
    mut read: impl FnMut(&GrayImage) -> Result<(T, u32), Error>,
) -> Result<(T, GrayImage, Vec<InputWarning>), Error> {
    let (mut decoder, format) = match open(bytes, limits)? {
        Opened::Dicom(gray) => {
            let warnings = shape_warnings(gray.width(), gray.height());
            return read(&gray).map(|(t, _)| (t, gray, warnings));
        }
        Opened::Image(decoder, format) => (decoder, format),
    };
    let (w, h) = decoder.dimensions();
    let short = w.min(h);
    if format == ImageFormat::Jpeg && short / 4 >= side.max(1) {
        let orientation = decoder
            .orientation()
            .unwrap_or(image::metadata::Orientation::NoTransforms);
        // 1/8 first, alone; 1/4 (one more pass, with the quadrant sums) only when the
        // region read of 1/8 keeps too few pixels, which trimming rarely makes it.
        for quarter in [false, true] {
            if !quarter && short / 8 < side {
                continue;
            }
            let Ok(reduced) = super::jpeg::decode_reduced(bytes, quarter) else {
                break;
            };
            let gray = if quarter {
                match reduced.quarter {
                    Some(gray) => gray,
                    None => break,
                }
            } else {
                reduced.eighth
            };
            let mut img = DynamicImage::ImageLuma8(gray);
            img.apply_orientation(orientation);
            let gray = img.into_luma8();
            let (made, region_side) = read(&gray)?;
            if region_side >= side {
                let mut warnings = Vec::new();
                if reduced.colour {
                    warnings.push(InputWarning::Colour);
                }
                warnings.extend(shape_warnings(w, h));
                return Ok((made, gray, warnings));
            }
        }
    }
    let (gray, warnings) = decode_full(decoder)?;
    read(&gray).map(|(t, _)| (t, gray, warnings))
}

/// A file whose header passed the limits: a DICOM film (already decoded) or an image
/// decoder that has read only the header.
enum Opened<'a> {
    Dicom(GrayImage),
    Image(Box<dyn ImageDecoder + 'a>, ImageFormat),
}

/// Steps 1 and 2: sniffs the format and checks the header against `limits`.
fn open<'a>(bytes: &'a [u8], limits: &Limits) -> Result<Opened<'a>, Error> {
    if bytes.is_empty() {
        return Err(Error::Empty);
    }
    if bytes.len() > limits.max_bytes {
        return Err(Error::TooLarge {
            what: "encoded image",
            detail: format!("{} bytes, limit {}", bytes.len(), limits.max_bytes),
        });
    }
    if super::dicom::is_dicom(bytes) {
        return super::dicom::decode(bytes, limits).map(Opened::Dicom);
    }
    let format = image::guess_format(bytes).map_err(|_| Error::NotAnImage)?;
    if !matches!(format, ImageFormat::Jpeg | ImageFormat::Png) {
        return Err(Error::UnsupportedFormat(
            format!("{format:?}").to_lowercase(),
        ));
    }
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(Error::Corrupt(
            "truncated JPEG: no end-of-image marker after the last scan".into(),
        ));
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(limits.max_side);
    decoder_limits.max_image_height = Some(limits.max_side);
    decoder_limits.max_alloc = Some(limits.max_alloc());
    reader.limits(decoder_limits);
    let decoder = reader.into_decoder().map_err(|e| match e {
        // The decoder refused the header's size: say it as `check_dimensions` does, so
        // that one limit always gives one message.
        image::ImageError::Limits(_) => header_dimensions(bytes, format)
            .and_then(|(w, h)| check_dimensions(w, h, limits).err())
            .unwrap_or_else(|| Error::from_image(e)),
        e => Error::from_image(e),
    })?;
    let (w, h) = decoder.dimensions();
    check_dimensions(w, h, limits)?;
    // The decoded buffer's size follows from the header (16-bit RGBA is 8 bytes a pixel):
    // refuse it here rather than trust each decoder to check its own allocation.
    if decoder.total_bytes() > limits.max_alloc() {
        return Err(Error::TooLarge {
            what: "decoded image",
            detail: format!(
                "{w}x{h} {:?} needs {} bytes, limit {}",
                decoder.color_type(),
                decoder.total_bytes(),
                limits.max_alloc()
            ),
        });
    }
    Ok(Opened::Image(Box::new(decoder), format))
}

/// Step 3 for an opened image: every pixel, oriented, to 8-bit luma.
fn decode_full(
    mut decoder: Box<dyn ImageDecoder + '_>,
) -> Result<(GrayImage, Vec<InputWarning>), Error> {
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(Error::from_image)?;
    img.apply_orientation(orientation);
    let mut warnings = Vec::new();
    if is_colour(&img) {
        warnings.push(InputWarning::Colour);
    }
    warnings.extend(shape_warnings(img.width(), img.height()));
    Ok((img.into_luma8(), warnings))
}

/// Whether a JPEG has an end-of-image marker (`FF D9`) after its last start-of-scan
/// (`FF DA`). The JPEG decoder pads a truncated scan with gray rather than failing, which
/// would classify half a film as if it were whole.
///
/// Inside entropy-coded data every `FF` byte is stuffed as `FF 00`, so neither marker can
/// appear there by accident; an EXIF thumbnail's own markers come before the main scan.
/// Equivalently: the last `FF D9` exists and no `FF DA` follows it. Searching from the end
/// finds the last `FF D9` in the final bytes of a whole file, instead of walking the whole
/// scan (half a millisecond for a 500 KB film).
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    match bytes.windows(2).rposition(|w| w == [0xFF, 0xD9]) {
        Some(eoi) => !bytes[eoi..].windows(2).any(|w| w == [0xFF, 0xDA]),
        None => false,
    }
}

/// The width and height a header claims, read without limits (nothing is decoded).
///
/// A PNG's come from its first chunk, which the format fixes as IHDR at byte 12: the PNG
/// decoder reads on to the first image data before it reports them, and a file that claims
/// a huge size may have none.
fn header_dimensions(bytes: &[u8], format: ImageFormat) -> Option<(u32, u32)> {
    if format == ImageFormat::Png {
        let be = |at: usize| {
            let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
            Some(u32::from_be_bytes(b))
        };
        return (bytes.get(12..16) == Some(b"IHDR".as_slice()))
            .then(|| Some((be(16)?, be(20)?)))
            .flatten();
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.no_limits();
    reader.into_dimensions().ok()
}

/// Steps 4 to 6: trims uniform borders, resizes to the model input and equalises.
pub fn prepare_gray(gray: &GrayImage) -> GrayImage {
    prepare_region(gray, content_box(gray))
}

/// Steps 5 and 6 for one region `(x, y, width, height)` of a film: resized to the model
/// input and equalised, without trimming again. The region must lie inside the film and
/// be at least one pixel a side; it is clamped to the film if not.
pub fn prepare_region(gray: &GrayImage, region: (u32, u32, u32, u32)) -> GrayImage {
    let mut small = resize_region(gray, region);
    equalize(&mut small);
    small
}

/// Step 5 alone for one region of a film: resized to the model input, not equalised (the
/// path of [`PLAIN_PREPROCESS_VERSION`]).
pub fn resize_region(gray: &GrayImage, region: (u32, u32, u32, u32)) -> GrayImage {
    resize_region_to(gray, region, INPUT_SIZE)
}

/// [`resize_region`] to a `side` x `side` square: the unequalised paths serve networks of
/// other input sizes (the card's `input.size`).
pub fn resize_region_to(gray: &GrayImage, region: (u32, u32, u32, u32), side: u32) -> GrayImage {
    let side = side.max(1);
    let (x0, y0, w, h) = clamp_region(gray.dimensions(), region);
    let k = shrink_factor(w, h, side);
    let cropped = if k >= 2 {
        // Shrinking reads the content box in place: no copy of a multi-megapixel film.
        box_shrink(gray, (x0, y0, w, h), k)
    } else {
        image::imageops::crop_imm(gray, x0, y0, w, h).to_image()
    };
    let (cw, ch) = cropped.dimensions();
    resize_triangle(cropped.as_raw(), cw, ch, side, side)
        .and_then(|v| GrayImage::from_raw(side, side, v))
        .unwrap_or_else(|| {
            // Unreachable for a decoded image (never empty); the generic resize gives the
            // same bytes anyway.
            image::imageops::resize(&cropped, side, side, image::imageops::FilterType::Triangle)
        })
}

/// `img` histogram-equalised, as step 6 does.
pub fn equalized(img: &GrayImage) -> GrayImage {
    let mut out = img.clone();
    equalize(&mut out);
    out
}

/// The integer factor by which a `w` x `h` image can be box-averaged first while keeping at
/// least twice the model input on its shorter side; 1 when it cannot.
///
/// A triangle filter that shrinks 1800 px to 192 px reads about 19 taps per output pixel
/// and axis; averaging k x k blocks first does the bulk of that for one add per pixel, and
/// the triangle filter then still antialiases the last factor of two or more. Images up to
/// 4x the input on their short side (every film of the training pool, at most 512 px) are
/// untouched, so the model saw exactly this path in training.
fn shrink_factor(w: u32, h: u32, side: u32) -> u32 {
    (w.min(h) / (2 * side)).clamp(1, MAX_SHRINK)
}

/// The largest box-shrink factor: `257 * 255 = u16::MAX`. Default [`Limits`] keep `k` under
/// 20; the cap holds whatever limits a library caller passes.
const MAX_SHRINK: u32 = 257;

/// Averages non-overlapping `k` x `k` blocks of the box `(x0, y0, w, h)` of `img` (the
/// partial blocks at the right and bottom edges are dropped: at most `k - 1` pixels of a
/// film much larger than the input).
///
/// Each output row first sums its `k` source rows column by column into `u16` (a straight
/// widening add the compiler vectorises), then adds each run of `k` column sums. `k` is at
/// most [`MAX_SHRINK`], so a column sum, at most `k * 255`, fits in `u16`.
fn box_shrink(img: &GrayImage, (x0, y0, w, h): (u32, u32, u32, u32), k: u32) -> GrayImage {
    let (ow, oh) = (w / k, h / k);
    let src = img.as_raw();
    let stride = img.width() as usize;
    let k_us = k as usize;
    let span = (ow * k) as usize;
    let mut col_sums = vec![0u16; span];
    let mut out = Vec::with_capacity((ow * oh) as usize);
    let area = k * k;
    for by in 0..oh as usize {
        col_sums.iter_mut().for_each(|s| *s = 0);
        let first = (y0 as usize + by * k_us) * stride + x0 as usize;
        for row in src[first..].chunks(stride).take(k_us) {
            for (sum, &v) in col_sums.iter_mut().zip(&row[..span]) {
                *sum += u16::from(v);
            }
        }
        out.extend(col_sums.chunks_exact(k_us).map(|c| {
            let s: u32 = c.iter().map(|&v| u32::from(v)).sum();
            ((s + area / 2) / area) as u8
        }));
    }
    GrayImage::from_raw(ow, oh, out).unwrap_or_else(|| img.clone())
}

/// Steps 1 to 6: encoded bytes to the 8-bit model-input image.
pub fn prepare(bytes: &[u8], limits: &Limits) -> Result<GrayImage, Error> {
    decode_gray(bytes, limits).map(|g| prepare_gray(&g))
}

/// [`prepare`], and the input's [`InputWarning`]s.
pub fn prepare_noted(
    bytes: &[u8],
    limits: &Limits,
) -> Result<(GrayImage, Vec<InputWarning>), Error> {
    decode_gray_noted(bytes, limits).map(|(g, warnings)| (prepare_gray(&g), warnings))
}

/// A tighter framing of a whole film, as `(x, y, width, height)` in pixels of a `w` x `h`
/// image: what a film cropped to the chest would have shown. Deterministic in `seed`.
///
/// Training uses it on whole normal films (`xray preprocess --crops`). The COVID films of the
/// pool are mostly tight crops from publications and the normals whole films with neck,
/// shoulders and abdomen, so a model trained on the pool as it is learns "tight framing means
/// COVID". Cropping the original film and then running [`prepare_gray`], rather than zooming
/// the prepared image, shows the model exactly what serving makes of a film framed that
/// way: trimming and equalisation see the cropped film.
///
/// The box keeps 60-90% of the width and 55-85% of the height, centred within 6% of the
/// middle horizontally and a little above the middle vertically (the lungs sit in the upper
/// part of a whole film).
pub fn framing_crop(w: u32, h: u32, seed: u64) -> (u32, u32, u32, u32) {
    let mut state = seed;
    let mut unit = move || {
        // splitmix64: a tiny, well-mixed generator; the standard library has none.
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let fw = 0.60 + 0.30 * unit();
    let fh = 0.55 + 0.30 * unit();
    let cx = 0.50 + (unit() - 0.5) * 0.12;
    let cy = 0.38 + 0.12 * unit();
    let side = |len: u32, frac: f64, centre: f64| {
        let n = ((f64::from(len) * frac).round() as u32).clamp(1, len);
        let start = (f64::from(len) * centre - f64::from(n) / 2.0).round();
        let start = (start.max(0.0) as u32).min(len - n);
        (start, n)
    };
    let (x, cw) = side(w, fw, cx);
    let (y, ch) = side(h, fh, cy);
    (x, y, cw, ch)
}

/// Steps 4 to 6 on the box `(x, y, width, height)` of `gray`: what [`prepare`] gives for a
/// film that was cropped to that box before it was encoded.
pub fn prepare_gray_box(gray: &GrayImage, (x, y, w, h): (u32, u32, u32, u32)) -> GrayImage {
    prepare_gray(&image::imageops::crop_imm(gray, x, y, w, h).to_image())
}

/// Step 7: the prepared 8-bit image as normalised `f32`, row-major, one channel.
pub fn to_tensor_data(prepared: &GrayImage) -> Vec<f32> {
    prepared
        .as_raw()
        .iter()
        .map(|&v| (f32::from(v) / 255.0 - MEAN) / STD)
        .collect()
}

/// `region` moved and shrunk to lie inside a `w` x `h` film, at least one pixel a side.
fn clamp_region((w, h): (u32, u32), (x, y, rw, rh): (u32, u32, u32, u32)) -> (u32, u32, u32, u32) {
    let x = x.min(w.saturating_sub(1));
    let y = y.min(h.saturating_sub(1));
    (
        x,
        y,
        rw.min(w.saturating_sub(x)).max(1),
        rh.min(h.saturating_sub(y)).max(1),
    )
}

/// The box `(x, y, width, height)` left after trimming uniform borders.
pub fn content_box(gray: &GrayImage) -> (u32, u32, u32, u32) {
    let (w, h) = gray.dimensions();
    let row_uniform = |y: u32| spread((0..w).map(|x| gray.get_pixel(x, y).0[0])) <= BORDER_SPREAD;
    let col_uniform = |x: u32| spread((0..h).map(|y| gray.get_pixel(x, y).0[0])) <= BORDER_SPREAD;
    let max_dx = (w as f32 * MAX_TRIM_FRACTION) as u32;
    let max_dy = (h as f32 * MAX_TRIM_FRACTION) as u32;
    let top = (0..max_dy).take_while(|&y| row_uniform(y)).count() as u32;
    let bottom = (0..max_dy).take_while(|&d| row_uniform(h - 1 - d)).count() as u32;
    let left = (0..max_dx).take_while(|&x| col_uniform(x)).count() as u32;
    let right = (0..max_dx).take_while(|&d| col_uniform(w - 1 - d)).count() as u32;
    (left, top, w - left - right, h - top - bottom)
}

/// Max minus min of a run of values, ignoring the extreme 1% at each end so that a stray
/// JPEG ringing pixel does not make a blank border look like content.
fn spread(values: impl Iterator<Item = u8>) -> u8 {
    let mut hist = [0u32; 256];
    let mut n = 0u32;
    for v in values {
        hist[usize::from(v)] += 1;
        n += 1;
    }
    let cut = n / 100;
    let lo = quantile_index(hist.iter(), cut);
    let hi = 255 - quantile_index(hist.iter().rev(), cut);
    hi.saturating_sub(lo) as u8
}

/// Index of the first bin at which the running count exceeds `cut`.
fn quantile_index<'a>(bins: impl Iterator<Item = &'a u32>, cut: u32) -> usize {
    let mut acc = 0u32;
    for (i, &c) in bins.enumerate() {
        acc += c;
        if acc > cut {
            return i;
        }
    }
    255
}

/// Classic histogram equalisation: `v -> round((cdf(v) - cdf_min) * 255 / (n - cdf_min))`,
/// in integer arithmetic so that it is exact and the same everywhere.
fn equalize(img: &mut GrayImage) {
    let mut hist = [0u64; 256];
    for &v in img.as_raw() {
        hist[usize::from(v)] += 1;
    }
    let n: u64 = hist.iter().sum();
    let cdf_min = hist.iter().copied().find(|&c| c > 0).unwrap_or(0);
    if n == cdf_min {
        // A flat image: nothing to spread. Map it to mid-gray.
        img.pixels_mut().for_each(|p| p.0[0] = 128);
        return;
    }
    let mut lut = [0u8; 256];
    let mut cdf = 0u64;
    for (v, &c) in hist.iter().enumerate() {
        cdf += c;
        let num = cdf.saturating_sub(cdf_min) * 255;
        let den = n - cdf_min;
        lut[v] = ((num + den / 2) / den) as u8;
    }
    img.pixels_mut()
        .for_each(|p| p.0[0] = lut[usize::from(p.0[0])]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_warnings_start_where_the_training_pool_ends() {
        assert_eq!(shape_warnings(156, 200), vec![]);
        assert_eq!(shape_warnings(128, 128), vec![]);
        assert_eq!(shape_warnings(127, 300), vec![InputWarning::Small]);
        assert_eq!(shape_warnings(512, 229), vec![]); // 2.24, the pool's longest
        assert_eq!(shape_warnings(600, 200), vec![InputWarning::UnusualShape]);
        assert_eq!(
            shape_warnings(1, 400),
            vec![InputWarning::Small, InputWarning::UnusualShape]
        );
    }

    #[test]
    fn warning_messages_state_the_thresholds_in_force() {
        let small = InputWarning::Small.message();
        assert!(small.contains(&format!("under {SMALL_SIDE} px")), "{small}");
        assert!(small.contains(&format!("{INPUT_SIZE} px")), "{small}");
        let shape = InputWarning::UnusualShape.message();
        assert!(shape.contains(&format!("{MAX_ASPECT} times")), "{shape}");
    }

    #[test]
    fn colour_is_told_from_gray_in_every_pixel_format() {
        let gray16 = image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(300, 200, |x, _| {
            let v = (x * 200) as u16;
            image::Rgb([v, v + 300, v])
        });
        assert!(!is_colour(&DynamicImage::ImageRgb16(gray16)));
        let colour16 = image::ImageBuffer::<image::Rgba<u16>, _>::from_fn(300, 200, |x, _| {
            image::Rgba([(x * 200) as u16, 0, 65_535, 65_535])
        });
        assert!(is_colour(&DynamicImage::ImageRgba16(colour16)));
        let luma = GrayImage::from_fn(300, 200, |x, _| image::Luma([x as u8]));
        assert!(!is_colour(&DynamicImage::ImageLuma8(luma)));
        // A big photo is sampled, not read whole, and still seen.
        let photo = image::RgbImage::from_fn(4000, 3000, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        assert!(is_colour(&DynamicImage::ImageRgb8(photo)));
    }

    #[test]
    fn equalize_spreads_a_two_level_image() {
        let mut img = GrayImage::from_fn(4, 4, |x, _| image::Luma([if x < 2 { 10 } else { 20 }]));
        equalize(&mut img);
        assert_eq!(img.get_pixel(0, 0).0[0], 0);
        assert_eq!(img.get_pixel(3, 0).0[0], 255);
    }

    #[test]
    fn flat_image_becomes_mid_gray() {
        let mut img = GrayImage::from_pixel(3, 3, image::Luma([7]));
        equalize(&mut img);
        assert!(img.pixels().all(|p| p.0[0] == 128));
    }

    #[test]
    fn black_frame_is_trimmed() {
        // 100x100 noise-like content inside a 10 px black frame.
        let img = GrayImage::from_fn(120, 120, |x, y| {
            let inside = (10..110).contains(&x) && (10..110).contains(&y);
            image::Luma([if inside {
                ((x * 7 + y * 13) % 200) as u8 + 30
            } else {
                0
            }])
        });
        assert_eq!(content_box(&img), (10, 10, 100, 100));
    }

    #[test]
    fn trimming_is_bounded() {
        let img = GrayImage::from_pixel(50, 40, image::Luma([0]));
        let (x, y, w, h) = content_box(&img);
        assert_eq!((x, y), (10, 8));
        assert_eq!((w, h), (30, 24));
    }

    #[test]
    fn pool_sized_films_are_not_box_shrunk() {
        assert_eq!(shrink_factor(512, 512, INPUT_SIZE), 1);
        assert_eq!(shrink_factor(767, 2000, INPUT_SIZE), 1);
        assert_eq!(shrink_factor(1600, 1800, INPUT_SIZE), 4);
        assert_eq!(shrink_factor(200_000, 200_000, INPUT_SIZE), MAX_SHRINK);
        assert_eq!(u32::from(u16::MAX), MAX_SHRINK * 255);
    }

    #[test]
    fn box_shrink_averages_blocks() {
        let img = GrayImage::from_fn(5, 4, |x, y| image::Luma([(x + 10 * y) as u8]));
        let out = box_shrink(&img, (0, 0, 5, 4), 2);
        assert_eq!(out.dimensions(), (2, 2));
        // Block (0,0): 0, 1, 10, 11 -> 5.5 -> 6 (rounded half up).
        assert_eq!(out.get_pixel(0, 0).0[0], 6);
        assert_eq!(out.get_pixel(1, 1).0[0], 28);
    }

    #[test]
    fn box_shrink_reads_an_offset_box() {
        let img = GrayImage::from_fn(13, 11, |x, y| image::Luma([(x * 17 + y * 29) as u8]));
        let (x0, y0, k) = (2, 3, 3);
        let out = box_shrink(&img, (x0, y0, 9, 7), k);
        assert_eq!(out.dimensions(), (3, 2));
        for (ox, oy, p) in out.enumerate_pixels() {
            let sum: u32 = (0..k * k)
                .map(|i| {
                    let (x, y) = (x0 + ox * k + i % k, y0 + oy * k + i / k);
                    u32::from(img.get_pixel(x, y).0[0])
                })
                .sum();
            assert_eq!(u32::from(p.0[0]), (sum + 4) / 9, "pixel ({ox}, {oy})");
        }
    }

    #[test]
    fn jpeg_completeness_needs_an_end_marker_after_the_last_scan() {
        let scan = [0xFF, 0xD8, 0xFF, 0xDA, 1, 2, 0xFF, 0x00, 3];
        let whole = [&scan[..], &[0xFF, 0xD9]].concat();
        assert!(jpeg_is_complete(&whole));
        assert!(!jpeg_is_complete(&scan));
        // A thumbnail's end marker before the main scan does not make a cut file whole.
        let thumb_then_cut = [&[0xFF, 0xD8, 0xFF, 0xDA, 9, 0xFF, 0xD9][..], &scan[2..]].concat();
        assert!(!jpeg_is_complete(&thumb_then_cut));
        assert!(jpeg_is_complete(
            &[&thumb_then_cut[..], &[0xFF, 0xD9]].concat()
        ));
    }

    #[test]
    fn framing_crops_stay_inside_and_in_their_ranges() {
        for (w, h) in [(512, 512), (367, 512), (512, 301), (3, 2), (1, 1)] {
            for seed in 0..200 {
                let (x, y, cw, ch) = framing_crop(w, h, seed);
                assert!(
                    cw >= 1 && ch >= 1 && x + cw <= w && y + ch <= h,
                    "{w}x{h} {seed}"
                );
                if w >= 100 {
                    let (fw, fh) = (f64::from(cw) / f64::from(w), f64::from(ch) / f64::from(h));
                    assert!((0.59..=0.91).contains(&fw) && (0.54..=0.86).contains(&fh));
                }
            }
        }
        assert_eq!(framing_crop(512, 400, 7), framing_crop(512, 400, 7));
        assert_ne!(framing_crop(512, 400, 7), framing_crop(512, 400, 8));
    }

    #[test]
    fn the_whole_box_prepares_like_the_whole_film() {
        let img = GrayImage::from_fn(300, 260, |x, y| {
            image::Luma([((x * 7 + y * 3) % 251) as u8])
        });
        assert_eq!(prepare_gray_box(&img, (0, 0, 300, 260)), prepare_gray(&img));
        // Serving a PNG of the cropped film gives the same model input, byte for byte.
        let cropped = image::imageops::crop_imm(&img, 30, 20, 200, 180).to_image();
        let mut png = Vec::new();
        cropped
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        let served = prepare(&png, &Limits::default()).unwrap();
        assert_eq!(prepare_gray_box(&img, (30, 20, 200, 180)), served);
    }

    #[test]
    fn tensor_is_normalised() {
        let img = GrayImage::from_fn(2, 1, |x, _| image::Luma([if x == 0 { 0 } else { 255 }]));
        let t = to_tensor_data(&img);
        assert!((t[0] - (-MEAN / STD)).abs() < 1e-6);
        assert!((t[1] - ((1.0 - MEAN) / STD)).abs() < 1e-6);
    }
}
