//! Reliability drills (DESIGN §8) with rollcall as a child process: `kill -9` during deploys and a
//! restart (no deploy stuck, every verdict true, no event lost or repeated for a client resuming
//! with `Last-Event-ID`), and two processes sharing the deploys of one database. Drills over many
//! deploys at once (`fleet`) live beside: `kills` (random `kill -9`s), `postgres_outage` (the
//! database stopped and restarted) and `api_faults` (Kubernetes API faults on rollcall's own
//! requests). The suite runs them at a small size; `scripts/drills` at their full counts.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kubesim::ClusterHandle;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use super::common::app::submit;
use super::common::postgres::fresh_database;
use super::common::remote::has_ended;
use super::common::serve::{ServeEnv, ServeProcess, simulated_cluster};
use super::common::sse::{SseFrame, SseStream};
use super::helm_bin;
use crate::common::charts;

mod api_faults;
mod fleet;
mod kills;
mod postgres_outage;

/// Generous: only guards against a hung drill.
const DRILL_TIMEOUT: Duration = Duration::from_secs(240);
/// Short, so that a restarted process takes the deploys of the killed one over quickly.
const LEASE: &str = "2s";

/// What every rollcall process of a drill shares: the simulated cluster, the database, the chart
/// catalog, the admin token.
struct Env {
    dir: tempfile::TempDir,
    cluster: ClusterHandle,
    kubeconfig: PathBuf,
    database_url: String,
    token: String,
    client: reqwest::Client,
}

impl Env {
    async fn start() -> Env {
        Env::start_on(fresh_database().await).await
    }

    /// As `start`, on the database at `database_url`.
    async fn start_on(database_url: String) -> Env {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (cluster, kubeconfig) = simulated_cluster(dir.path()).await;
        Env {
            dir,
            cluster,
            kubeconfig,
            database_url,
            token: format!("drill-admin-{}", Uuid::new_v4().simple()),
            client: reqwest::Client::new(),
        }
    }

    /// Starts `rollcall serve` named `name` with a short lease and waits until it serves. `extra`:
    /// more environment.
    async fn spawn(&self, name: &str, extra: &[(&str, &str)]) -> ServeProcess {
        let env = ServeEnv {
            database_url: &self.database_url,
            kubeconfig: &self.kubeconfig,
            helm: &helm_bin(),
            chart_dir: &charts::catalog(),
            admin_token: &self.token,
            dir: self.dir.path(),
        };
        let environment: Vec<(&str, &str)> = [("ROLLCALL_LEASE", LEASE)]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
        ServeProcess::start(&env, name, &environment).await
    }

    /// `kill -9` of `server` (and of its helm processes), then a new process named `name` in its
    /// place; followers learn its address from `address`.
    async fn kill_and_restart(
        &self,
        server: &mut ServeProcess,
        address: &watch::Sender<String>,
        name: &str,
    ) {
        server.kill();
        *server = self.spawn(name, &[]).await;
        address.send_replace(server.address.clone());
    }

    async fn submit(&self, process: &ServeProcess, body: &Value) -> Uuid {
        submit(
            self.client
                .post(format!("{}/v1/deploys", process.address))
                .bearer_auth(&self.token)
                .json(body),
        )
        .await
    }

    async fn get(&self, address: &str, path: &str) -> Value {
        let response = self
            .client
            .get(format!("{address}{path}"))
            .bearer_auth(&self.token)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {path}: {error}"));
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("JSON answer")
    }

    /// Polls the deploy through `process` until `done` holds for it; panics if it finishes first.
    async fn wait_for(
        &self,
        process: &ServeProcess,
        id: Uuid,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + DRILL_TIMEOUT;
        loop {
            let deploy = self
                .get(&process.address, &format!("/v1/deploys/{id}"))
                .await;
            if done(&deploy) {
                return deploy;
            }
            assert!(
                !has_ended(&deploy),
                "deploy {id} finished before it was {what}: {deploy}"
            );
            assert!(
                Instant::now() < deadline,
                "deploy {id} never became {what}: {deploy}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn wait_for_end(&self, process: &ServeProcess, id: Uuid) -> Value {
        let deadline = Instant::now() + DRILL_TIMEOUT;
        loop {
            let deploy = self
                .get(&process.address, &format!("/v1/deploys/{id}"))
                .await;
            if has_ended(&deploy) {
                return deploy;
            }
            assert!(
                Instant::now() < deadline,
                "deploy {id} never finished: {deploy}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every event of a deploy, in order, from the JSON API.
    async fn events(&self, process: &ServeProcess, id: Uuid) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let after = events
                .last()
                .map_or(0, |event: &Value| event["seq"].as_i64().expect("seq"));
            let page = self
                .get(
                    &process.address,
                    &format!("/v1/deploys/{id}/events?after={after}&limit=200"),
                )
                .await;
            let items = page["items"].as_array().expect("items").clone();
            if items.is_empty() {
                return events;
            }
            events.extend(items);
        }
    }

    /// `helm status` of a release as the cluster holds it (`None`: no release).
    async fn helm_status(&self, release: &str) -> Option<String> {
        let home = self.dir.path().join("test-helm");
        // Not blocking: the simulated cluster answering helm runs on this test's runtime.
        let output = tokio::process::Command::new(helm_bin())
            .args([
                "status",
                release,
                "--namespace",
                "default",
                "--output",
                "json",
            ])
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .output()
            .await
            .expect("run helm status");
        if !output.status.success() {
            return None;
        }
        let status: Value = serde_json::from_slice(&output.stdout).expect("helm status JSON");
        status["info"]["status"].as_str().map(str::to_owned)
    }

    async fn wait_for_helm_status(&self, release: &str, wanted: &str) {
        let deadline = Instant::now() + DRILL_TIMEOUT;
        loop {
            let status = self.helm_status(release).await;
            if status.as_deref() == Some(wanted) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "release {release} never became {wanted} (last {status:?})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// What a client following one deploy's SSE stream saw.
struct Followed {
    frames: Vec<SseFrame>,
    /// Connections after the first one.
    reconnects: usize,
}

/// Follows a deploy's SSE stream to its `end`, reconnecting with `Last-Event-ID` whenever the
/// server goes away, to whichever address serves now.
async fn follow(
    client: reqwest::Client,
    address: watch::Receiver<String>,
    token: String,
    id: Uuid,
) -> Followed {
    let deadline = Instant::now() + DRILL_TIMEOUT;
    let mut followed = Followed {
        frames: Vec::new(),
        reconnects: 0,
    };
    let mut connected_before = false;
    loop {
        assert!(
            Instant::now() < deadline,
            "the stream of deploy {id} never ended: {} frames",
            followed.frames.len()
        );
        let base = address.borrow().clone();
        let mut request = client
            .get(format!("{base}/v1/deploys/{id}/events"))
            .bearer_auth(&token);
        if let Some(last) = followed.frames.iter().rev().find_map(|f| f.id.clone()) {
            request = request.header("last-event-id", last);
        }
        let mut stream = match SseStream::try_connect(request).await {
            Ok(stream) if stream.status() == 200 => stream,
            _ => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if connected_before {
            followed.reconnects += 1;
        }
        connected_before = true;
        while let Some(frame) = stream.next_frame(DRILL_TIMEOUT).await {
            let end = frame.event.as_deref() == Some("end");
            followed.frames.push(frame);
            if end {
                return followed;
            }
        }
    }
}

/// The SSE frames are the deploy's events, each once, in order, then `end`.
fn assert_stream_complete(name: &str, followed: &Followed, events: &[Value]) {
    let (end, frames) = followed
        .frames
        .split_last()
        .unwrap_or_else(|| panic!("{name}: no SSE frames"));
    assert_eq!(
        end.event.as_deref(),
        Some("end"),
        "{name}: last frame {end:?}"
    );
    let seqs: Vec<i64> = frames
        .iter()
        .map(|frame| {
            frame
                .id
                .as_deref()
                .and_then(|id| id.parse().ok())
                .unwrap_or_else(|| panic!("{name}: frame without a seq id: {frame:?}"))
        })
        .collect();
    assert_eq!(
        seqs,
        (1..=events.len() as i64).collect::<Vec<_>>(),
        "{name}: SSE seqs not gapless from 1 (or events repeated)"
    );
    let streamed: Vec<&str> = frames
        .iter()
        .map(|frame| frame.event.as_deref().unwrap_or_default())
        .collect();
    let stored: Vec<&str> = events
        .iter()
        .map(|event| event["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        streamed, stored,
        "{name}: SSE events differ from the stored ones"
    );
    assert!(
        matches!(
            stored.last(),
            Some(&("deploy.succeeded" | "deploy.failed" | "deploy.cancelled"))
        ),
        "{name}: the stream does not end with the terminal event: {stored:?}"
    );
}

/// No deploy is left queued or running (the newest 200).
async fn assert_nothing_unfinished(env: &Env, server: &ServeProcess) {
    let listed = env.get(&server.address, "/v1/deploys?limit=200").await;
    for deploy in listed["items"].as_array().expect("items") {
        assert!(has_ended(deploy), "left unfinished: {deploy}");
    }
}

fn has_event(events: &[Value], kind: &str, matches: impl Fn(&Value) -> bool) -> bool {
    events
        .iter()
        .any(|event| event["type"] == kind && matches(event))
}

/// A random pause of up to `max_ms`, printed so that a failing run can be read back.
async fn pause(rng: &mut StdRng, max_ms: u64, before: &str) {
    let ms = rng.random_range(0..=max_ms);
    println!("crash drill: waiting {ms} ms, then killing rollcall {before}");
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

fn web(release: &str, behavior: &str) -> Value {
    json!({
        "release": release,
        "namespace": "default",
        "chart": {"path": "web"},
        "values": {"name": release, "behavior": behavior},
        "timeout": "3m",
    })
}

/// The web app behind a migration Job that helm waits for (3s): helm runs long enough to be
/// killed with the release `pending-*`.
fn migrating_web(release: &str, behavior: &str) -> Value {
    json!({
        "release": release,
        "namespace": "default",
        "chart": {"path": "migrating-web"},
        "values": {"web": {"name": release, "behavior": behavior}},
        "timeout": "3m",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollcall_killed_mid_deploy_and_restarted_brings_every_deploy_to_a_true_verdict() {
    let mut rng = StdRng::seed_from_u64(fleet::seed("crash drill"));
    let env = Env::start().await;
    let mut server = env.spawn("drill", &[]).await;
    let (address, addresses) = watch::channel(server.address.clone());
    let mut followers = HashMap::new();
    let mut ids: Vec<(&str, Uuid)> = Vec::new();
    macro_rules! submit {
        ($name:expr, $body:expr) => {{
            let id = env.submit(&server, &$body).await;
            followers.insert(
                $name,
                tokio::spawn(follow(
                    env.client.clone(),
                    addresses.clone(),
                    env.token.clone(),
                    id,
                )),
            );
            ids.push(($name, id));
            id
        }};
    }
    macro_rules! crash {
        ($what:expr) => {{
            println!("crash drill: SIGKILL {}", $what);
            env.kill_and_restart(&mut server, &address, "drill").await;
        }};
    }

    let alpha_install = submit!("alpha install", migrating_web("alpha", "readyAfter=2s"));
    let beta_install = submit!("beta install", web("beta", "readyAfter=12s"));
    submit!("gamma crash loop", web("gamma", "crashAfter=1s;exitCode=1"));

    // 1. While helm installs alpha and waits for its migration: `pending-install` left behind.
    env.wait_for(&server, alpha_install, "upgrading", |d| {
        d["phase"] == "upgrading"
    })
    .await;
    env.wait_for_helm_status("alpha", "pending-install").await;
    pause(&mut rng, 1000, "during helm install").await;
    crash!("during helm install of alpha");

    // 2. While the restarted process tracks beta.
    env.wait_for(&server, beta_install, "tracked by the new process", |d| {
        d["phase"] == "tracking" && server.owns(d)
    })
    .await;
    pause(&mut rng, 3000, "during tracking").await;
    crash!("while tracking beta");

    env.wait_for_end(&server, alpha_install).await;
    env.wait_for_end(&server, beta_install).await;

    // 3. While helm upgrades alpha: `pending-upgrade` left behind.
    let alpha_upgrade = submit!("alpha upgrade", migrating_web("alpha", "readyAfter=1s"));
    env.wait_for(&server, alpha_upgrade, "upgrading", |d| {
        d["phase"] == "upgrading"
    })
    .await;
    env.wait_for_helm_status("alpha", "pending-upgrade").await;
    pause(&mut rng, 1000, "during helm upgrade").await;
    crash!("during helm upgrade of alpha");

    // 4. While helm rolls alpha back from a crash loop (and waits for the migration again):
    // `pending-rollback` left behind.
    let mut body = migrating_web("alpha", "crashAfter=1s;exitCode=1");
    body["rollback_on_failure"] = json!(true);
    let alpha_crash = submit!("alpha crash loop, rolled back", body);
    env.wait_for(&server, alpha_crash, "rolling back", |d| {
        d["phase"] == "rolling_back"
    })
    .await;
    env.wait_for_helm_status("alpha", "pending-rollback").await;
    pause(&mut rng, 1000, "during helm rollback").await;
    crash!("during helm rollback of alpha");

    let mut finals = HashMap::new();
    for (name, id) in &ids {
        finals.insert(*name, env.wait_for_end(&server, *id).await);
    }
    let logs = server.log();
    for (name, id) in &ids {
        let deploy = &finals[name];
        let events = env.events(&server, *id).await;
        let expected = if name.contains("crash") {
            "failed"
        } else {
            "succeeded"
        };
        assert_eq!(deploy["status"], expected, "{name}: {deploy}\n{logs}");
        if expected == "failed" {
            assert_eq!(
                deploy["verdict"]["reason"], "CrashLoopBackOff",
                "{name}: the verdict is not the crash loop's: {deploy}"
            );
            assert_eq!(
                deploy["verdict"]["resource"]["kind"], "Deployment",
                "{name}: {deploy}"
            );
        }
        let followed = followers
            .remove(name)
            .expect("a follower")
            .await
            .expect("the follower finished");
        assert_stream_complete(name, &followed, &events);
        println!(
            "crash drill: {name}: {} events, {} reconnects, {deploy}",
            events.len(),
            followed.reconnects
        );
    }

    let events_of = |name: &str| {
        let id = ids.iter().find(|(n, _)| *n == name).expect("a deploy").1;
        env.events(&server, id)
    };
    let alpha_install_events = events_of("alpha install").await;
    assert!(
        has_event(&alpha_install_events, "deploy.recovered", |_| true),
        "{alpha_install_events:#?}"
    );
    // The repair uninstalls the pending install; a later kill may stop its process after helm
    // finished and before the event, and the next owner then finds no release left to repair.
    assert!(
        has_event(&alpha_install_events, "rollback.succeeded", |e| {
            e["data"]["repair"] == true
        }) || (has_event(&alpha_install_events, "rollback.started", |e| {
            e["data"]["repair"] == true
        }) && has_event(&alpha_install_events, "helm.output", |e| {
            e["data"]["release"] == "absent"
        })),
        "the pending install was not repaired: {alpha_install_events:#?}"
    );
    let alpha_upgrade_events = events_of("alpha upgrade").await;
    assert!(
        has_event(&alpha_upgrade_events, "rollback.started", |e| {
            e["data"]["repair"] == true && e["data"]["status"] == "pending-upgrade"
        }) && has_event(&alpha_upgrade_events, "rollback.succeeded", |e| {
            e["data"]["repair"] == true && e["data"]["to_revision"] == 1
        }),
        "the pending upgrade was not repaired: {alpha_upgrade_events:#?}"
    );
    let alpha_crash_events = events_of("alpha crash loop, rolled back").await;
    let alpha_crash = &finals["alpha crash loop, rolled back"];
    let failed_revision = alpha_crash["revision"].as_i64().expect("a revision");
    // The rollback resumed to the recorded target, not to the newest deployed revision (the
    // failed one).
    assert_eq!(
        alpha_crash["rolled_back_to"],
        failed_revision - 1,
        "{alpha_crash}"
    );
    assert!(
        has_event(&alpha_crash_events, "deploy.recovered", |_| true)
            && has_event(&alpha_crash_events, "rollback.started", |e| {
                e["data"]["resumed"] == true && e["data"]["status"] == "pending-rollback"
            })
            && has_event(&alpha_crash_events, "rollback.succeeded", |e| {
                e["data"]["to_revision"] == failed_revision - 1
            }),
        "the pending rollback was not resumed: {alpha_crash_events:#?}"
    );
    assert!(has_event(
        &events_of("beta install").await,
        "deploy.recovered",
        |_| true
    ));

    // Nothing left running or queued, no release left pending.
    assert_nothing_unfinished(&env, &server).await;
    for release in ["alpha", "beta", "gamma"] {
        assert_eq!(
            env.helm_status(release).await.as_deref(),
            Some("deployed"),
            "{release}"
        );
    }
    drop(server);
    env.cluster.shutdown().await;
}

/// When a deploy ran: from its `deploy.started` to its terminal event.
type RunWindow = (DateTime<Utc>, DateTime<Utc>);

fn at(event: &Value) -> DateTime<Utc> {
    event["at"].as_str().expect("at").parse().expect("a time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rollcall_processes_share_the_deploys_and_never_run_a_release_twice() {
    let env = Env::start().await;
    // Two deploys at a time each: with four releases runnable at once, both must take some.
    let first = env
        .spawn("replica-one", &[("ROLLCALL_PARALLELISM", "2")])
        .await;
    let second = env
        .spawn("replica-two", &[("ROLLCALL_PARALLELISM", "2")])
        .await;
    let releases = ["north", "south", "east", "west"];
    let mut deploys = Vec::new();
    for round in 0..2 {
        for (index, release) in releases.iter().enumerate() {
            let via = if (round + index) % 2 == 0 {
                &first
            } else {
                &second
            };
            let body = web(release, &format!("readyAfter={}s", 1 + round));
            deploys.push((*release, env.submit(via, &body).await));
        }
    }
    let mut owners = HashMap::new();
    let mut runs: HashMap<&str, Vec<RunWindow>> = HashMap::new();
    for (release, id) in &deploys {
        let deploy = env.wait_for_end(&second, *id).await;
        assert_eq!(deploy["status"], "succeeded", "{deploy}");
        let events = env.events(&first, *id).await;
        let started = events
            .iter()
            .find(|e| e["type"] == "deploy.started")
            .expect("deploy.started");
        let owner = started["data"]["owner"].as_str().expect("owner");
        let replica = ["replica-one", "replica-two"]
            .into_iter()
            .find(|name| owner.starts_with(name))
            .unwrap_or_else(|| panic!("started by an unknown owner {owner}"));
        *owners.entry(replica).or_insert(0) += 1;
        let finished = events.last().expect("the terminal event");
        assert_eq!(finished["type"], "deploy.succeeded");
        runs.entry(release)
            .or_default()
            .push((at(started), at(finished)));
    }
    assert_eq!(owners.len(), 2, "one process ran every deploy: {owners:?}");
    for (release, mut windows) in runs {
        windows.sort();
        for pair in windows.windows(2) {
            assert!(
                pair[1].0 >= pair[0].1,
                "two deploys of {release} ran at once: {windows:?}"
            );
        }
    }
    drop((first, second));
    env.cluster.shutdown().await;
}
