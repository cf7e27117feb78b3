//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`): the 4-byte `k8s\0` magic and
//! a `runtime.Unknown` envelope whose `raw` holds the message. client-go sends helm's release Secrets and
//! their DeleteOptions this way; a 415 does not make it fall back to JSON, so they must be decoded.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{Map, Value, json};

use crate::api::error::ApiError;

const MAGIC: &[u8] = b"k8s\0";

/// Decodes a protobuf body into the JSON wire form of the object it carries.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let unsupported = |why: String| ApiError::UnsupportedMediaType(format!("protobuf body: {why}"));
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| unsupported("missing the k8s\\0 prefix".into()))?;
    let unknown = Unknown::decode(envelope).map_err(|error| unsupported(error.to_string()))?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let decode_error = |error: prost::DecodeError| unsupported(format!("{kind}: {error}"));
    let mut object = match kind.as_str() {
        "Secret" => secret(core::Secret::decode(raw.as_slice()).map_err(decode_error)?),
        "ConfigMap" => config_map(core::ConfigMap::decode(raw.as_slice()).map_err(decode_error)?),
        "DeleteOptions" => {
            delete_options(meta::DeleteOptions::decode(raw.as_slice()).map_err(decode_error)?)
        }
        other => {
            return Err(unsupported(format!(
                "kind {other:?} is only accepted as JSON"
            )));
        }
    };
    object["kind"] = kind.into();
    object["apiVersion"] = api_version.into();
    Ok(object)
}

/// Go writes every non-pointer field, so empty strings and zero values arrive set: they mean "absent".
fn non_empty(text: Option<String>) -> Option<Value> {
    text.filter(|text| !text.is_empty()).map(Value::from)
}

fn string_map(map: BTreeMap<String, String>) -> Option<Value> {
    (!map.is_empty()).then(|| {
        map.into_iter()
            .map(|(k, v)| (k, Value::from(v)))
            .collect::<Map<_, _>>()
            .into()
    })
}

fn object_meta(metadata: meta::ObjectMeta) -> Value {
    let mut out = Map::new();
    let mut put = |field: &str, value: Option<Value>| {
        if let Some(value) = value {
            out.insert(field.to_owned(), value);
        }
    };
    put("name", non_empty(metadata.name));
    put("generateName", non_empty(metadata.generate_name));
    put("namespace", non_empty(metadata.namespace));
    put("uid", non_empty(metadata.uid));
    put("resourceVersion", non_empty(metadata.resource_version));
    put("labels", string_map(metadata.labels));
    put("annotations", string_map(metadata.annotations));
    put(
        "finalizers",
        (!metadata.finalizers.is_empty()).then(|| metadata.finalizers.into()),
    );
    let owner_references: Vec<Value> = metadata
        .owner_references
        .into_iter()
        .map(|owner| {
            json!({
                "apiVersion": owner.api_version.unwrap_or_default(),
                "kind": owner.kind.unwrap_or_default(),
                "name": owner.name.unwrap_or_default(),
                "uid": owner.uid.unwrap_or_default(),
                "controller": owner.controller.unwrap_or(false),
                "blockOwnerDeletion": owner.block_owner_deletion.unwrap_or(false),
            })
        })
        .collect();
    put(
        "ownerReferences",
        (!owner_references.is_empty()).then(|| owner_references.into()),
    );
    Value::Object(out)
}

fn secret(secret: core::Secret) -> Value {
    let mut object = json!({"metadata": object_meta(secret.metadata.unwrap_or_default())});
    if !secret.data.is_empty() {
        let data: Map<String, Value> = secret
            .data
            .into_iter()
            .map(|(key, bytes)| (key, BASE64.encode(bytes).into()))
            .collect();
        object["data"] = data.into();
    }
    if let Some(string_data) = string_map(secret.string_data) {
        object["stringData"] = string_data;
    }
    if let Some(kind) = non_empty(secret.r#type) {
        object["type"] = kind;
    }
    if let Some(immutable) = secret.immutable {
        object["immutable"] = immutable.into();
    }
    object
}

fn config_map(config_map: core::ConfigMap) -> Value {
    let mut object = json!({"metadata": object_meta(config_map.metadata.unwrap_or_default())});
    if let Some(data) = string_map(config_map.data) {
        object["data"] = data;
    }
    if !config_map.binary_data.is_empty() {
        let binary: Map<String, Value> = config_map
            .binary_data
            .into_iter()
            .map(|(key, bytes)| (key, BASE64.encode(bytes).into()))
            .collect();
        object["binaryData"] = binary.into();
    }
    if let Some(immutable) = config_map.immutable {
        object["immutable"] = immutable.into();
    }
    object
}

fn delete_options(options: meta::DeleteOptions) -> Value {
    let mut object = json!({});
    if let Some(grace) = options.grace_period_seconds {
        object["gracePeriodSeconds"] = grace.into();
    }
    if let Some(policy) = non_empty(options.propagation_policy) {
        object["propagationPolicy"] = policy;
    }
    if let Some(orphan) = options.orphan_dependents {
        object["orphanDependents"] = orphan.into();
    }
    if let Some(preconditions) = options.preconditions {
        let mut out = json!({});
        if let Some(uid) = non_empty(preconditions.uid) {
            out["uid"] = uid;
        }
        if let Some(rv) = non_empty(preconditions.resource_version) {
            out["resourceVersion"] = rv;
        }
        object["preconditions"] = out;
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_helms_release_secret() {
        let secret = decode(include_bytes!("testdata/helm-release-secret-post.bin")).unwrap();
        assert_eq!(secret["kind"], "Secret");
        assert_eq!(secret["apiVersion"], "v1");
        assert_eq!(secret["type"], "helm.sh/release.v1");
        assert_eq!(secret["metadata"]["name"], "sh.helm.release.v1.demo.v1");
        assert_eq!(secret["metadata"]["labels"]["owner"], "helm");
        assert!(
            secret["metadata"].get("namespace").is_none(),
            "empty strings become absent"
        );
        assert!(secret["metadata"].get("creationTimestamp").is_none());
        let release = BASE64
            .decode(secret["data"]["release"].as_str().unwrap())
            .unwrap();
        // helm's value is itself base64 text of gzip: "H4sI" is the base64 of the gzip magic.
        assert!(release.starts_with(b"H4sI"));
    }

    #[test]
    fn decodes_helms_empty_delete_options_and_rejects_garbage() {
        let options = decode(include_bytes!("testdata/helm-release-secret-delete.bin")).unwrap();
        assert_eq!(options["kind"], "DeleteOptions");
        assert!(options.get("propagationPolicy").is_none());
        assert!(decode(b"{}").is_err());
    }
}
