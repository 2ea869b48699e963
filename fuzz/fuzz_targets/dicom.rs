//! The DICOM path on arbitrary data sets: a preamble and the `DICM` marker, then whatever the
//! fuzzer makes of the file meta group, the data set and the pixel data.
//!
//! Invariant: decoding returns a film or a typed error, never allocates past the limits, and a
//! film prepares to exactly the model input size. The library contains a panic of a DICOM
//! codec (`catch_unwind` around the pixel decoders) and answers `corrupt_image`; libFuzzer's
//! panic hook would abort before that, so this target replaces it with a silent one. A panic
//! anywhere else still unwinds into libFuzzer and is reported as a crash.
#![no_main]

use covid_xray::imaging::preprocess::{self, INPUT_SIZE, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let limits = Limits {
        max_bytes: 1 << 20,
        max_side: 4096,
        max_pixels: 4_000_000,
    };
    // The corpus holds whole files; the marker is put back so that every input takes the
    // DICOM branch, whatever the fuzzer did to the first bytes.
    let mut file = vec![0u8; 128];
    file.extend_from_slice(b"DICM");
    file.extend_from_slice(data.get(132..).unwrap_or(data));
    if let Ok(gray) = preprocess::decode_gray(&file, &limits) {
        assert!(u64::from(gray.width()) * u64::from(gray.height()) <= limits.max_pixels);
        let prepared = preprocess::prepare_gray(&gray);
        assert_eq!(prepared.dimensions(), (INPUT_SIZE, INPUT_SIZE));
    }
});
