//! The lease of a running deploy: renewed while it runs; a cancel request, a lost lease or this
//! process's shutdown halts the deploy's work.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::super::Runner;
use crate::domain::deploy::DeployStatus;
use crate::store;

/// Longest pause between lease renewals; a cancel request is noticed at the next renewal.
const MAX_RENEW_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HaltCause {
    /// A cancel was requested: stop, repair, end `cancelled`.
    Cancelled,
    /// Another process holds the lease now: stop touching the deploy.
    LeaseLost,
    /// This process is stopping: stop and hand the lease back.
    Shutdown,
}

/// Stops a deploy's work from outside (the lease keeper).
pub(super) struct Halt {
    /// Cancelled for any cause: stops helm and tracking.
    pub(super) any: CancellationToken,
    /// Cancelled only when the deploy must be left alone; the repair after a cancel runs under it.
    pub(super) abandon: CancellationToken,
    cause: Mutex<Option<HaltCause>>,
}

impl Halt {
    pub(super) fn new() -> Self {
        Halt {
            any: CancellationToken::new(),
            abandon: CancellationToken::new(),
            cause: Mutex::new(None),
        }
    }

    pub(super) fn trigger(&self, cause: HaltCause) {
        {
            let mut current = self.cause.lock().unwrap_or_else(|p| p.into_inner());
            // Leaving the deploy alone overrides a cancel in progress, never the other way round.
            if current.is_none() || cause != HaltCause::Cancelled {
                *current = Some(cause);
            }
        }
        self.any.cancel();
        if cause != HaltCause::Cancelled {
            self.abandon.cancel();
        }
    }

    pub(super) fn cause(&self) -> Option<HaltCause> {
        *self.cause.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Renews the lease until `done`; notices cancel requests, a lost lease and shutdown.
pub(super) async fn keep_lease(
    runner: Arc<Runner>,
    id: uuid::Uuid,
    halt: Arc<Halt>,
    done: CancellationToken,
) {
    let every = (runner.options.lease / 3).min(MAX_RENEW_INTERVAL);
    let shutdown = runner.context.shutdown.clone();
    loop {
        tokio::select! {
            () = done.cancelled() => return,
            () = shutdown.cancelled() => {
                halt.trigger(HaltCause::Shutdown);
                return;
            }
            () = tokio::time::sleep(every) => {}
        }
        let until = Utc::now() + runner.options.lease;
        match store::deploys::renew_lease(
            runner.context.events.pool(),
            id,
            &runner.options.owner,
            until,
        )
        .await
        {
            Ok(Some(DeployStatus::Cancelling)) => halt.trigger(HaltCause::Cancelled),
            Ok(Some(_)) => {}
            Ok(None) => {
                tracing::warn!(deploy_id = %id, "lease lost; leaving the deploy to its new owner");
                halt.trigger(HaltCause::LeaseLost);
                return;
            }
            // Retried at the next tick; if the database stays away the lease runs out and another
            // process (or this one) resumes the deploy.
            Err(error) => tracing::warn!(deploy_id = %id, %error, "cannot renew the lease"),
        }
    }
}
