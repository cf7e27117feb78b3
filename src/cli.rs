//! The `rollcall` command line: one binary, one subcommand per job.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Run a simulated Kubernetes cluster (kubesim) until Ctrl-C or SIGTERM.
    Sim(kubesim::cli::SimArgs),
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Sim(args) => {
            kubesim::cli::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
