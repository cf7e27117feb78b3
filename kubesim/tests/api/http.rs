//! Raw HTTP for what the clients hide: protobuf bodies, Status objects, watch frames, faults.

use std::time::Duration;

use futures::StreamExt;
use kubesim::store::{CONFIGMAPS, PODS, SECRETS, Store};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestCluster, eventually};

const PROTOBUF_SECRET: &[u8] =
    include_bytes!("../../src/api/testdata/helm-release-secret-post.bin");
const PROTOBUF_DELETE: &[u8] =
    include_bytes!("../../src/api/testdata/helm-release-secret-delete.bin");

/// Reads newline-delimited JSON frames from a streaming response until `count` arrived.
async fn frames(response: reqwest::Response, count: usize) -> Vec<Value> {
    let mut body = response.bytes_stream();
    let mut buffer = Vec::new();
    let mut frames = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while frames.len() < count {
            let chunk = body.next().await.expect("stream continues").expect("chunk");
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                frames.push(serde_json::from_slice(&line).expect("a JSON frame"));
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "only {} of {count} frames arrived: {frames:?}",
            frames.len()
        )
    });
    frames
}

/// Creates an empty ConfigMap `name` in namespace `default`.
fn create_config_map(store: &Store, name: &str) -> Value {
    store
        .create(
            &CONFIGMAPS,
            json!({"metadata": {"name": name, "namespace": "default"}}),
        )
        .expect("ConfigMap created")
}

#[tokio::test]
async fn protobuf_release_secrets_are_decoded_and_deleted() {
    let cluster = TestCluster::start().await;
    let http = cluster.http();
    let created = http
        .post(cluster.url("/api/v1/namespaces/default/secrets"))
        .header("content-type", "application/vnd.kubernetes.protobuf")
        .header(
            "accept",
            "application/vnd.kubernetes.protobuf,application/json",
        )
        .body(PROTOBUF_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(created.headers()["content-type"], "application/json");
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["metadata"]["namespace"], "default");
    let stored = cluster
        .cluster
        .store()
        .get(&SECRETS, Some("default"), "sh.helm.release.v1.demo.v1")
        .unwrap();
    assert_eq!(stored["type"], "helm.sh/release.v1");

    let deleted = http
        .delete(cluster.url("/api/v1/namespaces/default/secrets/sh.helm.release.v1.demo.v1"))
        .header("content-type", "application/vnd.kubernetes.protobuf")
        .body(PROTOBUF_DELETE)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    assert!(
        cluster
            .cluster
            .store()
            .list(&SECRETS, Some("default"))
            .0
            .is_empty()
    );
    cluster.cluster.shutdown().await;
}

#[tokio::test]
async fn errors_are_kubernetes_status_objects() {
    let cluster = TestCluster::start().await;
    let http = cluster.http();
    let missing = http
        .get(cluster.url("/apis/apps/v1/namespaces/default/deployments/web"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let missing: Value = missing.json().await.unwrap();
    assert_eq!(
        missing,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "deployments.apps \"web\" not found", "reason": "NotFound", "details": {"name": "web", "group": "apps", "kind": "deployments"}, "code": 404})
    );

    let bad_selector = http
        .get(cluster.url("/apis/apps/v1/deployments?fieldSelector=spec.replicas%3D1"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_selector.status(), StatusCode::BAD_REQUEST);
    let bad_selector: Value = bad_selector.json().await.unwrap();
    assert_eq!(
        bad_selector["message"],
        "field label not supported: spec.replicas"
    );

    let no_namespace = http
        .post(cluster.url("/api/v1/namespaces/nowhere/configmaps"))
        .json(&json!({"metadata": {"name": "c"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_namespace.status(), StatusCode::NOT_FOUND);
    let unknown = http
        .get(cluster.url("/apis/example.com/v1/widgets"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    cluster.cluster.shutdown().await;
}

#[tokio::test]
async fn discovery_and_openapi_describe_the_served_resources() {
    let cluster = TestCluster::start().await;
    let http = cluster.http();
    let get = |path: &'static str| {
        let request = http.get(cluster.url(path)).header(
            "accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        );
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(
                response.headers()["content-type"],
                "application/json",
                "{path}"
            );
            response.json::<Value>().await.unwrap()
        }
    };
    let version = get("/version").await;
    assert_eq!(version["minor"], "31");
    assert_eq!(get("/api").await["versions"], json!(["v1"]));
    let groups = get("/apis").await;
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    for group in [
        "apps",
        "batch",
        "events.k8s.io",
        "rbac.authorization.k8s.io",
        "policy",
        "networking.k8s.io",
        "apiextensions.k8s.io",
    ] {
        assert!(names.contains(&group), "{group} in {names:?}");
    }
    let core = get("/api/v1").await;
    let pods = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods")
        .unwrap();
    assert_eq!(pods["shortNames"], json!(["po"]));
    assert!(
        core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "pods/log")
    );
    let root = get("/openapi/v3").await;
    assert!(root["paths"]["apis/apps/v1"]["serverRelativeURL"].is_string());
    cluster.cluster.shutdown().await;
}

#[tokio::test]
async fn streaming_list_ends_initial_events_with_a_bookmark() {
    let cluster = TestCluster::start().await;
    let store = cluster.cluster.store();
    create_config_map(store, "a");
    create_config_map(store, "b");
    let response = cluster
        .http()
        .get(cluster.url("/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=30"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let watch = tokio::spawn(frames(response, 4));
    tokio::time::sleep(Duration::from_millis(100)).await;
    create_config_map(store, "c");
    let frames = watch.await.unwrap();
    let types: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["ADDED", "ADDED", "BOOKMARK", "ADDED"]);
    assert_eq!(
        frames[2]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(frames[3]["object"]["metadata"]["name"], "c");
    cluster.cluster.shutdown().await;
}

#[tokio::test]
async fn watch_from_a_compacted_version_gets_an_expired_error_event() {
    let cluster = TestCluster::start().await;
    let store = cluster.cluster.store();
    let first = create_config_map(store, "a");
    create_config_map(store, "b");
    let rv = first["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();

    let resumed = cluster
        .http()
        .get(cluster.url(&format!(
            "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}"
        )))
        .send()
        .await
        .unwrap();
    let frames_before = frames(resumed, 1).await;
    assert_eq!(frames_before[0]["type"], "ADDED");
    assert_eq!(frames_before[0]["object"]["metadata"]["name"], "b");

    cluster.cluster.compact();
    let expired = cluster
        .http()
        .get(cluster.url(&format!(
            "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), StatusCode::OK);
    let error = &frames(expired, 1).await[0];
    assert_eq!(error["type"], "ERROR");
    assert_eq!(error["object"]["code"], 410);
    assert_eq!(error["object"]["reason"], "Expired");
    assert!(
        error["object"]["message"]
            .as_str()
            .unwrap()
            .starts_with("too old resource version")
    );
    cluster.cluster.shutdown().await;
}

#[tokio::test]
async fn injected_failures_and_request_counters_over_the_admin_endpoints() {
    let cluster = TestCluster::start().await;
    let http = cluster.http();
    let injected = http
        .post(cluster.url("/sim/faults/fail"))
        .json(&json!({"count": 2, "status": 429, "path_contains": "configmaps"}))
        .send()
        .await
        .unwrap();
    assert_eq!(injected.status(), StatusCode::NO_CONTENT);
    let list = || {
        http.get(cluster.url("/api/v1/namespaces/default/configmaps"))
            .send()
    };
    assert_eq!(
        http.get(cluster.url("/api/v1/namespaces/default/pods"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let throttled = list().await.unwrap();
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        throttled.json::<Value>().await.unwrap()["reason"],
        "TooManyRequests"
    );
    assert_eq!(
        list().await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(list().await.unwrap().status(), StatusCode::OK);

    let counts: Value = http
        .get(cluster.url("/sim/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counts["by_resource"]["configmaps"]["list"], 3);
    assert_eq!(counts["by_resource"]["pods"]["list"], 1);
    assert_eq!(counts["by_verb"]["list"], 4);

    let store = cluster.cluster.store();
    store
        .create(&PODS, json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {"nodeName": "node-0", "containers": [{"name": "app", "image": "x"}]}}))
        .unwrap();
    let removed = http
        .post(cluster.url("/sim/pods/default/p/delete"))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::OK);
    assert!(
        store.get(&PODS, Some("default"), "p").is_none(),
        "removed without grace"
    );
    cluster.cluster.shutdown().await;
}

#[tokio::test]
async fn an_injected_gone_answers_watches_only_with_an_expired_status() {
    let cluster = TestCluster::start().await;
    cluster
        .cluster
        .fail_next(1, StatusCode::GONE, Some("watch=true"));
    let http = cluster.http();
    let listed = http
        .get(cluster.url("/api/v1/namespaces/default/configmaps"))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    let watched = http
        .get(cluster.url("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(watched.status(), StatusCode::GONE);
    let status: Value = watched.json().await.unwrap();
    assert_eq!(
        (&status["kind"], &status["code"], &status["reason"]),
        (&json!("Status"), &json!(410), &json!("Expired"))
    );
    cluster.cluster.shutdown().await;
}

#[tokio::test]
async fn previous_logs_during_crash_loop_back_off_are_the_crashed_run() {
    let cluster = TestCluster::start_with(kubesim::options::ClusterOptions {
        time_scale: 0.1,
        ..kubesim::options::ClusterOptions::default()
    })
    .await;
    cluster
        .cluster
        .store()
        .create(
            &PODS,
            json!({
                "metadata": {"name": "crasher", "namespace": "default", "annotations": {
                    "sim.rollcall.dev/behavior": "crashAfter=500ms;log=run {restartCount}"}},
                "spec": {"containers": [{"name": "app", "image": "nginx"}]}
            }),
        )
        .unwrap();
    let backing_off = || {
        cluster
            .cluster
            .store()
            .get(&PODS, Some("default"), "crasher")
            .is_some_and(|pod| {
                pod.pointer("/status/containerStatuses/0/state/waiting/reason")
                    == Some(&json!("CrashLoopBackOff"))
            })
    };
    eventually("the crash loop back-off", backing_off).await;
    let http = cluster.http();
    let log = |query: &'static str| {
        let request = http.get(cluster.url(&format!(
            "/api/v1/namespaces/default/pods/crasher/log{query}"
        )));
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    // restartCount 1 numbers the run that crashed (as the kubelet reports it during back-off):
    // `previous` and the current log both show it, as `kubectl logs [-p]` do.
    assert_eq!(log("?previous=true").await, "run 1\n");
    assert_eq!(log("").await, "run 1\n");
    assert!(backing_off(), "still backing off while the logs were read");
    assert_eq!(cluster.cluster.request_counts().previous_logs, 1);
    cluster.cluster.shutdown().await;
}

/// Whether the watch's body ends within `within` (it was dropped), reading past its frames.
async fn watch_ends(response: reqwest::Response, within: Duration) -> bool {
    let mut body = response.bytes_stream();
    tokio::time::timeout(within, async {
        while let Some(chunk) = body.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn faults_scoped_to_a_user_agent_spare_every_other_client() {
    let cluster = TestCluster::start().await;
    let client = |agent: &str| {
        reqwest::Client::builder()
            .user_agent(agent)
            .build()
            .unwrap()
    };
    let (faulted, spared) = (
        client("rollcall/0.1.0"),
        client("helm/v4.3.1 (linux/amd64)"),
    );
    let scoped = spared
        .post(cluster.url("/sim/faults/scope"))
        .json(&json!({"user_agent_contains": "rollcall/"}))
        .send()
        .await
        .unwrap();
    assert_eq!(scoped.status(), StatusCode::NO_CONTENT);
    let pods = cluster.url("/api/v1/namespaces/default/pods");

    cluster
        .cluster
        .fail_next(2, StatusCode::INTERNAL_SERVER_ERROR, None);
    let status = |client: &reqwest::Client| {
        let request = client.get(&pods).send();
        async move { request.await.unwrap().status() }
    };
    assert_eq!(status(&spared).await, StatusCode::OK, "helm is spared");
    assert_eq!(status(&faulted).await, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(status(&faulted).await, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(status(&faulted).await, StatusCode::OK, "two failures only");

    cluster.cluster.set_latency(Duration::from_millis(1500));
    let started = tokio::time::Instant::now();
    status(&spared).await;
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "helm waits not"
    );
    status(&faulted).await;
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "rollcall waits"
    );
    cluster.cluster.set_latency(Duration::ZERO);

    let watch = |client: &reqwest::Client| {
        client
            .get(cluster.url("/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=60"))
            .send()
    };
    let (faulted_watch, spared_watch) = (
        watch(&faulted).await.unwrap(),
        watch(&spared).await.unwrap(),
    );
    cluster.cluster.drop_watches();
    assert!(
        watch_ends(faulted_watch, Duration::from_secs(5)).await,
        "rollcall's watch is dropped"
    );
    assert!(
        !watch_ends(spared_watch, Duration::from_secs(1)).await,
        "helm's watch stays open"
    );

    // Clearing the faults lifts their scope too.
    cluster.cluster.clear_faults();
    cluster
        .cluster
        .fail_next(1, StatusCode::INTERNAL_SERVER_ERROR, None);
    assert_eq!(status(&spared).await, StatusCode::INTERNAL_SERVER_ERROR);
    cluster.cluster.shutdown().await;
}
