//! Notifications of real deploys (helm on kubesim) to receivers on 127.0.0.1, and a notification
//! that is due when rollcall is killed with SIGKILL.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use super::common::app::{TestApp, spawn_app_with, submit};
use super::common::charts;
use super::common::postgres::fresh_database;
use super::common::receiver::{
    PORTAL_SECRET, Receiver, Reply, SECRET, notifying, settled_notifications,
};
use super::common::serve::{ServeEnv, ServeProcess};
use super::{helm_bin, start_kubesim, wait_for_end, with_runner};

const WAIT: Duration = Duration::from_secs(30);
/// The key in a notify URL's path, which no log line may show.
const URL_KEY: &str = "XXSECRETKEYXX";
const CRASH_LOG: &str = "panic: cannot reach the database at db:5432";

async fn setup() -> (TestApp, kubesim::ClusterHandle, tempfile::TempDir) {
    let home = tempfile::tempdir().unwrap();
    let (cluster, kubeconfig) = start_kubesim(0.1, home.path()).await;
    let app = spawn_app_with(|config| {
        with_runner(config, Some(kubeconfig), home.path());
        notifying(config);
    })
    .await;
    (app, cluster, home)
}

fn web(release: &str, behavior: &str, notify: Value) -> Value {
    json!({
        "release": release,
        "namespace": "default",
        "chart": {"path": "web"},
        "values": {"behavior": behavior},
        "timeout": "60s",
        "notify": notify,
    })
}

#[tokio::test]
async fn a_deploy_on_kubesim_notifies_a_receiver_that_verifies_the_signature() {
    let (app, _cluster, _home) = setup().await;
    let receiver = Receiver::start().await;
    let id = app
        .submit(&web(
            "shop",
            "readyAfter=1s",
            json!([{"url": receiver.url, "secret": "portal"}]),
        ))
        .await;
    let deploy = wait_for_end(&app, id).await;
    assert_eq!(deploy["status"], "succeeded", "{deploy}");

    let received = receiver.wait_for(1, WAIT).await;
    received[0]
        .verify(PORTAL_SECRET)
        .expect("a Standard Webhooks signature with the named secret");
    assert!(
        received[0].verify(SECRET).is_err(),
        "not the default secret"
    );
    assert_eq!(received[0].header("content-type"), "application/json");
    let body = received[0].json();
    assert_eq!(body["type"], "deploy.succeeded");
    assert_eq!(body["data"]["event"]["seq"], deploy["last_event_seq"]);
    assert_eq!(body["data"]["deploy"]["status"], "succeeded");
    assert_eq!(body["data"]["deploy"]["revision"], 1);
    assert_eq!(body["data"]["deploy"]["release"], "shop");
    assert_eq!(
        body["data"]["links"]["events"],
        format!("https://rollcall.example.com/v1/deploys/{id}/events")
    );
    let items = settled_notifications(&app, id).await;
    assert_eq!(items.len(), 1, "the terminal event only: {items:?}");
    assert_eq!(items[0]["state"], "delivered");
    assert_eq!(items[0]["id"], received[0].webhook_id());
    assert_eq!(items[0]["attempts"][0]["status_code"], 200);
}

#[tokio::test]
async fn a_failed_deploy_notification_carries_the_verdict_reason_and_the_crash_logs() {
    let (app, _cluster, _home) = setup().await;
    let portal = Receiver::start().await;
    let chat = Receiver::start().await;
    let id = app
        .submit(&web(
            "shop",
            &format!("crashAfter=1s;exitCode=1;log={CRASH_LOG}"),
            json!([{"url": portal.url}, {"url": chat.url, "format": "slack"}]),
        ))
        .await;
    let deploy = wait_for_end(&app, id).await;
    assert_eq!(deploy["status"], "failed", "{deploy}");
    assert_eq!(deploy["verdict"]["reason"], "CrashLoopBackOff");

    let body = portal.wait_for(1, WAIT).await[0].json();
    assert_eq!(body["type"], "deploy.failed");
    assert_eq!(
        body["data"]["deploy"]["verdict"]["reason"],
        "CrashLoopBackOff"
    );
    let failure = &body["data"]["failure"];
    assert_eq!(failure["reason"], "CrashLoopBackOff");
    assert_eq!(failure["resource"]["kind"], "Deployment");
    assert_eq!(failure["container"], "web");
    let lines = failure["log_lines"].as_array().expect("log lines");
    assert!(
        lines
            .iter()
            .any(|line| line.as_str().unwrap().contains(CRASH_LOG)),
        "{failure}"
    );

    let slack = chat.wait_for(1, WAIT).await[0].json();
    let text = slack["text"].as_str().unwrap();
    for expected in [
        ":x: *shop* failed in *default*",
        "*CrashLoopBackOff*:",
        "Failing: Deployment default/web",
        "container web",
        CRASH_LOG,
    ] {
        assert!(text.contains(expected), "{expected:?} in {text}");
    }
    let blocks = slack["blocks"].to_string();
    assert!(blocks.contains(CRASH_LOG) && blocks.contains("CrashLoopBackOff"));
}

#[tokio::test]
async fn notifications_due_when_rollcall_is_killed_are_delivered_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (_cluster, kubeconfig) = start_kubesim(0.1, dir.path()).await;
    let database_url = fresh_database().await;
    let config = dir.path().join("rollcall.toml");
    // Short attempts, so that a claim lost with its process runs out within seconds.
    std::fs::write(
        &config,
        "[notify]\ntimeout = \"1s\"\nretry_delay = \"1s\"\n",
    )
    .unwrap();
    let token = format!("drill-{}", Uuid::new_v4().simple());
    let helm = helm_bin();
    let catalog = charts::catalog();
    let env = ServeEnv {
        database_url: &database_url,
        kubeconfig: &kubeconfig,
        helm: &helm,
        chart_dir: &catalog,
        admin_token: &token,
        dir: dir.path(),
    };
    let settings = [
        ("ROLLCALL_NOTIFY_SECRET", SECRET),
        ("ROLLCALL_NOTIFY_ALLOW_NETWORKS", "127.0.0.0/8"),
        ("ROLLCALL_CONFIG", config.to_str().unwrap()),
        ("ROLLCALL_LEASE", "2s"),
        // The HTTP client's own lines included: none may carry a notify URL's path.
        (
            "RUST_LOG",
            "info,rollcall=debug,reqwest=debug,hyper_util=debug,sqlx=warn",
        ),
    ];
    let mut first = ServeProcess::start(&env, "first", &settings).await;
    let receiver = Receiver::start().await;
    // The first notification is told to come back in 3 s; the second gets no answer at all.
    receiver.reply([
        Reply::With(503, vec![("retry-after", "3".into())]),
        Reply::Hang,
    ]);
    let client = reqwest::Client::new();
    // A Slack-like URL whose path is its key.
    let secret_url = format!("{}/services/T0/B0/{URL_KEY}", receiver.url);
    let notify = json!([{"url": secret_url, "events": ["deploy.queued"]}]);
    let post = |address: &str, release: &str| {
        client
            .post(format!("{address}/v1/deploys"))
            .bearer_auth(&token)
            .json(&web(release, "readyAfter=1s", notify.clone()))
    };
    submit(post(&first.address, "retried")).await;
    receiver.wait_for(1, WAIT).await;
    submit(post(&first.address, "in-flight")).await;
    receiver.wait_for(2, WAIT).await;
    let destination = format!("\"destination\":\"http://127.0.0.1:{}\"", receiver.port);
    // The answered attempt is logged once recorded; the kill must not race that line.
    tokio::time::timeout(WAIT, async {
        while !first.log().contains(&destination) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the first attempt is logged with its origin: {}",
            first.log()
        )
    });
    first.kill();

    let pool = sqlx::PgPool::connect(&database_url).await.unwrap();
    let pending: Vec<(String, i32)> =
        sqlx::query_as("select state, attempts from notifications order by created_at")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        pending,
        [("pending".to_owned(), 1), ("pending".to_owned(), 0)],
        "one retry due, one attempt lost with its process"
    );

    let second = ServeProcess::start(&env, "second", &settings).await;
    let received = receiver.wait_for(4, WAIT).await;
    let ids: Vec<&str> = received.iter().map(|r| r.webhook_id()).collect();
    assert_eq!(
        ids[2..].iter().filter(|id| **id == ids[0]).count(),
        1,
        "{ids:?}"
    );
    assert_eq!(
        ids[2..].iter().filter(|id| **id == ids[1]).count(),
        1,
        "{ids:?}"
    );
    for request in &received {
        request.verify(SECRET).expect("signed");
    }
    let settled: Vec<(String, i32)> = loop {
        let rows: Vec<(String, i32)> =
            sqlx::query_as("select state, attempts from notifications order by created_at")
                .fetch_all(&pool)
                .await
                .unwrap();
        if rows.iter().all(|(state, _)| state != "pending") {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        settled,
        [("delivered".to_owned(), 2), ("delivered".to_owned(), 1)]
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.received().len(), 4, "{}", second.log());
    assert!(
        second.log().contains(&destination),
        "attempts are logged with their destination's origin: {}",
        second.log()
    );
    for log in [first.log(), second.log()] {
        assert!(!log.contains(URL_KEY), "a notify URL was logged: {log}");
    }
}
