//! Median one-thread tract inference time of ONNX files with a [1, 1, S, S] input.
//!
//!     cargo run --release --example tract_time -- FILE:SIDE... [ITERATIONS]
//!
//! Prints one line per file, `FILE tract MEDIAN_MS`. `training/bench/arch.py` runs it on candidate
//! networks beside onnxruntime, to choose a shape tract runs well before training it.

use std::time::Instant;

use tract_onnx::prelude::*;

fn main() -> TractResult<()> {
    let mut iterations = 300;
    let mut files = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.rsplit_once(':') {
            Some((path, side)) => files.push((path.to_string(), side.parse::<usize>()?)),
            None => iterations = arg.parse()?,
        }
    }
    for (path, side) in files {
        let plan = tract_onnx::onnx()
            .model_for_path(&path)?
            .with_input_fact(0, f32::fact([1, 1, side, side]).into())?
            .into_optimized()?
            .into_runnable()?;
        let input: TValue = Tensor::zero::<f32>(&[1, 1, side, side])?.into();
        for _ in 0..100 {
            plan.run(tvec!(input.clone()))?;
        }
        let mut times: Vec<f64> = (0..iterations)
            .map(|_| {
                let start = Instant::now();
                plan.run(tvec!(input.clone()))
                    .map(|_| start.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<TractResult<_>>()?;
        times.sort_by(f64::total_cmp);
        println!("{path} tract {:.3}", times[times.len() / 2]);
    }
    Ok(())
}
