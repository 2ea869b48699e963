//! The image path on arbitrary bytes: sniff, header checks, decode (in full and at reduced
//! DCT scale), trim, resize, equalise.
//!
//! Invariants: `decode_gray` and `decode_read` return an image or a typed error, never
//! panic, and whatever they return prepares to exactly the model input size; the reduced
//! JPEG decoder declines or returns a 1/4 film twice the 1/8 film's size (rounded up).
#![no_main]

use covid_xray::imaging::jpeg;
use covid_xray::imaging::preprocess::{self, INPUT_SIZE, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Smaller than the service's limits, so that libFuzzer's memory cap (2 GB) tests the
    // limit logic rather than the machine.
    let limits = Limits {
        max_bytes: 1 << 20,
        max_side: 4096,
        max_pixels: 4_000_000,
    };
    if let Ok(gray) = preprocess::decode_gray(data, &limits) {
        assert!(u64::from(gray.width()) * u64::from(gray.height()) <= limits.max_pixels);
        let prepared = preprocess::prepare_gray(&gray);
        assert_eq!(prepared.dimensions(), (INPUT_SIZE, INPUT_SIZE));
    }
    // The reduced decoder on every input, whatever its size (serving gives it only films of
    // at least 4x the model input, which the seeds are not).
    if let Ok(reduced) = jpeg::decode_reduced(data, true) {
        if let Some(quarter) = &reduced.quarter {
            assert_eq!(quarter.width().div_ceil(2), reduced.eighth.width());
            assert_eq!(quarter.height().div_ceil(2), reduced.eighth.height());
        }
    }
    // The serving path with a small side, so that films of 64 px and up take the reduced path.
    let side = 16;
    if let Ok((prepared, _, _)) = preprocess::decode_read(data, &limits, side, |g| {
        let content = preprocess::content_box(g);
        Ok((preprocess::prepare_region(g, content), content.2.min(content.3)))
    }) {
        assert_eq!(prepared.dimensions(), (INPUT_SIZE, INPUT_SIZE));
    }
});
