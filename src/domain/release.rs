//! A release's identity: the helm release `release` in `namespace` of `cluster` (a kube context).
//! Deploys are serialized per release, tokens are scoped to releases, helm acts on one.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReleaseId {
    /// `default` is the kubeconfig's current context, any other name a context of that name.
    pub cluster: String,
    pub namespace: String,
    pub release: String,
}

impl ReleaseId {
    pub fn new(
        cluster: impl Into<String>,
        namespace: impl Into<String>,
        release: impl Into<String>,
    ) -> Self {
        ReleaseId {
            cluster: cluster.into(),
            namespace: namespace.into(),
            release: release.into(),
        }
    }
}

/// `cluster/namespace/release`, as token targets name it.
impl fmt::Display for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.cluster, self.namespace, self.release)
    }
}
