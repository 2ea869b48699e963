//! Does the served pipeline keep its answer when a film changes in ways that say nothing
//! about the lungs? Each fixture X-ray is altered as films from another hospital or
//! collection differ (a frame, a size, a framing, an exposure, a burned-in label, a turn,
//! film grain, a console's sharpening, softening or CLAHE, a mirror image, a JPEG quality) and
//! classified again through the embedded model.
//!
//! The figures follow the shipped model rather than bounds set for one recipe's behaviour:
//! `model/robustness.json` states, for the model whose sha256 it names, how many labels each
//! alteration flips and how far it moves P(covid) on average, and the model card shows them.
//! This test recomputes every figure through the served code and fails when one leaves its
//! noise (a flip count within one, or its square root, of the stated count; a mean change
//! within 0.02 or a fifth of the stated one): a change to decoding, preprocessing or the
//! model that moves the answers shows here, and so does a new model shipped without its
//! figures. `XRAY_WRITE_DOCS=1 cargo test --test robustness` writes the figures for a new
//! model, and docs/robustness.md beside them.

mod common;

use covid_xray::Classifier;
use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, GrayImage, ImageFormat, Luma};
use serde::{Deserialize, Serialize};

/// An alteration of a gray film, with the name the report prints.
struct Alteration {
    name: &'static str,
    apply: fn(&GrayImage) -> GrayImage,
}

/// The figures `model/robustness.json` states for one alteration.
#[derive(Debug, Serialize, Deserialize)]
struct Stated {
    name: String,
    flips: usize,
    mean_change: f32,
    largest_change: f32,
}

/// `model/robustness.json`: the model the figures were measured on, and the figures.
#[derive(Debug, Serialize, Deserialize)]
struct Figures {
    model_sha256: String,
    version: String,
    fixtures: usize,
    alterations: Vec<Stated>,
}

/// How far a recomputed flip count may lie from the stated one: one, or the square root of
/// the stated count (a count's own sampling noise), whichever is more.
fn flip_noise(stated: usize) -> usize {
    ((stated as f64).sqrt().ceil() as usize).max(1)
}

/// How far a recomputed mean change of P(covid) may lie from the stated one.
fn mean_noise(stated: f32) -> f32 {
    (0.2 * stated).max(0.02)
}

fn framed(img: &GrayImage, value: u8) -> GrayImage {
    let (w, h) = img.dimensions();
    let (dx, dy) = (w * 6 / 100 + 1, h * 6 / 100 + 1);
    let mut out = GrayImage::from_pixel(w + 2 * dx, h + 2 * dy, Luma([value]));
    image::imageops::replace(&mut out, img, i64::from(dx), i64::from(dy));
    out
}

fn map_levels(img: &GrayImage, f: impl Fn(f32) -> f32) -> GrayImage {
    let lut: Vec<u8> = (0..=255u8)
        .map(|v| (f(f32::from(v) / 255.0) * 255.0).round().clamp(0.0, 255.0) as u8)
        .collect();
    GrayImage::from_fn(img.width(), img.height(), |x, y| {
        Luma([lut[usize::from(img.get_pixel(x, y).0[0])]])
    })
}

/// The film turned by `degrees` about its centre (bilinear), corners filled black.
fn rotated(img: &GrayImage, degrees: f32) -> GrayImage {
    let (w, h) = img.dimensions();
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let at = |x: i64, y: i64| -> f32 {
        if x < 0 || y < 0 || x >= i64::from(w) || y >= i64::from(h) {
            0.0
        } else {
            f32::from(img.get_pixel(x as u32, y as u32).0[0])
        }
    };
    GrayImage::from_fn(w, h, |x, y| {
        let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
        let sx = cos * dx + sin * dy + cx - 0.5;
        let sy = -sin * dx + cos * dy + cy - 0.5;
        let (x0, y0) = (sx.floor(), sy.floor());
        let (fx, fy) = (sx - x0, sy - y0);
        let (x0, y0) = (x0 as i64, y0 as i64);
        let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1, y0) * fx;
        let bottom = at(x0, y0 + 1) * (1.0 - fx) + at(x0 + 1, y0 + 1) * fx;
        Luma([(top * (1.0 - fy) + bottom * fy).round() as u8])
    })
}

/// The film as a console that sharpens would send it: `v + amount * (v - blur(v))`, with a
/// Gaussian blur of `sigma_frac` of the film's width, the large-kernel unsharp masking of
/// modern X-ray consoles (amount > 0) or a softer film (amount < 0).
fn processed(img: &GrayImage, sigma_frac: f32, amount: f32) -> GrayImage {
    let blurred = image::imageops::blur(img, sigma_frac * img.width() as f32);
    GrayImage::from_fn(img.width(), img.height(), |x, y| {
        let v = f32::from(img.get_pixel(x, y).0[0]);
        let b = f32::from(blurred.get_pixel(x, y).0[0]);
        Luma([(v + amount * (v - b)).round().clamp(0.0, 255.0) as u8])
    })
}

/// The film as a viewer or console applying CLAHE would send it: contrast-limited adaptive
/// histogram equalisation (Zuiderveld 1994) over `tiles` x `tiles` regions, each histogram
/// clipped at `clip` times its mean bin with the excess spread over all bins, and each pixel
/// blending the mappings of its four nearest tile centres. The algorithm of
/// `training/train.py`'s `clahe`, which the model was trained against; that one runs on the
/// prepared film and equalises again, this one on the film as sent, before serving's trim,
/// resize and equalisation.
fn clahe(img: &GrayImage, tiles: u32, clip: f32) -> GrayImage {
    let (w, h) = img.dimensions();
    let (tw, th) = (w.div_ceil(tiles), h.div_ceil(tiles));
    let tile_of =
        |x: u32, y: u32| ((y / th).min(tiles - 1) * tiles + (x / tw).min(tiles - 1)) as usize;
    let mut hist = vec![[0f32; 256]; (tiles * tiles) as usize];
    for (x, y, p) in img.enumerate_pixels() {
        hist[tile_of(x, y)][usize::from(p.0[0])] += 1.0;
    }
    let luts: Vec<[f32; 256]> = hist
        .iter()
        .map(|h| {
            let n: f32 = h.iter().sum();
            let limit = (clip * n / 256.0).max(1.0);
            let excess: f32 = h.iter().map(|&c| (c - limit).max(0.0)).sum();
            let mut lut = [0f32; 256];
            let mut cdf = 0.0;
            for (v, &c) in h.iter().enumerate() {
                cdf += c.min(limit) + excess / 256.0;
                lut[v] = 255.0 * cdf / n.max(1.0);
            }
            lut
        })
        .collect();
    // Position in tile-centre units along one axis: the two centres to blend and the weight.
    let centres = |p: u32, t: u32| {
        let f = ((p as f32 + 0.5) / t as f32 - 0.5).clamp(0.0, (tiles - 1) as f32);
        let i = (f.floor() as u32).min(tiles.saturating_sub(2));
        (i, (i + 1).min(tiles - 1), f - i as f32)
    };
    GrayImage::from_fn(w, h, |x, y| {
        let v = usize::from(img.get_pixel(x, y).0[0]);
        let (x0, x1, wx) = centres(x, tw);
        let (y0, y1, wy) = centres(y, th);
        let at = |tx: u32, ty: u32| luts[(ty * tiles + tx) as usize][v];
        let top = at(x0, y0) * (1.0 - wx) + at(x1, y0) * wx;
        let bottom = at(x0, y1) * (1.0 - wx) + at(x1, y1) * wx;
        Luma([(top * (1.0 - wy) + bottom * wy).round().clamp(0.0, 255.0) as u8])
    })
}

/// Film grain: a fixed pseudo-random pattern of +-8 levels, the same for every run.
fn grainy(img: &GrayImage) -> GrayImage {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut out = img.clone();
    for p in out.pixels_mut() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let noise = (state % 17) as i16 - 8;
        p.0[0] = (i16::from(p.0[0]) + noise).clamp(0, 255) as u8;
    }
    out
}

const ALTERATIONS: &[Alteration] = &[
    Alteration {
        name: "black frame, 6% each side",
        apply: |img| framed(img, 0),
    },
    Alteration {
        name: "white frame, 6% each side",
        apply: |img| framed(img, 255),
    },
    Alteration {
        name: "twice the size (Catmull-Rom)",
        apply: |img| {
            let (w, h) = img.dimensions();
            image::imageops::resize(img, w * 2, h * 2, image::imageops::FilterType::CatmullRom)
        },
    },
    Alteration {
        name: "three fifths of the size (triangle)",
        apply: |img| {
            let (w, h) = img.dimensions();
            image::imageops::resize(
                img,
                w * 3 / 5,
                h * 3 / 5,
                image::imageops::FilterType::Triangle,
            )
        },
    },
    Alteration {
        name: "central 80% (tighter framing)",
        apply: |img| {
            let (w, h) = img.dimensions();
            image::imageops::crop_imm(img, w / 10, h / 10, w * 8 / 10, h * 8 / 10).to_image()
        },
    },
    Alteration {
        name: "gamma 0.7 (brighter)",
        apply: |img| map_levels(img, |v| v.powf(0.7)),
    },
    Alteration {
        name: "contrast 0.75",
        apply: |img| map_levels(img, |v| (v - 0.5) * 0.75 + 0.5),
    },
    Alteration {
        name: "burned-in label, top left",
        apply: |img| {
            let mut out = img.clone();
            let (w, h) = img.dimensions();
            let (x0, y0) = (w / 20, h / 20);
            for y in y0..y0 + h / 16 {
                for x in x0..x0 + w / 5 {
                    // Text-like: bright strokes on the film, three pixels on, two off.
                    if (x + y / 3) % 5 < 3 {
                        out.put_pixel(x, y, Luma([250]));
                    }
                }
            }
            out
        },
    },
    Alteration {
        name: "turned 5 degrees",
        apply: |img| rotated(img, 5.0),
    },
    Alteration {
        name: "film grain, +-8 levels",
        apply: grainy,
    },
    Alteration {
        name: "sharpened (unsharp mask, 4%, x1)",
        apply: |img| processed(img, 0.04, 1.0),
    },
    Alteration {
        name: "softened (12%, x-0.5)",
        apply: |img| processed(img, 0.12, -0.5),
    },
    Alteration {
        name: "CLAHE, 8x8 tiles, clip 4",
        apply: |img| clahe(img, 8, 4.0),
    },
    Alteration {
        name: "mirror image",
        apply: image::imageops::flip_horizontal,
    },
];

/// What one alteration did over all fixtures.
struct Row {
    name: String,
    /// The fixtures whose label flipped, with P(covid) before and after.
    flipped: Vec<String>,
    mean: f32,
    max: f32,
}

/// A film as a JPEG of the given quality.
fn jpeg(img: &GrayImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img)
        .expect("encode JPEG");
    out
}

#[test]
fn answers_survive_alterations_that_say_nothing_about_the_lungs() {
    let classifier = Classifier::embedded().expect("embedded model loads");
    let fixtures = common::fixture_xrays();
    // The fixture decoded to gray and re-encoded losslessly is the reference each
    // alteration is compared with, so the comparison measures the alteration alone.
    let films: Vec<(String, GrayImage, f32)> = fixtures
        .iter()
        .map(|f| {
            let bytes = std::fs::read(&f.path).expect("read fixture");
            let gray = image::load_from_memory(&bytes)
                .expect("decode")
                .into_luma8();
            let png = common::encode(&DynamicImage::ImageLuma8(gray.clone()), ImageFormat::Png);
            let p = classifier
                .classify(&png)
                .expect("classify")
                .probabilities
                .covid;
            (f.name.clone(), gray, p)
        })
        .collect();
    let threshold = classifier.threshold();

    let mut rows: Vec<Row> = Vec::new();
    let mut measure = |name: String, encode: &dyn Fn(&GrayImage) -> Vec<u8>| {
        let mut flipped = Vec::new();
        let mut sum = 0.0f32;
        let mut max = 0.0f32;
        for (film, gray, before) in &films {
            let after = classifier
                .classify(&encode(gray))
                .unwrap_or_else(|e| panic!("{film}, {name}: {e}"))
                .probabilities
                .covid;
            if (after >= threshold) != (*before >= threshold) {
                flipped.push(format!("{film} {before:.2}->{after:.2}"));
            }
            let d = (after - before).abs();
            sum += d;
            max = max.max(d);
        }
        rows.push(Row {
            name,
            flipped,
            mean: sum / films.len() as f32,
            max,
        });
    };
    for a in ALTERATIONS {
        measure(a.name.to_string(), &|g| {
            common::encode(&DynamicImage::ImageLuma8((a.apply)(g)), ImageFormat::Png)
        });
    }
    measure("JPEG quality 50".to_string(), &|g| jpeg(g, 50));

    println!(
        "{:<36} {:>6} {:>10} {:>10}",
        "alteration", "flips", "mean |dP|", "max |dP|"
    );
    for Row {
        name,
        flipped,
        mean,
        max,
        ..
    } in &rows
    {
        println!(
            "{name:<36} {:>3}/{} {mean:>10.4} {max:>10.4}  {}",
            flipped.len(),
            films.len(),
            flipped.join(", ")
        );
    }
    let figures_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("model/robustness.json");
    if std::env::var_os("XRAY_WRITE_DOCS").is_some() {
        let figures = Figures {
            model_sha256: classifier.info().sha256.clone(),
            version: classifier.info().version.clone(),
            fixtures: films.len(),
            alterations: rows
                .iter()
                .map(|r| Stated {
                    name: r.name.clone(),
                    flips: r.flipped.len(),
                    mean_change: (r.mean * 1e4).round() / 1e4,
                    largest_change: (r.max * 1e4).round() / 1e4,
                })
                .collect(),
        };
        let text = serde_json::to_string_pretty(&figures).expect("figures as JSON") + "\n";
        std::fs::write(&figures_path, text).expect("write model/robustness.json");
        write_doc(&classifier, films.len(), &rows, &figures);
    }
    let text = std::fs::read_to_string(&figures_path).expect("model/robustness.json");
    let figures: Figures = serde_json::from_str(&text).expect("model/robustness.json parses");
    assert_eq!(
        figures.model_sha256,
        classifier.info().sha256,
        "model/robustness.json states the figures of another model: measure the shipped one \
         with XRAY_WRITE_DOCS=1 cargo test --test robustness"
    );
    assert_eq!(
        figures.fixtures,
        films.len(),
        "the fixtures changed since the figures"
    );
    assert_eq!(
        figures
            .alterations
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>(),
        rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        "the alterations changed since the figures"
    );
    for (row, stated) in rows.iter().zip(&figures.alterations) {
        let flips = row.flipped.len();
        assert!(
            flips.abs_diff(stated.flips) <= flip_noise(stated.flips),
            "{}: {flips} of {} labels flipped where the card states {}: {}",
            row.name,
            films.len(),
            stated.flips,
            row.flipped.join(", ")
        );
        assert!(
            (row.mean - stated.mean_change).abs() <= mean_noise(stated.mean_change),
            "{}: P(covid) moved {:.3} on average where the card states {:.3}",
            row.name,
            row.mean,
            stated.mean_change
        );
    }
}

/// `XRAY_WRITE_DOCS=1 cargo test --test robustness` writes the table the docs show, so no
/// figure of it is copied by hand.
fn write_doc(classifier: &Classifier, films: usize, rows: &[Row], figures: &Figures) {
    let info = classifier.info();
    let mut text = format!(
        "# Robustness: alterations that say nothing about the lungs\n\n\
         Written by `XRAY_WRITE_DOCS=1 cargo test --test robustness`; edit `tests/robustness.rs`, \
         not this file.\n\n\
         Each of the {films} fixture X-rays (held-out patients, `tests/fixtures/`) is altered as \
         films from another hospital differ and classified again through the whole served \
         pipeline, model `{}` {} (sha256 `{}…`). A flip is a label that crosses the threshold \
         ({:.3}). These figures are also `model/robustness.json`, which the test holds the \
         served pipeline to, each within its noise (flips within one or the square root of \
         the count, mean change within 0.02 or a fifth).\n\n\
         | alteration | labels flipped | mean change of P(covid) | largest change |\n\
         |---|---|---|---|\n",
        info.name,
        info.version,
        &info.sha256[..16.min(info.sha256.len())],
        classifier.threshold()
    );
    for row in &figures.alterations {
        text.push_str(&format!(
            "| {} | {}/{films} | {:.3} | {:.3} |\n",
            row.name, row.flips, row.mean_change, row.largest_change
        ));
    }
    let flips: Vec<&str> = rows
        .iter()
        .flat_map(|r| r.flipped.iter().map(String::as_str))
        .collect();
    if !flips.is_empty() {
        text.push_str(&format!(
            "\nThe flips, as `fixture P(covid) before->after`: {}.\n",
            flips.join("; ")
        ));
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::write(root.join("docs/robustness.md"), &text).expect("write docs/robustness.md");
    // The same table in the model card, between the markers training/evaluate.py leaves.
    let card_path = root.join("model/README.md");
    let card = std::fs::read_to_string(&card_path).expect("model/README.md");
    let (begin, end) = ("<!-- robustness:begin -->", "<!-- robustness:end -->");
    if let (Some(b), Some(e)) = (card.find(begin), card.find(end)) {
        let table = text
            .split_once("\n| alteration")
            .map(|(_, rest)| format!("| alteration{rest}"))
            .unwrap_or_default();
        let section = format!(
            "\n### Robustness through the served pipeline\n\n\
             Each of the {films} fixture X-rays altered as films from another hospital differ and \
             classified again by the served code (`tests/robustness.rs`, which holds the pipeline to \
             these figures within their noise; [docs/robustness.md](../docs/robustness.md)).\n\n{table}"
        );
        let updated = format!("{}{begin}{section}{}", &card[..b], &card[e..]);
        std::fs::write(&card_path, updated).expect("write model/README.md");
    }
}
