//! The client's command line: `rollcall deploy`, `status`, `cancel`, `deploys`. Every flag that a
//! CI job sets once per pipeline has an environment variable.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser as _};
use uuid::Uuid;

use super::api::Token;
use super::values::{SetTyping, parse_set_into};
use crate::domain::deploy::{DeployStatus, QueueMode};
use crate::domain::duration::{BoundedDuration, DurationError, parse_duration};
use crate::domain::labels::parse_label_selector;
use crate::domain::public_url::PublicUrl;

/// Where the server is and who is asking.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// rollcall's base URL, e.g. `https://rollcall.example.com`.
    #[arg(long, env = "ROLLCALL_URL", value_name = "URL", value_parser = PublicUrl::parse)]
    pub server: PublicUrl,
    /// Bearer token (never printed).
    #[arg(
        long,
        env = "ROLLCALL_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Token,
    /// How long to keep trying while the server cannot be reached (a restart, a proxy's idle
    /// timeout) before giving up with exit code 5.
    #[arg(long, env = "ROLLCALL_RECONNECT_BUDGET", value_name = "DURATION", default_value = "2m", value_parser = parse_budget)]
    pub reconnect_budget: Duration,
}

/// How results are printed.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// `text`, or `json`: the final deploy as JSON on stdout (progress then goes to stderr).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Timestamped lines, one per event, even on a terminal (the default elsewhere).
    #[arg(long)]
    pub plain: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DeployArgs {
    /// The helm release.
    pub release: String,
    /// The release's namespace.
    #[arg(short = 'n', long, env = "ROLLCALL_NAMESPACE")]
    pub namespace: String,
    /// The chart: a chart of the server's catalog (`web`), an OCI chart (`oci://registry/charts/web`),
    /// or, with `--repo`, the name of a repository's chart.
    #[arg(long, value_name = "NAME|oci://...")]
    pub chart: String,
    /// The chart repository (`https://charts.example.com`) that `--chart` names a chart of.
    #[arg(long, value_name = "URL")]
    pub repo: Option<String>,
    /// The chart version (repository and OCI charts).
    #[arg(long)]
    pub version: Option<String>,
    /// A YAML values file (`-` for stdin); repeat to merge several, later ones winning.
    #[arg(short = 'f', long = "values", value_name = "FILE")]
    pub values: Vec<PathBuf>,
    /// A value in helm's syntax (`image.tag=v2`, `hosts={a,b}`, `ports[0].port=80`); repeatable,
    /// applied after the files.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = |text: &str| check_set(text, SetTyping::Inferred))]
    pub set: Vec<String>,
    /// As `--set`, but every value is a string (`--set-string tag=0042`).
    #[arg(long = "set-string", value_name = "KEY=VALUE", value_parser = |text: &str| check_set(text, SetTyping::Strings))]
    pub set_string: Vec<String>,
    /// A YAML file of values used for this run only: the server keeps them sealed until the deploy
    /// ends and never shows them; repeatable.
    #[arg(long = "secret-values", value_name = "FILE")]
    pub secret_values: Vec<PathBuf>,
    /// The cluster (a kube context of the server); default `default`.
    #[arg(long, env = "ROLLCALL_CLUSTER")]
    pub cluster: Option<String>,
    /// Let helm create the namespace when it does not exist.
    #[arg(long)]
    pub create_namespace: bool,
    /// How long the whole deploy may take on the server, e.g. `5m` (default 10m).
    #[arg(long, value_name = "DURATION", value_parser = check_duration)]
    pub timeout: Option<String>,
    /// Roll back to the last good revision when the deploy fails.
    #[arg(long)]
    pub rollback_on_failure: bool,
    /// When the release is busy: wait behind (`fifo`), cancel the older queued deploys
    /// (`supersede`) or refuse (`reject`).
    #[arg(long, value_name = "MODE", value_parser = queue_parser())]
    pub queue: Option<QueueMode>,
    /// The same key and request again gives the same deploy (safe retries of a CI job). Without
    /// it, the client makes one per invocation, so that its own retries never deploy twice.
    #[arg(long, env = "ROLLCALL_IDEMPOTENCY_KEY", value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// A label on the deploy, e.g. `ci.run=https://ci.example.com/run/42`; repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Render the chart and list what would be tracked, with its tracking policy; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Submit and exit without following (exit code 0 once accepted).
    #[arg(long)]
    pub no_follow: bool,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// The deploy's id.
    pub id: Uuid,
    /// Follow the deploy to its end, as `rollcall deploy` does.
    #[arg(long)]
    pub follow: bool,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CancelArgs {
    /// The deploy's id.
    pub id: Uuid,
    /// Why, recorded with the cancellation.
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DeploysArgs {
    #[arg(long)]
    pub release: Option<String>,
    #[arg(short = 'n', long, env = "ROLLCALL_NAMESPACE")]
    pub namespace: Option<String>,
    #[arg(long, env = "ROLLCALL_CLUSTER")]
    pub cluster: Option<String>,
    #[arg(long, value_parser = status_parser())]
    pub status: Option<DeployStatus>,
    /// Only deploys with this label (`key=value`); repeat: all must match.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = check_label_filter)]
    pub labels: Vec<String>,
    /// How many deploys to list, newest first.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub limit: u16,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// At least a second: the client waits at least that long between attempts anyway.
fn parse_budget(text: &str) -> Result<Duration, DurationError> {
    BoundedDuration::parse(text, Duration::from_secs(1), Duration::from_secs(24 * 3600))
        .map(BoundedDuration::get)
}

/// The server checks the bounds; the client catches a typo before sending anything.
fn check_duration(text: &str) -> Result<String, DurationError> {
    parse_duration(text).map(|_| text.to_owned())
}

/// A `--set` is checked on its own; what it merges into comes later.
fn check_set(expression: &str, typing: SetTyping) -> Result<String, String> {
    parse_set_into(expression, typing, &mut Default::default()).map(|()| expression.to_owned())
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("a label is key=value, not {text:?}"))
}

fn check_label_filter(text: &str) -> Result<String, String> {
    parse_label_selector(text).map(|_| text.to_owned())
}

fn queue_parser() -> impl clap::builder::TypedValueParser<Value = QueueMode> {
    PossibleValuesParser::new(["fifo", "supersede", "reject"])
        .try_map(|mode| serde_json::from_value(serde_json::Value::String(mode)))
}

fn status_parser() -> impl clap::builder::TypedValueParser<Value = DeployStatus> {
    PossibleValuesParser::new(DeployStatus::ALL.map(DeployStatus::as_str))
        .try_map(|status| serde_json::from_value(serde_json::Value::String(status)))
}
