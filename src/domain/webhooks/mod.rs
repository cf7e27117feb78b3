//! Inbound webhooks (DESIGN §6.2): a hook's definition parsed once (provider, secret, target,
//! filters and the whitelist of payload values), the check of a delivery's signature, and what a
//! verified delivery asks for: a deploy exactly like one `POST /v1/deploys` accepts, or nothing,
//! and why.

pub mod delivery;
pub mod mapping;
pub mod signature;

use std::collections::BTreeMap;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use self::delivery::{PING, Received};
use self::mapping::{JsonPointer, ValuesMapping};
use self::signature::HookSecret;
use super::chart::{ChartSources, ChartSpec};
use super::deploy::{DeployRequest, NewDeploy, QueueMode};
use super::names::HookName;
use super::{FieldError, FieldErrors};

/// How many event types or ref globs one hook may list.
const MAX_FILTERS: usize = 32;
const MAX_FILTER_LEN: usize = 255;

/// Who sends a hook's deliveries, which decides how they are signed and where their event type,
/// delivery id, ref and commit are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// `X-Hub-Signature-256`; the event from `X-GitHub-Event`, the id from `X-GitHub-Delivery`.
    Github,
    /// `X-Gitlab-Token`; the event from `X-Gitlab-Event`, the id from `Idempotency-Key` or
    /// `X-Gitlab-Event-UUID`.
    Gitlab,
    /// Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`); the event from
    /// the payload's `type`.
    Generic,
}

impl Provider {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "github" => Ok(Provider::Github),
            "gitlab" => Ok(Provider::Gitlab),
            "generic" => Ok(Provider::Generic),
            other => Err(format!(
                "unknown provider {other:?}: expected github, gitlab or generic"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Github => "github",
            Provider::Gitlab => "gitlab",
            Provider::Generic => "generic",
        }
    }
}

/// A hook as the admin API receives it and a `[[hooks]]` entry of the configuration file writes
/// it. The secret is written in exactly one way: `secret` through the API, `secret_env` or
/// `secret_file` in the file (never inline there).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HookSpec {
    /// The hook's URL is `POST /v1/hooks/{name}` (a DNS-1123 label).
    pub name: String,
    /// `github`, `gitlab` or `generic`.
    #[schema(value_type = Provider)]
    pub provider: String,
    /// Admin API only; never returned. github and gitlab: 16 to 1024 characters; generic: a
    /// Standard Webhooks secret, `whsec_` and the base64 of 24 to 64 random bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(write_only)]
    pub secret: Option<String>,
    /// Configuration file only: the environment variable that holds the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    /// Configuration file only: the file that holds the secret (a trailing newline is dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<String>,
    pub target: HookTarget,
    /// The whitelist of what reaches helm: payload JSON pointer → values path, e.g.
    /// `{"/after": "image.tag"}`. Every pointer must name a string, number or boolean of a
    /// delivery's payload, or the delivery is rejected.
    #[serde(default)]
    pub values_from: BTreeMap<String, String>,
    /// Event types that deploy (github: `push`, `release`, `registry_package`, `workflow_run`,
    /// `deployment`; gitlab: `Push Hook`, `Tag Push Hook`, `Pipeline Hook`; generic: the payload's
    /// `type`). Empty: all of them.
    #[serde(default)]
    pub events: Vec<String>,
    /// Globs matched against the event's own ref (a push's `refs/heads/main`, a release's tag, a
    /// pipeline's branch); `*` stops at `/`, `**` does not. Empty: any ref, and events without one.
    #[serde(default)]
    pub refs: Vec<String>,
    /// As in a deploy; default `fifo`.
    #[serde(default)]
    pub queue: QueueMode,
}

/// Where a hook deploys: the fields of a deploy request that do not come from the payload.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HookTarget {
    /// Named cluster (kube context); default `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    pub namespace: String,
    pub release: String,
    #[serde(default)]
    pub create_namespace: bool,
    /// As in a deploy; for `repo` and `oci` charts the version may come from the payload instead
    /// (`chart_version_from`).
    pub chart: ChartSpec,
    /// A JSON pointer to the chart version in the payload, e.g. `/release/tag_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart_version_from: Option<String>,
    /// Values every deploy of the hook gets; mapped payload values are set over them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub values: Option<Map<String, Value>>,
    /// As in a deploy, e.g. `5m`; default `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default)]
    pub rollback_on_failure: bool,
}

/// A hook, checked: what a delivery needs to be verified and turned into a deploy.
#[derive(Debug, Clone)]
pub struct HookDefinition {
    pub name: HookName,
    pub provider: Provider,
    pub secret: HookSecret,
    /// The definition as written, without the secret: what the API shows and the store keeps.
    pub spec: HookSpec,
    chart_version_from: Option<JsonPointer>,
    values_from: ValuesMapping,
    events: Vec<String>,
    refs: RefFilter,
}

/// What a verified delivery asks for.
#[derive(Debug, Clone)]
pub enum Decision {
    /// GitHub's ping: nothing to do but answer.
    Ping,
    /// Nothing, for this reason.
    Ignore(String),
    /// This deploy, still to be validated as any deploy request is.
    Deploy(Box<DeployRequest>),
}

/// How a delivery was answered, by `rollcall_hook_deliveries_total`; the first four are also
/// recorded with the delivery (nothing is recorded of the others).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// GitHub's `ping` (200).
    Ping,
    /// Verified, but no filter matched or the event never deploys (202 with why).
    Ignored,
    /// A deploy was queued (202 with its id).
    Deployed,
    /// A deploy was asked for and refused: a payload value unfit for it (422), the release busy
    /// under queue mode `reject` (409). A redelivery tries again.
    Rejected,
    /// A redelivery of a delivery that deployed: answered with that deploy.
    Duplicate,
    /// A missing or wrong signature (401).
    Unauthorized,
    /// A body over the limit (413).
    TooLarge,
    /// Verified but unreadable: no delivery id, not JSON (400).
    Malformed,
}

impl DeliveryOutcome {
    pub const ALL: [DeliveryOutcome; 8] = [
        DeliveryOutcome::Ping,
        DeliveryOutcome::Ignored,
        DeliveryOutcome::Deployed,
        DeliveryOutcome::Rejected,
        DeliveryOutcome::Duplicate,
        DeliveryOutcome::Unauthorized,
        DeliveryOutcome::TooLarge,
        DeliveryOutcome::Malformed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Ping => "ping",
            DeliveryOutcome::Ignored => "ignored",
            DeliveryOutcome::Deployed => "deployed",
            DeliveryOutcome::Rejected => "rejected",
            DeliveryOutcome::Duplicate => "duplicate",
            DeliveryOutcome::Unauthorized => "unauthorized",
            DeliveryOutcome::TooLarge => "too_large",
            DeliveryOutcome::Malformed => "malformed",
        }
    }
}

/// The ways a secret may be written, by where a definition comes from.
impl HookSpec {
    /// The admin API's: `secret` in the body; `secret_env` and `secret_file` belong to the file.
    pub fn take_inline_secret(&mut self) -> Result<Option<String>, Vec<FieldError>> {
        let mut errors = Vec::new();
        for (field, given) in [
            ("secret_env", self.secret_env.is_some()),
            ("secret_file", self.secret_file.is_some()),
        ] {
            if given {
                errors.push(FieldError::new(
                    field,
                    "is for the configuration file; the API takes the secret itself in `secret`",
                ));
            }
        }
        if errors.is_empty() {
            Ok(self.secret.take())
        } else {
            Err(errors)
        }
    }

    /// The configuration file's: exactly one of `secret_env` and `secret_file`, never `secret`.
    pub fn secret_reference(&self) -> Result<SecretReference, FieldError> {
        match (&self.secret, &self.secret_env, &self.secret_file) {
            (Some(_), _, _) => Err(FieldError::new(
                "secret",
                "is never written in the configuration file: use secret_env or secret_file",
            )),
            (None, Some(variable), None) => Ok(SecretReference::Env(variable.clone())),
            (None, None, Some(path)) => Ok(SecretReference::File(path.clone())),
            (None, _, _) => Err(FieldError::new(
                "secret_env",
                "give exactly one of secret_env and secret_file",
            )),
        }
    }
}

/// Where a configured hook's secret is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretReference {
    Env(String),
    File(String),
}

impl SecretReference {
    /// The field that names it, for errors about the secret.
    pub fn field(&self) -> &'static str {
        match self {
            SecretReference::Env(_) => "secret_env",
            SecretReference::File(_) => "secret_file",
        }
    }
}

impl HookDefinition {
    /// Checks everything but the target (see [`HookDefinition::check_target`]). `secret` is the
    /// secret itself, and `secret_field` the field errors about it name.
    pub fn parse(
        mut spec: HookSpec,
        secret: String,
        secret_field: &str,
    ) -> Result<Self, Vec<FieldError>> {
        spec.secret = None;
        let mut errors = FieldErrors::default();
        let name = errors.take(HookName::parse(spec.name.clone(), "name"));
        let provider = errors.take(
            Provider::parse(&spec.provider).map_err(|message| FieldError::new("provider", message)),
        );
        let secret = provider.and_then(|provider| {
            errors.take(
                HookSecret::parse(provider, secret)
                    .map_err(|message| FieldError::new(secret_field, message)),
            )
        });
        let chart_version_from = match &spec.target.chart_version_from {
            Some(pointer) => errors
                .take(
                    JsonPointer::parse(pointer)
                        .map_err(|message| FieldError::new("target.chart_version_from", message)),
                )
                .map(Some),
            None => Some(None),
        };
        let values_from = errors.take_all(ValuesMapping::parse(&spec.values_from));
        let events =
            provider.and_then(|provider| errors.take_all(check_events(provider, &spec.events)));
        let refs = errors.take_all(RefFilter::parse(&spec.refs));
        match (
            name,
            provider,
            secret,
            chart_version_from,
            values_from,
            events,
            refs,
        ) {
            (
                Some(name),
                Some(provider),
                Some(secret),
                Some(chart_version_from),
                Some(values_from),
                Some(events),
                Some(refs),
            ) if errors.is_empty() => Ok(Self {
                name,
                provider,
                secret,
                spec,
                chart_version_from,
                values_from,
                events,
                refs,
            }),
            _ => Err(errors.into_vec()),
        }
    }

    /// Checks that the target makes a valid deploy (names, chart, timeout, as `POST /v1/deploys`
    /// would), with every payload value still unknown. Errors name `target.*`.
    pub fn check_target(&self, charts: &ChartSources) -> Result<(), Vec<FieldError>> {
        let target = &self.spec.target;
        if self.chart_version_from.is_some() {
            if target.chart.repo.is_none() && target.chart.oci.is_none() {
                return Err(vec![FieldError::new(
                    "target.chart_version_from",
                    "only repo and oci charts have a version to take from the payload",
                )]);
            }
            if target.chart.version.is_some() {
                return Err(vec![FieldError::new(
                    "target.chart.version",
                    "give either chart.version or chart_version_from",
                )]);
            }
        }
        let mut values = target.values.clone().unwrap_or_default();
        self.values_from.placeholders(&mut values);
        let sample_version = self.chart_version_from.as_ref().map(|_| "0.0.0".to_owned());
        let sample = self.deploy_request(sample_version, values, BTreeMap::new());
        NewDeploy::parse(sample, charts)
            .map(drop)
            .map_err(|errors| {
                errors
                    .into_iter()
                    .map(|error| error.under("target"))
                    .collect()
            })
    }

    /// Who deploys through this hook, as deploys record it.
    pub fn requested_by(&self) -> String {
        format!("hook:{}", self.name)
    }

    /// What a verified delivery asks for. A deploy that the payload cannot fill (a mapped value
    /// missing or not a scalar) is refused with errors naming the payload's pointers.
    pub fn decide(&self, received: &Received) -> Result<Decision, Vec<FieldError>> {
        let event = received.event.as_str();
        if self.provider == Provider::Github && event == PING {
            return Ok(Decision::Ping);
        }
        if let Some(supported) = self.provider.events()
            && !supported.contains(&event)
        {
            return Ok(Decision::Ignore(format!(
                "rollcall deploys on {} events {}, not on {event:?}",
                self.provider.as_str(),
                supported.join(", ")
            )));
        }
        if !self.events.is_empty() && !self.events.iter().any(|wanted| wanted == event) {
            return Ok(Decision::Ignore(format!(
                "event {event:?} is not among the hook's events ({})",
                self.events.join(", ")
            )));
        }
        if let Some(reason) = &received.facts.never_deploys {
            return Ok(Decision::Ignore(reason.clone()));
        }
        if !self.refs.admits(received.facts.git_ref.as_deref()) {
            let refs = self.spec.refs.join(", ");
            return Ok(Decision::Ignore(match &received.facts.git_ref {
                Some(git_ref) => format!("ref {git_ref} matches none of the hook's refs ({refs})"),
                None => {
                    format!("{event:?} events carry no ref, and the hook takes only refs {refs}")
                }
            }));
        }
        let mut errors = FieldErrors::default();
        let mut values = self.spec.target.values.clone().unwrap_or_default();
        errors.take_all(self.values_from.apply(&received.payload, &mut values));
        let chart_version = self.chart_version_from.as_ref().and_then(|pointer| {
            errors.take(pointer.text(&received.payload).map_err(|message| {
                FieldError::new(
                    pointer.as_str(),
                    format!("{message} (the hook takes the chart version from it)"),
                )
            }))
        });
        if !errors.is_empty() {
            return Err(errors.into_vec());
        }
        let request = self.deploy_request(chart_version, values, self.origin(received));
        Ok(Decision::Deploy(Box::new(request)))
    }

    /// Labels that say where a deploy came from (visible in the API and its `deploy.queued` event).
    fn origin(&self, received: &Received) -> BTreeMap<String, String> {
        let facts = &received.facts;
        [
            ("rollcall.dev/hook", Some(self.name.to_string())),
            (
                "rollcall.dev/hook-provider",
                Some(self.provider.as_str().to_owned()),
            ),
            ("rollcall.dev/hook-event", Some(received.event.clone())),
            (
                "rollcall.dev/hook-delivery",
                Some(received.delivery_id.clone()),
            ),
            ("rollcall.dev/ref", facts.git_ref.clone()),
            ("rollcall.dev/commit", facts.commit.clone()),
            ("rollcall.dev/sender", facts.sender.clone()),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some((key.to_owned(), value?)))
        .collect()
    }

    fn deploy_request(
        &self,
        chart_version: Option<String>,
        values: Map<String, Value>,
        labels: BTreeMap<String, String>,
    ) -> DeployRequest {
        let target = &self.spec.target;
        DeployRequest {
            release: target.release.clone(),
            namespace: target.namespace.clone(),
            create_namespace: target.create_namespace,
            cluster: target.cluster.clone(),
            chart: ChartSpec {
                version: chart_version.or_else(|| target.chart.version.clone()),
                ..target.chart.clone()
            },
            values: Some(values),
            secret_values: None,
            timeout: target.timeout.clone(),
            rollback_on_failure: target.rollback_on_failure,
            queue: self.spec.queue,
            tracking: None,
            notify: Vec::new(),
            labels,
        }
    }
}

/// A provider's events (any for generic senders); errors name `events[i]`.
fn check_events(provider: Provider, events: &[String]) -> Result<Vec<String>, Vec<FieldError>> {
    let mut errors = Vec::new();
    if events.len() > MAX_FILTERS {
        errors.push(FieldError::new(
            "events",
            format!("at most {MAX_FILTERS} event types"),
        ));
    }
    for (index, event) in events.iter().enumerate() {
        let known = match provider.events() {
            Some(supported) => supported.contains(&event.as_str()),
            None => !event.is_empty() && event.len() <= MAX_FILTER_LEN,
        };
        if !known {
            let expected = provider.events().map_or_else(
                || format!("1 to {MAX_FILTER_LEN} characters"),
                |supported| format!("one of {}", supported.join(", ")),
            );
            errors.push(FieldError::new(
                format!("events[{index}]"),
                format!(
                    "{event:?} is not a {} event rollcall deploys on: expected {expected}",
                    provider.as_str()
                ),
            ));
        }
    }
    if errors.is_empty() {
        Ok(events.to_vec())
    } else {
        Err(errors)
    }
}

/// A hook's `refs`: GitHub Actions-style globs (`*` stops at `/`, `**` crosses it).
#[derive(Debug, Clone)]
struct RefFilter(Option<GlobSet>);

impl RefFilter {
    fn parse(globs: &[String]) -> Result<Self, Vec<FieldError>> {
        if globs.is_empty() {
            return Ok(Self(None));
        }
        let mut errors = Vec::new();
        if globs.len() > MAX_FILTERS {
            errors.push(FieldError::new(
                "refs",
                format!("at most {MAX_FILTERS} globs"),
            ));
        }
        let mut set = GlobSetBuilder::new();
        for (index, glob) in globs.iter().enumerate() {
            let field = format!("refs[{index}]");
            if glob.is_empty() || glob.len() > MAX_FILTER_LEN {
                errors.push(FieldError::new(
                    field,
                    format!("must be 1 to {MAX_FILTER_LEN} characters"),
                ));
                continue;
            }
            match GlobBuilder::new(glob).literal_separator(true).build() {
                Ok(compiled) => {
                    set.add(compiled);
                }
                Err(error) => errors.push(FieldError::new(
                    field,
                    format!("invalid glob: {}", error.kind()),
                )),
            }
        }
        match set.build() {
            Ok(set) if errors.is_empty() => Ok(Self(Some(set))),
            Ok(_) => Err(errors),
            Err(error) => {
                errors.push(FieldError::new("refs", format!("invalid globs: {error}")));
                Err(errors)
            }
        }
    }

    /// An empty filter admits everything; otherwise only a ref one of its globs matches.
    fn admits(&self, git_ref: Option<&str>) -> bool {
        match (&self.0, git_ref) {
            (None, _) => true,
            (Some(set), Some(git_ref)) => set.is_match(git_ref),
            (Some(_), None) => false,
        }
    }
}

#[cfg(test)]
mod tests;
