//! A release a stopped helm left `pending-*` is repaired, and a cancelled deploy ends `cancelled`
//! with who and why.

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{DeployRun, Interrupted};
use crate::domain::deploy::Outcome;
use crate::domain::event::{EventType, Level, NewEvent};
use crate::domain::verdict::{Verdict, VerdictReason};
use crate::runner::helm::{HelmError, ReleaseInfo};
use crate::store::StoreError;
use crate::store::deploys::{self, Finish};

impl DeployRun<'_> {
    /// A release that a stopped helm left `pending-*` is rolled back to its last good revision (or
    /// uninstalled when it never had one). Returns the revision returned to.
    pub(super) async fn repair(
        &self,
        stop: &CancellationToken,
    ) -> Result<Option<i32>, Interrupted> {
        let status: ReleaseInfo = match self.helm_json(self.helm().status(&self.target), stop).await
        {
            Ok(status) => status,
            Err(HelmError::Cancelled { .. }) => return Err(Interrupted::Halted),
            // A first install that never started, or one whose repair uninstalled it before its
            // process stopped: nothing is left to repair.
            Err(error) if error.is_release_not_found() => {
                self.emit(
                    NewEvent::new(
                        EventType::HelmOutput,
                        "no release to repair: none was installed, or an interrupted repair had \
                         already uninstalled it",
                    )
                    .data(json!({"command": "status", "release": "absent"})),
                )
                .await?;
                return Ok(None);
            }
            // An unreachable cluster: record it.
            Err(error) => {
                self.emit(
                    NewEvent::new(
                        EventType::HelmOutput,
                        format!("release status unknown, nothing repaired: {error}"),
                    )
                    .level(Level::Warning)
                    .data(json!({"command": "status", "reason": error.reason()})),
                )
                .await?;
                return Ok(None);
            }
        };
        if !status.is_pending() {
            return Ok(None);
        }
        self.rollback_event(
            EventType::RollbackStarted,
            Level::Warning,
            format!(
                "release left {} at revision {}; repairing",
                status.info.status, status.version
            ),
            json!({"repair": true, "status": status.info.status, "revision": status.version}),
        )
        .await?;
        // A rollback left pending returns to its recorded target: the newest deployed revision
        // before it may be the failed one it was rolling back from.
        let recorded = match status.info.status.as_str() {
            "pending-rollback" => self
                .stored(|| async move {
                    deploys::get(self.runner.context.events.pool(), self.deploy.id).await
                })
                .await?
                .and_then(|deploy| deploy.rollback_target),
            _ => None,
        };
        let target = match recorded {
            Some(target) => Some(target),
            None => match self.last_good_revision(Some(status.version), stop).await {
                Ok(target) => target,
                Err(HelmError::Cancelled { .. }) => return Err(Interrupted::Halted),
                Err(_) => None,
            },
        };
        let (invocation, done) = match target {
            Some(target) => (
                self.helm().rollback(&self.target, target, self.remaining()),
                format!("release repaired: rolled back to revision {target}"),
            ),
            None => (
                self.helm().uninstall(&self.target, self.remaining()),
                "release repaired: the install that never completed was uninstalled".to_owned(),
            ),
        };
        match self.run_helm(invocation, stop).await {
            Ok(_) => {
                self.rollback_event(
                    EventType::RollbackSucceeded,
                    Level::Info,
                    done,
                    json!({"repair": true, "to_revision": target}),
                )
                .await?;
                Ok(target)
            }
            Err(HelmError::Cancelled { .. }) => Err(Interrupted::Halted),
            Err(error) => {
                self.rollback_event(
                    EventType::RollbackFailed,
                    Level::Error,
                    format!("repair failed: {error}"),
                    json!({"repair": true, "reason": error.reason()}),
                )
                .await?;
                Ok(None)
            }
        }
    }

    /// After a cancel stopped the work: repair the release, then end `cancelled` with who and why.
    pub(super) async fn cancel_and_repair(&self) -> Result<Finish, Interrupted> {
        let repaired = self.repair(&self.halt.abandon).await?;
        let current = self
            .stored(|| async move {
                deploys::get(self.runner.context.events.pool(), self.deploy.id).await
            })
            .await?
            .ok_or(StoreError::DeployNotFound(self.deploy.id))?;
        let by = current
            .summary
            .cancelled_by
            .unwrap_or_else(|| "unknown".into());
        let reason = current.summary.cancel_reason.unwrap_or_default();
        Ok(Finish {
            outcome: Outcome::Cancelled,
            verdict: Some(Verdict::new(
                VerdictReason::Cancelled,
                format!("cancelled by {by}: {reason}"),
            )),
            revision: current.summary.revision,
            rolled_back_to: repaired,
        })
    }
}
