//! The image path on arbitrary bytes: sniff, header checks, decode, trim, resize, equalise.
//!
//! Invariant: `decode_gray` returns an image or a typed error, never panics, and whatever it
//! returns prepares to exactly the model input size.
#![no_main]

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
});
