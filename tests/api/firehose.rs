//! The firehose (`GET /v1/events`) resumes from `Last-Event-ID` on any replica: every committed
//! event once, in cursor order, whatever the order in which concurrent transactions commit.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio::time::Instant;
use uuid::Uuid;

use super::events::log_line;
use crate::common::app::{TestApp, deploy_body, spawn_app, spawn_app_on, spawn_app_with};
use crate::common::sse::{SseFrame, SseStream};
use rollcall::bus::EventWriter;
use rollcall::domain::event::{EventType, NewEvent};
use rollcall::domain::firehose::FirehosePosition;

const WAIT: Duration = Duration::from_secs(20);

/// `(deploy, seq)` of an event frame.
fn event_of(frame: &SseFrame) -> (Uuid, i64) {
    let event = frame.json();
    (
        event["deploy_id"].as_str().unwrap().parse().unwrap(),
        event["seq"].as_i64().unwrap(),
    )
}

fn position_of(frame: &SseFrame) -> FirehosePosition {
    frame
        .id
        .as_deref()
        .expect("an id")
        .parse()
        .expect("a position")
}

/// Every `(deploy, seq)` stored.
async fn stored_events(app: &TestApp) -> BTreeSet<(Uuid, i64)> {
    sqlx::query_as::<_, (Uuid, i64)>("select deploy_id, seq from deploy_events")
        .fetch_all(&app.state.pool)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

fn firehose(
    app: &TestApp,
    path: &str,
    token: &str,
    cursor: Option<&str>,
) -> reqwest::RequestBuilder {
    let request = app.get(path, token);
    match cursor {
        Some(cursor) => request.header("last-event-id", cursor),
        None => request,
    }
}

/// Appends `events` to `deploy` in a transaction held open for `hold` before it commits (or rolls
/// back when `commit` is false), after taking its transaction id `early` (before the deploy's
/// row lock, as a transaction that writes something else first does).
async fn held_transaction(
    app: &TestApp,
    deploy: Uuid,
    events: Vec<NewEvent>,
    hold: Duration,
    early: bool,
    commit: bool,
) {
    let mut tx = app.state.events.begin().await.unwrap();
    if early {
        sqlx::query("select pg_current_xact_id()")
            .execute(tx.conn())
            .await
            .unwrap();
        tokio::time::sleep(hold).await;
    }
    tx.append(deploy, events).await.unwrap();
    if !early {
        tokio::time::sleep(hold).await;
    }
    if commit {
        app.state.events.commit(tx).await.unwrap();
    }
}

#[tokio::test]
async fn a_reconnecting_client_receives_every_event_committed_by_concurrent_writers_once() {
    let a = Arc::new(spawn_app().await);
    let b = Arc::new(spawn_app_on(&a.database_url, |_| {}).await);
    // The client connects before anything is written; its first id is where it connected.
    let mut cursor = {
        let mut stream = SseStream::connect(firehose(&a, "/v1/events", &a.admin_token, None)).await;
        while stream.last_event_id().is_none() {
            let _ = tokio::time::timeout(Duration::from_millis(50), stream.next_frame(WAIT)).await;
        }
        stream.last_event_id().unwrap().to_owned()
    };
    let mut deploys = Vec::new();
    for index in 0..6 {
        deploys.push(
            a.submit(&deploy_body("prod", &format!("web-{index}")))
                .await,
        );
    }

    let mut writers = tokio::task::JoinSet::new();
    // Batched writers on both replicas, two deploys each.
    for (index, deploy) in deploys[..4].iter().copied().enumerate() {
        let app = if index % 2 == 0 { a.clone() } else { b.clone() };
        writers.spawn(async move {
            let writer = EventWriter::open(&app.state.events, deploy);
            for line in 0..100 {
                writer.emit(log_line(line)).await.unwrap();
                if line % 3 == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            writer.close().await.unwrap();
        });
    }
    // Transactions held open while the others commit: they took their ids first and commit last.
    for (round, deploy) in [deploys[4], deploys[5], deploys[4], deploys[5]]
        .into_iter()
        .enumerate()
    {
        let app = if round % 2 == 0 { b.clone() } else { a.clone() };
        writers.spawn(async move {
            for attempt in 0..8 {
                let events = (0..5).map(log_line).collect();
                let hold = Duration::from_millis(60 + 40 * (attempt % 4));
                // Every third transaction rolls back: its events never existed.
                held_transaction(&app, deploy, events, hold, false, attempt % 3 != 1).await;
            }
        });
    }
    // A transaction whose id precedes events of the same deploy it is appended after.
    for deploy in [deploys[0], deploys[1]] {
        let app = a.clone();
        writers.spawn(async move {
            for _ in 0..6 {
                let events = vec![NewEvent::new(EventType::ResourceStatus, "late status")];
                held_transaction(&app, deploy, events, Duration::from_millis(120), true, true)
                    .await;
            }
        });
    }

    let mut received: Vec<(FirehosePosition, (Uuid, i64))> = Vec::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(16);
    let mut writers_done = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut connections = 0;
    loop {
        if !writers_done && writers.is_empty() {
            writers_done = true;
        }
        while let Some(result) = writers.try_join_next() {
            result.expect("writer");
        }
        if writers_done && received.len() >= stored_events(&a).await.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the client did not catch up: {} received",
            received.len()
        );
        // Each connection alternates replicas and reads a few events, or for a moment, then drops.
        let replica = if connections % 2 == 0 { &a } else { &b };
        connections += 1;
        let mut stream = SseStream::connect(firehose(
            replica,
            "/v1/events",
            &replica.admin_token,
            Some(&cursor),
        ))
        .await;
        assert_eq!(stream.status(), 200, "{}", replica.address);
        // Connections last moments, so that the client follows close behind the writers.
        let until = Instant::now() + Duration::from_millis(rng.random_range(10..120));
        while let Ok(frame) = tokio::time::timeout_at(until, stream.next_frame(WAIT)).await {
            let frame = frame.expect("the stream goes on");
            received.push((position_of(&frame), event_of(&frame)));
        }
        if let Some(last) = stream.last_event_id() {
            cursor = last.to_owned();
        }
    }
    while let Some(result) = writers.join_next().await {
        result.expect("writer");
    }

    let committed = stored_events(&a).await;
    let events: Vec<(Uuid, i64)> = received.iter().map(|(_, event)| *event).collect();
    let distinct: BTreeSet<_> = events.iter().copied().collect();
    assert_eq!(distinct.len(), events.len(), "an event was delivered twice");
    let missing: Vec<_> = committed.difference(&distinct).take(5).collect();
    let extra: Vec<_> = distinct.difference(&committed).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "received exactly what was committed: missing {missing:?}…, never committed {extra:?}…"
    );
    assert!(
        received.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "positions only move forward"
    );
    let mut last_seq = HashMap::new();
    for (deploy, seq) in &events {
        let previous = last_seq.insert(*deploy, *seq).unwrap_or(0);
        assert!(
            previous < *seq,
            "deploy {deploy}: seq {seq} after {previous}"
        );
    }
    assert!(
        connections > 10,
        "the client reconnected {connections} times"
    );
}

#[tokio::test]
async fn resuming_keeps_the_type_filter_and_the_token_scope() {
    let app = spawn_app().await;
    let (_, prod_reader) = app.token(&["read"], &["*/prod/*"]).await;
    let prod = app.submit(&deploy_body("prod", "web")).await;
    let staging = app.submit(&deploy_body("staging", "web")).await;
    let path = "/v1/events?type=container.log";
    let mut stream = SseStream::connect(firehose(&app, path, &prod_reader, None)).await;
    assert_eq!(stream.status(), 200);
    let emit = |deploy, line| {
        let events = app.state.events.clone();
        async move {
            let writer = EventWriter::open(&events, deploy);
            writer.emit(log_line(line)).await.unwrap();
            writer
                .emit(NewEvent::new(EventType::ResourceStatus, "status"))
                .await
                .unwrap();
            writer.close().await.unwrap();
        }
    };
    emit(staging, 0).await;
    emit(prod, 1).await;
    let first = stream.next_frame(WAIT).await.unwrap();
    assert_eq!(first.event.as_deref(), Some("container.log"));
    assert_eq!(event_of(&first).0, prod);
    let cursor = stream.last_event_id().unwrap().to_owned();
    drop(stream);

    for line in 2..5 {
        emit(staging, line).await;
        emit(prod, line).await;
    }
    let mut resumed = SseStream::connect(firehose(&app, path, &prod_reader, Some(&cursor))).await;
    let mut lines = Vec::new();
    for _ in 0..3 {
        let frame = resumed.next_frame(WAIT).await.unwrap();
        assert_eq!(frame.event.as_deref(), Some("container.log"));
        assert_eq!(event_of(&frame).0, prod, "only the scope's deploys");
        lines.push(frame.json()["data"]["index"].as_i64().unwrap());
    }
    assert_eq!(lines, [2, 3, 4], "after the cursor, each once");
}

#[tokio::test]
async fn a_cursor_whose_event_was_pruned_still_resumes_after_it() {
    let app = spawn_app().await;
    let mut stream = SseStream::connect(firehose(&app, "/v1/events", &app.admin_token, None)).await;
    let id = app.submit(&deploy_body("prod", "web")).await;
    let writer = EventWriter::open(&app.state.events, id);
    for line in 0..3 {
        writer.emit(log_line(line)).await.unwrap();
    }
    writer.flush().await.unwrap();
    assert_eq!(event_of(&stream.next_frame(WAIT).await.unwrap()), (id, 1));
    let seen = stream.next_frame(WAIT).await.unwrap();
    assert_eq!(event_of(&seen), (id, 2));
    drop(stream);
    // Retention removes the event the client saw last, and the one after it.
    sqlx::query("delete from deploy_events where deploy_id = $1 and seq in (2, 3)")
        .bind(id)
        .execute(&app.state.pool)
        .await
        .unwrap();
    let cursor = seen.id.unwrap();
    let mut resumed = SseStream::connect(firehose(
        &app,
        "/v1/events",
        &app.admin_token,
        Some(&cursor),
    ))
    .await;
    let next = resumed.next_frame(WAIT).await.unwrap();
    assert_eq!(event_of(&next), (id, 4));
}

#[tokio::test]
async fn a_slow_firehose_client_catches_up_from_the_database() {
    let app = spawn_app_with(|config| config.event_bus_capacity = 4).await;
    let mut stream = SseStream::connect(firehose(&app, "/v1/events", &app.admin_token, None)).await;
    assert_eq!(stream.status(), 200);
    let id = app.submit(&deploy_body("prod", "web")).await;
    assert_eq!(event_of(&stream.next_frame(WAIT).await.unwrap()), (id, 1));
    // Then one batch of 300 events overflows the 4-slot broadcast at once.
    let writer = EventWriter::open(&app.state.events, id);
    for index in 0..300 {
        writer.emit(log_line(index)).await.unwrap();
    }
    writer.close().await.unwrap();
    let mut seqs = Vec::new();
    while seqs.len() < 300 {
        let frame = stream.next_frame(WAIT).await.unwrap();
        assert_ne!(frame.event.as_deref(), Some("lagged"));
        seqs.push(event_of(&frame).1);
    }
    assert_eq!(seqs, (2..=301).collect::<Vec<_>>());
    let metrics = app.metrics().await;
    assert!(
        !metrics.contains("rollcall_sse_lagged_total 0\n"),
        "the stream lagged"
    );
}

#[tokio::test]
async fn a_malformed_or_unissued_cursor_is_refused_naming_it() {
    let app = spawn_app().await;
    for (cursor, query) in [
        (Some("not-a-position"), ""),
        (Some("99999999999"), ""),
        (None, "?after=12:x:3"),
    ] {
        let response = firehose(
            &app,
            &format!("/v1/events{query}"),
            &app.admin_token,
            cursor,
        )
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), 400, "{cursor:?} {query}");
        let problem: Value = response.json().await.unwrap();
        let field = if cursor.is_some() {
            "Last-Event-ID"
        } else {
            "after"
        };
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
}
