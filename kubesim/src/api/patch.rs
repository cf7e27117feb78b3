//! The patch types clients send: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge
//! patch for built-in kinds (k8s.io/apimachinery/pkg/util/strategicpatch) and server-side apply.

use serde_json::{Map, Value};

use crate::api::error::ApiError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    StrategicMerge,
    Apply,
}

impl PatchType {
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        match media_type {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

fn invalid_patch(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest(message.into())
}

/// RFC 6902 JSON patch.
pub fn json_patch(target: &mut Value, operations: &Value) -> Result<(), ApiError> {
    let operations = operations
        .as_array()
        .ok_or_else(|| invalid_patch("json patch must be an array of operations"))?;
    for operation in operations {
        let op = operation
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let path = operation
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid_patch("json patch operation without path"))?;
        let value = || {
            operation
                .get("value")
                .cloned()
                .ok_or_else(|| invalid_patch(format!("json patch {op} at {path} without value")))
        };
        let from = || {
            operation
                .get("from")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid_patch(format!("json patch {op} without from")))
        };
        match op {
            "add" => add(target, path, value()?)?,
            "remove" => {
                remove(target, path)?;
            }
            "replace" => {
                remove(target, path)?;
                add(target, path, value()?)?;
            }
            "move" => {
                let moved = remove(target, from()?)?;
                add(target, path, moved)?;
            }
            "copy" => {
                let copied = target.pointer(from()?).cloned().ok_or_else(|| {
                    invalid_patch(format!(
                        "json patch copy from missing {}",
                        from().unwrap_or_default()
                    ))
                })?;
                add(target, path, copied)?;
            }
            "test" => {
                if target.pointer(path) != Some(&value()?) {
                    return Err(ApiError::BadRequest(format!(
                        "json patch test failed at {path}"
                    )));
                }
            }
            other => {
                return Err(invalid_patch(format!(
                    "unknown json patch operation {other:?}"
                )));
            }
        }
    }
    Ok(())
}

fn split_pointer(path: &str) -> Result<(String, String), ApiError> {
    let (parent, last) = path
        .rsplit_once('/')
        .ok_or_else(|| invalid_patch(format!("invalid json pointer {path:?}")))?;
    let last = last.replace("~1", "/").replace("~0", "~");
    Ok((parent.to_owned(), last))
}

fn add(target: &mut Value, path: &str, value: Value) -> Result<(), ApiError> {
    if path.is_empty() {
        *target = value;
        return Ok(());
    }
    let (parent, key) = split_pointer(path)?;
    let missing = || invalid_patch(format!("json patch: missing parent of {path}"));
    match target.pointer_mut(&parent).ok_or_else(missing)? {
        Value::Object(map) => {
            map.insert(key, value);
        }
        Value::Array(items) => {
            let index = if key == "-" {
                items.len()
            } else {
                key.parse::<usize>()
                    .ok()
                    .filter(|index| *index <= items.len())
                    .ok_or_else(|| invalid_patch(format!("json patch: bad index in {path}")))?
            };
            items.insert(index, value);
        }
        _ => return Err(missing()),
    }
    Ok(())
}

fn remove(target: &mut Value, path: &str) -> Result<Value, ApiError> {
    let (parent, key) = split_pointer(path)?;
    let missing = || invalid_patch(format!("json patch: nothing at {path}"));
    match target.pointer_mut(&parent).ok_or_else(missing)? {
        Value::Object(map) => map.remove(&key).ok_or_else(missing),
        Value::Array(items) => {
            let index = key
                .parse::<usize>()
                .ok()
                .filter(|index| *index < items.len())
                .ok_or_else(missing)?;
            Ok(items.remove(index))
        }
        _ => Err(missing()),
    }
}

/// RFC 7386 JSON merge patch: objects merge, `null` deletes, everything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target = target.as_object_mut().expect("made an object above");
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// How a list field of a built-in kind merges (the `patchStrategy`/`patchMergeKey` struct tags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ListStrategy {
    /// Elements are objects merged by this key.
    MergeByKey(&'static str),
    /// A set of primitives (e.g. finalizers).
    MergePrimitives,
    Replace,
}

/// The merge strategy of a list field, known by field name and the name of the field that holds it.
fn list_strategy(parent: &str, field: &str) -> ListStrategy {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => ListStrategy::MergeByKey("name"),
        "ports"
            if matches!(
                parent,
                "containers" | "initContainers" | "ephemeralContainers"
            ) =>
        {
            ListStrategy::MergeByKey("containerPort")
        }
        "ports" if parent == "spec" => ListStrategy::MergeByKey("port"),
        "volumeMounts" => ListStrategy::MergeByKey("mountPath"),
        "volumeDevices" => ListStrategy::MergeByKey("devicePath"),
        "hostAliases" => ListStrategy::MergeByKey("ip"),
        "topologySpreadConstraints" => ListStrategy::MergeByKey("topologyKey"),
        "ownerReferences" => ListStrategy::MergeByKey("uid"),
        "conditions" => ListStrategy::MergeByKey("type"),
        "finalizers" => ListStrategy::MergePrimitives,
        _ => ListStrategy::Replace,
    }
}

const PATCH_DIRECTIVE: &str = "$patch";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";
const RETAIN_KEYS: &str = "$retainKeys";

/// Strategic merge patch for built-in kinds.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    merge_map(target, patch, "")
}

fn merge_map(target: &mut Value, patch: &Value, field_name: &str) -> Result<(), ApiError> {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match patch.get(PATCH_DIRECTIVE).and_then(Value::as_str) {
        Some("replace") => {
            *target = Value::Object(without_directives(patch));
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some(other) => return Err(invalid_patch(format!("unknown patch directive {other:?}"))),
        None => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target_map = target.as_object_mut().expect("made an object above");
    if let Some(retained) = patch.get(RETAIN_KEYS).and_then(Value::as_array) {
        target_map.retain(|key, _| retained.iter().any(|kept| kept.as_str() == Some(key)));
    }
    for (key, value) in patch {
        if let Some(list) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            if let (Some(Value::Array(items)), Some(doomed)) =
                (target_map.get_mut(list), value.as_array())
            {
                items.retain(|item| !doomed.contains(item));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        if value.is_null() {
            target_map.remove(key);
            continue;
        }
        let current = target_map.entry(key.clone()).or_insert(Value::Null);
        match value {
            Value::Object(_) => {
                merge_map(current, value, key)?;
                if current.is_null() {
                    target_map.remove(key);
                }
            }
            Value::Array(items) => merge_list(current, items, field_name, key)?,
            _ => *current = value.clone(),
        }
    }
    for (key, order) in patch {
        if let (Some(list), Some(order)) = (key.strip_prefix(SET_ELEMENT_ORDER), order.as_array())
            && let Some(Value::Array(items)) = target_map.get_mut(list)
        {
            reorder(items, order, list_strategy(field_name, list));
        }
    }
    Ok(())
}

fn without_directives(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .filter(|(key, _)| !key.starts_with('$'))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

fn merge_list(
    current: &mut Value,
    patch: &[Value],
    parent: &str,
    field: &str,
) -> Result<(), ApiError> {
    let strategy = list_strategy(parent, field);
    let replace_directive = patch
        .iter()
        .any(|item| item.get(PATCH_DIRECTIVE).and_then(Value::as_str) == Some("replace"));
    if strategy == ListStrategy::Replace || replace_directive || !current.is_array() {
        let items = patch
            .iter()
            .filter(|item| item.get(PATCH_DIRECTIVE).is_none())
            .cloned()
            .collect();
        *current = Value::Array(items);
        return Ok(());
    }
    let items = current.as_array_mut().expect("checked above");
    match strategy {
        ListStrategy::MergePrimitives => {
            for item in patch {
                if !items.contains(item) {
                    items.push(item.clone());
                }
            }
        }
        ListStrategy::MergeByKey(merge_key) => {
            for item in patch {
                let key = item.get(merge_key);
                let position = items
                    .iter()
                    .position(|existing| key.is_some() && existing.get(merge_key) == key);
                let delete = item.get(PATCH_DIRECTIVE).and_then(Value::as_str) == Some("delete");
                match (position, delete) {
                    (Some(index), true) => {
                        items.remove(index);
                    }
                    (None, true) => {}
                    (Some(index), false) => merge_map(&mut items[index], item, field)?,
                    (None, false) => {
                        let mut added = Value::Null;
                        merge_map(&mut added, item, field)?;
                        items.push(added);
                    }
                }
            }
        }
        ListStrategy::Replace => unreachable!("replaced above"),
    }
    Ok(())
}

/// `$setElementOrder`: listed elements in the given order; elements only the server knows keep their
/// relative place after them.
fn reorder(items: &mut Vec<Value>, order: &[Value], strategy: ListStrategy) {
    let rank = |item: &Value| {
        order.iter().position(|ordered| match strategy {
            ListStrategy::MergeByKey(key) => {
                ordered.get(key).is_some() && ordered.get(key) == item.get(key)
            }
            _ => ordered == item,
        })
    };
    let mut ranked: Vec<(usize, Value)> = items
        .drain(..)
        .map(|item| (rank(&item).unwrap_or(usize::MAX), item))
        .collect();
    ranked.sort_by_key(|(rank, _)| *rank);
    items.extend(ranked.into_iter().map(|(_, item)| item));
}

/// The patch that turns the previously applied configuration into `applied` on top of the live object,
/// keeping what other writers (controllers) own: fields the manager applied before but no longer
/// applies are deleted; everything else merges. With one field manager this is what server-side apply
/// produces.
pub fn apply_patch(last_applied: Option<&Value>, applied: &Value, strategic: bool) -> Value {
    let mut patch = applied.clone();
    if let Some(last) = last_applied {
        add_removals(&mut patch, last, "", strategic);
    }
    patch
}

fn add_removals(patch: &mut Value, last: &Value, field_name: &str, strategic: bool) {
    let (Value::Object(patch_map), Value::Object(last_map)) = (patch, last) else {
        return;
    };
    for (key, last_value) in last_map {
        match patch_map.get_mut(key) {
            None => {
                patch_map.insert(key.clone(), Value::Null);
            }
            Some(next @ Value::Object(_)) => add_removals(next, last_value, key, strategic),
            Some(Value::Array(next_items)) if strategic => {
                if let (ListStrategy::MergeByKey(merge_key), Some(last_items)) =
                    (list_strategy(field_name, key), last_value.as_array())
                {
                    let gone: Vec<Value> = last_items
                        .iter()
                        .filter_map(|item| item.get(merge_key))
                        .filter(|value| !next_items.iter().any(|next| next.get(merge_key) == Some(*value)))
                        .map(|value| serde_json::json!({ merge_key: value, PATCH_DIRECTIVE: "delete" }))
                        .collect();
                    for item in next_items.iter_mut() {
                        if let Some(previous) = last_items.iter().find(|previous| {
                            previous.get(merge_key).is_some()
                                && previous.get(merge_key) == item.get(merge_key)
                        }) {
                            add_removals(item, previous, key, strategic);
                        }
                    }
                    next_items.extend(gone);
                }
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "metadata": {"name": "web", "labels": {"app": "web", "old": "x"}},
            "spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "web:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}], "ports": [{"containerPort": 80}]},
                {"name": "sidecar", "image": "proxy:1"}
            ]}}}
        })
    }

    #[test]
    fn json_patch_operations() {
        let mut target = json!({"a": {"b": [1, 2]}, "c": 1});
        json_patch(
            &mut target,
            &json!([
                {"op": "add", "path": "/a/b/-", "value": 3},
                {"op": "replace", "path": "/c", "value": 2},
                {"op": "move", "from": "/c", "path": "/d"},
                {"op": "test", "path": "/d", "value": 2},
                {"op": "remove", "path": "/a/b/0"}
            ]),
        )
        .unwrap();
        assert_eq!(target, json!({"a": {"b": [2, 3]}, "d": 2}));
        assert!(
            json_patch(
                &mut target,
                &json!([{"op": "test", "path": "/d", "value": 9}])
            )
            .is_err()
        );
    }

    #[test]
    fn merge_patch_deletes_with_null_and_replaces_lists() {
        let mut target = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge_patch(&mut target, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
        assert_eq!(target, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
    }

    #[test]
    fn strategic_merge_merges_containers_by_name_and_env_by_name() {
        let mut target = deployment();
        strategic_merge_patch(
            &mut target,
            &json!({
                "metadata": {"labels": {"old": null}},
                "spec": {"template": {"spec": {
                    "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
                    "containers": [{"name": "app", "image": "web:2", "env": [{"name": "B", "$patch": "delete"}, {"name": "C", "value": "3"}]}]
                }}}
            }),
        )
        .unwrap();
        assert_eq!(target["metadata"]["labels"], json!({"app": "web"}));
        let containers = &target["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], "web:2");
        assert_eq!(containers[0]["ports"], json!([{"containerPort": 80}]));
        assert_eq!(
            containers[0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "C", "value": "3"}])
        );
        assert_eq!(containers[1]["name"], "sidecar");
    }

    #[test]
    fn set_element_order_reorders_merged_lists() {
        let mut target = deployment();
        strategic_merge_patch(
            &mut target,
            &json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}]}}}}),
        )
        .unwrap();
        assert_eq!(
            target["spec"]["template"]["spec"]["containers"][0]["name"],
            "sidecar"
        );
    }

    #[test]
    fn apply_removes_what_the_manager_no_longer_applies_and_keeps_other_writers_fields() {
        let last = deployment();
        let mut live = deployment();
        live["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "1"});
        live["status"] = json!({"replicas": 1});
        let mut applied = deployment();
        applied["metadata"]["labels"] = json!({"app": "web"});
        applied["spec"]["template"]["spec"]["containers"] = json!([{"name": "app", "image": "web:2", "env": [{"name": "A", "value": "1"}], "ports": [{"containerPort": 80}]}]);

        let patch = apply_patch(Some(&last), &applied, true);
        strategic_merge_patch(&mut live, &patch).unwrap();
        assert_eq!(live["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(
            live["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
            "1"
        );
        assert_eq!(live["status"]["replicas"], 1);
        let containers = live["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert_eq!(containers.len(), 1);
        assert_eq!(containers[0]["env"], json!([{"name": "A", "value": "1"}]));
    }
}
