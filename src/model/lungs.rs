//! The lung finder: a small segmentation network that marks the lung fields of a prepared
//! whole film, and the box around them that the classifier is shown.
//!
//! Every model up to 3.2.1 read the whole film, and with it the borders, burned-in labels,
//! framing and processing that told the pool's collections apart: at hospitals in no
//! collection it called half of the normal films COVID. Cropping each film to its lungs, in
//! the one preprocessing path that training and serving share, takes most of that away.
//!
//! The network sees the film as the classifier used to (trimmed, 192x192, equalised) and
//! answers P(lung) on a 24x24 grid. [`lung_box`] keeps the connected regions of lung large
//! enough to be one, boxes them with a margin, and says "none" when there is too little lung
//! to trust; the classifier then reads the whole film and the answer carries the
//! `lungs_not_found` warning.

use tract_onnx::prelude::*;

use crate::error::Error;
use crate::imaging::preprocess::{self, INPUT_SIZE};

/// Cells a side of the finder's output.
pub const GRID: usize = 24;
/// A cell is lung when its probability is at least this.
pub const CELL_THRESHOLD: f32 = 0.5;
/// Fewer lung cells than this (about 3.5% of the film) is no lung field at all.
pub const MIN_CELLS: usize = 20;
/// A region smaller than this share of the largest one is noise, not a lung.
pub const MIN_REGION_SHARE: f32 = 0.125;
/// The box grows by this share of its width and height on each side: the grid is coarse
/// (8 pixels a cell), and the costophrenic angles and apices sit at the lungs' very edge.
pub const MARGIN: f32 = 0.08;

/// A box in coordinates relative to the prepared whole film: 0 is its left or top edge,
/// 1 its right or bottom edge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LungBox {
    /// Left edge.
    pub x0: f32,
    /// Top edge.
    pub y0: f32,
    /// Right edge.
    pub x1: f32,
    /// Bottom edge.
    pub y1: f32,
}

impl LungBox {
    /// The box in pixels of the film whose content box (what trimming kept) is `content`,
    /// rounded outwards: `(x, y, width, height)`.
    pub fn in_film(&self, (cx, cy, cw, ch): (u32, u32, u32, u32)) -> (u32, u32, u32, u32) {
        let edge = |start: u32, len: u32, t: f32, up: bool| {
            let v = f64::from(t.clamp(0.0, 1.0)) * f64::from(len);
            let v = if up { v.ceil() } else { v.floor() };
            start + (v as u32).min(len)
        };
        let (x0, x1) = (edge(cx, cw, self.x0, false), edge(cx, cw, self.x1, true));
        let (y0, y1) = (edge(cy, ch, self.y0, false), edge(cy, ch, self.y1, true));
        (x0, y0, (x1 - x0).max(1), (y1 - y0).max(1))
    }
}

/// The box around the lung fields of a [`GRID`] x [`GRID`] map of P(lung), row-major, or
/// `None` when the map holds too little lung to trust.
pub fn lung_box(probs: &[f32]) -> Option<LungBox> {
    if probs.len() != GRID * GRID {
        return None;
    }
    let lung: Vec<bool> = probs.iter().map(|&p| p >= CELL_THRESHOLD).collect();
    // Connected regions (4-neighbours), each as its cells.
    let mut region = vec![usize::MAX; GRID * GRID];
    let mut regions: Vec<Vec<usize>> = Vec::new();
    for start in 0..GRID * GRID {
        if !lung[start] || region[start] != usize::MAX {
            continue;
        }
        let id = regions.len();
        let mut cells = vec![start];
        region[start] = id;
        let mut i = 0;
        while let Some(&c) = cells.get(i) {
            i += 1;
            let (r, col) = (c / GRID, c % GRID);
            let neighbours = [
                (r > 0).then(|| c - GRID),
                (r + 1 < GRID).then(|| c + GRID),
                (col > 0).then(|| c - 1),
                (col + 1 < GRID).then(|| c + 1),
            ];
            for n in neighbours.into_iter().flatten() {
                if lung[n] && region[n] == usize::MAX {
                    region[n] = id;
                    cells.push(n);
                }
            }
        }
        regions.push(cells);
    }
    let largest = regions.iter().map(Vec::len).max()?;
    let kept: Vec<usize> = regions
        .iter()
        .filter(|r| r.len() as f32 >= largest as f32 * MIN_REGION_SHARE)
        .flatten()
        .copied()
        .collect();
    if kept.len() < MIN_CELLS {
        return None;
    }
    let (mut r0, mut r1, mut c0, mut c1) = (GRID, 0, GRID, 0);
    for &c in &kept {
        let (r, col) = (c / GRID, c % GRID);
        (r0, r1, c0, c1) = (r0.min(r), r1.max(r), c0.min(col), c1.max(col));
    }
    let g = GRID as f32;
    let (x0, x1) = (c0 as f32 / g, (c1 + 1) as f32 / g);
    let (y0, y1) = (r0 as f32 / g, (r1 + 1) as f32 / g);
    let (mx, my) = ((x1 - x0) * MARGIN, (y1 - y0) * MARGIN);
    Some(LungBox {
        x0: (x0 - mx).max(0.0),
        y0: (y0 - my).max(0.0),
        x1: (x1 + mx).min(1.0),
        y1: (y1 + my).min(1.0),
    })
}

/// The lung segmentation network as a tract plan, built once and shared.
#[derive(Clone)]
pub struct LungFinder {
    plan: Arc<TypedSimplePlan>,
}

impl std::fmt::Debug for LungFinder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LungFinder").finish_non_exhaustive()
    }
}

impl LungFinder {
    /// Builds the plan from the finder's ONNX bytes.
    pub fn from_onnx(onnx: &[u8]) -> Result<LungFinder, Error> {
        let plan = super::plan::runnable_plan(onnx, None)
            .map_err(|e| Error::Model(format!("lung finder: {e}")))?;
        Ok(LungFinder { plan })
    }

    /// P(lung) on the [`GRID`] x [`GRID`] grid of a prepared whole film, row-major.
    pub fn map(&self, whole: &image::GrayImage) -> Result<Vec<f32>, Error> {
        let side = INPUT_SIZE as usize;
        if whole.dimensions() != (INPUT_SIZE, INPUT_SIZE) {
            return Err(Error::Model(format!(
                "lung finder input is {:?}, expected {side}x{side}",
                whole.dimensions()
            )));
        }
        let data = preprocess::to_tensor_data(whole);
        let input = Tensor::from_shape(&[1, 1, side, side], &data)
            .map_err(|e| Error::Model(format!("lung finder: {e}")))?;
        let outputs = self
            .plan
            .run(tvec!(input.into()))
            .map_err(|e| Error::Model(format!("lung finder: {e}")))?;
        let map = outputs
            .first()
            .ok_or_else(|| Error::Model("the lung finder returned no output".into()))?
            .to_plain_array_view::<f32>()
            .map_err(|e| Error::Model(format!("lung finder: {e}")))?
            .iter()
            .map(|&p| if p.is_finite() { p } else { 0.0 })
            .collect::<Vec<f32>>();
        if map.len() != GRID * GRID {
            return Err(Error::Model(format!(
                "the lung finder returned {} values, expected {}",
                map.len(),
                GRID * GRID
            )));
        }
        Ok(map)
    }

    /// The lung box of a prepared whole film, or `None` when it holds too little lung.
    pub fn find(&self, whole: &image::GrayImage) -> Result<Option<LungBox>, Error> {
        self.map(whole).map(|m| lung_box(&m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_with(cells: &[(usize, usize)]) -> Vec<f32> {
        let mut m = vec![0.0; GRID * GRID];
        for &(r, c) in cells {
            m[r * GRID + c] = 0.9;
        }
        m
    }

    fn block(r0: usize, r1: usize, c0: usize, c1: usize) -> Vec<(usize, usize)> {
        (r0..r1)
            .flat_map(|r| (c0..c1).map(move |c| (r, c)))
            .collect()
    }

    #[test]
    fn two_lungs_are_boxed_together_with_a_margin() {
        let mut cells = block(4, 18, 3, 10); // right lung
        cells.extend(block(4, 18, 13, 20)); // left lung
        let b = lung_box(&map_with(&cells)).expect("lungs");
        let g = GRID as f32;
        let (w, h) = ((20.0 - 3.0) / g, (18.0 - 4.0) / g);
        assert!((b.x0 - (3.0 / g - w * MARGIN)).abs() < 1e-6, "{b:?}");
        assert!((b.x1 - (20.0 / g + w * MARGIN)).abs() < 1e-6, "{b:?}");
        assert!((b.y0 - (4.0 / g - h * MARGIN)).abs() < 1e-6, "{b:?}");
        assert!((b.y1 - (18.0 / g + h * MARGIN)).abs() < 1e-6, "{b:?}");
    }

    #[test]
    fn specks_do_not_stretch_the_box() {
        let mut cells = block(5, 17, 4, 11);
        cells.extend(block(5, 17, 13, 20));
        let clean = lung_box(&map_with(&cells)).expect("lungs");
        cells.push((0, 0));
        cells.push((23, 23));
        assert_eq!(lung_box(&map_with(&cells)), Some(clean));
    }

    #[test]
    fn too_little_lung_is_none() {
        assert_eq!(lung_box(&map_with(&block(10, 13, 10, 15))), None); // 15 cells
        assert_eq!(lung_box(&vec![0.0; GRID * GRID]), None);
        assert_eq!(lung_box(&[0.9; 3]), None);
        // Not-a-number counts as no lung, never as a box.
        assert_eq!(lung_box(&vec![f32::NAN; GRID * GRID]), None);
    }

    #[test]
    fn boxes_map_outwards_into_the_film() {
        let b = LungBox {
            x0: 0.1,
            y0: 0.2,
            x1: 0.9,
            y1: 0.95,
        };
        // A 1000 x 800 film whose content box starts at (10, 20).
        assert_eq!(b.in_film((10, 20, 1000, 800)), (110, 180, 800, 600));
        let whole = LungBox {
            x0: 0.0,
            y0: 0.0,
            x1: 1.0,
            y1: 1.0,
        };
        assert_eq!(whole.in_film((3, 4, 5, 6)), (3, 4, 5, 6));
    }
}
