//! Where the model looked: class activation mapping (Zhou et al., 2016), without gradients.
//!
//! The classifier ends in global average pooling and one linear layer, so its logit
//! difference `l_covid - l_normal` is the mean over the last feature grid of one number per
//! cell, `sum_k (w_covid,k - w_normal,k) * f_k(cell)`, plus a bias. That number per cell is
//! the map: each cell's share of the evidence, in the network's own units, exactly (no
//! gradients, no approximation). The features are a second output of the one served plan,
//! and the weights are read from the ONNX file at load time, so any network of this shape
//! (the card's `arch`) is explained without exporting anything for it.

use std::io::Cursor;

use image::{GrayImage, ImageEncoder, RgbImage};
use serde::Serialize;
use tract_onnx::pb::{ModelProto, NodeProto, TensorProto};
use tract_onnx::prelude::*;

use super::Label;
use crate::error::Error;

/// What explaining needs from the ONNX file: the name of the feature tensor that the global
/// average pooling reads, and the covid-minus-normal weight of each of its channels.
#[derive(Debug, Clone)]
pub struct CamHead {
    /// The ONNX tensor the pooling reads, `[1, C, H, W]`.
    pub features: String,
    /// `w_covid,k - w_normal,k` for each channel `k`.
    pub weights: Vec<f32>,
    /// `b_covid - b_normal`: the logit difference is the map's mean plus this.
    pub bias: f32,
}

impl CamHead {
    /// Finds the head in `onnx`: a `GlobalAveragePool`, then (through `Flatten`) a `Gemm` of
    /// two outputs, covid first. `None` when the network is not of that shape.
    pub fn find(onnx: &[u8]) -> Result<Option<CamHead>, Error> {
        let proto = tract_onnx::onnx()
            .proto_model_for_read(&mut Cursor::new(onnx))
            .map_err(|e| Error::Model(e.to_string()))?;
        Ok(CamHead::of(&proto))
    }

    /// [`CamHead::find`] on a parsed model (the classifier parses its file once, for the
    /// plan and for this).
    pub fn of(proto: &ModelProto) -> Option<CamHead> {
        head_of(proto)
    }
}

fn head_of(proto: &ModelProto) -> Option<CamHead> {
    let graph = proto.graph.as_ref()?;
    let pool = graph
        .node
        .iter()
        .find(|n| n.op_type == "GlobalAveragePool")?;
    let features = pool.input.first()?.clone();
    let flat = consumer(&graph.node, pool.output.first()?)?;
    let gemm = if flat.op_type == "Flatten" {
        consumer(&graph.node, flat.output.first()?)?
    } else {
        flat
    };
    if gemm.op_type != "Gemm" {
        return None;
    }
    let trans_b = gemm
        .attribute
        .iter()
        .find(|a| a.name == "transB")
        .is_some_and(|a| a.i == 1);
    let weight = gemm.input.get(1)?;
    let b = graph.initializer.iter().find(|t| &t.name == weight)?;
    let w = floats(b)?;
    let dims: Vec<usize> = b
        .dims
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .collect::<Option<_>>()?;
    let (out, channels) = match (dims.as_slice(), trans_b) {
        ([o, c], true) => (*o, *c),
        ([c, o], false) => (*o, *c),
        _ => return None,
    };
    if out != 2 || w.len() != out * channels {
        return None;
    }
    let at = |class: usize, k: usize| {
        if trans_b {
            w[class * channels + k]
        } else {
            w[k * out + class]
        }
    };
    let bias = match gemm.input.get(2) {
        Some(name) => {
            let b = floats(graph.initializer.iter().find(|t| &t.name == name)?)?;
            b.first()? - b.get(1)?
        }
        None => 0.0,
    };
    Some(CamHead {
        features,
        weights: (0..channels).map(|k| at(0, k) - at(1, k)).collect(),
        bias,
    })
}

fn consumer<'a>(nodes: &'a [NodeProto], tensor: &str) -> Option<&'a NodeProto> {
    nodes.iter().find(|n| n.input.iter().any(|i| i == tensor))
}

/// A float initializer's values, from `float_data` or little-endian `raw_data`.
pub fn floats(t: &TensorProto) -> Option<Vec<f32>> {
    const FLOAT: i32 = 1;
    if t.data_type != FLOAT {
        return None;
    }
    if !t.float_data.is_empty() {
        return Some(t.float_data.clone());
    }
    Some(
        t.raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}

/// The map of one film: per cell of the last feature grid, the evidence for COVID (positive)
/// or for a normal chest (negative), in logit units before calibration.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivationMap {
    /// Cells across.
    pub width: usize,
    /// Cells down.
    pub height: usize,
    /// Row-major, `width * height` values.
    pub values: Vec<f32>,
}

impl ActivationMap {
    /// The map from the features `[1, C, H, W]` of one film.
    pub fn from_features(features: &Tensor, head: &CamHead) -> Result<ActivationMap, Error> {
        let view = features
            .to_plain_array_view::<f32>()
            .map_err(|e| Error::Model(e.to_string()))?;
        let shape = view.shape().to_vec();
        let [1, channels, height, width] = shape[..] else {
            return Err(Error::Model(format!(
                "the feature output is {shape:?}, expected [1, C, H, W]"
            )));
        };
        if channels != head.weights.len() {
            return Err(Error::Model(format!(
                "{channels} feature channels for {} weights",
                head.weights.len()
            )));
        }
        let flat: Vec<f32> = view.iter().copied().collect();
        let cells = width * height;
        let mut values = vec![0f32; cells];
        for (k, w) in head.weights.iter().enumerate() {
            for (v, f) in values.iter_mut().zip(&flat[k * cells..(k + 1) * cells]) {
                *v += w * f;
            }
        }
        Ok(ActivationMap {
            width,
            height,
            values,
        })
    }

    /// The map of the evidence for `label`, upsampled to `size` x `size` (bilinear, cell
    /// centres), scaled to `[0, 1]` by its largest value; evidence against it is 0.
    pub fn upsampled(&self, label: Label, size: u32) -> Vec<f32> {
        let sign = match label {
            Label::Covid => 1.0,
            Label::Normal => -1.0,
        };
        let peak = self.values.iter().map(|v| sign * v).fold(0f32, f32::max);
        let scale = if peak > 0.0 { 1.0 / peak } else { 0.0 };
        let cells: Vec<f32> = self
            .values
            .iter()
            .map(|v| (sign * v).max(0.0) * scale)
            .collect();
        // Where each output column or row falls between two cell centres.
        let taps = |n: usize| -> Vec<(usize, usize, f32)> {
            (0..size)
                .map(|p| {
                    let g = ((p as f32 + 0.5) / size as f32 * n as f32 - 0.5)
                        .clamp(0.0, (n - 1) as f32);
                    let i = g.floor() as usize;
                    (i, (i + 1).min(n - 1), g.fract())
                })
                .collect()
        };
        let (columns, rows) = (taps(self.width), taps(self.height));
        let mut out = Vec::with_capacity((size * size) as usize);
        let mut line = vec![0f32; self.width];
        for &(y0, y1, fy) in &rows {
            // The row of cells at this height, then each pixel between two of them.
            for (x, l) in line.iter_mut().enumerate() {
                let (top, bottom) = (cells[y0 * self.width + x], cells[y1 * self.width + x]);
                *l = top + (bottom - top) * fy;
            }
            out.extend(
                columns
                    .iter()
                    .map(|&(x0, x1, fx)| line[x0] + (line[x1] - line[x0]) * fx),
            );
        }
        out
    }

    /// The map of the evidence for `label` blended over `film` (the prepared image the
    /// model read): gray where the model found none, through red to yellow where it found
    /// the most.
    pub fn overlay(&self, film: &GrayImage, label: Label) -> RgbImage {
        let (w, h) = film.dimensions();
        let heat = self.upsampled(label, w);
        let lut = colour_lut();
        let mut rgb = vec![0u8; (w * h * 3) as usize];
        for ((px, &g), &v) in rgb.chunks_exact_mut(3).zip(film.as_raw()).zip(&heat) {
            // Rounded by adding a half and truncating: `round` is a libm call per pixel.
            let level = (v.clamp(0.0, 1.0) * 255.0 + 0.5) as usize;
            let ([r, gr, b], alpha) = lut[level.min(255)];
            let g = u32::from(g) * (256 - alpha);
            let blend = |c: u32| ((g + c * alpha + 128) >> 8) as u8;
            px.copy_from_slice(&[blend(r), blend(gr), blend(b)]);
        }
        RgbImage::from_raw(w, h, rgb).unwrap_or_else(|| RgbImage::new(w, h))
    }
}

/// Colour and opacity per level of evidence, built once per process: red, then yellow, then
/// white, more opaque as the evidence grows (alpha in 1/256ths).
fn colour_lut() -> &'static [([u32; 3], u32); 256] {
    static LUT: std::sync::OnceLock<[([u32; 3], u32); 256]> = std::sync::OnceLock::new();
    LUT.get_or_init(|| {
        std::array::from_fn(|i| {
            let v = i as f32 / 255.0;
            let colour = [
                (3.0 * v).min(1.0),
                (3.0 * v - 1.0).clamp(0.0, 1.0),
                (3.0 * v - 2.0).clamp(0.0, 1.0),
            ]
            .map(|c| (c * 255.0).round() as u32);
            (colour, (0.65 * v.sqrt() * 256.0).round() as u32)
        })
    })
}

/// The heatmap of an answer: the overlay as a PNG the size of the prepared image, and the
/// raw map it was drawn from.
#[derive(Debug, Clone, Serialize)]
pub struct Heatmap {
    /// The PNG, `size` x `size`; base64 in JSON.
    #[serde(serialize_with = "base64_string")]
    pub png: Vec<u8>,
    /// Side of the PNG, in pixels: the prepared image's.
    pub size: u32,
    /// The label whose evidence is drawn.
    pub label: Label,
    /// The raw map's grid.
    pub grid: Grid,
}

/// The raw class activation map.
#[derive(Debug, Clone, Serialize)]
pub struct Grid {
    /// Cells across.
    pub width: usize,
    /// Cells down.
    pub height: usize,
    /// Row-major evidence for COVID (negative: for a normal chest), logit units.
    pub values: Vec<f32>,
}

/// Bytes as a standard base64 string: the PNG is encoded once, when an answer is written as
/// JSON, and the CLI writes the bytes themselves.
fn base64_string<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    use base64::Engine as _;
    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
}

impl Heatmap {
    /// Draws `map` over `film` for `label` and encodes it.
    pub fn new(map: &ActivationMap, film: &GrayImage, label: Label) -> Result<Heatmap, Error> {
        let overlay = map.overlay(film, label);
        let mut png = Vec::new();
        // Paeth-filtered, fast deflate: the smallest and quickest of the encoder's choices on
        // these overlays (about 53 KB and 0.6 ms for 192x192).
        image::codecs::png::PngEncoder::new_with_quality(
            &mut png,
            image::codecs::png::CompressionType::Fast,
            image::codecs::png::FilterType::Paeth,
        )
        .write_image(
            overlay.as_raw(),
            overlay.width(),
            overlay.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| Error::Model(format!("heatmap PNG: {e}")))?;
        Ok(Heatmap {
            png,
            size: overlay.width(),
            label,
            grid: Grid {
                width: map.width,
                height: map.height,
                values: map.values.clone(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> ActivationMap {
        // Evidence for COVID top left, for normal bottom right.
        ActivationMap {
            width: 2,
            height: 2,
            values: vec![2.0, 0.0, 0.0, -1.0],
        }
    }

    #[test]
    fn each_label_sees_its_own_evidence() {
        let covid = map().upsampled(Label::Covid, 4);
        assert_eq!(covid[0], 1.0);
        assert_eq!(covid[15], 0.0);
        let normal = map().upsampled(Label::Normal, 4);
        assert_eq!(normal[0], 0.0);
        assert_eq!(normal[15], 1.0);
        assert!(covid.iter().chain(&normal).all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn no_evidence_leaves_the_film_gray() {
        let flat = ActivationMap {
            width: 2,
            height: 2,
            values: vec![-1.0; 4],
        };
        let film = GrayImage::from_pixel(8, 8, image::Luma([77]));
        let out = flat.overlay(&film, Label::Covid);
        assert!(out.pixels().all(|p| p.0 == [77, 77, 77]));
    }
}
