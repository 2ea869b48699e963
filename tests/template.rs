//! What `sam deploy` creates is secure by default: `POST /predict` behind an authorizer unless
//! the operator opens it, the function told the mode, logs that expire, and alarms that reach
//! someone. cfn-lint and `sam validate --lint` (in `.ci/run`) check that the template is
//! valid; this checks what it promises.

use std::collections::BTreeMap;
use std::path::Path;

/// The template's top-level resources: name -> (type, the block's text).
fn resources() -> BTreeMap<String, (String, String)> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml"))
        .expect("template.yaml");
    let body = text
        .split("\nResources:\n")
        .nth(1)
        .expect("Resources")
        .split("\nOutputs:\n")
        .next()
        .unwrap_or_default();
    let mut out = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in body.lines() {
        let is_name =
            line.starts_with("  ") && !line.starts_with("   ") && line.trim_end().ends_with(':');
        if is_name && !line.trim_start().starts_with('#') {
            if let Some((name, block)) = current.take() {
                out.insert(name, block);
            }
            current = Some((line.trim().trim_end_matches(':').to_string(), String::new()));
        } else if let Some((_, block)) = current.as_mut() {
            block.push_str(line);
            block.push('\n');
        }
    }
    if let Some((name, block)) = current {
        out.insert(name, block);
    }
    out.into_iter()
        .map(|(name, block)| {
            let kind = block
                .lines()
                .find_map(|l| l.trim().strip_prefix("Type: "))
                .unwrap_or_default()
                .to_string();
            (name, (kind, block))
        })
        .collect()
}

fn parameter_default(name: &str) -> String {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml"))
        .expect("template.yaml");
    let block = text
        .split(&format!("\n  {name}:\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("parameter {name}"));
    block
        .lines()
        .take_while(|l| l.starts_with("    "))
        .find_map(|l| l.trim().strip_prefix("Default: "))
        .unwrap_or_else(|| panic!("{name} has no default"))
        .trim_matches('\'')
        .to_string()
}

#[test]
fn predict_is_closed_unless_the_operator_opens_it() {
    assert_eq!(parameter_default("ApiAuth"), "IAM");
    let r = resources();
    let (kind, route) = &r["PredictRoute"];
    assert_eq!(kind, "AWS::ApiGatewayV2::Route");
    assert!(route.contains("RouteKey: POST /predict"));
    assert!(
        route.contains("AuthorizationType: !If [AuthIam, AWS_IAM, !If [AuthJwt, JWT, NONE]]"),
        "{route}"
    );
    // No SAM event opens POST /predict beside the native route.
    let (_, http) = &r["HttpFunction"];
    assert!(
        !http.contains("Path: /predict"),
        "a SAM event routes /predict without the authorizer"
    );
    // The function is told the mode, so that it can check again and fail closed.
    assert!(http.contains("XRAY_AUTH: !If [AuthIam, iam, !If [AuthJwt, jwt, none]]"));
}

#[test]
fn every_function_logs_to_a_group_that_expires() {
    let r = resources();
    let groups: Vec<&String> = r
        .iter()
        .filter(|(_, (k, _))| k == "AWS::Logs::LogGroup")
        .map(|(n, _)| n)
        .collect();
    for (name, (kind, block)) in &r {
        if kind == "AWS::Serverless::Function" {
            let group = block
                .lines()
                .find_map(|l| l.trim().strip_prefix("LogGroup: !Ref "))
                .unwrap_or_else(|| panic!("{name} logs to Lambda's own group, kept forever"));
            assert!(groups.iter().any(|g| *g == group), "{name}: {group}");
            assert!(
                r[group]
                    .1
                    .contains("RetentionInDays: !Ref LogRetentionDays")
            );
        }
    }
    assert_eq!(parameter_default("LogRetentionDays"), "30");
}

#[test]
fn alarms_cover_failures_and_reach_the_topic() {
    let r = resources();
    let alarms: Vec<(&String, &String)> = r
        .iter()
        .filter(|(_, (k, _))| k == "AWS::CloudWatch::Alarm")
        .map(|(n, (_, b))| (n, b))
        .collect();
    for (name, block) in &alarms {
        assert!(
            block.contains("AlarmActions: [!Ref AlarmTopic]"),
            "{name} alarms no one"
        );
    }
    let watched = |metric: &str, dimension: &str| {
        alarms
            .iter()
            .any(|(_, b)| b.contains(&format!("MetricName: {metric}\n")) && b.contains(dimension))
    };
    for function in ["HttpFunction", "TriggerFunction"] {
        for metric in ["Errors", "Throttles", "Duration"] {
            assert!(
                watched(metric, &format!("Value: !Ref {function}")),
                "no {metric} alarm on {function}"
            );
        }
    }
    assert!(
        watched("5xx", "Value: !Ref HttpApi"),
        "no alarm on the API's 5xx"
    );
    assert!(
        watched("ApproximateNumberOfMessagesVisible", "FailedUploadsQueue"),
        "no alarm on failed uploads"
    );
}
