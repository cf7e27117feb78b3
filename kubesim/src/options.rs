//! How a simulated cluster is set up: shared by the API server, the controllers and the kubelet.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The Kubernetes minor version the cluster emulates (major is always 1). Behaviour that changed between
/// minor versions follows this value; `/version` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KubeVersion {
    pub minor: u32,
}

impl KubeVersion {
    /// Current behaviour (the StatefulSet controller waits for terminating pods, kubernetes PR #123809).
    pub const DEFAULT: KubeVersion = KubeVersion { minor: 31 };
    /// Oldest minor version whose behaviour is emulated.
    pub const OLDEST: KubeVersion = KubeVersion { minor: 27 };

    /// Before 1.31 the StatefulSet controller recreated a pod that reached phase Failed while terminating
    /// (`RecreatingFailedPod`, then `FailedDelete ... not found`).
    pub fn statefulset_recreates_failed_terminating_pods(self) -> bool {
        self.minor < 31
    }
}

impl Default for KubeVersion {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "1.{}", self.minor)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unsupported Kubernetes version {0:?}: expected 1.{min}..=1.{max}, e.g. \"1.29\"", min = KubeVersion::OLDEST.minor, max = 40)]
pub struct KubeVersionError(String);

impl FromStr for KubeVersion {
    type Err = KubeVersionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let minor = text
            .trim_start_matches('v')
            .strip_prefix("1.")
            .and_then(|rest| rest.split('.').next())
            .and_then(|minor| minor.parse::<u32>().ok())
            .filter(|minor| (KubeVersion::OLDEST.minor..=40).contains(minor))
            .ok_or_else(|| KubeVersionError(text.to_owned()))?;
        Ok(KubeVersion { minor })
    }
}

/// Options of one simulated cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Number of simulated nodes (DaemonSets place one pod on each).
    pub nodes: u32,
    /// Multiplies every simulated duration (behaviour delays, back-off, grace periods, controller
    /// deadlines): 0.1 runs scenarios ten times faster than a real cluster would.
    pub time_scale: f64,
    pub kube_version: KubeVersion,
}

impl ClusterOptions {
    /// A simulated duration, scaled to wall-clock time.
    pub fn scaled(&self, simulated: Duration) -> Duration {
        simulated.mul_f64(self.time_scale)
    }
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            nodes: 3,
            time_scale: 1.0,
            kube_version: KubeVersion::DEFAULT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_minor_versions_and_rejects_others() {
        assert_eq!("1.29".parse::<KubeVersion>().unwrap().minor, 29);
        assert_eq!("v1.31.2".parse::<KubeVersion>().unwrap().minor, 31);
        assert!("2.1".parse::<KubeVersion>().is_err());
        assert!("1.12".parse::<KubeVersion>().is_err());
    }

    #[test]
    fn recreating_failed_pods_stops_at_1_31() {
        assert!(KubeVersion { minor: 29 }.statefulset_recreates_failed_terminating_pods());
        assert!(!KubeVersion::DEFAULT.statefulset_recreates_failed_terminating_pods());
    }
}
