//! A fleet of releases deployed at once through one `rollcall serve` (a child process) on one
//! kubesim: half healthy, some crash-looping, some with a failing Job. What each must end with,
//! the Kubernetes API cost kubesim counted of rollcall's own requests, and the figures of a run.
//! The suite runs a small fleet (`tests/runner/fleet_cost.rs`); `cargo bench --bench fleet` the
//! 1,000.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kubesim::control_loop::TransitionKind;
use kubesim::{ClusterHandle, RequestCounts};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::app::submit;
use super::charts;
use super::figures::load_average;
use super::helm::helm_bin;
use super::postgres::fresh_database;
use super::remote::has_ended;
use super::serve::{ServeEnv, ServeProcess, simulated_cluster};

/// How often a fleet run says how far it got.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);

/// rollcall's requests, as kubesim tells clients apart (the product of the `User-Agent`).
pub const ROLLCALL: &str = "rollcall";
/// The kinds a fleet's tracking watches in each namespace.
pub const WATCHED: [&str; 6] = [
    "deployments.apps",
    "replicasets.apps",
    "services",
    "jobs.batch",
    "pods",
    "events",
];

/// What a member of the fleet must end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// `web`, ready after a while: succeeded.
    Healthy,
    /// `web` crashing: failed, `CrashLoopBackOff`.
    CrashLoop,
    /// `failing-job`: failed, `BackoffLimitExceeded`.
    FailingJob,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub namespace: String,
    pub release: String,
    pub expect: Expect,
}

impl Member {
    fn body(&self) -> Value {
        let (chart, values) = match self.expect {
            Expect::Healthy => (
                "web",
                json!({"name": self.release, "replicas": 1, "behavior": "readyAfter=2s"}),
            ),
            Expect::CrashLoop => (
                "web",
                json!({"name": self.release, "replicas": 1, "behavior": "crashAfter=1s;exitCode=1"}),
            ),
            Expect::FailingJob => ("failing-job", json!({"name": self.release})),
        };
        json!({
            "release": self.release,
            "namespace": self.namespace,
            "create_namespace": true,
            "chart": {"path": chart},
            "values": values,
            "timeout": "5m",
        })
    }

    fn verdict_is_right(&self, deploy: &Value) -> bool {
        let outcome = (
            deploy["status"].as_str(),
            deploy["verdict"]["reason"].as_str(),
        );
        match self.expect {
            Expect::Healthy => outcome == (Some("succeeded"), None),
            Expect::CrashLoop => outcome == (Some("failed"), Some("CrashLoopBackOff")),
            Expect::FailingJob => outcome == (Some("failed"), Some("BackoffLimitExceeded")),
        }
    }
}

/// `namespaces` × `per_namespace` members, interleaved across namespaces: in each ten of a
/// namespace, five healthy, three crash-looping, two with a failing Job.
pub fn plan(namespaces: usize, per_namespace: usize) -> Vec<Member> {
    (0..per_namespace)
        .flat_map(|index| {
            (0..namespaces).map(move |namespace| {
                let expect = match index % 10 {
                    0..5 => Expect::Healthy,
                    5..8 => Expect::CrashLoop,
                    _ => Expect::FailingJob,
                };
                Member {
                    namespace: format!("fleet-{namespace}"),
                    release: format!("app-{index}"),
                    expect,
                }
            })
        })
        .collect()
}

/// kubesim in this process, `rollcall serve` as a child over a database of its own.
pub struct Fleet {
    pub cluster: ClusterHandle,
    pub server: ServeProcess,
    token: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// How a fleet's run ended.
pub struct FleetRun {
    /// Each member with its deploy as it ended (`None`: not ended before the deadline).
    pub ended: Vec<(Member, Option<Value>)>,
    /// From the first submission to the last verdict.
    pub elapsed: Duration,
    /// Peak resident memory of the rollcall process (`VmHWM`), KiB.
    pub peak_rss_kib: u64,
    /// From kubesim's decisive change (rollout complete, Job failed) to the deploy's end, for the
    /// members whose change kubesim announced.
    pub verdict_latencies: Vec<Duration>,
    /// Kubernetes requests during the run, rollcall's among them (`by_client`).
    pub requests: RequestCounts,
}

impl FleetRun {
    /// Members that did not end, or ended with another verdict than theirs.
    pub fn wrong(&self) -> Vec<String> {
        self.ended
            .iter()
            .filter(|(member, deploy)| !deploy.as_ref().is_some_and(|d| member.verdict_is_right(d)))
            .map(|(member, deploy)| {
                let found = deploy.as_ref().map_or_else(
                    || "not ended".to_owned(),
                    |d| format!("{} {}", d["status"], d["verdict"]),
                );
                format!(
                    "{}/{} ({:?}): {found}",
                    member.namespace, member.release, member.expect
                )
            })
            .collect()
    }

    pub fn deploys_per_minute(&self) -> f64 {
        self.ended.len() as f64 / self.elapsed.as_secs_f64() * 60.0
    }

    /// rollcall's requests with `verb`, by resource.
    pub fn rollcall_requests(&self, verb: &str) -> Vec<(String, u64)> {
        let mut found: Vec<(String, u64)> = self
            .requests
            .by_client
            .get(ROLLCALL)
            .into_iter()
            .flatten()
            .filter_map(|(resource, verbs)| Some((resource.clone(), *verbs.get(verb)?)))
            .collect();
        found.sort();
        found
    }
}

impl Fleet {
    /// `extra`: more environment of the server (e.g. its helm slots).
    pub async fn start(extra: &[(&str, &str)]) -> Fleet {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (cluster, kubeconfig) = simulated_cluster(dir.path()).await;
        let database_url = fresh_database().await;
        let token = format!("fleet-admin-{}", Uuid::new_v4().simple());
        let env = ServeEnv {
            database_url: &database_url,
            kubeconfig: &kubeconfig,
            helm: &helm_bin(),
            chart_dir: &charts::catalog(),
            admin_token: &token,
            dir: dir.path(),
        };
        let environment: Vec<(&str, &str)> = [("RUST_LOG", "warn,rollcall::startup=info")]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
        let server = ServeProcess::start(&env, "fleet", &environment).await;
        Fleet {
            cluster,
            server,
            token,
            client: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// Submits every member at once, waits (until `deadline`) for every deploy to end.
    pub async fn run(&self, members: &[Member], deadline: Duration) -> FleetRun {
        let decisive = DecisiveChanges::follow(&self.cluster);
        self.cluster.reset_request_counts();
        let started = Instant::now();
        let mut ids = Vec::with_capacity(members.len());
        for member in members {
            let request = self
                .client
                .post(format!("{}/v1/deploys", self.server.address))
                .bearer_auth(&self.token)
                .json(&member.body());
            ids.push(submit(request).await);
        }
        let mut ended: HashMap<Uuid, Value> = HashMap::new();
        let mut namespaces: Vec<&str> = members.iter().map(|m| m.namespace.as_str()).collect();
        namespaces.sort_unstable();
        namespaces.dedup();
        let mut last_end = started;
        let mut next_progress = started + PROGRESS_EVERY;
        while ended.len() < ids.len() && started.elapsed() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if Instant::now() >= next_progress {
                next_progress += PROGRESS_EVERY;
                eprintln!(
                    "fleet: {:>4.0} s, {} of {} ended, load average {}",
                    started.elapsed().as_secs_f64(),
                    ended.len(),
                    ids.len(),
                    load_average()
                );
            }
            for namespace in &namespaces {
                for deploy in self.list(namespace).await {
                    let terminal = has_ended(&deploy);
                    let id = deploy["id"].as_str().and_then(|id| id.parse().ok());
                    if let (true, Some(id)) = (terminal, id)
                        && !ended.contains_key(&id)
                    {
                        ended.insert(id, deploy);
                        last_end = Instant::now();
                    }
                }
            }
        }
        let requests = self.cluster.request_counts();
        decisive.stop.cancel();
        let ended: Vec<(Member, Option<Value>)> = members
            .iter()
            .cloned()
            .zip(ids.iter().map(|id| ended.get(id).cloned()))
            .collect();
        let verdict_latencies = decisive.latencies(&ended);
        FleetRun {
            ended,
            elapsed: last_end - started,
            peak_rss_kib: peak_rss_kib(self.server.pid()),
            verdict_latencies,
            requests,
        }
    }

    /// The deploys of `namespace` (a fleet has at most 200 in one).
    async fn list(&self, namespace: &str) -> Vec<Value> {
        let response = self
            .client
            .get(format!(
                "{}/v1/deploys?namespace={namespace}&limit=200",
                self.server.address
            ))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("list deploys");
        assert_eq!(response.status(), 200, "GET /v1/deploys");
        let page: Value = response.json().await.expect("JSON page");
        page["items"].as_array().cloned().unwrap_or_default()
    }
}

/// `VmHWM` of a process, KiB (0 when unreadable).
pub fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|value| value.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// When kubesim announced the decisive change of each (namespace, name), on the wall clock.
type Announced = HashMap<(String, String), DateTime<Utc>>;

/// The decisive changes kubesim announces.
struct DecisiveChanges {
    seen: Arc<Mutex<Announced>>,
    stop: CancellationToken,
}

impl DecisiveChanges {
    fn follow(cluster: &ClusterHandle) -> DecisiveChanges {
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let stop = CancellationToken::new();
        let mut transitions = cluster.controllers().subscribe();
        let (record, until) = (Arc::clone(&seen), stop.clone());
        // Instants to wall-clock time, to compare with the server's `finished_at`.
        let (origin, wall) = (Instant::now(), Utc::now());
        tokio::spawn(async move {
            loop {
                let transition = tokio::select! {
                    () = until.cancelled() => return,
                    transition = transitions.recv() => transition,
                };
                let transition = match transition {
                    Ok(transition) => transition,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                if matches!(
                    transition.kind,
                    TransitionKind::RolloutComplete { .. } | TransitionKind::JobFinished { .. }
                ) {
                    let since = transition.at.saturating_duration_since(origin);
                    let at = wall + chrono::Duration::from_std(since).unwrap_or_default();
                    record
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .entry((transition.namespace, transition.name))
                        .or_insert(at);
                }
            }
        });
        DecisiveChanges { seen, stop }
    }

    /// For each ended healthy or failing-Job member whose change was seen: change → end.
    fn latencies(&self, ended: &[(Member, Option<Value>)]) -> Vec<Duration> {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        ended
            .iter()
            .filter(|(member, _)| member.expect != Expect::CrashLoop)
            .filter_map(|(member, deploy)| {
                let finished: DateTime<Utc> =
                    deploy.as_ref()?["finished_at"].as_str()?.parse().ok()?;
                let decided = seen.get(&(member.namespace.clone(), member.release.clone()))?;
                (finished - *decided).to_std().ok()
            })
            .collect()
    }
}
