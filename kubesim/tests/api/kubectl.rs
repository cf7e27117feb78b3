//! The real kubectl against the simulator: apply, get, get -w, logs.

use std::process::Stdio;
use std::time::Duration;

use kubesim::options::ClusterOptions;
use kubesim::store::{CONFIGMAPS, DEPLOYMENTS, PODS};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{TestCluster, eventually, kubectl_binary};

fn manifest(data: &str, replicas: u32) -> String {
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: web
data:
  k: "{data}"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: app
          image: nginx:1.27
          env:
            - {{name: A, value: "1"}}
            - {{name: B, value: "2"}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_get_and_delete() {
    let kubectl = kubectl_binary();
    let cluster = TestCluster::start().await;
    let file = cluster.dir.path().join("web.yaml");
    let path = file.to_str().unwrap();

    std::fs::write(&file, manifest("v1", 1)).unwrap();
    let created = cluster.ok(&kubectl, &["apply", "-f", path]).await;
    assert!(
        created.contains("configmap/web created")
            && created.contains("deployment.apps/web created"),
        "{created}"
    );

    std::fs::write(&file, manifest("v2", 2)).unwrap();
    let configured = cluster.ok(&kubectl, &["apply", "-f", path]).await;
    assert!(
        configured.contains("configmap/web configured")
            && configured.contains("deployment.apps/web configured"),
        "{configured}"
    );
    let unchanged = cluster.ok(&kubectl, &["apply", "-f", path]).await;
    assert!(unchanged.contains("configmap/web unchanged"), "{unchanged}");
    let deployment = cluster
        .cluster
        .store()
        .get(&DEPLOYMENTS, Some("default"), "web")
        .unwrap();
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["metadata"]["generation"], 2);

    let replicas = cluster
        .ok(
            &kubectl,
            &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"],
        )
        .await;
    assert_eq!(replicas, "2");
    let table = cluster.ok(&kubectl, &["get", "configmaps"]).await;
    assert!(table.lines().any(|line| line.starts_with("web")), "{table}");
    let all = cluster.ok(&kubectl, &["get", "all", "-A"]).await;
    assert!(all.contains("deployment.apps/web"), "{all}");

    let server_side = cluster
        .ok(&kubectl, &["apply", "--server-side", "-f", path])
        .await;
    assert!(server_side.contains("serverside-applied"), "{server_side}");

    let deleted = cluster.ok(&kubectl, &["delete", "-f", path]).await;
    assert!(deleted.contains("configmap \"web\" deleted"), "{deleted}");
    assert!(
        cluster
            .cluster
            .store()
            .get(&CONFIGMAPS, Some("default"), "web")
            .is_none()
    );
    cluster.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_watch_prints_each_change() {
    let kubectl = kubectl_binary();
    let cluster = TestCluster::start().await;
    let store = cluster.cluster.store();
    store
        .create(
            &CONFIGMAPS,
            json!({"metadata": {"name": "web", "namespace": "default"}, "data": {"k": "v1"}}),
        )
        .unwrap();
    let mut child = cluster
        .command(&kubectl)
        .args([
            "get",
            "configmap",
            "web",
            "-w",
            "-o",
            "jsonpath={.data.k}{\"\\n\"}",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("kubectl printed a line")
            .unwrap()
            .expect("kubectl still running")
    };
    assert_eq!(next_line().await, "v1");
    // kubectl skips the first event of its watch (the object it already printed), so the change must
    // come after the watch started, as on a real cluster.
    let admin = cluster.cluster.admin().clone();
    eventually("kubectl to start watching", || {
        admin.request_counts().count("watch", "configmaps") > 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    store
        .modify(&CONFIGMAPS, Some("default"), "web", |cm| {
            cm["data"]["k"] = "v2".into()
        })
        .unwrap();
    assert_eq!(next_line().await, "v2");
    child.kill().await.unwrap();
    cluster.cluster.shutdown().await;
}

fn restart_count(cluster: &TestCluster) -> u64 {
    cluster
        .cluster
        .store()
        .get(&PODS, Some("default"), "web-0")
        .and_then(|pod| {
            pod.pointer("/status/containerStatuses/0/restartCount")
                .and_then(|count| count.as_u64())
        })
        .unwrap_or(0)
}

fn ticks(output: &str) -> usize {
    assert!(output.lines().all(|line| line == "tick"), "{output}");
    output.lines().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_current_previous_tail_and_follow() {
    let kubectl = kubectl_binary();
    let cluster = TestCluster::start_with(ClusterOptions {
        time_scale: 0.1,
        ..ClusterOptions::default()
    })
    .await;
    // The kubelet writes "tick" at each start and every 50ms; the container crashes after 2s (0.2s scaled).
    cluster
        .cluster
        .store()
        .create(
            &PODS,
            json!({
                "metadata": {"name": "web-0", "namespace": "default", "annotations": {"sim.rollcall.dev/behavior": "log=tick;logEvery=500ms;crashAfter=2s"}},
                "spec": {"containers": [{"name": "app", "image": "nginx"}]}
            }),
        )
        .unwrap();
    eventually("the container to restart", || restart_count(&cluster) >= 1).await;

    assert!(ticks(&cluster.ok(&kubectl, &["logs", "web-0", "--previous"]).await) >= 1);
    assert!(ticks(&cluster.ok(&kubectl, &["logs", "web-0"]).await) >= 1);
    assert_eq!(
        ticks(&cluster.ok(&kubectl, &["logs", "web-0", "--tail=1"]).await),
        1
    );
    let stamped = cluster
        .ok(&kubectl, &["logs", "web-0", "--timestamps"])
        .await;
    assert!(
        stamped.lines().all(|line| line.ends_with("Z tick")),
        "{stamped}"
    );
    let wrong_container = cluster
        .run(&kubectl, &["logs", "web-0", "-c", "nope"])
        .await;
    assert!(!wrong_container.status.success());

    // A followed stream ends when the container instance stops (here: its next crash).
    let followed = cluster.ok(&kubectl, &["logs", "-f", "web-0"]).await;
    assert!(ticks(&followed) >= 1);
    cluster.cluster.shutdown().await;
}

fn workload(kind: &str, name: &str, extra_spec: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: {kind}
metadata:
  name: {name}
spec:
{extra_spec}  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: app
          image: nginx:1.27
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rollout_status_reports_completed_rollouts() {
    let kubectl = kubectl_binary();
    let cluster = TestCluster::start_with(ClusterOptions {
        time_scale: 0.1,
        ..ClusterOptions::default()
    })
    .await;
    let cases = [
        (
            "Deployment",
            "web",
            "  replicas: 2\n",
            "deployment \"web\" successfully rolled out",
        ),
        (
            "StatefulSet",
            "db",
            "  replicas: 2\n  serviceName: db\n",
            "partitioned roll out complete: 2 new pods have been updated...",
        ),
        (
            "DaemonSet",
            "agent",
            "",
            "daemon set \"agent\" successfully rolled out",
        ),
    ];
    for (kind, name, spec, expected) in cases {
        let file = cluster.dir.path().join(format!("{kind}.yaml"));
        std::fs::write(&file, workload(kind, name, spec)).unwrap();
        let resource = format!("{}/{name}", kind.to_lowercase());
        let resource = resource.as_str();
        cluster
            .ok(&kubectl, &["apply", "-f", file.to_str().unwrap()])
            .await;
        let status = cluster
            .ok(&kubectl, &["rollout", "status", resource, "--timeout=60s"])
            .await;
        assert!(status.trim_end().ends_with(expected), "{kind}: {status}");
    }
    // Server-side printing: the columns kubectl shows against a real cluster.
    let pods = cluster
        .ok(&kubectl, &["get", "pods", "-l", "app=web"])
        .await;
    let mut rows = pods.lines();
    let header: Vec<&str> = rows.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{pods}"
    );
    assert!(
        rows.all(|row| row.contains(" 1/1 ") && row.contains(" Running ")),
        "{pods}"
    );
    let deployments = cluster.ok(&kubectl, &["get", "deployments"]).await;
    assert!(
        deployments.starts_with("NAME") && deployments.contains("UP-TO-DATE"),
        "{deployments}"
    );
    assert!(
        deployments
            .lines()
            .any(|row| row.starts_with("web") && row.contains(" 2/2 ")),
        "{deployments}"
    );
    cluster.cluster.shutdown().await;
}
