//! The real kubectl against the simulator: apply, get, get -w, logs.

use std::process::Stdio;
use std::time::Duration;

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
    assert!(all.lines().any(|line| line.contains(" web ")), "{all}");

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

fn running_pod(restart_count: u32) -> serde_json::Value {
    json!({
        "metadata": {"name": "web-0", "namespace": "default"},
        "spec": {"nodeName": "node-0", "containers": [{"name": "app", "image": "nginx"}]},
        "status": {"phase": "Running", "containerStatuses": [{"name": "app", "ready": true, "restartCount": restart_count, "image": "nginx", "imageID": "", "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_current_previous_tail_and_follow() {
    let kubectl = kubectl_binary();
    let cluster = TestCluster::start().await;
    let store = cluster.cluster.store();
    let logs = cluster.cluster.logs();
    store.create(&PODS, running_pod(1)).unwrap();
    logs.append("default", "web-0", "app", 0, "crashed run");
    logs.append("default", "web-0", "app", 1, "line one");
    logs.append("default", "web-0", "app", 1, "line two");

    assert_eq!(
        cluster.ok(&kubectl, &["logs", "web-0"]).await,
        "line one\nline two\n"
    );
    assert_eq!(
        cluster.ok(&kubectl, &["logs", "web-0", "--previous"]).await,
        "crashed run\n"
    );
    assert_eq!(
        cluster.ok(&kubectl, &["logs", "web-0", "--tail=1"]).await,
        "line two\n"
    );
    let stamped = cluster
        .ok(&kubectl, &["logs", "web-0", "--timestamps"])
        .await;
    assert!(
        stamped.lines().all(|line| line.contains("Z line")),
        "{stamped}"
    );
    let missing = cluster
        .run(&kubectl, &["logs", "web-0", "-c", "nope"])
        .await;
    assert!(!missing.status.success());

    let counts = cluster.cluster.admin().clone();
    let before = counts.request_counts().count("get", "pods/log");
    let follow = cluster
        .command(&kubectl)
        .args(["logs", "-f", "web-0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    eventually("kubectl to start following", || {
        counts.request_counts().count("get", "pods/log") > before
    })
    .await;
    logs.append("default", "web-0", "app", 1, "line three");
    store
        .modify(&PODS, Some("default"), "web-0", |pod| {
            pod["status"]["containerStatuses"][0]["state"] =
                json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
        })
        .unwrap();
    let output = tokio::time::timeout(Duration::from_secs(30), follow.wait_with_output())
        .await
        .expect("kubectl logs -f ends when the container stops")
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "line one\nline two\nline three\n"
    );
    cluster.cluster.shutdown().await;
}
