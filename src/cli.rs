//! The `rollcall` command line: one binary, one subcommand per job.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};

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
    /// Run the tracker's status logic on saved objects and print its verdicts.
    Explain(ExplainArgs),
    /// Run a simulated Kubernetes cluster (kubesim) until Ctrl-C or SIGTERM.
    Sim(kubesim::cli::SimArgs),
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExplainFormat {
    Json,
    Text,
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Explain(args) => run_explain(&args),
        Command::Sim(args) => {
            kubesim::cli::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_explain(args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let text = if args.file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading stdin")?
    } else {
        std::fs::read_to_string(&args.file)
            .with_context(|| format!("reading {}", args.file.display()))?
    };
    let objects = explain::parse_stream(&text)?;
    let explanations = explain::explain(&objects, args.since, args.at.unwrap_or_else(Utc::now))?;
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
