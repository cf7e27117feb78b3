//! `RealPodControl` (pkg/controller/controller_utils.go): pod creations and deletions on behalf of a
//! ReplicaSet, DaemonSet or Job, with the events they share; and the status write every controller does.

use serde_json::Value;

use crate::control_loop::Context;
use crate::pod_util;
use crate::recorder::{EventSource, EventType, InvolvedObject};
use crate::store::{DeleteOptions, PODS, ResourceType};

pub(crate) struct PodControl<'a> {
    pub context: &'a Context,
    pub source: &'a EventSource,
    pub owner_resource: &'a ResourceType,
    pub owner: &'a Value,
}

impl PodControl<'_> {
    fn event(&self, event_type: EventType, reason: &str, message: String) {
        let involved = InvolvedObject::of(self.owner_resource, self.owner);
        self.context
            .recorder
            .record(self.source, involved, event_type, reason, message);
    }

    /// Creates the pod; false (after a `FailedCreate` event) when the API refused it.
    pub fn create(&self, pod: Value) -> bool {
        match self.context.store.create(&PODS, pod) {
            Ok(created) => {
                self.event(
                    EventType::Normal,
                    "SuccessfulCreate",
                    format!("Created pod: {}", pod_util::name(&created)),
                );
                true
            }
            Err(error) => {
                self.event(
                    EventType::Warning,
                    "FailedCreate",
                    format!("Error creating: {error}"),
                );
                false
            }
        }
    }

    /// Deletes this very pod (uid precondition) with its own grace period.
    pub fn delete(&self, pod: &Value) {
        let options = DeleteOptions {
            precondition_uid: Some(pod_util::uid(pod).to_owned()),
            ..Default::default()
        };
        match self.context.store.delete(
            &PODS,
            Some(pod_util::namespace(pod)),
            pod_util::name(pod),
            options,
        ) {
            Ok(_) => self.event(
                EventType::Normal,
                "SuccessfulDelete",
                format!("Deleted pod: {}", pod_util::name(pod)),
            ),
            Err(error) => self.event(
                EventType::Warning,
                "FailedDelete",
                format!("Error deleting: {error}"),
            ),
        }
    }
}

/// Replaces the status of `object` unless it was replaced by a namesake meanwhile; an unchanged status
/// writes nothing.
pub(crate) fn write_status(
    context: &Context,
    resource: &ResourceType,
    object: &Value,
    status: Value,
) {
    let uid = pod_util::uid(object).to_owned();
    let result = context.store.modify(
        resource,
        Some(pod_util::namespace(object)),
        pod_util::name(object),
        |current| {
            if pod_util::uid(current) == uid {
                current["status"] = status;
            }
        },
    );
    if let Err(error) = result {
        tracing::debug!(%error, kind = resource.kind, "status not written");
    }
}
