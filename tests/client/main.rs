//! `rollcall deploy`, `status`, `cancel` and `deploys` as a CI job or a person runs them: the built
//! binary against a real server (the real helm deploying to kubesim, a real PostgreSQL), judged by
//! its exit code and what it prints. `exit_codes` covers each outcome, `restart` a server restarted
//! mid-follow, `terminal` the live view on a pseudo-terminal (tmux).

#[path = "../common/mod.rs"]
mod common;

mod exit_codes;
mod restart;
mod terminal;

use std::process::Stdio;
use std::time::Duration;

use kubesim::ClusterHandle;
use serde_json::Value;
use uuid::Uuid;

use common::app::{TestApp, spawn_app_with, test_server_key};
use common::runner::{start_kubesim, with_runner};

/// Generous: only guards against a hung test.
const SAFETY_TIMEOUT: Duration = Duration::from_secs(120);

/// rollcall with a runner, deploying to a fresh kubesim whose durations run `time_scale` times.
pub struct Server {
    pub app: TestApp,
    cluster: ClusterHandle,
    _home: tempfile::TempDir,
}

impl Server {
    pub async fn start(time_scale: f64) -> Server {
        let home = tempfile::tempdir().expect("temporary directory");
        let (cluster, kubeconfig) = start_kubesim(time_scale, home.path()).await;
        let app = spawn_app_with(|config| {
            with_runner(config, Some(kubeconfig), home.path());
            config.secret_key = Some(test_server_key());
        })
        .await;
        Server {
            app,
            cluster,
            _home: home,
        }
    }

    pub async fn shutdown(self) {
        self.app.shutdown().await;
        self.cluster.shutdown().await;
    }
}

/// What one run of the client did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Lines of the event stream (they start with the event's time, `12:00:01.234Z`).
    pub fn event_lines(&self) -> Vec<&str> {
        event_lines(&self.stdout)
    }

    /// The deploy id from the `rollcall: deploy <id> of ...` line.
    pub fn deploy_id(&self) -> Uuid {
        deploy_id(&self.stdout).unwrap_or_else(|| panic!("no deploy id printed:\n{self}"))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub fn event_lines(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter(|line| {
            let bytes = line.as_bytes();
            bytes.len() > 14
                && bytes[..13].iter().enumerate().all(|(i, b)| match i {
                    2 | 5 => *b == b':',
                    8 => *b == b'.',
                    12 => *b == b'Z',
                    _ => b.is_ascii_digit(),
                })
        })
        .collect()
}

pub fn deploy_id(output: &str) -> Option<Uuid> {
    output.lines().find_map(|line| {
        line.strip_prefix("rollcall: deploy ")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// The client binary with `ROLLCALL_URL` and `ROLLCALL_TOKEN` set and no CI runner's variables
/// inherited from the test's environment; `env` adds more.
pub fn client(
    server: &str,
    token: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_rollcall"));
    command
        .args(args)
        .env("ROLLCALL_URL", server)
        .env("ROLLCALL_TOKEN", token)
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("GITLAB_CI")
        .env_remove("ROLLCALL_NAMESPACE")
        .env_remove("ROLLCALL_CLUSTER")
        .env_remove("ROLLCALL_IDEMPOTENCY_KEY")
        .env_remove("ROLLCALL_RECONNECT_BUDGET")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// A command line's words (`"deploy web -n default"`), for arguments without spaces.
pub fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// Runs the client to its end.
pub async fn run(server: &str, token: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let output = tokio::time::timeout(SAFETY_TIMEOUT, client(server, token, args, env).output())
        .await
        .unwrap_or_else(|_| panic!("rollcall {args:?} did not end"))
        .expect("run the client");
    Run {
        code: output.status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Checks that the client printed every event of the deploy exactly once, in order: one line
/// per event, each holding its message.
pub fn assert_each_event_once(lines: &[&str], events: &[Value], output: &dyn std::fmt::Display) {
    assert_eq!(
        lines.len(),
        events.len(),
        "one line per event:\n{output}\nevents: {events:#?}"
    );
    for (line, event) in lines.iter().zip(events) {
        let message = event["message"].as_str().expect("message");
        assert!(
            line.contains(message),
            "line {line:?} is not event {event}\n{output}"
        );
    }
}
