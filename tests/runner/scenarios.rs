//! DESIGN §8 scenarios end to end: real helm against kubesim, a real PostgreSQL, rollcall over HTTP,
//! asserting the final state, the verdict reason and the event sequence as an SSE client reads it.
//! The support here serves the whole matrix (`matrix/`); the seed scenarios follow it.

use std::path::PathBuf;

use kubesim::options::{ClusterOptions, KubeVersion};
use kubesim::store::DEPLOYMENTS;
use kubesim::{Cluster, ClusterHandle};
use rollcall::config::Config;
use serde_json::{Value, json};
use uuid::Uuid;

use super::common::app::{TestApp, spawn_app_with};
use super::{event_sequence, follow_events, helm_bin, wait_for, with_runner};

/// The events of a deploy that succeeds, in order (others come between).
pub const HEALTHY: [&str; 9] = [
    "deploy.queued",
    "deploy.started",
    "phase:rendering",
    "phase:upgrading",
    "phase:tracking",
    "resource.added",
    "resource.ready",
    "report",
    "deploy.succeeded",
];

/// Simulated durations run this much faster.
const TIME_SCALE: f64 = 0.1;

pub struct Setup {
    pub app: TestApp,
    pub cluster: ClusterHandle,
    _home: tempfile::TempDir,
}

/// rollcall with a runner over a fresh database, deploying to a fresh kubesim.
pub async fn setup() -> Setup {
    setup_on(KubeVersion::DEFAULT).await
}

/// As [`setup`], with kubesim emulating `kube_version`.
pub async fn setup_on(kube_version: KubeVersion) -> Setup {
    setup_with(kube_version, helm_bin()).await
}

/// As [`setup_on`], with rollcall running the helm binary `helm`.
pub async fn setup_with(kube_version: KubeVersion, helm: PathBuf) -> Setup {
    setup_configured(kube_version, |config| config.helm.bin = helm).await
}

/// As [`setup_on`], with more of rollcall's configuration set by `configure`.
pub async fn setup_configured(
    kube_version: KubeVersion,
    configure: impl FnOnce(&mut Config),
) -> Setup {
    let home = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(ClusterOptions {
        time_scale: TIME_SCALE,
        kube_version,
        ..ClusterOptions::default()
    })
    .await
    .expect("kubesim starts");
    let kubeconfig = home.path().join("kubeconfig");
    std::fs::write(&kubeconfig, cluster.kubeconfig_yaml()).unwrap();
    let app = spawn_app_with(|config| {
        with_runner(config, Some(kubeconfig), home.path());
        configure(config);
    })
    .await;
    Setup {
        app,
        cluster,
        _home: home,
    }
}

/// A deploy request of the catalog chart `chart` into `default`; add other fields to the value.
pub fn request(chart: &str, release: &str, values: Value) -> Value {
    json!({
        "release": release,
        "namespace": "default",
        "chart": {"path": chart},
        "values": values,
        "timeout": "60s",
    })
}

impl Setup {
    /// Submits `body`, follows its SSE stream to the end and reads the finished deploy.
    pub async fn deploy(&self, body: &Value) -> Finished {
        let id = self.app.submit(body).await;
        self.follow(id, |_| {}).await
    }

    /// Follows deploy `id` over SSE to its `end` frame (`seen` gets each event as it arrives).
    pub async fn follow(&self, id: Uuid, seen: impl FnMut(&Value)) -> Finished {
        let events = follow_events(&self.app, id, seen).await;
        let finished = Finished {
            deploy: self.app.deploy(id).await,
            events,
        };
        // The terminal event is the stream's last, and says what the deploy says; only a deploy
        // that did not succeed has a verdict.
        assert_eq!(
            finished.sequence().last().map(String::as_str),
            Some(format!("deploy.{}", finished.status()).as_str()),
            "{}",
            finished.explain()
        );
        assert_eq!(
            finished.status() == "succeeded",
            finished.deploy["verdict"].is_null(),
            "{}",
            finished.explain()
        );
        finished
    }

    /// Asks rollcall to cancel deploy `id`, which it accepts.
    pub async fn cancel(&self, id: Uuid, reason: &str) {
        let response = self
            .app
            .post(&format!("/v1/deploys/{id}/cancel"), &self.app.admin_token)
            .json(&json!({"reason": reason}))
            .send()
            .await
            .expect("POST cancel");
        assert_eq!(response.status(), 202, "cancel of deploy {id}");
    }

    pub async fn shutdown(self) {
        self.app.shutdown().await;
        self.cluster.shutdown().await;
    }
}

/// A deploy after its `end` frame: as `GET /v1/deploys/{id}` shows it, and its events as streamed.
pub struct Finished {
    pub deploy: Value,
    pub events: Vec<Value>,
}

impl Finished {
    pub fn status(&self) -> &str {
        self.deploy["status"].as_str().expect("status")
    }

    pub fn verdict_reason(&self) -> &str {
        self.deploy["verdict"]["reason"]
            .as_str()
            .unwrap_or_default()
    }

    pub fn sequence(&self) -> Vec<String> {
        event_sequence(&self.events)
    }

    /// The events of one type.
    pub fn of(&self, kind: &str) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|event| event["type"] == kind)
            .collect()
    }

    /// The events of type `kind` about the resource `resource_kind` `name`.
    pub fn of_resource(&self, kind: &str, resource_kind: &str, name: &str) -> Vec<&Value> {
        self.of(kind)
            .into_iter()
            .filter(|event| event["resource"]["kind"] == resource_kind)
            .filter(|event| event["resource"]["name"] == name)
            .collect()
    }

    /// The seq of the first event of type `kind` about the resource `resource_kind` `name`.
    pub fn first_seq(&self, kind: &str, resource_kind: &str, name: &str) -> u64 {
        self.of_resource(kind, resource_kind, name)
            .first()
            .and_then(|event| event["seq"].as_u64())
            .unwrap_or_else(|| panic!("no {kind} of {resource_kind} {name}:\n{}", self.explain()))
    }

    /// The events about the resource named `name`, as a deploy of their own.
    pub fn about(&self, name: &str) -> Finished {
        self.only(
            self.events
                .iter()
                .filter(|event| event["resource"]["name"] == name),
        )
    }

    /// The events between `phase:<phase>` and the next phase event, as a deploy of their own.
    pub fn during(&self, phase: &str) -> Finished {
        let is_phase = |event: &Value| event["type"] == "phase";
        let start = self
            .events
            .iter()
            .position(|event| is_phase(event) && event["data"]["phase"] == phase)
            .unwrap_or_else(|| panic!("no phase {phase}:\n{}", self.explain()));
        self.only(
            self.events[start + 1..]
                .iter()
                .take_while(|event| !is_phase(event)),
        )
    }

    /// This deploy with only `events`, to assert on a part of its stream.
    fn only<'a>(&self, events: impl Iterator<Item = &'a Value>) -> Finished {
        Finished {
            deploy: self.deploy.clone(),
            events: events.cloned().collect(),
        }
    }

    /// The per-resource state of the deploy (`GET /v1/deploys/{id}`).
    pub fn resource(&self, kind: &str, name: &str) -> &Value {
        self.deploy["resources"]
            .as_array()
            .and_then(|resources| {
                resources
                    .iter()
                    .find(|resource| resource["kind"] == kind && resource["name"] == name)
            })
            .unwrap_or_else(|| panic!("no {kind} {name} in {}", self.deploy))
    }

    /// The data of the (last) tracking report: outcome and per-resource evidence.
    pub fn report(&self) -> &Value {
        &self.of("report").last().expect("a report event")["data"]
    }

    /// The failure the (last) report records for the resource `kind` `name`.
    pub fn reported_failure(&self, kind: &str, name: &str) -> &Value {
        self.report()["resources"]
            .as_array()
            .and_then(|resources| {
                resources.iter().find(|resource| {
                    resource["resource"]["kind"] == kind && resource["resource"]["name"] == name
                })
            })
            .map(|resource| &resource["failure"])
            .unwrap_or_else(|| panic!("no {kind} {name} in the report:\n{}", self.explain()))
    }

    /// Panics unless the stream holds these events in this order (others may come between).
    pub fn assert_in_order(&self, wanted: &[&str]) {
        let sequence = self.sequence();
        let mut rest = sequence.iter();
        let missing = wanted
            .iter()
            .find(|want| !rest.any(|have| have.as_str() == **want));
        assert!(
            missing.is_none(),
            "{missing:?} missing from the expected order {wanted:?}:\n{}",
            self.explain()
        );
    }

    /// Panics if any incident was counted against any resource.
    pub fn assert_no_incident(&self) {
        assert!(
            self.of("resource.failure").is_empty() && self.of("resource.failed").is_empty(),
            "{}",
            self.explain()
        );
    }

    /// The deploy and its events, one line each, for assertion messages.
    pub fn explain(&self) -> String {
        let lines: Vec<String> = self
            .events
            .iter()
            .map(|event| {
                format!(
                    "{} {} {} {}",
                    event["seq"],
                    event["type"].as_str().unwrap_or_default(),
                    event["resource"]["name"].as_str().unwrap_or_default(),
                    event["message"].as_str().unwrap_or_default()
                )
            })
            .collect();
        format!("{}\n{}", self.deploy, lines.join("\n"))
    }
}

#[tokio::test]
async fn a_healthy_web_app_succeeds_with_its_resources_ready() {
    let setup = setup().await;
    let finished = setup
        .deploy(&request(
            "web",
            "shop",
            json!({"behavior": "readyAfter=1s"}),
        ))
        .await;
    assert_eq!(finished.status(), "succeeded", "{}", finished.explain());
    assert_eq!(finished.deploy["revision"], 1);
    finished.assert_in_order(&HEALTHY);
    assert_eq!(finished.resource("Deployment", "web")["state"], "ready");
    setup.shutdown().await;
}

#[tokio::test]
async fn a_crash_loop_fails_and_is_rolled_back_to_the_previous_revision() {
    let setup = setup().await;
    let first = setup
        .deploy(&request(
            "web",
            "shop",
            json!({"behavior": "readyAfter=1s"}),
        ))
        .await;
    assert_eq!(first.status(), "succeeded", "{}", first.explain());
    let mut body = request(
        "web",
        "shop",
        json!({"behavior": "crashAfter=1s;exitCode=1"}),
    );
    body["rollback_on_failure"] = json!(true);
    let finished = setup.deploy(&body).await;
    assert_eq!(finished.status(), "failed", "{}", finished.explain());
    assert_eq!(finished.deploy["revision"], 2);
    assert_eq!(finished.deploy["rolled_back_to"], 1);
    assert_eq!(finished.deploy["verdict"]["resource"]["kind"], "Deployment");
    finished.assert_in_order(&[
        "phase:tracking",
        "resource.failed",
        "report",
        "phase:rolling_back",
        "rollback.started",
        "report",
        "rollback.succeeded",
        "deploy.failed",
    ]);
    // The cluster runs revision 1's pod template again, all of it ready.
    let web = setup
        .cluster
        .store()
        .get(&DEPLOYMENTS, Some("default"), "web")
        .expect("the Deployment");
    assert_eq!(
        web["spec"]["template"]["metadata"]["annotations"]["sim.rollcall.dev/behavior"],
        "readyAfter=1s"
    );
    assert_eq!(
        (
            &web["status"]["updatedReplicas"],
            &web["status"]["availableReplicas"]
        ),
        (&json!(2), &json!(2)),
        "{web}"
    );
    setup.shutdown().await;
}

#[tokio::test]
async fn cancel_while_tracking_stops_and_leaves_the_release_deployed() {
    let setup = setup().await;
    let id = setup
        .app
        .submit(&request(
            "web",
            "stuck",
            json!({"behavior": "neverReady=true"}),
        ))
        .await;
    wait_for(&setup.app, id, "tracking", |d| d["phase"] == "tracking").await;
    setup.cancel(id, "not needed").await;
    let finished = setup.follow(id, |_| {}).await;
    assert_eq!(finished.status(), "cancelled", "{}", finished.explain());
    assert_eq!(finished.deploy["cancel_reason"], "not needed");
    finished.assert_in_order(&["phase:tracking", "deploy.cancelling", "deploy.cancelled"]);
    // helm finished its upgrade before tracking began: nothing is left pending to repair.
    assert!(
        finished.of("rollback.started").is_empty(),
        "{}",
        finished.explain()
    );
    setup.shutdown().await;
}
