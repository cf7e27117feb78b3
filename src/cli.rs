//! The `rollcall` command line: one binary, one subcommand per job.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, DatabaseArgs, ServeArgs};

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
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Print the OpenAPI document.
    Openapi,
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Migrate(args) => migrate(args).await,
        Command::Openapi => {
            println!("{}", openapi_json());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The OpenAPI document as checked in at `openapi/openapi.json`.
pub fn openapi_json() -> String {
    serde_json::to_string_pretty(&crate::http::openapi()).expect("the OpenAPI document serializes")
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    crate::telemetry::init(args.database.log_format);
    let config = Config::from_args(args)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    crate::startup::run(config, listener, shutdown).await?;
    tracing::info!("rollcall stopped");
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
