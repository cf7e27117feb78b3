//! What the kubelet checks before it can create a container: a parseable image reference, and the
//! ConfigMaps and Secrets the pod's volumes and the container's environment refer to.

use serde_json::Value;

use crate::store::{CONFIGMAPS, ResourceType, SECRETS, Store};

/// A simplified docker reference grammar: lower-case path components, an optional registry host
/// (which may carry upper case and a port), an optional tag and digest.
pub(crate) fn valid_image_reference(image: &str) -> bool {
    let name = image.split_once('@').map_or(
        image,
        |(name, digest)| if digest.contains(':') { name } else { "" },
    );
    let (path, tag) = match name.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') => (path, Some(tag)),
        _ => (name, None),
    };
    let tag_ok = tag.is_none_or(|tag| {
        !tag.is_empty()
            && tag.len() <= 128
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            && !tag.starts_with(['.', '-'])
    });
    let mut components: Vec<&str> = path.split('/').collect();
    let has_registry = components.len() > 1
        && (components[0].contains(['.', ':']) || components[0] == "localhost");
    if has_registry {
        components.remove(0);
    }
    let component_ok = |component: &&str| {
        !component.is_empty()
            && component
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            && component.starts_with(|c: char| c.is_ascii_alphanumeric())
            && component.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    !path.is_empty() && tag_ok && components.iter().all(component_ok)
}

fn kind_word(resource: &ResourceType) -> &'static str {
    if *resource == SECRETS {
        "secret"
    } else {
        "configmap"
    }
}

/// The error the kubelet reports for a missing object or key, or None when present (or optional).
fn check_reference(
    store: &Store,
    namespace: &str,
    resource: &ResourceType,
    reference: &Value,
    key: Option<&str>,
) -> Option<String> {
    let name = reference["name"].as_str().unwrap_or_default();
    if reference["optional"] == Value::Bool(true) {
        return None;
    }
    let Some(object) = store.get(resource, Some(namespace), name) else {
        return Some(format!("{} \"{name}\" not found", kind_word(resource)));
    };
    let key = key?;
    let present = ["data", "binaryData", "stringData"]
        .iter()
        .any(|field| object[field].get(key).is_some());
    (!present).then(|| {
        format!(
            "couldn't find key {key} in {} {namespace}/{name}",
            resource.kind
        )
    })
}

/// `CreateContainerConfigError` message for the first missing env source of a container.
pub(crate) fn missing_env_source(
    store: &Store,
    namespace: &str,
    container: &Value,
) -> Option<String> {
    let env = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|variable| {
            let source = &variable["valueFrom"];
            [(&CONFIGMAPS, "configMapKeyRef"), (&SECRETS, "secretKeyRef")]
                .into_iter()
                .find_map(|(resource, field)| {
                    let reference = &source[field];
                    reference
                        .is_object()
                        .then(|| {
                            check_reference(
                                store,
                                namespace,
                                resource,
                                reference,
                                reference["key"].as_str(),
                            )
                        })
                        .flatten()
                })
        });
    env.or_else(|| {
        container["envFrom"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|source| {
                [(&CONFIGMAPS, "configMapRef"), (&SECRETS, "secretRef")]
                    .into_iter()
                    .find_map(|(resource, field)| {
                        let reference = &source[field];
                        reference
                            .is_object()
                            .then(|| check_reference(store, namespace, resource, reference, None))
                            .flatten()
                    })
            })
    })
}

/// `FailedMount` message for the first configMap/secret volume whose source is missing.
pub(crate) fn missing_volume_source(store: &Store, pod: &Value) -> Option<String> {
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    pod["spec"]["volumes"].as_array().into_iter().flatten().find_map(|volume| {
        let volume_name = volume["name"].as_str().unwrap_or_default();
        let (resource, reference) = if volume["configMap"].is_object() {
            (&CONFIGMAPS, volume["configMap"].clone())
        } else if volume["secret"].is_object() {
            let secret = &volume["secret"];
            (&SECRETS, serde_json::json!({"name": secret["secretName"], "optional": secret["optional"]}))
        } else {
            return None;
        };
        check_reference(store, namespace, resource, &reference, None)
            .map(|error| format!("MountVolume.SetUp failed for volume \"{volume_name}\" : {error}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn image_references_follow_the_docker_grammar() {
        for good in [
            "nginx",
            "nginx:1.25",
            "library/nginx:latest",
            "Registry.Example:5000/org/app:v1",
            "localhost:5000/app",
            "app@sha256:abc",
            "registry.example/missing:1",
        ] {
            assert!(valid_image_reference(good), "{good}");
        }
        for bad in [
            "",
            "Nginx:1",
            "nginx:",
            "nginx::1",
            "my app",
            "app/-x",
            "app@nodigest",
            "UPPER/case",
        ] {
            assert!(!valid_image_reference(bad), "{bad}");
        }
    }

    #[test]
    fn missing_config_maps_secrets_and_keys_are_named_like_the_kubelet_does() {
        let store = Store::new();
        store.create(&CONFIGMAPS, json!({"metadata": {"name": "settings", "namespace": "default"}, "data": {"mode": "fast"}})).unwrap();
        let container = |env: Value| json!({"name": "app", "image": "app:1", "env": env});
        let key_ref = |name: &str, key: &str| json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": name, "key": key}}}]);
        assert_eq!(
            missing_env_source(&store, "default", &container(key_ref("settings", "mode"))),
            None
        );
        assert_eq!(
            missing_env_source(&store, "default", &container(key_ref("settings", "size"))).unwrap(),
            "couldn't find key size in ConfigMap default/settings"
        );
        assert_eq!(
            missing_env_source(&store, "default", &container(key_ref("absent", "mode"))).unwrap(),
            "configmap \"absent\" not found"
        );
        let secret_from = json!({"name": "app", "envFrom": [{"secretRef": {"name": "creds"}}]});
        assert_eq!(
            missing_env_source(&store, "default", &secret_from).unwrap(),
            "secret \"creds\" not found"
        );
        let optional =
            json!({"name": "app", "envFrom": [{"secretRef": {"name": "creds", "optional": true}}]});
        assert_eq!(missing_env_source(&store, "default", &optional), None);
        let pod = json!({"metadata": {"namespace": "default"}, "spec": {"volumes": [{"name": "tls", "secret": {"secretName": "web-tls"}}]}});
        assert_eq!(
            missing_volume_source(&store, &pod).unwrap(),
            "MountVolume.SetUp failed for volume \"tls\" : secret \"web-tls\" not found"
        );
    }
}
