//! Per-GroupKind rules for custom resources, from configuration (DESIGN §5.1): which conditions or
//! `status.phase` values mean ready or failed for one kind, where the generic kstatus reading
//! (`custom.rs`) can only guess.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::Deserialize;

use super::ResourceKey;
use super::object::is_built_in_group;

/// A rule as written in the configuration file (`[[tracking.custom_resources]]`), not checked yet.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomResourceRuleSpec {
    pub group: String,
    pub kind: String,
    #[serde(default)]
    pub ready_when: Vec<ConditionSpec>,
    #[serde(default)]
    pub failed_when: Vec<ConditionSpec>,
    #[serde(default)]
    pub ready_phases: Vec<String>,
    #[serde(default)]
    pub failed_phases: Vec<String>,
    /// Default true: a failure fails the resource at once, whatever the allowance.
    pub terminal: Option<bool>,
}

/// `{condition = "Available", status = "True"}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionSpec {
    pub condition: String,
    pub status: String,
}

/// The `status` of a Kubernetes condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

impl FromStr for ConditionStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        [
            ConditionStatus::True,
            ConditionStatus::False,
            ConditionStatus::Unknown,
        ]
        .into_iter()
        .find(|status| status.as_str().eq_ignore_ascii_case(text))
        .ok_or_else(|| format!("expected True, False or Unknown, got {text:?}"))
    }
}

/// A condition of type `condition` with status `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionMatch {
    pub condition: String,
    pub status: ConditionStatus,
}

impl fmt::Display for ConditionMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.condition, self.status.as_str())
    }
}

/// How one custom resource kind is read. Its ready criteria replace the generic readiness reading,
/// its failure criteria the generic failure signals (`Stalled`, failed phase words); what it leaves
/// out is read generically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomResourceRule {
    pub group: String,
    pub kind: String,
    /// Ready when every one of these holds (and the phase is a ready phase, if any are given).
    pub ready_when: Vec<ConditionMatch>,
    /// Failed when any of these holds.
    pub failed_when: Vec<ConditionMatch>,
    /// `status.phase` values meaning ready / failed, lowercase (phases compare case-insensitively).
    pub ready_phases: Vec<String>,
    pub failed_phases: Vec<String>,
    /// A failure fails the resource at once; otherwise each failure (a condition transition or a
    /// phase per generation) is one incident counted against the allowance.
    pub terminal: bool,
}

impl CustomResourceRule {
    pub(crate) fn decides_readiness(&self) -> bool {
        !self.ready_when.is_empty() || !self.ready_phases.is_empty()
    }

    pub(crate) fn decides_failure(&self) -> bool {
        !self.failed_when.is_empty() || !self.failed_phases.is_empty()
    }
}

/// What is wrong with one field of a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RuleFieldError {
    pub field: String,
    pub message: String,
}

impl RuleFieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        RuleFieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An invalid rule, named by its place in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tracking.custom_resources[{index}] ({group}/{kind}): {error}")]
pub struct RuleError {
    pub index: usize,
    pub group: String,
    pub kind: String,
    pub error: RuleFieldError,
}

fn conditions(
    field: &str,
    specs: Vec<ConditionSpec>,
) -> Result<Vec<ConditionMatch>, RuleFieldError> {
    specs
        .into_iter()
        .enumerate()
        .map(|(index, spec)| {
            let condition = spec.condition.trim().to_owned();
            if condition.is_empty() {
                return Err(RuleFieldError::new(
                    format!("{field}[{index}].condition"),
                    "must name a condition type",
                ));
            }
            let status = spec.status.trim().parse().map_err(|message| {
                RuleFieldError::new(format!("{field}[{index}].status"), message)
            })?;
            Ok(ConditionMatch { condition, status })
        })
        .collect()
}

fn phases(field: &str, phases: Vec<String>) -> Result<Vec<String>, RuleFieldError> {
    phases
        .into_iter()
        .enumerate()
        .map(|(index, phase)| {
            let phase = phase.trim().to_lowercase();
            if phase.is_empty() {
                return Err(RuleFieldError::new(
                    format!("{field}[{index}]"),
                    "must not be empty",
                ));
            }
            Ok(phase)
        })
        .collect()
}

/// A criterion cannot mean both failed and ready: the first failed one that is also a ready one
/// is named by its place (`failed_when[1]`).
fn disjoint<T: PartialEq>(
    (failed_field, failed): (&str, &[T]),
    (ready_field, ready): (&str, &[T]),
    describe: impl Fn(&T) -> String,
) -> Result<(), RuleFieldError> {
    match failed
        .iter()
        .position(|criterion| ready.contains(criterion))
    {
        Some(index) => Err(RuleFieldError::new(
            format!("{failed_field}[{index}]"),
            format!("{} is also in {ready_field}", describe(&failed[index])),
        )),
        None => Ok(()),
    }
}

impl TryFrom<CustomResourceRuleSpec> for CustomResourceRule {
    type Error = RuleFieldError;

    fn try_from(spec: CustomResourceRuleSpec) -> Result<Self, RuleFieldError> {
        let group = spec.group.trim().to_owned();
        let valid_group = group
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
        if group.is_empty() || !valid_group {
            return Err(RuleFieldError::new(
                "group",
                format!("expected an API group such as example.com, got {group:?}"),
            ));
        }
        if is_built_in_group(&group) {
            return Err(RuleFieldError::new(
                "group",
                format!("{group} is a Kubernetes API group; rules apply to custom resources only"),
            ));
        }
        let kind = spec.kind.trim().to_owned();
        if !kind.starts_with(|c: char| c.is_ascii_uppercase())
            || !kind.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(RuleFieldError::new(
                "kind",
                format!("expected a kind such as Widget, got {kind:?}"),
            ));
        }
        let rule = CustomResourceRule {
            group,
            kind,
            ready_when: conditions("ready_when", spec.ready_when)?,
            failed_when: conditions("failed_when", spec.failed_when)?,
            ready_phases: phases("ready_phases", spec.ready_phases)?,
            failed_phases: phases("failed_phases", spec.failed_phases)?,
            terminal: spec.terminal.unwrap_or(true),
        };
        if !rule.decides_readiness() && !rule.decides_failure() {
            return Err(RuleFieldError::new(
                "ready_when",
                "a rule needs at least one of ready_when, failed_when, ready_phases, failed_phases",
            ));
        }
        disjoint(
            ("failed_when", &rule.failed_when),
            ("ready_when", &rule.ready_when),
            ToString::to_string,
        )?;
        disjoint(
            ("failed_phases", &rule.failed_phases),
            ("ready_phases", &rule.ready_phases),
            |phase| format!("phase {phase:?}"),
        )?;
        Ok(rule)
    }
}

/// The configured rules, one per (group, kind); cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct CustomResourceRules {
    by_kind: Arc<BTreeMap<(String, String), CustomResourceRule>>,
}

impl CustomResourceRules {
    /// Checks every rule; the first invalid one is named by its index in the configuration.
    pub fn from_specs(specs: Vec<CustomResourceRuleSpec>) -> Result<Self, RuleError> {
        let mut by_kind = BTreeMap::new();
        for (index, spec) in specs.into_iter().enumerate() {
            let named = |error| RuleError {
                index,
                group: spec.group.clone(),
                kind: spec.kind.clone(),
                error,
            };
            let rule = CustomResourceRule::try_from(spec.clone()).map_err(named)?;
            let group_kind = (rule.group.clone(), rule.kind.clone());
            if by_kind.insert(group_kind, rule).is_some() {
                return Err(named(RuleFieldError::new(
                    "kind",
                    "a rule for this group and kind is already configured",
                )));
            }
        }
        Ok(CustomResourceRules {
            by_kind: Arc::new(by_kind),
        })
    }

    pub fn get(&self, group: &str, kind: &str) -> Option<&CustomResourceRule> {
        self.by_kind.get(&(group.to_owned(), kind.to_owned()))
    }

    /// The rule for a tracked resource's kind, by the group of its apiVersion.
    pub(crate) fn for_resource(&self, key: &ResourceKey) -> Option<&CustomResourceRule> {
        let group = key
            .api_version
            .rsplit_once('/')
            .map_or("", |(group, _)| group);
        self.get(group, &key.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(condition: &str, status: &str) -> ConditionSpec {
        ConditionSpec {
            condition: condition.to_owned(),
            status: status.to_owned(),
        }
    }

    fn widget() -> CustomResourceRuleSpec {
        CustomResourceRuleSpec {
            group: "example.com".to_owned(),
            kind: "Widget".to_owned(),
            ready_when: vec![condition("Available", "True")],
            ..CustomResourceRuleSpec::default()
        }
    }

    fn field_error(spec: CustomResourceRuleSpec) -> String {
        CustomResourceRule::try_from(spec)
            .expect_err("invalid")
            .to_string()
    }

    #[test]
    fn a_valid_rule_is_normalized() {
        let rule = CustomResourceRule::try_from(CustomResourceRuleSpec {
            failed_when: vec![condition("Degraded", "true")],
            ready_phases: vec![" Running ".to_owned()],
            ..widget()
        })
        .expect("valid");
        assert_eq!(rule.failed_when[0].status, ConditionStatus::True);
        assert_eq!(rule.ready_phases, ["running"]);
        assert!(rule.terminal, "terminal by default");
        assert_eq!(rule.ready_when[0].to_string(), "Available=True");
    }

    #[test]
    fn invalid_rules_name_the_field() {
        assert_eq!(
            field_error(CustomResourceRuleSpec {
                ready_when: vec![condition("Available", "yes")],
                ..widget()
            }),
            "ready_when[0].status: expected True, False or Unknown, got \"yes\""
        );
        assert!(
            field_error(CustomResourceRuleSpec {
                group: "apps".to_owned(),
                ..widget()
            })
            .starts_with("group: apps is a Kubernetes API group")
        );
        assert!(
            field_error(CustomResourceRuleSpec {
                kind: "widget".to_owned(),
                ..widget()
            })
            .starts_with("kind:")
        );
        assert!(
            field_error(CustomResourceRuleSpec {
                ready_when: Vec::new(),
                ..widget()
            })
            .contains("at least one of")
        );
        assert_eq!(
            field_error(CustomResourceRuleSpec {
                failed_when: vec![condition("Available", "True")],
                ..widget()
            }),
            "failed_when[0]: Available=True is also in ready_when"
        );
        assert_eq!(
            field_error(CustomResourceRuleSpec {
                ready_phases: vec!["Running".to_owned()],
                failed_phases: vec!["Broken".to_owned(), "running".to_owned()],
                ..widget()
            }),
            "failed_phases[1]: phase \"running\" is also in ready_phases"
        );
        assert_eq!(
            field_error(CustomResourceRuleSpec {
                failed_phases: vec![String::new()],
                ..widget()
            }),
            "failed_phases[0]: must not be empty"
        );
    }

    #[test]
    fn rules_are_found_by_group_and_kind_and_duplicates_are_refused() {
        let rules = CustomResourceRules::from_specs(vec![widget()]).expect("valid");
        let key = ResourceKey::new("example.com/v1beta1", "Widget", Some("prod"), "w");
        assert!(rules.for_resource(&key).is_some());
        let other = ResourceKey::new("other.io/v1", "Widget", Some("prod"), "w");
        assert!(rules.for_resource(&other).is_none());
        let error =
            CustomResourceRules::from_specs(vec![widget(), widget()]).expect_err("duplicate");
        assert_eq!(
            error.to_string(),
            "tracking.custom_resources[1] (example.com/Widget): kind: a rule for this group and kind is already configured"
        );
    }
}
