//! Server configuration: command-line flags with environment fallbacks, plus an optional TOML file
//! for tokens and limits.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::domain::FieldError;
use crate::domain::auth::StaticToken;
use crate::domain::chart::{ChartCatalog, ChartSources};
use crate::domain::chart_allowlist::{
    ChartAllowList, ChartsSection, OciLocation, PasswordSource, RepositoryUrl, Scheme,
};
use crate::domain::duration::{BoundedDuration, DurationError};
use crate::domain::public_url::PublicUrl;
use crate::domain::sealing::{SealingError, ServerKey};
use crate::domain::webhooks::{HookDefinition, HookSpec, SecretReference};
use crate::http::server::ConnectionLimits;
use crate::notify::settings::NetworkList;
use crate::notify::{NotifyConfig, NotifySection};
use crate::runner::helm::DEFAULT_HELM_BIN;
use crate::runner::{DEFAULT_PARALLELISM, HelmConfig, RunnerOptions, default_helm_slots};
use crate::store::retention::RetentionPolicy;
use crate::telemetry::LogFormat;
use crate::tracker::core::{CustomResourceRuleSpec, CustomResourceRules, RuleError};

pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// PostgreSQL connection URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Log format.
    #[arg(long, env = "ROLLCALL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Address to listen on.
    #[arg(long, env = "ROLLCALL_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Bootstrap admin token (admin over every target), so that a fresh install can be administered.
    #[arg(long, env = "ROLLCALL_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// TOML file with tokens and limits.
    #[arg(long, env = "ROLLCALL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Chart catalog directory that `chart.path` is resolved in.
    #[arg(long, env = "ROLLCALL_CHART_DIR")]
    pub chart_dir: Option<PathBuf>,
    /// Largest accepted request body in bytes (default 1 MiB, or the config file's limit).
    #[arg(long, env = "ROLLCALL_BODY_LIMIT")]
    pub body_limit: Option<usize>,
    /// The key that seals secrets at rest (deploys' `secret_values` until they end, webhook and
    /// notification secrets): 32 random bytes as 64 hex digits or base64 (`openssl rand -hex
    /// 32`), the same on every replica. Without it secret values stay in the memory of the process
    /// that accepted the deploy, and the admin APIs refuse to store secrets.
    #[arg(long, env = "ROLLCALL_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<Redacted>,
    /// The server's public base URL (e.g. `https://rollcall.example.com`), for links in
    /// notifications, the CLI and `/ui`.
    #[arg(long, env = "ROLLCALL_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<PublicUrl>,
    /// The secret (Standard Webhooks `whsec_…`) that signs notifications naming no secret of
    /// their own. Receivers sharing it can forge messages to each other: production setups name a
    /// secret per receiver in `[notify.secrets]`.
    #[arg(long, env = "ROLLCALL_NOTIFY_SECRET", hide_env_values = true)]
    pub notify_secret: Option<Redacted>,
    /// Chart repositories `chart.repo` may name besides those of `[charts] repositories`
    /// (comma-separated https URLs, without credentials; a repository and those below it).
    #[arg(long, env = "ROLLCALL_CHART_REPOSITORIES", value_delimiter = ',', value_parser = parse_chart_repository)]
    pub chart_repositories: Vec<RepositoryUrl>,
    /// OCI registries `chart.oci` may name besides those of `[charts] registries`
    /// (comma-separated `host[:port][/path]`, https, without credentials).
    #[arg(long, env = "ROLLCALL_CHART_REGISTRIES", value_delimiter = ',', value_parser = OciLocation::parse)]
    pub chart_registries: Vec<OciLocation>,
    /// Non-public networks notifications may reach (comma-separated CIDRs, e.g. `10.20.0.0/16`);
    /// loopback, private, link-local and unique-local destinations are refused otherwise.
    /// Overrides `[notify] allow_networks`.
    #[arg(long, env = "ROLLCALL_NOTIFY_ALLOW_NETWORKS")]
    pub notify_allow_networks: Option<NetworkList>,
    #[command(flatten)]
    pub runner: RunnerArgs,
    #[command(flatten)]
    pub retention: RetentionArgs,
}

/// The retention policy (DESIGN §9); each flag overrides `[retention]` of the config file. An age
/// of 0 days turns its rule off.
#[derive(Debug, Clone, clap::Args)]
pub struct RetentionArgs {
    /// Prune nothing (every replica may prune; one at a time does).
    #[arg(long, env = "ROLLCALL_RETENTION_OFF")]
    pub retention_off: bool,
    /// Days after a deploy finished that its log events (container.log, helm.output) go (default 14).
    #[arg(long, env = "ROLLCALL_RETENTION_LOG_DAYS")]
    pub retention_log_days: Option<u32>,
    /// Days after a deploy finished that its notifications and their attempts go (default 30).
    #[arg(long, env = "ROLLCALL_RETENTION_NOTIFICATION_DAYS")]
    pub retention_notification_days: Option<u32>,
    /// Days after a deploy finished that all its events but the terminal one and its reports go
    /// (default 90).
    #[arg(long, env = "ROLLCALL_RETENTION_EVENT_DAYS")]
    pub retention_event_days: Option<u32>,
    /// Days after its last attempt that a webhook delivery's record goes (default 30).
    #[arg(long, env = "ROLLCALL_RETENTION_DELIVERY_DAYS")]
    pub retention_delivery_days: Option<u32>,
    /// Days after its request that an idempotency key goes (default 30).
    #[arg(long, env = "ROLLCALL_RETENTION_IDEMPOTENCY_KEY_DAYS")]
    pub retention_idempotency_key_days: Option<u32>,
    /// How many of each release's newest deploys keep everything (default 10).
    #[arg(long, env = "ROLLCALL_RETENTION_KEEP_LAST")]
    pub retention_keep_last: Option<u32>,
    /// Between pruning passes (default 10m).
    #[arg(long, env = "ROLLCALL_RETENTION_INTERVAL", value_parser = parse_retention_interval)]
    pub retention_interval: Option<Duration>,
}

/// How this process runs deploys.
#[derive(Debug, Clone, clap::Args)]
pub struct RunnerArgs {
    /// kubeconfig of the clusters deployed to: `default` is its current context, other cluster
    /// names are its contexts.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The helm binary (v4 or v3).
    #[arg(long, env = "HELM_BIN", default_value = DEFAULT_HELM_BIN)]
    pub helm_bin: PathBuf,
    /// Deploys this process has in flight at once (most of them tracked, which is cheap).
    #[arg(long, env = "ROLLCALL_PARALLELISM", default_value_t = DEFAULT_PARALLELISM)]
    pub parallelism: usize,
    /// helm processes this process runs at once (default: one per core). A queued deploy starts
    /// when one is free; its timeout does not count the wait.
    #[arg(long, env = "ROLLCALL_HELM_SLOTS")]
    pub helm_slots: Option<usize>,
    /// Roll back failed deploys unless the request says otherwise.
    #[arg(long, env = "ROLLCALL_ROLLBACK_ON_FAILURE")]
    pub rollback_on_failure: bool,
    /// Serve the API only; other replicas run the deploys.
    #[arg(long, env = "ROLLCALL_NO_RUNNER")]
    pub no_runner: bool,
    /// How long a deploy's lease lasts without renewal (default 30s): after a crash, another
    /// process (or the restarted one) takes the deploy over once it runs out.
    #[arg(long, env = "ROLLCALL_LEASE", value_parser = parse_lease)]
    pub lease: Option<Duration>,
}

/// A flag's value that must never be printed, not even in an error about it.
#[derive(Clone)]
pub struct Redacted(String);

impl std::str::FromStr for Redacted {
    type Err = std::convert::Infallible;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Redacted(text.to_owned()))
    }
}

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

fn parse_public_url(text: &str) -> Result<PublicUrl, String> {
    PublicUrl::parse(text)
}

/// Plain-http repositories are allowed in the configuration file only (`allow_http = true`).
fn parse_chart_repository(text: &str) -> Result<RepositoryUrl, String> {
    RepositoryUrl::parse(text).and_then(|url| match url.scheme {
        Scheme::Https => Ok(url),
        Scheme::Http => Err("must be https (plain http only with allow_http in [charts])".into()),
    })
}

/// Shorter leases would expire between renewals (every third of the lease, at most every second)
/// under an ordinary database hiccup.
const MIN_LEASE: Duration = Duration::from_secs(1);

fn parse_lease(text: &str) -> Result<Duration, DurationError> {
    BoundedDuration::parse(text, MIN_LEASE, Duration::from_secs(3600)).map(BoundedDuration::get)
}

fn parse_retention_interval(text: &str) -> Result<Duration, DurationError> {
    BoundedDuration::parse(
        text,
        Duration::from_secs(1),
        Duration::from_secs(7 * 24 * 3600),
    )
    .map(BoundedDuration::get)
}

/// The TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub tokens: Vec<FileToken>,
    #[serde(default)]
    pub limits: FileLimits,
    #[serde(default)]
    pub tracking: FileTracking,
    #[serde(default)]
    pub notify: NotifySection,
    /// `[charts]`: the repositories and registries repo and oci charts may come from.
    #[serde(default)]
    pub charts: ChartsSection,
    /// `[[hooks]]`: inbound webhooks, each with `secret_env` or `secret_file`.
    #[serde(default)]
    pub hooks: Vec<HookSpec>,
    #[serde(default)]
    pub retention: FileRetention,
}

/// `[retention]`: see [`RetentionArgs`] for each setting; the flags win.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRetention {
    pub enabled: Option<bool>,
    pub log_days: Option<u32>,
    pub notification_days: Option<u32>,
    pub event_days: Option<u32>,
    pub delivery_days: Option<u32>,
    pub idempotency_key_days: Option<u32>,
    pub keep_last: Option<u32>,
    /// A duration such as `10m`.
    pub interval: Option<String>,
    /// Rows per delete statement (default 1000).
    pub batch: Option<u32>,
}

/// `[tracking]`: how the tracker reads what it cannot know by itself.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTracking {
    /// `[[tracking.custom_resources]]`: per-GroupKind readiness and failure rules (DESIGN §5.1).
    #[serde(default)]
    pub custom_resources: Vec<CustomResourceRuleSpec>,
}

/// A token from the config file; only its sha256 is written there
/// (`printf %s "$TOKEN" | sha256sum`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileToken {
    pub name: String,
    pub sha256: String,
    pub scopes: Vec<String>,
    pub targets: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLimits {
    pub body_limit_bytes: Option<usize>,
    pub db_max_connections: Option<u32>,
    pub sse_keep_alive_seconds: Option<u64>,
    pub event_bus_capacity: Option<usize>,
}

/// Everything the server needs, resolved and checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub listen: SocketAddr,
    pub chart_dir: Option<PathBuf>,
    pub body_limit: usize,
    pub db_max_connections: u32,
    pub sse_keep_alive: Duration,
    /// Header-read timeout and header limits of client connections.
    pub connection_limits: ConnectionLimits,
    /// Live events buffered per instance for SSE subscribers before a slow one lags.
    pub event_bus_capacity: usize,
    /// The bootstrap admin token first, then the file's tokens.
    pub static_tokens: Vec<StaticToken>,
    /// How helm is run (also for `?dry_run=true`).
    pub helm: HelmConfig,
    /// `None`: this process runs no deploys (API only).
    pub runner: Option<RunnerOptions>,
    /// Custom-resource rules for every deploy's tracking.
    pub custom_resources: CustomResourceRules,
    /// Seals secrets the admin APIs store; `None`: they refuse to store any.
    pub secret_key: Option<ServerKey>,
    pub public_url: Option<PublicUrl>,
    /// Outgoing notifications: secrets, allowed networks, subscriptions, delivery.
    pub notify: NotifyConfig,
    /// The configuration file's inbound webhooks, checked, their secrets read.
    pub hooks: Vec<HookDefinition>,
    /// What history is pruned, and when.
    pub retention: RetentionPolicy,
    /// Repositories and registries `repo` and `oci` charts may come from; none by default.
    pub allowed_charts: ChartAllowList,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("token {name:?} in the config file: {message}")]
    Token { name: String, message: String },
    #[error("ROLLCALL_SECRET_KEY: {0}")]
    SecretKey(SealingError),
    #[error("notifications: {0}")]
    Notify(String),
    #[error("hook {name:?} in the config file: {errors}")]
    Hook { name: String, errors: String },
    #[error("[retention] {0}")]
    Retention(String),
    #[error("[charts] in the config file: {0}")]
    Charts(String),
    #[error("chart directory {0} is not a directory")]
    ChartDir(PathBuf),
    #[error("config file {path}: {source}")]
    CustomResource {
        path: PathBuf,
        source: Box<RuleError>,
    },
}

impl Config {
    /// Defaults for everything but the database, e.g. for tests.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            chart_dir: None,
            body_limit: DEFAULT_BODY_LIMIT,
            db_max_connections: 10,
            sse_keep_alive: Duration::from_secs(15),
            connection_limits: ConnectionLimits::default(),
            event_bus_capacity: 16 * 1024,
            static_tokens: Vec::new(),
            helm: HelmConfig::new(DEFAULT_HELM_BIN, None),
            runner: None,
            custom_resources: CustomResourceRules::default(),
            secret_key: None,
            public_url: None,
            notify: NotifyConfig::default(),
            hooks: Vec::new(),
            retention: RetentionPolicy::default(),
            allowed_charts: ChartAllowList::default(),
        }
    }

    pub fn from_args(args: ServeArgs) -> Result<Self, ConfigError> {
        let (mut file, custom_resources) = match &args.config {
            Some(path) => {
                let mut file = FileConfig::read(path)?;
                let rules = file.custom_resource_rules(path)?;
                (file, rules)
            }
            None => (FileConfig::default(), CustomResourceRules::default()),
        };
        if let Some(dir) = &args.chart_dir
            && !dir.is_dir()
        {
            return Err(ConfigError::ChartDir(dir.clone()));
        }
        let mut config = Self::new(args.database.database_url);
        let env = |variable: &str| std::env::var(variable).ok();
        config.allowed_charts = file.allowed_charts(env)?;
        for url in args.chart_repositories {
            config.allowed_charts.allow_repository(url);
        }
        for prefix in args.chart_registries {
            config.allowed_charts.allow_registry(prefix);
        }
        let sources = ChartSources {
            catalog: ChartCatalog::new(args.chart_dir.clone()),
            allowed: config.allowed_charts.clone(),
        };
        config.hooks = file.hooks(&sources, env)?;
        config.listen = args.listen;
        config.custom_resources = custom_resources;
        config.chart_dir = args.chart_dir;
        config.secret_key = args
            .secret_key
            .map(|key| ServerKey::parse(&key.0))
            .transpose()
            .map_err(ConfigError::SecretKey)?;
        config.public_url = args.public_url;
        config.notify = NotifyConfig::from_settings(
            std::mem::take(&mut file.notify),
            args.notify_secret.as_ref().map(|secret| secret.0.as_str()),
            args.notify_allow_networks,
        )
        .map_err(ConfigError::Notify)?;
        let runner = args.runner;
        config.helm = HelmConfig {
            slots: runner.helm_slots.unwrap_or_else(default_helm_slots).max(1),
            ..HelmConfig::new(runner.helm_bin, runner.kubeconfig)
        };
        config.runner = (!runner.no_runner).then(|| {
            let defaults = RunnerOptions::default();
            RunnerOptions {
                parallelism: runner.parallelism.max(1),
                rollback_on_failure: runner.rollback_on_failure,
                lease: runner.lease.unwrap_or(defaults.lease),
                ..defaults
            }
        });
        config.body_limit = args
            .body_limit
            .or(file.limits.body_limit_bytes)
            .unwrap_or(DEFAULT_BODY_LIMIT);
        if let Some(max) = file.limits.db_max_connections {
            config.db_max_connections = max;
        }
        if let Some(seconds) = file.limits.sse_keep_alive_seconds {
            config.sse_keep_alive = Duration::from_secs(seconds.max(1));
        }
        if let Some(capacity) = file.limits.event_bus_capacity {
            config.event_bus_capacity = capacity.max(1);
        }
        config.retention = retention_policy(&args.retention, &file.retention)?;
        if let Some(token) = &args.admin_token {
            config
                .static_tokens
                .push(StaticToken::bootstrap_admin(token));
        }
        for token in file.tokens {
            config.static_tokens.push(token.into_static_token()?);
        }
        Ok(config)
    }
}

impl FileConfig {
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// The checked `[[tracking.custom_resources]]` rules (taken out of the file); errors name the
    /// entry and field.
    pub fn custom_resource_rules(
        &mut self,
        path: &Path,
    ) -> Result<CustomResourceRules, ConfigError> {
        CustomResourceRules::from_specs(std::mem::take(&mut self.tracking.custom_resources))
            .map_err(|source| ConfigError::CustomResource {
                path: path.to_owned(),
                source: Box::new(source),
            })
    }
}

impl FileConfig {
    /// The checked `[[hooks]]` (taken out of the file), each secret read from the environment
    /// variable `env` looks up or from its file; errors name the hook and its field.
    /// The checked `[charts]` (taken out of the file), passwords read from the environment
    /// variable `env` looks up or from their file.
    pub fn allowed_charts(
        &mut self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ChartAllowList, ConfigError> {
        ChartAllowList::from_section(std::mem::take(&mut self.charts), |source| match source {
            PasswordSource::Env(variable) => read_env_secret(&env, variable),
            PasswordSource::File(path) => read_file_secret(path),
        })
        .map_err(|errors| {
            let errors: Vec<String> = errors
                .iter()
                .map(|error| format!("{}: {}", error.field, error.message))
                .collect();
            ConfigError::Charts(errors.join("; "))
        })
    }

    pub fn hooks(
        &mut self,
        charts: &ChartSources,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<HookDefinition>, ConfigError> {
        let mut hooks: Vec<HookDefinition> = Vec::new();
        for spec in std::mem::take(&mut self.hooks) {
            let name = spec.name.clone();
            let invalid = |errors: Vec<FieldError>| {
                let errors: Vec<String> = errors
                    .iter()
                    .map(|error| format!("{}: {}", error.field, error.message))
                    .collect();
                ConfigError::Hook {
                    name: name.clone(),
                    errors: errors.join("; "),
                }
            };
            if hooks.iter().any(|hook| hook.name.as_str() == name) {
                return Err(invalid(vec![FieldError::new(
                    "name",
                    "another [[hooks]] entry has this name",
                )]));
            }
            let reference = spec
                .secret_reference()
                .map_err(|error| invalid(vec![error]))?;
            let secret = match &reference {
                SecretReference::Env(variable) => read_env_secret(&env, variable),
                SecretReference::File(path) => read_file_secret(path),
            }
            .map_err(|message| invalid(vec![FieldError::new(reference.field(), message)]))?;
            let hook = HookDefinition::parse(spec, secret, reference.field()).map_err(&invalid)?;
            hook.check_target(charts).map_err(&invalid)?;
            hooks.push(hook);
        }
        Ok(hooks)
    }
}

/// The policy of the flags over the file's `[retention]` over the defaults.
fn retention_policy(
    args: &RetentionArgs,
    file: &FileRetention,
) -> Result<RetentionPolicy, ConfigError> {
    let defaults = RetentionPolicy::default();
    let interval = match &file.interval {
        Some(text) => parse_retention_interval(text)
            .map_err(|error| ConfigError::Retention(format!("interval: {error}")))?,
        None => defaults.interval,
    };
    if file.batch == Some(0) {
        return Err(ConfigError::Retention("batch: must be at least 1".into()));
    }
    Ok(RetentionPolicy {
        enabled: !args.retention_off && file.enabled.unwrap_or(defaults.enabled),
        log_days: args
            .retention_log_days
            .or(file.log_days)
            .unwrap_or(defaults.log_days),
        notification_days: args
            .retention_notification_days
            .or(file.notification_days)
            .unwrap_or(defaults.notification_days),
        event_days: args
            .retention_event_days
            .or(file.event_days)
            .unwrap_or(defaults.event_days),
        delivery_days: args
            .retention_delivery_days
            .or(file.delivery_days)
            .unwrap_or(defaults.delivery_days),
        idempotency_key_days: args
            .retention_idempotency_key_days
            .or(file.idempotency_key_days)
            .unwrap_or(defaults.idempotency_key_days),
        keep_last: args
            .retention_keep_last
            .or(file.keep_last)
            .unwrap_or(defaults.keep_last),
        interval: args.retention_interval.unwrap_or(interval),
        batch: file.batch.unwrap_or(defaults.batch),
    })
}

/// A secret configured as an environment variable's name.
fn read_env_secret(
    env: &impl Fn(&str) -> Option<String>,
    variable: &str,
) -> Result<String, String> {
    env(variable).ok_or_else(|| format!("the environment variable {variable} is not set"))
}

/// A secret configured as a file's path; the file's trailing newline is not part of it.
fn read_file_secret(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|text| text.trim_end_matches(['\n', '\r']).to_owned())
        .map_err(|error| format!("cannot read {path}: {error}"))
}

impl FileToken {
    fn into_static_token(self) -> Result<StaticToken, ConfigError> {
        StaticToken::parse(self.name.clone(), &self.sha256, &self.scopes, &self.targets).map_err(
            |message| ConfigError::Token {
                name: self.name,
                message,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_args(extra: &[&str]) -> Result<ServeArgs, clap::Error> {
        #[derive(clap::Parser)]
        struct Serve {
            #[command(flatten)]
            args: ServeArgs,
        }
        let base = ["serve", "--database-url", "postgres://localhost/x"];
        <Serve as clap::Parser>::try_parse_from(base.iter().chain(extra)).map(|serve| serve.args)
    }

    #[test]
    fn the_lease_is_a_human_duration_of_at_least_a_second() {
        let config = Config::from_args(serve_args(&["--lease", "2s"]).unwrap()).unwrap();
        assert_eq!(config.runner.unwrap().lease, Duration::from_secs(2));
        let default = Config::from_args(serve_args(&[]).unwrap()).unwrap();
        assert_eq!(default.runner.unwrap().lease, crate::runner::DEFAULT_LEASE);
        assert!(serve_args(&["--lease", "500ms"]).is_err());
        assert!(serve_args(&["--lease", "soon"]).is_err());
    }

    #[test]
    fn the_secret_key_and_public_url_are_checked_at_start() {
        let key = "0123456789abcdef".repeat(4);
        let args = serve_args(&[
            "--secret-key",
            &key,
            "--public-url",
            "https://rc.example.com/",
        ]);
        let config = Config::from_args(args.unwrap()).unwrap();
        assert!(config.secret_key.is_some());
        assert_eq!(
            config.public_url.map(|url| url.to_string()).as_deref(),
            Some("https://rc.example.com")
        );
        let short = Config::from_args(serve_args(&["--secret-key", "abc123"]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(short.contains("64 hex digits"), "{short}");
        assert!(!short.contains("abc123"), "the key is not echoed: {short}");
        assert!(serve_args(&["--public-url", "rc.example.com"]).is_err());
    }

    #[test]
    fn notification_flags_are_checked_at_start() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let args = serve_args(&[
            "--notify-secret",
            secret,
            "--notify-allow-networks",
            "127.0.0.0/8,10.20.0.0/16",
        ]);
        let config = Config::from_args(args.unwrap()).unwrap();
        let rules = config.notify.rules();
        assert!(rules.has_default_secret);
        assert_eq!(
            rules.destinations.refusal("10.20.3.4".parse().unwrap()),
            None
        );
        assert!(
            rules
                .destinations
                .refusal("10.21.3.4".parse().unwrap())
                .is_some()
        );
        let error = Config::from_args(serve_args(&["--notify-secret", "whsec_short"]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(error.contains("ROLLCALL_NOTIFY_SECRET must be"), "{error}");
        assert!(
            !error.contains("whsec_short"),
            "the secret is not echoed: {error}"
        );
        assert!(serve_args(&["--notify-allow-networks", "10.0.0.0/99"]).is_err());
    }

    #[test]
    fn retention_flags_override_the_file_over_the_defaults() {
        let file: FileConfig = toml::from_str(
            r#"
            [retention]
            log_days = 7
            keep_last = 3
            interval = "30s"
            batch = 500
            "#,
        )
        .unwrap();
        let args =
            serve_args(&["--retention-log-days", "2", "--retention-event-days", "0"]).unwrap();
        let policy = retention_policy(&args.retention, &file.retention).unwrap();
        assert_eq!(
            policy,
            RetentionPolicy {
                log_days: 2,
                event_days: 0,
                keep_last: 3,
                interval: Duration::from_secs(30),
                batch: 500,
                ..RetentionPolicy::default()
            }
        );
        let off = serve_args(&["--retention-off"]).unwrap();
        assert!(
            !retention_policy(&off.retention, &file.retention)
                .unwrap()
                .enabled
        );
        let bad: FileConfig = toml::from_str("[retention]\ninterval = \"soon\"").unwrap();
        let error = retention_policy(&args.retention, &bad.retention)
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("[retention] interval:"), "{error}");
        assert!(toml::from_str::<FileConfig>("[retention]\nlogs = 1").is_err());
    }

    #[test]
    fn chart_sources_come_from_the_file_and_the_flags() {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("password");
        std::fs::write(&password, "s3cret\n").unwrap();
        let file = dir.path().join("rollcall.toml");
        let file_arg = file.display().to_string();
        std::fs::write(
            &file,
            format!(
                "[[charts.repositories]]\nurl = \"https://charts.internal.example\"\n\
                 credentials = {{ username = \"u\", password_file = {:?} }}\n",
                password.display().to_string()
            ),
        )
        .unwrap();
        let args = serve_args(&[
            "--config",
            &file_arg,
            "--chart-repositories",
            "https://charts.example.com,https://mirror.example.com/helm",
            "--chart-registries",
            "ghcr.io/acme",
        ]);
        let allowed = Config::from_args(args.unwrap()).unwrap().allowed_charts;
        let (_, private) = allowed
            .repository("https://charts.internal.example/stable")
            .unwrap();
        let credentials = private.credentials.as_ref().unwrap();
        assert_eq!(credentials.password(), "s3cret", "without the newline");
        assert!(
            allowed
                .repository("https://mirror.example.com/helm")
                .is_ok()
        );
        assert!(allowed.repository("https://mirror.example.com").is_err());
        assert!(allowed.registry("oci://ghcr.io/acme/web").is_ok());
        assert!(serve_args(&["--chart-repositories", "http://charts.example.com"]).is_err());
        assert!(serve_args(&["--chart-registries", "ghcr.io/acme/../x"]).is_err());

        std::fs::write(
            &file,
            "[[charts.repositories]]\nurl = \"https://x.example\"\n\
             credentials = { username = \"u\", password = \"hunter2\" }\n",
        )
        .unwrap();
        let error = Config::from_args(serve_args(&["--config", &file_arg]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("charts.repositories[0].credentials.password: is never written"),
            "{error}"
        );
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn file_tokens_are_checked() {
        let file: FileConfig = toml::from_str(
            r#"
            [limits]
            body_limit_bytes = 2048

            [[tokens]]
            name = "ci"
            sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
            scopes = ["deploy", "read"]
            targets = ["default/prod/*"]
            "#,
        )
        .unwrap();
        assert_eq!(file.limits.body_limit_bytes, Some(2048));
        let token = file
            .tokens
            .into_iter()
            .next()
            .unwrap()
            .into_static_token()
            .unwrap();
        assert_eq!(
            token.scopes,
            [
                crate::domain::auth::Scope::Deploy,
                crate::domain::auth::Scope::Read
            ]
        );
        let bad = FileToken {
            name: "x".into(),
            sha256: "abc".into(),
            scopes: vec![],
            targets: vec![],
        };
        assert!(bad.into_static_token().is_err());
        assert!(toml::from_str::<FileConfig>("unknown = 1").is_err());
    }

    /// The `[[hooks]]` of `text`, read with the environment `env`.
    fn hooks_of(text: &str, env: &[(&str, &str)]) -> Result<Vec<HookDefinition>, String> {
        let mut file: FileConfig = toml::from_str(text).map_err(|error| error.to_string())?;
        file.hooks(&ChartSources::default(), |variable| {
            env.iter()
                .find(|(name, _)| *name == variable)
                .map(|(_, value)| (*value).to_owned())
        })
        .map_err(|error| error.to_string())
    }

    const HOOK: &str = r#"
        [[hooks]]
        name = "web-push"
        provider = "github"
        secret_env = "WEB_PUSH_SECRET"
        values_from = { "/after" = "image.tag" }
        events = ["push"]
        refs = ["refs/heads/main"]
        target = { namespace = "prod", release = "web", chart = { path = "web" } }
    "#;

    #[test]
    fn configured_hooks_read_their_secret_from_the_environment_or_a_file() {
        let hooks = hooks_of(HOOK, &[("WEB_PUSH_SECRET", "It's a Secret to Everybody")]).unwrap();
        assert_eq!(hooks[0].name.as_str(), "web-push");
        assert_eq!(hooks[0].secret.expose(), "It's a Secret to Everybody");
        assert_eq!(hooks[0].spec.secret_env.as_deref(), Some("WEB_PUSH_SECRET"));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n").unwrap();
        let from_file = format!(
            "[[hooks]]\nname = \"registry\"\nprovider = \"generic\"\nsecret_file = {:?}\n\
             target = {{ namespace = \"prod\", release = \"api\", chart = {{ path = \"api\" }} }}\n",
            path.display().to_string()
        );
        let hooks = hooks_of(&from_file, &[]).unwrap();
        assert_eq!(
            hooks[0].secret.expose(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "the file's trailing newline is not part of the secret"
        );
    }

    #[test]
    fn invalid_configured_hooks_name_the_hook_and_the_field() {
        let secret = [("WEB_PUSH_SECRET", "It's a Secret to Everybody")];
        let missing = hooks_of(HOOK, &[]).unwrap_err();
        assert_eq!(
            missing,
            "hook \"web-push\" in the config file: secret_env: the environment variable WEB_PUSH_SECRET is not set"
        );
        let provider = hooks_of(&HOOK.replace("\"github\"", "\"bitbucket\""), &secret).unwrap_err();
        assert!(
            provider.starts_with(
                "hook \"web-push\" in the config file: provider: unknown provider \"bitbucket\""
            ),
            "{provider}"
        );
        let glob = hooks_of(
            &HOOK.replace("refs/heads/main", "refs/heads/[main"),
            &secret,
        )
        .unwrap_err();
        assert!(glob.contains("refs[0]: invalid glob"), "{glob}");
        let pointer = hooks_of(&HOOK.replace("\"/after\"", "\"after\""), &secret).unwrap_err();
        assert!(
            pointer.contains("values_from.after: must be a JSON pointer"),
            "{pointer}"
        );
        let inline = HOOK.replace(
            "secret_env = \"WEB_PUSH_SECRET\"",
            "secret = \"in the file\"",
        );
        let inline = hooks_of(&inline, &secret).unwrap_err();
        assert!(
            inline.contains("secret: is never written in the configuration file"),
            "{inline}"
        );
        let twice = hooks_of(&format!("{HOOK}{HOOK}"), &secret).unwrap_err();
        assert!(
            twice.contains("name: another [[hooks]] entry has this name"),
            "{twice}"
        );
        let target = hooks_of(&HOOK.replace("\"prod\"", "\"Prod\""), &secret).unwrap_err();
        assert!(target.contains("target.namespace"), "{target}");
    }

    #[test]
    fn a_configured_hook_targets_only_allowed_chart_sources() {
        let secret = [("WEB_PUSH_SECRET", "It's a Secret to Everybody")];
        let internal = HOOK.replace(
            "chart = { path = \"web\" }",
            "chart = { repo = \"http://10.0.0.1\", name = \"web\", version = \"1.0.0\" }",
        );
        let error = hooks_of(&internal, &secret).unwrap_err();
        assert!(
            error.starts_with("hook \"web-push\" in the config file: target.chart.repo: "),
            "{error}"
        );
    }

    fn rules_of(text: &str) -> Result<CustomResourceRules, String> {
        let mut file: FileConfig = toml::from_str(text).map_err(|error| error.to_string())?;
        file.custom_resource_rules(Path::new("rollcall.toml"))
            .map_err(|error| error.to_string())
    }

    #[test]
    fn custom_resource_rules_are_read_and_checked() {
        let rules = rules_of(
            r#"
            [[tracking.custom_resources]]
            group = "example.com"
            kind = "Widget"
            ready_when = [{condition = "Available", status = "True"}]
            failed_when = [{condition = "Degraded", status = "True"}]
            failed_phases = ["Broken"]
            terminal = false

            [[tracking.custom_resources]]
            group = "db.example.com"
            kind = "Database"
            ready_phases = ["Online"]
            "#,
        )
        .expect("valid rules");
        let widget = rules.get("example.com", "Widget").expect("widget rule");
        assert_eq!(widget.failed_when[0].to_string(), "Degraded=True");
        assert_eq!(widget.failed_phases, ["broken"]);
        assert!(!widget.terminal);
        assert!(
            rules
                .get("db.example.com", "Database")
                .expect("db")
                .terminal
        );
    }

    #[test]
    fn invalid_custom_resource_rules_name_the_entry_and_field() {
        let error = rules_of(
            r#"
            [[tracking.custom_resources]]
            group = "example.com"
            kind = "Widget"
            ready_when = [{condition = "Available", status = "True"}]

            [[tracking.custom_resources]]
            group = "example.com"
            kind = "Gadget"
            failed_when = [{condition = "Degraded", status = "maybe"}]
            "#,
        )
        .expect_err("invalid status");
        assert_eq!(
            error,
            "config file rollcall.toml: tracking.custom_resources[1] (example.com/Gadget): failed_when[0].status: expected True, False or Unknown, got \"maybe\""
        );
        let unknown_field = rules_of(
            r#"
            [[tracking.custom_resources]]
            group = "example.com"
            kind = "Widget"
            ready_if = []
            "#,
        )
        .expect_err("unknown field");
        assert!(unknown_field.contains("ready_if"), "{unknown_field}");
    }
}
