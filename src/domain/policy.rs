//! Tracking policy (DESIGN §5.4): how rollcall follows one resource and when it gives up on it.
//!
//! A policy is resolved once per resource, before anything is applied, from four layers (lowest first):
//!
//! 1. built-in defaults ([`TrackingPolicy::default`]);
//! 2. the request's `tracking.defaults`;
//! 3. the request's `tracking.resources[]` rules whose `kind`/`name` match, in order;
//! 4. the chart's annotations: `werf.io/<name>`, then `rollcall.dev/<name>` (rollcall.dev wins);
//! 5. the request's rules that match **and** say `"override": true`.
//!
//! So the chart's annotations win over the request unless the request explicitly overrides them for a
//! resource (`{"kind": "Deployment", "name": "web-*", "override": true, "policy": {...}}`; a rule with
//! neither `kind` nor `name` matches every resource).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::duration::{format_duration, parse_duration};

/// Annotation prefixes, lowest precedence first.
const ANNOTATION_PREFIXES: [&str; 2] = ["werf.io/", "rollcall.dev/"];
const IGNORE_READINESS_PREFIX: &str = "ignore-readiness-probe-fails-for-";

/// A policy value that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{resource}: annotation {annotation}={value:?} is invalid: {problem}")]
    InvalidAnnotation {
        resource: String,
        annotation: String,
        value: String,
        problem: String,
    },
    #[error("invalid value {value:?}: {problem}")]
    InvalidValue { value: String, problem: String },
}

fn invalid_value(value: &str, problem: impl Into<String>) -> PolicyError {
    PolicyError::InvalidValue {
        value: value.to_owned(),
        problem: problem.into(),
    }
}

/// Declares a policy enum whose wire names are werf's, parsed case-insensitively.
macro_rules! policy_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, utoipa::ToSchema)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant)),+ }
            }
        }

        impl FromStr for $name {
            type Err = PolicyError;
            fn from_str(text: &str) -> Result<Self, PolicyError> {
                let wanted = text.trim();
                Self::ALL
                    .iter()
                    .copied()
                    .find(|candidate| candidate.as_str().eq_ignore_ascii_case(wanted))
                    .ok_or_else(|| {
                        let names: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                        invalid_value(text, format!("expected one of {}", names.join(", ")))
                    })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

policy_enum!(
    /// What a failed resource does to the deploy.
    FailMode {
        /// The deploy fails as soon as the allowance is exceeded or a terminal signal occurs.
        #[default]
        FailWholeDeployProcessImmediately,
        /// The resource is marked failed but still tracked; the deploy fails if it is still failed
        /// once every other resource has settled.
        HopeUntilEndOfDeployProcess,
        /// Incidents are warnings; the resource must still become ready.
        IgnoreAndContinueDeployProcess,
    }
);

policy_enum!(
    /// Whether the deploy waits for the resource.
    TrackTerminationMode {
        #[default]
        WaitUntilResourceReady,
        NonBlocking,
    }
);

/// A duration written the Go way, as werf's annotations are: `4m`, `1h30m`, `90s`, `500ms`
/// ([`parse_duration`]); surrounding whitespace is ignored, as for every annotation value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyDuration(pub Duration);

impl FromStr for PolicyDuration {
    type Err = PolicyError;

    fn from_str(text: &str) -> Result<Self, PolicyError> {
        parse_duration(text.trim())
            .map(PolicyDuration)
            .map_err(|error| invalid_value(text, error.to_string()))
    }
}

impl fmt::Display for PolicyDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl Serialize for PolicyDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PolicyDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A log filter regex, checked when the policy is parsed so that a typo fails before anything is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRegex(String);

impl LogRegex {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for LogRegex {
    type Err = PolicyError;

    fn from_str(text: &str) -> Result<Self, PolicyError> {
        regex::Regex::new(text).map_err(|error| invalid_value(text, error.to_string()))?;
        Ok(LogRegex(text.to_owned()))
    }
}

impl Serialize for LogRegex {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for LogRegex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Which container logs the log streamer follows for this resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogSelection {
    pub skip_logs: bool,
    pub skip_logs_for_containers: Vec<String>,
    /// Empty means every container.
    pub show_logs_only_for_containers: Vec<String>,
    pub log_regex: Option<LogRegex>,
    pub show_logs_only_for_number_of_replicas: u32,
}

impl Default for LogSelection {
    fn default() -> Self {
        LogSelection {
            skip_logs: false,
            skip_logs_for_containers: Vec::new(),
            show_logs_only_for_containers: Vec::new(),
            log_regex: None,
            show_logs_only_for_number_of_replicas: 1,
        }
    }
}

impl LogSelection {
    /// Whether the streamer should follow this container at all.
    pub fn wants_container(&self, container: &str) -> bool {
        !self.skip_logs
            && !self.skip_logs_for_containers.iter().any(|c| c == container)
            && (self.show_logs_only_for_containers.is_empty()
                || self
                    .show_logs_only_for_containers
                    .iter()
                    .any(|c| c == container))
    }
}

/// The effective policy of one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrackingPolicy {
    pub fail_mode: FailMode,
    /// The allowance is this × replicas (Deployment, StatefulSet, DaemonSet, Pod). Jobs ignore it and
    /// follow their own `backoffLimit`.
    pub failures_allowed_per_replica: u32,
    pub track_termination_mode: TrackTerminationMode,
    pub no_activity_timeout: PolicyDuration,
    pub logs: LogSelection,
    /// Per container, overrides the window computed from the readiness probe spec.
    pub ignore_readiness_probe_fails_for: BTreeMap<String, PolicyDuration>,
}

pub const DEFAULT_NO_ACTIVITY_TIMEOUT: Duration = Duration::from_secs(4 * 60);

impl Default for TrackingPolicy {
    fn default() -> Self {
        TrackingPolicy {
            fail_mode: FailMode::default(),
            failures_allowed_per_replica: 1,
            track_termination_mode: TrackTerminationMode::default(),
            no_activity_timeout: PolicyDuration(DEFAULT_NO_ACTIVITY_TIMEOUT),
            logs: LogSelection::default(),
            ignore_readiness_probe_fails_for: BTreeMap::new(),
        }
    }
}

/// A partial policy: one layer of the precedence chain. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_mode: Option<FailMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures_allowed_per_replica: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_termination_mode: Option<TrackTerminationMode>,
    /// Go-style duration: `90s`, `4m`, `1h30m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "4m")]
    pub no_activity_timeout: Option<PolicyDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_logs: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_logs_for_containers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_logs_only_for_containers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub log_regex: Option<LogRegex>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_logs_only_for_number_of_replicas: Option<u32>,
    /// Container name → Go-style duration.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = BTreeMap<String, String>)]
    pub ignore_readiness_probe_fails_for: BTreeMap<String, PolicyDuration>,
}

impl PolicyPatch {
    /// Reads the annotations of one prefix (`werf.io/` or `rollcall.dev/`).
    fn from_annotations(
        resource: &str,
        prefix: &str,
        annotations: &BTreeMap<String, String>,
    ) -> Result<PolicyPatch, PolicyError> {
        let mut patch = PolicyPatch::default();
        for (key, value) in annotations {
            let Some(name) = key.strip_prefix(prefix) else {
                continue;
            };
            patch.set_from_annotation(name, value).map_err(|error| {
                PolicyError::InvalidAnnotation {
                    resource: resource.to_owned(),
                    annotation: key.clone(),
                    value: value.clone(),
                    problem: match error {
                        PolicyError::InvalidValue { problem, .. } => problem,
                        other => other.to_string(),
                    },
                }
            })?;
        }
        Ok(patch)
    }

    /// Sets one field from an annotation value; annotations that are not about tracking are left alone
    /// (werf.io/weight and the like belong to other tools).
    fn set_from_annotation(&mut self, name: &str, value: &str) -> Result<(), PolicyError> {
        match name {
            "fail-mode" => self.fail_mode = Some(value.parse()?),
            "failures-allowed-per-replica" => {
                self.failures_allowed_per_replica = Some(parse_count(value)?)
            }
            "track-termination-mode" => self.track_termination_mode = Some(value.parse()?),
            "no-activity-timeout" => self.no_activity_timeout = Some(value.parse()?),
            "skip-logs" => self.skip_logs = Some(parse_bool(value)?),
            "skip-logs-for-containers" => self.skip_logs_for_containers = Some(parse_list(value)),
            "show-logs-only-for-containers" => {
                self.show_logs_only_for_containers = Some(parse_list(value))
            }
            "log-regex" => self.log_regex = Some(value.parse()?),
            "show-logs-only-for-number-of-replicas" => {
                self.show_logs_only_for_number_of_replicas = Some(parse_count(value)?)
            }
            other => {
                if let Some(container) = other.strip_prefix(IGNORE_READINESS_PREFIX) {
                    self.ignore_readiness_probe_fails_for
                        .insert(container.to_owned(), value.parse()?);
                }
            }
        }
        Ok(())
    }

    fn apply_to(&self, policy: &mut TrackingPolicy) {
        if let Some(mode) = self.fail_mode {
            policy.fail_mode = mode;
        }
        if let Some(count) = self.failures_allowed_per_replica {
            policy.failures_allowed_per_replica = count;
        }
        if let Some(mode) = self.track_termination_mode {
            policy.track_termination_mode = mode;
        }
        if let Some(timeout) = self.no_activity_timeout {
            policy.no_activity_timeout = timeout;
        }
        if let Some(skip) = self.skip_logs {
            policy.logs.skip_logs = skip;
        }
        if let Some(containers) = &self.skip_logs_for_containers {
            policy.logs.skip_logs_for_containers = containers.clone();
        }
        if let Some(containers) = &self.show_logs_only_for_containers {
            policy.logs.show_logs_only_for_containers = containers.clone();
        }
        if let Some(regex) = &self.log_regex {
            policy.logs.log_regex = Some(regex.clone());
        }
        if let Some(count) = self.show_logs_only_for_number_of_replicas {
            policy.logs.show_logs_only_for_number_of_replicas = count;
        }
        for (container, window) in &self.ignore_readiness_probe_fails_for {
            policy
                .ignore_readiness_probe_fails_for
                .insert(container.clone(), *window);
        }
    }
}

fn parse_count(value: &str) -> Result<u32, PolicyError> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid_value(value, "expected an integer ≥ 0"))
}

fn parse_bool(value: &str) -> Result<bool, PolicyError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid_value(value, "expected true or false")),
    }
}

fn parse_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A glob over resource names (`web-*`), compiled when the request is parsed.
#[derive(Debug, Clone)]
pub struct NamePattern(GlobMatcher);

impl NamePattern {
    pub fn matches(&self, name: &str) -> bool {
        self.0.is_match(name)
    }
}

impl PartialEq for NamePattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.glob() == other.0.glob()
    }
}

impl Eq for NamePattern {}

impl FromStr for NamePattern {
    type Err = PolicyError;

    fn from_str(text: &str) -> Result<Self, PolicyError> {
        Glob::new(text)
            .map(|glob| NamePattern(glob.compile_matcher()))
            .map_err(|error| invalid_value(text, error.kind().to_string()))
    }
}

impl Serialize for NamePattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.glob().glob())
    }
}

impl<'de> Deserialize<'de> for NamePattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A request rule: the policy of the resources it matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceRule {
    /// Kind, compared case-insensitively; absent matches every kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name glob; absent matches every name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "web-*")]
    pub name: Option<NamePattern>,
    /// `true`: this rule wins over the chart's annotations. `false` (default): annotations win.
    #[serde(default, rename = "override")]
    pub override_annotations: bool,
    pub policy: PolicyPatch,
}

impl ResourceRule {
    fn matches(&self, target: &PolicyTarget<'_>) -> bool {
        self.kind
            .as_deref()
            .is_none_or(|kind| kind.eq_ignore_ascii_case(target.kind))
            && self
                .name
                .as_ref()
                .is_none_or(|pattern| pattern.matches(target.name))
    }
}

/// The `tracking` part of a deploy request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackingOverrides {
    #[serde(default)]
    pub defaults: PolicyPatch,
    #[serde(default)]
    pub resources: Vec<ResourceRule>,
}

/// The resource a policy is resolved for.
#[derive(Debug, Clone, Copy)]
pub struct PolicyTarget<'a> {
    pub kind: &'a str,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub annotations: &'a BTreeMap<String, String>,
}

impl PolicyTarget<'_> {
    fn label(&self) -> String {
        match self.namespace {
            Some(namespace) => format!("{} {}/{}", self.kind, namespace, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

impl TrackingOverrides {
    /// The effective policy of one resource (see the module docs for the precedence).
    pub fn resolve(&self, target: &PolicyTarget<'_>) -> Result<TrackingPolicy, PolicyError> {
        let label = target.label();
        let mut policy = TrackingPolicy::default();
        self.defaults.apply_to(&mut policy);
        let matching: Vec<&ResourceRule> = self
            .resources
            .iter()
            .filter(|rule| rule.matches(target))
            .collect();
        for rule in matching.iter().filter(|rule| !rule.override_annotations) {
            rule.policy.apply_to(&mut policy);
        }
        for prefix in ANNOTATION_PREFIXES {
            PolicyPatch::from_annotations(&label, prefix, target.annotations)?
                .apply_to(&mut policy);
        }
        for rule in matching.iter().filter(|rule| rule.override_annotations) {
            rule.policy.apply_to(&mut policy);
        }
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn resolve(
        overrides: &TrackingOverrides,
        kind: &str,
        name: &str,
        pairs: &[(&str, &str)],
    ) -> Result<TrackingPolicy, PolicyError> {
        let annotations = annotations(pairs);
        overrides.resolve(&PolicyTarget {
            kind,
            namespace: Some("prod"),
            name,
            annotations: &annotations,
        })
    }

    fn overrides(json: serde_json::Value) -> TrackingOverrides {
        serde_json::from_value(json).expect("valid overrides")
    }

    #[test]
    fn defaults_match_design() {
        let policy = resolve(&TrackingOverrides::default(), "Deployment", "web", &[]).unwrap();
        assert_eq!(
            policy.fail_mode,
            FailMode::FailWholeDeployProcessImmediately
        );
        assert_eq!(policy.failures_allowed_per_replica, 1);
        assert_eq!(
            policy.track_termination_mode,
            TrackTerminationMode::WaitUntilResourceReady
        );
        assert_eq!(policy.no_activity_timeout.0, Duration::from_secs(240));
        assert_eq!(policy.logs.show_logs_only_for_number_of_replicas, 1);
    }

    #[test]
    fn werf_annotations_are_read_and_rollcall_wins() {
        let policy = resolve(
            &TrackingOverrides::default(),
            "Deployment",
            "web",
            &[
                ("werf.io/fail-mode", "HopeUntilEndOfDeployProcess"),
                ("rollcall.dev/fail-mode", "IgnoreAndContinueDeployProcess"),
                ("werf.io/failures-allowed-per-replica", "3"),
                ("werf.io/weight", "10"),
            ],
        )
        .unwrap();
        assert_eq!(policy.fail_mode, FailMode::IgnoreAndContinueDeployProcess);
        assert_eq!(policy.failures_allowed_per_replica, 3);
    }

    #[test]
    fn enum_values_are_case_insensitive() {
        let policy = resolve(
            &TrackingOverrides::default(),
            "Deployment",
            "web",
            &[
                ("rollcall.dev/fail-mode", "hopeuntilendofdeployprocess"),
                ("rollcall.dev/track-termination-mode", "NONBLOCKING"),
                ("rollcall.dev/skip-logs", "TRUE"),
            ],
        )
        .unwrap();
        assert_eq!(policy.fail_mode, FailMode::HopeUntilEndOfDeployProcess);
        assert_eq!(
            policy.track_termination_mode,
            TrackTerminationMode::NonBlocking
        );
        assert!(policy.logs.skip_logs);
    }

    #[test]
    fn unknown_value_names_resource_and_annotation() {
        let error = resolve(
            &TrackingOverrides::default(),
            "Deployment",
            "web",
            &[("werf.io/fail-mode", "FailSometimes")],
        )
        .unwrap_err();
        let PolicyError::InvalidAnnotation {
            resource,
            annotation,
            ..
        } = &error
        else {
            panic!("expected an annotation error, got {error:?}");
        };
        assert_eq!(resource, "Deployment prod/web");
        assert_eq!(annotation, "werf.io/fail-mode");
        let text = error.to_string();
        assert!(text.contains("Deployment prod/web"), "{text}");
        assert!(text.contains("FailWholeDeployProcessImmediately"), "{text}");
    }

    #[test]
    fn bad_numbers_durations_and_regexes_are_errors() {
        for (annotation, value) in [
            ("rollcall.dev/failures-allowed-per-replica", "-1"),
            ("rollcall.dev/no-activity-timeout", "4"),
            ("rollcall.dev/no-activity-timeout", "4 minutes"),
            ("rollcall.dev/log-regex", "([a-z"),
            ("rollcall.dev/skip-logs", "yes"),
            ("werf.io/ignore-readiness-probe-fails-for-app", "soon"),
        ] {
            let error = resolve(
                &TrackingOverrides::default(),
                "StatefulSet",
                "db",
                &[(annotation, value)],
            )
            .unwrap_err();
            assert!(
                matches!(&error, PolicyError::InvalidAnnotation { annotation: a, .. } if a == annotation),
                "{annotation}={value}: {error:?}"
            );
        }
    }

    #[test]
    fn log_selection_and_readiness_windows_are_parsed() {
        let policy = resolve(
            &TrackingOverrides::default(),
            "Deployment",
            "web",
            &[
                ("werf.io/show-logs-only-for-containers", "app, sidecar"),
                ("werf.io/skip-logs-for-containers", "sidecar"),
                ("werf.io/log-regex", "ERROR|WARN"),
                ("werf.io/show-logs-only-for-number-of-replicas", "2"),
                ("werf.io/ignore-readiness-probe-fails-for-app", "1m30s"),
                ("rollcall.dev/no-activity-timeout", "10m"),
            ],
        )
        .unwrap();
        assert_eq!(
            policy.logs.show_logs_only_for_containers,
            ["app", "sidecar"]
        );
        assert!(policy.logs.wants_container("app"));
        assert!(!policy.logs.wants_container("sidecar"));
        assert!(!policy.logs.wants_container("other"));
        assert_eq!(policy.logs.log_regex.unwrap().as_str(), "ERROR|WARN");
        assert_eq!(policy.logs.show_logs_only_for_number_of_replicas, 2);
        assert_eq!(
            policy.ignore_readiness_probe_fails_for["app"].0,
            Duration::from_secs(90)
        );
        assert_eq!(policy.no_activity_timeout.0, Duration::from_secs(600));
    }

    #[test]
    fn annotations_win_over_request_unless_override() {
        let request = overrides(serde_json::json!({
            "defaults": {"failures_allowed_per_replica": 5, "no_activity_timeout": "2m"},
            "resources": [
                {"kind": "deployment", "name": "web-*", "policy": {"fail_mode": "hopeuntilendofdeployprocess"}},
                {"kind": "Deployment", "name": "web-api", "override": true,
                 "policy": {"failures_allowed_per_replica": 0}}
            ]
        }));
        let chart = [
            ("werf.io/fail-mode", "IgnoreAndContinueDeployProcess"),
            ("werf.io/failures-allowed-per-replica", "2"),
        ];

        let web_api = resolve(&request, "Deployment", "web-api", &chart).unwrap();
        assert_eq!(web_api.fail_mode, FailMode::IgnoreAndContinueDeployProcess);
        assert_eq!(web_api.failures_allowed_per_replica, 0);
        assert_eq!(web_api.no_activity_timeout.0, Duration::from_secs(120));

        let web_ui = resolve(&request, "Deployment", "web-ui", &[]).unwrap();
        assert_eq!(web_ui.fail_mode, FailMode::HopeUntilEndOfDeployProcess);
        assert_eq!(web_ui.failures_allowed_per_replica, 5);

        let db = resolve(&request, "StatefulSet", "web-db", &[]).unwrap();
        assert_eq!(db.fail_mode, FailMode::FailWholeDeployProcessImmediately);
    }

    #[test]
    fn request_rejects_unknown_fields_and_values() {
        let typo = serde_json::from_value::<TrackingOverrides>(serde_json::json!({
            "defaults": {"fail_mod": "NonBlocking"}
        }));
        assert!(typo.unwrap_err().to_string().contains("fail_mod"));
        let bad = serde_json::from_value::<TrackingOverrides>(serde_json::json!({
            "resources": [{"name": "web", "policy": {"track_termination_mode": "later"}}]
        }));
        assert!(bad.unwrap_err().to_string().contains("NonBlocking"));
    }

    #[test]
    fn openapi_schema_describes_the_wire_format() {
        use utoipa::PartialSchema;
        let patch = serde_json::to_value(PolicyPatch::schema()).unwrap();
        let timeout = &patch["properties"]["no_activity_timeout"];
        assert!(timeout.to_string().contains("string"), "{timeout}");
        let modes = serde_json::to_value(FailMode::schema())
            .unwrap()
            .to_string();
        for mode in FailMode::ALL {
            assert!(modes.contains(mode.as_str()), "{modes}");
        }
        let rule = serde_json::to_value(ResourceRule::schema()).unwrap();
        assert!(rule["properties"]["override"].is_object(), "{rule}");
    }

    #[test]
    fn durations_round_trip() {
        for (text, seconds) in [("4m", 240), ("1h30m", 5400), (" 90s\n", 90), ("0", 0)] {
            let duration: PolicyDuration = text.parse().unwrap();
            assert_eq!(duration.0, Duration::from_secs(seconds), "{text}");
        }
        let half: PolicyDuration = "500ms".parse().unwrap();
        assert_eq!(half.0, Duration::from_millis(500));
        assert_eq!(
            PolicyDuration(Duration::from_secs(5400)).to_string(),
            "1h30m"
        );
        assert_eq!(half.to_string(), "500ms");
    }
}
