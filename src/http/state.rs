//! What the HTTP handlers share: built by `startup` from the configuration. Cheap to clone.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::auth::Authenticator;
use super::revocations::Revocations;
use super::server::ConnectionLimits;
use crate::bus::EventHub;
use crate::domain::chart::ChartSources;
use crate::domain::notify::NotifyRules;
use crate::domain::public_url::PublicUrl;
use crate::domain::sealing::ServerKey;
use crate::domain::webhooks::HookDefinition;
use crate::runner::{Helm, SecretKeeper};
use crate::store::reporter::ReporterRole;
use crate::store::submissions::Submissions;
use crate::telemetry::Metrics;

#[derive(Clone)]
pub struct ApiState {
    pub pool: PgPool,
    /// Queues `fifo` deploys submitted at the same moment together.
    pub submissions: Submissions,
    pub events: EventHub,
    pub auth: Arc<Authenticator>,
    /// The chart catalog and the repositories and registries charts may come from.
    pub charts: Arc<ChartSources>,
    pub metrics: Arc<Metrics>,
    /// Whether this replica exports the figures read from the database.
    pub reporter: ReporterRole,
    /// Keeps the secret values of accepted deploys for the runner.
    pub secrets: SecretKeeper,
    /// `?dry_run=true` renders with helm.
    pub helm: Arc<Helm>,
    pub limits: ApiLimits,
    /// Seals secrets the admin APIs store; `None`: they refuse to store secrets.
    pub secret_key: Option<ServerKey>,
    /// The base of absolute links the API hands out.
    pub public_url: Option<PublicUrl>,
    /// Tokens revoked or expired: their SSE streams end.
    pub revocations: Revocations,
    /// What a deploy's `notify` entries and subscriptions may ask for (secrets, destinations).
    pub notify_rules: Arc<NotifyRules>,
    /// The hooks of the configuration file (those of the admin API are in the database).
    pub configured_hooks: Arc<[HookDefinition]>,
    /// Cancelled at shutdown: SSE streams end.
    pub shutdown: CancellationToken,
}

impl FromRef<ApiState> for Arc<Authenticator> {
    fn from_ref(state: &ApiState) -> Self {
        state.auth.clone()
    }
}

/// Limits of the HTTP surface.
#[derive(Debug, Clone, Copy)]
pub struct ApiLimits {
    /// Largest accepted request body.
    pub body_limit: usize,
    /// Interval of SSE keep-alive comments.
    pub sse_keep_alive: Duration,
    /// Timeouts and header limits of client connections.
    pub connection: ConnectionLimits,
}
