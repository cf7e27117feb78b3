//! Submissions at scale: the token cache stays as strict as the database (revocations reach every
//! replica within a second, a lost LISTEN connection empties it), and the one-statement submit
//! keeps idempotency exact and loses nothing under concurrency.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rollcall::domain::chart::{ChartCatalog, ChartSources};
use rollcall::domain::deploy::{DeployRequest, NewDeploy};
use rollcall::store::StoreError;
use rollcall::store::deploys::{CreateDeploy, Inserted, QueuedRow, insert_queued_row};
use rollcall::store::idempotency::IdempotencyKey;
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

use crate::common::app::{Answer, TestApp, deploy_body, example_charts, spawn_app, spawn_app_on};
use crate::common::sse::SseStream;

/// How long `token` keeps being accepted by `app` (polled every 20 ms), up to `limit`.
async fn refused_within(app: &TestApp, token: &str, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        match app.get("/v1/deploys?limit=1", token).status_code().await {
            401 => return Some(started.elapsed()),
            200 => {}
            other => panic!("unexpected status {other}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test]
async fn a_token_revoked_on_one_replica_is_refused_by_another_within_a_second() {
    let a = spawn_app().await;
    let b = spawn_app_on(&a.database_url, |_| {}).await;
    let (id, token) = a.token(&["read"], &["*/*/*"]).await;
    // b checks it once and keeps it.
    for _ in 0..3 {
        assert_eq!(b.get("/v1/deploys", &token).status_code().await, 200);
    }
    assert_eq!(
        a.delete(&format!("/v1/tokens/{id}"), &a.admin_token)
            .status_code()
            .await,
        204
    );
    assert_eq!(
        a.get("/v1/deploys", &token).status_code().await,
        401,
        "refused at once where it was revoked"
    );
    let refused = refused_within(&b, &token, Duration::from_secs(1)).await;
    assert!(
        refused.is_some(),
        "the other replica still accepts it after a second"
    );
}

/// Revokes a token without the trigger that announces it: a notification lost in transit.
async fn revoke_unannounced(app: &TestApp, id: &str) {
    let mut tx = app.state.pool.begin().await.unwrap();
    sqlx::query("set local session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("update api_tokens set revoked_at = now() where id = $1::uuid")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// The backends listening for token changes in the app's database.
const TOKEN_LISTENERS: &str = "select pid from pg_stat_activity
     where datname = current_database() and query like 'LISTEN%rollcall_token_changes%'";

/// Whether a token listener is connected (again) within `limit`.
async fn token_listeners(app: &TestApp, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        let listening: Vec<i32> = sqlx::query_scalar(TOKEN_LISTENERS)
            .fetch_all(&app.state.pool)
            .await
            .unwrap();
        if listening.len() == 1 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn the_token_cache_is_emptied_when_its_listener_reconnects() {
    let app = spawn_app().await;
    let (id, token) = app.token(&["read"], &["*/*/*"]).await;
    assert_eq!(app.get("/v1/deploys", &token).status_code().await, 200);
    revoke_unannounced(&app, &id).await;
    // Nothing told the cache: it still answers for the token (this is what it saves a query for).
    assert_eq!(app.get("/v1/deploys", &token).status_code().await, 200);
    let cut: Vec<i32> = sqlx::query_scalar(TOKEN_LISTENERS)
        .fetch_all(&app.state.pool)
        .await
        .unwrap();
    assert_eq!(cut.len(), 1, "one token listener per replica");
    let terminated: bool = sqlx::query_scalar("select pg_terminate_backend($1)")
        .bind(cut[0])
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    assert!(terminated);
    // Whatever was announced while it was down is lost: the cache starts over once it is back.
    let refused = refused_within(&app, &token, Duration::from_secs(3)).await;
    assert!(
        refused.is_some(),
        "a token revoked while the listener was down is still accepted"
    );
    assert!(
        token_listeners(&app, Duration::from_secs(3)).await,
        "listening again"
    );
    // And it caches again: another token revoked unannounced goes on working.
    let (other_id, other) = app.token(&["read"], &["*/*/*"]).await;
    assert_eq!(app.get("/v1/deploys", &other).status_code().await, 200);
    revoke_unannounced(&app, &other_id).await;
    assert_eq!(app.get("/v1/deploys", &other).status_code().await, 200);
}

async fn table_count(app: &TestApp, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("select count(*) from {table}")))
        .fetch_one(&app.state.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn concurrent_identical_submissions_on_two_replicas_make_one_deploy() {
    let a = spawn_app().await;
    let b = spawn_app_on(&a.database_url, |_| {}).await;
    let (_, token) = a.token(&["deploy", "read"], &["*/*/*"]).await;
    let send = |app: &TestApp, body: Value| {
        app.post("/v1/deploys", &token)
            .header("idempotency-key", "pipeline-1234")
            .json(&body)
            .send()
    };
    let requests = (0..32).map(|index| {
        let app = if index % 2 == 0 { &a } else { &b };
        send(app, deploy_body("prod", "web"))
    });
    let mut ids = HashSet::new();
    let mut fresh = 0;
    for response in futures::future::join_all(requests).await {
        let response = response.unwrap();
        assert_eq!(response.status(), 202);
        if !response.headers().contains_key("idempotent-replayed") {
            fresh += 1;
        }
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["status"], "queued");
        ids.insert(answer["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "one deploy for one key");
    assert_eq!(fresh, 1, "one answer created it, the others replayed it");
    assert_eq!(table_count(&a, "deploys").await, 1);
    assert_eq!(table_count(&a, "deploy_events").await, 1);
    assert_eq!(table_count(&a, "idempotency_keys").await, 1);
    // The same key with another body is refused, nothing written.
    let other = send(&b, deploy_body("prod", "api")).await.unwrap();
    assert_eq!(other.status(), 422);
    assert_eq!(table_count(&a, "deploys").await, 1);
}

#[tokio::test]
async fn a_replay_answers_with_its_deploy_even_when_its_queue_mode_would_refuse() {
    let app = spawn_app().await;
    let mut body = deploy_body("prod", "web");
    body["queue"] = json!("reject");
    let send = || {
        app.post("/v1/deploys", &app.admin_token)
            .header("idempotency-key", "reject-once")
            .json(&body)
            .send()
    };
    let first: Value = send().await.unwrap().json().await.unwrap();
    // The release is now busy with that very deploy: a retry of the request is not a new one.
    let again = send().await.unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"]);
    assert_eq!(table_count(&app, "deploys").await, 1);
}

#[tokio::test]
async fn concurrent_submissions_lose_nothing_and_reach_every_replicas_firehose() {
    let a = spawn_app().await;
    let b = spawn_app_on(&a.database_url, |_| {}).await;
    let (_, token) = a.token(&["deploy", "read"], &["*/*/*"]).await;
    let mut firehoses = [
        SseStream::connect(a.get("/v1/events?type=deploy.queued", &token)).await,
        SseStream::connect(b.get("/v1/events?type=deploy.queued", &token)).await,
    ];
    let submissions = 120;
    let requests = (0..submissions).map(|index| {
        let app = if index % 2 == 0 { &a } else { &b };
        let mut body = deploy_body("load", &format!("svc-{}", index % 10));
        body["labels"] = json!({"n": index.to_string()});
        app.post("/v1/deploys", &token)
            .header("idempotency-key", format!("run-{index}"))
            .json(&body)
            .send()
    });
    let mut accepted = HashSet::new();
    for response in futures::future::join_all(requests).await {
        let response = response.unwrap();
        assert_eq!(response.status(), 202);
        let answer: Value = response.json().await.unwrap();
        accepted.insert(answer["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(accepted.len(), submissions);
    let stored: Vec<(String, i64, i64)> = sqlx::query_as(
        "select d.id::text, d.last_event_seq, count(e.seq)
         from deploys d left join deploy_events e on e.deploy_id = d.id and e.type = 'deploy.queued'
         group by d.id",
    )
    .fetch_all(&a.state.pool)
    .await
    .unwrap();
    let stored: HashMap<String, (i64, i64)> = stored
        .into_iter()
        .map(|(id, last, queued)| (id, (last, queued)))
        .collect();
    assert_eq!(stored.len(), submissions);
    for id in &accepted {
        assert_eq!(
            stored.get(id),
            Some(&(1, 1)),
            "deploy {id}: one queued event, seq 1"
        );
    }
    for firehose in &mut firehoses {
        let mut seen = HashSet::new();
        while seen.len() < submissions {
            let frame = firehose
                .next_frame(Duration::from_secs(10))
                .await
                .expect("the firehose stays open");
            if frame.event.as_deref() == Some("deploy.queued") {
                let event = frame.json();
                assert_eq!(event["seq"], 1);
                seen.insert(event["deploy_id"].as_str().unwrap().to_owned());
            }
        }
        assert_eq!(
            seen, accepted,
            "each replica's firehose saw every deploy queued"
        );
    }
}

#[tokio::test]
async fn a_submission_the_database_refuses_fails_alone_in_its_group() {
    // Submissions that arrive together share a statement; one row PostgreSQL refuses (here an id
    // already taken) must fail only its own submission.
    let app = spawn_app().await;
    let taken = app.submit(&deploy_body("prod", "first")).await;
    let deploys: Vec<NewDeploy> = (0..24)
        .map(|index| {
            let request: DeployRequest =
                serde_json::from_value(deploy_body("prod", &format!("web-{index}"))).unwrap();
            NewDeploy::parse(request, &app.state.charts).expect("a valid deploy")
        })
        .collect();
    let ids: Vec<Uuid> = (0..deploys.len())
        .map(|index| if index == 7 { taken } else { Uuid::now_v7() })
        .collect();
    let origin = app.state.events.origin();
    let results = futures::future::join_all(deploys.iter().zip(&ids).map(|(deploy, id)| {
        let create = CreateDeploy {
            id: *id,
            deploy,
            requested_by: "ci",
            idempotency: None,
            secret_values_digest: None,
            sealed_secret_values: None,
        };
        let row = QueuedRow::new(origin, &create).unwrap();
        app.state.submissions.queue(row)
    }))
    .await;
    for (index, result) in results.iter().enumerate() {
        match (index, result) {
            (7, Err(StoreError::Database(sqlx::Error::Database(error)))) => {
                assert_eq!(error.constraint(), Some("deploys_pkey"));
            }
            (7, other) => panic!("the taken id was not refused: {:?}", other.is_ok()),
            (_, Ok(Inserted::Queued(event))) => assert_eq!(event.event.deploy_id, ids[index]),
            (_, other) => panic!("submission {index} not queued: {:?}", other.as_ref().err()),
        }
    }
    assert_eq!(table_count(&app, "deploys").await, 24);
    assert_eq!(table_count(&app, "deploy_events").await, 24);
}

/// A deploy queued by `insert_queued_row` on `connection`, with an idempotency key.
async fn queue_keyed(connection: &mut sqlx::PgConnection, index: usize) {
    let request: DeployRequest =
        serde_json::from_value(deploy_body("prod", &format!("planned-{index}"))).unwrap();
    let charts = ChartSources {
        catalog: ChartCatalog::default(),
        allowed: example_charts(),
    };
    let deploy = NewDeploy::parse(request, &charts).expect("a valid deploy");
    let key = IdempotencyKey {
        token_id: "planner".into(),
        key: format!("key-{index}"),
        request_sha256: "0".repeat(64),
    };
    let create = CreateDeploy {
        id: Uuid::now_v7(),
        deploy: &deploy,
        requested_by: "ci",
        idempotency: Some(&key),
        secret_values_digest: None,
        sealed_secret_values: None,
    };
    let row = QueuedRow::new(Uuid::now_v7(), &create).unwrap();
    match insert_queued_row(connection, &row).await {
        Ok(Inserted::Queued(_)) => {}
        other => panic!("deploy {index} not queued: {:?}", other.err()),
    }
}

#[tokio::test]
async fn submissions_keep_reading_by_index_after_the_tables_grow() {
    // PostgreSQL may switch a prepared statement to a generic plan after five runs and keep it
    // until the table is analyzed again; made while the tables were nearly empty, that plan read
    // every earlier deploy for each submission.
    let database_url = crate::common::postgres::fresh_database().await;
    let pool = rollcall::store::connect(&database_url, 1).await.unwrap();
    rollcall::store::migrate(&pool).await.unwrap();
    let mut connection = pool.acquire().await.unwrap();
    for index in 0..10 {
        queue_keyed(&mut connection, index).await;
    }
    // Twenty thousand more deploys and keys, copies of the first (no analyze follows).
    let columns: Vec<String> = sqlx::query_scalar(
        "select column_name::text from information_schema.columns
         where table_name = 'deploys' order by ordinal_position",
    )
    .fetch_all(&mut *connection)
    .await
    .unwrap();
    let copied: Vec<String> = columns
        .iter()
        .map(|column| match column.as_str() {
            "id" => "gen_random_uuid()".to_owned(),
            "release" => "release || '-' || g".to_owned(),
            other => format!("\"{other}\""),
        })
        .collect();
    let listed: Vec<String> = columns
        .iter()
        .map(|column| format!("\"{column}\""))
        .collect();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "insert into deploys ({}) select {} from deploys, generate_series(1, 20000) g
         where release = 'planned-0'",
        listed.join(", "),
        copied.join(", ")
    )))
    .execute(&mut *connection)
    .await
    .unwrap();
    sqlx::query(
        "insert into idempotency_keys (token_id, key, request_sha256, deploy_id)
         select token_id, key || '-' || g, request_sha256, deploy_id
         from idempotency_keys, generate_series(1, 20000) g where key = 'key-0'",
    )
    .execute(&mut *connection)
    .await
    .unwrap();

    // The backend's scan counts not yet flushed to the statistics, before and after.
    let whole_reads = async |connection: &mut sqlx::PgConnection| -> Vec<(String, i64)> {
        sqlx::query_as(
            "select relname::text, seq_scan from pg_stat_xact_user_tables
             where relname in ('deploys', 'idempotency_keys') order by relname",
        )
        .fetch_all(connection)
        .await
        .unwrap()
    };
    let mut transaction = sqlx::Connection::begin(&mut *connection).await.unwrap();
    let before = whole_reads(&mut transaction).await;
    queue_keyed(&mut transaction, 10).await;
    assert_eq!(
        whole_reads(&mut transaction).await,
        before,
        "the eleventh submission read a table whole"
    );
}
