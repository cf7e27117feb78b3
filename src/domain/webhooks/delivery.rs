//! What a verified delivery says, read where each provider documents it: its id (the key of
//! idempotency), its event type, the event's own ref, commit and sender, and whether that event
//! can deploy at all (a push that deletes a branch, a failed pipeline or an unpublished release
//! never does).

use http::HeaderMap;
use serde_json::Value;

use super::Provider;
use crate::domain::FieldError;

pub const GITHUB_EVENT: &str = "x-github-event";
pub const GITHUB_DELIVERY: &str = "x-github-delivery";
pub const GITLAB_EVENT: &str = "x-gitlab-event";
/// GitLab 17.4+ keeps it the same across the retries of one event.
pub const GITLAB_IDEMPOTENCY_KEY: &str = "idempotency-key";
pub const GITLAB_EVENT_UUID: &str = "x-gitlab-event-uuid";
pub const STANDARD_ID: &str = "webhook-id";

/// The longest delivery id kept.
pub const MAX_DELIVERY_ID_LEN: usize = 255;
/// Refs, commits and senders are kept and shown up to this length.
const MAX_FACT_LEN: usize = 255;

/// A Git SHA of zeros: the `after` of a push that deletes its ref (GitHub and GitLab alike).
const NULL_SHA: &str = "0000000000000000000000000000000000000000";

/// GitHub's ping, sent when a webhook is created.
pub const PING: &str = "ping";

/// The events each provider deploys from; generic senders name theirs freely.
pub const GITHUB_EVENTS: &[&str] = &[
    "push",
    "release",
    "registry_package",
    "workflow_run",
    "deployment",
];
pub const GITLAB_EVENTS: &[&str] = &["Push Hook", "Tag Push Hook", "Pipeline Hook"];

impl Provider {
    /// The event types this provider's hooks deploy from (`None`: any).
    pub fn events(self) -> Option<&'static [&'static str]> {
        match self {
            Provider::Github => Some(GITHUB_EVENTS),
            Provider::Gitlab => Some(GITLAB_EVENTS),
            Provider::Generic => None,
        }
    }

    /// The header that carries a delivery's id, or the error naming it.
    pub fn delivery_id(self, headers: &HeaderMap) -> Result<String, FieldError> {
        let names: &[&str] = match self {
            Provider::Github => &[GITHUB_DELIVERY],
            Provider::Gitlab => &[GITLAB_IDEMPOTENCY_KEY, GITLAB_EVENT_UUID],
            Provider::Generic => &[STANDARD_ID],
        };
        names
            .iter()
            .find_map(|name| headers.get(*name).and_then(|value| value.to_str().ok()))
            .map(str::trim)
            .filter(|id| !id.is_empty() && id.len() <= MAX_DELIVERY_ID_LEN)
            .map(str::to_owned)
            .ok_or_else(|| {
                FieldError::new(
                    names.join(" or "),
                    format!(
                        "the delivery id: missing, or longer than {MAX_DELIVERY_ID_LEN} characters"
                    ),
                )
            })
    }

    /// The event type: GitHub's and GitLab's event header, a generic payload's `type`.
    pub fn event(self, headers: &HeaderMap, payload: &Value) -> String {
        let event = match self {
            Provider::Github => headers.get(GITHUB_EVENT).and_then(|v| v.to_str().ok()),
            Provider::Gitlab => headers.get(GITLAB_EVENT).and_then(|v| v.to_str().ok()),
            Provider::Generic => payload.get("type").and_then(Value::as_str),
        };
        bounded(event.unwrap_or_default())
    }
}

/// A verified delivery: its id, event type and what the event says about itself.
#[derive(Debug, Clone)]
pub struct Received {
    pub delivery_id: String,
    pub event: String,
    pub facts: EventFacts,
    pub payload: Value,
}

impl Received {
    /// Reads a verified delivery's headers and parsed payload; fails when it has no usable id.
    pub fn read(
        provider: Provider,
        headers: &HeaderMap,
        payload: Value,
    ) -> Result<Self, FieldError> {
        let delivery_id = provider.delivery_id(headers)?;
        let event = provider.event(headers, &payload);
        let facts = EventFacts::read(provider, &event, &payload);
        Ok(Self {
            delivery_id,
            event,
            facts,
            payload,
        })
    }
}

/// What an event says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFacts {
    /// The ref the event is about, as its own field has it (`refs/heads/main` for a push, the tag
    /// name for a release, the branch for a workflow run or a GitLab pipeline).
    pub git_ref: Option<String>,
    pub commit: Option<String>,
    /// Who caused it (a login or user name).
    pub sender: Option<String>,
    /// Why this event never deploys.
    pub never_deploys: Option<String>,
}

impl EventFacts {
    /// Reads the fields `event` documents in `payload`.
    pub fn read(provider: Provider, event: &str, payload: &Value) -> Self {
        let text = |pointer: &str| {
            payload
                .pointer(pointer)
                .and_then(Value::as_str)
                .filter(|text| !text.is_empty())
                .map(bounded)
        };
        match (provider, event) {
            (Provider::Github, "push") => EventFacts {
                git_ref: text("/ref"),
                commit: text("/after"),
                sender: text("/sender/login"),
                never_deploys: (payload["deleted"] == true
                    || text("/after").as_deref() == Some(NULL_SHA))
                .then(|| format!("the push deletes {}", text("/ref").unwrap_or_default())),
            },
            (Provider::Github, "release") => EventFacts {
                git_ref: text("/release/tag_name"),
                commit: None,
                sender: text("/sender/login"),
                never_deploys: action_other_than(payload, "published"),
            },
            (Provider::Github, "registry_package") => EventFacts {
                git_ref: text("/registry_package/package_version/container_metadata/tag/name"),
                commit: None,
                sender: text("/sender/login"),
                never_deploys: action_other_than(payload, "published"),
            },
            (Provider::Github, "workflow_run") => EventFacts {
                git_ref: text("/workflow_run/head_branch"),
                commit: text("/workflow_run/head_sha"),
                sender: text("/sender/login"),
                never_deploys: action_other_than(payload, "completed").or_else(|| {
                    let conclusion = text("/workflow_run/conclusion").unwrap_or_default();
                    (conclusion != "success").then(|| {
                        format!("the workflow run concluded {conclusion:?}, not \"success\"")
                    })
                }),
            },
            (Provider::Github, "deployment") => EventFacts {
                git_ref: text("/deployment/ref"),
                commit: text("/deployment/sha"),
                sender: text("/sender/login"),
                never_deploys: action_other_than(payload, "created"),
            },
            (Provider::Gitlab, "Push Hook" | "Tag Push Hook") => EventFacts {
                git_ref: text("/ref"),
                commit: text("/checkout_sha"),
                sender: text("/user_username"),
                never_deploys: (text("/after").as_deref() == Some(NULL_SHA))
                    .then(|| format!("the push deletes {}", text("/ref").unwrap_or_default())),
            },
            (Provider::Gitlab, "Pipeline Hook") => EventFacts {
                git_ref: text("/object_attributes/ref"),
                commit: text("/object_attributes/sha"),
                sender: text("/user/username"),
                never_deploys: {
                    let status = text("/object_attributes/status").unwrap_or_default();
                    (status != "success")
                        .then(|| format!("the pipeline's status is {status:?}, not \"success\""))
                },
            },
            (Provider::Generic, _) => EventFacts {
                git_ref: text("/ref"),
                commit: text("/commit"),
                sender: None,
                never_deploys: None,
            },
            _ => EventFacts::default(),
        }
    }
}

/// GitHub sends several actions of one event; only `wanted` deploys.
fn action_other_than(payload: &Value, wanted: &str) -> Option<String> {
    let action = payload["action"].as_str().unwrap_or_default();
    (action != wanted).then(|| format!("the action is {action:?}; rollcall deploys on {wanted:?}"))
}

/// `text` cut to what is kept, on a character boundary.
fn bounded(text: &str) -> String {
    let mut end = text.len().min(MAX_FACT_LEN);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use serde_json::json;

    use super::*;

    #[test]
    fn delivery_ids_come_from_each_providers_header() {
        let mut headers = HeaderMap::new();
        headers.insert(GITLAB_EVENT_UUID, HeaderValue::from_static("uuid-1"));
        assert_eq!(Provider::Gitlab.delivery_id(&headers).unwrap(), "uuid-1");
        headers.insert(GITLAB_IDEMPOTENCY_KEY, HeaderValue::from_static("key-1"));
        assert_eq!(Provider::Gitlab.delivery_id(&headers).unwrap(), "key-1");
        let missing = Provider::Github.delivery_id(&headers).unwrap_err();
        assert_eq!(missing.field, "x-github-delivery");
        headers.insert(
            STANDARD_ID,
            HeaderValue::from_str(&"x".repeat(256)).unwrap(),
        );
        assert!(Provider::Generic.delivery_id(&headers).is_err());
    }

    #[test]
    fn events_carry_their_own_ref_and_commit() {
        let push = json!({"ref": "refs/heads/main", "after": "0d1a26e6", "deleted": false, "sender": {"login": "octocat"}});
        assert_eq!(
            EventFacts::read(Provider::Github, "push", &push),
            EventFacts {
                git_ref: Some("refs/heads/main".into()),
                commit: Some("0d1a26e6".into()),
                sender: Some("octocat".into()),
                never_deploys: None,
            }
        );
        let pipeline = json!({"object_attributes": {"ref": "main", "sha": "abc", "status": "success"}, "user": {"username": "dev"}});
        let facts = EventFacts::read(Provider::Gitlab, "Pipeline Hook", &pipeline);
        assert_eq!(
            (
                facts.git_ref.as_deref(),
                facts.commit.as_deref(),
                facts.sender.as_deref()
            ),
            (Some("main"), Some("abc"), Some("dev"))
        );
        let release = json!({"action": "published", "release": {"tag_name": "v1.4.2"}});
        let facts = EventFacts::read(Provider::Github, "release", &release);
        assert_eq!(facts.git_ref.as_deref(), Some("v1.4.2"));
        assert_eq!(facts.never_deploys, None);
        let generic = json!({"type": "image.pushed"});
        assert_eq!(
            EventFacts::read(Provider::Generic, "image.pushed", &generic),
            EventFacts::default()
        );
    }

    #[test]
    fn deletions_failures_and_other_actions_never_deploy() {
        let deleted = json!({"ref": "refs/heads/gone", "after": NULL_SHA, "deleted": true});
        assert_eq!(
            EventFacts::read(Provider::Github, "push", &deleted)
                .never_deploys
                .as_deref(),
            Some("the push deletes refs/heads/gone")
        );
        let gitlab_deleted = json!({"ref": "refs/heads/gone", "after": NULL_SHA});
        assert!(
            EventFacts::read(Provider::Gitlab, "Push Hook", &gitlab_deleted)
                .never_deploys
                .is_some()
        );
        let failed = json!({"object_attributes": {"ref": "main", "status": "failed"}});
        assert!(
            EventFacts::read(Provider::Gitlab, "Pipeline Hook", &failed)
                .never_deploys
                .is_some()
        );
        let running = json!({"action": "in_progress", "workflow_run": {"head_branch": "main"}});
        assert!(
            EventFacts::read(Provider::Github, "workflow_run", &running)
                .never_deploys
                .is_some()
        );
        let failed_run = json!({"action": "completed", "workflow_run": {"conclusion": "failure"}});
        assert!(
            EventFacts::read(Provider::Github, "workflow_run", &failed_run)
                .never_deploys
                .is_some()
        );
        let draft = json!({"action": "created", "release": {"tag_name": "v2"}});
        assert!(
            EventFacts::read(Provider::Github, "release", &draft)
                .never_deploys
                .is_some()
        );
    }
}
