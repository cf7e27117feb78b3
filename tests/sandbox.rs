//! `rollcall sandbox` end to end: the built binary fetches helm when there is none, starts a
//! private PostgreSQL, kubesim and the server, runs a deploy of the demo `web` chart to success,
//! and stops everything on SIGTERM; what it says when it cannot start.

#[path = "common/mod.rs"]
mod common;

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::remote::deploy_to_the_end;

const SAFETY_TIMEOUT: Duration = Duration::from_secs(120);

/// Stops the sandbox gracefully if the test ends early, so that its PostgreSQL is not left behind.
struct Sandbox(Child);

impl Sandbox {
    fn terminate(&mut self) -> ExitStatus {
        let pid = libc::pid_t::try_from(self.0.id()).expect("pid fits");
        // SAFETY: kill has no memory-safety preconditions; the pid is our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + SAFETY_TIMEOUT;
        loop {
            if let Some(status) = self.0.try_wait().expect("wait for the sandbox") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the sandbox did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            self.terminate();
        }
    }
}

/// What the banner tells: its `url:`, `token:` and `ui:` lines, the client command and the body of
/// its example `curl` deploy.
struct Banner {
    url: String,
    token: String,
    ui: String,
    client: String,
    example: Value,
}

/// Reads the banner: `url:`, `token:`, `ui:`, the client command (`ROLLCALL_URL=...`), then the
/// example `curl` with its `-d '<JSON>'`.
fn read_banner(child: &mut Child) -> Banner {
    let stdout = child.stdout.take().expect("piped stdout");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut url = None;
        let mut token = None;
        let mut ui = None;
        let mut client = None;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(value) = line.strip_prefix("url: ") {
                url = Some(value.to_owned());
            } else if let Some(value) = line.strip_prefix("token: ") {
                token = Some(value.to_owned());
            } else if let Some(value) = line.strip_prefix("ui: ") {
                ui = value.split_whitespace().next().map(str::to_owned);
            } else if line.starts_with("ROLLCALL_URL=") {
                client = Some(line);
            } else if let Some((_, rest)) = line.split_once("-d '")
                && let Some((body, _)) = rest.split_once('\'')
                && let (Some(url), Some(token), Some(ui), Some(client)) =
                    (url.take(), token.take(), ui.take(), client.take())
            {
                let example = serde_json::from_str(body).expect("the example body is JSON");
                sender
                    .send(Banner {
                        url,
                        token,
                        ui,
                        client,
                        example,
                    })
                    .ok();
            }
            // Keep draining stdout after the banner so that the sandbox never writes to a closed pipe.
        }
    });
    receiver.recv_timeout(SAFETY_TIMEOUT).expect(
        "the sandbox printed no url, token, ui, client command and example (see its log above)",
    )
}

fn assert_no_postgres_left(dir: &Path) {
    assert_eq!(
        postgres_processes_for(dir),
        Vec::<String>::new(),
        "PostgreSQL processes remain"
    );
}

fn postgres_processes_for(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy();
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|entry| std::fs::read(entry.ok()?.path().join("cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| cmdline.contains("postgres") && cmdline.contains(dir.as_ref()))
        .collect()
}

/// A data directory that the postgres user can reach (as root the server runs as that user).
fn sandbox_dir() -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(
        temp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod the temp dir");
    let data_dir = temp.path().join("sandbox");
    (temp, data_dir)
}

/// `PATH` less every directory that holds a helm: what a fresh machine has.
fn path_without_helm() -> OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let kept: Vec<PathBuf> = std::env::split_paths(&path)
        .filter(|dir| !dir.join("helm").exists() && !dir.join("helm3").exists())
        .collect();
    std::env::join_paths(kept).expect("PATH entries join again")
}

/// `rollcall sandbox` on `data_dir` (with `PATH` when given) until its banner is printed; its
/// stderr is echoed and kept.
fn start_sandbox(data_dir: &Path, path: Option<&OsString>) -> (Sandbox, Banner, StderrLines) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rollcall"));
    command
        .args(["sandbox", "--listen", "127.0.0.1:0", "--time-scale", "0.1"])
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("DATABASE_URL")
        .env_remove("ROLLCALL_LISTEN")
        .env_remove("HELM_BIN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(path) = path {
        command.env("PATH", path);
    }
    let mut sandbox = Sandbox(command.spawn().expect("start rollcall sandbox"));
    let stderr = StderrLines::echo(sandbox.0.stderr.take().expect("piped stderr"));
    let banner = read_banner(&mut sandbox.0);
    (sandbox, banner, stderr)
}

/// A child's stderr, echoed to the test's own as it comes and kept for assertions.
#[derive(Clone, Default)]
struct StderrLines(Arc<Mutex<Vec<String>>>);

impl StderrLines {
    fn echo(stderr: ChildStderr) -> Self {
        let lines = StderrLines::default();
        let kept = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                kept.0.lock().expect("stderr lines").push(line);
            }
        });
        lines
    }

    fn containing(&self, text: &str) -> Vec<String> {
        let lines = self.0.lock().expect("stderr lines");
        lines
            .iter()
            .filter(|line| line.contains(text))
            .cloned()
            .collect()
    }
}

/// The README's first command on a fresh machine: no helm anywhere on `PATH`.
#[tokio::test]
async fn sandbox_without_helm_fetches_the_pinned_one_runs_a_web_deploy_and_stops_cleanly() {
    let (_temp, data_dir) = sandbox_dir();
    let (
        mut sandbox,
        Banner {
            url,
            token,
            ui,
            client: client_command,
            example,
        },
        stderr,
    ) = start_sandbox(&data_dir, Some(&path_without_helm()));
    let fetched = data_dir.join("bin/helm");
    assert!(
        fetched.is_file(),
        "the sandbox fetched no helm into {}",
        fetched.display()
    );
    assert_eq!(
        stderr.containing("helm is not on PATH").len(),
        1,
        "one line says that helm is fetched"
    );

    let client = reqwest::Client::new();
    assert_eq!(ui, format!("{url}/ui"));
    let page = client.get(&ui).send().await.expect("GET the ui");
    assert_eq!(page.status(), 200, "the banner's ui link serves the page");
    // The banner's example, as a user pastes it: a namespace that helm creates.
    let deploy = deploy_to_the_end(&url, &token, &example).await;
    assert_eq!(deploy["status"], "succeeded", "{deploy}");
    assert_eq!(deploy["namespace"], example["namespace"]);

    // The crashloop demo fails, and its report shows what the crashed container logged.
    let crashloop = serde_json::json!({
        "release": "crashloop", "namespace": "demo", "chart": {"path": "crashloop"},
    });
    let deploy = deploy_to_the_end(&url, &token, &crashloop).await;
    assert_eq!(deploy["status"], "failed", "{deploy}");
    assert_eq!(deploy["verdict"]["reason"], "CrashLoopBackOff", "{deploy}");
    let events: Value = client
        .get(format!(
            "{url}/v1/deploys/{}/events?limit=1000",
            deploy["id"].as_str().expect("id")
        ))
        .bearer_auth(&token)
        .header("accept", "application/json")
        .send()
        .await
        .expect("GET the events")
        .json()
        .await
        .expect("JSON events");
    let report = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|event| event["type"] == "report")
        .unwrap_or_else(|| panic!("no report event: {events}"));
    let logged = report["data"]["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .flat_map(|resource| resource["failure"]["evidence"]["log_lines"].as_array())
        .flatten()
        .any(|line| {
            line.as_str()
                .is_some_and(|line| line.contains("DATABASE_HOST is not set"))
        });
    assert!(
        logged,
        "the report shows the crashed container's log: {report}"
    );
    assert!(
        data_dir.join("kubeconfig").is_file(),
        "the sandbox writes a kubeconfig"
    );

    // The client command, pasted as printed: it upgrades the release and follows it to success.
    let pasted = Command::new("sh")
        .args(["-c", &client_command])
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI")
        .stdin(Stdio::null())
        .output()
        .expect("run the printed client command");
    let printed = String::from_utf8_lossy(&pasted.stdout);
    assert_eq!(
        pasted.status.code(),
        Some(0),
        "{client_command}\n{printed}{}",
        String::from_utf8_lossy(&pasted.stderr)
    );
    assert!(
        printed.contains("of web to demo succeeded"),
        "{client_command}\n{printed}"
    );

    let status = sandbox.terminate();
    assert!(status.success(), "the sandbox exited with {status}");
    assert_no_postgres_left(&data_dir);
}

/// The postmaster pid that `data_dir`'s server recorded (first line of `postmaster.pid`).
fn postmaster_pid(data_dir: &Path) -> libc::pid_t {
    let text = std::fs::read_to_string(data_dir.join("pg/data/postmaster.pid"))
        .expect("a running server's postmaster.pid");
    text.lines()
        .next()
        .and_then(|line| line.trim().parse().ok())
        .expect("a pid on the first line")
}

/// Running, not a zombie that nobody reaped yet (`/proc/<pid>/stat`: `pid (comm) state ...`).
fn is_alive(pid: libc::pid_t) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, after_comm) = stat.rsplit_once(')')?;
            after_comm
                .split_whitespace()
                .next()
                .map(|state| state != "Z")
        })
        .unwrap_or(false)
}

#[tokio::test]
async fn a_sandbox_killed_with_sigkill_leaves_postgres_that_the_next_start_stops() {
    let (_temp, data_dir) = sandbox_dir();
    let (mut killed, _, _) = start_sandbox(&data_dir, None);
    let leftover = postmaster_pid(&data_dir);
    let pid = libc::pid_t::try_from(killed.0.id()).expect("pid fits");
    // SAFETY: kill has no memory-safety preconditions; the pid is our own child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    killed.0.wait().expect("wait for the killed sandbox");
    assert!(
        is_alive(leftover),
        "the scenario needs PostgreSQL to outlive its sandbox"
    );

    let (mut sandbox, banner, _) = start_sandbox(&data_dir, None);
    let ready = reqwest::get(format!("{}/readyz", banner.url))
        .await
        .expect("GET /readyz");
    assert_eq!(ready.status(), 200);
    let deadline = Instant::now() + SAFETY_TIMEOUT;
    while is_alive(leftover) {
        assert!(
            Instant::now() < deadline,
            "the leftover PostgreSQL {leftover} still runs"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_ne!(postmaster_pid(&data_dir), leftover);

    let status = sandbox.terminate();
    assert!(status.success(), "the sandbox exited with {status}");
    assert_no_postgres_left(&data_dir);
}

/// `rollcall sandbox` with `args`, which must fail to start: its last line on stderr, after
/// checking that it stopped what it had started and warned about nothing.
fn failed_start(data_dir: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .arg("sandbox")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("DATABASE_URL")
        .env_remove("ROLLCALL_LISTEN")
        .stdin(Stdio::null())
        .output()
        .expect("run rollcall sandbox");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        !stderr.contains("WARN"),
        "stopping after a failed start warns about nothing: {stderr}"
    );
    assert_no_postgres_left(data_dir);
    stderr.lines().last().unwrap_or_default().to_owned()
}

/// A helm named explicitly but missing: the sandbox stops what it started and says, in one
/// sentence without a repeated cause, what is missing and how to fix it.
#[test]
fn sandbox_with_a_missing_helm_says_what_to_do_in_one_sentence() {
    let (_temp, data_dir) = sandbox_dir();
    let last = failed_start(
        &data_dir,
        &["--listen", "127.0.0.1:0", "--helm-bin", "/nonexistent/helm"],
    );
    assert_eq!(
        last,
        "rollcall: cannot start the runner: helm was not found at /nonexistent/helm: set HELM_BIN \
         (--helm-bin) to a helm v4 or v3 binary, or install the pinned one with scripts/install-helm \
         from rollcall's repository"
    );
}

/// An address in use: one sentence naming the address, the cause once, and the variable.
#[test]
fn sandbox_on_a_taken_address_says_what_to_do_in_one_sentence() {
    let (_temp, data_dir) = sandbox_dir();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    let last = failed_start(&data_dir, &["--listen", &address]);
    assert_eq!(
        last,
        format!(
            "rollcall: cannot listen on {address} (Address already in use (os error 98)): set \
             ROLLCALL_LISTEN (--listen) to a free address"
        )
    );
}
