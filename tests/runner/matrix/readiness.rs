//! Readiness judged on evidence, not on the clock (DESIGN §5.2, issue 9 §1). A Deployment of two
//! replicas whose readiness probe (`periodSeconds: 1`, `failureThreshold: 3`, no initial delay, no
//! failure allowed) first passes inside its 3 s window succeeds every time; one whose probe passes
//! only later fails with `ReadinessProbeFailed`, the kubelet's `Unhealthy` Event as evidence.
//!
//! kubesim runs in real seconds here: windows are in spec seconds and Kubernetes timestamps in whole
//! seconds, so a faster clock would not show the bug. Each offset deploys `READINESS_MATRIX_RUNS`
//! times (default 3), concurrently, one namespace per run; `scripts/readiness-matrix` runs 20 per
//! offset and prints how many passed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kubesim::ClusterHandle;
use kubesim::store::{EVENTS, PODS};
use serde_json::{Value, json};

use crate::common::app::{TestApp, spawn_app_with};
use crate::scenarios::Finished;
use crate::{follow_events, start_kubesim, with_runner};

const PERIOD_SECONDS: u64 = 1;
const FAILURE_THRESHOLD: u64 = 3;
/// How long the probe may fail after the start: `initialDelaySeconds + periodSeconds ×
/// failureThreshold`.
const WINDOW: Duration = Duration::from_secs(PERIOD_SECONDS * FAILURE_THRESHOLD);
/// Kubernetes timestamps have whole seconds: a failure dated this late is past the window whatever
/// fraction of a second the start lost.
const PAST_THE_WINDOW: Duration = WINDOW.saturating_add(Duration::from_secs(1));
const REPLICAS: usize = 2;
/// Deploys per offset unless `READINESS_MATRIX_RUNS` says otherwise: enough to catch a bug that
/// fails most runs, few enough for CI.
const DEFAULT_RUNS: u32 = 3;

/// What every run of an offset must end in.
#[derive(Clone, Copy, Debug)]
enum Expected {
    /// The probe passed inside its window: success, no incident.
    Success,
    /// The probe still failed past its window: `ReadinessProbeFailed` with the Event as evidence.
    ReadinessFailure,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_first_passing_at_0_5s_succeeds() {
    readiness_matrix(Duration::from_millis(500), Expected::Success).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_first_passing_at_2_5s_within_the_3s_window_succeeds() {
    readiness_matrix(Duration::from_millis(2500), Expected::Success).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_first_passing_at_2_9s_within_the_3s_window_succeeds() {
    readiness_matrix(Duration::from_millis(2900), Expected::Success).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_first_passing_at_6s_past_the_window_fails_with_the_unhealthy_event_as_evidence()
{
    readiness_matrix(Duration::from_secs(6), Expected::ReadinessFailure).await;
}

/// Deploys the probed Deployment, ready `ready_after` its start, in as many concurrent runs as
/// `READINESS_MATRIX_RUNS` says; each run must end as `expected`.
async fn readiness_matrix(ready_after: Duration, expected: Expected) {
    let runs = runs();
    let cluster = RealTime::start().await;
    let offset = format!("readyAfter={ready_after:?}");
    let tasks: Vec<_> = (1..=runs)
        .map(|run| {
            let cluster = Arc::clone(&cluster);
            tokio::spawn(async move {
                let namespace = format!("readiness-{}ms-{run}", ready_after.as_millis());
                let finished = cluster.deploy(&namespace, ready_after).await;
                match expected {
                    Expected::Success => {
                        assert_succeeded_after_failed_probes(
                            &cluster,
                            &namespace,
                            &finished,
                            ready_after,
                        );
                    }
                    Expected::ReadinessFailure => {
                        assert_failed_on_readiness(&cluster, &namespace, &finished);
                    }
                }
            })
        })
        .collect();
    let mut failures = Vec::new();
    for (run, task) in (1..=runs).zip(tasks) {
        if let Err(error) = task.await {
            failures.push(format!(
                "{offset}, run {run} of {runs}: {}",
                panic_message(error)
            ));
        }
    }
    let passed = runs as usize - failures.len();
    // Read by scripts/readiness-matrix.
    println!("readiness matrix: {offset}: {passed}/{runs} runs as expected ({expected:?})");
    let Ok(cluster) = Arc::try_unwrap(cluster) else {
        panic!("every run is over");
    };
    cluster.shutdown().await;
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn runs() -> u32 {
    match std::env::var("READINESS_MATRIX_RUNS") {
        Ok(text) => text
            .parse()
            .ok()
            .filter(|runs| *runs > 0)
            .unwrap_or_else(|| panic!("READINESS_MATRIX_RUNS={text:?}: expected a count ≥ 1")),
        Err(_) => DEFAULT_RUNS,
    }
}

fn panic_message(error: tokio::task::JoinError) -> String {
    match error.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| {
                payload
                    .downcast_ref::<&str>()
                    .map(|text| (*text).to_owned())
            })
            .unwrap_or_else(|| "panicked".to_owned()),
        Err(error) => error.to_string(),
    }
}

/// How the deploy ended, in one line: its status and verdict.
fn outcome(finished: &Finished) -> String {
    let verdict = &finished.deploy["verdict"];
    match verdict["reason"].as_str() {
        Some(reason) => format!("{} ({reason}: {})", finished.status(), verdict["message"]),
        None => finished.status().to_owned(),
    }
}

/// The kubelet's Event of a failed readiness probe, as stored or as summarized in a report (both
/// have `reason` and `message`).
fn is_failed_readiness_probe(event: &Value) -> bool {
    event["reason"] == "Unhealthy"
        && event["message"]
            .as_str()
            .is_some_and(|message| message.starts_with("Readiness probe failed: "))
}

fn assert_succeeded_after_failed_probes(
    cluster: &RealTime,
    namespace: &str,
    finished: &Finished,
    ready_after: Duration,
) {
    let incidents = finished.of("resource.failure").len() + finished.of("resource.failed").len();
    assert!(
        finished.status() == "succeeded" && incidents == 0,
        "expected success without incident, got {} after {incidents} incident events\n{}",
        outcome(finished),
        finished.explain()
    );
    assert_eq!(
        finished.resource("Deployment", "web")["ready"],
        format!("{REPLICAS}/{REPLICAS}"),
        "{}",
        finished.explain()
    );
    // The scenario happened as planned: the kubelet probed at 0, 1, 2 … s after each start, and
    // the probes before `ready_after` failed.
    let expected = (ready_after.as_secs_f64() / PERIOD_SECONDS as f64).ceil() as i64;
    let failed = cluster.failed_probes(namespace);
    assert!(
        failed == vec![expected; REPLICAS],
        "failed readiness probes per pod: {failed:?}, expected {expected} each"
    );
}

fn assert_failed_on_readiness(cluster: &RealTime, namespace: &str, finished: &Finished) {
    assert!(
        finished.status() == "failed" && finished.verdict_reason() == "ReadinessProbeFailed",
        "expected to fail with ReadinessProbeFailed, got {}\n{}",
        outcome(finished),
        finished.explain()
    );
    let resource = &finished.deploy["verdict"]["resource"];
    assert_eq!(
        (&resource["kind"], &resource["name"]),
        (&json!("Deployment"), &json!("web")),
        "{}",
        finished.explain()
    );
    finished.assert_in_order(&[
        "phase:tracking",
        "resource.failure",
        "resource.failed",
        "report",
        "deploy.failed",
    ]);
    let failure = finished.reported_failure("Deployment", "web");
    assert_eq!(failure["reason"], "ReadinessProbeFailed", "{failure}");
    let evidence = &failure["evidence"];
    assert_eq!(evidence["container"], "web", "{failure}");
    let pod = evidence["pod"]
        .as_str()
        .unwrap_or_else(|| panic!("the failing pod is named: {failure}"));
    // The kubelet's Event of a failed probe, dated past the window after the container started.
    let started_at = cluster.started_at(namespace, pod);
    let dated: Vec<&str> = evidence["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|event| event["involved_name"] == pod && is_failed_readiness_probe(event))
        .filter_map(|event| event["at"].as_str())
        .collect();
    assert!(
        dated
            .iter()
            .filter_map(|at| at.parse::<DateTime<Utc>>().ok())
            .any(|at| at >= started_at + PAST_THE_WINDOW),
        "no failed probe of {pod} dated {PAST_THE_WINDOW:?} after its start ({started_at}) in \
         the evidence, only at {dated:?}: {failure}"
    );
}

/// rollcall (a runner, the real helm) and kubesim at time scale 1.0, shared by the concurrent runs
/// of one offset.
struct RealTime {
    app: TestApp,
    cluster: ClusterHandle,
    _home: tempfile::TempDir,
}

impl RealTime {
    async fn start() -> Arc<RealTime> {
        let home = tempfile::tempdir().expect("a temporary directory");
        let (cluster, kubeconfig) = start_kubesim(1.0, home.path()).await;
        let app = spawn_app_with(|config| with_runner(config, Some(kubeconfig), home.path())).await;
        Arc::new(RealTime {
            app,
            cluster,
            _home: home,
        })
    }

    /// Installs the `web` chart into `namespace` (created for it) with the probed Deployment, and
    /// follows the deploy over SSE to its end.
    async fn deploy(&self, namespace: &str, ready_after: Duration) -> Finished {
        let body = json!({
            "release": "web",
            "namespace": namespace,
            "create_namespace": true,
            "chart": {"path": "web"},
            "values": {
                "replicas": REPLICAS,
                "behavior": format!("readyAfter={}ms", ready_after.as_millis()),
                "readinessProbe": {
                    "httpGet": {"path": "/ready", "port": 8080},
                    "periodSeconds": PERIOD_SECONDS,
                    "failureThreshold": FAILURE_THRESHOLD,
                },
                "annotations": {"werf.io/failures-allowed-per-replica": "0"},
            },
            "timeout": "60s",
        });
        let id = self.app.submit(&body).await;
        let events = follow_events(&self.app, id, |_| {}).await;
        Finished {
            deploy: self.app.deploy(id).await,
            events,
        }
    }

    /// Per pod of `namespace`, by name: how many readiness probes of container `web` failed (the
    /// `count` of the kubelet's folded `Unhealthy` Event).
    fn failed_probes(&self, namespace: &str) -> Vec<i64> {
        let (events, _) = self.cluster.store().list(&EVENTS, Some(namespace));
        let mut counts: BTreeMap<String, i64> = self
            .cluster
            .store()
            .list(&PODS, Some(namespace))
            .0
            .iter()
            .filter_map(|pod| Some((pod["metadata"]["name"].as_str()?.to_owned(), 0)))
            .collect();
        for event in &events {
            let about_web = event["involvedObject"]["fieldPath"] == "spec.containers{web}";
            if let (true, Some(pod)) = (
                about_web && is_failed_readiness_probe(event),
                event["involvedObject"]["name"].as_str(),
            ) && let Some(count) = counts.get_mut(pod)
            {
                *count += event["count"].as_i64().unwrap_or(1);
            }
        }
        counts.into_values().collect()
    }

    /// The `startedAt` of container `web` of `pod`, as the kubelet recorded it (whole seconds).
    fn started_at(&self, namespace: &str, pod: &str) -> DateTime<Utc> {
        let object = self
            .cluster
            .store()
            .get(&PODS, Some(namespace), pod)
            .unwrap_or_else(|| panic!("pod {namespace}/{pod} exists"));
        object["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|status| status["name"] == "web")
            .and_then(|status| status["state"]["running"]["startedAt"].as_str())
            .and_then(|at| at.parse().ok())
            .unwrap_or_else(|| panic!("container web of {pod} is running: {object}"))
    }

    async fn shutdown(self) {
        self.app.shutdown().await;
        self.cluster.shutdown().await;
    }
}
