//! Outgoing notifications: latency and throughput (issue 12).
//!
//! `cargo bench --bench notifications` (`RUNS=N` idle samples, default 200; `BURST=N`
//! notifications in the burst, default 2000). Three processes on one machine: `rollcall serve`
//! (this build's binary, release under `cargo bench`, API only) over the tests' throwaway
//! PostgreSQL (`fsync` and `synchronous_commit` off); a receiver (this benchmark re-run with
//! `NOTIFY_BENCH_RECEIVER=1`) that answers 200 and prints when it answered each deploy's
//! notification; and this process, the load generator.
//!
//! - **idle**: one deploy at a time is cancelled through the API (`deploy.cancelled`, the terminal
//!   event, and its outbox row commit together); measured from just before the cancel request is
//!   sent, so the commit is inside the figure, to the receiver's 200, both on the wall clock.
//! - **burst**: one transaction cancels `BURST` queued deploys at once, so their notifications
//!   become due together; notifications per second from its commit to the last 200, and the
//!   distribution of commit → 200 under that backlog.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::mpsc;
use uuid::Uuid;

use common::app::submit;
use common::figures::{figure, latency_summary, load_average, millis, percentiles};
use common::postgres::fresh_database;
use common::receiver::SECRET;
use common::serve::{ServeEnv, ServeProcess};

const RECEIVER_ENV: &str = "NOTIFY_BENCH_RECEIVER";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if std::env::var_os(RECEIVER_ENV).is_some() {
        runtime.block_on(receive());
    } else {
        runtime.block_on(run());
    }
}

fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_micros()
}

/// The receiver process: prints `listening <port>`, then `<deploy id> <µs>` as it answers each
/// notification.
async fn receive() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    println!(
        "listening {}",
        listener.local_addr().expect("address").port()
    );
    let app = axum::Router::new().fallback(|body: axum::body::Bytes| async move {
        let deploy = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|body| body["data"]["deploy"]["id"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{deploy} {}", now_micros());
        let _ = out.flush();
        axum::http::StatusCode::OK
    });
    axum::serve(listener, app).await.expect("serve");
}

/// The receiver's reports, by deploy id.
struct ReceiverProcess {
    port: u16,
    answered: mpsc::UnboundedReceiver<(Uuid, u128)>,
    _child: std::process::Child,
}

impl ReceiverProcess {
    fn start() -> Self {
        let mut child = Command::new(std::env::current_exe().expect("this benchmark"))
            .env(RECEIVER_ENV, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the receiver");
        let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines.next().expect("a line").expect("readable");
        let port = first
            .strip_prefix("listening ")
            .and_then(|port| port.parse().ok())
            .expect("the receiver's port");
        let (sender, answered) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut parts = line.split(' ');
                if let (Some(Ok(id)), Some(Ok(at))) = (
                    parts.next().map(str::parse::<Uuid>),
                    parts.next().map(str::parse::<u128>),
                ) && sender.send((id, at)).is_err()
                {
                    return;
                }
            }
        });
        ReceiverProcess {
            port,
            answered,
            _child: child,
        }
    }

    async fn next(&mut self) -> (Uuid, u128) {
        tokio::time::timeout(Duration::from_secs(60), self.answered.recv())
            .await
            .expect("a notification within a minute")
            .expect("the receiver is running")
    }
}

impl Drop for ReceiverProcess {
    fn drop(&mut self) {
        let _ = self._child.kill();
        let _ = self._child.wait();
    }
}

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

async fn run() {
    let runs = setting("RUNS", 200);
    let burst = setting("BURST", 2000);
    println!("load average at start: {}", load_average());
    let dir = tempfile::tempdir().expect("temporary directory");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, "apiVersion: v1\nkind: Config\n").expect("kubeconfig");
    let database_url = fresh_database().await;
    let token = format!("bench-{}", Uuid::new_v4().simple());
    let helm = std::path::PathBuf::from("helm");
    let charts = dir.path().join("charts");
    std::fs::create_dir_all(&charts).expect("chart dir");
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
        &[
            ("ROLLCALL_NO_RUNNER", "true"),
            ("ROLLCALL_NOTIFY_SECRET", SECRET),
            ("ROLLCALL_NOTIFY_ALLOW_NETWORKS", "127.0.0.0/8"),
            // The deploys name a repository chart; nothing is allowed by default.
            (
                "ROLLCALL_CHART_REPOSITORIES",
                common::app::EXAMPLE_REPOSITORY,
            ),
        ],
    )
    .await;
    let mut receiver = ReceiverProcess::start();
    let client = reqwest::Client::new();
    let notify_url = format!("http://127.0.0.1:{}/hook", receiver.port);
    let body = |release: String| {
        json!({
            "release": release,
            "namespace": "bench",
            "chart": {"repo": "https://charts.example.com", "name": "web", "version": "1.0.0"},
            "notify": [{"url": notify_url, "events": ["deploy.cancelled"]}],
        })
    };
    let submit_one = |release: String| {
        submit(
            client
                .post(format!("{}/v1/deploys", server.address))
                .bearer_auth(&token)
                .json(&body(release)),
        )
    };

    println!("\n== idle outbox: cancel (terminal event commit) -> receiver's 200 ({runs} runs)");
    let mut idle = Vec::with_capacity(runs);
    for run in 0..runs {
        let id = submit_one(format!("idle-{run}")).await;
        let sent = now_micros();
        let status = client
            .post(format!("{}/v1/deploys/{id}/cancel", server.address))
            .bearer_auth(&token)
            .send()
            .await
            .expect("cancel")
            .status();
        assert_eq!(status, 200);
        let (answered_id, at) = receiver.next().await;
        assert_eq!(answered_id, id, "one notification at a time");
        idle.push(Duration::from_micros(at.saturating_sub(sent) as u64));
    }
    println!("  {}", latency_summary(&idle));
    figure(
        "notifications.idle_p99_ms",
        millis(percentiles(&idle)[2]),
        "ms",
    );

    println!(
        "\n== burst: {burst} notifications due at once (one transaction cancels {burst} deploys)"
    );
    let mut ids = Vec::with_capacity(burst);
    for index in 0..burst {
        ids.push(submit_one(format!("burst-{index}")).await);
    }
    let pool = sqlx::PgPool::connect(&database_url)
        .await
        .expect("database");
    let mut tx = rollcall::store::deploy_events::EventTx::begin(&pool, Uuid::new_v4())
        .await
        .expect("begin");
    for id in &ids {
        rollcall::store::deploys::cancel(&mut tx, *id, "bench", "burst")
            .await
            .expect("cancel");
    }
    let committed = now_micros();
    let _ = tx.commit().await.expect("commit");
    let mut answered: HashMap<Uuid, u128> = HashMap::with_capacity(burst);
    while answered.len() < burst {
        let (id, at) = receiver.next().await;
        answered.insert(id, at);
    }
    let last = answered.values().max().copied().unwrap_or(committed);
    let seconds = (last - committed) as f64 / 1e6;
    println!(
        "  {burst} delivered in {seconds:.2} s: {:.0} notifications/s",
        burst as f64 / seconds
    );
    figure(
        "notifications.burst_per_s",
        burst as f64 / seconds,
        "notifications/s",
    );
    println!(
        "  commit -> 200 under the backlog: {}",
        latency_summary(
            &answered
                .values()
                .map(|at| Duration::from_micros((at - committed) as u64))
                .collect::<Vec<_>>()
        )
    );
    println!("\nload average at end: {}", load_average());
}
