//! ONNX bytes to an optimised tract plan: how the classifier, the lung finder and the chest
//! check are all built, one floor below them so that each imports it and none imports another.

use std::sync::Arc;

use tract_onnx::prelude::*;

use crate::imaging::preprocess::INPUT_SIZE;

/// A runnable tract plan, shared across threads.
pub(crate) type Plan = Arc<TypedSimplePlan>;

/// An ONNX network of one [1, 1, 192, 192] input as an optimised tract plan: the lung finder
/// and the chest check are built this way, the classifier at its card's size.
///
/// `features` names an inner tensor to output second (the classifier's last feature grid,
/// which class activation mapping reads): it is computed for the first output anyway, so a
/// plain classification costs no more for it.
pub(crate) fn runnable_plan(onnx: &[u8], features: Option<&str>) -> TractResult<Plan> {
    let proto = tract_onnx::onnx().proto_model_for_read(&mut std::io::Cursor::new(onnx))?;
    runnable_plan_of(&proto, INPUT_SIZE, features)
}

/// [`runnable_plan`] of a parsed model.
pub(crate) fn runnable_plan_of(
    proto: &tract_onnx::pb::ModelProto,
    side: u32,
    features: Option<&str>,
) -> TractResult<Plan> {
    let side = side as usize;
    tract_onnx::onnx()
        .model_for_proto_model(proto)
        .and_then(|m| m.with_input_fact(0, f32::fact([1, 1, side, side]).into()))
        .and_then(|mut m| {
            if let Some(name) = features {
                let outlet = m
                    .find_outlet_label(name)
                    .ok_or_else(|| TractError::msg(format!("no tensor '{name}' in the model")))?;
                let mut outputs = m.output_outlets()?.to_vec();
                outputs.truncate(1);
                outputs.push(outlet);
                m.select_output_outlets(&outputs)?;
            }
            Ok(m)
        })
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
}
