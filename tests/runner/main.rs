//! Runner tests: the real helm binary, a real PostgreSQL and rollcall over HTTP. `deploys`,
//! `helm_process` and `leases` cover what helm and the database decide on their own (rendering,
//! policy validation, API errors, cancellation, leases); `scenarios` and `matrix` deploy to kubesim
//! and follow each deploy's SSE stream to its verdict (the DESIGN §8 scenario matrix).

#[path = "../common/mod.rs"]
mod common;

mod deploys;
mod drills;
mod fleet_cost;
mod helm_process;
mod hooks;
mod jobs;
mod kubeconfigs;
mod leases;
mod matrix;
mod metrics;
mod namespaces;
mod notifications;
mod pinned_helm;
mod recovery;
mod rollcall_chart;
mod scenarios;
mod security;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use common::app::TestApp;
pub use common::helm::helm_bin;
use common::remote::has_ended;
pub use common::runner::{start_kubesim, with_runner};
use common::sse::SseStream;

/// Generous: only guards against a hung test.
const SAFETY_TIMEOUT: Duration = Duration::from_secs(90);

/// A kubeconfig whose only cluster is `server`, in a directory of its own.
pub fn kubeconfig(dir: &std::path::Path, server: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"{server}\"}}\n\
         contexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n\
         users:\n- name: u\n  user: {{}}\n"
    );
    std::fs::write(&path, text).expect("write kubeconfig");
    path
}

/// An address where nothing listens (connections are refused).
pub fn refusing_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    format!("http://{address}")
}

/// Polls the deploy until `done` holds for it.
pub async fn wait_for(app: &TestApp, id: Uuid, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + SAFETY_TIMEOUT;
    loop {
        let deploy = app.deploy(id).await;
        if done(&deploy) {
            return deploy;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "deploy {id} never became {what}: {deploy}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn wait_for_end(app: &TestApp, id: Uuid) -> Value {
    wait_for(app, id, "finished", has_ended).await
}

/// Every event of a deploy, in order.
pub async fn events(app: &TestApp, id: Uuid) -> Vec<Value> {
    common::app::all_events(&app.address, &app.admin_token, id).await
}

/// A deploy's events as an SSE client reads them (`GET /v1/deploys/{id}/events`, `text/event-stream`)
/// through the `end` frame, checking that frames are gapless and match their JSON; `seen` gets each
/// event as it arrives, to act on the cluster mid-deploy.
pub async fn follow_events(app: &TestApp, id: Uuid, mut seen: impl FnMut(&Value)) -> Vec<Value> {
    let mut stream =
        SseStream::connect(app.get(&format!("/v1/deploys/{id}/events"), &app.admin_token)).await;
    assert_eq!(stream.status(), 200, "SSE stream of deploy {id}");
    let deadline = tokio::time::Instant::now() + SAFETY_TIMEOUT;
    let mut events: Vec<Value> = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(frame) = stream.next_frame(left).await else {
            panic!("the SSE stream of deploy {id} closed before its `end` frame: {events:?}");
        };
        if frame.event.as_deref() == Some("end") {
            assert_eq!(
                frame.json()["last_seq"],
                events.len(),
                "`end` names the last event"
            );
            return events;
        }
        let event = frame.json();
        let seq = events.len() + 1;
        assert_eq!(event["seq"], seq, "gapless seq: {event}");
        assert_eq!(frame.id, Some(seq.to_string()), "SSE id is the seq");
        assert_eq!(
            frame.event.as_deref(),
            event["type"].as_str(),
            "SSE event name"
        );
        seen(&event);
        events.push(event);
    }
}

/// The event types, with `phase` events as `phase:<name>`.
pub fn event_sequence(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|event| match event["type"].as_str().expect("type") {
            "phase" => format!("phase:{}", event["data"]["phase"].as_str().expect("phase")),
            kind => kind.to_owned(),
        })
        .collect()
}

/// Writes a deploy of `body` in `tx` as the API would have accepted it (a catalog of the test
/// charts), for tests that then leave it as a dead process would have.
pub async fn insert_deploy(tx: &mut rollcall::store::deploy_events::EventTx, body: Value) -> Uuid {
    let request = serde_json::from_value(body).expect("a deploy request");
    let charts = rollcall::domain::chart::ChartSources {
        catalog: rollcall::domain::chart::ChartCatalog::new(Some(common::charts::catalog())),
        ..Default::default()
    };
    let new = rollcall::domain::deploy::NewDeploy::parse(request, &charts).expect("a valid deploy");
    let id = Uuid::now_v7();
    rollcall::store::deploys::create(
        tx,
        &rollcall::store::deploys::CreateDeploy {
            id,
            deploy: &new,
            requested_by: "test",
            idempotency: None,
            secret_values_digest: None,
            sealed_secret_values: None,
        },
    )
    .await
    .expect("deploy inserted");
    id
}
