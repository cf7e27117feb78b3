//! ControllerRevisions of StatefulSets and DaemonSets (pkg/controller/history): one per distinct pod
//! template, named `<owner>-<hash>`, with a monotonic `revision` number.

use serde_json::{Value, json};

use crate::control_loop::Context;
use crate::pod_util::{self, controller_reference, owned_by};
use crate::store::{CONTROLLER_REVISIONS, ResourceType, StoreError};

const HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// The revision matching the owner's current template.
pub(crate) struct UpdateRevision {
    pub name: String,
    pub hash: String,
}

fn revision_number(revision: &Value) -> i64 {
    revision["revision"].as_i64().unwrap_or(0)
}

fn data_of(template: &Value) -> Value {
    let mut template = template.clone();
    template["$patch"] = json!("replace");
    json!({"spec": {"template": template}})
}

/// The pod template a revision records.
pub(crate) fn template_of(revision: &Value) -> Value {
    let mut template = revision["data"]["spec"]["template"].clone();
    if let Some(fields) = template.as_object_mut() {
        fields.remove("$patch");
    }
    template
}

/// The owner's revisions, oldest first.
pub(crate) fn list(context: &Context, owner: &Value) -> Vec<Value> {
    let (revisions, _) = context
        .store
        .list(&CONTROLLER_REVISIONS, Some(pod_util::namespace(owner)));
    let mut owned: Vec<Value> = owned_by(&revisions, owner).into_iter().cloned().collect();
    owned.sort_by_key(revision_number);
    owned
}

/// Finds or creates the revision of `template`; an older equal revision (a rollback) is re-numbered
/// as the newest.
pub(crate) fn ensure_update_revision(
    context: &Context,
    owner_resource: &ResourceType,
    owner: &Value,
    template: &Value,
    revisions: &[Value],
) -> Result<UpdateRevision, StoreError> {
    let namespace = pod_util::namespace(owner);
    let collision_count = pod_util::int_at(owner, "/status/collisionCount", 0);
    let hash = pod_util::template_hash(template, collision_count);
    let data = data_of(template);
    let newest = revisions.iter().map(revision_number).max().unwrap_or(0);
    if let Some(equal) = revisions.iter().find(|revision| revision["data"] == data) {
        if revision_number(equal) < newest {
            context.store.modify(
                &CONTROLLER_REVISIONS,
                Some(namespace),
                pod_util::name(equal),
                |object| {
                    object["revision"] = json!(newest + 1);
                },
            )?;
        }
        let hash = equal["metadata"]["labels"][HASH_LABEL]
            .as_str()
            .map(str::to_owned)
            .unwrap_or(hash);
        return Ok(UpdateRevision {
            name: pod_util::name(equal).to_owned(),
            hash,
        });
    }
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels[HASH_LABEL] = json!(hash);
    let name = format!("{}-{hash}", pod_util::name(owner));
    let revision = json!({
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [controller_reference(owner_resource, owner)],
        },
        "data": data,
        "revision": newest + 1,
    });
    context.store.create(&CONTROLLER_REVISIONS, revision)?;
    Ok(UpdateRevision { name, hash })
}

/// Deletes the oldest revisions no pod and no status field uses, beyond `revisionHistoryLimit`.
pub(crate) fn truncate_history(
    context: &Context,
    owner: &Value,
    revisions: &[Value],
    live: &[&str],
) {
    let limit = pod_util::int_at(owner, "/spec/revisionHistoryLimit", 10).max(0) as usize;
    let dead: Vec<&Value> = revisions
        .iter()
        .filter(|revision| !live.contains(&pod_util::name(revision)))
        .collect();
    for revision in dead.iter().take(dead.len().saturating_sub(limit)) {
        let result = context.store.delete(
            &CONTROLLER_REVISIONS,
            Some(pod_util::namespace(revision)),
            pod_util::name(revision),
            Default::default(),
        );
        if let Err(error) = result {
            tracing::debug!(%error, "controller revision not deleted");
        }
    }
}
