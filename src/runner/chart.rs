//! The chart a deploy's helm commands use: a catalog chart in place, or a repository or OCI chart
//! pulled once (`helm pull`) into a private directory, from an allowed source only, so that the
//! render and the upgrade use the same archive.
//!
//! Credentials of a private source reach helm in 0600 files of a directory of their own (a
//! repositories file, a registry config), never on its command line where `ps` shows them, and
//! that directory is removed as soon as the pull is done. A failed pull is said in one sentence
//! naming the chart and its source; helm's own words (addresses, DNS, TLS) go to the debug log.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::helm::{Helm, HelmError, HelmSlot, Invocation, PrivateDir};
use crate::domain::chart::{ChartSource, ChartSources};
use crate::domain::chart_allowlist::ChartCredentials;
use crate::domain::redaction::Redactor;

/// The name of the one repository in a private repositories file.
const REPOSITORY_ALIAS: &str = "rollcall-source";

/// A chart on local disk; a pulled one is removed when dropped.
#[derive(Debug)]
pub struct LocalChart {
    path: PathBuf,
    _pulled: Option<PrivateDir>,
}

impl LocalChart {
    /// The chart argument of `helm template` and `helm upgrade`.
    pub fn args(&self) -> Vec<OsString> {
        vec![self.path.clone().into_os_string()]
    }
}

/// One helm command of a pull.
struct Step {
    command: &'static str,
    args: Vec<OsString>,
    time_limit: Duration,
}

/// What `helm pull` fetches, from where, and how it authenticates.
struct Pull<'a> {
    /// `web 1.2.0` / `oci://registry/charts/web 1.2.0`, for the message of a failure.
    chart: String,
    /// `repository https://…` / `registry host:port`, for the message of a failure.
    source_name: String,
    /// The chart arguments (`NAME --repo URL` or `oci://…`), `--version` included.
    args: Vec<OsString>,
    credentials: Option<Credentials<'a>>,
}

enum Credentials<'a> {
    /// A repositories file naming the repository `REPOSITORY_ALIAS`; the chart is pulled as
    /// `REPOSITORY_ALIAS/NAME` after `helm repo update` fetched its index.
    Repository {
        url: String,
        credentials: &'a ChartCredentials,
    },
    /// A registry config (Docker's format) with the registry's basic-auth entry.
    Registry {
        registry: String,
        credentials: &'a ChartCredentials,
    },
}

impl Helm {
    /// The deploy's chart on local disk: resolved in the catalog, or pulled (in `slot`) from its
    /// repository or registry, which must still be allowed.
    pub async fn locate(
        &self,
        source: &ChartSource,
        charts: &ChartSources,
        slot: &HelmSlot,
        time_limit: Duration,
        cancel: &CancellationToken,
    ) -> Result<LocalChart, HelmError> {
        let pull = match source {
            ChartSource::Path { path } => {
                let resolved = charts
                    .catalog
                    .resolve(path)
                    .ok()
                    .flatten()
                    .ok_or_else(|| HelmError::ChartNotInCatalog(path.clone()))?;
                return Ok(LocalChart {
                    path: resolved,
                    _pulled: None,
                });
            }
            ChartSource::Repo {
                repo,
                name,
                version,
            } => {
                let (url, allowed) = charts
                    .allowed
                    .repository(repo)
                    .map_err(|_| HelmError::ChartNotAllowed(repo.clone()))?;
                let url = url.to_string();
                let version_args = ["--version".into(), version.into()];
                let (args, credentials) = match &allowed.credentials {
                    None => (
                        [name.into(), "--repo".into(), url.clone().into()]
                            .into_iter()
                            .chain(version_args)
                            .collect(),
                        None,
                    ),
                    Some(credentials) => (
                        [format!("{REPOSITORY_ALIAS}/{name}").into()]
                            .into_iter()
                            .chain(version_args)
                            .collect(),
                        Some(Credentials::Repository {
                            url: url.clone(),
                            credentials,
                        }),
                    ),
                };
                Pull {
                    chart: format!("{name} {version}"),
                    source_name: format!("repository {url}"),
                    args,
                    credentials,
                }
            }
            ChartSource::Oci { oci, version } => {
                let (reference, allowed) = charts
                    .allowed
                    .registry(oci)
                    .map_err(|_| HelmError::ChartNotAllowed(oci.clone()))?;
                let mut args: Vec<OsString> = vec![
                    reference.to_string().into(),
                    "--version".into(),
                    version.into(),
                ];
                if allowed.plain_http {
                    args.push("--plain-http".into());
                }
                Pull {
                    chart: format!("{reference} {version}"),
                    source_name: format!("registry {}", reference.registry()),
                    args,
                    credentials: allowed.credentials.as_ref().map(|credentials| {
                        Credentials::Registry {
                            registry: reference.registry(),
                            credentials,
                        }
                    }),
                }
            }
        };
        self.pull(pull, slot, time_limit, cancel).await
    }

    async fn pull(
        &self,
        pull: Pull<'_>,
        slot: &HelmSlot,
        time_limit: Duration,
        cancel: &CancellationToken,
    ) -> Result<LocalChart, HelmError> {
        let io = |source| HelmError::Io {
            command: "pull",
            source,
        };
        let home = &self.config().home;
        let destination = PrivateDir::create(home, "chart").map_err(io)?;
        // Dropped (removed) when the pull is over, whatever its outcome.
        let private = PrivateDir::create(home, "credentials").map_err(io)?;
        let mut args: Vec<OsString> = vec!["pull".into()];
        args.extend(pull.args.iter().cloned());
        args.extend(["--destination".into(), destination.path().into()]);
        let mut password = None;
        match &pull.credentials {
            None => {}
            Some(Credentials::Repository { url, credentials }) => {
                password = Some(credentials.password());
                let file = json!({
                    "apiVersion": "v1",
                    "repositories": [{
                        "name": REPOSITORY_ALIAS,
                        "url": url,
                        "username": credentials.username,
                        "password": credentials.password(),
                    }],
                });
                let config = private
                    .write("repositories.yaml", file.to_string().as_bytes())
                    .map_err(io)?;
                let repository_args: Vec<OsString> = vec![
                    "--repository-config".into(),
                    config.into(),
                    "--repository-cache".into(),
                    private.path().join("cache").into(),
                ];
                let mut update: Vec<OsString> = vec!["repo".into(), "update".into()];
                update.extend(repository_args.iter().cloned());
                let step = Step {
                    command: "repo update",
                    args: update,
                    time_limit,
                };
                self.quietly(&pull, slot, step, cancel, password).await?;
                args.extend(repository_args);
            }
            Some(Credentials::Registry {
                registry,
                credentials,
            }) => {
                password = Some(credentials.password());
                let auth = BASE64.encode(format!(
                    "{}:{}",
                    credentials.username,
                    credentials.password()
                ));
                let file = json!({"auths": {registry.as_str(): {"auth": auth}}});
                let config = private
                    .write("registry.json", file.to_string().as_bytes())
                    .map_err(io)?;
                args.extend(["--registry-config".into(), config.into()]);
            }
        }
        let step = Step {
            command: "pull",
            args,
            time_limit,
        };
        self.quietly(&pull, slot, step, cancel, password).await?;
        drop(private);
        let archive = std::fs::read_dir(destination.path())
            .map_err(io)?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .find(|path| path.extension().is_some_and(|extension| extension == "tgz"))
            .ok_or_else(|| HelmError::Unexpected {
                command: "pull",
                message: "helm pull left no chart archive".into(),
            })?;
        Ok(LocalChart {
            path: archive,
            _pulled: Some(destination),
        })
    }

    /// Runs a step of a pull without streaming its output; a failure becomes
    /// [`HelmError::ChartFetch`], helm's message going to the debug log only.
    async fn quietly(
        &self,
        pull: &Pull<'_>,
        slot: &HelmSlot,
        step: Step,
        cancel: &CancellationToken,
        password: Option<&str>,
    ) -> Result<(), HelmError> {
        let invocation = Invocation {
            command: step.command,
            args: step.args,
            time_limit: step.time_limit,
            stream_stdout: false,
        };
        match self
            .run(slot, invocation, &Redactor::default(), None, cancel)
            .await
        {
            Ok(_) => Ok(()),
            Err(HelmError::Failed { message, .. }) => {
                let message = match password {
                    Some(password) => message.replace(password, "[redacted]"),
                    None => message,
                };
                tracing::debug!(chart = %pull.chart, source = %pull.source_name, helm = %message, "helm could not fetch a chart");
                Err(HelmError::ChartFetch {
                    chart: pull.chart.clone(),
                    source_name: pull.source_name.clone(),
                })
            }
            Err(other) => Err(other),
        }
    }
}
