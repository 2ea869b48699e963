//! From a decoded film to what the classifier reads: the one preprocessing path of serving
//! and of training (`xray preprocess` writes what training reads through it).
//!
//! A model's card names the path it was trained with, and a model is only ever served
//! through that path:
//! - [`PREPROCESS_VERSION`]: the whole film, trimmed of uniform borders, resized, equalised;
//! - [`LUNGS_PREPROCESS_VERSION`]: the same, then the [`LungFinder`]'s box around the lung
//!   fields, and the film cropped to that box resized and equalised again;
//! - [`PLAIN_PREPROCESS_VERSION`]: the whole film, trimmed of uniform borders and resized,
//!   not equalised: the network standardises each image itself.

use image::GrayImage;

use super::lungs::{LungBox, LungFinder};
use crate::error::Error;
use crate::imaging::preprocess::{
    self, InputWarning, LUNGS_PREPROCESS_VERSION, PLAIN_PREPROCESS_VERSION, PREPROCESS_VERSION,
};

/// One film through the pipeline, with the steps `xray preprocess` records for training.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// What the classifier reads: 192 x 192, equalised.
    pub input: GrayImage,
    /// The whole film, trimmed, resized and equalised: the lung finder's input.
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
    /// The whole film, not equalised.
    Plain,
}

impl Pipeline {
    /// The name a model card gives this path.
    pub fn version(&self) -> &'static str {
        match self {
            Pipeline::Whole => PREPROCESS_VERSION,
            Pipeline::Lungs(_) => LUNGS_PREPROCESS_VERSION,
            Pipeline::Plain => PLAIN_PREPROCESS_VERSION,
        }
    }

    /// Runs a decoded film through the path.
    pub fn prepare(&self, gray: &GrayImage) -> Result<Prepared, Error> {
        let content = preprocess::content_box(gray);
        let whole_film = |input: GrayImage| Prepared {
            whole: input.clone(),
            input,
            content,
            lungs: None,
            region: content,
            warnings: Vec::new(),
        };
        let finder = match self {
            Pipeline::Plain => return Ok(whole_film(preprocess::resize_region(gray, content))),
            Pipeline::Whole => return Ok(whole_film(preprocess::prepare_region(gray, content))),
            Pipeline::Lungs(finder) => finder,
        };
        let whole = preprocess::prepare_region(gray, content);
        Ok(match finder.find(&whole)? {
            Some(lungs) => {
                let region = lungs.in_film(content);
                Prepared {
                    input: preprocess::prepare_region(gray, region),
                    whole,
                    content,
                    lungs: Some(lungs),
                    region,
                    warnings: Vec::new(),
                }
            }
            None => Prepared {
                input: whole.clone(),
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
        let plain = Pipeline::Plain.prepare(&film()).expect("prepared");
        let whole = Pipeline::Whole.prepare(&film()).expect("prepared");
        assert_eq!(plain.content, (40, 30, 320, 240));
        assert_eq!(plain.content, whole.content);
        assert_eq!(plain.input.dimensions(), (192, 192));
        // Its levels stay where they were; equalisation spreads them apart.
        let levels = |g: &GrayImage| (g.get_pixel(10, 96).0[0], g.get_pixel(181, 96).0[0]);
        assert_eq!(levels(&plain.input), (90, 110));
        let (dark, bright) = levels(&whole.input);
        assert!(bright - dark > 100, "{dark} {bright}");
        assert_eq!(Pipeline::Plain.version(), PLAIN_PREPROCESS_VERSION);
    }
}
