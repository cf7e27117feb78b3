//! Why a deploy ended as it did: one closed vocabulary (DESIGN §3) for `verdict.reason`, resource
//! failures and incidents, the `report` event, metrics labels and `rollcall explain`, so that a bot
//! or a CI job can switch on it and metrics labels stay bounded. Kubernetes' own words (a container's
//! termination reason, a Job condition's reason, helm's error) travel beside it in [`VerdictDetail`].

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{RefOr, SchemaFormat};

use super::event::ResourceRef;
use super::storable::storable_text;

macro_rules! verdict_reasons {
    ($($(#[doc = $doc:literal])+ $variant:ident,)*) => {
        /// Why a deploy, a resource or an incident failed (or a deploy ended without succeeding).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum VerdictReason {
            $($(#[doc = $doc])+ $variant,)*
        }

        impl VerdictReason {
            pub const ALL: &'static [VerdictReason] = &[$(VerdictReason::$variant,)*];

            /// The reason as clients see it: the variant's name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(VerdictReason::$variant => stringify!($variant),)*
                }
            }

            /// What the reason means, for the API reference.
            pub fn description(self) -> &'static str {
                match self {
                    $(VerdictReason::$variant => concat!($($doc),+).trim_ascii(),)*
                }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $(stringify!($variant) => Some(VerdictReason::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

verdict_reasons! {
    /// Containers crashed (exited non-zero or were killed) more often than the allowance permits,
    /// whatever the pod's current waiting state; the detail carries the exit code, signal and
    /// termination reason (`Error`, `OOMKilled`, ...).
    CrashLoopBackOff,
    /// A container of a pod that is not restarted (`restartPolicy: Never`, e.g. a Job's) exited
    /// non-zero: evidence against the Job's `backoffLimit`.
    ContainerFailed,
    /// The image cannot be pulled; the kubelet is backing off before trying again.
    ImagePullBackOff,
    /// Pulling the image failed (unknown image or tag, registry unreachable or refusing).
    ErrImagePull,
    /// The image is not on the node and `imagePullPolicy: Never` forbids pulling it (terminal).
    ErrImageNeverPull,
    /// The image reference is malformed (terminal).
    InvalidImageName,
    /// The container's configuration refers to something missing (a ConfigMap, Secret or key).
    CreateContainerConfigError,
    /// The runtime could not create the container.
    CreateContainerError,
    /// The runtime could not start the container.
    RunContainerError,
    /// A container's `preStart` hook failed.
    PreStartHookError,
    /// A container's `postStart` hook failed.
    PostStartHookError,
    /// A container's readiness probe kept failing past its tolerance (`initialDelaySeconds +
    /// periodSeconds × failureThreshold`, or `ignore-readiness-probe-fails-for-<container>`), as the
    /// kubelet reported.
    ReadinessProbeFailed,
    /// A pod reached phase `Failed` (evicted, past its `activeDeadlineSeconds`, node lost, ...);
    /// the detail carries Kubernetes' reason.
    PodFailed,
    /// A controller could not create pods (quota, admission webhook, pod security).
    FailedCreate,
    /// The Deployment did not progress within its `progressDeadlineSeconds` (terminal).
    ProgressDeadlineExceeded,
    /// The Job's pods failed more often than its `backoffLimit` allows (terminal).
    BackoffLimitExceeded,
    /// The Job ran longer than its `activeDeadlineSeconds` (terminal).
    DeadlineExceeded,
    /// The Job failed for another reason (a pod failure policy, too many failed indexes); the
    /// detail carries the condition's reason.
    JobFailed,
    /// The PersistentVolumeClaim lost its volume (terminal).
    ClaimLost,
    /// A CustomResourceDefinition's names conflict with another's (`NamesAccepted=False`): its
    /// custom resources cannot be served; the detail carries the condition's reason.
    NamesNotAccepted,
    /// A custom resource reports a failure (`Stalled=True`, a failed phase word, or what its
    /// configured rule calls a failure); the detail carries its own reason or phase.
    CustomResourceFailed,
    /// A resource showed no change for its `no-activity-timeout`.
    NoActivityTimeout,
    /// The deploy's timeout passed (while helm ran, or while resources were still not ready).
    Timeout,
    /// A chart hook (e.g. a pre-upgrade migration Job) failed, or helm gave up waiting for it; the
    /// verdict names the hook, the detail carries the hook's own reason.
    HookFailed,
    /// helm failed for a reason not classified otherwise; the message says what helm said.
    HelmFailed,
    /// The chart does not render with these values (template error, invalid manifest).
    RenderFailed,
    /// Another helm operation holds the release (`pending-install`, `pending-upgrade`,
    /// `pending-rollback`).
    ReleaseLocked,
    /// The Kubernetes API refused a request or could not be reached.
    KubernetesApiError,
    /// The release's namespace does not exist and the request did not ask to create it.
    NamespaceNotFound,
    /// The chart could not be found or fetched (catalog, repository, registry, version).
    ChartUnavailable,
    /// A tracking annotation or request override is invalid; nothing was applied.
    InvalidTrackingPolicy,
    /// The deploy's secret values were held only by a rollcall process that stopped; submit the
    /// deploy again.
    SecretValuesUnavailable,
    /// Someone cancelled the deploy.
    Cancelled,
    /// The rollcall process running the deploy stopped before it could record why it failed.
    Interrupted,
    /// rollcall itself failed while tracking (a bug or exhausted resources); the message says
    /// what.
    InternalError,
}

impl std::fmt::Display for VerdictReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl VerdictReason {
    /// The reason for a container waiting in `reason` (kubelet, pkg/kubelet/images and
    /// kuberuntime), when that waiting is a failure.
    pub fn of_waiting_container(reason: &str) -> Option<Self> {
        Some(match reason {
            "CrashLoopBackOff" => VerdictReason::CrashLoopBackOff,
            "ImagePullBackOff" => VerdictReason::ImagePullBackOff,
            "ErrImagePull" => VerdictReason::ErrImagePull,
            "ErrImageNeverPull" => VerdictReason::ErrImageNeverPull,
            "InvalidImageName" => VerdictReason::InvalidImageName,
            "CreateContainerConfigError" => VerdictReason::CreateContainerConfigError,
            "CreateContainerError" => VerdictReason::CreateContainerError,
            "RunContainerError" => VerdictReason::RunContainerError,
            "PreStartHookError" => VerdictReason::PreStartHookError,
            "PostStartHookError" => VerdictReason::PostStartHookError,
            _ => return None,
        })
    }

    /// The reason for a failed Job, from its `Failed` (or `FailureTarget`) condition's reason.
    pub fn of_failed_job(condition_reason: &str) -> Self {
        match condition_reason {
            "BackoffLimitExceeded" => VerdictReason::BackoffLimitExceeded,
            "DeadlineExceeded" => VerdictReason::DeadlineExceeded,
            _ => VerdictReason::JobFailed,
        }
    }
}

/// The set is documented in the API reference: an enum with a description per value (in the
/// schema's description and, for generators, `x-enum-descriptions`).
impl utoipa::PartialSchema for VerdictReason {
    fn schema() -> RefOr<Schema> {
        let values = VerdictReason::ALL.iter().map(|reason| reason.as_str());
        let described: Vec<String> = VerdictReason::ALL
            .iter()
            .map(|reason| format!("- `{reason}`: {}", reason.description()))
            .collect();
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(None::<SchemaFormat>)
            .enum_values(Some(values))
            .description(Some(format!(
                "Why a deploy, a resource or an incident failed; one closed set:\n\n{}",
                described.join("\n")
            )))
            .extensions(Some(
                ExtensionsBuilder::new()
                    .add(
                        "x-enum-descriptions",
                        VerdictReason::ALL
                            .iter()
                            .map(|reason| reason.description())
                            .collect::<Vec<_>>(),
                    )
                    .build(),
            ))
            .into()
    }
}

impl ToSchema for VerdictReason {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("VerdictReason")
    }
}

/// The Kubernetes (or helm) detail behind a reason: who failed, and their own words.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerdictDetail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The failed container instance's exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that ended the container instance, when the runtime reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Kubernetes' termination reason of that instance (`Error`, `OOMKilled`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_reason: Option<String>,
    /// The container's restart count when the failure was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_count: Option<i32>,
    /// The reporter's own word where it is not the reason itself: a Job condition's or a pod's
    /// reason (`Evicted`), a custom resource's `Stalled` reason or phase, a hook's failure reason,
    /// helm's error class, or a reason recorded by an older rollcall.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_reason: Option<String>,
}

impl VerdictDetail {
    pub fn is_empty(&self) -> bool {
        self == &VerdictDetail::default()
    }

    /// Only `original_reason` set.
    pub fn original(reason: impl Into<String>) -> Self {
        VerdictDetail {
            original_reason: Some(reason.into()),
            ..VerdictDetail::default()
        }
    }
}

/// Why a deploy ended as it did (absent when it succeeded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Verdict {
    pub reason: VerdictReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceRef>,
    pub message: String,
    #[serde(default, skip_serializing_if = "VerdictDetail::is_empty")]
    pub detail: VerdictDetail,
}

impl Verdict {
    /// Replaces what PostgreSQL cannot store (see [`crate::domain::storable`]).
    pub fn make_storable(&mut self) {
        storable_text(&mut self.message);
        if let Some(resource) = &mut self.resource {
            resource.make_storable();
        }
        let detail = &mut self.detail;
        for text in [
            &mut detail.pod,
            &mut detail.container,
            &mut detail.termination_reason,
            &mut detail.original_reason,
        ]
        .into_iter()
        .flatten()
        {
            storable_text(text);
        }
    }

    /// A verdict about the deploy as a whole (no resource, no Kubernetes detail).
    pub fn new(reason: VerdictReason, message: impl Into<String>) -> Self {
        Verdict {
            reason,
            resource: None,
            message: message.into(),
            detail: VerdictDetail::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_one_spelling_and_a_description() {
        for reason in VerdictReason::ALL {
            let wire = serde_json::to_value(reason).unwrap();
            assert_eq!(wire, reason.as_str());
            assert_eq!(VerdictReason::parse(reason.as_str()), Some(*reason));
            assert_eq!(
                serde_json::from_value::<VerdictReason>(wire).unwrap(),
                *reason
            );
            assert!(
                reason.as_str().chars().next().unwrap().is_ascii_uppercase()
                    && reason.as_str().chars().all(|c| c.is_ascii_alphanumeric()),
                "{reason} is not CamelCase"
            );
            assert!(reason.description().len() > 20, "{reason}");
        }
        assert!(serde_json::from_value::<VerdictReason>("crash_loop".into()).is_err());
    }

    #[test]
    fn the_schema_lists_every_reason_with_its_description() {
        let schema =
            serde_json::to_value(<VerdictReason as utoipa::PartialSchema>::schema()).unwrap();
        let values: Vec<&str> = schema["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|value| value.as_str().unwrap())
            .collect();
        let names: Vec<&str> = VerdictReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(values, names);
        let descriptions = schema["x-enum-descriptions"].as_array().unwrap();
        assert_eq!(descriptions.len(), names.len());
        let text = schema["description"].as_str().unwrap();
        for reason in VerdictReason::ALL {
            assert!(
                text.contains(&format!("- `{reason}`: {}", reason.description())),
                "{reason}"
            );
        }
    }

    #[test]
    fn an_empty_detail_is_left_out() {
        let verdict = Verdict::new(VerdictReason::Cancelled, "cancelled by ci");
        let json = serde_json::to_value(&verdict).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"reason": "Cancelled", "message": "cancelled by ci"})
        );
        assert_eq!(serde_json::from_value::<Verdict>(json).unwrap(), verdict);
    }
}
