//! The database size per 1,000 deploys, before and after the retention policy (issue 16 item 6):
//! 1,000 finished deploys of 50 releases, each with the history a real one writes (phases, helm's
//! output, resource and pod status, Kubernetes Events, 200 container log lines of a chatty
//! application, its report and verdict), finished evenly over the last 180 days; then one pass of
//! the default policy (log events after 14 days, notifications after 30, all but the verdict and
//! report after 90, each release's 10 newest deploys kept whole).
//!
//! `cargo bench --bench retention`; `cargo test --benches` makes a pass at a tenth of the size.

#[path = "../tests/common/mod.rs"]
mod common;

use common::app::example_charts;
use common::figures::{figure, load_average};
use common::postgres::OwnServer;
use rollcall::domain::chart::ChartSources;
use rollcall::domain::deploy::{DeployRequest, NewDeploy};
use rollcall::domain::event::{EventType, Level, NewEvent};
use rollcall::store::deploy_events::append_committed;
use rollcall::store::deploys::CreateDeploy;
use rollcall::store::retention::{RetentionPolicy, run_pass};
use rollcall::store::submissions::Submissions;
use rollcall::telemetry::RetentionMetrics;
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const RELEASES: usize = 50;
const LOG_LINES: usize = 200;
const HISTORY_DAYS: f64 = 180.0;

/// What one deploy writes after `deploy.queued`, as the runner and tracker write it.
fn history(release: &str, failed: bool) -> Vec<NewEvent> {
    let mut events = vec![NewEvent::new(
        EventType::DeployStarted,
        "started by rollcall-0",
    )];
    for phase in ["rendering", "upgrading", "tracking"] {
        events.push(NewEvent::new(EventType::Phase, phase).data(json!({"phase": phase})));
    }
    for line in 0..8 {
        events.push(NewEvent::new(
            EventType::HelmOutput,
            format!("client.go:{line}: [debug] creating upgraded release for {release}"),
        ));
    }
    for kind in ["Deployment", "Service", "ConfigMap"] {
        events.push(
            NewEvent::new(EventType::ResourceAdded, format!("{kind} {release}"))
                .data(json!({"kind": kind, "name": release})),
        );
    }
    for ready in 0..=3 {
        events.push(
            NewEvent::new(EventType::ResourceStatus, format!("{ready}/3 ready"))
                .data(json!({"ready": format!("{ready}/3"), "updated": 3, "available": ready})),
        );
    }
    for pod in 0..3 {
        for phase in ["Pending", "ContainerCreating", "Running"] {
            events.push(
                NewEvent::new(
                    EventType::PodStatus,
                    format!("{release}-7d9f-{pod}: {phase}"),
                )
                .data(json!({"pod": format!("{release}-7d9f-{pod}"), "phase": phase})),
            );
        }
        for (reason, message) in [
            ("Scheduled", "Successfully assigned to node-0"),
            (
                "Pulled",
                "Container image \"registry.example.com/web:1.4.2\" already present",
            ),
            ("Started", "Started container web"),
        ] {
            events.push(
                NewEvent::new(EventType::K8sEvent, format!("{reason}: {message}"))
                    .data(json!({"reason": reason, "type": "Normal", "count": 1})),
            );
        }
    }
    for line in 0..LOG_LINES {
        events.push(
            NewEvent::new(
                EventType::ContainerLog,
                format!(
                    "2026-12-08T09:{:02}:{:02}.123Z INFO http: GET /api/v1/orders/{line} 200 12ms user-agent=\"kube-probe/1.31\" trace=4bf92f3577b34da6a3ce929d0e0e4736",
                    line / 60 % 60,
                    line % 60
                ),
            )
            .data(json!({"pod": format!("{release}-7d9f-0"), "container": "web"})),
        );
    }
    events.push(
        NewEvent::new(EventType::Report, "Deployment/web ready 3/3").data(
            json!({"resources": [{"kind": "Deployment", "name": release, "state": "ready"}]}),
        ),
    );
    events.push(if failed {
        NewEvent::new(EventType::DeployFailed, "CrashLoopBackOff").level(Level::Error)
    } else {
        NewEvent::new(EventType::DeploySucceeded, "succeeded")
    });
    events
}

async fn create_finished_deploys(pool: &PgPool, deploys: usize) {
    let origin = Uuid::new_v4();
    let tasks = tokio_util::task::TaskTracker::new();
    let submissions = Submissions::spawn(pool.clone(), &tasks, Default::default());
    let charts = ChartSources {
        allowed: example_charts(),
        ..ChartSources::default()
    };
    for index in 0..deploys {
        let release = format!("svc-{}", index % RELEASES);
        let request: DeployRequest = serde_json::from_value(json!({
            "release": release,
            "namespace": "prod",
            "chart": {"repo": "https://charts.example.com", "name": "web", "version": "1.4.2"},
            "values": {"image": {"repository": "registry.example.com/web", "tag": format!("build-{index}")}, "replicas": 3},
            "labels": {"ci.run": format!("https://ci.example.com/runs/{index}")},
        }))
        .expect("a deploy request");
        let new = NewDeploy::parse(request, &charts).expect("a valid deploy");
        let id = Uuid::now_v7();
        let (_queued, nobody_listens) = submissions
            .create(
                origin,
                &CreateDeploy {
                    id,
                    deploy: &new,
                    requested_by: "ci",
                    idempotency: None,
                    secret_values_digest: None,
                    sealed_secret_values: None,
                },
            )
            .await
            .expect("queue a deploy");
        drop(nobody_listens);
        let failed = index % 10 == 0;
        let written = append_committed(
            pool,
            origin,
            id,
            Uuid::new_v4(),
            &mut history(&release, failed),
        )
        .await;
        drop(written.expect("write its history"));
        // Oldest first, as ids are: finished evenly over the history.
        let days_ago = HISTORY_DAYS * (1.0 - index as f64 / deploys as f64);
        sqlx::query(
            "update deploys set status = $2, finished_at = now() - make_interval(secs => $3)
             where id = $1",
        )
        .bind(id)
        .bind(if failed { "failed" } else { "succeeded" })
        .bind(days_ago * 86_400.0)
        .execute(pool)
        .await
        .expect("finish the deploy");
    }
}

/// Bytes of the database and of its event table, after VACUUM FULL (the space the rows need).
async fn sizes(pool: &PgPool) -> (i64, i64, i64) {
    sqlx::query("vacuum full analyze")
        .execute(pool)
        .await
        .expect("vacuum");
    sqlx::query_as(
        "select pg_database_size(current_database()),
                pg_total_relation_size('deploy_events'),
                (select count(*) from deploy_events)",
    )
    .fetch_one(pool)
    .await
    .expect("sizes")
}

/// MiB per 1,000 deploys.
fn per_thousand(bytes: i64, deploys: usize) -> f64 {
    bytes as f64 * 1000.0 / deploys as f64 / 1024.0 / 1024.0
}

fn mib(bytes: i64, deploys: usize) -> String {
    format!("{:.1} MiB", per_thousand(bytes, deploys))
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|arg| arg == "--test")
        || !std::env::args().any(|arg| arg == "--bench");
    let deploys = if quick { 100 } else { 1000 };
    let postgres = OwnServer::start().await;
    let url = postgres.fresh_database().await;
    let pool = PgPool::connect(&url).await.expect("connect");
    rollcall::store::migrate(&pool).await.expect("migrate");
    let empty = sizes(&pool).await.0;
    create_finished_deploys(&pool, deploys).await;
    let (before, events_before, rows_before) = sizes(&pool).await;
    let policy = RetentionPolicy::default();
    let started = std::time::Instant::now();
    let ran = run_pass(
        &pool,
        &policy,
        &RetentionMetrics::default(),
        &CancellationToken::new(),
    )
    .await
    .expect("retention pass");
    assert!(ran);
    let pass = started.elapsed();
    let (after, events_after, rows_after) = sizes(&pool).await;
    println!(
        "database size per 1,000 deploys ({deploys} deploys of {RELEASES} releases, each ~{} events with {LOG_LINES} container log lines, finished evenly over {HISTORY_DAYS} days; empty database {} not counted):",
        history("svc", false).len() + 1,
        mib(empty, 1000)
    );
    println!(
        "  before retention: {} in all, deploy_events {} ({rows_before} events)",
        mib(before - empty, deploys),
        mib(events_before, deploys)
    );
    println!(
        "  after one pass of the default policy (logs 14 d, notifications 30 d, events 90 d, keep last {}): {} in all, deploy_events {} ({rows_after} events); the pass took {:.1}s [load average {}]",
        policy.keep_last,
        mib(after - empty, deploys),
        mib(events_after, deploys),
        pass.as_secs_f64(),
        load_average()
    );
    figure(
        "retention.mib_per_1000_deploys",
        per_thousand(before - empty, deploys),
        "MiB",
    );
    figure(
        "retention.mib_per_1000_deploys_after",
        per_thousand(after - empty, deploys),
        "MiB",
    );
    pool.close().await;
    drop(postgres);
}
