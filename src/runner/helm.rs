//! The helm driver: the real `helm` binary run as a child in its own process group, arguments as a
//! vector (never a shell), values in 0600 files, isolated `HELM_*` directories, output streamed line
//! by line with secret values redacted, a time limit, and failures classified into verdict reasons.

use std::ffi::OsString;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader, Lines};
use tokio::process::{Child, Command};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::pinned_helm::HelmMajor;

use crate::domain::deploy::SecretValues;
use crate::domain::redaction::Redactor;
use crate::domain::release::ReleaseId;
use crate::domain::verdict::VerdictReason;
use crate::telemetry::HelmMetrics;

/// The helm binary run unless configured otherwise: `helm` on `PATH`.
pub const DEFAULT_HELM_BIN: &str = "helm";

/// The largest stdout kept (a rendered manifest); more is an error rather than unbounded memory.
const MAX_STDOUT: usize = 32 * 1024 * 1024;
/// Lines of stderr kept for the error message.
const STDERR_TAIL: usize = 40;
/// Longest error message put into a verdict.
const MAX_MESSAGE: usize = 2000;

/// How to run helm.
#[derive(Debug, Clone)]
pub struct HelmConfig {
    /// The binary (`helm` on PATH by default).
    pub bin: PathBuf,
    /// The kubeconfig: one file or a list joined like `PATH` (`KUBECONFIG` syntax, merged as
    /// kubectl merges it); named clusters are its contexts, `default` its current context.
    pub kubeconfig: Option<PathBuf>,
    /// Parent of helm's isolated cache, config and data directories and of per-run value files.
    pub home: PathBuf,
    /// Between SIGTERM and SIGKILL of a stopped helm.
    pub kill_grace: Duration,
    /// helm processes run at once ([`HelmSlot`]): each takes tens of MB and a core's worth of CPU
    /// while it renders and applies, whatever the number of deploys being tracked.
    pub slots: usize,
}

/// helm processes at once unless configured otherwise: one per core.
pub fn default_helm_slots() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
}

impl HelmConfig {
    /// `helm` from PATH, the current kubeconfig, a home of its own in the temp directory.
    pub fn new(bin: impl Into<PathBuf>, kubeconfig: Option<PathBuf>) -> Self {
        HelmConfig {
            bin: bin.into(),
            kubeconfig,
            home: std::env::temp_dir().join(format!("rollcall-helm-{}", uuid::Uuid::new_v4())),
            kill_grace: Duration::from_secs(10),
            slots: default_helm_slots(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    #[error("{}", spawn_failure(bin, error))]
    Spawn {
        bin: PathBuf,
        /// Said in the message (not a `source`, which an error chain would print a second time).
        error: std::io::Error,
    },
    #[error("helm {command}: {source}")]
    Io {
        command: &'static str,
        source: std::io::Error,
    },
    #[error("helm {command} failed: {message}")]
    Failed {
        command: &'static str,
        reason: VerdictReason,
        message: String,
    },
    #[error("helm {command} did not finish within {limit:?}")]
    TimedOut {
        command: &'static str,
        limit: Duration,
    },
    #[error("helm {command} was stopped: the deploy is cancelled")]
    Cancelled { command: &'static str },
    #[error("helm {command} printed more than {MAX_STDOUT} bytes")]
    OutputTooLarge { command: &'static str },
    #[error("helm {command} printed output that is not understood: {message}")]
    Unexpected {
        command: &'static str,
        message: String,
    },
    #[error("{bin} is not a supported helm (v3 or v4 needed): {found}")]
    Version { bin: PathBuf, found: String },
    #[error("chart {0:?} is not in the chart catalog")]
    ChartNotInCatalog(String),
    /// The source was allowed when the deploy was accepted, and no longer is.
    #[error("chart source {0} is not allowed by this server's configuration ([charts])")]
    ChartNotAllowed(String),
    /// Said without helm's own words, which name addresses and DNS or TLS details.
    #[error("could not fetch chart {chart} from {source_name}")]
    ChartFetch { chart: String, source_name: String },
}

impl HelmError {
    /// The verdict reason of a deploy that failed with this error.
    pub fn reason(&self) -> VerdictReason {
        match self {
            HelmError::Failed { reason, .. } => *reason,
            HelmError::TimedOut { .. } => VerdictReason::Timeout,
            HelmError::Cancelled { .. } => VerdictReason::Cancelled,
            HelmError::ChartNotInCatalog(_)
            | HelmError::ChartNotAllowed(_)
            | HelmError::ChartFetch { .. } => VerdictReason::ChartUnavailable,
            HelmError::Spawn { .. }
            | HelmError::Io { .. }
            | HelmError::OutputTooLarge { .. }
            | HelmError::Unexpected { .. }
            | HelmError::Version { .. } => VerdictReason::HelmFailed,
        }
    }

    /// Whether helm found no such release (`helm status` of a release never installed, or
    /// uninstalled).
    pub fn is_release_not_found(&self) -> bool {
        matches!(self, HelmError::Failed { message, .. } if message.contains("release: not found"))
    }

    /// Whether helm may have changed the cluster before failing, so that a rollback makes sense:
    /// it reached the API, or was stopped mid-way by the deploy's timeout.
    pub fn may_have_changed_the_cluster(&self) -> bool {
        match self {
            HelmError::Failed { reason, .. } => matches!(
                reason,
                VerdictReason::KubernetesApiError | VerdictReason::HelmFailed
            ),
            HelmError::TimedOut { .. } => true,
            _ => false,
        }
    }
}

/// One sentence: what is missing and how to fix it.
fn spawn_failure(bin: &Path, error: &std::io::Error) -> String {
    const FIX: &str = "set HELM_BIN (--helm-bin) to a helm v4 or v3 binary, or install the \
                       pinned one with scripts/install-helm from rollcall's repository";
    let looked_up_on_path = bin.parent() == Some(Path::new(""));
    let bin = bin.display();
    match error.kind() {
        std::io::ErrorKind::NotFound if looked_up_on_path => {
            format!("helm was not found ({bin} is not on PATH): {FIX}")
        }
        std::io::ErrorKind::NotFound => format!("helm was not found at {bin}: {FIX}"),
        _ => format!("cannot run helm at {bin} ({error}): {FIX}"),
    }
}

/// Classifies helm's stderr (v3 and v4 wording; samples in the tests).
/// One of `RenderFailed`, `ReleaseLocked`, `ChartUnavailable`, `NamespaceNotFound`,
/// `KubernetesApiError`, else `HelmFailed` (the message then says what helm said).
pub fn classify(stderr: &str) -> VerdictReason {
    let text = stderr.to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|needle| text.contains(needle));
    if any(&[
        "another operation (install/upgrade/rollback) is in progress",
        "has no deployed releases",
    ]) {
        VerdictReason::ReleaseLocked
    } else if any(&[
        "parse error",
        "executing \"",
        "template: ",
        "error converting yaml to json",
        "failed to parse",
        "render error",
        "execution error at",
        "values don't meet the specifications",
    ]) {
        VerdictReason::RenderFailed
    } else if any(&[
        "not a valid chart repository",
        "failed to perform \"fetchreference\"",
        "failed to download",
        "chart not found",
        "no chart version found",
        "no chart name found",
        "path \"",
    ]) {
        VerdictReason::ChartUnavailable
    } else if text.contains("namespaces \"") && text.contains("\" not found") {
        VerdictReason::NamespaceNotFound
    } else if any(&[
        "kubernetes cluster unreachable",
        "the server ",
        "connection refused",
        "is forbidden",
        "unauthorized",
        "i/o timeout",
        "context deadline exceeded",
        "admission webhook",
        "is invalid",
        "conflict",
    ]) {
        VerdictReason::KubernetesApiError
    } else {
        VerdictReason::HelmFailed
    }
}

/// The `Error:` lines of helm's stderr (or its last lines), prefix removed, bounded.
fn error_message(stderr_tail: &[String]) -> String {
    let start = stderr_tail
        .iter()
        .position(|line| line.starts_with("Error:"))
        .unwrap_or(0);
    let mut message = stderr_tail[start..]
        .iter()
        .map(|line| line.trim())
        .filter(|line| !line.is_empty() && !line.starts_with("Use --debug flag"))
        .collect::<Vec<_>>()
        .join(" ");
    if let Some(rest) = message.strip_prefix("Error: ") {
        message = rest.to_owned();
    }
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    if message.is_empty() {
        "helm exited with an error and printed nothing".to_owned()
    } else {
        message
    }
}

/// A private directory (0700) under helm's home for one run's files (0600); removed when dropped.
#[derive(Debug)]
pub struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    /// `<home>/<purpose>-<uuid>`, creating `home` (0700) when missing.
    pub fn create(home: &Path, purpose: &str) -> std::io::Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(home)?;
        let path = home.join(format!("{purpose}-{}", uuid::Uuid::new_v4()));
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(PrivateDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a new file only this user can read.
    pub fn write(&self, name: &str, contents: &[u8]) -> std::io::Result<PathBuf> {
        use std::io::Write as _;
        let path = self.path.join(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?
            .write_all(contents)?;
        Ok(path)
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(dir = %self.path.display(), %error, "cannot remove a private helm directory");
        }
    }
}

/// One run's value files (0600) in a private directory; removed when dropped.
#[derive(Debug)]
pub struct ValuesFiles {
    dir: PrivateDir,
    files: Vec<PathBuf>,
}

impl ValuesFiles {
    /// Writes `values`, then the secret values (which win), as JSON (valid YAML) files.
    pub fn write(
        home: &Path,
        values: &serde_json::Map<String, serde_json::Value>,
        secrets: Option<&SecretValues>,
    ) -> std::io::Result<Self> {
        let mut written = ValuesFiles {
            dir: PrivateDir::create(home, "run")?,
            files: Vec::new(),
        };
        written.add("values.json", values)?;
        if let Some(secrets) = secrets {
            written.add("secret-values.json", secrets.expose())?;
        }
        Ok(written)
    }

    fn add(
        &mut self,
        name: &str,
        values: &serde_json::Map<String, serde_json::Value>,
    ) -> std::io::Result<()> {
        let contents = serde_json::to_vec(values).map_err(std::io::Error::other)?;
        self.files.push(self.dir.write(name, &contents)?);
        Ok(())
    }

    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    fn args(&self) -> Vec<OsString> {
        self.files
            .iter()
            .flat_map(|file| [OsString::from("-f"), file.clone().into_os_string()])
            .collect()
    }
}

/// Which of helm's streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

impl OutputStream {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        }
    }
}

/// One line of helm output, already redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLine {
    pub stream: OutputStream,
    pub text: String,
}

/// One helm command, ready to run.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// `template`, `upgrade`, ...: names the command in errors.
    pub command: &'static str,
    pub args: Vec<OsString>,
    pub time_limit: Duration,
    /// Stream stdout lines as output (false where stdout is data: a manifest or JSON).
    pub stream_stdout: bool,
}

/// A release as `helm history -o json` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HistoryEntry {
    pub revision: i32,
    pub status: String,
    #[serde(default)]
    pub description: String,
}

/// A release as `helm status -o json` / `helm upgrade -o json` print it (the fields used here).
#[derive(Debug, Clone, Deserialize)]
pub struct ReleaseInfo {
    pub version: i32,
    pub info: ReleaseStatusInfo,
    /// The revision's rendered resources; saves a `helm get manifest` right after an upgrade.
    #[serde(default)]
    pub manifest: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReleaseStatusInfo {
    pub status: String,
}

impl ReleaseInfo {
    /// Left mid-operation by a helm that died: `pending-install`, `pending-upgrade`, `pending-rollback`.
    pub fn is_pending(&self) -> bool {
        self.info.status.starts_with("pending")
    }
}

/// The helm binary and how it is run.
#[derive(Debug, Clone)]
pub struct Helm {
    config: HelmConfig,
    metrics: Arc<HelmMetrics>,
    slots: Arc<Semaphore>,
    /// Known once [`Helm::check_version`] has run.
    major: Arc<OnceLock<HelmMajor>>,
}

/// The right to run one helm process (the pool of `HelmConfig::slots`); helm runs only in one.
#[derive(Debug)]
pub struct HelmSlot {
    _permit: OwnedSemaphorePermit,
}

impl Helm {
    /// `metrics` counts the processes and their durations.
    pub fn new(config: HelmConfig, metrics: Arc<HelmMetrics>) -> Self {
        let slots = Arc::new(Semaphore::new(config.slots.max(1)));
        Helm {
            config,
            metrics,
            slots,
            major: Arc::default(),
        }
    }

    /// Whether `helm upgrade` hands the manifest it applies, hooks included, to rollcall's
    /// post-renderer (`manifest_check`): helm 4 does; helm 3 is rendered with `helm template`.
    pub fn hands_over_manifests(&self) -> bool {
        self.major.get() == Some(&HelmMajor::V4)
    }

    /// Waits for a free helm slot; `Cancelled` when `cancel` fires first.
    pub async fn slot(&self, cancel: &CancellationToken) -> Result<HelmSlot, HelmError> {
        tokio::select! {
            permit = Arc::clone(&self.slots).acquire_owned() => {
                Ok(HelmSlot { _permit: permit.expect("the helm pool is never closed") })
            }
            () = cancel.cancelled() => Err(HelmError::Cancelled { command: "slot" }),
        }
    }

    /// A free helm slot now, if there is one.
    pub fn try_slot(&self) -> Option<HelmSlot> {
        let permit = Arc::clone(&self.slots).try_acquire_owned().ok()?;
        Some(HelmSlot { _permit: permit })
    }

    pub fn config(&self) -> &HelmConfig {
        &self.config
    }

    /// `$HELM_DATA_HOME`: helm finds its plugins under `plugins`.
    pub fn data_home(&self) -> PathBuf {
        self.config.home.join("data")
    }

    /// `helm version --short`, checked to be v3 or v4; returns the version.
    pub async fn check_version(&self) -> Result<String, HelmError> {
        let invocation = Invocation {
            command: "version",
            args: vec!["version".into(), "--short".into()],
            time_limit: Duration::from_secs(30),
            stream_stdout: false,
        };
        let output = self
            .run(
                &self.slot(&CancellationToken::new()).await?,
                invocation,
                &Redactor::default(),
                None,
                &CancellationToken::new(),
            )
            .await?;
        let found = output.trim().to_owned();
        let Some(major) = [HelmMajor::V4, HelmMajor::V3]
            .into_iter()
            .find(|major| found.starts_with(major.version_prefix()))
        else {
            return Err(HelmError::Version {
                bin: self.config.bin.clone(),
                found,
            });
        };
        let _known = self.major.set(major);
        Ok(found)
    }

    fn kube_args(&self, target: &ReleaseId) -> Vec<OsString> {
        let mut args = vec!["--namespace".into(), target.namespace.clone().into()];
        if target.cluster != crate::domain::names::ClusterName::default_cluster().as_str() {
            args.extend(["--kube-context".into(), target.cluster.clone().into()]);
        }
        args
    }

    /// `helm template`: renders locally, touching no cluster.
    pub fn template(
        &self,
        target: &ReleaseId,
        chart: Vec<OsString>,
        values: &ValuesFiles,
        time_limit: Duration,
    ) -> Invocation {
        let mut args: Vec<OsString> = vec!["template".into(), target.release.clone().into()];
        args.extend(chart);
        args.extend(["--namespace".into(), target.namespace.clone().into()]);
        args.extend(values.args());
        Invocation {
            command: "template",
            args,
            time_limit,
            stream_stdout: false,
        }
    }

    /// `helm upgrade --install` without helm's own waiting (hooks still run, bounded by
    /// `hook_timeout`); prints the release as JSON. `create_namespace`: helm creates a missing
    /// namespace first.
    pub fn upgrade(
        &self,
        target: &ReleaseId,
        chart: Vec<OsString>,
        values: &ValuesFiles,
        hook_timeout: Duration,
        create_namespace: bool,
    ) -> Invocation {
        let mut args: Vec<OsString> = vec![
            "upgrade".into(),
            "--install".into(),
            target.release.clone().into(),
        ];
        args.extend(chart);
        args.extend(self.kube_args(target));
        if create_namespace {
            args.push("--create-namespace".into());
        }
        args.extend(values.args());
        args.extend([
            "--timeout".into(),
            format!("{}s", hook_timeout.as_secs().max(1)).into(),
            "--output".into(),
            "json".into(),
        ]);
        Invocation {
            command: "upgrade",
            args,
            time_limit: hook_timeout + Duration::from_secs(30),
            stream_stdout: false,
        }
    }

    pub fn get_manifest(&self, target: &ReleaseId, revision: i32) -> Invocation {
        let mut args: Vec<OsString> = vec![
            "get".into(),
            "manifest".into(),
            target.release.clone().into(),
            "--revision".into(),
            revision.to_string().into(),
        ];
        args.extend(self.kube_args(target));
        self.query("get manifest", args)
    }

    pub fn history(&self, target: &ReleaseId) -> Invocation {
        let mut args: Vec<OsString> = vec![
            "history".into(),
            target.release.clone().into(),
            "--output".into(),
            "json".into(),
            "--max".into(),
            "256".into(),
        ];
        args.extend(self.kube_args(target));
        self.query("history", args)
    }

    pub fn status(&self, target: &ReleaseId) -> Invocation {
        let mut args: Vec<OsString> = vec![
            "status".into(),
            target.release.clone().into(),
            "--output".into(),
            "json".into(),
        ];
        args.extend(self.kube_args(target));
        self.query("status", args)
    }

    pub fn rollback(&self, target: &ReleaseId, revision: i32, timeout: Duration) -> Invocation {
        let mut args: Vec<OsString> = vec![
            "rollback".into(),
            target.release.clone().into(),
            revision.to_string().into(),
            "--timeout".into(),
            format!("{}s", timeout.as_secs().max(1)).into(),
        ];
        args.extend(self.kube_args(target));
        Invocation {
            command: "rollback",
            args,
            time_limit: timeout + Duration::from_secs(30),
            stream_stdout: true,
        }
    }

    /// Removes a release that never had a good revision (a first install left `pending-install`).
    pub fn uninstall(&self, target: &ReleaseId, timeout: Duration) -> Invocation {
        let mut args: Vec<OsString> = vec!["uninstall".into(), target.release.clone().into()];
        args.extend(self.kube_args(target));
        Invocation {
            command: "uninstall",
            args,
            time_limit: timeout,
            stream_stdout: true,
        }
    }

    fn query(&self, command: &'static str, args: Vec<OsString>) -> Invocation {
        Invocation {
            command,
            args,
            time_limit: Duration::from_secs(120),
            stream_stdout: false,
        }
    }

    /// Runs an invocation to its end in `slot`, sending redacted output lines to `lines` (when
    /// given); returns stdout. Past the time limit or on `cancel`, helm's process group gets
    /// SIGTERM, then SIGKILL after the grace period.
    pub async fn run(
        &self,
        _slot: &HelmSlot,
        invocation: Invocation,
        redactor: &Redactor,
        lines: Option<&mpsc::Sender<OutputLine>>,
        cancel: &CancellationToken,
    ) -> Result<String, HelmError> {
        let command = invocation.command;
        let io = |source| HelmError::Io { command, source };
        let mut child = self.spawn(&invocation.args)?;
        let _process = self.metrics.process(command);
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
        let deadline = tokio::time::Instant::now() + invocation.time_limit;
        let mut collected = String::new();
        let mut stderr_tail: Vec<String> = Vec::new();
        let (mut stdout_open, mut stderr_open) = (true, true);
        let status = loop {
            tokio::select! {
                line = next_line(&mut stdout, stdout_open) => match line.map_err(io)? {
                    Some(line) => {
                        if collected.len() + line.len() > MAX_STDOUT {
                            stop_group(&mut child, self.config.kill_grace).await;
                            return Err(HelmError::OutputTooLarge { command });
                        }
                        if invocation.stream_stdout {
                            send(lines, OutputStream::Stdout, redactor.redact(&line)).await;
                        }
                        collected.push_str(&line);
                        collected.push('\n');
                    }
                    None => stdout_open = false,
                },
                line = next_line(&mut stderr, stderr_open) => match line.map_err(io)? {
                    Some(line) => {
                        let line = redactor.redact(&line);
                        send(lines, OutputStream::Stderr, line.clone()).await;
                        if stderr_tail.len() == STDERR_TAIL {
                            stderr_tail.remove(0);
                        }
                        stderr_tail.push(line);
                    }
                    None => stderr_open = false,
                },
                status = child.wait(), if !stdout_open && !stderr_open => break status.map_err(io)?,
                () = tokio::time::sleep_until(deadline) => {
                    stop_group(&mut child, self.config.kill_grace).await;
                    return Err(HelmError::TimedOut { command, limit: invocation.time_limit });
                }
                () = cancel.cancelled() => {
                    stop_group(&mut child, self.config.kill_grace).await;
                    return Err(HelmError::Cancelled { command });
                }
            }
        };
        if status.success() {
            Ok(collected)
        } else {
            let stderr_text = stderr_tail.join("\n");
            Err(HelmError::Failed {
                command,
                reason: classify(&stderr_text),
                message: error_message(&stderr_tail),
            })
        }
    }

    /// Runs a query whose stdout is JSON.
    pub async fn run_json<T: serde::de::DeserializeOwned>(
        &self,
        slot: &HelmSlot,
        invocation: Invocation,
        cancel: &CancellationToken,
    ) -> Result<T, HelmError> {
        let command = invocation.command;
        let output = self
            .run(slot, invocation, &Redactor::default(), None, cancel)
            .await?;
        serde_json::from_str(&output).map_err(|error| HelmError::Unexpected {
            command,
            message: error.to_string(),
        })
    }

    fn spawn(&self, args: &[OsString]) -> Result<Child, HelmError> {
        let home = &self.config.home;
        let mut command = Command::new(&self.config.bin);
        command
            .args(args)
            // Nothing inherited but PATH: helm's settings come from the arguments, these dirs and the
            // kubeconfig below.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", self.data_home())
            // helm's start-up allocates heavily (Kubernetes API schemes) and is most of a short
            // run: a higher GC target saves about 5 ms of each, for a heap of at most 5× the live one.
            .env("GOGC", "400");
        // Through the environment, not `--kubeconfig` (one file only): helm merges a list of
        // files the way kubectl does, as the watch hubs do (`clusters::load_kubeconfig`).
        if let Some(kubeconfig) = &self.config.kubeconfig {
            command.env("KUBECONFIG", kubeconfig);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        command.spawn().map_err(|error| HelmError::Spawn {
            bin: self.config.bin.clone(),
            error,
        })
    }
}

async fn next_line<R: AsyncRead + Unpin>(
    lines: &mut Lines<BufReader<R>>,
    open: bool,
) -> std::io::Result<Option<String>> {
    if open {
        lines.next_line().await
    } else {
        std::future::pending().await
    }
}

async fn send(lines: Option<&mpsc::Sender<OutputLine>>, stream: OutputStream, text: String) {
    if let Some(lines) = lines {
        // A reader that went away only loses the live copy of the output.
        let _closed = lines.send(OutputLine { stream, text }).await;
    }
}

/// SIGTERM to helm's whole process group (helm plugins and post-renderers included), SIGKILL to
/// the group when helm is still alive after `grace`.
pub async fn stop_group(child: &mut Child, grace: Duration) {
    let Some(pid) = child.id() else { return };
    signal_group(pid, libc::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        signal_group(pid, libc::SIGKILL);
        let _ = child.wait().await;
    }
}

fn signal_group(leader: u32, signal: libc::c_int) {
    let Ok(group) = libc::pid_t::try_from(leader) else {
        return;
    };
    // SAFETY: kill(2) with a negative pid signals the process group; it has no memory effects.
    let result = unsafe { libc::kill(-group, signal) };
    if result != 0 {
        tracing::debug!(group, signal, error = %std::io::Error::last_os_error(), "signalling helm's process group");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real stderr of helm v4.3.1 and v3.19.0 for each class.
    #[test]
    fn real_helm_errors_are_classified() {
        let samples = [
            (
                "Error: demo/templates/bad.yaml:1:10\n  executing \"demo/templates/bad.yaml\" at <.Values.nope.deeper>:\n    nil pointer evaluating interface {}.deeper\n\nUse --debug flag to render out invalid YAML",
                VerdictReason::RenderFailed,
            ),
            (
                "Error: template: demo/templates/bad.yaml:1:10: executing \"demo/templates/bad.yaml\" at <.Values.nope.deeper>: nil pointer evaluating interface {}.deeper",
                VerdictReason::RenderFailed,
            ),
            (
                "Error: YAML parse error on demo/templates/badyaml.yaml: error converting YAML to JSON: yaml: line 4: did not find expected key",
                VerdictReason::RenderFailed,
            ),
            (
                "Error: failed to parse badvals.yaml: cannot unmarshal yaml document: error converting YAML to JSON: yaml: line 1: did not find expected node content",
                VerdictReason::RenderFailed,
            ),
            (
                "Error: kubernetes cluster unreachable: Get \"http://127.0.0.1:1/version\": dial tcp 127.0.0.1:1: connect: connection refused",
                VerdictReason::KubernetesApiError,
            ),
            (
                "Error: Kubernetes cluster unreachable: Get \"http://127.0.0.1:1/version\": dial tcp 127.0.0.1:1: connect: connection refused",
                VerdictReason::KubernetesApiError,
            ),
            (
                "Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress",
                VerdictReason::ReleaseLocked,
            ),
            (
                "Error: failed to perform \"FetchReference\" on source: Get \"https://127.0.0.1:1/v2/x/y/manifests/1.0.0\": dial tcp 127.0.0.1:1: connect: connection refused",
                VerdictReason::ChartUnavailable,
            ),
            (
                "Error: looks like \"http://127.0.0.1:1\" is not a valid chart repository or cannot be reached: Get \"http://127.0.0.1:1/index.yaml\": dial tcp 127.0.0.1:1: connect: connection refused",
                VerdictReason::ChartUnavailable,
            ),
            (
                "Error: create: failed to create: namespaces \"fresh\" not found",
                VerdictReason::NamespaceNotFound,
            ),
            ("Error: release: not found", VerdictReason::HelmFailed),
            ("Error: something new", VerdictReason::HelmFailed),
        ];
        for (stderr, expected) in samples {
            assert_eq!(classify(stderr), expected, "{stderr}");
        }
    }

    #[test]
    fn only_a_missing_release_reads_as_not_found() {
        let failed = |message: &str| HelmError::Failed {
            command: "status",
            reason: VerdictReason::HelmFailed,
            message: message.to_owned(),
        };
        assert!(failed("release: not found").is_release_not_found());
        assert!(!failed("namespaces \"fresh\" not found").is_release_not_found());
        assert!(!HelmError::Cancelled { command: "status" }.is_release_not_found());
    }

    #[test]
    fn error_message_keeps_the_error_lines_without_the_debug_hint() {
        let tail: Vec<String> = [
            "walk.go:75: found symbolic link",
            "Error: demo/templates/bad.yaml:1:10",
            "  executing \"x\" at <.Values.nope>:",
            "",
            "Use --debug flag to render out invalid YAML",
        ]
        .map(str::to_owned)
        .to_vec();
        assert_eq!(
            error_message(&tail),
            "demo/templates/bad.yaml:1:10 executing \"x\" at <.Values.nope>:"
        );
        assert_eq!(
            error_message(&[]),
            "helm exited with an error and printed nothing"
        );
    }
}
