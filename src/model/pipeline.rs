//! From a decoded film to what the classifier reads: the one preprocessing path of serving
//! and of training (`xray preprocess` writes what training reads through it).
//!
//! A model's card names the path it was trained with, and a model is only ever served
//! through that path:
//! - [`PREPROCESS_VERSION`]: the whole film, trimmed of uniform borders, resized, equalised;
//! - [`LUNGS_PREPROCESS_VERSION`]: the same, then the [`LungFinder`]'s box around the lung
//!   fields, and the film cropped to that box resized and equalised again;
//! - [`PLAIN_PREPROCESS_VERSION`]: the whole film, trimmed of uniform borders and resized,
//!   not equalised: the network standardises each image itself;
//! - [`PLAIN_LUNGS_PREPROCESS_VERSION`]: the lung finder's box, as for the lung fields, and
//!   that part of the film resized, not equalised.
//!
//! The equalised paths read [`INPUT_SIZE`] pixels a side; the unequalised ones read the side
//! their card names, so a network of another input size is served through the same code.

use image::GrayImage;

use super::lungs::{LungBox, LungFinder};
use crate::error::Error;
use crate::imaging::Limits;
use crate::imaging::preprocess::{
    self, INPUT_SIZE, InputWarning, LUNGS_PREPROCESS_VERSION, PLAIN_LUNGS_PREPROCESS_VERSION,
    PLAIN_PREPROCESS_VERSION, PREPROCESS_VERSION,
};

/// One film through the pipeline, with the steps `xray preprocess` records for training.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// What the classifier reads: [`Pipeline::input_size`] a side, equalised or not as the
    /// path says.
    pub input: GrayImage,
    /// The whole film, trimmed, resized to [`INPUT_SIZE`] and equalised, whatever the path:
    /// what the lung finder and the chest check read.
    pub whole: GrayImage,
    /// What trimming kept, `(x, y, width, height)` in pixels of the film.
    pub content: (u32, u32, u32, u32),
    /// The lung box relative to `content`, when a lung finder ran and found lungs.
    pub lungs: Option<LungBox>,
    /// The region of the film that `input` shows, in pixels of the film.
    pub region: (u32, u32, u32, u32),
    /// `lungs_not_found` when the finder found none; the input is then the whole film.
    pub warnings: Vec<InputWarning>,
}

/// The preprocessing a model was trained with.
#[derive(Debug, Clone)]
pub enum Pipeline {
    /// The whole film.
    Whole,
    /// The lung fields, found by this network.
    Lungs(LungFinder),
    /// The whole film, not equalised, `size` pixels a side.
    Plain {
        /// The side of the network's input.
        size: u32,
    },
    /// The lung fields, found by this network, not equalised, `size` pixels a side.
    PlainLungs {
        /// The lung finder.
        finder: LungFinder,
        /// The side of the network's input.
        size: u32,
    },
}

impl Pipeline {
    /// The name a model card gives this path.
    pub fn version(&self) -> &'static str {
        match self {
            Pipeline::Whole => PREPROCESS_VERSION,
            Pipeline::Lungs(_) => LUNGS_PREPROCESS_VERSION,
            Pipeline::Plain { .. } => PLAIN_PREPROCESS_VERSION,
            Pipeline::PlainLungs { .. } => PLAIN_LUNGS_PREPROCESS_VERSION,
        }
    }

    /// The side of the square image the network reads.
    pub fn input_size(&self) -> u32 {
        match self {
            Pipeline::Whole | Pipeline::Lungs(_) => INPUT_SIZE,
            Pipeline::Plain { size } | Pipeline::PlainLungs { size, .. } => *size,
        }
    }

    /// The fewest pixels a side that the region this path reads must keep in the decoded
    /// film: the network's input, and the whole film's [`INPUT_SIZE`] (the chest check and
    /// the lung finder read it), whichever is larger. A large JPEG is decoded at reduced
    /// scale only where this holds (`preprocess::decode_read`).
    pub fn decode_side(&self) -> u32 {
        self.input_size().max(INPUT_SIZE)
    }

    /// Decodes `bytes` and runs the film through the path: what serving and `xray preprocess`
    /// both call. A large JPEG is decoded at the coarsest DCT scale whose region keeps
    /// [`Pipeline::decode_side`] pixels ([`preprocess::decode_read`]). Returns the prepared
    /// film, the decoded film it came from (at that scale) and the input's warnings.
    pub fn read(
        &self,
        bytes: &[u8],
        limits: &Limits,
    ) -> Result<(Prepared, GrayImage, Vec<InputWarning>), Error> {
        preprocess::decode_read(bytes, limits, self.decode_side(), |gray| {
            let prepared = self.prepare(gray)?;
            let (_, _, w, h) = prepared.region;
            Ok((prepared, w.min(h)))
        })
    }

    /// Whether the network reads the film unequalised (and standardises it itself).
    pub fn is_plain(&self) -> bool {
        matches!(self, Pipeline::Plain { .. } | Pipeline::PlainLungs { .. })
    }

    /// Runs a decoded film through the path.
    pub fn prepare(&self, gray: &GrayImage) -> Result<Prepared, Error> {
        let content = preprocess::content_box(gray);
        let whole_film = |input: GrayImage, whole: GrayImage| Prepared {
            whole,
            input,
            content,
            lungs: None,
            region: content,
            warnings: Vec::new(),
        };
        // What the network reads of a region: equalised, or resized alone.
        let size = self.input_size();
        let input_of = |region| {
            if self.is_plain() {
                preprocess::resize_region_to(gray, region, size)
            } else {
                preprocess::prepare_region(gray, region)
            }
        };
        let finder = match self {
            Pipeline::Plain { size } => {
                let small = preprocess::resize_region(gray, content);
                let whole = preprocess::equalized(&small);
                let input = if *size == INPUT_SIZE {
                    small
                } else {
                    input_of(content)
                };
                return Ok(whole_film(input, whole));
            }
            Pipeline::Whole => {
                let input = preprocess::prepare_region(gray, content);
                return Ok(whole_film(input.clone(), input));
            }
            Pipeline::Lungs(finder) | Pipeline::PlainLungs { finder, .. } => finder,
        };
        let whole = preprocess::prepare_region(gray, content);
        Ok(match finder.find(&whole)? {
            Some(lungs) => {
                let region = lungs.in_film(content);
                Prepared {
                    input: input_of(region),
                    whole,
                    content,
                    lungs: Some(lungs),
                    region,
                    warnings: Vec::new(),
                }
            }
            None => Prepared {
                input: input_of(content),
                whole,
                content,
                lungs: None,
                region: content,
                warnings: vec![InputWarning::NoLungs],
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A film of two gray levels inside a uniform black border.
    fn film() -> GrayImage {
        GrayImage::from_fn(400, 300, |x, y| {
            let inside = (40..360).contains(&x) && (30..270).contains(&y);
            image::Luma([match (inside, x < 200) {
                (false, _) => 0,
                (true, true) => 90,
                (true, false) => 110,
            }])
        })
    }

    #[test]
    fn the_plain_path_trims_and_resizes_without_equalising() {
        let plain = Pipeline::Plain { size: 192 }
            .prepare(&film())
            .expect("prepared");
        let whole = Pipeline::Whole.prepare(&film()).expect("prepared");
        assert_eq!(plain.content, (40, 30, 320, 240));
        assert_eq!(plain.content, whole.content);
        assert_eq!(plain.input.dimensions(), (192, 192));
        // Its levels stay where they were; equalisation spreads them apart.
        let levels = |g: &GrayImage| (g.get_pixel(10, 96).0[0], g.get_pixel(181, 96).0[0]);
        assert_eq!(levels(&plain.input), (90, 110));
        let (dark, bright) = levels(&whole.input);
        assert!(bright - dark > 100, "{dark} {bright}");
        assert_eq!(
            Pipeline::Plain { size: 192 }.version(),
            PLAIN_PREPROCESS_VERSION
        );
        // The chest check reads the whole film equalised, on every path.
        assert_eq!(plain.whole, whole.whole);
    }

    #[test]
    fn the_plain_path_reads_the_size_its_card_names() {
        let plain = Pipeline::Plain { size: 224 }
            .prepare(&film())
            .expect("prepared");
        assert_eq!(plain.input.dimensions(), (224, 224));
        assert_eq!(plain.whole.dimensions(), (INPUT_SIZE, INPUT_SIZE));
        let levels = |g: &GrayImage| (g.get_pixel(10, 112).0[0], g.get_pixel(213, 112).0[0]);
        assert_eq!(levels(&plain.input), (90, 110));
    }
}
