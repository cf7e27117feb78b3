//! `/version`, discovery (`/api`, `/apis`, group versions) and the minimal `/openapi/v3` documents.
//!
//! `/api` and `/apis` are asked for with the aggregated-discovery Accept header; answering the plain
//! `APIVersions`/`APIGroupList` as `application/json` makes client-go fall back to per-group-version
//! discovery (helm-requests/README.md).

use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Map, Value, json};

use crate::api::resources::{self, ResourceInfo};
use crate::options::KubeVersion;
use crate::store::Store;

pub fn version(kube_version: KubeVersion) -> Value {
    json!({
        "major": "1",
        "minor": kube_version.minor.to_string(),
        "emulationMajor": "1",
        "emulationMinor": kube_version.minor.to_string(),
        "gitVersion": format!("v1.{}.0", kube_version.minor),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

pub fn groups(store: &Store) -> Value {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for (group, version) in resources::group_versions(store) {
        if group.is_empty() {
            continue;
        }
        match groups.iter_mut().find(|(name, _)| *name == group) {
            Some((_, versions)) => versions.push(version),
            None => groups.push((group, vec![version])),
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|version| json!({"groupVersion": format!("{group}/{version}"), "version": version}))
                .collect();
            json!({"name": group, "versions": versions, "preferredVersion": versions[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// The resources served under one group version, or `None` when there are none.
fn served_resources(store: &Store, group: &str, version: &str) -> Option<Vec<ResourceInfo>> {
    let infos: Vec<ResourceInfo> = resources::all(store)
        .into_iter()
        .filter(|info| info.rt.group == group && info.rt.version == version)
        .collect();
    (!infos.is_empty()).then_some(infos)
}

/// The `APIResourceList` of one group version, or `None` when it is not served.
pub fn resource_list(store: &Store, group: &str, version: &str) -> Option<Value> {
    let infos = served_resources(store, group, version)?;
    let mut entries = Vec::new();
    for info in &infos {
        let mut entry = json!({
            "name": info.rt.resource,
            "singularName": info.singular,
            "namespaced": info.rt.namespaced,
            "kind": info.rt.kind,
            "verbs": VERBS,
        });
        if !info.short_names.is_empty() {
            entry["shortNames"] = json!(info.short_names);
        }
        if !info.categories.is_empty() {
            entry["categories"] = json!(info.categories);
        }
        entries.push(entry);
        for subresource in &info.subresources {
            let (kind, verbs, group_version): (&str, Vec<&str>, Option<(&str, &str)>) =
                match *subresource {
                    "log" => ("Pod", vec!["get"], None),
                    "scale" => (
                        "Scale",
                        vec!["get", "patch", "update"],
                        Some(("autoscaling", "v1")),
                    ),
                    _ => (info.rt.kind, vec!["get", "patch", "update"], None),
                };
            let mut entry = json!({
                "name": format!("{}/{subresource}", info.rt.resource),
                "singularName": "",
                "namespaced": info.rt.namespaced,
                "kind": kind,
                "verbs": verbs,
            });
            if let Some((group, version)) = group_version {
                entry["group"] = group.into();
                entry["version"] = version.into();
            }
            entries.push(entry);
        }
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": entries,
    }))
}

/// `api/v1` or `apis/apps/v1`: how OpenAPI v3 names a group version.
fn openapi_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn openapi_hash(document: &Value) -> String {
    let mut hasher = DefaultHasher::new();
    document.to_string().hash(&mut hasher);
    format!("{:016X}", hasher.finish())
}

pub fn openapi_root(store: &Store) -> Value {
    let paths: Map<String, Value> = resources::group_versions(store)
        .into_iter()
        .filter_map(|(group, version)| {
            let document = openapi_group_version(store, &group, &version)?;
            let path = openapi_path(&group, &version);
            let url = format!("/openapi/v3/{path}?hash={}", openapi_hash(&document));
            Some((path, json!({"serverRelativeURL": url})))
        })
        .collect();
    json!({"paths": paths})
}

/// A document with one path per resource whose operations carry `x-kubernetes-group-version-kind` and
/// the `fieldValidation` parameter: enough for helm and kubectl to rely on server-side field validation.
pub fn openapi_group_version(store: &Store, group: &str, version: &str) -> Option<Value> {
    let infos = served_resources(store, group, version)?;
    let mut paths = Map::new();
    for info in &infos {
        let gvk = json!({"group": group, "version": version, "kind": info.rt.kind});
        let prefix = format!("/{}", openapi_path(group, version));
        let collection = if info.rt.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", info.rt.resource)
        } else {
            format!("{prefix}/{}", info.rt.resource)
        };
        let operation = |action: &str, validated: bool| {
            let mut parameters =
                vec![json!({"name": "dryRun", "in": "query", "schema": {"type": "string"}})];
            if validated {
                parameters.push(
                    json!({"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}),
                );
                parameters.push(
                    json!({"name": "fieldManager", "in": "query", "schema": {"type": "string"}}),
                );
            }
            json!({
                "operationId": format!("{action}{}", info.rt.kind),
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": parameters,
                "responses": {"200": {"description": "OK"}},
            })
        };
        paths.insert(
            collection.clone(),
            json!({"get": operation("list", false), "post": operation("post", true)}),
        );
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({
                "get": operation("get", false),
                "put": operation("put", true),
                "patch": operation("patch", true),
                "delete": operation("delete", false),
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "kubesim"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_version_resources_include_subresources() {
        let store = Store::new();
        let apps = resource_list(&store, "apps", "v1").unwrap();
        let names: Vec<&str> = apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"deployments"));
        assert!(names.contains(&"deployments/status"));
        assert!(names.contains(&"deployments/scale"));
        assert!(resource_list(&store, "apps", "v2").is_none());
        let groups = groups(&store);
        assert!(
            groups["groups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["name"] == "batch")
        );
    }

    #[test]
    fn openapi_patch_operations_carry_gvk_and_field_validation() {
        let store = Store::new();
        let root = openapi_root(&store);
        let url = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="));
        let document = openapi_group_version(&store, "apps", "v1").unwrap();
        let patch =
            &document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
    }
}
