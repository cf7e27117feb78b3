//! `POST /v1/deploys` at scale (issue 16, DESIGN §8: ≥ 5,000 req/s with p99 ≤ 20 ms at 64
//! connections): a PostgreSQL of its own, `rollcall serve --no-runner` as a child process (the
//! optimized binary under `cargo bench`), and the load generator, `wrk`, as another process.
//! Every request carries a database token (the cached path) and a fresh `Idempotency-Key` and
//! release values, so each one queues a new deploy. Then the same against two replicas on one
//! database, one `wrk` per replica (reported, not a goal: on 2 cores they share the CPU with
//! PostgreSQL and the load generators).
//!
//! `cargo bench --bench submissions`; `cargo test --benches` makes a short pass of each.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::app::EXAMPLE_REPOSITORY;
use common::figures::{figure, load_average};
use common::postgres::OwnServer;
use common::serve::{ServeEnv, ServeProcess};
use serde_json::{Value, json};

/// The load generator's connections (and threads), as the goal states them.
const CONNECTIONS: usize = 64;
const THREADS: usize = 2;

/// wrk's script: a unique body and key per request, the figures as one JSON line at the end.
const WRK_SCRIPT: &str = r#"
local token = os.getenv("BENCH_TOKEN")
local run = os.getenv("BENCH_RUN")
local threads = 0
local counter = 0
setup = function(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end
request = function()
  counter = counter + 1
  local n = thread_id * 100000000 + counter
  local body = string.format(
    '{"release":"svc-%d","namespace":"bench","chart":{"repo":"https://charts.example.com","name":"web","version":"1.4.2"},"values":{"image":{"tag":"build-%d"},"replicas":3},"labels":{"ci.run":"%d"}}',
    n % 200, n, n)
  return wrk.format("POST", "/v1/deploys", {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = "bench-" .. run .. "-" .. n,
  }, body)
end
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'WRK_FIGURES {"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"#;

/// What one `wrk` run measured.
#[derive(Debug)]
struct LoadFigures {
    requests: u64,
    seconds: f64,
    failed: u64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl LoadFigures {
    fn rate(&self) -> f64 {
        (self.requests - self.failed) as f64 / self.seconds
    }
}

fn wrk_binary() -> &'static str {
    let found = Command::new("wrk").arg("--version").output().is_ok();
    assert!(
        found,
        "wrk is needed as the load generator: apt-get install wrk"
    );
    "wrk"
}

/// Runs `wrk` against `address` in a process of its own; its figures.
async fn run_wrk(
    address: &str,
    token: &str,
    script: &Path,
    threads: usize,
    connections: usize,
    duration: Duration,
) -> LoadFigures {
    let mut command = tokio::process::Command::new(wrk_binary());
    command
        .args([
            "--threads",
            &threads.to_string(),
            "--connections",
            &connections.to_string(),
            "--duration",
            &format!("{}s", duration.as_secs()),
            "--timeout",
            "5s",
            "--script",
        ])
        .arg(script)
        .arg(format!("{address}/v1/deploys"))
        .env("BENCH_TOKEN", token)
        // Each run's keys are new: a key of an earlier run would replay its deploy.
        .env("BENCH_RUN", uuid::Uuid::new_v4().simple().to_string());
    let output = command.output().await.expect("run wrk");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "wrk failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("WRK_FIGURES "))
        .unwrap_or_else(|| panic!("no figures from wrk:\n{stdout}"));
    let figures: Value = serde_json::from_str(line).expect("wrk's figures as JSON");
    let number = |name: &str| figures[name].as_u64().unwrap_or(0);
    let millis = |name: &str| number(name) as f64 / 1000.0;
    LoadFigures {
        requests: number("requests"),
        seconds: number("duration_us") as f64 / 1e6,
        failed: number("non_2xx") + number("socket_errors"),
        p50_ms: millis("p50_us"),
        p90_ms: millis("p90_us"),
        p99_ms: millis("p99_us"),
        max_ms: millis("max_us"),
    }
}

/// A database token with the deploy scope, minted through the API.
async fn deploy_token(address: &str, admin: &str) -> String {
    let created: Value = reqwest::Client::new()
        .post(format!("{address}/v1/tokens"))
        .bearer_auth(admin)
        .json(&json!({"name": "bench", "scopes": ["deploy", "read"], "targets": ["*/*/*"]}))
        .send()
        .await
        .expect("POST /v1/tokens")
        .json()
        .await
        .expect("the token");
    created["token"].as_str().expect("token").to_owned()
}

async fn queued_deploys(database_url: &str) -> i64 {
    let pool = sqlx::PgPool::connect(database_url).await.expect("connect");
    let count = sqlx::query_scalar("select count(*) from deploys")
        .fetch_one(&pool)
        .await
        .expect("count deploys");
    pool.close().await;
    count
}

fn describe(label: &str, figures: &LoadFigures) -> String {
    format!(
        "{label}: {:.0} req/s, latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} requests in {:.1}s, {} failed)",
        figures.rate(),
        figures.p50_ms,
        figures.p90_ms,
        figures.p99_ms,
        figures.max_ms,
        figures.requests,
        figures.seconds,
        figures.failed
    )
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|arg| arg == "--test")
        || !std::env::args().any(|arg| arg == "--bench");
    let measure = Duration::from_secs(if quick { 1 } else { 15 });
    let warm_up = Duration::from_secs(if quick { 1 } else { 3 });
    wrk_binary();
    let dir = tempfile::tempdir().expect("temporary directory");
    let script = dir.path().join("submit.lua");
    std::fs::write(&script, WRK_SCRIPT).expect("write the wrk script");
    let charts = dir.path().join("charts");
    std::fs::create_dir_all(&charts).expect("chart directory");
    let postgres = OwnServer::start().await;
    let database_url = postgres.fresh_database().await;
    let admin = format!("bench-admin-{}", uuid::Uuid::new_v4().simple());
    let env = ServeEnv {
        database_url: &database_url,
        kubeconfig: &dir.path().join("kubeconfig"),
        helm: Path::new("helm"),
        chart_dir: &charts,
        admin_token: &admin,
        dir: dir.path(),
    };
    let api_only = [
        ("ROLLCALL_NO_RUNNER", "true"),
        ("ROLLCALL_CHART_REPOSITORIES", EXAMPLE_REPOSITORY),
    ];
    let first = ServeProcess::start(&env, "submit-a", &api_only).await;
    let token = deploy_token(&first.address, &admin).await;
    println!(
        "POST /v1/deploys, wrk -t{THREADS} -c{CONNECTIONS} in its own process, against `rollcall serve --no-runner` ({} build) on a PostgreSQL of its own (fsync off, as the tests run it); a database token, a unique Idempotency-Key and values per request",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    run_wrk(
        &first.address,
        &token,
        &script,
        THREADS,
        CONNECTIONS,
        warm_up,
    )
    .await;
    let before = queued_deploys(&database_url).await;
    let load_before = load_average();
    let one = run_wrk(
        &first.address,
        &token,
        &script,
        THREADS,
        CONNECTIONS,
        measure,
    )
    .await;
    let queued = queued_deploys(&database_url).await - before;
    println!(
        "{} [load average before {load_before}, after {}]",
        describe("  1 replica", &one),
        load_average()
    );
    figure("submissions.req_per_s", one.rate(), "req/s");
    figure("submissions.p99_ms", one.p99_ms, "ms");
    // wrk counts the answers within its duration; the requests still in flight then (at most one
    // per connection) are queued too.
    let accepted = (one.requests - one.failed) as i64;
    assert!(
        (accepted..=accepted + CONNECTIONS as i64).contains(&queued),
        "every accepted submission is a deploy: {accepted} accepted, {queued} queued"
    );

    let second = ServeProcess::start(&env, "submit-b", &api_only).await;
    run_wrk(
        &second.address,
        &token,
        &script,
        1,
        CONNECTIONS / 2,
        warm_up,
    )
    .await;
    let load_before = load_average();
    let (a, b) = tokio::join!(
        run_wrk(&first.address, &token, &script, 1, CONNECTIONS / 2, measure),
        run_wrk(
            &second.address,
            &token,
            &script,
            1,
            CONNECTIONS / 2,
            measure
        ),
    );
    println!(
        "  2 replicas on one database, one wrk -t1 -c{} each: {:.0} req/s in all [load average before {load_before}, after {}]",
        CONNECTIONS / 2,
        a.rate() + b.rate(),
        load_average()
    );
    figure(
        "submissions.two_replicas_req_per_s",
        a.rate() + b.rate(),
        "req/s",
    );
    println!("{}", describe("    replica a", &a));
    println!("{}", describe("    replica b", &b));
    drop(second);
    drop(first);
    drop(postgres);
}
