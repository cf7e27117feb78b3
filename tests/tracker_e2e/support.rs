//! A simulated cluster, a watch hub on it, and helpers to apply objects and track them to the end.

use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use kubesim::control_loop::ControllerControl;
use kubesim::options::{ClusterOptions, KubeVersion};
use kubesim::{Cluster, ClusterHandle};
use rollcall::domain::event::NewEvent;
use rollcall::domain::policy::TrackingOverrides;
use rollcall::tracker::core::plan;
use rollcall::tracker::watch::{
    Deadlines, HubOptions, TrackOptions, TrackReport, Tracking, WatchHub, track,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub const NAMESPACE: &str = "default";
/// Simulated durations run this much faster (a 1 s readiness delay takes 0.1 s).
const TIME_SCALE: f64 = 0.1;
/// Safety net only: a scenario that hangs fails instead of blocking the suite.
pub const SAFETY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Sim {
    pub cluster: ClusterHandle,
    /// The simulated control plane (controllers, scheduler, kubelet) and its decisive transitions.
    pub control: ControllerControl,
    pub client: Client,
    pub hub: WatchHub,
}

impl Sim {
    pub async fn start() -> Sim {
        Sim::start_version(KubeVersion::DEFAULT).await
    }

    pub async fn start_version(kube_version: KubeVersion) -> Sim {
        init_test_log();
        let options = ClusterOptions {
            time_scale: TIME_SCALE,
            kube_version,
            ..ClusterOptions::default()
        };
        let cluster = Cluster::start(options).await.expect("kubesim starts");
        let control = cluster.controllers().clone();
        let kubeconfig =
            Kubeconfig::from_yaml(&cluster.kubeconfig_yaml()).expect("kubeconfig parses");
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("kubeconfig is usable");
        let client = Client::try_from(config).expect("client builds");
        let hub = WatchHub::new(client.clone(), HubOptions::default());
        Sim {
            cluster,
            control,
            client,
            hub,
        }
    }

    /// Stops the watches, the control plane and the API server.
    pub async fn shutdown(self) {
        self.hub.shutdown().await;
        self.cluster.shutdown().await;
    }

    /// Server-side applies every object of `objects` and returns their manifest, as helm would
    /// print it.
    pub async fn apply(&self, objects: &[Value]) -> anyhow::Result<String> {
        for object in objects {
            let api_version = object["apiVersion"].as_str().context("apiVersion")?;
            let kind = object["kind"].as_str().context("kind")?;
            let name = object["metadata"]["name"].as_str().context("name")?;
            let (resource, _) = self.hub.resolve(api_version, kind).await?;
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), NAMESPACE, &resource);
            api.patch(
                name,
                &PatchParams::apply("rollcall-e2e").force(),
                &Patch::Apply(object),
            )
            .await
            .with_context(|| format!("applying {kind} {name}"))?;
        }
        manifest_of(objects)
    }

    /// Applies `objects` and tracks them to the end.
    pub async fn deploy(&self, objects: &[Value]) -> Outcome {
        self.deploy_with(
            objects,
            &TrackingOverrides::default(),
            Deadlines::default(),
            |_| {},
        )
        .await
    }

    /// Applies `objects`, tracks them with `overrides`, and calls `during` with the tracking's first
    /// status event (to inject faults mid-rollout).
    pub async fn deploy_with(
        &self,
        objects: &[Value],
        overrides: &TrackingOverrides,
        deadlines: Deadlines,
        during: impl FnOnce(&ClusterHandle),
    ) -> Outcome {
        let since = Utc::now();
        let resources = self.apply(objects).await.expect("objects apply");
        let options = TrackOptions {
            deadlines,
            since: Some(since),
            ..TrackOptions::default()
        };
        self.track(resources, overrides, options, during).await
    }

    /// Tracks the resources of a manifest applied earlier to the end, as the runner would (planned
    /// with `overrides`).
    pub async fn track(
        &self,
        manifest: String,
        overrides: &TrackingOverrides,
        options: TrackOptions,
        during: impl FnOnce(&ClusterHandle),
    ) -> Outcome {
        let resources = plan(&manifest, NAMESPACE, overrides).expect("valid policies");
        let tracking = track(&self.hub, resources, options, CancellationToken::new());
        tokio::time::timeout(SAFETY_TIMEOUT, collect(tracking, &self.cluster, during))
            .await
            .expect("tracking ends before the safety timeout")
    }
}

/// `objects` as a manifest: a YAML stream, as `helm get manifest` prints it.
pub fn manifest_of(objects: &[Value]) -> anyhow::Result<String> {
    let mut manifest = String::new();
    for object in objects {
        manifest.push_str("---\n");
        manifest.push_str(&serde_yaml_ng::to_string(object)?);
    }
    Ok(manifest)
}

async fn collect(
    mut tracking: Tracking,
    cluster: &ClusterHandle,
    during: impl FnOnce(&ClusterHandle),
) -> Outcome {
    let mut events = Vec::new();
    let mut during = Some(during);
    while let Some(event) = tracking.next_event().await {
        if event.kind.as_str() == "resource.status"
            && let Some(inject) = during.take()
        {
            inject(cluster);
        }
        events.push(event);
    }
    let report = tracking.finish().await.expect("tracking task completes");
    Outcome { events, report }
}

pub struct Outcome {
    pub events: Vec<NewEvent>,
    pub report: TrackReport,
}

impl Outcome {
    /// The events of one type.
    pub fn of(&self, kind: &str) -> Vec<&NewEvent> {
        self.events
            .iter()
            .filter(|event| event.kind.as_str() == kind)
            .collect()
    }

    /// `result` of the outcome: succeeded, failed, timed_out, cancelled.
    pub fn result(&self) -> String {
        serde_json::to_value(&self.report.outcome).expect("serializable")["result"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The verdict's reason, for a failure.
    pub fn reason(&self) -> String {
        serde_json::to_value(&self.report.outcome).expect("serializable")["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// A readable dump for assertion messages.
    pub fn explain(&self) -> String {
        let lines: Vec<String> = self
            .events
            .iter()
            .map(|event| {
                format!(
                    "{} {} {}",
                    event.kind.as_str(),
                    event
                        .resource
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    event.message
                )
            })
            .collect();
        lines.join("\n")
    }
}

fn init_test_log() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _already = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// A pod template running one container `app` that behaves as `behavior` says (kubesim vocabulary).
pub fn template(name: &str, behavior: &str) -> Value {
    json!({
        "metadata": {
            "labels": {"app": name},
            "annotations": {"sim.rollcall.dev/behavior": behavior},
        },
        "spec": {"containers": [{"name": "app", "image": format!("example.com/{name}:1")}]},
    })
}

/// Builders of the workloads under test: `kind`, `name`, replicas, container behaviour.
pub fn workload(kind: &str, name: &str, replicas: i32, behavior: &str) -> Value {
    let mut spec = json!({
        "selector": {"matchLabels": {"app": name}},
        "template": template(name, behavior),
    });
    match kind {
        "DaemonSet" => {}
        "StatefulSet" => {
            spec["replicas"] = json!(replicas);
            spec["serviceName"] = json!(name);
        }
        _ => spec["replicas"] = json!(replicas),
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    })
}

pub fn job(name: &str, backoff_limit: i32, behavior: &str) -> Value {
    let mut template = template(name, behavior);
    template["spec"]["restartPolicy"] = json!("Never");
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"backoffLimit": backoff_limit, "template": template},
    })
}

/// Sets an annotation on the object (tracking policy annotations live on the resource itself).
pub fn annotated(mut object: Value, key: &str, value: &str) -> Value {
    object["metadata"]["annotations"][key] = json!(value);
    object
}
