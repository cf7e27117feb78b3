//! Which resources the server knows: the built-in table and the custom resources defined by CRDs.

use serde_json::Value;

use crate::store::{self, CRDS, ResourceType, Store};

/// What discovery says about a resource besides its type.
#[derive(Clone, Debug)]
pub struct ResourceInfo {
    pub rt: ResourceType,
    pub singular: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub subresources: Vec<&'static str>,
    /// Built-in kinds accept strategic merge patch; custom resources do not.
    pub builtin: bool,
}

impl ResourceInfo {
    pub fn has_subresource(&self, subresource: &str) -> bool {
        self.subresources.contains(&subresource)
    }
}

fn builtin_info(rt: ResourceType) -> ResourceInfo {
    let (short_names, all_category, subresources): (&[&str], bool, &[&'static str]) = match rt {
        store::NAMESPACES => (&["ns"], false, &["status"]),
        store::NODES => (&["no"], false, &["status"]),
        store::PODS => (&["po"], true, &["status", "log"]),
        store::SERVICES => (&["svc"], true, &["status"]),
        store::ENDPOINTS => (&["ep"], false, &[]),
        store::CONFIGMAPS => (&["cm"], false, &[]),
        store::SERVICE_ACCOUNTS => (&["sa"], false, &[]),
        store::EVENTS | store::EVENTS_K8S_IO => (&["ev"], false, &[]),
        store::PVCS => (&["pvc"], false, &["status"]),
        store::DEPLOYMENTS => (&["deploy"], true, &["status", "scale"]),
        store::REPLICASETS => (&["rs"], true, &["status", "scale"]),
        store::STATEFULSETS => (&["sts"], true, &["status", "scale"]),
        store::DAEMONSETS => (&["ds"], true, &["status"]),
        store::JOBS => (&[], true, &["status"]),
        store::POD_DISRUPTION_BUDGETS => (&["pdb"], false, &["status"]),
        store::INGRESSES => (&["ing"], false, &["status"]),
        store::NETWORK_POLICIES => (&["netpol"], false, &[]),
        store::HORIZONTAL_POD_AUTOSCALERS => (&["hpa"], true, &["status"]),
        store::CRDS => (&["crd", "crds"], false, &["status"]),
        _ => (&[], false, &[]),
    };
    ResourceInfo {
        rt,
        singular: rt.kind.to_lowercase(),
        short_names: short_names.iter().map(|s| (*s).to_owned()).collect(),
        categories: if all_category {
            vec!["all".into()]
        } else {
            Vec::new()
        },
        subresources: subresources.to_vec(),
        builtin: true,
    }
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The served versions of one CRD.
fn custom_infos(crd: &Value) -> Vec<ResourceInfo> {
    let text = |pointer: &str| {
        crd.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let (group, plural, kind) = (
        text("/spec/group"),
        text("/spec/names/plural"),
        text("/spec/names/kind"),
    );
    if group.is_empty() || plural.is_empty() || kind.is_empty() {
        return Vec::new();
    }
    let namespaced = text("/spec/scope") != "Cluster";
    let singular = match text("/spec/names/singular") {
        "" => kind.to_lowercase(),
        singular => singular.to_owned(),
    };
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|version| {
            version
                .get("served")
                .and_then(Value::as_bool)
                .unwrap_or(true)
        })
        .filter_map(|version| {
            let name = version.get("name").and_then(Value::as_str)?;
            let mut subresources = Vec::new();
            if version.pointer("/subresources/status").is_some() {
                subresources.push("status");
            }
            if version.pointer("/subresources/scale").is_some() {
                subresources.push("scale");
            }
            Some(ResourceInfo {
                rt: ResourceType::custom(group, name, plural, kind, namespaced),
                singular: singular.clone(),
                short_names: strings(crd.pointer("/spec/names/shortNames")),
                categories: strings(crd.pointer("/spec/names/categories")),
                subresources,
                builtin: false,
            })
        })
        .collect()
}

/// Every resource the server serves right now (built-in, then custom).
pub fn all(store: &Store) -> Vec<ResourceInfo> {
    let mut infos: Vec<ResourceInfo> = store::BUILTIN.iter().copied().map(builtin_info).collect();
    infos.extend(
        store
            .list(&CRDS, None)
            .0
            .iter()
            .flat_map(|crd| custom_infos(crd)),
    );
    infos
}

pub fn resolve(store: &Store, group: &str, version: &str, resource: &str) -> Option<ResourceInfo> {
    if let Some(rt) = store::BUILTIN
        .iter()
        .find(|rt| rt.group == group && rt.version == version && rt.resource == resource)
    {
        return Some(builtin_info(*rt));
    }
    store
        .list(&CRDS, None)
        .0
        .iter()
        .flat_map(|crd| custom_infos(crd))
        .find(|info| {
            info.rt.group == group && info.rt.version == version && info.rt.resource == resource
        })
}

/// The group versions served, core first, in a stable order.
pub fn group_versions(store: &Store) -> Vec<(String, String)> {
    let mut versions: Vec<(String, String)> = Vec::new();
    for info in all(store) {
        let gv = (info.rt.group.to_owned(), info.rt.version.to_owned());
        if !versions.contains(&gv) {
            versions.push(gv);
        }
    }
    versions
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn crds_define_served_custom_resources() {
        let store = Store::new();
        store
            .create(
                &CRDS,
                json!({"metadata": {"name": "widgets.example.com"}, "spec": {
                    "group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                    "versions": [
                        {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}},
                        {"name": "v0", "served": false, "storage": false}
                    ]
                }}),
            )
            .unwrap();
        let widget = resolve(&store, "example.com", "v1", "widgets").unwrap();
        assert!(widget.rt.namespaced);
        assert_eq!(widget.short_names, ["wd"]);
        assert!(widget.has_subresource("status"));
        assert!(resolve(&store, "example.com", "v0", "widgets").is_none());
        assert!(group_versions(&store).contains(&("example.com".into(), "v1".into())));
        assert_eq!(
            resolve(&store, "apps", "v1", "deployments")
                .unwrap()
                .short_names,
            ["deploy"]
        );
    }
}
