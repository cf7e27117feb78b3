//! `rollcall deploy`, `status`, `cancel` and `deploys`: the command-line client of the HTTP API,
//! for CI jobs and terminals. It speaks only the API (no server module is imported); the wire
//! types it shares come from `domain` (events, verdicts, statuses, the deploy request).
//!
//! | module | what it holds |
//! |---|---|
//! | [`args`] | the subcommands' flags and their environment variables |
//! | [`commands`] | each subcommand, from request to exit code |
//! | [`api`] | requests with the token, answers decoded, failures sorted for the exit code |
//! | [`follow`], [`sse`] | the event stream followed to its end across reconnects (`Last-Event-ID`) |
//! | [`progress`], [`view`] | where the deploy stands, redrawn on a terminal or as timestamped lines |
//! | [`report`] | the failure report and the CI summary |
//! | [`ci`], [`text`] | CI conventions (GitHub Actions, GitLab) and cluster text made safe to print |
//! | [`values`] | `-f` files and `--set` merged as helm merges them |
//! | [`outcome`] | the exit codes |

pub mod api;
pub mod args;
pub mod ci;
pub mod commands;
pub mod follow;
pub mod outcome;
pub mod progress;
pub mod report;
pub mod sse;
pub mod text;
pub mod values;
pub mod view;
