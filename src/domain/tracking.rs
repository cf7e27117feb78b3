//! Per-request tracking overrides (DESIGN §5.4): policy defaults and per-resource policies matched
//! by kind and name glob. The tracker applies them; here they are parsed and checked.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::FieldError;
use super::duration::{BoundedDuration, format_duration};

const MAX_RESOURCE_RULES: usize = 100;

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackingSpec {
    /// Policy applied to every tracked resource unless a more specific rule matches.
    #[serde(default)]
    pub defaults: Option<PolicySpec>,
    /// Policies for resources matched by kind and name glob; the first match wins.
    #[serde(default)]
    pub resources: Vec<ResourceRuleSpec>,
    /// When true, these overrides win over `rollcall.dev/` and `werf.io/` annotations in the chart.
    #[serde(default)]
    pub override_annotations: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceRuleSpec {
    /// Resource kind, e.g. `Deployment`.
    pub kind: String,
    /// Resource name or glob (`*`, `?`); default `*`.
    #[serde(default)]
    pub name: Option<String>,
    pub policy: PolicySpec,
}

/// The §5.4 policy keys; enum values are case-insensitive.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// `FailWholeDeployProcessImmediately` | `HopeUntilEndOfDeployProcess` | `IgnoreAndContinueDeployProcess`.
    pub fail_mode: Option<String>,
    pub failures_allowed_per_replica: Option<u32>,
    /// `WaitUntilResourceReady` | `NonBlocking`.
    pub track_termination_mode: Option<String>,
    /// Duration such as `4m`.
    pub no_activity_timeout: Option<String>,
    pub skip_logs: Option<bool>,
    pub skip_logs_for_containers: Option<Vec<String>>,
    pub show_logs_only_for_containers: Option<Vec<String>>,
    /// Only log lines matching this regular expression are streamed.
    pub log_regex: Option<String>,
    pub show_logs_only_for_number_of_replicas: Option<u32>,
    /// Per container: how long failing readiness probes are ignored, e.g. `{"web": "30s"}`.
    pub ignore_readiness_probe_fails_for: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailMode {
    FailWholeDeployProcessImmediately,
    HopeUntilEndOfDeployProcess,
    IgnoreAndContinueDeployProcess,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrackTerminationMode {
    WaitUntilResourceReady,
    NonBlocking,
}

/// A checked policy: every key optional (absent = annotation or built-in default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrackingPolicy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_mode: Option<FailMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failures_allowed_per_replica: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track_termination_mode: Option<TrackTerminationMode>,
    #[serde(skip_serializing_if = "Option::is_none", with = "optional_duration")]
    pub no_activity_timeout: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_logs: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_logs_for_containers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub show_logs_only_for_containers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_regex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub show_logs_only_for_number_of_replicas: Option<u32>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ignore_readiness_probe_fails_for: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRule {
    pub kind: String,
    pub name: String,
    pub policy: TrackingPolicy,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrackingOverrides {
    pub defaults: TrackingPolicy,
    pub resources: Vec<ResourceRule>,
    pub override_annotations: bool,
}

mod optional_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => s.serialize_str(&super::format_duration(*duration)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| {
                super::super::duration::parse_duration(&text).map_err(serde::de::Error::custom)
            })
            .transpose()
    }
}

impl TrackingOverrides {
    pub fn parse(spec: TrackingSpec) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let defaults = match spec.defaults.map(TrackingPolicy::parse).transpose() {
            Ok(policy) => policy.unwrap_or_default(),
            Err(found) => {
                errors.extend(found.into_iter().map(|e| e.under("tracking.defaults")));
                TrackingPolicy::default()
            }
        };
        if spec.resources.len() > MAX_RESOURCE_RULES {
            errors.push(FieldError::new(
                "tracking.resources",
                format!("at most {MAX_RESOURCE_RULES} rules are allowed"),
            ));
        }
        let mut resources = Vec::new();
        for (index, rule) in spec.resources.into_iter().enumerate() {
            match ResourceRule::parse(rule) {
                Ok(rule) => resources.push(rule),
                Err(found) => errors.extend(
                    found
                        .into_iter()
                        .map(|e| e.under(&format!("tracking.resources[{index}]"))),
                ),
            }
        }
        if errors.is_empty() {
            Ok(Self {
                defaults,
                resources,
                override_annotations: spec.override_annotations,
            })
        } else {
            Err(errors)
        }
    }
}

impl ResourceRule {
    fn parse(spec: ResourceRuleSpec) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let kind_valid = !spec.kind.is_empty()
            && spec.kind.len() <= 63
            && spec.kind.starts_with(|c: char| c.is_ascii_alphabetic())
            && spec.kind.chars().all(|c| c.is_ascii_alphanumeric());
        if !kind_valid {
            errors.push(FieldError::new(
                "kind",
                "must be a Kubernetes kind such as Deployment",
            ));
        }
        let name = spec.name.unwrap_or_else(|| "*".into());
        let name_valid = !name.is_empty()
            && name.len() <= 253
            && name.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '*' | '?')
            });
        if !name_valid {
            errors.push(FieldError::new(
                "name",
                "must be a resource name or glob of lowercase letters, digits, '-', '.', '*', '?'",
            ));
        }
        let policy = TrackingPolicy::parse(spec.policy)
            .map_err(|found| errors.extend(found.into_iter().map(|e| e.under("policy"))))
            .ok();
        match policy {
            Some(policy) if errors.is_empty() => Ok(Self {
                kind: spec.kind,
                name,
                policy,
            }),
            _ => Err(errors),
        }
    }
}

impl TrackingPolicy {
    pub fn parse(spec: PolicySpec) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let fail_mode = spec
            .fail_mode
            .as_deref()
            .and_then(|value| keep(&mut errors, "fail_mode", FailMode::parse(value)));
        let track_termination_mode = spec.track_termination_mode.as_deref().and_then(|value| {
            keep(
                &mut errors,
                "track_termination_mode",
                TrackTerminationMode::parse(value),
            )
        });
        let no_activity_timeout = spec.no_activity_timeout.as_deref().and_then(|value| {
            let bounds = (Duration::from_secs(1), Duration::from_secs(24 * 3600));
            keep(
                &mut errors,
                "no_activity_timeout",
                BoundedDuration::parse(value, bounds.0, bounds.1),
            )
            .map(BoundedDuration::get)
        });
        let mut check = |field: &str, result: Result<(), String>| {
            keep(&mut errors, field, result);
        };
        for (field, containers) in [
            ("skip_logs_for_containers", &spec.skip_logs_for_containers),
            (
                "show_logs_only_for_containers",
                &spec.show_logs_only_for_containers,
            ),
        ] {
            for (index, name) in containers.iter().flatten().enumerate() {
                check(&format!("{field}[{index}]"), check_container_name(name));
            }
        }
        if let Some(pattern) = &spec.log_regex {
            check(
                "log_regex",
                regex::Regex::new(pattern)
                    .map(|_| ())
                    .map_err(|error| format!("is not a valid regular expression: {error}")),
            );
        }
        let ignore = spec.ignore_readiness_probe_fails_for.unwrap_or_default();
        for (container, duration) in &ignore {
            let field = format!("ignore_readiness_probe_fails_for.{container}");
            check(&field, check_container_name(container));
            check(
                &field,
                BoundedDuration::parse(duration, Duration::ZERO, Duration::from_secs(24 * 3600))
                    .map(|_| ()),
            );
        }
        if errors.is_empty() {
            Ok(Self {
                fail_mode,
                failures_allowed_per_replica: spec.failures_allowed_per_replica,
                track_termination_mode,
                no_activity_timeout,
                skip_logs: spec.skip_logs,
                skip_logs_for_containers: spec.skip_logs_for_containers,
                show_logs_only_for_containers: spec.show_logs_only_for_containers,
                log_regex: spec.log_regex,
                show_logs_only_for_number_of_replicas: spec.show_logs_only_for_number_of_replicas,
                ignore_readiness_probe_fails_for: ignore,
            })
        } else {
            Err(errors)
        }
    }
}

/// The value of a successful parse; the error of a failed one is recorded under `field`.
fn keep<T>(errors: &mut Vec<FieldError>, field: &str, result: Result<T, String>) -> Option<T> {
    result
        .map_err(|message| errors.push(FieldError::new(field, message)))
        .ok()
}

fn check_container_name(name: &str) -> Result<(), String> {
    super::names::Namespace::parse(name, "")
        .map(|_| ())
        .map_err(|error| format!("container name {name:?} {}", error.message))
}

/// Case-insensitive parsing of the werf-compatible enum words.
fn parse_word<T: Copy>(value: &str, options: &[(&str, T)]) -> Result<T, String> {
    options
        .iter()
        .find(|(word, _)| word.eq_ignore_ascii_case(value))
        .map(|(_, variant)| *variant)
        .ok_or_else(|| {
            let words: Vec<&str> = options.iter().map(|(word, _)| *word).collect();
            format!(
                "unknown value {value:?}: expected one of {}",
                words.join(", ")
            )
        })
}

impl FailMode {
    pub fn parse(value: &str) -> Result<Self, String> {
        parse_word(
            value,
            &[
                (
                    "FailWholeDeployProcessImmediately",
                    FailMode::FailWholeDeployProcessImmediately,
                ),
                (
                    "HopeUntilEndOfDeployProcess",
                    FailMode::HopeUntilEndOfDeployProcess,
                ),
                (
                    "IgnoreAndContinueDeployProcess",
                    FailMode::IgnoreAndContinueDeployProcess,
                ),
            ],
        )
    }
}

impl TrackTerminationMode {
    pub fn parse(value: &str) -> Result<Self, String> {
        parse_word(
            value,
            &[
                (
                    "WaitUntilResourceReady",
                    TrackTerminationMode::WaitUntilResourceReady,
                ),
                ("NonBlocking", TrackTerminationMode::NonBlocking),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn enum_words_are_case_insensitive() {
        assert_eq!(
            FailMode::parse("hopeuntilendofdeployprocess"),
            Ok(FailMode::HopeUntilEndOfDeployProcess)
        );
        assert!(FailMode::parse("Sometimes").is_err());
        assert_eq!(
            TrackTerminationMode::parse("nonblocking"),
            Ok(TrackTerminationMode::NonBlocking)
        );
    }

    #[test]
    fn errors_name_the_rule_and_key() {
        let spec = TrackingSpec {
            defaults: Some(PolicySpec {
                no_activity_timeout: Some("soon".into()),
                ..PolicySpec::default()
            }),
            resources: vec![ResourceRuleSpec {
                kind: "Deployment".into(),
                name: Some("Web".into()),
                policy: PolicySpec {
                    fail_mode: Some("never".into()),
                    log_regex: Some("(".into()),
                    ignore_readiness_probe_fails_for: Some(BTreeMap::from([(
                        "web".into(),
                        "x".into(),
                    )])),
                    ..PolicySpec::default()
                },
            }],
            override_annotations: false,
        };
        let errors = TrackingOverrides::parse(spec).unwrap_err();
        assert_eq!(
            fields(&errors),
            [
                "tracking.defaults.no_activity_timeout",
                "tracking.resources[0].name",
                "tracking.resources[0].policy.fail_mode",
                "tracking.resources[0].policy.log_regex",
                "tracking.resources[0].policy.ignore_readiness_probe_fails_for.web",
            ]
        );
    }

    #[test]
    fn parsed_policy_round_trips_through_json() {
        let spec = TrackingSpec {
            defaults: Some(PolicySpec {
                fail_mode: Some("ignoreandcontinuedeployprocess".into()),
                no_activity_timeout: Some("90s".into()),
                ..PolicySpec::default()
            }),
            ..TrackingSpec::default()
        };
        let parsed = TrackingOverrides::parse(spec).unwrap();
        let json = serde_json::to_value(&parsed).unwrap();
        assert_eq!(json["defaults"]["no_activity_timeout"], "1m30s");
        assert_eq!(
            json["defaults"]["fail_mode"],
            "IgnoreAndContinueDeployProcess"
        );
        let back: TrackingOverrides = serde_json::from_value(json).unwrap();
        assert_eq!(back, parsed);
        let empty: TrackingOverrides =
            serde_json::from_value(serde_json::to_value(TrackingOverrides::default()).unwrap())
                .unwrap();
        assert_eq!(empty, TrackingOverrides::default());
    }
}
