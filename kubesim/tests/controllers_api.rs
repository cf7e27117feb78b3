//! The controllers and the kubelet behind the real HTTP API, observed through kube-rs as rollcall and
//! other clients observe a cluster.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Config};
use kubesim::options::{ClusterOptions, KubeVersion};
use kubesim::{Cluster, ClusterHandle};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(60);

/// A cluster behind the real HTTP API with the control plane running on its store.
struct Running {
    cluster: ClusterHandle,
    client: Client,
}

impl Running {
    async fn start(kube_version: KubeVersion) -> anyhow::Result<Running> {
        let options = ClusterOptions {
            nodes: 3,
            time_scale: 0.05,
            kube_version,
        };
        let cluster = Cluster::start(options).await?;
        let mut config = Config::new(cluster.url().parse()?);
        config.default_namespace = "default".into();
        let client = Client::try_from(config)?;
        Ok(Running { cluster, client })
    }

    /// `kubectl <args>` against this cluster, with its own kubeconfig and cache directory.
    async fn kubectl(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        self.cluster.write_kubeconfig(&kubeconfig)?;
        let program = std::env::var("KUBECTL_BIN").unwrap_or_else(|_| "kubectl".to_owned());
        let run = tokio::process::Command::new(&program)
            .args(args)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .env("KUBECACHEDIR", dir.path().join("cache"))
            .output();
        let output = tokio::time::timeout(LIMIT, run).await?.map_err(|error| {
            anyhow::anyhow!("{program} could not run ({error}): install kubectl (Debian package kubernetes-client) or set KUBECTL_BIN")
        })?;
        Ok(output)
    }

    async fn shutdown(self) {
        self.cluster.shutdown().await;
    }
}

fn template(app: &str, image: &str, behavior: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": app}, "annotations": {"sim.rollcall.dev/behavior": behavior}},
        "spec": {"containers": [{"name": "app", "image": image}]},
    })
}

async fn events_about(client: &Client, name: &str) -> anyhow::Result<Vec<Event>> {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    Ok(events
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await?
        .items)
}

#[tokio::test]
async fn deployment_rollout_is_seen_complete_with_events_and_logs() -> anyhow::Result<()> {
    let running = Running::start(KubeVersion::DEFAULT).await?;
    let client = running.client.clone();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template("web", "nginx:1.25", "log=listening on :8080")},
    }))?;
    deployments
        .create(&PostParams::default(), &deployment)
        .await?;
    tokio::time::timeout(
        LIMIT,
        await_condition(
            deployments.clone(),
            "web",
            conditions::is_deployment_completed(),
        ),
    )
    .await??;
    let deployment = serde_json::to_value(deployments.get("web").await?)?;
    let status = &deployment["status"];
    assert_eq!(
        (
            &status["updatedReplicas"],
            &status["availableReplicas"],
            &status["readyReplicas"]
        ),
        (&json!(2), &json!(2), &json!(2))
    );
    let scaling = events_about(&client, "web").await?;
    assert!(
        scaling
            .iter()
            .any(|event| event.reason.as_deref() == Some("ScalingReplicaSet")),
        "{scaling:?}"
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = pods
        .list(&ListParams::default().labels("app=web"))
        .await?
        .items
        .remove(0);
    let name = pod.metadata.name.clone().expect("name");
    let logs = pods
        .logs(
            &name,
            &LogParams {
                container: Some("app".into()),
                ..LogParams::default()
            },
        )
        .await?;
    assert_eq!(logs.trim_end(), "listening on :8080");
    let reasons: Vec<String> = events_about(&client, &name)
        .await?
        .into_iter()
        .filter_map(|event| event.reason)
        .collect();
    assert_eq!(
        reasons,
        ["Scheduled", "Pulling", "Pulled", "Created", "Started"]
    );
    running.shutdown().await;
    Ok(())
}

/// Rolls a 3-pod StatefulSet to a new image while a kube-rs watcher follows its pods.
async fn watched_stateful_set_update(
    kube_version: KubeVersion,
) -> anyhow::Result<(Running, Vec<Pod>)> {
    let running = Running::start(kube_version).await?;
    let client = running.client.clone();
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let set: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "jenkins"},
        "spec": {"replicas": 3, "serviceName": "jenkins", "selector": {"matchLabels": {"app": "jenkins"}}, "template": template("jenkins", "jenkins:2.440", "readyAfter=1s")},
    }))?;
    sets.create(&PostParams::default(), &set).await?;
    let rolled_out = |image: &'static str| {
        move |set: Option<&StatefulSet>| {
            let Some(set) = set.and_then(|set| serde_json::to_value(set).ok()) else {
                return false;
            };
            let status = &set["status"];
            set["spec"]["template"]["spec"]["containers"][0]["image"] == image
                && status["readyReplicas"] == 3
                && status["updatedReplicas"] == 3
                && status["currentRevision"] == status["updateRevision"]
                && status["observedGeneration"] == set["metadata"]["generation"]
        }
    };
    tokio::time::timeout(
        LIMIT,
        await_condition(sets.clone(), "jenkins", rolled_out("jenkins:2.440")),
    )
    .await??;

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let (seen_sender, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let follower = tokio::spawn(
        watcher(pods, watcher::Config::default().labels("app=jenkins"))
            .touched_objects()
            .for_each(move |pod| {
                if let Ok(pod) = pod {
                    let _ = seen_sender.send(pod);
                }
                std::future::ready(())
            }),
    );
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "jenkins:2.441"}]}}}});
    sets.patch("jenkins", &PatchParams::default(), &Patch::Strategic(patch))
        .await?;
    tokio::time::timeout(
        LIMIT,
        await_condition(sets, "jenkins", rolled_out("jenkins:2.441")),
    )
    .await??;
    follower.abort();
    let mut observed = Vec::new();
    while let Ok(pod) = seen.try_recv() {
        observed.push(pod);
    }
    Ok((running, observed))
}

fn replaced_pods_were_seen_failed_while_terminating(observed: &[Pod]) {
    for name in ["jenkins-0", "jenkins-1", "jenkins-2"] {
        assert!(
            observed
                .iter()
                .any(|pod| pod.metadata.name.as_deref() == Some(name)
                    && pod.metadata.deletion_timestamp.is_some()
                    && pod
                        .status
                        .as_ref()
                        .and_then(|status| status.phase.as_deref())
                        == Some("Failed")),
            "{name} was not seen in phase Failed while terminating"
        );
    }
}

#[tokio::test]
async fn stateful_set_update_emulating_1_29_reports_recreating_failed_pod_and_failed_delete()
-> anyhow::Result<()> {
    let (running, observed) = watched_stateful_set_update(KubeVersion { minor: 29 }).await?;
    replaced_pods_were_seen_failed_while_terminating(&observed);
    let events = events_about(&running.client, "jenkins").await?;
    let messages: Vec<(String, String)> = events
        .into_iter()
        .map(|event| {
            (
                event.reason.unwrap_or_default(),
                event.message.unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        messages.contains(&(
            "RecreatingFailedPod".into(),
            "StatefulSet default/jenkins is recreating failed Pod jenkins-2".into()
        )),
        "{messages:?}"
    );
    assert!(
        messages.contains(&("FailedDelete".into(), "delete Pod jenkins-2 in StatefulSet jenkins failed error: pods \"jenkins-2\" not found".into())),
        "{messages:?}"
    );
    running.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn stateful_set_update_at_the_default_version_has_no_recreation_events() -> anyhow::Result<()>
{
    let (running, observed) = watched_stateful_set_update(KubeVersion::DEFAULT).await?;
    replaced_pods_were_seen_failed_while_terminating(&observed);
    let reasons: Vec<String> = events_about(&running.client, "jenkins")
        .await?
        .into_iter()
        .filter_map(|event| event.reason)
        .collect();
    assert!(
        !reasons
            .iter()
            .any(|reason| reason == "RecreatingFailedPod" || reason == "FailedDelete"),
        "{reasons:?}"
    );
    running.shutdown().await;
    Ok(())
}

fn workload(kind: &str, name: &str, spec: Value) -> Value {
    let mut object = json!({
        "apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": template(name, "app:1", "readyAfter=2s")},
    });
    for (key, value) in spec.as_object().into_iter().flatten() {
        object["spec"][key] = value.clone();
    }
    object
}

#[tokio::test]
async fn kubectl_rollout_status_finishes_with_the_real_messages() -> anyhow::Result<()> {
    let running = Running::start(KubeVersion::DEFAULT).await?;
    let store = running.cluster.store();
    use kubesim::store::{DAEMONSETS, DEPLOYMENTS, STATEFULSETS};
    store.create(
        &DEPLOYMENTS,
        workload("Deployment", "web", json!({"replicas": 3})),
    )?;
    store.create(
        &STATEFULSETS,
        workload("StatefulSet", "db", json!({"replicas": 2, "serviceName": "db", "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}})),
    )?;
    store.create(
        &DAEMONSETS,
        workload(
            "DaemonSet",
            "agent",
            json!({"updateStrategy": {"type": "RollingUpdate"}}),
        ),
    )?;
    for (target, last_line) in [
        (
            "deployment/web",
            "deployment \"web\" successfully rolled out",
        ),
        (
            "statefulset/db",
            "partitioned roll out complete: 2 new pods have been updated...",
        ),
        (
            "daemonset/agent",
            "daemon set \"agent\" successfully rolled out",
        ),
    ] {
        let output = running
            .kubectl(&["rollout", "status", target, "--timeout=60s"])
            .await?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{target}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(stdout.lines().last(), Some(last_line), "{stdout}");
    }
    running.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn kubectl_rollout_status_reports_an_exceeded_progress_deadline() -> anyhow::Result<()> {
    let running = Running::start(KubeVersion::DEFAULT).await?;
    let mut stuck = workload(
        "Deployment",
        "stuck",
        json!({"replicas": 1, "progressDeadlineSeconds": 5}),
    );
    stuck["spec"]["template"] = template("stuck", "app:1", "neverReady=true");
    running
        .cluster
        .store()
        .create(&kubesim::store::DEPLOYMENTS, stuck)?;
    let output = running
        .kubectl(&["rollout", "status", "deployment/stuck", "--timeout=60s"])
        .await?;
    assert!(!output.status.success());
    // whether kubectl printed a "Waiting for ..." line first depends on when it started watching
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        "error: deployment \"stuck\" exceeded its progress deadline"
    );
    running.shutdown().await;
    Ok(())
}
