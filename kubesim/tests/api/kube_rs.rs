//! kube-rs `Api` and `watcher` against the simulator.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher::{self, Event};
use serde_json::json;

use crate::support::TestCluster;

fn config_map(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
    )
    .unwrap()
}

#[tokio::test]
async fn api_create_get_list_replace_patch_delete() {
    let cluster = TestCluster::start().await;
    let client = cluster.client().await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    let created = config_maps
        .create(
            &PostParams::default(),
            &config_map("a", json!({"tier": "front"})),
        )
        .await
        .unwrap();
    config_maps
        .create(
            &PostParams::default(),
            &config_map("b", json!({"tier": "back"})),
        )
        .await
        .unwrap();
    let duplicate = config_maps
        .create(&PostParams::default(), &config_map("a", json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(duplicate, kube::Error::Api(ref status) if status.code == 409 && status.reason == "AlreadyExists"),
        "{duplicate:?}"
    );

    let front = config_maps
        .list(&ListParams::default().labels("tier in (front,middle)"))
        .await
        .unwrap();
    assert_eq!(front.items.len(), 1);
    assert_eq!(front.items[0].metadata.name.as_deref(), Some("a"));
    let by_name = config_maps
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);

    let mut stale = created.clone();
    let mut fresh = created.clone();
    fresh.data = Some([("k".to_owned(), "v2".to_owned())].into());
    config_maps
        .replace("a", &PostParams::default(), &fresh)
        .await
        .unwrap();
    stale.data = Some([("k".to_owned(), "stale".to_owned())].into());
    let conflict = config_maps
        .replace("a", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert!(
        matches!(conflict, kube::Error::Api(ref status) if status.code == 409 && status.reason == "Conflict"),
        "{conflict:?}"
    );

    let merged = config_maps
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"extra": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.data.unwrap().len(), 2);
    let applied = config_maps
        .patch(
            "c",
            &PatchParams::apply("test").force(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(applied.data.unwrap()["x"], "1");

    config_maps
        .delete("a", &DeleteParams::default())
        .await
        .unwrap();
    let missing = config_maps.get("a").await.unwrap_err();
    assert!(
        matches!(missing, kube::Error::Api(ref status) if status.code == 404 && status.message == "configmaps \"a\" not found"),
        "{missing:?}"
    );
    cluster.cluster.shutdown().await;
}

#[tokio::test]
async fn status_subresource_and_scale() {
    let cluster = TestCluster::start().await;
    let deployments: Api<Deployment> = Api::namespaced(cluster.client().await, "default");
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}}}
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    let patched = deployments
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 1}, "spec": {"replicas": 7}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.status.unwrap().replicas, Some(1));
    assert_eq!(patched.spec.replicas, Some(1), "status writes ignore spec");
    let scale = deployments
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(3));
    let scaled = deployments.get("web").await.unwrap();
    assert_eq!(scaled.spec.replicas, Some(3));
    assert_eq!(scaled.metadata.generation, Some(2));
    cluster.cluster.shutdown().await;
}

#[tokio::test]
async fn custom_resources_are_served_once_their_crd_exists() {
    let cluster = TestCluster::start().await;
    let client = cluster.client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }))
    .unwrap();
    let created = crds.create(&PostParams::default(), &crd).await.unwrap();
    let established = created.status.unwrap().conditions.unwrap();
    assert!(
        established
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );

    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(client, "default", &resource);
    let widget: DynamicObject = serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}})).unwrap();
    widgets
        .create(&PostParams::default(), &widget)
        .await
        .unwrap();
    let patched = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data["spec"]["size"], 2);
    assert_eq!(
        widgets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        widgets.list(&ListParams::default()).await.is_err(),
        "the resource is no longer served"
    );
    cluster.cluster.shutdown().await;
}

async fn wait_for(
    seen: &mut tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
    kind: &str,
    name: &str,
) {
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some((seen_kind, seen_name)) = seen.recv().await {
            if seen_kind == kind && seen_name == name {
                return;
            }
        }
        panic!("the watcher stopped before reporting {kind} {name}");
    })
    .await
    .unwrap_or_else(|_| panic!("watcher never reported {kind} {name}"));
}

#[tokio::test]
async fn watcher_survives_dropped_watches_and_relists_after_gone() {
    let cluster = TestCluster::start().await;
    let client = cluster.client().await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client, "default");
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
    let stream = watcher::watcher(config_maps.clone(), watcher::Config::default());
    let follower = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        // Errors (the 410) are reported as items; the watcher recovers by itself.
        while let Some(event) = stream.next().await {
            let Ok(event) = event else { continue };
            let (kind, object) = match event {
                Event::Apply(object) => ("apply", object),
                Event::InitApply(object) => ("init", object),
                Event::Delete(object) => ("delete", object),
                Event::Init | Event::InitDone => continue,
            };
            let _ = seen_tx.send((kind.to_owned(), object.metadata.name.unwrap_or_default()));
        }
    });

    config_maps
        .create(&PostParams::default(), &config_map("first", json!({})))
        .await
        .unwrap();
    wait_for(&mut seen, "apply", "first").await;

    cluster.cluster.drop_watches();
    config_maps
        .create(&PostParams::default(), &config_map("second", json!({})))
        .await
        .unwrap();
    wait_for(&mut seen, "apply", "second").await;

    // A change the watcher does not follow moves history on; compacting then leaves the watcher's
    // last resourceVersion behind, so its next watch gets 410 Gone and it must re-list.
    let lists_before = cluster.cluster.request_counts().count("list", "configmaps");
    cluster
        .cluster
        .store()
        .create(
            &kubesim::store::SECRETS,
            json!({"metadata": {"name": "unrelated", "namespace": "default"}}),
        )
        .unwrap();
    cluster.cluster.compact();
    cluster.cluster.drop_watches();
    wait_for(&mut seen, "init", "second").await;
    let lists_after = cluster.cluster.request_counts().count("list", "configmaps");
    assert!(
        lists_after > lists_before,
        "re-listed after 410 ({lists_before} -> {lists_after})"
    );

    config_maps
        .delete("first", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(&mut seen, "delete", "first").await;
    follower.abort();
    cluster.cluster.shutdown().await;
}

#[tokio::test]
async fn watch_streams_changes_of_a_single_object() {
    let cluster = TestCluster::start().await;
    let config_maps: Api<ConfigMap> = Api::namespaced(cluster.client().await, "default");
    let created = config_maps
        .create(&PostParams::default(), &config_map("one", json!({})))
        .await
        .unwrap();
    config_maps
        .create(&PostParams::default(), &config_map("other", json!({})))
        .await
        .unwrap();
    let params = kube::api::WatchParams::default().fields("metadata.name=one");
    let version = created.metadata.resource_version.unwrap();
    let mut events = config_maps.watch(&params, &version).await.unwrap().boxed();
    config_maps
        .patch(
            "other",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "x"}})),
        )
        .await
        .unwrap();
    config_maps
        .patch(
            "one",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "y"}})),
        )
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event arrives")
        .unwrap()
        .unwrap();
    match event {
        kube::api::WatchEvent::Modified(object) => {
            assert_eq!(object.metadata.name.as_deref(), Some("one"));
            assert_eq!(object.data.unwrap()["k"], "y");
        }
        other => panic!("expected MODIFIED of one, got {other:?}"),
    }
    cluster.cluster.shutdown().await;
}
