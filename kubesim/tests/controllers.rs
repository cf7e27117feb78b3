//! Workload controllers end to end on a store: Deployments, StatefulSets (incl. the 1.29 recreation
//! sequence), DaemonSets, Jobs, Services and claims, pause/resume.

#[path = "controllers_support/mod.rs"]
mod support;

use std::sync::Arc;

use kubesim::control_loop::TransitionKind;
use kubesim::options::KubeVersion;
use kubesim::store::{
    CONTROLLER_REVISIONS, DAEMONSETS, DEPLOYMENTS, JOBS, PODS, PVCS, REPLICASETS, SERVICES,
    STATEFULSETS,
};
use serde_json::{Value, json};
use support::*;

fn deployment_complete(sim: &Sim, name: &str, replicas: i64) -> bool {
    sim.get(&DEPLOYMENTS, name).is_some_and(|deployment| {
        int(&deployment, "/status/updatedReplicas") == replicas
            && int(&deployment, "/status/availableReplicas") == replicas
            && int(&deployment, "/status/replicas") == replicas
            && int(&deployment, "/status/observedGeneration")
                == int(&deployment, "/metadata/generation")
            && condition(&deployment, "Progressing")
                .is_some_and(|progressing| progressing["reason"] == "NewReplicaSetAvailable")
    })
}

fn replica_sets(sim: &Sim) -> Vec<Arc<Value>> {
    sim.store.list(&REPLICASETS, Some(NAMESPACE)).0
}

#[tokio::test]
async fn deployment_rolls_out_and_updates_with_surge_one_and_no_unavailability() {
    let sim = Sim::start();
    let mut transitions = sim.control.subscribe();
    sim.create(
        &DEPLOYMENTS,
        deployment("web", 3, template("web", "nginx:1.25", None)),
    );
    sim.wait_until("first rollout", |sim| deployment_complete(sim, "web", 3))
        .await;

    let sets = replica_sets(&sim);
    assert_eq!(sets.len(), 1);
    let first = &sets[0];
    let hash = first["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(name(first), format!("web-{hash}"));
    assert_eq!(
        first["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    assert_eq!(
        first["spec"]["selector"]["matchLabels"]["pod-template-hash"],
        hash.as_str()
    );
    let deployment = sim.get(&DEPLOYMENTS, "web").unwrap();
    assert_eq!(
        deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    assert_eq!(
        condition(&deployment, "Available").unwrap()["reason"],
        "MinimumReplicasAvailable"
    );
    assert_eq!(
        condition(&deployment, "Progressing").unwrap()["message"],
        format!("ReplicaSet \"web-{hash}\" has successfully progressed.")
    );
    for pod in sim.pods() {
        assert_eq!(
            pod["metadata"]["labels"]["pod-template-hash"],
            hash.as_str()
        );
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!(
            (
                owner["kind"].as_str(),
                owner["name"].as_str(),
                owner["controller"].as_bool()
            ),
            (Some("ReplicaSet"), Some(name(first)), Some(true))
        );
        assert!(
            pod["spec"]["nodeName"]
                .as_str()
                .unwrap()
                .starts_with("node-")
        );
        assert!(sim.has_event(
            name(&pod),
            "Scheduled",
            &format!(
                "Successfully assigned default/{} to {}",
                name(&pod),
                pod["spec"]["nodeName"].as_str().unwrap()
            )
        ));
        assert!(sim.has_event(
            name(first),
            "SuccessfulCreate",
            &format!("Created pod: {}", name(&pod))
        ));
    }
    assert!(sim.has_event(
        "web",
        "ScalingReplicaSet",
        &format!("Scaled up replica set web-{hash} from 0 to 3")
    ));
    let complete = loop {
        let transition = transitions.recv().await.unwrap();
        if transition.kind == (TransitionKind::RolloutComplete { kind: "Deployment" }) {
            break transition;
        }
    };
    assert_eq!(complete.name, "web");

    let history = sim.record_pods();
    sim.edit(&DEPLOYMENTS, "web", |deployment| {
        deployment["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.26")
    });
    sim.wait_until("second rollout", |sim| {
        deployment_complete(sim, "web", 3)
            && sim.get(&DEPLOYMENTS, "web").unwrap()["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    })
    .await;
    let sets = replica_sets(&sim);
    let old = sets
        .iter()
        .find(|set| name(set) == format!("web-{hash}"))
        .expect("old replica set kept as history");
    let new = sets
        .iter()
        .find(|set| name(set) != format!("web-{hash}"))
        .unwrap();
    assert_eq!(int(old, "/spec/replicas"), 0);
    assert_eq!(
        new["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    // 3 replicas, 25%/25%: surge 1, unavailable 0 → never more than 4 active pods
    assert_eq!(history.max_active("web-"), 4);
    assert!(sim.has_event(
        "web",
        "ScalingReplicaSet",
        &format!("Scaled up replica set {} from 0 to 1", name(new))
    ));
    assert!(sim.has_event(
        "web",
        "ScalingReplicaSet",
        &format!("Scaled down replica set web-{hash} from 1 to 0")
    ));
    sim.stop().await;
}

#[tokio::test]
async fn deployment_events_use_the_pre_1_31_wording_when_emulating_1_29() {
    let sim = Sim::start_with(KubeVersion { minor: 29 }, 2);
    sim.create(
        &DEPLOYMENTS,
        deployment("api", 2, template("api", "api:1", None)),
    );
    sim.wait_until("rollout", |sim| deployment_complete(sim, "api", 2))
        .await;
    let set = name(&replica_sets(&sim)[0]).to_owned();
    assert!(sim.has_event(
        "api",
        "ScalingReplicaSet",
        &format!("Scaled up replica set {set} to 2")
    ));
    sim.stop().await;
}

#[tokio::test]
async fn deployment_that_never_becomes_ready_exceeds_its_progress_deadline() {
    let sim = Sim::start();
    let mut stuck = deployment(
        "stuck",
        2,
        template("stuck", "app:1", Some("neverReady=true")),
    );
    stuck["spec"]["progressDeadlineSeconds"] = json!(10);
    sim.create(&DEPLOYMENTS, stuck);
    let progressing = sim
        .wait_for("progress deadline", |sim| {
            let deployment = sim.get(&DEPLOYMENTS, "stuck")?;
            condition(&deployment, "Progressing")
                .filter(|condition| condition["reason"] == "ProgressDeadlineExceeded")
                .cloned()
        })
        .await;
    let set = name(&replica_sets(&sim)[0]).to_owned();
    assert_eq!(progressing["status"], "False");
    assert_eq!(
        progressing["message"],
        format!("ReplicaSet \"{set}\" has timed out progressing.")
    );
    let deployment = sim.get(&DEPLOYMENTS, "stuck").unwrap();
    assert_eq!(
        condition(&deployment, "Available").unwrap()["reason"],
        "MinimumReplicasUnavailable"
    );
    assert_eq!(int(&deployment, "/status/unavailableReplicas"), 2);
    assert_eq!(int(&deployment, "/status/updatedReplicas"), 2);
    sim.stop().await;
}

#[tokio::test]
async fn recreate_deployment_removes_every_old_pod_before_creating_new_ones() {
    let sim = Sim::start();
    let mut recreate = deployment("batch", 2, template("batch", "worker:1", None));
    recreate["spec"]["strategy"] = json!({"type": "Recreate"});
    sim.create(&DEPLOYMENTS, recreate);
    sim.wait_until("first rollout", |sim| deployment_complete(sim, "batch", 2))
        .await;
    let history = sim.record_pods();
    sim.edit(&DEPLOYMENTS, "batch", |deployment| {
        deployment["spec"]["template"]["spec"]["containers"][0]["image"] = json!("worker:2")
    });
    sim.wait_until("second rollout", |sim| {
        deployment_complete(sim, "batch", 2)
            && replica_sets(sim).iter().all(|set| {
                int(set, "/spec/replicas") == 0
                    || set["spec"]["template"]["spec"]["containers"][0]["image"] == "worker:2"
            })
    })
    .await;
    let changes = history.changes();
    let last_removal = changes
        .iter()
        .rposition(|change| change.event_type == kubesim::store::WatchEventType::Deleted)
        .unwrap();
    let first_new = changes
        .iter()
        .position(|change| change.object["spec"]["containers"][0]["image"] == "worker:2")
        .unwrap();
    assert!(
        last_removal < first_new,
        "a new pod appeared before the old ones were gone"
    );
    sim.stop().await;
}

fn stateful_set_status(sim: &Sim, name: &str) -> Value {
    sim.get(&STATEFULSETS, name).unwrap()["status"].clone()
}

fn rolled_out(sim: &Sim, name: &str, replicas: i64) -> bool {
    let status = stateful_set_status(sim, name);
    int(&status, "/readyReplicas") == replicas
        && int(&status, "/updatedReplicas") == replicas
        && int(&status, "/replicas") == replicas
        && status["currentRevision"] == status["updateRevision"]
}

#[tokio::test]
async fn stateful_set_creates_in_order_and_rolls_back_to_front_with_partition() {
    let sim = Sim::start();
    let mut web = stateful_set("web", 3, template("web", "nginx:1.25", None));
    web["spec"]["volumeClaimTemplates"] = json!([{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]);
    sim.create(&STATEFULSETS, web);
    sim.wait_until("initial rollout", |sim| rolled_out(sim, "web", 3))
        .await;
    let creations: Vec<String> = sim
        .events_about("web")
        .iter()
        .filter(|event| {
            event["reason"] == "SuccessfulCreate"
                && event["message"].as_str().unwrap().starts_with("create Pod")
        })
        .map(|event| event["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        creations,
        [
            "create Pod web-0 in StatefulSet web successful",
            "create Pod web-1 in StatefulSet web successful",
            "create Pod web-2 in StatefulSet web successful"
        ]
    );
    assert!(sim.has_event(
        "web",
        "SuccessfulCreate",
        "create Claim data-web-0 Pod web-0 in StatefulSet web success"
    ));
    let claim = sim.get(&PVCS, "data-web-1").expect("claim created");
    sim.wait_until("claim bound", |sim| {
        sim.get(&PVCS, "data-web-1").unwrap()["status"]["phase"] == "Bound"
    })
    .await;
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "1Gi");
    let first_revision = stateful_set_status(&sim, "web")["updateRevision"]
        .as_str()
        .unwrap()
        .to_owned();
    let web_1 = sim.get(&PODS, "web-1").unwrap();
    assert_eq!(
        web_1["metadata"]["labels"]["controller-revision-hash"],
        first_revision.as_str()
    );
    assert_eq!(
        web_1["metadata"]["labels"]["apps.kubernetes.io/pod-index"],
        "1"
    );
    assert_eq!(web_1["spec"]["hostname"], "web-1");
    assert_eq!(web_1["spec"]["subdomain"], "web");
    assert!(sim.get(&CONTROLLER_REVISIONS, &first_revision).is_some());

    sim.edit(&STATEFULSETS, "web", |set| {
        set["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.26");
        set["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = json!(1);
    });
    let second_revision = sim
        .wait_for("partitioned rollout", |sim| {
            let status = stateful_set_status(sim, "web");
            (int(&status, "/updatedReplicas") == 2 && int(&status, "/readyReplicas") == 3)
                .then(|| status["updateRevision"].as_str().unwrap().to_owned())
        })
        .await;
    let revision_of = |sim: &Sim, pod: &str| {
        sim.get(&PODS, pod).unwrap()["metadata"]["labels"]["controller-revision-hash"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(revision_of(&sim, "web-0"), first_revision);
    assert_eq!(revision_of(&sim, "web-1"), second_revision);
    assert_eq!(revision_of(&sim, "web-2"), second_revision);
    assert_eq!(
        stateful_set_status(&sim, "web")["currentRevision"],
        first_revision.as_str()
    );
    let deletions: Vec<_> = sim
        .events_about("web")
        .into_iter()
        .filter(|event| event["reason"] == "SuccessfulDelete")
        .collect();
    assert_eq!(
        deletions[0]["message"],
        "delete Pod web-2 in StatefulSet web successful"
    );
    assert_eq!(
        deletions[1]["message"],
        "delete Pod web-1 in StatefulSet web successful"
    );

    sim.edit(&STATEFULSETS, "web", |set| {
        set["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = json!(0)
    });
    sim.wait_until("full rollout", |sim| rolled_out(sim, "web", 3))
        .await;
    assert_eq!(revision_of(&sim, "web-0"), second_revision);
    assert_eq!(
        stateful_set_status(&sim, "web")["currentRevision"],
        second_revision.as_str()
    );
    sim.stop().await;
}

#[tokio::test]
async fn on_delete_stateful_set_replaces_only_deleted_pods() {
    let sim = Sim::start();
    let mut db = stateful_set("db", 2, template("db", "postgres:15", None));
    db["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
    db["spec"]["podManagementPolicy"] = json!("Parallel");
    sim.create(&STATEFULSETS, db);
    sim.wait_until("initial pods ready", |sim| {
        int(&stateful_set_status(sim, "db"), "/readyReplicas") == 2
    })
    .await;
    let old_uid = uid(&sim.get(&PODS, "db-1").unwrap()).to_owned();
    sim.edit(&STATEFULSETS, "db", |set| {
        set["spec"]["template"]["spec"]["containers"][0]["image"] = json!("postgres:16")
    });
    sim.wait_until("new revision observed", |sim| {
        let status = stateful_set_status(sim, "db");
        status["updateRevision"] != status["currentRevision"]
            && int(&status, "/observedGeneration") == 2
    })
    .await;
    assert_eq!(
        uid(&sim.get(&PODS, "db-1").unwrap()),
        old_uid,
        "OnDelete must not replace pods by itself"
    );
    sim.delete(&PODS, "db-1");
    sim.wait_until("db-1 recreated at the new revision", |sim| {
        sim.get(&PODS, "db-1").is_some_and(|pod| {
            uid(&pod) != old_uid
                && pod["spec"]["containers"][0]["image"] == "postgres:16"
                && is_ready(&pod)
        })
    })
    .await;
    assert_eq!(
        sim.get(&PODS, "db-0").unwrap()["spec"]["containers"][0]["image"],
        "postgres:15"
    );
    assert_eq!(int(&stateful_set_status(&sim, "db"), "/updatedReplicas"), 1);
    sim.stop().await;
}

/// A rolling update of 3 pods; returns the pod history and the set's events.
async fn stateful_set_rolling_update(sim: &Sim) -> (PodHistory, Vec<String>) {
    sim.create(
        &STATEFULSETS,
        stateful_set("jenkins", 3, template("jenkins", "jenkins:2.440", None)),
    );
    sim.wait_until("initial rollout", |sim| rolled_out(sim, "jenkins", 3))
        .await;
    let history = sim.record_pods();
    sim.edit(&STATEFULSETS, "jenkins", |set| {
        set["spec"]["template"]["spec"]["containers"][0]["image"] = json!("jenkins:2.441")
    });
    sim.wait_until("rolling update", |sim| {
        rolled_out(sim, "jenkins", 3)
            && sim
                .pods()
                .iter()
                .all(|pod| pod["spec"]["containers"][0]["image"] == "jenkins:2.441")
    })
    .await;
    let reasons = sim.reasons_about("jenkins");
    (history, reasons)
}

fn assert_replaced_pods_went_through_failed(history: &PodHistory) {
    let removed = history.removed();
    assert_eq!(
        removed
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>(),
        ["jenkins-2", "jenkins-1", "jenkins-0"]
    );
    for (name, uid) in removed {
        assert_eq!(
            history.deletion_steps(&uid),
            [
                PodStep::DeletionRequested,
                PodStep::TerminalPhase("Failed".to_owned()),
                PodStep::Removed
            ],
            "{name}"
        );
    }
}

#[tokio::test]
async fn stateful_set_emulating_1_29_recreates_failed_pods_with_failed_delete_not_found() {
    let sim = Sim::start_with(KubeVersion { minor: 29 }, 3);
    let (history, reasons) = stateful_set_rolling_update(&sim).await;
    assert_replaced_pods_went_through_failed(&history);
    for pod in ["jenkins-2", "jenkins-1", "jenkins-0"] {
        assert!(
            sim.has_event(
                "jenkins",
                "RecreatingFailedPod",
                &format!("StatefulSet default/jenkins is recreating failed Pod {pod}")
            ),
            "{reasons:?}"
        );
        assert!(
            sim.has_event(
                "jenkins",
                "FailedDelete",
                &format!(
                    "delete Pod {pod} in StatefulSet jenkins failed error: pods \"{pod}\" not found"
                )
            ),
            "{reasons:?}"
        );
    }
    let position = |reason: &str| reasons.iter().position(|r| r == reason).unwrap();
    assert!(position("RecreatingFailedPod") < position("FailedDelete"));
    let recreating = sim
        .events_about("jenkins")
        .into_iter()
        .find(|event| event["reason"] == "RecreatingFailedPod")
        .unwrap();
    assert_eq!(recreating["type"], "Warning");
    assert_eq!(recreating["source"]["component"], "statefulset-controller");
    sim.stop().await;
}

#[tokio::test]
async fn stateful_set_at_the_default_version_waits_for_terminating_pods_without_recreation_events()
{
    let sim = Sim::start();
    let (history, reasons) = stateful_set_rolling_update(&sim).await;
    assert_replaced_pods_went_through_failed(&history);
    assert!(
        !reasons
            .iter()
            .any(|reason| reason == "RecreatingFailedPod" || reason == "FailedDelete"),
        "{reasons:?}"
    );
    assert_eq!(
        reasons
            .iter()
            .filter(|reason| *reason == "SuccessfulDelete")
            .count(),
        3
    );
    sim.stop().await;
}

#[tokio::test]
async fn stateful_set_scales_down_from_the_highest_ordinal() {
    let sim = Sim::start();
    sim.create(
        &STATEFULSETS,
        stateful_set("cache", 3, template("cache", "redis:7", None)),
    );
    sim.wait_until("initial rollout", |sim| rolled_out(sim, "cache", 3))
        .await;
    sim.edit(&STATEFULSETS, "cache", |set| {
        set["spec"]["replicas"] = json!(1)
    });
    sim.wait_until("scaled down", |sim| {
        rolled_out(sim, "cache", 1) && sim.pods().len() == 1
    })
    .await;
    let deletions: Vec<String> = sim
        .events_about("cache")
        .iter()
        .filter(|event| event["reason"] == "SuccessfulDelete")
        .map(|event| event["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        deletions,
        [
            "delete Pod cache-2 in StatefulSet cache successful",
            "delete Pod cache-1 in StatefulSet cache successful"
        ]
    );
    sim.stop().await;
}

fn daemon_set_done(sim: &Sim, nodes: i64) -> bool {
    let status = sim.get(&DAEMONSETS, "agent").unwrap()["status"].clone();
    int(&status, "/desiredNumberScheduled") == nodes
        && int(&status, "/updatedNumberScheduled") == nodes
        && int(&status, "/numberAvailable") == nodes
        && int(&status, "/numberReady") == nodes
        && int(&status, "/currentNumberScheduled") == nodes
        && int(&status, "/observedGeneration")
            == int(
                &sim.get(&DAEMONSETS, "agent").unwrap(),
                "/metadata/generation",
            )
}

#[tokio::test]
async fn daemon_set_runs_one_pod_per_node_and_rolls_one_node_at_a_time() {
    let sim = Sim::start_with(KubeVersion::DEFAULT, 4);
    sim.create(
        &DAEMONSETS,
        daemon_set("agent", template("agent", "agent:1", None)),
    );
    sim.wait_until("daemon pods ready", |sim| daemon_set_done(sim, 4))
        .await;
    let mut nodes: Vec<String> = sim
        .pods()
        .iter()
        .map(|pod| pod["spec"]["nodeName"].as_str().unwrap().to_owned())
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["node-0", "node-1", "node-2", "node-3"]);
    let pod = &sim.pods()[0];
    assert!(pod["metadata"]["labels"]["controller-revision-hash"].is_string());
    assert_eq!(pod["metadata"]["labels"]["pod-template-generation"], "1");
    assert!(sim.has_event(
        "agent",
        "SuccessfulCreate",
        &format!("Created pod: {}", name(pod))
    ));

    let history = sim.record_pods();
    sim.edit(&DAEMONSETS, "agent", |set| {
        set["spec"]["template"]["spec"]["containers"][0]["image"] = json!("agent:2")
    });
    sim.wait_until("daemon rollout", |sim| {
        daemon_set_done(sim, 4)
            && sim
                .pods()
                .iter()
                .all(|pod| pod["spec"]["containers"][0]["image"] == "agent:2")
    })
    .await;
    // maxUnavailable 1: at least 3 nodes keep an active pod throughout
    let mut active = std::collections::HashSet::new();
    let mut min_active = usize::MAX;
    let changes = history.changes();
    for (index, change) in changes.iter().enumerate() {
        let object = &change.object;
        let is_active = change.event_type != kubesim::store::WatchEventType::Deleted
            && !object["metadata"]["deletionTimestamp"].is_string()
            && is_ready(object);
        if is_active {
            active.insert(uid(object).to_owned());
        } else {
            active.remove(uid(object));
        }
        // the snapshot of the 4 initial pods counts as one moment
        if index >= 3 {
            min_active = min_active.min(active.len());
        }
    }
    assert!(
        min_active >= 3,
        "only {min_active} ready daemon pods at one point"
    );
    sim.stop().await;
}

fn job_condition(sim: &Sim, name: &str, kind: &str) -> Option<Value> {
    condition(&sim.get(&JOBS, name)?, kind)
        .filter(|condition| condition["status"] == "True")
        .cloned()
}

#[tokio::test]
async fn job_completes_after_its_completions_succeeded() {
    let sim = Sim::start();
    sim.create(
        &JOBS,
        job(
            "migrate",
            template("migrate", "migrate:1", Some("exitAfter=2s")),
            json!({"completions": 2, "parallelism": 1}),
        ),
    );
    let complete = sim
        .wait_for("job complete", |sim| {
            job_condition(sim, "migrate", "Complete")
        })
        .await;
    let job = sim.get(&JOBS, "migrate").unwrap();
    assert_eq!(int(&job, "/status/succeeded"), 2);
    assert_eq!(int(&job, "/status/active"), 0);
    assert!(job["status"]["completionTime"].is_string());
    assert_eq!(complete["reason"], "CompletionsReached");
    let types: Vec<&str> = job["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|condition| condition["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["SuccessCriteriaMet", "Complete"]);
    assert!(sim.has_event("migrate", "Completed", "Job completed"));
    assert_eq!(
        sim.reasons_about("migrate")
            .iter()
            .filter(|reason| *reason == "SuccessfulCreate")
            .count(),
        2
    );
    for pod in sim.pods() {
        assert_eq!(pod["status"]["phase"], "Succeeded");
        assert_eq!(pod["metadata"]["labels"]["job-name"], "migrate");
        assert_eq!(
            pod["status"]["containerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
    }
    sim.stop().await;
}

#[tokio::test]
async fn job_fails_when_failures_exceed_the_backoff_limit() {
    let sim = Sim::start();
    sim.create(
        &JOBS,
        job(
            "flaky",
            template("flaky", "task:1", Some("exitAfter=1s;exitCode=2")),
            json!({"backoffLimit": 1}),
        ),
    );
    let failed = sim
        .wait_for("job failed", |sim| job_condition(sim, "flaky", "Failed"))
        .await;
    assert_eq!(failed["reason"], "BackoffLimitExceeded");
    assert_eq!(
        failed["message"],
        "Job has reached the specified backoff limit"
    );
    assert!(job_condition(&sim, "flaky", "FailureTarget").is_some());
    assert_eq!(int(&sim.get(&JOBS, "flaky").unwrap(), "/status/failed"), 2);
    assert!(sim.has_event(
        "flaky",
        "BackoffLimitExceeded",
        "Job has reached the specified backoff limit"
    ));
    let pod = &sim.pods()[0];
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        2
    );
    sim.stop().await;
}

#[tokio::test]
async fn job_running_past_its_active_deadline_fails_and_loses_its_pods() {
    let sim = Sim::start();
    sim.create(
        &JOBS,
        job(
            "slow",
            template("slow", "task:1", None),
            json!({"activeDeadlineSeconds": 5}),
        ),
    );
    let failed = sim
        .wait_for("job failed", |sim| job_condition(sim, "slow", "Failed"))
        .await;
    assert_eq!(failed["reason"], "DeadlineExceeded");
    assert_eq!(
        failed["message"],
        "Job was active longer than specified deadline"
    );
    assert!(sim.has_event(
        "slow",
        "DeadlineExceeded",
        "Job was active longer than specified deadline"
    ));
    assert!(
        sim.reasons_about("slow")
            .contains(&"SuccessfulDelete".to_owned())
    );
    sim.wait_until("pods removed", |sim| sim.pods().is_empty())
        .await;
    sim.stop().await;
}

#[tokio::test]
async fn services_get_cluster_ips_and_claims_get_bound() {
    let sim = Sim::start();
    sim.create(&SERVICES, json!({"metadata": {"name": "web", "namespace": NAMESPACE}, "spec": {"ports": [{"port": 80}]}}));
    sim.create(&SERVICES, json!({"metadata": {"name": "api", "namespace": NAMESPACE}, "spec": {"ports": [{"port": 80}]}}));
    sim.create(&SERVICES, json!({"metadata": {"name": "headless", "namespace": NAMESPACE}, "spec": {"clusterIP": "None"}}));
    sim.create(&PVCS, json!({"metadata": {"name": "data", "namespace": NAMESPACE}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}}}));
    let ips = sim
        .wait_for("cluster IPs", |sim| {
            let ip = |name: &str| {
                sim.get(&SERVICES, name)?["spec"]["clusterIP"]
                    .as_str()
                    .map(str::to_owned)
            };
            Some((ip("web")?, ip("api")?))
        })
        .await;
    assert_ne!(ips.0, ips.1);
    assert!(
        ips.0.starts_with("10.96.") && ips.1.starts_with("10.96."),
        "{ips:?}"
    );
    assert_eq!(
        sim.get(&SERVICES, "headless").unwrap()["spec"]["clusterIP"],
        "None"
    );
    sim.wait_until("claim bound", |sim| {
        sim.get(&PVCS, "data").unwrap()["status"]["phase"] == "Bound"
    })
    .await;
    assert_eq!(
        sim.get(&PVCS, "data").unwrap()["status"]["capacity"]["storage"],
        "2Gi"
    );
    sim.stop().await;
}

#[tokio::test]
async fn paused_controllers_create_nothing_until_resumed() {
    let sim = Sim::start();
    sim.control.pause();
    sim.create(
        &DEPLOYMENTS,
        deployment("later", 1, template("later", "app:1", None)),
    );
    tokio::time::sleep(sim.scaled(20.0)).await;
    assert!(
        replica_sets(&sim).is_empty(),
        "a paused controller created a replica set"
    );
    assert!(sim.control.is_paused());
    sim.control.resume();
    sim.wait_until("rollout after resume", |sim| {
        deployment_complete(sim, "later", 1)
    })
    .await;
    sim.stop().await;
}

#[tokio::test]
async fn paused_deployment_shows_it_and_rolls_out_only_once_resumed() {
    let sim = Sim::start();
    sim.create(
        &DEPLOYMENTS,
        deployment("held", 2, template("held", "app:1", None)),
    );
    sim.wait_until("first rollout", |sim| deployment_complete(sim, "held", 2))
        .await;
    sim.edit(&DEPLOYMENTS, "held", |deployment| {
        deployment["spec"]["paused"] = json!(true);
        deployment["spec"]["template"]["spec"]["containers"][0]["image"] = json!("app:2");
    });
    let progressing = sim
        .wait_for("paused condition", |sim| {
            condition(&sim.get(&DEPLOYMENTS, "held")?, "Progressing")
                .filter(|condition| condition["reason"] == "DeploymentPaused")
                .cloned()
        })
        .await;
    assert_eq!(
        (
            progressing["status"].as_str(),
            progressing["message"].as_str()
        ),
        (Some("Unknown"), Some("Deployment is paused"))
    );
    tokio::time::sleep(sim.scaled(10.0)).await;
    assert_eq!(
        replica_sets(&sim).len(),
        1,
        "a paused deployment must not create a new replica set"
    );
    sim.edit(&DEPLOYMENTS, "held", |deployment| {
        deployment["spec"]["paused"] = json!(false)
    });
    sim.wait_until("rollout after resume", |sim| {
        deployment_complete(sim, "held", 2)
            && sim
                .pods()
                .iter()
                .all(|pod| pod["spec"]["containers"][0]["image"] == "app:2")
    })
    .await;
    assert_eq!(replica_sets(&sim).len(), 2);
    sim.stop().await;
}

#[tokio::test]
async fn rolling_back_reuses_the_old_replica_set_as_the_newest_revision() {
    let sim = Sim::start();
    sim.create(
        &DEPLOYMENTS,
        deployment("undo", 2, template("undo", "app:1", None)),
    );
    sim.wait_until("first rollout", |sim| deployment_complete(sim, "undo", 2))
        .await;
    let first = name(&replica_sets(&sim)[0]).to_owned();
    sim.edit(&DEPLOYMENTS, "undo", |deployment| {
        deployment["spec"]["template"]["spec"]["containers"][0]["image"] = json!("app:2")
    });
    sim.wait_until("second rollout", |sim| {
        deployment_complete(sim, "undo", 2) && replica_sets(sim).len() == 2
    })
    .await;
    sim.edit(&DEPLOYMENTS, "undo", |deployment| {
        deployment["spec"]["template"]["spec"]["containers"][0]["image"] = json!("app:1")
    });
    sim.wait_until("rollback", |sim| {
        deployment_complete(sim, "undo", 2)
            && sim
                .get(&REPLICASETS, &first)
                .is_some_and(|set| int(&set, "/spec/replicas") == 2)
    })
    .await;
    assert_eq!(
        replica_sets(&sim).len(),
        2,
        "the old replica set is reused, not duplicated"
    );
    assert_eq!(
        sim.get(&REPLICASETS, &first).unwrap()["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    assert_eq!(
        sim.get(&DEPLOYMENTS, "undo").unwrap()["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    sim.stop().await;
}
