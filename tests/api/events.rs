//! Deploy event streams: SSE with resume, JSON pages, the firehose.

use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use crate::common::app::{Answer, TestApp, deploy_body, spawn_app, spawn_app_with};
use crate::common::sse::{SseFrame, SseStream};
use rollcall::bus::{BusMessage, EventWriter};
use rollcall::domain::deploy::{Outcome, Phase};
use rollcall::domain::event::{EventType, Level, NewEvent, ResourceRef};
use rollcall::store::deploys::{self, Finish};

const WAIT: Duration = Duration::from_secs(20);

pub fn log_line(index: usize) -> NewEvent {
    NewEvent::new(EventType::ContainerLog, format!("line {index}"))
        .resource(ResourceRef {
            kind: "Pod".into(),
            namespace: "prod".into(),
            name: "web-1".into(),
        })
        .data(serde_json::json!({"container": "web", "index": index}))
}

/// Runs a deploy to success through the store, as the runner will.
pub async fn run_to_success(app: &TestApp, id: Uuid) {
    let lease = chrono::Utc::now() + chrono::Duration::seconds(30);
    let mut tx = app.state.events.begin().await.unwrap();
    deploys::start(&mut tx, id, "test-runner", lease)
        .await
        .unwrap();
    deploys::set_phase(&mut tx, id, Phase::Tracking)
        .await
        .unwrap();
    app.state.events.commit(tx).await.unwrap();
    finish(app, id).await;
}

pub async fn finish(app: &TestApp, id: Uuid) {
    let mut tx = app.state.events.begin().await.unwrap();
    let finish = Finish {
        outcome: Outcome::Succeeded,
        verdict: None,
        revision: Some(1),
        rolled_back_to: None,
    };
    deploys::finish(&mut tx, id, finish).await.unwrap();
    app.state.events.commit(tx).await.unwrap();
}

pub fn seqs(frames: &[SseFrame]) -> Vec<i64> {
    frames
        .iter()
        .filter_map(|f| f.id.as_ref())
        .map(|id| id.parse().unwrap())
        .collect()
}

fn events_path(id: Uuid) -> String {
    format!("/v1/deploys/{id}/events")
}

#[tokio::test]
async fn sse_replays_then_follows_live_and_ends_after_the_terminal_event() {
    let app = spawn_app().await;
    let id = app.submit(&deploy_body("prod", "web")).await;
    let mut stream = SseStream::connect(app.get(&events_path(id), &app.admin_token)).await;
    assert_eq!(stream.status(), 200);
    let queued = stream.next_frame(WAIT).await.unwrap();
    assert_eq!(queued.id.as_deref(), Some("1"));
    assert_eq!(queued.event.as_deref(), Some("deploy.queued"));
    assert_eq!(queued.json()["type"], "deploy.queued");

    let writer = EventWriter::open(&app.state.events, id);
    for index in 0..5 {
        writer.emit(log_line(index)).await.unwrap();
    }
    writer
        .emit(NewEvent::new(EventType::ResourceReady, "web ready").level(Level::Info))
        .await
        .unwrap();
    writer.close().await.unwrap();
    run_to_success(&app, id).await;

    let frames = stream
        .frames_until(WAIT, |f| f.event.as_deref() == Some("end"))
        .await;
    let types: Vec<&str> = frames.iter().map(|f| f.event.as_deref().unwrap()).collect();
    assert_eq!(
        types,
        [
            "container.log",
            "container.log",
            "container.log",
            "container.log",
            "container.log",
            "resource.ready",
            "deploy.started",
            "phase",
            "deploy.succeeded",
            "end"
        ]
    );
    assert_eq!(seqs(&frames), (2..=10).collect::<Vec<_>>());
    assert_eq!(frames[0].json()["resource"]["name"], "web-1");
    assert_eq!(frames.last().unwrap().json()["last_seq"], 10);
    assert!(
        stream.next_frame(WAIT).await.is_none(),
        "the stream closes after `end`"
    );
}

#[tokio::test]
async fn sse_resumes_across_reconnects_without_gaps_or_duplicates() {
    let app = spawn_app().await;
    let id = app.submit(&deploy_body("prod", "web")).await;
    let total = 600;
    let writer = EventWriter::open(&app.state.events, id);
    let producer = {
        let app_events = app.state.events.clone();
        tokio::spawn(async move {
            for index in 0..total {
                writer.emit(log_line(index)).await.unwrap();
                if index % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            writer.close().await.unwrap();
            let lease = chrono::Utc::now() + chrono::Duration::seconds(30);
            let mut tx = app_events.begin().await.unwrap();
            deploys::start(&mut tx, id, "test-runner", lease)
                .await
                .unwrap();
            app_events.commit(tx).await.unwrap();
        })
    };
    let mut received = Vec::new();
    let mut last_event_id: Option<String> = None;
    // Several short connections while events are being written, then one to the end.
    for connection in 0..4 {
        let mut request = app.get(&events_path(id), &app.admin_token);
        if let Some(last) = &last_event_id {
            request = request.header("last-event-id", last);
        }
        let mut stream = SseStream::connect(request).await;
        for _ in 0..(40 + connection * 30) {
            let frame = stream.next_frame(WAIT).await.unwrap();
            last_event_id = frame.id.clone();
            received.push(frame);
        }
    }
    producer.await.unwrap();
    finish(&app, id).await;
    let mut stream = SseStream::connect(
        app.get(&events_path(id), &app.admin_token)
            .header("last-event-id", last_event_id.unwrap()),
    )
    .await;
    received.extend(
        stream
            .frames_until(WAIT, |f| f.event.as_deref() == Some("end"))
            .await,
    );
    let expected_last = 1 + total as i64 + 2;
    assert_eq!(seqs(&received), (1..=expected_last).collect::<Vec<_>>());
}

#[tokio::test]
async fn after_parameter_and_finished_deploys() {
    let app = spawn_app().await;
    let id = app.submit(&deploy_body("prod", "web")).await;
    run_to_success(&app, id).await;
    let mut stream =
        SseStream::connect(app.get(&format!("{}?after=2", events_path(id)), &app.admin_token))
            .await;
    let frames = stream
        .frames_until(WAIT, |f| f.event.as_deref() == Some("end"))
        .await;
    assert_eq!(seqs(&frames), [3, 4]);
    let mut stream = SseStream::connect(
        app.get(&events_path(id), &app.admin_token)
            .header("last-event-id", "4"),
    )
    .await;
    let frames = stream
        .frames_until(WAIT, |f| f.event.as_deref() == Some("end"))
        .await;
    assert_eq!(
        frames.len(),
        1,
        "only `end` after the last event: {frames:?}"
    );
    let bad = app
        .get(&events_path(id), &app.admin_token)
        .header("last-event-id", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn json_pages_walk_the_events() {
    let app = spawn_app().await;
    let id = app.submit(&deploy_body("prod", "web")).await;
    let writer = EventWriter::open(&app.state.events, id);
    for index in 0..9 {
        writer.emit(log_line(index)).await.unwrap();
    }
    writer.close().await.unwrap();
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let page: Value = app
            .get(
                &format!("{}?after={after}&limit=4", events_path(id)),
                &app.admin_token,
            )
            .header("accept", "application/json")
            .json_body()
            .await;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_i64().unwrap()),
        );
        match page["next_after"].as_i64() {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(seen, (1..=10).collect::<Vec<_>>());
}

#[tokio::test]
async fn idle_streams_get_keep_alive_comments() {
    let app = spawn_app_with(|config| config.sse_keep_alive = Duration::from_millis(100)).await;
    let id = app.submit(&deploy_body("prod", "web")).await;
    let mut response = app
        .get(&events_path(id), &app.admin_token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    while !text.lines().any(|line| line.starts_with(':')) {
        let chunk = tokio::time::timeout(WAIT, response.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("retry:"), "{text}");
}

#[tokio::test]
async fn firehose_streams_matching_deploys_only() {
    let app = spawn_app().await;
    let mut stream =
        SseStream::connect(app.get("/v1/events?namespace=prod", &app.admin_token)).await;
    assert_eq!(stream.status(), 200);
    app.submit(&deploy_body("staging", "web")).await;
    let prod = app.submit(&deploy_body("prod", "web")).await;
    let frame = stream.next_frame(WAIT).await.unwrap();
    let id = frame.id.clone().expect("a position");
    assert!(id.ends_with(&format!(":{prod}:1")), "{id}");
    assert_eq!(frame.json()["deploy_id"], prod.to_string());
}

#[tokio::test]
async fn firehose_streams_the_selected_event_types_only() {
    let app = spawn_app().await;
    let mut stream =
        SseStream::connect(app.get("/v1/events?type=deploy.*,phase", &app.admin_token)).await;
    assert_eq!(stream.status(), 200);
    let id = app.submit(&deploy_body("prod", "web")).await;
    let writer = EventWriter::open(&app.state.events, id);
    writer.emit(log_line(1)).await.unwrap();
    writer.close().await.unwrap();
    run_to_success(&app, id).await;
    let frames = stream
        .frames_until(WAIT, |f| f.event.as_deref() == Some("deploy.succeeded"))
        .await;
    let types: Vec<_> = frames.iter().filter_map(|f| f.event.clone()).collect();
    assert_eq!(
        types,
        [
            "deploy.queued",
            "deploy.started",
            "phase",
            "deploy.succeeded"
        ],
        "the log line is left out"
    );

    let refused: Value = app
        .get("/v1/events?type=deploy.*,logs", &app.admin_token)
        .json_body()
        .await;
    assert_eq!(refused["status"], 400);
    assert_eq!(refused["errors"][0]["field"], "type");
}

#[tokio::test]
async fn a_lagging_subscriber_catches_up_from_the_database() {
    let app = spawn_app_with(|config| config.event_bus_capacity = 4).await;
    let id = app.submit(&deploy_body("prod", "web")).await;
    let mut stream = SseStream::connect(app.get(&events_path(id), &app.admin_token)).await;
    assert_eq!(
        stream.next_frame(WAIT).await.unwrap().id.as_deref(),
        Some("1")
    );
    // One batch of 300 events overflows the 4-slot broadcast at once.
    let writer = EventWriter::open(&app.state.events, id);
    for index in 0..300 {
        writer.emit(log_line(index)).await.unwrap();
    }
    writer.close().await.unwrap();
    run_to_success(&app, id).await;
    let frames = stream
        .frames_until(WAIT, |f| f.event.as_deref() == Some("end"))
        .await;
    assert_eq!(seqs(&frames), (2..=304).collect::<Vec<_>>());
    let metrics = app.metrics().await;
    assert!(
        !metrics.contains("rollcall_sse_lagged_total 0\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn writer_batches_and_transactions_on_one_deploy_interleave_without_gaps() {
    let app = spawn_app().await;
    let id = app.submit(&deploy_body("prod", "web")).await;
    let mut stream = SseStream::connect(app.get(&events_path(id), &app.admin_token)).await;
    let writer = EventWriter::open(&app.state.events, id);
    let emitting = async {
        for index in 0..300 {
            writer.emit(log_line(index)).await.unwrap();
            if index % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
    };
    // Transactions of three events each, appended meanwhile: each must stay in one piece.
    let transactions = async {
        for round in 0..20 {
            let mut tx = app.state.events.begin().await.unwrap();
            let triple = (0..3)
                .map(|part| {
                    NewEvent::new(
                        EventType::ResourceStatus,
                        format!("round {round} part {part}"),
                    )
                })
                .collect();
            tx.append(id, triple).await.unwrap();
            app.state.events.commit(tx).await.unwrap();
        }
    };
    tokio::join!(emitting, transactions);
    writer.close().await.unwrap();
    run_to_success(&app, id).await;
    let frames = stream
        .frames_until(WAIT, |f| f.event.as_deref() == Some("end"))
        .await;
    let total = 1 + 300 + 60 + 3;
    assert_eq!(seqs(&frames), (1..=total).collect::<Vec<_>>());
    let statuses: Vec<String> = frames
        .iter()
        .filter(|f| f.event.as_deref() == Some("resource.status"))
        .map(|f| f.json()["message"].as_str().unwrap().to_owned())
        .collect();
    for triple in statuses.chunks(3) {
        let round = triple[0].split(" part").next().unwrap();
        assert_eq!(
            triple,
            [0, 1, 2].map(|part| format!("{round} part {part}")),
            "a transaction's events were split: {statuses:?}"
        );
    }
    let logs: Vec<i64> = frames
        .iter()
        .filter(|f| f.event.as_deref() == Some("container.log"))
        .map(|f| f.json()["data"]["index"].as_i64().unwrap())
        .collect();
    assert_eq!(logs, (0..300).collect::<Vec<_>>(), "log lines out of order");
}

#[tokio::test]
async fn a_flush_returns_once_a_busy_writers_events_are_all_published_in_order() {
    // A busy writer publishes a committed batch while the next one is being written: the flush
    // must still wait for its own events to reach live subscribers.
    let app = spawn_app().await;
    let id = app.submit(&deploy_body("prod", "web")).await;
    let mut live = app.state.events.subscribe();
    let writer = EventWriter::open(&app.state.events, id);
    let emitted = 2 * rollcall::bus::writer::MAX_BATCH + 500;
    for index in 0..emitted {
        writer.emit(log_line(index)).await.unwrap();
    }
    tokio::time::timeout(WAIT, writer.flush())
        .await
        .expect("the flush returned")
        .unwrap();
    let mut published = Vec::new();
    while let Ok(message) = live.try_recv() {
        if let BusMessage::Event(event) = message {
            published.push(event.event.seq);
        }
    }
    assert_eq!(published, (2..=emitted as i64 + 1).collect::<Vec<_>>());
    writer.close().await.unwrap();
}
