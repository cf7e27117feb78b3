//! DESIGN §8 Job scenarios end to end (chart `tests/charts/jobs`): a Job as a release resource,
//! tracked after the upgrade, and a migration Job run by helm as a hook, followed while helm waits
//! for it. Real helm against kubesim, a real PostgreSQL, rollcall over HTTP; the event sequence is
//! read from the SSE stream.

use std::path::PathBuf;

use kubesim::options::ClusterOptions;
use kubesim::{Cluster, ClusterHandle};
use serde_json::{Value, json};
use uuid::Uuid;

use super::common::app::{TestApp, spawn_app_with};
use super::common::sse::{SseFrame, SseStream};
use super::{SAFETY_TIMEOUT, event_sequence, helm_bin, with_runner};

/// Simulated durations run this much faster.
const TIME_SCALE: f64 = 0.1;

/// The line the failing containers log: it must reach the evidence. Containers whose streamed log
/// is asserted run 5s (0.5s at this time scale), leaving time to open the log stream.
const FAILURE_LOG: &str = "migration failed: relation users does not exist";

struct Setup {
    app: TestApp,
    cluster: ClusterHandle,
    _home: tempfile::TempDir,
}

impl Setup {
    async fn start(helm: PathBuf) -> Setup {
        let home = tempfile::tempdir().expect("temp dir");
        let cluster = Cluster::start(ClusterOptions {
            time_scale: TIME_SCALE,
            ..ClusterOptions::default()
        })
        .await
        .expect("kubesim starts");
        let kubeconfig = home.path().join("kubeconfig");
        std::fs::write(&kubeconfig, cluster.kubeconfig_yaml()).expect("write kubeconfig");
        let app = spawn_app_with(|config| {
            with_runner(config, Some(kubeconfig), home.path());
            config.helm.bin = helm;
        })
        .await;
        Setup {
            app,
            cluster,
            _home: home,
        }
    }

    /// Submits a deploy of the `jobs` chart and opens its SSE stream.
    async fn start_deploy(&self, release: &str, values: Value) -> (Uuid, SseStream) {
        let id = self
            .app
            .submit(&json!({
                "release": release,
                "namespace": "default",
                "chart": {"path": "jobs"},
                "values": values,
                "timeout": "60s",
            }))
            .await;
        let stream = SseStream::connect(
            self.app
                .get(&format!("/v1/deploys/{id}/events"), &self.app.admin_token),
        )
        .await;
        assert_eq!(stream.status(), 200);
        (id, stream)
    }

    /// Deploys the `jobs` chart with `values` and follows the SSE stream to its `end`; returns the
    /// finished deploy and its events.
    async fn deploy(&self, release: &str, values: Value) -> (Value, Vec<Value>) {
        let (id, mut stream) = self.start_deploy(release, values).await;
        let events = events_until_end(&mut stream, Vec::new()).await;
        (self.app.deploy(id).await, events)
    }

    async fn shutdown(self) {
        self.app.shutdown().await;
        self.cluster.shutdown().await;
    }
}

/// helm v3 for the scenarios that both majors must pass: `HELM3_BIN`, else `helm3` on PATH.
fn helm3_bin() -> PathBuf {
    let bin = std::env::var_os("HELM3_BIN").map_or_else(|| PathBuf::from("helm3"), PathBuf::from);
    let works = std::process::Command::new(&bin)
        .args(["version", "--short"])
        .output()
        .is_ok_and(|output| output.status.success() && output.stdout.starts_with(b"v3."));
    assert!(
        works,
        "this test needs helm v3 too: `scripts/install-helm --v3` installs it as helm3, or point \
         HELM3_BIN at one"
    );
    bin
}

/// Reads `stream` to its `end` frame; returns the events of `read` and of what followed, in order.
async fn events_until_end(stream: &mut SseStream, mut read: Vec<SseFrame>) -> Vec<Value> {
    read.extend(
        stream
            .frames_until(SAFETY_TIMEOUT, |frame| {
                frame.event.as_deref() == Some("end")
            })
            .await,
    );
    assert_eq!(
        read.pop().and_then(|frame| frame.event),
        Some("end".to_owned()),
        "the event stream ended early"
    );
    read.iter().map(SseFrame::json).collect()
}

fn has_in_order(sequence: &[String], wanted: &[&str]) -> bool {
    let mut rest = sequence.iter();
    wanted
        .iter()
        .all(|want| rest.any(|have| have.as_str() == *want))
}

/// The events about resource `name`.
fn about<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|event| event["resource"]["name"] == name)
        .collect()
}

/// The events between `phase:<from>` and the next phase event.
fn during<'a>(events: &'a [Value], phase: &str) -> &'a [Value] {
    let is_phase = |event: &Value, name: Option<&str>| {
        event["type"] == "phase" && name.is_none_or(|name| event["data"]["phase"] == name)
    };
    let start = events
        .iter()
        .position(|event| is_phase(event, Some(phase)))
        .unwrap_or_else(|| panic!("no phase {phase}"))
        + 1;
    let end = events[start..]
        .iter()
        .position(|event| is_phase(event, None))
        .map_or(events.len(), |offset| start + offset);
    &events[start..end]
}

/// The failure evidence of `name` in the last `report` event.
fn reported_failure<'a>(events: &'a [Value], name: &str) -> &'a Value {
    let report = events
        .iter()
        .rev()
        .find(|event| event["type"] == "report")
        .expect("a report event");
    report["data"]["resources"]
        .as_array()
        .expect("resources in the report")
        .iter()
        .find(|resource| resource["resource"]["name"] == name)
        .map(|resource| &resource["failure"])
        .unwrap_or_else(|| panic!("{name} not in the report: {report}"))
}

fn resource_state<'a>(deploy: &'a Value, name: &str) -> &'a Value {
    deploy["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|resource| resource["name"] == name)
        .map(|resource| &resource["state"])
        .unwrap_or_else(|| panic!("no state of {name}: {deploy}"))
}

#[tokio::test]
async fn a_job_that_completes_succeeds_once_it_is_complete() {
    let setup = Setup::start(helm_bin()).await;
    // Runs long enough (3s at this time scale) for its log to be read before it completes: the
    // tracking of the revision starts only after helm has returned.
    let (deploy, events) = setup
        .deploy(
            "batch",
            json!({"job": {"behavior": "exitAfter=30s;log=42 rows copied"}}),
        )
        .await;
    assert_eq!(deploy["status"], "succeeded", "{deploy}");
    let sequence = event_sequence(&events);
    assert!(
        has_in_order(
            &sequence,
            &[
                "phase:upgrading",
                "phase:tracking",
                "resource.added",
                "resource.ready",
                "report",
                "deploy.succeeded"
            ]
        ),
        "{sequence:?}"
    );
    let job = about(&events, "batch-task");
    assert!(
        job.iter().any(|event| event["type"] == "container.log"
            && event["message"]
                .as_str()
                .unwrap()
                .contains("42 rows copied")),
        "{job:?}"
    );
    assert_eq!(resource_state(&deploy, "batch-task"), "ready");
    setup.shutdown().await;
}

#[tokio::test]
async fn a_failed_job_fails_the_deploy_with_backoff_limit_exceeded_and_its_logs() {
    let setup = Setup::start(helm_bin()).await;
    let behavior = format!("exitAfter=1s;exitCode=2;log={FAILURE_LOG}");
    let (deploy, events) = setup
        .deploy("batch", json!({"job": {"behavior": behavior}}))
        .await;
    assert_eq!(deploy["status"], "failed", "{deploy}");
    assert_eq!(
        deploy["verdict"]["reason"], "BackoffLimitExceeded",
        "{deploy}"
    );
    assert_eq!(deploy["verdict"]["resource"]["kind"], "Job");
    assert_eq!(deploy["verdict"]["resource"]["name"], "batch-task");
    let sequence = event_sequence(&events);
    assert!(
        has_in_order(
            &sequence,
            &[
                "phase:tracking",
                "resource.added",
                "resource.failed",
                "report",
                "deploy.failed"
            ]
        ),
        "{sequence:?}"
    );
    let failure = reported_failure(&events, "batch-task");
    assert_eq!(failure["reason"], "BackoffLimitExceeded");
    assert_eq!(
        failure["evidence"]["log_lines"],
        json!([FAILURE_LOG]),
        "{failure}"
    );
    assert_eq!(resource_state(&deploy, "batch-task"), "failed");
    setup.shutdown().await;
}

/// Values with the regular Job off and the migration hook on, `hook` overriding its defaults.
fn with_hook(hook: Value) -> Value {
    let mut values = json!({"enabled": true, "behavior": "exitAfter=1s"});
    if let (Some(values), Some(hook)) = (values.as_object_mut(), hook.as_object()) {
        values.extend(hook.clone());
    }
    json!({"job": {"enabled": false}, "hook": values})
}

async fn failed_pre_upgrade_hook_scenario(helm: PathBuf) {
    let setup = Setup::start(helm).await;
    // The first revision's hook succeeds and stays (`before-hook-creation`): the upgrade's hook
    // replaces it, and the old Job's completion must not be taken for the new one's.
    let (first, _) = setup.deploy("shop", with_hook(json!({}))).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let behavior = format!("exitAfter=5s;exitCode=3;log={FAILURE_LOG}");
    let (deploy, events) = setup
        .deploy("shop", with_hook(json!({"behavior": behavior})))
        .await;

    assert_eq!(deploy["status"], "failed", "{deploy}");
    let verdict = &deploy["verdict"];
    assert_eq!(verdict["reason"], "BackoffLimitExceeded", "{verdict}");
    assert_eq!(verdict["resource"]["kind"], "Job", "{verdict}");
    assert_eq!(verdict["resource"]["name"], "shop-migrate", "{verdict}");
    let message = verdict["message"].as_str().unwrap();
    assert!(
        message.starts_with("hook Job default/shop-migrate (pre-install,pre-upgrade): "),
        "{message}"
    );
    let sequence = event_sequence(&events);
    assert!(
        !sequence.contains(&"phase:tracking".to_owned()),
        "{sequence:?}"
    );

    // Followed while helm waited for it: its status, Events and logs, then its failure.
    let upgrading = during(&events, "upgrading");
    let hook: Vec<&Value> = about(upgrading, "shop-migrate");
    assert!(
        hook.iter()
            .all(|event| event["data"]["hook"] == "pre-install,pre-upgrade"),
        "{hook:?}"
    );
    let hook_sequence: Vec<String> = hook
        .iter()
        .map(|event| event["type"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        has_in_order(
            &hook_sequence,
            &["resource.added", "resource.status", "resource.failed"]
        ),
        "{hook_sequence:?}"
    );
    for kind in ["k8s.event", "container.log", "pod.status"] {
        assert!(
            hook_sequence.iter().any(|have| have == kind),
            "no {kind}: {hook_sequence:?}"
        );
    }
    assert!(
        hook.iter().any(|event| event["type"] == "container.log"
            && event["message"].as_str().unwrap().contains(FAILURE_LOG)),
        "{hook:?}"
    );
    let failure = reported_failure(upgrading, "shop-migrate");
    assert_eq!(failure["reason"], "BackoffLimitExceeded", "{failure}");
    assert_eq!(
        failure["evidence"]["log_lines"],
        json!([FAILURE_LOG]),
        "{failure}"
    );
    assert!(
        !failure["evidence"]["events"].as_array().unwrap().is_empty(),
        "{failure}"
    );
    assert_eq!(sequence.last().unwrap(), "deploy.failed", "{sequence:?}");
    assert_eq!(resource_state(&deploy, "shop-migrate"), "failed");
    setup.shutdown().await;
}

#[tokio::test]
async fn a_failed_pre_upgrade_hook_fails_the_deploy_naming_the_hook_job() {
    failed_pre_upgrade_hook_scenario(helm_bin()).await;
}

#[tokio::test]
async fn a_failed_pre_upgrade_hook_fails_the_deploy_naming_the_hook_job_with_helm_v3() {
    failed_pre_upgrade_hook_scenario(helm3_bin()).await;
}

#[tokio::test]
async fn a_hook_still_running_when_helm_gives_up_is_named_in_the_verdict() {
    let setup = Setup::start(helm_bin()).await;
    let id = setup
        .app
        .submit(&json!({
            "release": "shop",
            "namespace": "default",
            "chart": {"path": "jobs"},
            "values": with_hook(json!({"behavior": "exitAfter=10m;log=migrating"})),
            // helm's hook timeout is what is left of the deploy's.
            "timeout": "4s",
        }))
        .await;
    let deploy = super::wait_for_end(&setup.app, id).await;
    assert_eq!(deploy["status"], "failed", "{deploy}");
    let verdict = &deploy["verdict"];
    assert_eq!(verdict["resource"]["name"], "shop-migrate", "{verdict}");
    let message = verdict["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "hook Job default/shop-migrate (pre-install,pre-upgrade) had not finished: "
        ),
        "{message}"
    );
    assert_eq!(resource_state(&deploy, "shop-migrate"), "progressing");
    setup.shutdown().await;
}

#[tokio::test]
async fn a_succeeding_hook_job_is_followed_while_helm_runs_it() {
    let setup = Setup::start(helm_bin()).await;
    let values = with_hook(json!({
        "behavior": "exitAfter=5s;log=schema is current",
        // helm deletes it once it succeeded: that is not news worth streaming.
        "deletePolicy": "before-hook-creation,hook-succeeded",
    }));
    let (deploy, events) = setup.deploy("shop", values).await;
    assert_eq!(deploy["status"], "succeeded", "{deploy}");
    let hook = about(during(&events, "upgrading"), "shop-migrate");
    let hook_sequence: Vec<String> = hook
        .iter()
        .map(|event| event["type"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        has_in_order(
            &hook_sequence,
            &["resource.added", "resource.status", "resource.ready"]
        ),
        "{hook_sequence:?}"
    );
    assert!(
        hook.iter().any(|event| event["type"] == "container.log"
            && event["message"]
                .as_str()
                .unwrap()
                .contains("schema is current")),
        "{hook:?}"
    );
    let after_ready = hook
        .iter()
        .skip_while(|event| event["type"] != "resource.ready")
        .skip(1);
    assert!(
        after_ready
            .clone()
            .all(|event| event["type"] != "resource.status"),
        "{hook:?}"
    );
    // Only the release's own resources are tracked after the upgrade; the hook is not in its manifest.
    let sequence = event_sequence(&events);
    assert!(
        has_in_order(
            &sequence,
            &[
                "phase:upgrading",
                "phase:tracking",
                "report",
                "deploy.succeeded"
            ]
        ),
        "{sequence:?}"
    );
    assert!(about(during(&events, "tracking"), "shop-migrate").is_empty());
    assert_eq!(resource_state(&deploy, "shop-migrate"), "ready");
    setup.shutdown().await;
}

#[tokio::test]
async fn cancel_while_helm_waits_for_a_hook_leaves_the_release_usable() {
    let setup = Setup::start(helm_bin()).await;
    let values = with_hook(json!({"behavior": "exitAfter=10m;log=migrating"}));
    let (id, mut stream) = setup.start_deploy("shop", values).await;
    let running = stream
        .frames_until(SAFETY_TIMEOUT, |frame| {
            frame.event.as_deref() == Some("container.log")
                && frame.json()["resource"]["name"] == "shop-migrate"
        })
        .await;
    let response = setup
        .app
        .post(&format!("/v1/deploys/{id}/cancel"), &setup.app.admin_token)
        .json(&json!({"reason": "migration takes too long"}))
        .send()
        .await
        .expect("POST cancel");
    assert_eq!(response.status(), 202);
    let events = events_until_end(&mut stream, running).await;
    let deploy = setup.app.deploy(id).await;
    assert_eq!(deploy["status"], "cancelled", "{deploy}");
    let sequence = event_sequence(&events);
    assert!(
        has_in_order(
            &sequence,
            &[
                "phase:upgrading",
                "container.log",
                "deploy.cancelling",
                "deploy.cancelled"
            ]
        ),
        "{sequence:?}"
    );
    // helm was stopped mid-hook without leaving the release locked: the next deploy runs, and its
    // hook Job (replacing the one left running) is the one followed.
    let (next, events) = setup.deploy("shop", with_hook(json!({}))).await;
    assert_eq!(next["status"], "succeeded", "{next}");
    let hook = about(during(&events, "upgrading"), "shop-migrate");
    assert!(
        hook.iter().any(|event| event["type"] == "resource.ready"),
        "{hook:?}"
    );
    setup.shutdown().await;
}
