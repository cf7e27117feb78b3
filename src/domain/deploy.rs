//! A deploy request parsed once, and the deploy state machine.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::chart::{ChartSource, ChartSources, ChartSpec};
use super::duration::BoundedDuration;
use super::labels::Labels;
use super::names::{ClusterName, Namespace, ReleaseName};
use super::notify::{NotifySpec, NotifyTarget};
use super::policy::TrackingOverrides;
use super::release::ReleaseId;
use super::sealing::{SealingError, ServerKey};
use super::{FieldError, FieldErrors};

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
pub const MIN_TIMEOUT: Duration = Duration::from_secs(1);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// What to do when the release already has a queued or running deploy.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema, sqlx::Type,
)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum QueueMode {
    /// Wait behind the earlier deploys.
    #[default]
    Fifo,
    /// Cancel the older queued deploys of the release.
    Supersede,
    /// Answer 409 while another deploy of the release is queued or running.
    Reject,
}

/// `POST /v1/deploys` body as sent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// Helm release name (DNS-1123 label, ≤ 53 characters).
    #[schema(
        pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        min_length = 1,
        max_length = 53
    )]
    pub release: String,
    /// A DNS-1123 label, ≤ 63 characters.
    #[schema(
        pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        min_length = 1,
        max_length = 63
    )]
    pub namespace: String,
    /// Create the namespace when it does not exist (`helm upgrade --create-namespace`); without
    /// it, a deploy to a missing namespace fails.
    #[serde(default)]
    pub create_namespace: bool,
    #[serde(default)]
    #[schema(schema_with = ClusterName::optional_schema)]
    pub cluster: Option<String>,
    pub chart: ChartSpec,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub values: Option<serde_json::Map<String, serde_json::Value>>,
    /// Values used for this run only: sealed until the deploy ends, never echoed.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub secret_values: Option<serde_json::Map<String, serde_json::Value>>,
    /// How long the deploy may take, e.g. `5m` or `1h30m` (units `ms`, `s`, `m`, `h`); default
    /// `10m`, from `1s` to `24h`. It covers the deploy's own helm runs and its tracking, not its
    /// time in the queue nor waits for one of the server's helm slots (helm processes run in a
    /// small pool, tracking does not wait).
    #[serde(default)]
    #[schema(pattern = "^(0|([0-9]+(ms|s|m|h))+)$")]
    pub timeout: Option<String>,
    #[serde(default)]
    pub rollback_on_failure: bool,
    #[serde(default)]
    pub queue: QueueMode,
    #[serde(default)]
    pub tracking: Option<TrackingOverrides>,
    #[serde(default)]
    pub notify: Vec<NotifySpec>,
    #[serde(default)]
    #[schema(schema_with = super::labels::labels_schema)]
    pub labels: BTreeMap<String, String>,
}

/// A valid deploy request.
#[derive(Debug, Clone)]
pub struct NewDeploy {
    pub cluster: ClusterName,
    pub namespace: Namespace,
    pub create_namespace: bool,
    pub release: ReleaseName,
    pub chart: ChartSource,
    pub values: serde_json::Map<String, serde_json::Value>,
    pub secret_values: Option<SecretValues>,
    pub timeout: BoundedDuration,
    pub rollback_on_failure: bool,
    pub queue: QueueMode,
    pub tracking: TrackingOverrides,
    pub notify: Vec<NotifyTarget>,
    pub labels: Labels,
}

/// Secret values: their `Debug` hides them; they are stored only sealed, until the deploy ends.
#[derive(Clone)]
pub struct SecretValues(serde_json::Map<String, serde_json::Value>);

impl SecretValues {
    /// The server key's digest of the canonical JSON (keys sorted): the same values give the same
    /// digest, and a guess cannot be checked against it without the key.
    pub fn digest(&self, key: &ServerKey) -> String {
        let canonical = serde_json::to_vec(&self.0).expect("a JSON map serializes");
        key.digest("deploy-secret-values", &canonical)
    }

    pub fn expose(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.0
    }

    /// Sealed for the deploy `deploy_id` only: a sealed blob moved to another deploy does not open.
    pub fn seal(&self, key: &ServerKey, deploy_id: Uuid) -> String {
        let json = serde_json::to_string(&self.0).expect("a JSON map serializes");
        key.seal(&sealing_context(deploy_id), &json)
    }

    /// Opens what [`SecretValues::seal`] sealed for `deploy_id`.
    pub fn open(key: &ServerKey, deploy_id: Uuid, sealed: &str) -> Result<Self, SealingError> {
        let json = key.open(&sealing_context(deploy_id), sealed)?;
        serde_json::from_str(&json)
            .map(SecretValues)
            .map_err(|_| SealingError::CannotOpen)
    }
}

fn sealing_context(deploy_id: Uuid) -> String {
    format!("deploy-secret-values:{deploy_id}")
}

impl fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValues(<redacted>)")
    }
}

impl NewDeploy {
    pub fn release_id(&self) -> ReleaseId {
        ReleaseId::new(
            self.cluster.as_str(),
            self.namespace.as_str(),
            self.release.as_str(),
        )
    }

    pub fn parse(request: DeployRequest, charts: &ChartSources) -> Result<Self, Vec<FieldError>> {
        let mut errors = FieldErrors::default();
        let release = errors.take(ReleaseName::parse(request.release, "release"));
        let namespace = errors.take(Namespace::parse(request.namespace, "namespace"));
        let cluster = match request.cluster {
            Some(cluster) => errors.take(ClusterName::parse(cluster, "cluster")),
            None => Some(ClusterName::default_cluster()),
        };
        let chart = errors.take_all(ChartSource::parse(request.chart, charts));
        let timeout = match request.timeout {
            Some(text) => errors.take(
                BoundedDuration::parse(&text, MIN_TIMEOUT, MAX_TIMEOUT)
                    .map_err(|error| FieldError::new("timeout", error.to_string())),
            ),
            None => Some(
                BoundedDuration::new(DEFAULT_TIMEOUT, MIN_TIMEOUT, MAX_TIMEOUT)
                    .expect("the default timeout is within bounds"),
            ),
        };
        let notify = errors.take_all(NotifyTarget::parse_all(request.notify));
        let labels = errors.take_all(Labels::parse(request.labels));
        match (release, namespace, cluster, chart, timeout, notify, labels) {
            (
                Some(release),
                Some(namespace),
                Some(cluster),
                Some(chart),
                Some(timeout),
                Some(notify),
                Some(labels),
            ) if errors.is_empty() => Ok(Self {
                cluster,
                namespace,
                create_namespace: request.create_namespace,
                release,
                chart,
                values: request.values.unwrap_or_default(),
                secret_values: request.secret_values.map(SecretValues),
                timeout,
                rollback_on_failure: request.rollback_on_failure,
                queue: request.queue,
                tracking: request.tracking.unwrap_or_default(),
                notify,
                labels,
            }),
            _ => Err(errors.into_vec()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum DeployStatus {
    Queued,
    Running,
    /// Cancel requested while running; the runner stops helm and repairs the release.
    Cancelling,
    Succeeded,
    Failed,
    Cancelled,
}

/// An action that the current status does not allow; names both.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} a deploy that is {from}")]
pub struct TransitionError {
    pub from: DeployStatus,
    pub action: &'static str,
}

/// How a running deploy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    Cancelled,
}

impl DeployStatus {
    pub const ALL: [DeployStatus; 6] = [
        DeployStatus::Queued,
        DeployStatus::Running,
        DeployStatus::Cancelling,
        DeployStatus::Succeeded,
        DeployStatus::Failed,
        DeployStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeployStatus::Queued => "queued",
            DeployStatus::Running => "running",
            DeployStatus::Cancelling => "cancelling",
            DeployStatus::Succeeded => "succeeded",
            DeployStatus::Failed => "failed",
            DeployStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            DeployStatus::Succeeded | DeployStatus::Failed | DeployStatus::Cancelled
        )
    }

    /// queued → running (a worker claimed it).
    pub fn start(self) -> Result<Self, TransitionError> {
        match self {
            DeployStatus::Queued => Ok(DeployStatus::Running),
            from => Err(TransitionError {
                from,
                action: "start",
            }),
        }
    }

    /// A queued deploy is cancelled at once; a running one becomes `cancelling` until the runner stops it.
    pub fn cancel(self) -> Result<Self, TransitionError> {
        match self {
            DeployStatus::Queued => Ok(DeployStatus::Cancelled),
            DeployStatus::Running => Ok(DeployStatus::Cancelling),
            from => Err(TransitionError {
                from,
                action: "cancel",
            }),
        }
    }

    /// running or cancelling → a terminal status.
    pub fn finish(self, outcome: Outcome) -> Result<Self, TransitionError> {
        match self {
            DeployStatus::Running | DeployStatus::Cancelling => Ok(match outcome {
                Outcome::Succeeded => DeployStatus::Succeeded,
                Outcome::Failed => DeployStatus::Failed,
                Outcome::Cancelled => DeployStatus::Cancelled,
            }),
            from => Err(TransitionError {
                from,
                action: "finish",
            }),
        }
    }
}

impl fmt::Display for DeployStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a running deploy is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Phase {
    Rendering,
    Upgrading,
    Tracking,
    RollingBack,
}

impl Phase {
    pub const ALL: [Phase; 4] = [
        Phase::Rendering,
        Phase::Upgrading,
        Phase::Tracking,
        Phase::RollingBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Rendering => "rendering",
            Phase::Upgrading => "upgrading",
            Phase::Tracking => "tracking",
            Phase::RollingBack => "rolling_back",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_machine_allows_only_forward_transitions() {
        use DeployStatus::*;
        assert_eq!(Queued.start(), Ok(Running));
        assert_eq!(Queued.cancel(), Ok(Cancelled));
        assert_eq!(Running.cancel(), Ok(Cancelling));
        assert_eq!(Cancelling.finish(Outcome::Cancelled), Ok(Cancelled));
        assert_eq!(Running.finish(Outcome::Failed), Ok(Failed));
        let error = Succeeded.cancel().unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot cancel a deploy that is succeeded"
        );
        assert!(Queued.finish(Outcome::Succeeded).is_err());
        assert!(Running.start().is_err());
        assert!(Cancelled.is_terminal() && !Cancelling.is_terminal());
    }

    #[test]
    fn secret_values_are_redacted_and_digested_canonically() {
        let key = ServerKey::parse(&"0123456789abcdef".repeat(4)).unwrap();
        let a: serde_json::Map<_, _> = serde_json::from_str(r#"{"b":1,"a":2}"#).unwrap();
        let b: serde_json::Map<_, _> = serde_json::from_str(r#"{"a":2,"b":1}"#).unwrap();
        assert_eq!(
            SecretValues(a.clone()).digest(&key),
            SecretValues(b).digest(&key)
        );
        assert_eq!(format!("{:?}", SecretValues(a)), "SecretValues(<redacted>)");
    }

    #[test]
    fn sealed_secret_values_open_only_for_their_deploy() {
        let key = ServerKey::parse(&"0123456789abcdef".repeat(4)).unwrap();
        let values: serde_json::Map<_, _> =
            serde_json::from_str(r#"{"db":{"password":"hunter2-long"}}"#).unwrap();
        let (deploy, other) = (Uuid::now_v7(), Uuid::now_v7());
        let sealed = SecretValues(values.clone()).seal(&key, deploy);
        assert!(!sealed.contains("hunter2"));
        let opened = SecretValues::open(&key, deploy, &sealed).unwrap();
        assert_eq!(opened.expose(), &values);
        assert_eq!(
            SecretValues::open(&key, other, &sealed).unwrap_err(),
            SealingError::CannotOpen
        );
    }

    #[test]
    fn every_field_family_reports_its_path() {
        let request: DeployRequest = serde_json::from_value(serde_json::json!({
            "release": "Bad_Name",
            "namespace": "-ns",
            "cluster": "a/b",
            "chart": {"path": "../x"},
            "timeout": "forever",
            "notify": [{"url": "mailto:x"}],
            "labels": {"bad key": "v"}
        }))
        .unwrap();
        let errors = NewDeploy::parse(request, &ChartSources::default()).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "release",
                "namespace",
                "cluster",
                "chart.path",
                "timeout",
                "notify[0].url",
                "labels.bad key"
            ]
        );
    }
}
