//! What operators watch, from a running server after a deploy that succeeded and one that failed:
//! deploy durations by result and reason, verdict latency, helm's processes and durations, the
//! runner's slots, the watches; and every metric the chart's Grafana dashboard queries is exported.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};

use super::scenarios::{request, setup};

/// The value of the sample `series` (name and labels, as rendered), if exported.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.parse().ok()
    })
}

/// Every `rollcall_*` name in the dashboard's queries.
fn dashboard_metrics() -> BTreeSet<String> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/helm/rollcall/dashboards/rollcall.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read the dashboard"))
            .expect("the dashboard is JSON");
    let name = regex::Regex::new(r"rollcall_[a-z0-9_]+").expect("regex");
    let mut names = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            names.extend(name.find_iter(expr).map(|found| found.as_str().to_owned()));
        }
    }
    names
}

#[tokio::test]
async fn metrics_cover_finished_deploys_and_everything_the_dashboard_queries() {
    let setup = setup().await;
    let healthy = setup.deploy(&request("web", "web", json!({}))).await;
    assert_eq!(healthy.status(), "succeeded", "{}", healthy.explain());
    let crashing = setup
        .deploy(&request("crashloop", "crash", json!({})))
        .await;
    assert_eq!(
        crashing.verdict_reason(),
        "CrashLoopBackOff",
        "{}",
        crashing.explain()
    );

    let metrics = setup.app.metrics().await;
    let value = |series: &str| {
        sample(&metrics, series).unwrap_or_else(|| panic!("no sample {series}:\n{metrics}"))
    };
    assert_eq!(
        value(r#"rollcall_deploy_duration_seconds_count{result="succeeded"}"#),
        1.0
    );
    assert_eq!(
        value(
            r#"rollcall_deploy_duration_seconds_count{result="failed",reason="CrashLoopBackOff"}"#
        ),
        1.0
    );
    assert_eq!(
        value(r#"rollcall_verdict_latency_seconds_count{result="succeeded"}"#),
        1.0
    );
    assert_eq!(
        value(r#"rollcall_verdict_latency_seconds_count{result="failed"}"#),
        1.0
    );
    // Well within the slowest bucket: the verdict was persisted soon after it was decided.
    assert_eq!(
        value(r#"rollcall_verdict_latency_seconds_bucket{result="failed",le="5"}"#),
        1.0
    );
    assert_eq!(
        value(r#"rollcall_helm_duration_seconds_count{command="upgrade"}"#),
        2.0
    );
    // helm 4 hands its manifest over during the upgrade: no separate `helm template` ran.
    assert_eq!(
        sample(
            &metrics,
            r#"rollcall_helm_duration_seconds_count{command="template"}"#
        ),
        None,
        "{metrics}"
    );
    assert_eq!(value("rollcall_helm_processes"), 0.0);
    assert_eq!(value(r#"rollcall_runner_slots{state="busy"}"#), 0.0);
    assert!(value(r#"rollcall_runner_slots{state="free"}"#) >= 1.0);
    assert_eq!(value("rollcall_database_reporter"), 1.0);
    assert_eq!(value(r#"rollcall_deploys{status="failed"}"#), 1.0);
    assert_eq!(value("rollcall_queue_depth"), 0.0);
    assert!(value(r#"rollcall_db_pool_connections{state="idle"}"#) >= 0.0);
    assert_eq!(
        value(r#"rollcall_kubernetes_api_errors_total{call="watch"}"#),
        0.0
    );
    // The watches outlive the last deploy that needed them for a while (deploys come in bursts),
    // one per kind of the one namespace: Deployments, ReplicaSets, Services, Pods, Events.
    assert!(value("rollcall_active_watches") <= 5.0);

    let queried = dashboard_metrics();
    assert!(queried.len() >= 10, "{queried:?}");
    let missing: Vec<&String> = queried
        .iter()
        .filter(|name| {
            !metrics.lines().any(|line| {
                line.starts_with(&format!("{name} ")) || line.starts_with(&format!("{name}{{"))
            })
        })
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries {missing:?}, not exported:\n{metrics}"
    );
    setup.shutdown().await;
}
