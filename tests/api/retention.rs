//! Retention: old history goes, recent history and each release's newest deploys stay, every
//! deploy keeps its verdict and report, readers step over the gaps; one replica at a time prunes.
//! Ages are made by backdating timestamps in the test database.

use std::time::Duration;

use rollcall::domain::event::{EventType, Level, NewEvent};
use rollcall::store::retention::{LOCK_KEY, RetentionPolicy, run_pass};
use rollcall::telemetry::RetentionMetrics;
use serde_json::{Value, json};
use sqlx::Connection as _;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::common::app::{Answer, TestApp, deploy_body, spawn_app_with};
use crate::common::sse::SseStream;

/// The policy under test: the defaults but for two kept deploys per release.
fn policy() -> RetentionPolicy {
    RetentionPolicy {
        keep_last: 2,
        batch: 3,
        ..RetentionPolicy::default()
    }
}

async fn app_without_background_pruning() -> TestApp {
    spawn_app_with(|config| config.retention.enabled = false).await
}

/// A deploy of `release` that failed `days_ago` with a history as the runner writes it: seq 1
/// queued, 2 phase, 3 helm.output, 4 resource.status, 5..=9 container.log, 10 report, 11
/// deploy.failed; a delivered notification with its attempt for its failure.
async fn failed_deploy(app: &TestApp, release: &str, days_ago: u32) -> Uuid {
    let mut body = deploy_body("prod", release);
    body["values"] = json!({"image": {"tag": "1.2.3"}});
    let id = app.submit(&body).await;
    let mut events = vec![
        NewEvent::new(EventType::Phase, "upgrading"),
        NewEvent::new(EventType::HelmOutput, "Release \"web\" has been upgraded."),
        NewEvent::new(EventType::ResourceStatus, "0/3 ready"),
    ];
    for line in 0..5 {
        events.push(NewEvent::new(
            EventType::ContainerLog,
            format!("FATAL config: DATABASE_HOST is not set ({line})"),
        ));
    }
    events.push(NewEvent::new(EventType::Report, "Deployment/web failed").level(Level::Error));
    events.push(NewEvent::new(EventType::DeployFailed, "CrashLoopBackOff").level(Level::Error));
    let committed = app
        .state
        .events
        .append(id, Uuid::new_v4(), &mut events)
        .await
        .unwrap();
    app.state.events.publish(committed);
    sqlx::query(
        "update deploys set status = 'failed',
                verdict = '{\"reason\": \"CrashLoopBackOff\", \"message\": \"crashed\"}',
                finished_at = now() - make_interval(days => $2)
         where id = $1",
    )
    .bind(id)
    .bind(days_ago as i32)
    .execute(&app.state.pool)
    .await
    .unwrap();
    let notification: Uuid = sqlx::query_scalar(
        "insert into notifications (deploy_id, event_seq, event_type, url, format, state,
                                    attempts, finished_at)
         values ($1, 11, 'deploy.failed', 'https://chat.example.com/hook', 'json', 'delivered', 1,
                 now() - make_interval(days => $2))
         returning id",
    )
    .bind(id)
    .bind(days_ago as i32)
    .fetch_one(&app.state.pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into notification_attempts (notification_id, attempt, at, status_code, latency_ms)
         values ($1, 1, now(), 200, 12.5)",
    )
    .bind(notification)
    .execute(&app.state.pool)
    .await
    .unwrap();
    id
}

async fn stored_types(app: &TestApp, id: Uuid) -> Vec<(i64, String)> {
    sqlx::query_as("select seq, type from deploy_events where deploy_id = $1 order by seq")
        .bind(id)
        .fetch_all(&app.state.pool)
        .await
        .unwrap()
}

async fn count(app: &TestApp, query: &str, id: Uuid) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(query.to_owned()))
        .bind(id)
        .fetch_one(&app.state.pool)
        .await
        .unwrap()
}

async fn notifications_of(app: &TestApp, id: Uuid) -> (i64, i64) {
    (
        count(
            app,
            "select count(*) from notifications where deploy_id = $1",
            id,
        )
        .await,
        count(
            app,
            "select count(*) from notification_attempts a join notifications n
             on n.id = a.notification_id where n.deploy_id = $1",
            id,
        )
        .await,
    )
}

fn full_history() -> Vec<(i64, String)> {
    [
        "deploy.queued",
        "phase",
        "helm.output",
        "resource.status",
        "container.log",
        "container.log",
        "container.log",
        "container.log",
        "container.log",
        "report",
        "deploy.failed",
    ]
    .iter()
    .enumerate()
    .map(|(index, kind)| (index as i64 + 1, (*kind).to_owned()))
    .collect()
}

async fn prune(app: &TestApp, metrics: &RetentionMetrics) {
    let ran = run_pass(
        &app.state.pool,
        &policy(),
        metrics,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(ran, "nobody else holds the retention lock");
}

#[tokio::test]
async fn old_history_goes_recent_history_and_the_newest_deploys_stay() {
    let app = app_without_background_pruning().await;
    let ancient = failed_deploy(&app, "web", 120).await;
    let month_old = failed_deploy(&app, "web", 40).await;
    let fortnight_old = failed_deploy(&app, "web", 20).await;
    let recent = failed_deploy(&app, "web", 1).await;
    // The release's two newest deploys, however old: kept whole.
    let newest = [
        failed_deploy(&app, "web", 200).await,
        failed_deploy(&app, "web", 200).await,
    ];
    // Another release's only deploy: its newest.
    let alone = failed_deploy(&app, "api", 200).await;
    let metrics = RetentionMetrics::default();
    prune(&app, &metrics).await;

    let kept_for_good = vec![(10, "report".to_owned()), (11, "deploy.failed".to_owned())];
    assert_eq!(stored_types(&app, ancient).await, kept_for_good);
    assert_eq!(notifications_of(&app, ancient).await, (0, 0));
    let without_logs: Vec<(i64, String)> = full_history()
        .into_iter()
        .filter(|(_, kind)| kind != "container.log" && kind != "helm.output")
        .collect();
    assert_eq!(stored_types(&app, month_old).await, without_logs);
    assert_eq!(notifications_of(&app, month_old).await, (0, 0));
    assert_eq!(stored_types(&app, fortnight_old).await, without_logs);
    assert_eq!(notifications_of(&app, fortnight_old).await, (1, 1));
    for whole in [recent, newest[0], newest[1], alone] {
        assert_eq!(stored_types(&app, whole).await, full_history());
        assert_eq!(notifications_of(&app, whole).await, (1, 1));
    }
    // Every deploy keeps its verdict and request.
    for id in [ancient, month_old, fortnight_old] {
        let deploy = app.deploy(id).await;
        assert_eq!(deploy["verdict"]["reason"], "CrashLoopBackOff");
        assert_eq!(deploy["values"]["image"]["tag"], "1.2.3");
        assert_eq!(deploy["last_event_seq"], 11);
    }

    // A second pass finds nothing more to prune.
    prune(&app, &metrics).await;
    assert_eq!(stored_types(&app, ancient).await, kept_for_good);
    assert_eq!(stored_types(&app, fortnight_old).await, without_logs);
    assert_eq!(stored_types(&app, recent).await, full_history());
}

#[tokio::test]
async fn readers_step_over_pruned_events() {
    let app = app_without_background_pruning().await;
    let ancient = failed_deploy(&app, "web", 120).await;
    for _ in 0..2 {
        failed_deploy(&app, "web", 1).await;
    }
    prune(&app, &RetentionMetrics::default()).await;
    let events = format!("/v1/deploys/{ancient}/events");
    // A page from the start, or from inside the gap, holds what is left.
    for after in [0, 4] {
        let page = app
            .get(&format!("{events}?after={after}"), &app.admin_token)
            .header("accept", "application/json")
            .json_body()
            .await;
        let seqs: Vec<i64> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|event| event["seq"].as_i64().unwrap())
            .collect();
        assert_eq!(seqs, [10, 11], "after {after}");
    }
    // A stream resumed from a pruned seq continues with the next kept event and ends as always.
    let mut stream = SseStream::connect(
        app.get(&events, &app.admin_token)
            .header("last-event-id", "3"),
    )
    .await;
    let mut seen = Vec::new();
    while let Some(frame) = stream.next_frame(Duration::from_secs(5)).await {
        seen.push((frame.id.clone(), frame.event.clone().unwrap_or_default()));
    }
    assert_eq!(
        seen,
        [
            (Some("10".to_owned()), "report".to_owned()),
            (Some("11".to_owned()), "deploy.failed".to_owned()),
            (None, "end".to_owned()),
        ]
    );
}

#[tokio::test]
async fn old_hook_deliveries_and_idempotency_keys_go() {
    let app = app_without_background_pruning().await;
    for (delivery, days_ago) in [("old", 45), ("recent", 2)] {
        sqlx::query(
            "insert into webhook_deliveries (id, hook, delivery_id, event, outcome,
                                             received_at, last_received_at)
             values (gen_random_uuid(), 'shop-push', $1, 'push', 'ignored',
                     now() - make_interval(days => $2), now() - make_interval(days => $2))",
        )
        .bind(delivery)
        .bind(days_ago)
        .execute(&app.state.pool)
        .await
        .unwrap();
    }
    for key in ["old-run", "recent-run"] {
        let response = app
            .post("/v1/deploys", &app.admin_token)
            .header("idempotency-key", key)
            .json(&deploy_body("prod", key))
            .status_code()
            .await;
        assert_eq!(response, 202);
    }
    sqlx::query(
        "update idempotency_keys set created_at = now() - interval '45 days' where key = 'old-run'",
    )
    .execute(&app.state.pool)
    .await
    .unwrap();
    prune(&app, &RetentionMetrics::default()).await;
    let deliveries: Vec<String> =
        sqlx::query_scalar("select delivery_id from webhook_deliveries order by delivery_id")
            .fetch_all(&app.state.pool)
            .await
            .unwrap();
    assert_eq!(deliveries, ["recent"]);
    let keys: Vec<String> = sqlx::query_scalar("select key from idempotency_keys")
        .fetch_all(&app.state.pool)
        .await
        .unwrap();
    assert_eq!(keys, ["recent-run"]);
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn one_replica_at_a_time_prunes_in_the_background_and_counts_it() {
    let app = spawn_app_with(|config| {
        config.retention.interval = Duration::from_millis(100);
        config.retention.keep_last = 0;
    })
    .await;
    // Another replica's pass (taken once the app's own pass, every 100 ms, lets go): while it
    // holds the lock, nobody else prunes.
    let mut holder = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    sqlx::query("select pg_advisory_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut holder)
        .await
        .unwrap();
    let old = failed_deploy(&app, "web", 20).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let passes_while_held = metric(&app.metrics().await, "rollcall_retention_passes_total");
    assert_eq!(stored_types(&app, old).await, full_history());
    holder.close().await.unwrap();
    // Generous: a loaded machine delays the passes, not what they do.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = app.metrics().await;
        // A pass counts what it deletes as it goes, and itself once it is over.
        let deleted = metric(
            &text,
            "rollcall_retention_deleted_total{kind=\"log_events\"}",
        );
        if deleted == Some(6.0)
            && metric(&text, "rollcall_retention_passes_total") > passes_while_held
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no pruning reported:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        count(
            &app,
            "select count(*) from deploy_events where deploy_id = $1 and type in ('container.log', 'helm.output')",
            old
        )
        .await,
        0
    );
    let _: Value = app.deploy(old).await;
}
