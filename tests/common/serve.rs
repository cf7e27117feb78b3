//! `rollcall serve` as a child process: the binary Cargo built alongside this test or benchmark (the
//! optimized one under `cargo bench`), its JSON log in a file.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use uuid::Uuid;

/// A kubesim in this process with its kubeconfig written in `dir`: the cluster a child server
/// deploys to.
pub async fn simulated_cluster(dir: &Path) -> (kubesim::ClusterHandle, PathBuf) {
    let cluster = kubesim::Cluster::start(kubesim::options::ClusterOptions::default())
        .await
        .expect("kubesim starts");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, cluster.kubeconfig_yaml()).expect("write kubeconfig");
    (cluster, kubeconfig)
}

/// What a child server is pointed at.
pub struct ServeEnv<'a> {
    pub database_url: &'a str,
    pub kubeconfig: &'a Path,
    pub helm: &'a Path,
    pub chart_dir: &'a Path,
    pub admin_token: &'a str,
    /// Holds the log files and the temporary directory of helm's home and value files.
    pub dir: &'a Path,
}

/// One `rollcall serve` child process; killed when dropped.
pub struct ServeProcess {
    child: Child,
    /// `http://127.0.0.1:<port>`
    pub address: String,
    log: PathBuf,
}

impl ServeProcess {
    /// Starts `rollcall serve` named `name` (its lease owner starts with it) and waits until it
    /// serves. `extra`: more environment, overriding the defaults set here.
    pub async fn start(env: &ServeEnv<'_>, name: &str, extra: &[(&str, &str)]) -> ServeProcess {
        let log = env
            .dir
            .join(format!("{name}-{}.log", Uuid::new_v4().simple()));
        let file = std::fs::File::create(&log).expect("create the log file");
        let tmp = env.dir.join("tmp");
        std::fs::create_dir_all(&tmp).expect("create the temporary directory");
        let mut command = Command::new(env!("CARGO_BIN_EXE_rollcall"));
        command
            .arg("serve")
            .env("DATABASE_URL", env.database_url)
            .env("KUBECONFIG", env.kubeconfig)
            .env("HELM_BIN", env.helm)
            .env("ROLLCALL_CHART_DIR", env.chart_dir)
            .env("ROLLCALL_ADMIN_TOKEN", env.admin_token)
            .env("ROLLCALL_LISTEN", "127.0.0.1:0")
            .env("ROLLCALL_LOG_FORMAT", "json")
            .env("RUST_LOG", "info,sqlx=warn")
            .env("HOSTNAME", name)
            // helm's home and value files live in the process's temporary directory.
            .env("TMPDIR", &tmp)
            .env_remove("ROLLCALL_CONFIG")
            .env_remove("ROLLCALL_NO_RUNNER")
            .env_remove("ROLLCALL_ROLLBACK_ON_FAILURE")
            .env_remove("ROLLCALL_PARALLELISM")
            .env_remove("ROLLCALL_BODY_LIMIT")
            .env_remove("ROLLCALL_LEASE")
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file handle"))
            .stderr(file);
        // A test or benchmark killed outright (SIGKILL, a timeout) must not leave its server
        // running: the kernel ends the child with the thread that started it.
        // SAFETY: prctl and getppid are async-signal-safe; nothing is allocated after the fork.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have gone before the request took effect.
                if libc::getppid() == 1 {
                    return Err(std::io::Error::other("the test process is gone"));
                }
                Ok(())
            });
        }
        let mut child = command.spawn().expect("start rollcall serve");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let address = text
                .lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .find(|line| line["message"] == "rollcall serving")
                .and_then(|line| line["address"].as_str().map(str::to_owned));
            if let Some(address) = address {
                return ServeProcess {
                    child,
                    address: format!("http://{address}"),
                    log,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("rollcall serve exited ({status}) before serving:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "rollcall serve did not start serving:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether `deploy` is held by this process (its lease owner is `<name>-<pid>-<suffix>`).
    pub fn owns(&self, deploy: &Value) -> bool {
        deploy["lease_owner"]
            .as_str()
            .is_some_and(|owner| owner.contains(&format!("-{}-", self.pid())))
    }

    /// SIGKILL of the process and of the helm processes it started, as when its container dies:
    /// frozen first so that it starts nothing new meanwhile. helm runs in process groups of its
    /// own, which outlive their parent unless killed too.
    pub fn kill(&mut self) {
        let pid = self.pid() as libc::pid_t;
        // SAFETY: kill(2) on processes this test started; no memory effects.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        for child in children_of(pid) {
            // SAFETY: as above; a negative pid is the helm child's process group.
            unsafe {
                libc::kill(-child, libc::SIGKILL);
                libc::kill(child, libc::SIGKILL);
            }
        }
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let _ = self.child.wait();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// Processes whose parent is `parent`, from `/proc/<pid>/stat` (`pid (comm) state ppid ...`).
fn children_of(parent: libc::pid_t) -> Vec<libc::pid_t> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let (_, after_comm) = stat.rsplit_once(')')?;
                    after_comm.split_whitespace().nth(1)?.parse().ok()
                })
                == Some(parent)
        })
        .collect()
}
