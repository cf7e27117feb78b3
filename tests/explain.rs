//! `rollcall explain` end to end: the built binary on saved objects.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const AT: &str = "2026-11-01T12:01:00Z";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/explain")
        .join(name)
}

fn rollcall(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .args(args)
        .output()
        .expect("run rollcall")
}

fn explain_json(file: &Path, extra: &[&str]) -> Vec<Value> {
    let path = file.to_str().expect("utf-8 path");
    let mut args = vec!["explain", "-f", path, "-o", "json", "--at", AT];
    args.extend_from_slice(extra);
    let output = rollcall(&args);
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&output.stdout).expect("a JSON array")
}

fn find<'a>(verdicts: &'a [Value], kind: &str, name: &str) -> &'a Value {
    verdicts
        .iter()
        .find(|verdict| verdict["kind"] == kind && verdict["name"] == name)
        .unwrap_or_else(|| panic!("no verdict for {kind} {name} in {verdicts:#?}"))
}

#[test]
fn healthy_rollout_with_harmless_churn_has_no_incidents() {
    let verdicts = explain_json(&fixture("rollout.yaml"), &[]);
    let names: Vec<(&str, &str)> = verdicts
        .iter()
        .map(|v| (v["kind"].as_str().unwrap(), v["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            ("Deployment", "web"),
            ("StatefulSet", "jenkins"),
            ("Certificate", "shop-tls"),
            ("ConfigMap", "settings")
        ],
        "ReplicaSets, Pods and Events are material, not verdicts"
    );

    let web = find(&verdicts, "Deployment", "web");
    assert_eq!(web["apiVersion"], "apps/v1");
    assert_eq!(web["namespace"], "shop");
    assert_eq!(web["state"], "progressing");
    assert_eq!(
        web["message"],
        "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination..."
    );
    assert_eq!(web["failures"], "0/2 allowed", "werf.io annotation applied");
    assert_eq!(web["incidents"], Value::Array(Vec::new()));
    assert_eq!(web["terminal"], false);

    let jenkins = find(&verdicts, "StatefulSet", "jenkins");
    assert_eq!(jenkins["state"], "ready");
    assert_eq!(
        jenkins["message"],
        "partitioned roll out complete: 1 new pods have been updated..."
    );
    assert_eq!(jenkins["incidents"], Value::Array(Vec::new()));

    assert_eq!(find(&verdicts, "Certificate", "shop-tls")["state"], "ready");
    assert_eq!(find(&verdicts, "ConfigMap", "settings")["state"], "ready");
}

#[test]
fn failures_are_terminal_with_their_incidents() {
    let verdicts = explain_json(&fixture("failures.yaml"), &[]);
    assert_eq!(verdicts.len(), 2);

    let api = find(&verdicts, "Deployment", "api");
    assert_eq!(api["state"], "failed");
    assert_eq!(api["terminal"], true);
    assert_eq!(
        api["message"],
        "deployment \"api\" exceeded its progress deadline"
    );
    let reasons: Vec<&str> = api["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|incident| incident["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["InvalidImageName", "FailedCreate"]);
    assert_eq!(api["incidents"][0]["pod"], "api-66b6c48dd5-7hx2p");
    assert_eq!(api["incidents"][0]["container"], "api");

    let migrate = find(&verdicts, "Job", "migrate");
    assert_eq!(migrate["state"], "failed");
    assert_eq!(migrate["terminal"], true);
    assert_eq!(migrate["failures"], "2/1 allowed");
}

#[test]
fn since_excludes_older_events() {
    let verdicts = explain_json(
        &fixture("failures.yaml"),
        &["--since", "2026-11-01T11:30:00Z"],
    );
    let api = find(&verdicts, "Deployment", "api");
    assert_eq!(api["incidents"].as_array().unwrap().len(), 1);
    assert_eq!(api["incidents"][0]["reason"], "InvalidImageName");
}

#[test]
fn text_output_is_a_table() {
    let path = fixture("failures.yaml");
    let output = rollcall(&[
        "explain",
        "-f",
        path.to_str().unwrap(),
        "-o",
        "text",
        "--at",
        AT,
    ]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("RESOURCE"), "{text}");
    assert!(
        header.contains("STATE") && header.contains("FAILURES"),
        "{text}"
    );
    let api = lines.next().unwrap();
    assert!(api.starts_with("shop/Deployment/api"), "{text}");
    assert!(api.contains("failed"), "{text}");
    assert!(
        text.contains("api-66b6c48dd5-7hx2p InvalidImageName"),
        "{text}"
    );
}

#[test]
fn invalid_policy_annotation_names_resource_and_annotation() {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n  \
         annotations:\n    rollcall.dev/fail-mode: SometimesFail\nspec:\n  selector: {}\n  template: {}\n",
    )
    .unwrap();
    let output = rollcall(&["explain", "-f", file.path().to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Deployment shop/web"), "{stderr}");
    assert!(stderr.contains("rollcall.dev/fail-mode"), "{stderr}");
}

#[test]
fn malformed_objects_are_reported_with_their_document() {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: apps/v1\nkind: Deployment\n\
         metadata: {name: web}\nspec: {replicas: many, selector: {}, template: {}}\n",
    )
    .unwrap();
    let output = rollcall(&["explain", "-f", file.path().to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("document 2"), "{stderr}");
    assert!(stderr.contains("Deployment web"), "{stderr}");
}

#[test]
fn config_rules_decide_custom_resources() {
    let widgets = fixture("widgets.yaml");
    let generic = explain_json(&widgets, &[]);
    assert_eq!(find(&generic, "Widget", "starting")["state"], "ready");
    assert_eq!(find(&generic, "Widget", "broken")["state"], "ready");

    let rules = fixture("widget-rules.toml");
    let ruled = explain_json(&widgets, &["--config", rules.to_str().unwrap()]);
    let starting = find(&ruled, "Widget", "starting");
    assert_eq!(starting["state"], "progressing", "{starting:#}");
    assert_eq!(
        starting["message"],
        "Waiting for widget \"starting\": Available=True..."
    );
    let broken = find(&ruled, "Widget", "broken");
    assert_eq!(broken["state"], "failed", "{broken:#}");
    assert_eq!(broken["terminal"], true);
    assert_eq!(
        broken["message"],
        "widget \"broken\" is Degraded=True: QuotaExceeded: no capacity left"
    );
}

#[test]
fn invalid_config_rules_name_the_entry_and_field() {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        "[[tracking.custom_resources]]\ngroup = \"example.com\"\nkind = \"Widget\"\n\
         ready_when = [{condition = \"\", status = \"True\"}]\n",
    )
    .unwrap();
    let widgets = fixture("widgets.yaml");
    let output = rollcall(&[
        "explain",
        "-f",
        widgets.to_str().unwrap(),
        "--config",
        config.path().to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "tracking.custom_resources[0] (example.com/Widget): ready_when[0].condition: must name a condition type"
        ),
        "{stderr}"
    );
}
