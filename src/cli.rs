//! The `rollcall` command line: one binary, one subcommand per job.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::client;
use crate::config::{Config, DatabaseArgs, FileConfig, ServeArgs};
use crate::tracker::core::CustomResourceRules;
use crate::tracker::explain;

#[derive(Debug, Parser)]
#[command(
    name = "rollcall",
    version,
    about = "Deploy tracking for Kubernetes: helm upgrades followed to an honest verdict"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API server (applies migrations first).
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Print the OpenAPI document.
    Openapi,
    /// Run the tracker's status logic on saved objects and print its verdicts.
    Explain(ExplainArgs),
    /// Run a simulated Kubernetes cluster (kubesim) until Ctrl-C or SIGTERM.
    Sim(kubesim::cli::SimArgs),
    /// Try rollcall out: a simulated cluster, a private PostgreSQL, demo charts and the server.
    Sandbox(crate::sandbox::SandboxArgs),
    /// Submit a deploy and follow it to its verdict (exit code 0 succeeded, 1 failed, 3 cancelled,
    /// 4 rejected, 5 could not tell).
    Deploy(Box<client::args::DeployArgs>),
    /// Show a deploy, or follow it to its end.
    Status(client::args::StatusArgs),
    /// Cancel a deploy.
    Cancel(client::args::CancelArgs),
    /// List deploys, newest first.
    Deploys(client::args::DeploysArgs),
}

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// YAML stream of objects (a workload plus, optionally, its ReplicaSets, Pods and Events); `-` for stdin.
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ExplainFormat::Json)]
    pub output: ExplainFormat,
    /// Tracking start (RFC 3339): Events older than this are ignored. Default: all Events count.
    #[arg(long)]
    pub since: Option<DateTime<Utc>>,
    /// Judge as of this time (RFC 3339) instead of now: readiness-probe windows depend on it.
    #[arg(long)]
    pub at: Option<DateTime<Utc>>,
    /// The server's TOML config file: its `[[tracking.custom_resources]]` rules are applied.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExplainFormat {
    Json,
    Text,
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::Migrate(args) => migrate(args).await,
        Command::Openapi => {
            println!("{}", openapi_json());
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain(args) => run_explain(&args),
        Command::Sim(args) => {
            kubesim::cli::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sandbox(args) => sandbox(args).await,
        Command::Deploy(args) => Ok(client::commands::deploy(*args).await.into()),
        Command::Status(args) => Ok(client::commands::status(args).await.into()),
        Command::Cancel(args) => Ok(client::commands::cancel(args).await.into()),
        Command::Deploys(args) => Ok(client::commands::deploys(args).await.into()),
    }
}

/// An error and its causes on one line, each cause once: most of rollcall's errors already say
/// their cause in their own message, which `{:#}` would print a second time.
pub fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// The OpenAPI document as checked in at `openapi/openapi.json`.
pub fn openapi_json() -> String {
    serde_json::to_string_pretty(&crate::http::openapi()).expect("the OpenAPI document serializes")
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    crate::telemetry::init(args.database.log_format);
    let config = Config::from_args(args)?;
    match crate::http::server::raise_open_files_limit() {
        Ok(limit) => tracing::info!(limit, "open files (each client connection takes one)"),
        Err(error) => tracing::warn!(%error, "cannot raise the limit of open files"),
    }
    let listener = crate::startup::bind(config.listen).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    crate::startup::run(config, listener, shutdown).await?;
    tracing::info!("rollcall stopped");
    Ok(ExitCode::SUCCESS)
}

async fn sandbox(args: crate::sandbox::SandboxArgs) -> anyhow::Result<ExitCode> {
    crate::telemetry::init(crate::telemetry::LogFormat::Text);
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    crate::sandbox::run(args, shutdown).await?;
    tracing::info!("sandbox stopped");
    Ok(ExitCode::SUCCESS)
}

async fn migrate(args: DatabaseArgs) -> anyhow::Result<ExitCode> {
    crate::telemetry::init(args.log_format);
    let pool = crate::store::connect(&args.database_url, 1).await?;
    crate::store::migrate(&pool).await?;
    tracing::info!("migrations applied");
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM or Ctrl-C starts a graceful shutdown.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}

fn run_explain(args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let text = if args.file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading stdin")?
    } else {
        std::fs::read_to_string(&args.file)
            .with_context(|| format!("reading {}", args.file.display()))?
    };
    let rules = match &args.config {
        Some(path) => FileConfig::read(path)?.custom_resource_rules(path)?,
        None => CustomResourceRules::default(),
    };
    let objects = explain::parse_stream(&text)?;
    let explanations = explain::explain(
        &objects,
        args.since,
        args.at.unwrap_or_else(Utc::now),
        &rules,
    )?;
    let rendered = match args.output {
        ExplainFormat::Json => serde_json::to_string_pretty(&explanations)? + "\n",
        ExplainFormat::Text => explain::render_text(&explanations),
    };
    match std::io::stdout().lock().write_all(rendered.as_bytes()) {
        // `rollcall explain ... | head` is fine.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        result => result
            .context("writing the verdicts")
            .map(|()| ExitCode::SUCCESS),
    }
}
