//! Phase `upgrading`: `helm upgrade --install` with the deploy's values (its hooks are followed
//! in `hooks`).

use std::ffi::OsString;

use serde_json::json;

use super::DeployRun;
use crate::domain::event::{EventType, NewEvent};
use crate::runner::chart::LocalChart;
use crate::runner::helm::{HelmError, HelmSlot, ReleaseInfo, ValuesFiles};

impl DeployRun<'_> {
    pub(super) async fn upgrade(
        &self,
        slot: &HelmSlot,
        chart: &LocalChart,
        post_render: Vec<OsString>,
    ) -> Result<ReleaseInfo, HelmError> {
        let values = ValuesFiles::write(
            &self.helm().config().home,
            &self.deploy.values,
            self.secrets.values(),
        )
        .map_err(|source| HelmError::Io {
            command: "upgrade",
            source,
        })?;
        let mut invocation = self.helm().upgrade(
            &self.target,
            chart.args(),
            &values,
            self.remaining(),
            self.deploy.create_namespace,
        );
        invocation.args.extend(post_render);
        let output = self.run_helm_in(slot, invocation, &self.halt.any).await?;
        let release: ReleaseInfo =
            serde_json::from_str(&output).map_err(|error| HelmError::Unexpected {
                command: "upgrade",
                message: error.to_string(),
            })?;
        self.emit(
            NewEvent::new(
                EventType::HelmOutput,
                format!(
                    "release {} revision {}: {}",
                    self.target.release, release.version, release.info.status
                ),
            )
            .data(json!({"command": "upgrade", "revision": release.version, "status": release.info.status})),
        )
        .await
        .map_err(|error| HelmError::Unexpected {
            command: "upgrade",
            message: error.to_string(),
        })?;
        Ok(release)
    }
}
