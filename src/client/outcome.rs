//! The client's exit codes: what a CI job branches on.

use std::process::ExitCode;

use crate::domain::deploy::DeployStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The deploy succeeded (or the command did what it was asked).
    Succeeded,
    /// The deploy failed, whatever the verdict (timeouts included).
    Failed,
    /// The command line is wrong (clap uses the same code for its own errors).
    Usage,
    /// The deploy was cancelled.
    Cancelled,
    /// The server refused the request (4xx); its field errors were printed.
    Rejected,
    /// Could not tell: the server stayed out of reach past the reconnect budget, or answered
    /// what the client does not understand.
    Unknown,
    /// Ctrl-C stopped the client; the deploy goes on.
    Interrupted,
}

impl Outcome {
    /// What a deploy's status means for the exit code (one still running: the command did its job).
    pub fn of_status(status: DeployStatus) -> Outcome {
        match status {
            DeployStatus::Failed => Outcome::Failed,
            DeployStatus::Cancelled => Outcome::Cancelled,
            DeployStatus::Succeeded
            | DeployStatus::Queued
            | DeployStatus::Running
            | DeployStatus::Cancelling => Outcome::Succeeded,
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Outcome::Succeeded => 0,
            Outcome::Failed => 1,
            Outcome::Usage => 2,
            Outcome::Cancelled => 3,
            Outcome::Rejected => 4,
            Outcome::Unknown => 5,
            // The shell's code for a process ended by SIGINT.
            Outcome::Interrupted => 130,
        }
    }
}

impl From<Outcome> for ExitCode {
    fn from(outcome: Outcome) -> ExitCode {
        ExitCode::from(outcome.code())
    }
}
