//! `xray`: the command-line front end. `predict` classifies files; `preprocess` writes the
//! model-input images that training reads, through the same code path serving uses.

// A panic aborts a Lambda sandbox: non-test code returns errors instead.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::io::{IsTerminal, Write};

use clap::{Parser, Subcommand};
use covid_xray::contract::{Answer, ApiError, CliLine, ErrorBody};
use covid_xray::imaging::preprocess::{self, Limits};
use covid_xray::model::EMBEDDED_LUNGS;
use covid_xray::model::lungs::LungFinder;
use covid_xray::model::pipeline::Pipeline;
use covid_xray::{Classifier, Error};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "xray",
    version,
    about = "COVID-19 vs normal chest X-ray classifier (educational, not a medical device)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Classify X-rays. PATHs are files or directories (searched recursively for .jpg, .jpeg,
    /// .png, .dcm and .dicom). With --json, one JSON object per image on stdout.
    Predict {
        /// Print one JSON object per image instead of a table.
        #[arg(long)]
        json: bool,
        /// Also draw where the model looked: DIR/<name>.heatmap.png for each image (the
        /// JSON lines then carry the heatmap too).
        #[arg(long, value_name = "DIR")]
        heatmap: Option<PathBuf>,
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Load the model and print its identity as JSON: process start to model ready.
    Info,
    /// Time model load, preprocessing, inference and a warm HTTP handler call, in-process.
    /// Prints one JSON object per measurement with the median and 90th percentile in ms.
    Bench {
        /// Repetitions of each measurement.
        #[arg(long, default_value_t = 50)]
        iterations: usize,
        /// X-rays to preprocess and send through the handler.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Compare the served decode with a full decode: each image classified twice, as served
    /// (a large JPEG read at reduced DCT scale) and with every pixel decoded. One JSON object
    /// per image, then a summary: the largest change in P(covid), the labels that flip and
    /// the chest-check verdicts that change.
    DecodeCheck {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Write the preprocessed 8-bit model-input image of every film of SRC to OUT, as
    /// OUT/<path relative to SRC>.png, plus OUT/preprocess.json with the parameters. The films
    /// are those SRC/manifest.csv lists, or every JPEG and PNG under SRC when it has none.
    Preprocess {
        src: PathBuf,
        out: PathBuf,
        /// Also write N tighter framings of each film (cropped before preprocessing, as
        /// serving would see a film cropped that way) as OUT/crops/<path>.<i>.png.
        #[arg(long, default_value_t = 0)]
        crops: u32,
        /// The lung finder that crops each film to its lung fields: `model` (the path the
        /// served model was trained with), `embedded`, `none` (whole films), or an ONNX file.
        /// OUT/whole/ always holds the whole films (the finder's input), and OUT/boxes.csv
        /// each film's content box and the region the model input shows.
        #[arg(long, default_value = "model")]
        lungs: LungsArg,
        /// Leave the films unequalised: the paths of models that standardise each image
        /// themselves (whole films with `--lungs none`, the lung fields with a finder).
        #[arg(long)]
        plain: bool,
        /// The side of the model input, for `--plain` (the equalised paths read 192).
        #[arg(long, default_value_t = preprocess::INPUT_SIZE, requires = "plain")]
        size: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Predict {
            json,
            heatmap,
            paths,
        } => run_predict(&paths, json, heatmap.as_deref()),
        Command::Preprocess {
            src,
            out,
            crops,
            lungs,
            plain,
            size,
        } => run_preprocess(&src, &out, crops, lungs, plain.then_some(size)),
        Command::Info => run_info(),
        Command::DecodeCheck { paths } => run_decode_check(&paths),
        Command::Bench { iterations, files } => bench::run(iterations, &files),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xray: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_decode_check(paths: &[PathBuf]) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let classifier = Classifier::from_env()?;
    let mut files = Vec::new();
    for p in paths {
        files.extend(collect_files(p)?);
    }
    let (mut checked, mut reduced, mut flips, mut worst) = (0usize, 0usize, 0usize, 0f32);
    let mut chest_changes = 0usize;
    let mut worst_file = String::new();
    for file in &files {
        let bytes = std::fs::read(file)?;
        let name = file.display().to_string();
        let served = classifier.prepare(&bytes);
        let full = classifier.prepare_full(&bytes);
        let (served, full) = match (served, full) {
            (Ok(s), Ok(f)) => (s, f),
            (s, f) => {
                // Both paths must refuse a file alike: same status, same code.
                let answer = |r: Result<_, covid_xray::Error>| {
                    r.err().map(|e| {
                        let a = ApiError::from(e);
                        (a.status, a.code)
                    })
                };
                let (sc, fc) = (answer(s), answer(f));
                println!(
                    "{}",
                    json!({"file": name, "served_error": sc, "full_error": fc})
                );
                if sc != fc {
                    return Err(format!("{name}: served {sc:?}, full decode {fc:?}").into());
                }
                continue;
            }
        };
        // The chest check reads the whole film: it must refuse (or pass) both alike.
        let chest = |p: &covid_xray::model::pipeline::Prepared| {
            classifier.chest_check().check(&p.whole).is_ok()
        };
        let (chest_served, chest_full) = (chest(&served), chest(&full));
        chest_changes += usize::from(chest_served != chest_full);
        let p_served = classifier.classify_prepared(&served.input)?;
        let p_full = classifier.classify_prepared(&full.input)?;
        let delta = (p_served.probabilities.covid - p_full.probabilities.covid).abs();
        let was_reduced = served.content != full.content || served.region != full.region;
        checked += 1;
        reduced += usize::from(was_reduced);
        flips += usize::from(p_served.label != p_full.label);
        if delta > worst {
            (worst, worst_file) = (delta, name.clone());
        }
        println!(
            "{}",
            json!({"file": name, "reduced": was_reduced, "p_covid_served": p_served.probabilities.covid,
                   "p_covid_full": p_full.probabilities.covid, "delta": delta,
                   "flip": p_served.label != p_full.label, "chest_check_served": chest_served,
                   "chest_check_full": chest_full})
        );
    }
    println!(
        "{}",
        json!({"summary": {"images": checked, "read_reduced": reduced, "max_delta": worst,
               "max_delta_file": worst_file, "label_flips": flips,
               "chest_check_changes": chest_changes}})
    );
    Ok(ExitCode::SUCCESS)
}

fn run_info() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let classifier = Classifier::from_env()?;
    let info = json!({"model": classifier.info(), "threshold": classifier.threshold()});
    println!("{info}");
    Ok(ExitCode::SUCCESS)
}

mod bench {
    //! In-process timings for `xray bench`; `bench/bench.py` runs it beside its baselines.

    use std::path::PathBuf;
    use std::process::ExitCode;
    use std::time::Instant;

    use base64::Engine;
    use covid_xray::Classifier;
    use covid_xray::api::App;
    use covid_xray::config::HttpConfig;
    use covid_xray::imaging::preprocess::{self, Limits};
    use serde_json::json;

    fn measure(iterations: usize, mut f: impl FnMut()) -> (f64, f64) {
        f(); // warm-up
        let mut ms: Vec<f64> = (0..iterations)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
        (at(0.5), at(0.9))
    }

    fn report(name: &str, iterations: usize, (median, p90): (f64, f64)) {
        println!(
            "{}",
            json!({"name": name, "median_ms": median, "p90_ms": p90, "n": iterations})
        );
    }

    pub fn run(
        iterations: usize,
        files: &[PathBuf],
    ) -> Result<ExitCode, Box<dyn std::error::Error>> {
        let iterations = iterations.max(1);
        report(
            "load",
            iterations.min(20),
            measure(iterations.min(20), || {
                std::hint::black_box(Classifier::from_env().ok());
            }),
        );
        let classifier = Classifier::from_env()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let app = App::new(classifier.clone(), HttpConfig::default());
        let side = classifier.pipeline().decode_side();
        for file in files {
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let bytes = std::fs::read(file)?;
            let limits = Limits::default();
            // As served: a large JPEG at reduced DCT scale (the scale serving picks for this
            // film, found once; trimming is the preprocess row's); and every pixel.
            let scale_side = preprocess::decode_read(&bytes, &limits, side, |gray| {
                let (_, _, w, h) = preprocess::content_box(gray);
                Ok((gray.width().min(gray.height()), w.min(h)))
            })
            .map_or(0, |(s, _, _)| s);
            report(
                &format!("decode/{name}"),
                iterations,
                measure(iterations, || {
                    let decoded = preprocess::decode_read(&bytes, &limits, side, |gray| {
                        // Accept the scale serving accepted, without trimming again.
                        let short = gray.width().min(gray.height());
                        Ok((short, if short >= scale_side { side } else { 0 }))
                    });
                    std::hint::black_box(decoded.ok());
                }),
            );
            report(
                &format!("decode-full/{name}"),
                iterations,
                measure(iterations, || {
                    std::hint::black_box(preprocess::decode_gray(&bytes, &limits).ok());
                }),
            );
            report(
                &format!("preprocess/{name}"),
                iterations,
                measure(iterations, || {
                    std::hint::black_box(classifier.prepare(&bytes).ok());
                }),
            );
            let prepared = classifier.prepare(&bytes)?;
            report(
                &format!("chest-check/{name}"),
                iterations,
                measure(iterations, || {
                    std::hint::black_box(classifier.chest_check().score(&prepared.whole).ok());
                }),
            );
            let prepared = prepared.input;
            report(
                &format!("inference/{name}"),
                iterations,
                measure(iterations, || {
                    std::hint::black_box(classifier.classify_prepared(&prepared).ok());
                }),
            );
            let body = json!({"image": base64::engine::general_purpose::STANDARD.encode(&bytes)})
                .to_string();
            let mut failures = 0usize;
            // The same request plain and explained (a heatmap in the answer).
            for (kind, uri) in [
                ("handler", "/predict"),
                ("handler-explain", "/predict?explain=1"),
            ] {
                report(
                    &format!("{kind}/{name}"),
                    iterations,
                    measure(iterations, || {
                        let req = lambda_http::http::Request::builder()
                            .method("POST")
                            .uri(uri)
                            .header("content-type", "application/json")
                            .body(lambda_http::Body::Text(body.clone()));
                        let ok = match req {
                            Ok(req) => runtime.block_on(app.handle(req)).status() == 200,
                            Err(_) => false,
                        };
                        failures += usize::from(!ok);
                    }),
                );
            }
            if failures > 0 {
                return Err(format!("the handler failed {failures} times on {name}").into());
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Writes `img` to `dest` (PNG, by its extension), creating the folders on the way.
fn save(img: &image::GrayImage, dest: &Path) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    img.save(dest)?;
    Ok(())
}

/// FNV-1a of the path relative to the pool: the same crops on every machine and every run.
fn path_seed(rel: &Path) -> u64 {
    rel.to_string_lossy()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// Every regular file under `root` (or `root` itself), sorted for a stable order.
fn collect_files(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if root.is_file() {
        out.push(root.to_path_buf());
        return Ok(out);
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.is_file() {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn is_image_name(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("jpg" | "jpeg" | "png" | "dcm" | "dicom")
    )
}

/// The files `predict` works on: named files as given, directories searched for images.
fn expand(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            out.extend(collect_files(p)?.into_iter().filter(|f| is_image_name(f)));
        } else {
            // A missing or unreadable file is reported per image, not as a failed run.
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn run_predict(
    paths: &[PathBuf],
    as_json: bool,
    heatmaps: Option<&Path>,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let classifier = Classifier::from_env()?;
    let files = expand(paths)?;
    if let Some(dir) = heatmaps {
        if !classifier.explains() {
            return Err(
                "this model's network has no head that class activation mapping explains".into(),
            );
        }
        std::fs::create_dir_all(dir)?;
    }
    let progress = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(files.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if !as_json {
        writeln!(
            out,
            "{:<8} {:>10} {:>9}  path",
            "label", "confidence", "P(covid)"
        )?;
    }
    for file in &files {
        let shown = file.display().to_string();
        let started = std::time::Instant::now();
        let result = std::fs::read(file)
            .map_err(|e| Error::Unreadable(e.to_string()))
            .and_then(|bytes| match heatmaps {
                Some(_) => classifier.explain(&bytes).map(|(p, h)| (p, Some(h))),
                None => classifier.classify(&bytes).map(|p| (p, None)),
            });
        if let (Ok((_, Some(h))), Some(dir)) = (&result, heatmaps) {
            let stem = file.file_stem().unwrap_or_default().to_string_lossy();
            std::fs::write(dir.join(format!("{stem}.heatmap.png")), &h.png)?;
        }
        let line = match (&result, as_json) {
            (Ok((p, h)), true) => serde_json::to_string(&CliLine::Answer {
                path: shown,
                answer: Answer::new(p.clone(), started.elapsed().as_secs_f64() * 1e3)
                    .with_heatmap(h.clone()),
            })?,
            (Err(e), true) => serde_json::to_string(&CliLine::Error {
                path: shown,
                error: ErrorBody {
                    code: e.code().to_string(),
                    message: e.to_string(),
                },
            })?,
            (Ok((p, _)), false) => {
                let mut row = format!(
                    "{:<8} {:>10.3} {:>9.3}  {shown}",
                    p.label.as_str(),
                    p.confidence,
                    p.probabilities.covid
                );
                for w in &p.warnings {
                    row.push_str(&format!("  [warning {}: {}]", w.code(), w.message()));
                }
                row
            }
            (Err(e), false) => format!("{:<8} {:>10} {:>9}  {shown}: {e}", "error", "-", "-"),
        };
        progress.suspend(|| writeln!(out, "{line}"))?;
        progress.inc(1);
    }
    progress.finish_and_clear();
    if !as_json {
        let info = classifier.info();
        writeln!(
            out,
            "\n{}; model {} {} (threshold {:.3}).\n{}",
            count(files.len(), "image", "images"),
            info.name,
            info.version,
            classifier.threshold(),
            covid_xray::DISCLAIMER
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `n` and the noun, singular for one.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn run_preprocess(
    src: &Path,
    out: &Path,
    crops: u32,
    lungs: LungsArg,
    plain: Option<u32>,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let finder = match lungs {
        // The served model's own path, unless --plain asks for the unequalised one.
        LungsArg::Model => match (Classifier::from_env()?.pipeline().clone(), plain) {
            (served, None) => return preprocess_with(src, out, crops, &served),
            (Pipeline::Lungs(f) | Pipeline::PlainLungs { finder: f, .. }, Some(_)) => Some(f),
            (Pipeline::Whole | Pipeline::Plain { .. }, Some(_)) => None,
        },
        LungsArg::None => None,
        LungsArg::File(path) => Some(LungFinder::from_onnx(&std::fs::read(&path)?)?),
        LungsArg::Embedded => Some(LungFinder::from_onnx(EMBEDDED_LUNGS)?),
    };
    let pipeline = match (finder, plain) {
        (None, None) => Pipeline::Whole,
        (Some(f), None) => Pipeline::Lungs(f),
        (None, Some(size)) => Pipeline::Plain { size },
        (Some(finder), Some(size)) => Pipeline::PlainLungs { finder, size },
    };
    preprocess_with(src, out, crops, &pipeline)
}

fn preprocess_with(
    src: &Path,
    out: &Path,
    crops: u32,
    pipeline: &Pipeline,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let files = pool_files(src)?;
    let limits = Limits::default();
    let mut failed = 0usize;
    std::fs::create_dir_all(out)?;
    let mut boxes = std::io::BufWriter::new(std::fs::File::create(out.join("boxes.csv"))?);
    writeln!(boxes, "file,x,y,w,h,lungs_found,lx,ly,lw,lh,film_w,film_h")?;
    for file in &files {
        let rel = file.strip_prefix(src).unwrap_or(file);
        let png = |folder: Option<&str>, suffix: &str| {
            let base = folder.map_or_else(|| out.to_path_buf(), |f| out.join(f));
            let mut dest = base.join(rel).into_os_string();
            dest.push(suffix);
            PathBuf::from(dest)
        };
        // The serving path's decode: a pool film (at most 512 px) is always decoded in
        // full; a larger one would be read at the scale serving reads it.
        let gray = std::fs::read(file)
            .map_err(|e| Error::Unreadable(e.to_string()))
            .and_then(|bytes| pipeline.read(&bytes, &limits))
            .map(|(prepared, gray, _)| (gray, prepared));
        match gray {
            Ok((gray, prepared)) => {
                save(&prepared.input, &png(None, ".png"))?;
                save(&prepared.whole, &png(Some("whole"), ".png"))?;
                let (x, y, w, h) = prepared.content;
                let (lx, ly, lw, lh) = prepared.region;
                let (fw, fh) = gray.dimensions();
                writeln!(
                    boxes,
                    "{},{x},{y},{w},{h},{},{lx},{ly},{lw},{lh},{fw},{fh}",
                    rel.to_string_lossy(),
                    u8::from(prepared.lungs.is_some())
                )?;
                let seed = path_seed(rel);
                for i in 0..crops {
                    let crop = preprocess::framing_crop(fw, fh, seed ^ u64::from(i));
                    let cropped =
                        image::imageops::crop_imm(&gray, crop.0, crop.1, crop.2, crop.3).to_image();
                    save(
                        &pipeline.prepare(&cropped)?.input,
                        &png(Some("crops"), &format!(".{i}.png")),
                    )?;
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("{}: {e}", file.display());
            }
        }
    }
    boxes.flush()?;
    let params = serde_json::json!({
        "version": pipeline.version(),
        "input_size": pipeline.input_size(),
        "mean": preprocess::MEAN,
        "std": preprocess::STD,
    });
    std::fs::write(
        out.join("preprocess.json"),
        serde_json::to_string_pretty(&params)?,
    )?;
    eprintln!(
        "preprocessed {} through '{}', {failed} failed",
        count(files.len() - failed, "image", "images"),
        pipeline.version()
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The films `xray preprocess` reads: those `SRC/manifest.csv` lists (its first column,
/// `file`), when there is one, so that a pool's masks and notes are never taken for films;
/// else every JPEG and PNG under `src`.
fn pool_files(src: &Path) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    let manifest = src.join("manifest.csv");
    if !manifest.is_file() {
        return Ok(collect_files(src)?
            .into_iter()
            .filter(|p| is_image_name(p))
            .collect());
    }
    let text = std::fs::read_to_string(&manifest)?;
    let mut files: Vec<PathBuf> = text
        .lines()
        .skip(1)
        .filter_map(|line| line.split(',').next())
        .map(|f| f.trim_matches('"'))
        .filter(|f| !f.is_empty())
        .map(|f| src.join(f))
        .collect();
    files.sort();
    Ok(files)
}

/// Which lung finder `xray preprocess` crops films with.
#[derive(Clone, Debug)]
enum LungsArg {
    /// The served model's own path (`XRAY_MODEL_PATH` and `XRAY_LUNG_MODEL_PATH` apply).
    Model,
    /// The embedded one.
    Embedded,
    /// None: whole films, as models before the lung finder read them.
    None,
    /// An ONNX file.
    File(PathBuf),
}

impl std::str::FromStr for LungsArg {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "model" => LungsArg::Model,
            "embedded" => LungsArg::Embedded,
            "none" => LungsArg::None,
            path => LungsArg::File(PathBuf::from(path)),
        })
    }
}
