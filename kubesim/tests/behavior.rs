//! The simulated kubelet and the behaviour vocabulary (`sim.rollcall.dev/behavior`), one test per key.

#[path = "controllers_support/mod.rs"]
mod support;

use std::time::Duration;

use kubesim::control_loop::TransitionKind;
use kubesim::store::{PODS, WatchEventType};
use serde_json::{Value, json};
use support::*;
use tokio::time::Instant;

fn container_status(pod: &Value) -> &Value {
    &pod["status"]["containerStatuses"][0]
}

fn running(pod: &Value) -> bool {
    container_status(pod)["state"]["running"].is_object()
}

fn event_messages(sim: &Sim, pod: &str, reason: &str) -> Vec<String> {
    sim.events_about(pod)
        .iter()
        .filter(|event| event["reason"] == reason)
        .map(|event| event["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Starts a bare pod `name` whose one container runs `image` with `behavior`.
fn run_pod(sim: &Sim, name: &str, image: &str, behavior: &str) {
    sim.create(&PODS, pod(name, template(name, image, Some(behavior))));
}

/// Waits until pod `name` satisfies `condition`.
async fn pod_when(sim: &Sim, name: &str, what: &str, condition: impl Fn(&Value) -> bool) -> Value {
    sim.wait_for(what, |sim| {
        sim.get(&PODS, name).filter(|pod| condition(pod))
    })
    .await
}

async fn ready_pod(sim: &Sim, name: &str) -> Value {
    pod_when(sim, name, "pod ready", is_ready).await
}

#[tokio::test]
async fn default_pod_is_scheduled_pulled_started_and_ready() {
    let sim = Sim::start();
    let mut transitions = sim.control.subscribe();
    sim.create(&PODS, pod("plain", template("plain", "nginx:1.25", None)));
    let pod = ready_pod(&sim, "plain").await;
    assert_eq!(pod["status"]["phase"], "Running");
    let types: Vec<&str> = pod["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|condition| condition["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled"
        ]
    );
    let status = container_status(&pod);
    assert_eq!(
        (
            status["ready"].as_bool(),
            status["started"].as_bool(),
            status["restartCount"].as_i64()
        ),
        (Some(true), Some(true), Some(0))
    );
    assert!(
        status["containerID"]
            .as_str()
            .unwrap()
            .starts_with("containerd://")
    );
    assert!(
        pod["status"]["podIP"]
            .as_str()
            .unwrap()
            .starts_with("10.244.")
    );
    assert!(
        pod["status"]["hostIP"]
            .as_str()
            .unwrap()
            .starts_with("172.18.0.")
    );
    assert_eq!(
        sim.reasons_about("plain"),
        ["Scheduled", "Pulling", "Pulled", "Created", "Started"]
    );
    let pulled = &sim.events_about("plain")[2];
    assert_eq!(
        pulled["involvedObject"]["fieldPath"],
        "spec.containers{app}"
    );
    assert_eq!(pulled["source"]["component"], "kubelet");
    assert_eq!(pulled["source"]["host"], pod["spec"]["nodeName"]);
    assert!(
        pulled["message"]
            .as_str()
            .unwrap()
            .starts_with("Successfully pulled image \"nginx:1.25\" in ")
    );
    assert_eq!(
        event_messages(&sim, "plain", "Started"),
        ["Started container app"]
    );
    assert_eq!(
        event_messages(&sim, "plain", "Created"),
        ["Created container app"]
    );
    let ready = transitions.recv().await.unwrap();
    assert_eq!(
        (ready.kind, ready.name.as_str()),
        (TransitionKind::PodReady, "plain")
    );
    sim.stop().await;
}

#[tokio::test]
async fn start_delay_keeps_the_container_creating() {
    let sim = Sim::start();
    let created = Instant::now();
    sim.create(
        &PODS,
        pod(
            "slow-start",
            template("slow", "app:1", Some("startDelay=20s")),
        ),
    );
    sim.wait_until("pulled", |sim| {
        !event_messages(sim, "slow-start", "Pulled").is_empty()
    })
    .await;
    assert_eq!(
        container_status(&sim.get(&PODS, "slow-start").unwrap())["state"]["waiting"]["reason"],
        "ContainerCreating"
    );
    sim.wait_until("running", |sim| {
        sim.get(&PODS, "slow-start")
            .is_some_and(|pod| running(&pod))
    })
    .await;
    assert!(created.elapsed() >= sim.scaled(20.0));
    sim.stop().await;
}

#[tokio::test]
async fn ready_after_delays_readiness_of_a_running_container() {
    let sim = Sim::start();
    let created = Instant::now();
    run_pod(&sim, "warming", "app:1", "readyAfter=15s");
    let running_pod = pod_when(&sim, "warming", "running", running).await;
    assert!(!is_ready(&running_pod));
    assert_eq!(
        condition(&running_pod, "Ready").unwrap()["reason"],
        "ContainersNotReady"
    );
    ready_pod(&sim, "warming").await;
    assert!(created.elapsed() >= sim.scaled(15.0));
    sim.stop().await;
}

#[tokio::test]
async fn never_ready_container_fails_its_readiness_probe() {
    let sim = Sim::start();
    let mut never = template("never", "app:1", Some("neverReady=true"));
    never["spec"]["containers"][0]["readinessProbe"] =
        json!({"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 2});
    sim.create(&PODS, pod("never", never));
    sim.wait_until("repeated probe failures", |sim| {
        sim.events_about("never")
            .iter()
            .any(|event| event["reason"] == "Unhealthy" && event["count"].as_i64() >= Some(3))
    })
    .await;
    let unhealthy = sim
        .events_about("never")
        .into_iter()
        .find(|event| event["reason"] == "Unhealthy")
        .unwrap();
    assert_eq!(
        unhealthy["message"],
        "Readiness probe failed: HTTP probe failed with statuscode: 503"
    );
    assert_eq!(unhealthy["type"], "Warning");
    let pod = sim.get(&PODS, "never").unwrap();
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(
        condition(&pod, "Ready").unwrap()["message"],
        "containers with unready status: [app]"
    );
    sim.stop().await;
}

/// A `metav1.Time` as the API serializes it (RFC 3339, whole seconds, UTC), in Unix seconds.
fn whole_seconds(time: &Value) -> i64 {
    let text = time
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {time}"));
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%SZ")
        .unwrap_or_else(|error| panic!("{text:?} is not whole-second RFC 3339: {error}"))
        .and_utc()
        .timestamp()
}

#[tokio::test]
async fn readiness_probe_fails_every_period_until_ready_after_has_passed() {
    // Real seconds: the probe schedule is checked against whole-second timestamps.
    let sim = Sim::start_in_real_time();
    let mut warming = template("warming", "app:1", Some("readyAfter=2.5s"));
    warming["spec"]["containers"][0]["readinessProbe"] = json!({
        "httpGet": {"path": "/ready", "port": 8080},
        "periodSeconds": 1,
        "failureThreshold": 3,
    });
    sim.create(&PODS, pod("warming", warming));
    let running_pod = pod_when(&sim, "warming", "running", running).await;
    let running_since = Instant::now();
    let ready = ready_pod(&sim, "warming").await;
    // Probes at 0, 1 and 2 s fail; the one at 3 s is the first after 2.5 s and passes.
    assert!(
        running_since.elapsed() >= Duration::from_millis(2500),
        "ready only at a probe"
    );
    let unhealthy: Vec<_> = sim
        .events_about("warming")
        .into_iter()
        .filter(|event| event["reason"] == "Unhealthy")
        .collect();
    let [event] = unhealthy.as_slice() else {
        panic!("one Event for the repeated failure: {unhealthy:#?}");
    };
    assert_eq!(
        (&event["type"], &event["message"], &event["count"]),
        (
            &json!("Warning"),
            &json!("Readiness probe failed: HTTP probe failed with statuscode: 503"),
            &json!(3)
        ),
        "{event}"
    );
    assert_eq!(event["involvedObject"]["fieldPath"], "spec.containers{app}");
    assert_eq!(event["involvedObject"]["uid"], ready["metadata"]["uid"]);
    assert!(event["eventTime"].is_null(), "a core/v1 recorder Event");
    // Whole seconds everywhere metav1.Time is used; the failures are dated within the window
    // (3 s after the start, plus the second lost to truncation).
    let started = whole_seconds(&container_status(&running_pod)["state"]["running"]["startedAt"]);
    assert_eq!(
        container_status(&ready)["state"]["running"]["startedAt"],
        container_status(&running_pod)["state"]["running"]["startedAt"]
    );
    let first = whole_seconds(&event["firstTimestamp"]);
    let last = whole_seconds(&event["lastTimestamp"]);
    let ready_since = whole_seconds(&condition(&ready, "Ready").unwrap()["lastTransitionTime"]);
    whole_seconds(&ready["metadata"]["creationTimestamp"]);
    whole_seconds(&event["metadata"]["creationTimestamp"]);
    assert!(
        (0..=1).contains(&(first - started)),
        "first failure at the start: started {started}, first {first}"
    );
    assert!(
        (2..=3).contains(&(last - started)),
        "last failure 2 s after the start: started {started}, last {last}"
    );
    assert!(
        (3..=4).contains(&(ready_since - started)),
        "ready at the probe 3 s after the start: started {started}, ready {ready_since}"
    );
    sim.stop().await;
}

#[tokio::test]
async fn crash_after_exits_and_backs_off_in_crash_loop() {
    let sim = Sim::start();
    let mut transitions = sim.control.subscribe();
    run_pod(
        &sim,
        "crasher",
        "app:1",
        "crashAfter=1s;exitCode=3;log=booting",
    );
    let pod = pod_when(&sim, "crasher", "crash loop", |pod| {
        container_status(pod)["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    })
    .await;
    let status = container_status(&pod);
    let pod_ref = format!("crasher_default({})", uid(&pod));
    assert_eq!(
        status["state"]["waiting"]["message"],
        format!("back-off 10s restarting failed container=app pod={pod_ref}")
    );
    assert_eq!(status["lastState"]["terminated"]["exitCode"], 3);
    assert_eq!(status["lastState"]["terminated"]["reason"], "Error");
    assert_eq!(status["restartCount"], 1);
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(
        event_messages(&sim, "crasher", "BackOff"),
        [format!(
            "Back-off restarting failed container app in pod {pod_ref}"
        )]
    );
    let back_off = loop {
        let transition = transitions.recv().await.unwrap();
        if let TransitionKind::CrashLoopBackOff { container } = transition.kind {
            break container;
        }
    };
    assert_eq!(back_off, "app");
    // the back-off doubles
    sim.wait_until("second back-off", |sim| {
        sim.get(&PODS, "crasher").is_some_and(|pod| {
            container_status(&pod)["state"]["waiting"]["message"]
                .as_str()
                .is_some_and(|message| message.starts_with("back-off 20s"))
        })
    })
    .await;
    let previous = sim.logs.lines("default", "crasher", "app", 1);
    assert_eq!(
        previous
            .iter()
            .map(|line| line.text.as_str())
            .collect::<Vec<_>>(),
        ["booting"]
    );
    sim.stop().await;
}

/// Runs a pod with restartPolicy Never and the behaviour until it reaches `phase`; returns it.
async fn finished_pod(sim: &Sim, name: &str, behavior: &str, phase: &str) -> Value {
    let mut task = template(name, "task:1", Some(behavior));
    task["spec"]["restartPolicy"] = json!("Never");
    sim.create(&PODS, pod(name, task));
    sim.wait_for(phase, |sim| {
        sim.get(&PODS, name)
            .filter(|pod| pod["status"]["phase"] == phase)
    })
    .await
}

fn termination(pod: &Value) -> (Option<i64>, Option<&str>) {
    let terminated = &container_status(pod)["state"]["terminated"];
    (
        terminated["exitCode"].as_i64(),
        terminated["reason"].as_str(),
    )
}

#[tokio::test]
async fn exit_after_completes_a_never_restarting_pod() {
    let sim = Sim::start();
    let pod = finished_pod(&sim, "task", "exitAfter=2s", "Succeeded").await;
    assert_eq!(termination(&pod), (Some(0), Some("Completed")));
    assert_eq!(condition(&pod, "Ready").unwrap()["reason"], "PodCompleted");
    sim.stop().await;
}

#[tokio::test]
async fn exit_code_with_exit_after_fails_the_pod() {
    let sim = Sim::start();
    let pod = finished_pod(&sim, "bad-task", "exitAfter=1s;exitCode=4", "Failed").await;
    assert_eq!(termination(&pod), (Some(4), Some("Error")));
    sim.stop().await;
}

#[tokio::test]
async fn image_pull_fail_ends_in_image_pull_back_off() {
    let sim = Sim::start();
    run_pod(
        &sim,
        "badimage",
        "registry.example/missing:1",
        "imagePull=fail",
    );
    let pod = pod_when(&sim, "badimage", "image pull back-off", |pod| {
        container_status(pod)["state"]["waiting"]["reason"] == "ImagePullBackOff"
    })
    .await;
    assert_eq!(
        container_status(&pod)["state"]["waiting"]["message"],
        "Back-off pulling image \"registry.example/missing:1\""
    );
    assert_eq!(pod["status"]["phase"], "Pending");
    let failures = event_messages(&sim, "badimage", "Failed");
    assert!(
        failures
            .iter()
            .any(|message| message
                .starts_with("Failed to pull image \"registry.example/missing:1\": ")),
        "{failures:?}"
    );
    assert!(failures.contains(&"Error: ErrImagePull".to_owned()));
    assert!(failures.contains(&"Error: ImagePullBackOff".to_owned()));
    assert_eq!(
        event_messages(&sim, "badimage", "BackOff"),
        ["Back-off pulling image \"registry.example/missing:1\""]
    );
    sim.stop().await;
}

#[tokio::test]
async fn image_pull_never_reports_err_image_never_pull() {
    let sim = Sim::start();
    run_pod(&sim, "local", "local/app:dev", "imagePull=never");
    let pod = pod_when(&sim, "local", "never pull", |pod| {
        container_status(pod)["state"]["waiting"]["reason"] == "ErrImageNeverPull"
    })
    .await;
    assert_eq!(
        container_status(&pod)["state"]["waiting"]["message"],
        "Container image \"local/app:dev\" is not present with pull policy of Never"
    );
    assert_eq!(
        event_messages(&sim, "local", "Failed"),
        ["Error: ErrImageNeverPull"]
    );
    sim.stop().await;
}

#[tokio::test]
async fn fail_first_starts_fails_then_runs_for_good() {
    let sim = Sim::start();
    run_pod(&sim, "flaky", "app:1", "failFirstStarts=2");
    let pod = pod_when(&sim, "flaky", "ready after failures", |pod| {
        is_ready(pod) && container_status(pod)["restartCount"] == 2
    })
    .await;
    assert_eq!(
        container_status(&pod)["lastState"]["terminated"]["exitCode"],
        1
    );
    // identical events are aggregated by count, as the legacy recorder does
    let started: Vec<_> = sim
        .events_about("flaky")
        .into_iter()
        .filter(|event| event["reason"] == "Started")
        .collect();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["count"], 3);
    assert!(started[0]["lastTimestamp"].as_str() >= started[0]["firstTimestamp"].as_str());
    sim.stop().await;
}

#[tokio::test]
async fn termination_delay_keeps_a_deleted_pod_terminating_then_failed() {
    let sim = Sim::start();
    run_pod(&sim, "lingering", "app:1", "terminationDelay=10s");
    let pod = ready_pod(&sim, "lingering").await;
    let history = sim.record_pods();
    let deleted_at = Instant::now();
    sim.delete(&PODS, "lingering");
    sim.wait_until("removed", |sim| sim.get(&PODS, "lingering").is_none())
        .await;
    assert!(deleted_at.elapsed() >= sim.scaled(10.0));
    assert_eq!(
        history.deletion_steps(uid(&pod)),
        [
            PodStep::DeletionRequested,
            PodStep::TerminalPhase("Failed".into()),
            PodStep::Removed
        ]
    );
    let last = history
        .changes()
        .into_iter()
        .rfind(|change| change.event_type == WatchEventType::Deleted)
        .unwrap();
    assert_eq!(
        container_status(&last.object)["state"]["terminated"]["exitCode"],
        143
    );
    // a pod keeps its readiness while it drains unless told otherwise
    let terminating = history
        .changes()
        .into_iter()
        .find(|change| change.object["metadata"]["deletionTimestamp"].is_string())
        .unwrap();
    assert!(is_ready(&terminating.object));
    assert_eq!(
        event_messages(&sim, "lingering", "Killing"),
        ["Stopping container app"]
    );
    sim.stop().await;
}

#[tokio::test]
async fn termination_delay_beyond_the_grace_period_ends_in_sigkill() {
    let sim = Sim::start();
    let mut stubborn = template("stubborn", "app:1", Some("terminationDelay=10m"));
    stubborn["spec"]["terminationGracePeriodSeconds"] = json!(2);
    sim.create(&PODS, pod("stubborn", stubborn));
    ready_pod(&sim, "stubborn").await;
    let history = sim.record_pods();
    sim.delete(&PODS, "stubborn");
    sim.wait_until("removed", |sim| sim.get(&PODS, "stubborn").is_none())
        .await;
    let last = history
        .changes()
        .into_iter()
        .rfind(|change| change.event_type == WatchEventType::Deleted)
        .unwrap();
    assert_eq!(
        container_status(&last.object)["state"]["terminated"]["exitCode"],
        137
    );
    sim.stop().await;
}

#[tokio::test]
async fn not_ready_while_terminating_drops_readiness_at_deletion() {
    let sim = Sim::start();
    run_pod(
        &sim,
        "draining",
        "app:1",
        "terminationDelay=20s;notReadyWhileTerminating=true",
    );
    ready_pod(&sim, "draining").await;
    sim.delete(&PODS, "draining");
    let pod = pod_when(&sim, "draining", "unready while terminating", |pod| {
        pod["metadata"]["deletionTimestamp"].is_string() && !is_ready(pod)
    })
    .await;
    assert_eq!(pod["status"]["phase"], "Running");
    assert!(running(&pod));
    sim.stop().await;
}

#[tokio::test]
async fn fail_readiness_while_terminating_emits_unhealthy_events() {
    let sim = Sim::start();
    let mut probed = template(
        "probed",
        "app:1",
        Some("terminationDelay=10s;failReadinessWhileTerminating=true"),
    );
    probed["spec"]["containers"][0]["readinessProbe"] =
        json!({"tcpSocket": {"port": 5432}, "periodSeconds": 2, "initialDelaySeconds": 2});
    sim.create(&PODS, pod("probed", probed));
    let ready = ready_pod(&sim, "probed").await;
    assert!(event_messages(&sim, "probed", "Unhealthy").is_empty());
    sim.delete(&PODS, "probed");
    sim.wait_until("removed", |sim| sim.get(&PODS, "probed").is_none())
        .await;
    let ip = ready["status"]["podIP"].as_str().unwrap();
    assert_eq!(
        event_messages(&sim, "probed", "Unhealthy"),
        [format!(
            "Readiness probe failed: dial tcp {ip}:5432: connect: connection refused"
        )]
    );
    let unhealthy = sim
        .events_about("probed")
        .into_iter()
        .find(|event| event["reason"] == "Unhealthy")
        .unwrap();
    assert!(unhealthy["count"].as_i64().unwrap() >= 3, "{unhealthy}");
    // Both the kubelet's stop and its probes are about the container.
    let killing = sim
        .events_about("probed")
        .into_iter()
        .find(|event| event["reason"] == "Killing")
        .unwrap();
    for event in [&unhealthy, &killing] {
        assert_eq!(
            event["involvedObject"]["fieldPath"], "spec.containers{app}",
            "{event}"
        );
    }
    sim.stop().await;
}

#[tokio::test]
async fn log_and_log_every_write_lines_to_the_log_book() {
    let sim = Sim::start();
    run_pod(&sim, "chatty", "app:1", "log=tick;logEvery=1s");
    sim.wait_until("log lines", |sim| {
        sim.logs.lines("default", "chatty", "app", 0).len() >= 4
    })
    .await;
    assert!(
        sim.logs
            .lines("default", "chatty", "app", 0)
            .iter()
            .all(|line| line.text == "tick")
    );
    sim.stop().await;
}

#[tokio::test]
async fn invalid_behavior_is_reported_and_the_pod_runs_with_defaults() {
    let sim = Sim::start();
    run_pod(&sim, "typo", "app:1", "readyAfter=soon");
    ready_pod(&sim, "typo").await;
    assert_eq!(
        event_messages(&sim, "typo", "InvalidBehavior"),
        [
            "annotation sim.rollcall.dev/behavior: invalid value \"soon\" for readyAfter: a duration such as 500ms, 2s or 1m; the container runs with the default behaviour"
        ]
    );
    sim.stop().await;
}

#[tokio::test]
async fn container_specific_annotation_applies_to_that_container_only() {
    let sim = Sim::start();
    let mut two = template("two", "app:1", None);
    two["spec"]["containers"] =
        json!([{"name": "app", "image": "app:1"}, {"name": "sidecar", "image": "envoy:1"}]);
    two["metadata"]["annotations"] =
        json!({"sim.rollcall.dev/behavior-sidecar": "neverReady=true"});
    sim.create(&PODS, pod("two", two));
    let pod = pod_when(&sim, "two", "app ready, sidecar not", |pod| {
        pod["status"]["containerStatuses"]
            .as_array()
            .is_some_and(|statuses| {
                statuses
                    .iter()
                    .any(|status| status["name"] == "app" && status["ready"] == true)
            })
    })
    .await;
    assert!(!is_ready(&pod));
    assert_eq!(
        condition(&pod, "ContainersReady").unwrap()["message"],
        "containers with unready status: [sidecar]"
    );
    sim.stop().await;
}

#[tokio::test]
async fn fail_liveness_after_gets_the_container_killed_and_restarted() {
    let sim = Sim::start();
    let mut sick = template("sick", "app:1", Some("failLivenessAfter=5s"));
    sick["spec"]["containers"][0]["livenessProbe"] = json!({"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 2, "failureThreshold": 2});
    sim.create(&PODS, pod("sick", sick));
    let pod = pod_when(&sim, "sick", "restarted", |pod| {
        container_status(pod)["restartCount"].as_i64() >= Some(1)
    })
    .await;
    assert_eq!(
        container_status(&pod)["lastState"]["terminated"]["exitCode"],
        137
    );
    assert_eq!(
        event_messages(&sim, "sick", "Unhealthy"),
        ["Liveness probe failed: HTTP probe failed with statuscode: 503"]
    );
    let unhealthy = sim
        .events_about("sick")
        .into_iter()
        .find(|event| event["reason"] == "Unhealthy")
        .unwrap();
    assert!(unhealthy["count"].as_i64() >= Some(2));
    assert!(
        event_messages(&sim, "sick", "Killing")
            .contains(&"Container app failed liveness probe, will be restarted".to_owned())
    );
    sim.stop().await;
}

#[tokio::test]
async fn invalid_image_name_is_reported_and_never_pulled() {
    let sim = Sim::start();
    sim.create(
        &PODS,
        pod("typo-image", template("typo-image", "Nginx:1.25", None)),
    );
    let pod = pod_when(&sim, "typo-image", "invalid image", |pod| {
        container_status(pod)["state"]["waiting"]["reason"] == "InvalidImageName"
    })
    .await;
    assert_eq!(
        container_status(&pod)["state"]["waiting"]["message"],
        "Failed to apply default image tag \"Nginx:1.25\": couldn't parse image name \"Nginx:1.25\": invalid reference format"
    );
    assert_eq!(
        event_messages(&sim, "typo-image", "Failed"),
        ["Error: InvalidImageName"]
    );
    assert!(event_messages(&sim, "typo-image", "Pulling").is_empty());
    sim.stop().await;
}

#[tokio::test]
async fn missing_config_map_blocks_the_container_until_it_exists() {
    let sim = Sim::start();
    let mut configured = template("configured", "app:1", None);
    configured["spec"]["containers"][0]["env"] = json!([{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}}]);
    sim.create(&PODS, pod("configured", configured));
    let pod = pod_when(&sim, "configured", "config error", |pod| {
        container_status(pod)["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    })
    .await;
    assert_eq!(
        container_status(&pod)["state"]["waiting"]["message"],
        "configmap \"settings\" not found"
    );
    assert_eq!(
        event_messages(&sim, "configured", "Failed"),
        ["Error: configmap \"settings\" not found"]
    );
    sim.create(
        &kubesim::store::CONFIGMAPS,
        json!({"metadata": {"name": "settings", "namespace": NAMESPACE}, "data": {"mode": "fast"}}),
    );
    ready_pod(&sim, "configured").await;
    sim.stop().await;
}

#[tokio::test]
async fn missing_secret_volume_keeps_the_pod_creating_with_failed_mount() {
    let sim = Sim::start();
    let mut mounted = template("mounted", "app:1", None);
    mounted["spec"]["volumes"] = json!([{"name": "tls", "secret": {"secretName": "web-tls"}}]);
    sim.create(&PODS, pod("mounted", mounted));
    sim.wait_until("failed mount", |sim| {
        !event_messages(sim, "mounted", "FailedMount").is_empty()
    })
    .await;
    assert_eq!(
        event_messages(&sim, "mounted", "FailedMount"),
        ["MountVolume.SetUp failed for volume \"tls\" : secret \"web-tls\" not found"]
    );
    let pod = sim.get(&PODS, "mounted").unwrap();
    assert_eq!(
        container_status(&pod)["state"]["waiting"]["reason"],
        "ContainerCreating"
    );
    assert_eq!(pod["status"]["phase"], "Pending");
    sim.create(
        &kubesim::store::SECRETS,
        json!({"metadata": {"name": "web-tls", "namespace": NAMESPACE}, "data": {}}),
    );
    ready_pod(&sim, "mounted").await;
    sim.stop().await;
}

#[tokio::test]
async fn init_containers_run_in_order_before_the_app_starts() {
    let sim = Sim::start();
    let mut initialized = template("initialized", "app:1", None);
    initialized["spec"]["initContainers"] =
        json!([{"name": "wait-db", "image": "busybox:1"}, {"name": "migrate", "image": "app:1"}]);
    initialized["metadata"]["annotations"] =
        json!({"sim.rollcall.dev/behavior-migrate": "exitAfter=3s;failFirstStarts=1"});
    sim.create(&PODS, pod("initialized", initialized));
    let initializing = pod_when(&sim, "initialized", "initializing", |pod| {
        container_status(pod)["state"]["waiting"]["reason"] == "PodInitializing"
    })
    .await;
    assert_eq!(initializing["status"]["phase"], "Pending");
    let pod = ready_pod(&sim, "initialized").await;
    let inits = pod["status"]["initContainerStatuses"].as_array().unwrap();
    let migrate = inits
        .iter()
        .find(|status| status["name"] == "migrate")
        .unwrap();
    assert_eq!(migrate["state"]["terminated"]["reason"], "Completed");
    assert_eq!(migrate["restartCount"], 1);
    assert_eq!(condition(&pod, "Initialized").unwrap()["status"], "True");
    let started: Vec<String> = sim
        .events_about("initialized")
        .iter()
        .filter(|event| event["reason"] == "Started")
        .map(|event| {
            event["involvedObject"]["fieldPath"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        started,
        [
            "spec.initContainers{wait-db}",
            "spec.initContainers{migrate}",
            "spec.containers{app}"
        ]
    );
    sim.stop().await;
}

#[tokio::test]
async fn failing_init_container_of_a_never_restarting_pod_fails_the_pod() {
    let sim = Sim::start();
    let mut doomed = template("doomed", "app:1", None);
    doomed["spec"]["restartPolicy"] = json!("Never");
    doomed["spec"]["initContainers"] = json!([{"name": "check", "image": "busybox:1"}]);
    doomed["metadata"]["annotations"] =
        json!({"sim.rollcall.dev/behavior-check": "exitAfter=1s;exitCode=1"});
    sim.create(&PODS, pod("doomed", doomed));
    let pod = pod_when(&sim, "doomed", "failed", |pod| {
        pod["status"]["phase"] == "Failed"
    })
    .await;
    assert_eq!(
        condition(&pod, "Initialized").unwrap()["message"],
        "containers with incomplete status: [check]"
    );
    assert_eq!(
        container_status(&pod)["state"]["waiting"]["reason"],
        "PodInitializing"
    );
    sim.stop().await;
}
