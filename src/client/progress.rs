//! Where a followed deploy stands, folded from its events: the phase, one entry per tracked
//! resource (readiness, failures, the latest message) and the `report` events kept for the failure
//! report. Both views draw from it.

use serde::Deserialize;

use crate::domain::event::{Event, EventType, ResourceRef};

/// A resource's state, in the words of the `resource.status` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceState {
    Pending,
    Progressing,
    Ready,
    Failed,
}

impl ResourceState {
    pub fn is_settled(self) -> bool {
        matches!(self, ResourceState::Ready | ResourceState::Failed)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceProgress {
    pub resource: ResourceRef,
    /// The chart hook events it runs for (`pre-upgrade`), when it is a hook.
    pub hook: Option<String>,
    pub state: ResourceState,
    /// e.g. `2/3`.
    pub ready: Option<String>,
    /// e.g. `1/3 allowed`.
    pub failures: Option<String>,
    pub message: String,
}

impl ResourceProgress {
    /// `Deployment/web`, `Job/migrate (pre-upgrade hook)`.
    pub fn label(&self) -> String {
        let label = format!("{}/{}", self.resource.kind, self.resource.name);
        match &self.hook {
            Some(hook) => format!("{label} ({hook} hook)"),
            None => label,
        }
    }
}

/// The `data` of a `resource.status` event that the views show.
#[derive(Debug, Deserialize)]
struct StatusData {
    state: ResourceState,
    #[serde(default)]
    ready: Option<String>,
    #[serde(default)]
    failures: Option<String>,
}

#[derive(Debug, Default)]
pub struct DeployProgress {
    /// `rendering`, `upgrading`, `tracking`, `rolling_back` (from `phase` events).
    pub phase: Option<String>,
    /// In the order tracking added them.
    pub resources: Vec<ResourceProgress>,
    /// The `report` events (one per tracking: the revision's, a failed hook's, a rollback's).
    pub reports: Vec<Event>,
    /// The deploy's terminal event, once seen.
    pub terminal: Option<EventType>,
}

impl DeployProgress {
    /// Takes the next event; returns the index of the resource entry it changed, if any.
    pub fn apply(&mut self, event: &Event) -> Option<usize> {
        match event.kind {
            EventType::Phase => {
                self.phase = event.data["phase"].as_str().map(str::to_owned);
                None
            }
            EventType::Report => {
                self.reports.push(event.clone());
                None
            }
            kind if kind.is_terminal() => {
                self.terminal = Some(kind);
                None
            }
            EventType::ResourceAdded => {
                let resource = event.resource.as_ref()?;
                let index = self.entry(resource, event);
                // A rollback tracks the resources again from the start.
                let entry = &mut self.resources[index];
                entry.state = ResourceState::Pending;
                entry.message = "waiting for it to appear".to_owned();
                Some(index)
            }
            EventType::ResourceStatus => {
                let resource = event.resource.as_ref()?;
                let status: StatusData = serde_json::from_value(event.data.clone()).ok()?;
                let index = self.entry(resource, event);
                let entry = &mut self.resources[index];
                entry.state = status.state;
                entry.ready = status.ready;
                entry.failures = status.failures;
                entry.message.clone_from(&event.message);
                Some(index)
            }
            EventType::ResourceReady | EventType::ResourceFailed => {
                let resource = event.resource.as_ref()?;
                let index = self.entry(resource, event);
                let entry = &mut self.resources[index];
                entry.state = if event.kind == EventType::ResourceReady {
                    ResourceState::Ready
                } else {
                    ResourceState::Failed
                };
                entry.message.clone_from(&event.message);
                Some(index)
            }
            _ => None,
        }
    }

    /// The index of `resource`'s entry, made when it is new.
    fn entry(&mut self, resource: &ResourceRef, event: &Event) -> usize {
        if let Some(index) = self
            .resources
            .iter()
            .position(|entry| &entry.resource == resource)
        {
            return index;
        }
        self.resources.push(ResourceProgress {
            resource: resource.clone(),
            hook: event.data["hook"].as_str().map(str::to_owned),
            state: ResourceState::Pending,
            ready: None,
            failures: None,
            message: String::new(),
        });
        self.resources.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::{Value, json};
    use uuid::Uuid;

    use super::*;
    use crate::domain::event::Level;

    fn event(kind: EventType, name: Option<&str>, message: &str, data: Value) -> Event {
        Event {
            deploy_id: Uuid::nil(),
            seq: 1,
            kind,
            at: Utc::now(),
            level: Level::Info,
            resource: name.map(|name| ResourceRef {
                kind: "Deployment".into(),
                namespace: "default".into(),
                name: name.into(),
            }),
            message: message.into(),
            data,
        }
    }

    #[test]
    fn resources_keep_their_place_and_take_each_change() {
        let mut progress = DeployProgress::default();
        progress.apply(&event(
            EventType::Phase,
            None,
            "tracking",
            json!({"phase": "tracking"}),
        ));
        assert_eq!(progress.phase.as_deref(), Some("tracking"));
        assert_eq!(
            progress.apply(&event(
                EventType::ResourceAdded,
                Some("web"),
                "tracking",
                json!({})
            )),
            Some(0)
        );
        progress.apply(&event(
            EventType::ResourceAdded,
            Some("api"),
            "tracking",
            json!({}),
        ));
        let changed = progress.apply(&event(
            EventType::ResourceStatus,
            Some("web"),
            "Waiting for rollout",
            json!({"state": "progressing", "message": "Waiting for rollout", "ready": "1/3", "failures": "0/3 allowed", "incidents": 0}),
        ));
        assert_eq!(changed, Some(0));
        let web = &progress.resources[0];
        assert_eq!(
            (web.state, web.ready.as_deref(), web.label().as_str()),
            (ResourceState::Progressing, Some("1/3"), "Deployment/web")
        );
        progress.apply(&event(
            EventType::ResourceReady,
            Some("web"),
            "rolled out",
            json!({}),
        ));
        assert_eq!(progress.resources[0].state, ResourceState::Ready);
        assert_eq!(progress.resources[1].state, ResourceState::Pending);
        progress.apply(&event(EventType::Report, None, "all ready", json!({})));
        progress.apply(&event(
            EventType::DeploySucceeded,
            None,
            "succeeded",
            json!({}),
        ));
        assert_eq!(progress.reports.len(), 1);
        assert_eq!(progress.terminal, Some(EventType::DeploySucceeded));
    }

    #[test]
    fn a_hook_is_labelled_with_its_events() {
        let mut progress = DeployProgress::default();
        progress.apply(&event(
            EventType::ResourceAdded,
            Some("migrate"),
            "tracking",
            json!({"hook": "pre-upgrade"}),
        ));
        assert_eq!(
            progress.resources[0].label(),
            "Deployment/migrate (pre-upgrade hook)"
        );
    }
}
