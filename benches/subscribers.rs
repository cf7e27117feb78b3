//! Live subscribers at scale (run with `cargo bench --bench subscribers`): 10,000 concurrent SSE
//! streams held by one `rollcall serve` child process (the release binary, no runner), spread over
//! 100 deploys and the firehose, opened in waves as real clients arrive; this process is the load
//! generator: the clients, and the writer of the events (a replica of its own on the same
//! database, so events reach the server through PostgreSQL NOTIFY and its relay, as from the
//! replica running the deploys).
//!
//! Prints the subscribers held, the server's RSS idle and with them (bytes per idle subscriber),
//! and delivery latency (emit → received) while every deploy emits an event a second. A share of
//! the subscribers reads nothing during the run (slow clients): the others' latency is measured
//! beside them, and afterwards each slow one must still receive every event of its stream.
//!
//! `SUBSCRIBERS` (default 10000) and `ROUNDS` (events per deploy, default 20) change the size.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::app::deploy_body;
use common::figures::{figure, latency_summary, load_average, millis, percentiles};
use common::postgres::fresh_database;
use common::serve::{ServeEnv, ServeProcess};
use common::sse::SseStream;
use rollcall::bus::{EventHub, EventWriter};
use rollcall::domain::event::{EventType, NewEvent};
use rollcall::telemetry::Metrics;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

const NAMESPACES: usize = 10;
const RELEASES_PER_NAMESPACE: usize = 10;
/// Connections opened at once: well below the SYN backlog (2,048 here), as clients arrive.
const WAVE: usize = 250;
/// Of the subscribers: on the firehose (the rest follow one deploy each).
const FIREHOSE_SHARE: f64 = 0.10;
/// Of the firehose subscribers: the whole firehose (the rest filter by namespace).
const UNFILTERED_SHARE: f64 = 0.10;
/// Of each kind of subscriber: slow ones, reading nothing until the run is over.
const SLOW_SHARE: f64 = 0.01;
/// How long a subscriber waits for an event before it counts the rest as missing.
const PATIENCE: Duration = Duration::from_secs(30);

fn unix_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Resident memory of a process in bytes, from `/proc/<pid>/status`.
fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// What one subscriber follows, and how many of the bench's events that brings it.
#[derive(Clone)]
struct Subscription {
    path: String,
    expected: usize,
    slow: bool,
}

/// What a subscriber measured.
struct Received {
    latencies: Vec<Duration>,
    missing: usize,
    slow: bool,
}

/// Follows `subscription` until it has its events (a slow one only once `drain` says so).
async fn subscriber(
    request: reqwest::RequestBuilder,
    subscription: Subscription,
    ready: tokio::sync::mpsc::Sender<()>,
    mut drain: watch::Receiver<bool>,
) -> Received {
    let mut stream = SseStream::connect(request).await;
    assert_eq!(stream.status(), 200, "{}", subscription.path);
    // Held once the stream has sent something: a deploy's replayed `deploy.queued`, the
    // firehose's opening `id:`.
    while stream.last_event_id().is_none() {
        let _ = tokio::time::timeout(Duration::from_millis(100), stream.next_frame(PATIENCE)).await;
    }
    let _ = ready.send(()).await;
    if subscription.slow {
        let _ = drain.wait_for(|drain| *drain).await;
    }
    let mut latencies = Vec::with_capacity(subscription.expected);
    let deadline = Instant::now() + PATIENCE * 4;
    while latencies.len() < subscription.expected {
        let Ok(Some(frame)) =
            tokio::time::timeout_at(deadline, stream.next_frame(PATIENCE * 4)).await
        else {
            break;
        };
        let event = frame.json();
        if let Some(sent) = event["data"]["sent_at_micros"].as_i64() {
            latencies.push(Duration::from_micros((unix_micros() - sent).max(0) as u64));
        }
    }
    Received {
        missing: subscription.expected - latencies.len(),
        latencies,
        slow: subscription.slow,
    }
}

/// Every subscriber's stream: deploys and firehose views in turn, slow ones spread among them.
fn subscriptions(total: usize, deploys: &[(String, Uuid)], rounds: usize) -> Vec<Subscription> {
    let firehose = (total as f64 * FIREHOSE_SHARE) as usize;
    let unfiltered = (firehose as f64 * UNFILTERED_SHARE) as usize;
    let slow_every = (1.0 / SLOW_SHARE) as usize;
    (0..total)
        .map(|index| {
            let slow = index % slow_every == slow_every - 1;
            if index < total - firehose {
                let (_, id) = &deploys[index % deploys.len()];
                Subscription {
                    path: format!("/v1/deploys/{id}/events"),
                    expected: rounds,
                    slow,
                }
            } else if index < total - unfiltered {
                Subscription {
                    path: format!("/v1/events?namespace=ns-{}", index % NAMESPACES),
                    expected: rounds * RELEASES_PER_NAMESPACE,
                    slow,
                }
            } else {
                Subscription {
                    path: "/v1/events".to_owned(),
                    expected: rounds * deploys.len(),
                    slow,
                }
            }
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|arg| arg == "--test")
        || !std::env::args().any(|arg| arg == "--bench");
    let total = setting("SUBSCRIBERS", if quick { 500 } else { 10_000 });
    let rounds = setting("ROUNDS", if quick { 3 } else { 20 });
    // This process holds every client connection; the server child inherits the raised limit
    // and raises its own to the hard limit too.
    let open_files =
        rollcall::http::server::raise_open_files_limit().expect("raise the open files limit");
    assert!(
        open_files as usize > total + 100,
        "{total} subscribers need more open files than {open_files}: raise the hard limit (ulimit -Hn)"
    );

    let database_url = fresh_database().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let admin_token = format!("bench-{}", Uuid::new_v4().simple());
    let env = ServeEnv {
        database_url: &database_url,
        kubeconfig: &dir.path().join("kubeconfig"),
        helm: std::path::Path::new("helm"),
        chart_dir: dir.path(),
        admin_token: &admin_token,
        dir: dir.path(),
    };
    let settings = [
        ("ROLLCALL_NO_RUNNER", "true"),
        (
            "ROLLCALL_CHART_REPOSITORIES",
            common::app::EXAMPLE_REPOSITORY,
        ),
    ];
    let server = ServeProcess::start(&env, "subscribers", &settings).await;
    let client = reqwest::Client::new();
    let mut deploys = Vec::new();
    for namespace in 0..NAMESPACES {
        for release in 0..RELEASES_PER_NAMESPACE {
            let response = client
                .post(format!("{}/v1/deploys", server.address))
                .bearer_auth(&admin_token)
                .json(&deploy_body(
                    &format!("ns-{namespace}"),
                    &format!("web-{release}"),
                ))
                .send()
                .await
                .expect("POST /v1/deploys");
            assert_eq!(
                response.status(),
                202,
                "{}",
                response.text().await.unwrap_or_default()
            );
            let answer: serde_json::Value = response.json().await.expect("JSON answer");
            let id: Uuid = answer["id"].as_str().expect("id").parse().expect("uuid");
            deploys.push((format!("ns-{namespace}"), id));
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = rss_bytes(server.pid());

    let plan = subscriptions(total, &deploys, rounds);
    let (drain_tx, drain_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(WAVE);
    let opening = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for subscription in plan.iter().cloned() {
        let request = client
            .get(format!("{}{}", server.address, subscription.path))
            .bearer_auth(&admin_token);
        let (ready, drain) = (ready_tx.clone(), drain_rx.clone());
        tasks.push(tokio::spawn(subscriber(
            request,
            subscription,
            ready,
            drain,
        )));
        // The next wave opens once this one is held.
        if tasks.len() % WAVE == 0 {
            for _ in 0..WAVE {
                ready_rx.recv().await.expect("subscriber held");
            }
        }
    }
    for _ in 0..tasks.len() % WAVE {
        ready_rx.recv().await.expect("subscriber held");
    }
    let opened_in = opening.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_held = rss_bytes(server.pid());

    // The writer: another replica on the same database.
    let pool = rollcall::store::connect(&database_url, 4)
        .await
        .expect("connect");
    let (tasks_tracker, stop) = (TaskTracker::new(), CancellationToken::new());
    let hub = EventHub::new(
        pool,
        16 * 1024,
        tasks_tracker.clone(),
        stop.clone(),
        Arc::new(Metrics::default()),
    );
    let writers: Vec<_> = deploys
        .iter()
        .map(|(_, id)| EventWriter::open(&hub, *id))
        .collect();
    // Each deploy emits an event a second, the deploys evenly spread over the second.
    let spacing = Duration::from_secs(1) / deploys.len() as u32;
    let mut tick = tokio::time::interval(spacing);
    for round in 0..rounds {
        for writer in &writers {
            tick.tick().await;
            let event = NewEvent::new(EventType::ResourceStatus, format!("status {round}"))
                .data(json!({"sent_at_micros": unix_micros()}));
            writer.emit(event).await.expect("emit");
        }
    }
    for writer in writers {
        writer.close().await.expect("close");
    }
    // The prompt subscribers finish first; then the slow ones read what they were sent.
    let _ = drain_tx.send(true);
    let mut prompt = Vec::new();
    let (mut missing, mut slow_missing, mut slow_count) = (0, 0, 0);
    for task in tasks {
        let received = task.await.expect("subscriber");
        if received.slow {
            slow_count += 1;
            slow_missing += received.missing;
        } else {
            missing += received.missing;
            prompt.extend(received.latencies);
        }
    }
    let metrics = client
        .get(format!("{}/metrics", server.address))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .unwrap_or_default();
    let lagged = metrics
        .lines()
        .find(|line| line.starts_with("rollcall_sse_lagged_total"))
        .and_then(|line| line.split_whitespace().nth(1))
        .unwrap_or("?")
        .to_owned();
    stop.cancel();
    tasks_tracker.close();
    tasks_tracker.wait().await;

    let firehose = (total as f64 * FIREHOSE_SHARE) as usize;
    let unfiltered = (firehose as f64 * UNFILTERED_SHARE) as usize;
    let idle_bytes_each = rss_held.saturating_sub(rss_idle) as f64 / total as f64;
    println!(
        "SSE subscribers: {total} held by one rollcall serve ({} on {} deploys, {} on the firehose by namespace, {unfiltered} on the whole firehose; {slow_count} of them slow), opened {WAVE} at a time in {:.1}s; open files limit {open_files}",
        total - firehose,
        deploys.len(),
        firehose - unfiltered,
        opened_in.as_secs_f64(),
    );
    println!(
        "SSE server RSS: idle {:.1} MiB, with {total} subscribers {:.1} MiB -> {:.1} KiB per idle subscriber",
        mib(rss_idle),
        mib(rss_held),
        idle_bytes_each / 1024.0,
    );
    println!(
        "SSE delivery to {total} subscribers, {} events/s from another process: {} deliveries, latency {} (emit -> received, including the {} ms batching window), {missing} missing",
        deploys.len(),
        prompt.len(),
        latency_summary(&prompt),
        rollcall::bus::writer::FLUSH_INTERVAL.as_millis(),
    );
    figure("subscribers.held", total as f64, "subscribers");
    figure(
        "subscribers.delivery_p99_ms",
        millis(percentiles(&prompt)[2]),
        "ms",
    );
    figure("subscribers.bytes_per_idle", idle_bytes_each, "bytes");
    figure("subscribers.server_rss_mib", mib(rss_held), "MiB");
    println!(
        "SSE slow subscribers: {slow_count} read nothing for {rounds}s, then received their events with {slow_missing} missing; streams that lagged and caught up from the database: {lagged}; load average {}",
        load_average(),
    );
}
