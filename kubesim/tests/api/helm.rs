//! The real helm binaries against the simulator (helm-requests/README.md lists what they send).

use kubesim::options::ClusterOptions;
use kubesim::store::{CONFIGMAPS, DEPLOYMENTS, JOBS, PODS, ResourceType, SECRETS, SERVICES};
use serde_json::Value;

use crate::support::{TestCluster, chart, eventually, helm_binary, helm3_binary};

fn object(
    cluster: &TestCluster,
    resource: &ResourceType,
    namespace: &str,
    name: &str,
) -> Option<Value> {
    cluster.cluster.store().get(resource, Some(namespace), name)
}

/// The revisions of release `demo`, oldest first, as `helm history -o json` prints them.
async fn history(cluster: &TestCluster, helm: &str) -> Vec<Value> {
    let history = cluster
        .ok(helm, &["history", "demo", "-n", "default", "-o", "json"])
        .await;
    serde_json::from_str(&history).expect("helm history prints JSON")
}

fn release_secrets(cluster: &TestCluster) -> Vec<String> {
    let (secrets, _) = cluster.cluster.store().list(&SECRETS, Some("default"));
    secrets
        .iter()
        .filter(|secret| {
            secret
                .pointer("/metadata/labels/owner")
                .and_then(Value::as_str)
                == Some("helm")
        })
        .map(|secret| secret["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

fn config_mode(cluster: &TestCluster) -> String {
    let config = object(cluster, &CONFIGMAPS, "default", "demo-config")
        .expect("the chart's ConfigMap exists");
    config["data"]["mode"].as_str().unwrap().to_owned()
}

fn deployment_env(cluster: &TestCluster) -> Value {
    let deployment =
        object(cluster, &DEPLOYMENTS, "default", "demo").expect("the chart's Deployment exists");
    deployment["spec"]["template"]["spec"]["containers"][0]["env"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_v4_release_lifecycle_leaves_the_right_objects() {
    let helm = helm_binary();
    let cluster = TestCluster::start().await;
    let chart = chart("demo");
    let chart = chart.to_str().unwrap();

    cluster
        .ok(
            &helm,
            &["upgrade", "--install", "demo", chart, "-n", "default"],
        )
        .await;
    assert_eq!(config_mode(&cluster), "one");
    assert!(object(&cluster, &SERVICES, "default", "demo").is_some());
    assert_eq!(release_secrets(&cluster), ["sh.helm.release.v1.demo.v1"]);
    let first_uid =
        object(&cluster, &DEPLOYMENTS, "default", "demo").unwrap()["metadata"]["uid"].clone();

    cluster
        .ok(
            &helm,
            &[
                "upgrade",
                "--install",
                "demo",
                chart,
                "-n",
                "default",
                "--set",
                "config.mode=two",
                "--set",
                "env[0].name=MODE,env[0].value=two",
            ],
        )
        .await;
    assert_eq!(config_mode(&cluster), "two");
    assert_eq!(
        deployment_env(&cluster),
        serde_json::json!([{"name": "MODE", "value": "two"}])
    );
    let deployment = object(&cluster, &DEPLOYMENTS, "default", "demo").unwrap();
    assert_eq!(
        deployment["metadata"]["uid"], first_uid,
        "server-side apply updates in place"
    );
    assert_eq!(deployment["metadata"]["generation"], 2);

    cluster
        .ok(
            &helm,
            &["upgrade", "demo", chart, "-n", "default", "--reuse-values"],
        )
        .await;
    let unchanged = object(&cluster, &DEPLOYMENTS, "default", "demo").unwrap();
    assert_eq!(
        unchanged["metadata"]["generation"], 2,
        "a no-change upgrade does not change the spec"
    );

    cluster
        .ok(&helm, &["rollback", "demo", "1", "-n", "default"])
        .await;
    assert_eq!(config_mode(&cluster), "one");
    assert_eq!(
        deployment_env(&cluster),
        serde_json::json!([{"name": "MODE", "value": "one"}])
    );

    let history = history(&cluster, &helm).await;
    let statuses: Vec<&str> = history
        .iter()
        .map(|revision| revision["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["superseded", "superseded", "superseded", "deployed"]
    );

    let manifest = cluster
        .ok(&helm, &["get", "manifest", "demo", "-n", "default"])
        .await;
    assert!(
        manifest.contains("kind: Deployment") && manifest.contains("kind: ConfigMap"),
        "{manifest}"
    );
    let status = cluster
        .ok(&helm, &["status", "demo", "-n", "default"])
        .await;
    assert!(
        status.contains("STATUS: deployed") && status.contains("REVISION: 4"),
        "{status}"
    );

    cluster
        .ok(&helm, &["uninstall", "demo", "-n", "default"])
        .await;
    assert!(object(&cluster, &DEPLOYMENTS, "default", "demo").is_none());
    assert!(object(&cluster, &CONFIGMAPS, "default", "demo-config").is_none());
    assert!(release_secrets(&cluster).is_empty());

    let counts = cluster.cluster.request_counts();
    assert!(
        counts.count("patch", "deployments.apps") >= 3,
        "helm 4 applies server-side: {counts:?}"
    );
    cluster.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_v3_upgrade_uses_strategic_merge_patches() {
    let helm = helm3_binary();
    let cluster = TestCluster::start().await;
    let chart = chart("demo");
    let chart = chart.to_str().unwrap();

    cluster
        .ok(
            &helm,
            &[
                "upgrade",
                "--install",
                "demo",
                chart,
                "-n",
                "default",
                "--set",
                "env[0].name=MODE,env[0].value=one,env[1].name=EXTRA,env[1].value=x",
            ],
        )
        .await;
    assert_eq!(
        deployment_env(&cluster),
        serde_json::json!([{"name": "MODE", "value": "one"}, {"name": "EXTRA", "value": "x"}])
    );
    cluster.cluster.reset_request_counts();

    cluster
        .ok(
            &helm,
            &[
                "upgrade",
                "demo",
                chart,
                "-n",
                "default",
                "--set",
                "config.mode=two",
            ],
        )
        .await;
    assert_eq!(config_mode(&cluster), "two");
    assert_eq!(
        deployment_env(&cluster),
        serde_json::json!([{"name": "MODE", "value": "one"}])
    );
    let counts = cluster.cluster.request_counts();
    assert!(counts.count("patch", "deployments.apps") >= 1, "{counts:?}");
    assert!(counts.count("patch", "configmaps") >= 1, "{counts:?}");

    let status = cluster
        .ok(&helm, &["status", "demo", "-n", "default"])
        .await;
    assert!(
        status.contains("STATUS: deployed") && status.contains("REVISION: 2"),
        "{status}"
    );
    cluster
        .ok(&helm, &["uninstall", "demo", "-n", "default"])
        .await;
    assert!(release_secrets(&cluster).is_empty());
    cluster.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_template_validate_and_install_into_a_new_namespace() {
    let helm = helm_binary();
    let cluster = TestCluster::start().await;
    let chart = chart("demo");
    let chart = chart.to_str().unwrap();

    let rendered = cluster
        .ok(&helm, &["template", "demo", chart, "--validate"])
        .await;
    assert!(rendered.contains("kind: Deployment"), "{rendered}");

    cluster
        .ok(
            &helm,
            &["install", "demo", chart, "-n", "team", "--create-namespace"],
        )
        .await;
    assert!(object(&cluster, &DEPLOYMENTS, "team", "demo").is_some());
    let list = cluster.ok(&helm, &["list", "-A", "-o", "json"]).await;
    let releases: Vec<Value> = serde_json::from_str(&list).unwrap();
    assert_eq!(releases.len(), 1);
    assert_eq!(releases[0]["namespace"], "team");
    cluster.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_wait_succeeds_for_a_healthy_chart_and_times_out_on_a_crash_loop() {
    let helm = helm_binary();
    let cluster = TestCluster::start_with(ClusterOptions {
        time_scale: 0.1,
        ..ClusterOptions::default()
    })
    .await;
    let chart = chart("demo");
    let chart = chart.to_str().unwrap();

    cluster
        .ok(
            &helm,
            &[
                "upgrade",
                "--install",
                "demo",
                chart,
                "-n",
                "default",
                "--set",
                "replicas=2",
                "--wait",
                "--timeout",
                "60s",
            ],
        )
        .await;
    let deployment = object(&cluster, &DEPLOYMENTS, "default", "demo").unwrap();
    assert_eq!(
        deployment["status"]["readyReplicas"], 2,
        "--wait returned before the pods were ready"
    );

    let crashing = cluster
        .run(
            &helm,
            &[
                "upgrade",
                "demo",
                chart,
                "-n",
                "default",
                "--set",
                "replicas=2",
                "--set",
                "behavior=crashAfter=1s",
                "--wait",
                "--timeout",
                "5s",
            ],
        )
        .await;
    assert!(
        !crashing.status.success(),
        "helm --wait accepted a crash-looping rollout"
    );
    let stderr = String::from_utf8_lossy(&crashing.stderr);
    assert!(
        stderr.contains("context deadline exceeded") || stderr.contains("timed out"),
        "{stderr}"
    );
    let history = history(&cluster, &helm).await;
    assert_eq!(history.last().unwrap()["status"], "failed");
    cluster.cluster.shutdown().await;
}

fn migrate_job(cluster: &TestCluster) -> Option<Value> {
    cluster
        .cluster
        .store()
        .get(&JOBS, Some("default"), "demo-migrate")
}

fn has_true_condition(job: &Value, kind: &str) -> bool {
    job["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|condition| condition["type"] == kind && condition["status"] == "True")
}

/// helm runs the hook Job and waits for it itself (no `--wait`): until it completes, recreating it
/// under `before-hook-creation`, deleting it (and its pods) under `hook-succeeded`, failing the
/// upgrade when it fails.
async fn hook_jobs_run_until_complete_with_their_delete_policies(helm: &str) {
    let cluster = TestCluster::start_with(ClusterOptions {
        time_scale: 0.1,
        ..ClusterOptions::default()
    })
    .await;
    let chart = chart("demo");
    let chart = chart.to_str().unwrap();
    let upgrade = |extra: &'static [&'static str]| {
        let mut args = vec![
            "upgrade",
            "--install",
            "demo",
            chart,
            "-n",
            "default",
            "--timeout",
            "60s",
            "--set",
            "migrate.enabled=true",
            "--set",
            "migrate.runFor=3s",
        ];
        args.extend_from_slice(extra);
        args
    };

    cluster.ok(helm, &upgrade(&[])).await;
    let first = migrate_job(&cluster).expect("the hook Job stays (before-hook-creation)");
    assert!(has_true_condition(&first, "Complete"), "{first}");

    cluster.ok(helm, &upgrade(&[])).await;
    let second = migrate_job(&cluster).expect("the hook Job of the upgrade");
    assert_ne!(second["metadata"]["uid"], first["metadata"]["uid"]);
    assert!(has_true_condition(&second, "Complete"), "{second}");

    cluster
        .ok(
            helm,
            &upgrade(&[
                "--set",
                "migrate.deletePolicy=before-hook-creation\\,hook-succeeded",
            ]),
        )
        .await;
    assert!(migrate_job(&cluster).is_none(), "deleted once it succeeded");
    eventually("the hook's pods to be collected", || {
        let (pods, _) = cluster.cluster.store().list(&PODS, Some("default"));
        !pods.iter().any(|pod| {
            pod.pointer("/metadata/labels/job-name")
                .and_then(Value::as_str)
                == Some("demo-migrate")
        })
    })
    .await;

    let failed = cluster
        .run(helm, &upgrade(&["--set", "migrate.exitCode=1"]))
        .await;
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("pre-upgrade hooks failed") && stderr.contains("demo-migrate"),
        "{stderr}"
    );
    let job = migrate_job(&cluster).expect("a failed hook Job stays");
    assert!(has_true_condition(&job, "Failed"), "{job}");
    cluster.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_v4_hook_jobs_run_until_complete_with_their_delete_policies() {
    hook_jobs_run_until_complete_with_their_delete_policies(&helm_binary()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_v3_hook_jobs_run_until_complete_with_their_delete_policies() {
    hook_jobs_run_until_complete_with_their_delete_policies(&helm3_binary()).await;
}
