//! `rollcall sandbox` end to end: the built binary starts a private PostgreSQL, kubesim and the
//! server, runs a deploy of the demo `web` chart to success, and stops everything on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

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

/// `rollcall sandbox` on `data_dir` until its banner is printed.
fn start_sandbox(data_dir: &Path) -> (Sandbox, Banner) {
    let child = Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .args(["sandbox", "--listen", "127.0.0.1:0", "--time-scale", "0.1"])
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("DATABASE_URL")
        .env_remove("ROLLCALL_LISTEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start rollcall sandbox");
    let mut sandbox = Sandbox(child);
    let banner = read_banner(&mut sandbox.0);
    (sandbox, banner)
}

#[tokio::test]
async fn sandbox_runs_a_web_deploy_and_stops_cleanly() {
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
    ) = start_sandbox(&data_dir);

    let client = reqwest::Client::new();
    assert_eq!(ui, format!("{url}/ui"));
    let page = client.get(&ui).send().await.expect("GET the ui");
    assert_eq!(page.status(), 200, "the banner's ui link serves the page");
    let accepted: Value = client
        .post(format!("{url}/v1/deploys"))
        .bearer_auth(&token)
        // The banner's example, as a user pastes it: a namespace that helm creates.
        .json(&example)
        .send()
        .await
        .expect("POST /v1/deploys")
        .error_for_status()
        .expect("deploy accepted")
        .json()
        .await
        .expect("JSON answer");
    let deploy_url = format!(
        "{url}{}",
        accepted["links"]["self"].as_str().expect("self link")
    );
    let deadline = Instant::now() + SAFETY_TIMEOUT;
    let deploy = loop {
        let deploy: Value = client
            .get(&deploy_url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("GET the deploy")
            .json()
            .await
            .expect("JSON deploy");
        match deploy["status"].as_str() {
            Some("succeeded" | "failed" | "cancelled" | "rolled_back") => break deploy,
            _ if Instant::now() > deadline => panic!("the deploy did not finish: {deploy}"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    assert_eq!(deploy["status"], "succeeded", "{deploy}");
    assert_eq!(deploy["namespace"], example["namespace"]);
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
    assert_eq!(
        postgres_processes_for(&data_dir),
        Vec::<String>::new(),
        "PostgreSQL processes remain"
    );
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
    let (mut killed, _) = start_sandbox(&data_dir);
    let leftover = postmaster_pid(&data_dir);
    let pid = libc::pid_t::try_from(killed.0.id()).expect("pid fits");
    // SAFETY: kill has no memory-safety preconditions; the pid is our own child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    killed.0.wait().expect("wait for the killed sandbox");
    assert!(
        is_alive(leftover),
        "the scenario needs PostgreSQL to outlive its sandbox"
    );

    let (mut sandbox, banner) = start_sandbox(&data_dir);
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
    assert_eq!(
        postgres_processes_for(&data_dir),
        Vec::<String>::new(),
        "PostgreSQL processes remain"
    );
}
