//! Throughput measurements on a throwaway PostgreSQL (run with `cargo bench --bench throughput`):
//! events persisted per second through the event writer, SSE fan-out latency to 1,000 subscribers
//! of one deploy, and `POST /v1/deploys` requests per second.
//!
//! Every loop is bounded in count and time and talks only to 127.0.0.1.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::app::{TestApp, deploy_body, spawn_app_with};
use common::figures::figure;
use common::sse::SseStream;
use rollcall::bus::EventWriter;
use rollcall::domain::event::{EventType, NewEvent};
use tokio::sync::Mutex;

fn unix_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

async fn bench_app() -> TestApp {
    spawn_app_with(|config| config.db_max_connections = 20).await
}

async fn writer_throughput(app: &TestApp, deploys: usize, events_per_deploy: usize) {
    let mut ids = Vec::new();
    for index in 0..deploys {
        ids.push(
            app.submit(&deploy_body("bench", &format!("writer-{index}")))
                .await,
        );
    }
    let started = Instant::now();
    let tasks: Vec<_> = ids
        .into_iter()
        .map(|id| {
            let events = app.state.events.clone();
            tokio::spawn(async move {
                let writer = EventWriter::open(&events, id);
                for index in 0..events_per_deploy {
                    let event = NewEvent::new(
                        EventType::ContainerLog,
                        format!("log line {index} of a container"),
                    )
                    .data(serde_json::json!({"container": "web", "line": index}));
                    writer.emit(event).await.expect("emit");
                }
                writer.close().await.expect("close");
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer task");
    }
    let elapsed = started.elapsed();
    let total = deploys * events_per_deploy;
    println!(
        "event writer: {deploys} deploy(s) x {events_per_deploy} events = {total} events persisted in {:.2}s -> {:.0} events/s",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    let plural = if deploys == 1 { "" } else { "s" };
    figure(
        &format!("events.persisted_per_s_{deploys}_writer{plural}"),
        total as f64 / elapsed.as_secs_f64(),
        "events/s",
    );
}

async fn sse_fan_out(app: &TestApp, subscribers: usize, events: usize) {
    let id = app.submit(&deploy_body("bench", "fan-out")).await;
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(subscribers * events)));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(subscribers);
    let mut tasks = Vec::new();
    let client = reqwest::Client::new();
    for _ in 0..subscribers {
        let request = client
            .get(app.url(&format!("/v1/deploys/{id}/events")))
            .bearer_auth(&app.admin_token);
        let latencies = latencies.clone();
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = SseStream::connect(request).await;
            let wait = Duration::from_secs(120);
            stream.next_frame(wait).await.expect("deploy.queued");
            ready.send(()).await.expect("ready");
            let mut mine = Vec::with_capacity(events);
            while mine.len() < events {
                let Some(frame) = stream.next_frame(wait).await else {
                    break;
                };
                let sent = frame.json()["data"]["sent_at_micros"].as_i64().unwrap_or(0);
                mine.push((unix_micros() - sent) as f64 / 1000.0);
            }
            latencies.lock().await.extend(mine);
        }));
    }
    for _ in 0..subscribers {
        ready_rx.recv().await.expect("subscriber ready");
    }
    let writer = EventWriter::open(&app.state.events, id);
    for index in 0..events {
        let event = NewEvent::new(EventType::ResourceStatus, format!("status {index}"))
            .data(serde_json::json!({"sent_at_micros": unix_micros()}));
        writer.emit(event).await.expect("emit");
        // One event every 20 ms: a lively deploy, and each event measured on its own.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    writer.close().await.expect("close");
    for task in tasks {
        task.await.expect("subscriber");
    }
    let mut all = latencies.lock().await.clone();
    all.sort_by(|a, b| a.total_cmp(b));
    println!(
        "SSE fan-out: {subscribers} subscribers x {events} events ({} deliveries): latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (emit -> received, including the {} ms batching window)",
        all.len(),
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        all.last().copied().unwrap_or(f64::NAN),
        rollcall::bus::writer::FLUSH_INTERVAL.as_millis()
    );
    figure(
        &format!("sse.fan_out_{subscribers}_p99_ms"),
        percentile(&all, 0.99),
        "ms",
    );
}

async fn post_deploys(app: &TestApp, concurrency: usize, duration: Duration, max_requests: usize) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let client = client.clone();
        let url = app.url("/v1/deploys");
        let token = app.admin_token.clone();
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            while Instant::now() < deadline
                && counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < max_requests
            {
                let body = deploy_body("bench", &format!("post-{worker}-{}", latencies.len() % 50));
                let sent = Instant::now();
                match client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(response) if response.status() == 202 => {
                        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (mine, failed) = task.await.expect("load worker");
        latencies.extend(mine);
        errors += failed;
    }
    let elapsed = started.elapsed();
    latencies.sort_by(|a, b| a.total_cmp(b));
    println!(
        "POST /v1/deploys: {} accepted ({errors} errors) in {:.1}s with {concurrency} connections -> {:.0} req/s, latency p50 {:.1} ms, p99 {:.1} ms",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99)
    );
    figure(
        "submissions.in_process_req_per_s",
        latencies.len() as f64 / elapsed.as_secs_f64(),
        "req/s",
    );
    figure(
        "submissions.in_process_p99_ms",
        percentile(&latencies, 0.99),
        "ms",
    );
}

#[tokio::main]
async fn main() {
    // `cargo test --benches` runs bench targets too; a quick pass there, full figures under `cargo bench`.
    let quick = std::env::args().any(|arg| arg == "--test")
        || !std::env::args().any(|arg| arg == "--bench");
    let scale = if quick { 20 } else { 1 };
    let app = bench_app().await;
    writer_throughput(&app, 1, 200_000 / scale).await;
    writer_throughput(&app, 8, 25_000 / scale).await;
    sse_fan_out(&app, 1000 / scale, 100 / scale.min(10)).await;
    post_deploys(
        &app,
        32,
        Duration::from_secs(if quick { 1 } else { 10 }),
        100_000,
    )
    .await;
    app.shutdown().await;
}
