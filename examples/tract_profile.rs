//! Where tract spends an inference: per-node wall time over many runs, summed by op.
//!
//!     cargo run --release --example tract_profile -- model/xray.onnx [ITERATIONS]
//!
//! A profiling aid for choosing an architecture tract runs well; the figures that
//! docs/performance.md reports come from `bench/bench.py`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::{SimplePlan, SimpleState};

fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).map(String::as_str).unwrap_or("model/xray.onnx");
    let iterations: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200);
    let side = covid_xray::imaging::preprocess::INPUT_SIZE as usize;
    let model = tract_onnx::onnx()
        .model_for_path(path)?
        .with_input_fact(0, f32::fact([1, 1, side, side]).into())?
        .into_optimized()?;
    let plan = SimplePlan::new(model)?;
    let input: TValue = Tensor::zero::<f32>(&[1, 1, side, side])?.into();
    for _ in 0..20 {
        plan.run(tvec!(input.clone()))?;
    }
    let mut per_node: BTreeMap<usize, (String, String, Duration)> = BTreeMap::new();
    let mut state = SimpleState::new(&plan)?;
    let start = Instant::now();
    for _ in 0..iterations {
        state.run_plan_with_eval(tvec!(input.clone()), |session, op_state, node, inputs| {
            let t = Instant::now();
            let out = tract_onnx::tract_core::plan::eval(session, op_state, node, inputs);
            let entry = per_node.entry(node.id).or_insert_with(|| {
                (
                    node.op().name().to_string(),
                    node.name.clone(),
                    Duration::ZERO,
                )
            });
            entry.2 += t.elapsed();
            out
        })?;
    }
    let total = start.elapsed();
    let mut by_op: BTreeMap<String, Duration> = BTreeMap::new();
    for (op, _, d) in per_node.values() {
        *by_op.entry(op.clone()).or_default() += *d;
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / iterations as f64;
    println!("{path}: {:.3} ms per inference (one thread)", ms(total));
    println!("\nby node:");
    for (id, (op, name, d)) in &per_node {
        println!("  {id:>3} {op:<24} {name:<40} {:.3} ms", ms(*d));
    }
    println!("\nby op:");
    let mut ops: Vec<_> = by_op.into_iter().collect();
    ops.sort_by_key(|(_, d)| std::cmp::Reverse(*d));
    for (op, d) in ops {
        println!("  {op:<24} {:.3} ms", ms(d));
    }
    Ok(())
}
