//! Verdict latency and API cost of tracking on kubesim (DESIGN §8; issue 9 §4).
//!
//! `cargo bench --bench verdict_latency` (`RUNS=N` samples per scenario, default 20: about two
//! minutes). Two scenarios, each measured twice:
//! - **success**: 2 replicas become ready. The decisive change is the Deployment's
//!   `RolloutComplete` transition, stamped by kubesim's Deployment controller as it sets that status
//!   (just before writing it).
//! - **crash loop**: 1 replica crashes, allowance 1. The decisive change is kubesim's write of the pod
//!   status that shows the second crash (a terminated container that has restarted before), stamped
//!   as its store announces the write.
//!
//! **To the client** (what a user sees): `rollcall serve`, the binary of this build (release under
//! `cargo bench`), runs as a child process over a throwaway PostgreSQL of its own (the tests' server:
//! `fsync` and `synchronous_commit` off, so commits are cheaper than in production), so that this
//! process's work does not share its runtime. Each run sends `POST /v1/deploys` of the `web` chart
//! (deployed by the real helm to a kubesim running in this process), follows
//! `GET /v1/deploys/{id}/events` as an SSE client, and measures from the decisive change to the
//! moment this client has read the `deploy.succeeded` / `deploy.failed` frame, both ends on this
//! process's monotonic clock. Each figure is split into stages using the wall-clock `at` of the
//! server's events (one machine, one clock) and the moments the NOTIFY of its commits reach this
//! process ([`Stages`]). A run whose decisive change came before the server's tracker had reported
//! on the Deployment (its first `resource.status`) measures start-up, not reaction: it is left out
//! and counted.
//!
//! **To the tracker**: `track()` in this process on a kubesim of its own, from the same decisive
//! changes to the `report` event of `track()`. Tracking starts before the objects are applied, so
//! its start-up is not counted, and the containers are quicker (ready after 50 ms, or crashing
//! after 20 ms) since no helm run comes first.
//!
//! **API cost**: Kubernetes requests made by tracking one deploy of 1, 10 and 100 Deployments.

#[path = "../tests/common/mod.rs"]
mod common;
#[allow(dead_code)] // shared with the end-to-end tests, of which the benchmark uses a part
#[path = "../tests/tracker_e2e/support.rs"]
mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams};
use kubesim::control_loop::TransitionKind;
use kubesim::store::PODS;
use rollcall::domain::policy::TrackingOverrides;
use rollcall::store::deploy_events::{BatchNotice, NOTIFY_CHANNEL};
use rollcall::tracker::core::plan;
use rollcall::tracker::watch::{TrackOptions, track};
use serde_json::{Value, json};
use sqlx::postgres::PgListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use common::app::submit;
use common::figures::{figure, latency_summary, load_average, millis, percentiles};
use common::postgres::fresh_database;
use common::serve::{ServeEnv, ServeProcess};
use common::sse::SseStream;
use support::{NAMESPACE, SAFETY_TIMEOUT, Sim, manifest_of, workload};

/// Time given to a new tracking to list and open its watches before the rollout begins.
const WATCHES_SETTLE: Duration = Duration::from_millis(300);

/// Which change decides the verdict.
#[derive(Clone, Copy)]
enum Decisive {
    RolloutComplete,
    /// The second crash of the pod (allowance 1 × 1 replica exceeded).
    SecondCrash,
}

/// One scenario: the workload's replicas and kubesim behaviour (simulated time, run ten times
/// faster), and the change that decides it.
struct Scenario {
    label: &'static str,
    /// The id of its client-side p99 for `scripts/bench`.
    figure: &'static str,
    prefix: &'static str,
    replicas: i32,
    decisive: Decisive,
    /// Through the server: the decisive change must come well after helm has applied the chart and
    /// tracking has started (about 1.5 s after the pods are created).
    client_behavior: &'static str,
    /// In process: tracking is up before the objects are applied, so the rollout may be quick.
    tracker_behavior: &'static str,
}

const SCENARIOS: [Scenario; 2] = [
    Scenario {
        label: "success (2 replicas ready)",
        figure: "verdict.success_p99_ms",
        prefix: "ok",
        replicas: 2,
        decisive: Decisive::RolloutComplete,
        client_behavior: "readyAfter=15s",
        tracker_behavior: "readyAfter=500ms",
    },
    Scenario {
        label: "crash loop beyond the allowance",
        figure: "verdict.crash_p99_ms",
        prefix: "crash",
        replicas: 1,
        decisive: Decisive::SecondCrash,
        client_behavior: "neverReady=true;crashAfter=7s",
        tracker_behavior: "crashAfter=200ms",
    },
];

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|runs| runs.parse().ok())
        .unwrap_or(20);
    println!("load average at start: {}", load_average());
    println!(
        "\n== verdict latency to the client: decisive change -> SSE `deploy.*` frame read ({runs} runs each)"
    );
    let bench = ClientBench::start().await;
    for scenario in &SCENARIOS {
        let mut samples = Vec::with_capacity(runs);
        let mut early = 0;
        for run in 0..runs {
            match bench.run(scenario, run).await {
                Some(sample) => samples.push(sample),
                None => early += 1,
            }
        }
        let totals: Vec<Duration> = samples.iter().map(|s| s.total).collect();
        print_latencies(scenario.label, &totals);
        let [_, _, p99, _] = percentiles(&totals);
        figure(scenario.figure, millis(p99), "ms");
        if early > 0 {
            println!(
                "  ({early} run(s) left out: decided before the tracker had reported on the Deployment)"
            );
        }
        Stages::print(&samples);
    }
    bench.shutdown().await;

    println!(
        "\n== verdict latency to the tracker: decisive change -> `report` of track() in process ({runs} runs each)"
    );
    let sim = Sim::start().await;
    for scenario in &SCENARIOS {
        let samples = tracker_latencies(&sim, runs, scenario).await;
        print_latencies(scenario.label, &samples);
    }
    sim.shutdown().await;

    println!("\n== API cost");
    for resources in [1, 10, 100] {
        api_cost(resources).await;
    }
    println!("\nload average at end: {}", load_average());
}

/// Maps this process's monotonic instants to wall-clock time, to compare them with the `at` of the
/// server's events.
struct Clock {
    instant: Instant,
    wall: DateTime<Utc>,
}

impl Clock {
    fn now() -> Self {
        Clock {
            instant: Instant::now(),
            wall: Utc::now(),
        }
    }

    fn wall(&self, at: Instant) -> DateTime<Utc> {
        let since = at.saturating_duration_since(self.instant);
        self.wall + chrono::Duration::from_std(since).unwrap_or_default()
    }
}

/// When the NOTIFY of each committed batch (deploy, last seq) reached this process.
#[derive(Clone, Default)]
struct Commits(Arc<Mutex<HashMap<(Uuid, i64), Instant>>>);

impl Commits {
    /// Listens on the server's database until `stop`.
    async fn follow(database_url: &str, stop: CancellationToken) -> Commits {
        let mut listener = PgListener::connect(database_url)
            .await
            .expect("connect the commit listener");
        listener
            .listen(NOTIFY_CHANNEL)
            .await
            .expect("LISTEN for commits");
        let commits = Commits::default();
        let seen = commits.clone();
        tokio::spawn(async move {
            loop {
                let notification = tokio::select! {
                    () = stop.cancelled() => return,
                    notification = listener.recv() => notification,
                };
                let Ok(notification) = notification else {
                    return;
                };
                let received = Instant::now();
                if let Some(notice) = BatchNotice::decode(notification.payload()) {
                    seen.0
                        .lock()
                        .expect("commits lock")
                        .insert((notice.deploy_id, notice.last_seq), received);
                }
            }
        });
        commits
    }

    /// When the batch ending with `seq` of deploy `id` was announced.
    async fn of(&self, id: Uuid, seq: i64) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(at) = self.0.lock().expect("commits lock").get(&(id, seq)) {
                return *at;
            }
            assert!(
                Instant::now() < deadline,
                "no NOTIFY for event {seq} of deploy {id}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// kubesim in this process, `rollcall serve` as a child over its own database, an SSE client.
struct ClientBench {
    sim: Sim,
    server: ServeProcess,
    token: String,
    http: reqwest::Client,
    commits: Commits,
    stop: CancellationToken,
    clock: Clock,
    _dir: tempfile::TempDir,
}

impl ClientBench {
    async fn start() -> ClientBench {
        let dir = tempfile::tempdir().expect("temporary directory");
        let sim = Sim::start().await;
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, sim.cluster.kubeconfig_yaml()).expect("write kubeconfig");
        let database_url = fresh_database().await;
        let token = format!("bench-admin-{}", Uuid::new_v4().simple());
        let helm = PathBuf::from(std::env::var("HELM_BIN").unwrap_or_else(|_| "helm".into()));
        let charts = common::charts::catalog();
        let env = ServeEnv {
            database_url: &database_url,
            kubeconfig: &kubeconfig,
            helm: &helm,
            chart_dir: &charts,
            admin_token: &token,
            dir: dir.path(),
        };
        let server = ServeProcess::start(
            &env,
            "bench",
            &[("RUST_LOG", "warn,rollcall::startup=info")],
        )
        .await;
        let stop = CancellationToken::new();
        let commits = Commits::follow(&database_url, stop.clone()).await;
        ClientBench {
            sim,
            server,
            token,
            http: reqwest::Client::new(),
            commits,
            stop,
            clock: Clock::now(),
            _dir: dir,
        }
    }

    /// One deploy of `scenario` followed to its verdict; `None` when it was decided before the
    /// tracker had reported on the Deployment.
    async fn run(&self, scenario: &Scenario, run: usize) -> Option<Sample> {
        let release = format!("{}-{run}", scenario.prefix);
        let decided = watch_decisive_change(&self.sim, &release, scenario.decisive);
        let body = json!({
            "release": release,
            "namespace": NAMESPACE,
            "chart": {"path": "web"},
            "values": {"name": release, "replicas": scenario.replicas, "behavior": scenario.client_behavior},
            "timeout": "60s",
        });
        let id = submit(
            self.http
                .post(format!("{}/v1/deploys", self.server.address))
                .bearer_auth(&self.token)
                .json(&body),
        )
        .await;
        let mut stream = SseStream::connect(
            self.http
                .get(format!("{}/v1/deploys/{id}/events", self.server.address))
                .bearer_auth(&self.token),
        )
        .await;
        let mut events = Vec::new();
        let received = loop {
            let frame = stream
                .next_frame(SAFETY_TIMEOUT)
                .await
                .unwrap_or_else(|| panic!("the stream of {release} ended early: {events:#?}"));
            let read = Instant::now();
            let event = frame.json();
            let terminal = matches!(
                event["type"].as_str(),
                Some("deploy.succeeded" | "deploy.failed")
            );
            events.push(event);
            if terminal {
                break read;
            }
        };
        drop(stream);
        // Finished rollouts (and crash loops) must not load the cluster for the next runs.
        Api::<Deployment>::namespaced(self.sim.client.clone(), NAMESPACE)
            .delete(&release, &DeleteParams::default())
            .await
            .expect("deployment deletes");
        let terminal = events.last().expect("the terminal event");
        let decisive = tokio::time::timeout(SAFETY_TIMEOUT, decided)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_else(|| {
                panic!("{release}: kubesim recorded no decisive change: {terminal}")
            });
        let expected = match scenario.decisive {
            Decisive::RolloutComplete => "deploy.succeeded",
            Decisive::SecondCrash => "deploy.failed",
        };
        assert_eq!(terminal["type"], expected, "{release}: {terminal}");
        let seq_of = |kind: &str| {
            events
                .iter()
                .rfind(|event| event["type"] == kind)
                .and_then(|event| event["seq"].as_i64())
                .unwrap_or_else(|| panic!("{release}: no {kind} event"))
        };
        let committed = Committed {
            report: self.commits.of(id, seq_of("report")).await,
            terminal: self
                .commits
                .of(id, seq_of(terminal["type"].as_str().unwrap_or_default()))
                .await,
        };
        Stages::of(
            &self.clock,
            &events,
            &release,
            scenario.decisive,
            decisive,
            &committed,
            received,
        )
    }

    async fn shutdown(self) {
        self.stop.cancel();
        drop(self.server);
        self.sim.shutdown().await;
    }
}

/// When the commits of a run's last tracking batch (ending with `report`) and of its terminal event
/// were announced to this process.
struct Committed {
    report: Instant,
    terminal: Instant,
}

/// One run through the server, and where its time went.
struct Sample {
    /// Decisive change to the terminal frame read by the client.
    total: Duration,
    stages: [Duration; Stages::NAMES.len()],
}

/// The stages of a verdict's way to the client, each from the previous moment.
struct Stages;

impl Stages {
    const NAMES: [&str; 7] = [
        // The tracker's event for the decisive observation: `resource.ready` of the Deployment, or
        // the `resource.failure` that exceeds the allowance.
        "kubesim change -> tracker observes it",
        // `resource.failed`: the failing container's last log lines are read first (crash only).
        "failure evidence (last log lines)",
        // `report`: log streams of finished containers may deliver their last lines first.
        "log drain -> report",
        // The runner records and relays the tracking events; its writer commits the last batch,
        // ending with `report`, when the runner closes it: that NOTIFY reaches this process.
        "report committed (NOTIFY here)",
        // The runner's closing transaction locks and updates the deploy, builds `deploy.*`.
        "deploy row updated -> deploy.* built",
        // Its transaction commits: its NOTIFY reaches this process.
        "deploy.* committed (NOTIFY here)",
        // Published on the server's bus, written by its SSE stream, read by this client.
        "bus -> SSE -> client",
    ];

    /// The stages of one run from its events (as the client read them) and the instants stamped in
    /// this process; `None` when the tracker had not reported on the Deployment before the change.
    fn of(
        clock: &Clock,
        events: &[Value],
        release: &str,
        decisive: Decisive,
        decided: Instant,
        committed: &Committed,
        received: Instant,
    ) -> Option<Sample> {
        let at = |event: &Value| -> DateTime<Utc> {
            event["at"]
                .as_str()
                .and_then(|at| at.parse().ok())
                .unwrap_or_else(|| panic!("an event without a time: {event}"))
        };
        let find = |kind: &str, matches: &dyn Fn(&Value) -> bool| {
            events
                .iter()
                .find(|event| event["type"] == kind && matches(event))
                .map(at)
                .unwrap_or_else(|| panic!("{release}: no {kind} event: {events:#?}"))
        };
        let deployment = |event: &Value| {
            event["resource"]["kind"] == "Deployment" && event["resource"]["name"] == release
        };
        let first_status = find("resource.status", &deployment);
        let decided_wall = clock.wall(decided);
        if decided_wall < first_status {
            return None;
        }
        let (observed, verdict) = match decisive {
            Decisive::RolloutComplete => {
                let ready = find("resource.ready", &deployment);
                (ready, ready)
            }
            Decisive::SecondCrash => {
                let beyond = |event: &Value| {
                    deployment(event)
                        && event["data"]["allowance"]
                            .as_i64()
                            .zip(event["data"]["count"].as_i64())
                            .is_some_and(|(allowance, count)| count > allowance)
                };
                (
                    find("resource.failure", &beyond),
                    find("resource.failed", &deployment),
                )
            }
        };
        let report = find("report", &|_| true);
        let terminal = at(events.last().expect("the terminal event"));
        let moments = [
            decided_wall,
            observed,
            verdict,
            report,
            clock.wall(committed.report),
            terminal,
            clock.wall(committed.terminal),
            clock.wall(received),
        ];
        let stages = std::array::from_fn(|index| {
            (moments[index + 1] - moments[index])
                .to_std()
                .unwrap_or_default()
        });
        Some(Sample {
            total: received.saturating_duration_since(decided),
            stages,
        })
    }

    fn print(samples: &[Sample]) {
        if samples.is_empty() {
            return;
        }
        println!("  where the time goes (p50 / p90 / p99 / max, ms):");
        for (index, name) in Self::NAMES.iter().enumerate() {
            let stage: Vec<Duration> = samples.iter().map(|s| s.stages[index]).collect();
            let [p50, p90, p99, max] = percentiles(&stage);
            println!(
                "    {name:<42} {:>7.1} {:>7.1} {:>7.1} {:>7.1}",
                ms(p50),
                ms(p90),
                ms(p99),
                ms(max)
            );
        }
    }
}

/// Tracks a freshly applied workload of `scenario` `runs` times with `track()` in this process.
async fn tracker_latencies(sim: &Sim, runs: usize, scenario: &Scenario) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(runs);
    for run in 0..runs {
        let name = format!("{}-{run}", scenario.prefix);
        let decided = watch_decisive_change(sim, &name, scenario.decisive);
        let object = workload(
            "Deployment",
            &name,
            scenario.replicas,
            scenario.tracker_behavior,
        );
        let manifest = manifest_of(std::slice::from_ref(&object)).expect("valid manifest");
        let resources =
            plan(&manifest, NAMESPACE, &TrackingOverrides::default()).expect("valid policy");
        let mut tracking = track(
            &sim.hub,
            resources,
            TrackOptions::default(),
            CancellationToken::new(),
        );
        // Watches are up before the rollout starts: what is measured is reaction, not start-up.
        tokio::time::sleep(WATCHES_SETTLE).await;
        sim.apply(&[object]).await.expect("deployment applies");
        let verdict_at = tokio::time::timeout(SAFETY_TIMEOUT, async {
            let mut verdict_at = None;
            while let Some(event) = tracking.next_event().await {
                if event.kind.as_str() == "report" {
                    verdict_at = Some(Instant::now());
                }
            }
            tracking.finish().await.expect("tracking completes");
            verdict_at
        })
        .await
        .expect("tracking ends in time");
        // Finished rollouts (and crash loops) must not load the cluster for the next runs.
        Api::<Deployment>::namespaced(sim.client.clone(), NAMESPACE)
            .delete(&name, &DeleteParams::default())
            .await
            .expect("deployment deletes");
        let decisive_at = tokio::time::timeout(SAFETY_TIMEOUT, decided)
            .await
            .expect("kubesim records the decisive change in time")
            .expect("the decisive change was seen");
        let verdict_at = verdict_at.expect("a report event ends tracking");
        samples.push(verdict_at.saturating_duration_since(decisive_at));
    }
    samples
}

/// Resolves with the instant kubesim records the decisive change of deployment `name`: its
/// `RolloutComplete` transition, or the pod status showing its second crash (a terminated container
/// that has restarted before: one crash beyond the allowance of 1).
fn watch_decisive_change(sim: &Sim, name: &str, decisive: Decisive) -> oneshot::Receiver<Instant> {
    let (sender, receiver) = oneshot::channel();
    let name = name.to_owned();
    match decisive {
        Decisive::RolloutComplete => {
            let mut transitions = sim.control.subscribe();
            tokio::spawn(async move {
                while let Ok(transition) = transitions.recv().await {
                    if transition.name == name
                        && matches!(transition.kind, TransitionKind::RolloutComplete { .. })
                    {
                        let _receiver_gone = sender.send(transition.at);
                        return;
                    }
                }
            });
        }
        Decisive::SecondCrash => {
            let mut changes = sim.cluster.store().subscribe();
            tokio::spawn(async move {
                while let Ok(change) = changes.recv().await {
                    let pod = &change.object;
                    if change.resource == PODS
                        && pod["metadata"]["labels"]["app"].as_str() == Some(name.as_str())
                        && crashed_again(pod)
                    {
                        let _receiver_gone = sender.send(Instant::now());
                        return;
                    }
                }
            });
        }
    }
    receiver
}

fn crashed_again(pod: &Value) -> bool {
    pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|status| {
            status["state"]["terminated"].is_object()
                && status["restartCount"]
                    .as_i64()
                    .is_some_and(|restarts| restarts >= 1)
        })
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn print_latencies(label: &str, samples: &[Duration]) {
    println!(
        "{label}: {} over {} runs",
        latency_summary(samples),
        samples.len()
    );
}

/// Kubernetes requests made by tracking one deploy of `resources` Deployments, on a fresh cluster.
async fn api_cost(resources: usize) {
    let sim = Sim::start().await;
    let objects: Vec<Value> = (0..resources)
        .map(|index| workload("Deployment", &format!("app-{index}"), 1, "readyAfter=500ms"))
        .collect();
    let manifest = sim.apply(&objects).await.expect("deployments apply");
    let tracked = plan(&manifest, NAMESPACE, &TrackingOverrides::default()).expect("valid policy");
    sim.cluster.reset_request_counts();
    let tracking = track(
        &sim.hub,
        tracked,
        TrackOptions::default(),
        CancellationToken::new(),
    );
    let report = tracking.finish().await.expect("tracking completes");
    assert!(report.succeeded(), "{:?}", report.outcome);
    let counts = sim.cluster.request_counts();
    println!(
        "API cost, {resources} Deployment(s): {} requests ({:?})",
        counts.total, counts.by_verb
    );
    figure(
        &format!("api_cost.requests_{resources}_deployments"),
        counts.total as f64,
        "requests",
    );
    sim.shutdown().await;
}
