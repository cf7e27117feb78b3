//! Outgoing notifications (DESIGN §6.3) from the outbox: the worker that claims due rows and
//! delivers them ([`worker`]), the bodies it sends ([`format`]), Standard Webhooks signing
//! ([`signing`]), the destination guard ([`destination`]), the retry schedule ([`retry`]) and
//! the configuration ([`settings`]).
//!
//! The outbox rows themselves are written by the statement that writes their event
//! (`store::deploy_events`), so that none is lost and none is sent for an event that was rolled
//! back. Every replica runs a worker; they share the outbox through `FOR UPDATE SKIP LOCKED`.

pub mod destination;
pub mod format;
pub mod retry;
pub mod settings;
pub mod signing;
pub mod worker;

use std::sync::Arc;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub use destination::GuardedClient;
pub use retry::RetryPolicy;
pub use settings::{DeliveryOptions, NotifyConfig, NotifySection};
pub use signing::Signer;
pub use worker::spawn;

use crate::domain::public_url::PublicUrl;
use crate::telemetry::Metrics;

/// What the delivery worker uses, and nothing else.
#[derive(Clone)]
pub struct NotifyContext {
    pub pool: PgPool,
    pub signer: Arc<Signer>,
    pub client: GuardedClient,
    /// The base of the links in notifications; without it links are paths.
    pub public_url: Option<PublicUrl>,
    pub metrics: Arc<Metrics>,
    pub options: DeliveryOptions,
    pub shutdown: CancellationToken,
}
