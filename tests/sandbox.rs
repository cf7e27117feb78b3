//! `rollcall sandbox` end to end: the built binary starts a private PostgreSQL, kubesim and the
//! server, runs a deploy of the demo `web` chart to success, and stops everything on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
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

/// What the banner tells: its `url:` and `token:` lines and the body of its example deploy.
struct Banner {
    url: String,
    token: String,
    example: Value,
}

/// Reads the banner: `url:`, `token:`, then the example `curl` with its `-d '<JSON>'`.
fn read_banner(child: &mut Child) -> Banner {
    let stdout = child.stdout.take().expect("piped stdout");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut url = None;
        let mut token = None;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(value) = line.strip_prefix("url: ") {
                url = Some(value.to_owned());
            } else if let Some(value) = line.strip_prefix("token: ") {
                token = Some(value.to_owned());
            } else if let Some((_, rest)) = line.split_once("-d '")
                && let Some((body, _)) = rest.split_once('\'')
                && let (Some(url), Some(token)) = (url.take(), token.take())
            {
                let example = serde_json::from_str(body).expect("the example body is JSON");
                sender
                    .send(Banner {
                        url,
                        token,
                        example,
                    })
                    .ok();
            }
            // Keep draining stdout after the banner so that the sandbox never writes to a closed pipe.
        }
    });
    receiver
        .recv_timeout(SAFETY_TIMEOUT)
        .expect("the sandbox printed no url, token and example (see its log above)")
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

#[tokio::test]
async fn sandbox_runs_a_web_deploy_and_stops_cleanly() {
    let temp = tempfile::tempdir().expect("temp dir");
    // As root the server runs as the postgres user, which must be able to reach the data dir.
    std::fs::set_permissions(
        temp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod the temp dir");
    let data_dir = temp.path().join("sandbox");
    let child = Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .args(["sandbox", "--listen", "127.0.0.1:0", "--time-scale", "0.1"])
        .arg("--data-dir")
        .arg(&data_dir)
        .env_remove("DATABASE_URL")
        .env_remove("ROLLCALL_LISTEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start rollcall sandbox");
    let mut sandbox = Sandbox(child);
    let Banner {
        url,
        token,
        example,
    } = read_banner(&mut sandbox.0);

    let client = reqwest::Client::new();
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

    let status = sandbox.terminate();
    assert!(status.success(), "the sandbox exited with {status}");
    assert_eq!(
        postgres_processes_for(&data_dir),
        Vec::<String>::new(),
        "PostgreSQL processes remain"
    );
}
