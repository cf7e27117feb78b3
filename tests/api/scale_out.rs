//! Several instances on one database (events, which of them exports the database figures), and
//! graceful shutdown.

use std::time::Duration;

use crate::common::app::{deploy_body, spawn_app, spawn_app_on};
use crate::common::sse::SseStream;
use crate::events::{log_line, run_to_success, seqs};
use rollcall::bus::EventWriter;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_client_on_one_instance_sees_events_written_on_another() {
    let a = spawn_app().await;
    let b = spawn_app_on(&a.database_url, |_| {}).await;
    let id = a.submit(&deploy_body("prod", "web")).await;
    // Each instance has its own bootstrap token; a database token works on both.
    let (_, token) = a.token(&["read"], &["*/*/*"]).await;
    let mut stream = SseStream::connect(b.get(&format!("/v1/deploys/{id}/events"), &token)).await;
    assert_eq!(stream.status(), 200);
    assert_eq!(
        stream.next_frame(WAIT).await.unwrap().id.as_deref(),
        Some("1")
    );

    let writer = EventWriter::open(&a.state.events, id);
    for index in 0..50 {
        writer.emit(log_line(index)).await.unwrap();
    }
    writer.close().await.unwrap();
    run_to_success(&a, id).await;
    let frames = stream
        .frames_until(WAIT, |f| f.event.as_deref() == Some("end"))
        .await;
    assert_eq!(seqs(&frames), (2..=54).collect::<Vec<_>>());
}

#[tokio::test]
async fn shutdown_flushes_pending_events_and_ends_streams() {
    let app = spawn_app().await;
    let id = app.submit(&deploy_body("prod", "web")).await;
    let mut stream =
        SseStream::connect(app.get(&format!("/v1/deploys/{id}/events"), &app.admin_token)).await;
    assert_eq!(
        stream.next_frame(WAIT).await.unwrap().id.as_deref(),
        Some("1")
    );
    let writer = EventWriter::open(&app.state.events, id);
    for index in 0..2000 {
        writer.emit(log_line(index)).await.unwrap();
    }
    let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
    app.shutdown().await;
    let stored: i64 = sqlx::query_scalar("select count(*) from deploy_events where deploy_id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 2001);
    // The stream ended with the server instead of hanging.
    while stream.next_frame(WAIT).await.is_some() {}
    assert!(
        writer.emit(log_line(0)).await.is_err(),
        "a writer is closed after shutdown"
    );
}

/// Whether `metrics` has a sample (not only HELP and TYPE) of `name`.
fn has_sample(metrics: &str, name: &str) -> bool {
    metrics
        .lines()
        .any(|line| line.starts_with(&format!("{name} ")) || line.starts_with(&format!("{name}{{")))
}

/// Figures read from the database come from one replica at a time, so that summing them over
/// replicas counts each deploy once; when that replica stops, another takes over.
#[tokio::test]
async fn one_replica_at_a_time_exports_the_figures_read_from_the_database() {
    let a = spawn_app().await;
    let b = spawn_app_on(&a.database_url, |_| {}).await;
    a.submit(&deploy_body("prod", "web")).await;

    let (on_a, on_b) = (a.metrics().await, b.metrics().await);
    assert!(
        on_a.contains("rollcall_database_reporter 1\n"),
        "{on_a}\n---\n{on_b}"
    );
    assert!(on_a.contains("rollcall_queue_depth 1\n"), "{on_a}");
    assert!(
        on_a.contains("rollcall_deploys{status=\"queued\"} 1\n"),
        "{on_a}"
    );
    assert!(on_b.contains("rollcall_database_reporter 0\n"), "{on_b}");
    for name in [
        "rollcall_queue_depth",
        "rollcall_deploys",
        "rollcall_running_deploys",
    ] {
        assert!(
            !has_sample(&on_b, name),
            "{name} on the second replica: {on_b}"
        );
    }
    // Each replica's own figures are there on both.
    assert!(has_sample(&on_b, "rollcall_db_pool_connections"), "{on_b}");

    a.shutdown().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let on_b = b.metrics().await;
        if on_b.contains("rollcall_database_reporter 1\n") {
            assert!(on_b.contains("rollcall_queue_depth 1\n"), "{on_b}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second replica did not take over: {on_b}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
