//! The reduced-scale JPEG decoder against the full decode, on real files.
//!
//!     cargo run --release --example reduced_check -- FILE.jpg...
//!
//! For each JPEG: the 1/8 and 1/4 films of `imaging::jpeg::decode_reduced` beside the full
//! decode box-averaged by 8 and by 4 (whole blocks only), as the mean and largest absolute
//! difference in gray levels. Prints the files over one level on average and those the
//! reduced decoder declines, then a summary. On the training pool and the bench films:
//! none declined, worst mean difference at 1/8 about 0.1 of a level.

use covid_xray::imaging::jpeg::decode_reduced;
use image::GrayImage;

fn box_mean(full: &GrayImage, k: u32) -> GrayImage {
    let (w, h) = (full.width() / k, full.height() / k);
    GrayImage::from_fn(w, h, |bx, by| {
        let mut s = 0u32;
        for y in by * k..(by + 1) * k {
            for x in bx * k..(bx + 1) * k {
                s += u32::from(full.get_pixel(x, y).0[0]);
            }
        }
        image::Luma([((s + k * k / 2) / (k * k)) as u8])
    })
}

/// Mean and largest absolute difference over `b`'s pixels (`a` may be larger).
fn difference(a: &GrayImage, b: &GrayImage) -> (f64, u8) {
    let (w, h) = b.dimensions();
    let (mut sum, mut max) = (0u64, 0u8);
    for y in 0..h {
        for x in 0..w {
            let d = a.get_pixel(x, y).0[0].abs_diff(b.get_pixel(x, y).0[0]);
            sum += u64::from(d);
            max = max.max(d);
        }
    }
    (sum as f64 / f64::from(w * h).max(1.0), max)
}

fn main() {
    let (mut files, mut declined, mut worst) = (0usize, 0usize, (0f64, String::new()));
    for path in std::env::args().skip(1) {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let Ok(full) = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg) else {
            continue;
        };
        let full = full.to_luma8();
        files += 1;
        match decode_reduced(&bytes, true) {
            Ok(r) => {
                let (d8, m8) = difference(&r.eighth, &box_mean(&full, 8));
                let d4 = r
                    .quarter
                    .as_ref()
                    .map(|q| difference(q, &box_mean(&full, 4)));
                if d8 > worst.0 {
                    worst = (d8, path.clone());
                }
                if d8 > 1.0 || d4.is_some_and(|d| d.0 > 1.0) {
                    println!("{path}: 1/8 mean {d8:.2} max {m8}; 1/4 {d4:?}");
                }
            }
            Err(e) => {
                declined += 1;
                println!("{path}: declined ({})", e.0);
            }
        }
    }
    println!(
        "{files} JPEGs, {declined} declined; worst mean difference at 1/8: {:.3} ({})",
        worst.0, worst.1
    );
}
