//! Outgoing notifications through the API, without a cluster: a queued deploy that is cancelled
//! ends with `deploy.cancelled`, a terminal event, so every notification path can be driven by
//! submitting and cancelling. Receivers are HTTP servers on 127.0.0.1, hence the allow-list.

use std::collections::BTreeMap;
use std::time::Duration;

use rollcall::domain::event::{EventType, NewEvent};
use rollcall::domain::notify::{
    ConfiguredSubscription, DestinationPolicy, NotifyFormat, Subscription,
};
use rollcall::store::deploys;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::app::{Answer, TestApp, deploy_body, spawn_app_on, spawn_app_with};
use crate::common::receiver::{
    PORTAL_SECRET, Receiver, Reply, SECRET, notifications_of, notifying, settled_notifications,
};
use crate::create::error_fields;

const WAIT: Duration = Duration::from_secs(20);

fn with_notify(namespace: &str, release: &str, notify: Value) -> Value {
    let mut body = deploy_body(namespace, release);
    body["notify"] = notify;
    body
}

async fn cancel(app: &TestApp, id: Uuid) {
    let status = app
        .post(&format!("/v1/deploys/{id}/cancel"), &app.admin_token)
        .json(&json!({"reason": "not today"}))
        .status_code()
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_receiver_failing_three_times_gets_one_success_under_one_webhook_id() {
    let app = spawn_app_with(notifying).await;
    let receiver = Receiver::start().await;
    receiver.reply([
        Reply::Status(500),
        Reply::With(429, vec![("retry-after", "1".into())]),
        Reply::Status(503),
    ]);
    let id = app
        .submit(&with_notify("prod", "web", json!([{"url": receiver.url}])))
        .await;
    cancel(&app, id).await;

    let received = receiver.wait_for(4, WAIT).await;
    let ids: Vec<&str> = received.iter().map(|r| r.webhook_id()).collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one webhook-id: {ids:?}"
    );
    for request in &received {
        request.verify(SECRET).expect("each attempt is signed");
        assert_eq!(request.body, received[0].body, "the same message each time");
    }
    // The 429's Retry-After (1 s) and the back-off put seconds between the first and the last
    // attempt: each carries its own timestamp and signature.
    assert!(received[3].timestamp() > received[0].timestamp());
    assert_ne!(
        received[3].header("webhook-signature"),
        received[0].header("webhook-signature")
    );
    assert!(received[2].at - received[1].at >= Duration::from_millis(950));
    let body = received[0].json();
    assert_eq!(body["type"], "deploy.cancelled");
    assert_eq!(body["data"]["deploy"]["id"], id.to_string());
    assert_eq!(
        body["data"]["links"]["deploy"],
        format!("https://rollcall.example.com/v1/deploys/{id}")
    );

    let items = settled_notifications(&app, id).await;
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(item["id"], ids[0]);
    assert_eq!(item["state"], "delivered");
    assert_eq!(item["event_type"], "deploy.cancelled");
    let statuses: Vec<&Value> = item["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|attempt| &attempt["status_code"])
        .collect();
    assert_eq!(statuses, [500, 429, 503, 200]);
    assert!(item["attempts"][0]["latency_ms"].as_f64().unwrap() > 0.0);
    // A fifth request never comes.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.received().len(), 4);
    let metrics = app.metrics().await;
    assert!(metrics.contains("rollcall_notifications_total{result=\"delivered\"} 1\n"));
    assert!(metrics.contains("rollcall_notifications_total{result=\"retry\"} 3\n"));
    assert!(metrics.contains("rollcall_notification_delivery_seconds_count 1\n"));
    assert!(metrics.contains("rollcall_notification_outbox{state=\"pending\"} 0\n"));
}

#[tokio::test]
async fn final_answers_end_a_notification_and_redirects_are_not_followed() {
    let app = spawn_app_with(notifying).await;
    let rejecting = Receiver::start().await;
    rejecting.reply([Reply::Status(404)]);
    let target = Receiver::start().await;
    let redirecting = Receiver::start().await;
    redirecting.reply([Reply::With(307, vec![("location", target.url.clone())])]);
    let id = app
        .submit(&with_notify(
            "prod",
            "web",
            json!([{"url": rejecting.url}, {"url": redirecting.url}]),
        ))
        .await;
    cancel(&app, id).await;
    let items = settled_notifications(&app, id).await;
    let outcomes: BTreeMap<u64, (&str, &str)> = items
        .iter()
        .map(|item| {
            let port = item["destination"]
                .as_str()
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap();
            (
                port.parse().unwrap(),
                (
                    item["state"].as_str().unwrap(),
                    item["outcome"].as_str().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(
        outcomes[&u64::from(rejecting.port)],
        ("failed", "the receiver answered 404")
    );
    assert_eq!(
        outcomes[&u64::from(redirecting.port)],
        (
            "failed",
            "the receiver answered 307: redirects are not followed"
        )
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        rejecting.received().len(),
        1,
        "a final answer is not retried"
    );
    assert!(
        target.received().is_empty(),
        "the redirect was not followed"
    );
}

#[tokio::test]
async fn private_destinations_are_refused_without_the_allow_list() {
    let app = spawn_app_with(|config| {
        notifying(config);
        config.notify.destinations = DestinationPolicy::default();
    })
    .await;
    let receiver = Receiver::start().await;
    for (url, range) in [
        (receiver.url.clone(), "loopback"),
        (
            "http://169.254.169.254/latest/meta-data".to_owned(),
            "link-local",
        ),
        ("http://10.1.2.3/hook".to_owned(), "private"),
        ("http://[fd12::1]/hook".to_owned(), "unique-local"),
    ] {
        let problem = app
            .post("/v1/deploys", &app.admin_token)
            .json(&with_notify("prod", "web", json!([{"url": url}])))
            .json_body()
            .await;
        assert_eq!(problem["status"], 422, "{url}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "notify[0].url");
        let message = problem["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(range), "{url}: {message}");
        assert!(message.contains("--notify-allow-networks"), "{message}");
    }
    let problem = app
        .post("/v1/subscriptions", &app.admin_token)
        .json(&json!({"name": "internal", "url": "http://192.168.1.20/hook"}))
        .json_body()
        .await;
    assert_eq!(problem["status"], 422);
    assert_eq!(problem["errors"][0]["field"], "url");
    let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
    let written: i64 = sqlx::query_scalar(
        "select (select count(*) from deploys) + (select count(*) from notification_subscriptions)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(written, 0, "nothing is written on a 4xx");

    // A name is resolved when sending, and refused then: nothing reaches the receiver.
    let by_name = format!("http://localhost:{}/hook", receiver.port);
    let id = app
        .submit(&with_notify("prod", "web", json!([{"url": by_name}])))
        .await;
    cancel(&app, id).await;
    let items = settled_notifications(&app, id).await;
    assert_eq!(items[0]["state"], "failed");
    let outcome = items[0]["outcome"].as_str().unwrap();
    assert!(
        outcome.starts_with("destination refused: localhost:") && outcome.contains("loopback"),
        "{outcome}"
    );
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn two_replicas_deliver_each_notification_once() {
    let a = spawn_app_with(notifying).await;
    let b = spawn_app_on(&a.database_url, notifying).await;
    let receiver = Receiver::start().await;
    let deploys = 30;
    let notify = json!([{"url": receiver.url, "events": ["deploy.queued", "deploy.cancelled"]}]);
    let mut ids = Vec::new();
    for index in 0..deploys {
        let app = if index % 2 == 0 { &a } else { &b };
        let id = app
            .submit(&with_notify(
                "prod",
                &format!("web-{index}"),
                notify.clone(),
            ))
            .await;
        ids.push(id);
    }
    for (index, id) in ids.iter().enumerate() {
        cancel(if index % 2 == 0 { &b } else { &a }, *id).await;
    }
    let expected = 2 * deploys;
    receiver.wait_for(expected, WAIT).await;
    // Time for a duplicate to show up, if one were coming.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let received = receiver.received();
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    for request in &received {
        request.verify(SECRET).expect("signed");
        *by_id.entry(request.webhook_id().to_owned()).or_default() += 1;
    }
    assert_eq!(by_id.len(), expected);
    assert!(
        by_id.values().all(|count| *count == 1),
        "each webhook-id once: {by_id:?}"
    );
}

#[tokio::test]
async fn the_slack_format_says_it_all_in_text_and_blocks() {
    let app = spawn_app_with(notifying).await;
    let receiver = Receiver::start().await;
    let id = app
        .submit(&with_notify(
            "prod",
            "web",
            json!([{"url": receiver.url, "format": "slack", "secret": "portal"}]),
        ))
        .await;
    cancel(&app, id).await;
    let received = receiver.wait_for(1, WAIT).await;
    received[0]
        .verify(PORTAL_SECRET)
        .expect("signed with the named secret");
    assert!(received[0].verify(SECRET).is_err());
    let body = received[0].json();
    let text = body["text"].as_str().unwrap();
    for expected in [
        ":no_entry_sign: *web* cancelled in *prod*",
        "chart web 1.0.0, requested by bootstrap-admin",
        "cancelled by bootstrap-admin: not today",
        &format!("<https://rollcall.example.com/ui/deploys/{id}|Deploy {id}>"),
    ] {
        assert!(text.contains(expected), "{expected:?} in {text:?}");
    }
    let blocks = body["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["text"], "web cancelled in prod");
    let fields: Vec<&str> = blocks[1]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|field| field["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "*Release*\nweb",
            "*Namespace*\nprod",
            "*Chart*\nweb 1.0.0",
            "*Requested by*\nbootstrap-admin",
            "*State*\n:no_entry_sign: cancelled"
        ]
    );
    let button = blocks
        .iter()
        .find(|block| block["type"] == "actions")
        .expect("a link button");
    assert_eq!(
        button["elements"][0]["url"],
        format!("https://rollcall.example.com/ui/deploys/{id}")
    );
}

#[tokio::test]
async fn notifications_commit_with_their_events_or_not_at_all() {
    let app = spawn_app_with(notifying).await;
    let receiver = Receiver::start().await;
    let id = app
        .submit(&with_notify(
            "prod",
            "web",
            json!([{"url": receiver.url, "events": ["deploy.cancelled", "resource.failed"]}]),
        ))
        .await;
    let pool = &app.state.pool;
    let outbox = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from notifications where deploy_id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap()
    };
    // A transaction that writes the terminal event, then rolls back.
    let mut tx = app.state.events.begin().await.unwrap();
    deploys::cancel(&mut tx, id, "test", "rolled back")
        .await
        .unwrap();
    drop(tx);
    assert_eq!(outbox().await, 0);
    // A self-committing event batch (the runner's path) with one matching event of three.
    let committed = app
        .state
        .events
        .append(
            id,
            Uuid::new_v4(),
            &mut vec![
                NewEvent::new(EventType::ResourceStatus, "progressing"),
                NewEvent::new(EventType::ResourceFailed, "Deployment prod/web failed"),
                NewEvent::new(EventType::ResourceReady, "ready"),
            ],
        )
        .await
        .unwrap();
    app.state.events.publish(committed);
    assert_eq!(outbox().await, 1);
    // A batch that fails as a whole (its deploy does not exist) writes no notification.
    let missing = Uuid::now_v7();
    assert!(
        app.state
            .events
            .append(
                missing,
                Uuid::new_v4(),
                &mut vec![NewEvent::new(EventType::ResourceFailed, "x")]
            )
            .await
            .is_err()
    );
    cancel(&app, id).await;
    assert_eq!(outbox().await, 2);
    let received = receiver.wait_for(2, WAIT).await;
    let mut types: Vec<String> = received
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    types.sort();
    assert_eq!(types, ["deploy.cancelled", "resource.failed"]);
    let seqs: Vec<i64> = received
        .iter()
        .map(|r| r.json()["data"]["event"]["seq"].as_i64().unwrap())
        .collect();
    assert!(seqs.contains(&3) && seqs.contains(&5), "{seqs:?}");
}

#[tokio::test]
async fn notify_urls_are_shown_only_as_their_origin() {
    let app = spawn_app_with(notifying).await;
    let receiver = Receiver::start().await;
    let secret_url = format!("{}/services/T000/B000/XXXXSECRETXXXX", receiver.url);
    let id = app
        .submit(&with_notify("prod", "web", json!([{"url": secret_url}])))
        .await;
    cancel(&app, id).await;
    settled_notifications(&app, id).await;
    let origin = format!("http://127.0.0.1:{}", receiver.port);
    let deploy = app.deploy(id).await;
    assert_eq!(deploy["notify"][0]["url"], origin);
    assert_eq!(deploy["notify"][0]["format"], "json");
    let listed = app
        .get("/v1/deploys?release=web", &app.admin_token)
        .json_body()
        .await;
    let notifications = notifications_of(&app, id).await;
    assert_eq!(notifications[0]["destination"], origin);
    for answer in [deploy, listed, json!(notifications)] {
        assert!(!answer.to_string().contains("XXXXSECRETXXXX"), "{answer}");
    }
}

#[tokio::test]
async fn a_notify_entry_needs_a_secret_the_server_knows() {
    let app = spawn_app_with(|config| {
        notifying(config);
        config.notify.default_secret = None;
    })
    .await;
    let problem = app
        .post("/v1/deploys", &app.admin_token)
        .json(&with_notify(
            "prod",
            "web",
            json!([
                {"url": "https://portal.example/hook"},
                {"url": "https://chat.example/hook", "secret": "chat"},
                {"url": "https://x.example/hook", "secret": "portal", "format": "teams"}
            ]),
        ))
        .json_body()
        .await;
    assert_eq!(problem["status"], 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "notify[2].format");
    let problem = app
        .post("/v1/deploys", &app.admin_token)
        .json(&with_notify(
            "prod",
            "web",
            json!([
                {"url": "https://portal.example/hook"},
                {"url": "https://chat.example/hook", "secret": "chat"},
                {"url": "https://x.example/hook", "secret": "portal"}
            ]),
        ))
        .json_body()
        .await;
    assert_eq!(problem["status"], 422);
    assert_eq!(
        error_fields(&problem),
        ["notify[0].secret", "notify[1].secret"]
    );
}

#[tokio::test]
async fn global_subscriptions_get_the_events_of_their_releases() {
    let receiver = Receiver::start().await;
    let chat = Receiver::start().await;
    let configured = Subscription::parse(
        "chat".into(),
        &chat.url,
        Some(vec!["deploy.*".into()]),
        NotifyFormat::Slack,
        Some(vec!["*/staging/*".into()]),
        &DestinationPolicy::new(DestinationPolicy::parse_networks("127.0.0.0/8").unwrap()),
    )
    .unwrap();
    let app = spawn_app_with(|config| {
        notifying(config);
        config.notify.subscriptions = vec![ConfiguredSubscription {
            subscription: configured,
            secret_name: Some("portal".into()),
        }];
    })
    .await;
    let created = app
        .post("/v1/subscriptions", &app.admin_token)
        .json(&json!({
            "name": "portal",
            "url": receiver.url,
            "events": ["deploy.queued"],
            "targets": ["*/prod/web-*"]
        }))
        .json_body()
        .await;
    let secret = created["secret"]
        .as_str()
        .expect("a generated secret, once");
    assert!(secret.starts_with("whsec_"));
    let matching = app.submit(&deploy_body("prod", "web-eu")).await;
    app.submit(&deploy_body("prod", "api")).await;
    let staged = app.submit(&deploy_body("staging", "web-eu")).await;
    cancel(&app, staged).await;

    let received = receiver.wait_for(1, WAIT).await;
    received[0]
        .verify(secret)
        .expect("signed with its own secret");
    assert_eq!(
        received[0].json()["data"]["deploy"]["id"],
        matching.to_string()
    );
    let chat_received = chat.wait_for(2, WAIT).await;
    // Deliveries run side by side: they may arrive in any order (sorted: ":hourglass…" first).
    let mut texts: Vec<String> = chat_received
        .iter()
        .map(|request| {
            request
                .verify(PORTAL_SECRET)
                .expect("signed with the configured secret");
            request.json()["text"].as_str().unwrap().to_owned()
        })
        .collect();
    texts.sort();
    assert!(texts[0].contains("queued in *staging*"), "{texts:?}");
    assert!(texts[1].contains("cancelled in *staging*"), "{texts:?}");
    let items = settled_notifications(&app, matching).await;
    assert_eq!(items[0]["subscription_id"], created["id"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.received().len(),
        1,
        "only prod/web-* and deploy.queued"
    );
}

#[tokio::test]
async fn a_410_disables_the_subscription() {
    let app = spawn_app_with(notifying).await;
    let receiver = Receiver::start().await;
    receiver.reply([Reply::Status(410)]);
    let created = app
        .post("/v1/subscriptions", &app.admin_token)
        .json(&json!({"name": "gone", "url": receiver.url, "events": ["deploy.queued"], "secret": SECRET}))
        .json_body()
        .await;
    assert!(
        created.get("secret").is_none(),
        "a given secret is not echoed"
    );
    let id = created["id"].as_str().unwrap().to_owned();
    let first = app.submit(&deploy_body("prod", "web")).await;
    let items = settled_notifications(&app, first).await;
    assert_eq!(items[0]["state"], "failed");
    let subscription = app
        .get(&format!("/v1/subscriptions/{id}"), &app.admin_token)
        .json_body()
        .await;
    assert_eq!(subscription["enabled"], false);
    assert_eq!(
        subscription["disabled_reason"],
        "the receiver answered 410 Gone"
    );
    let second = app.submit(&deploy_body("prod", "api")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(notifications_of(&app, second).await.is_empty());
    assert_eq!(receiver.received().len(), 1);

    let enabled = app
        .client
        .patch(app.url(&format!("/v1/subscriptions/{id}")))
        .bearer_auth(&app.admin_token)
        .json(&json!({"enabled": true}))
        .json_body()
        .await;
    assert_eq!(enabled["enabled"], true);
    assert!(enabled.get("disabled_reason").is_none());
    let third = app.submit(&deploy_body("prod", "db")).await;
    let items = settled_notifications(&app, third).await;
    assert_eq!(items[0]["state"], "delivered");
}

#[tokio::test]
async fn every_410_of_a_subscription_recorded_at_once_ends_failed() {
    let app = spawn_app_with(notifying).await;
    let receiver = Receiver::start().await;
    // Answered after a pause: every deploy is queued (and notifies) before the first 410
    // disables the subscription, and the answers overlap. The last is answered a second later:
    // it is on the wire, still pending, all that time after the subscription was disabled.
    receiver.reply(
        (0..7)
            .map(|_| Reply::After(Duration::from_millis(300), 410))
            .chain([Reply::After(Duration::from_millis(1300), 410)]),
    );
    app.post("/v1/subscriptions", &app.admin_token)
        .json(&json!({"name": "gone", "url": receiver.url, "events": ["deploy.queued"], "secret": SECRET}))
        .json_body()
        .await;
    // Submitted at once, so that deliveries and their 410s overlap.
    let bodies: Vec<Value> = (0..8)
        .map(|index| deploy_body("prod", &format!("web-{index}")))
        .collect();
    let ids = futures::future::join_all(bodies.iter().map(|body| app.submit(body))).await;
    let mut states = BTreeMap::new();
    let mut items = Vec::new();
    for id in ids {
        for item in settled_notifications(&app, id).await {
            *states
                .entry(item["state"].as_str().unwrap().to_owned())
                .or_insert(0) += 1;
            items.push(item);
        }
    }
    // A notification the receiver answered is failed, even when a sibling's 410 disabled the
    // subscription while it was on the wire; only those never sent are cancelled.
    assert_eq!(
        states.get("failed").copied().unwrap_or(0),
        receiver.received().len(),
        "{states:?}: {items:#?}"
    );
    assert_eq!(states.values().sum::<usize>(), 8, "{states:?}");
}

#[tokio::test]
async fn subscriptions_are_administered_by_global_admins_with_sealed_secrets() {
    let app = spawn_app_with(notifying).await;
    let url = "https://portal.example/hooks/KEY-IN-PATH";
    let created = app
        .post("/v1/subscriptions", &app.admin_token)
        .json(&json!({"name": "portal", "url": url, "format": "slack", "targets": ["*/prod/*"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert_eq!(created["url"], "https://portal.example");
    assert_eq!(created["managed_by"], "api");
    assert_eq!(
        created["events"],
        json!(["deploy.succeeded", "deploy.failed", "deploy.cancelled"])
    );
    let stored: (String, String) = sqlx::query_as(
        "select url, secret_sealed from notification_subscriptions where id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&app.state.pool)
    .await
    .unwrap();
    assert_eq!(stored.0, url, "the URL is stored to be used");
    assert!(
        !stored.1.contains(&secret[6..]),
        "the secret is sealed at rest"
    );

    let listed = app
        .get("/v1/subscriptions", &app.admin_token)
        .json_body()
        .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert!(!listed.to_string().contains("KEY-IN-PATH") && !listed.to_string().contains(&secret));

    let patch = |body: Value| {
        app.client
            .patch(app.url(&format!("/v1/subscriptions/{id}")))
            .bearer_auth(&app.admin_token)
            .json(&body)
    };
    let changed = patch(json!({"events": ["deploy.*"], "enabled": false}))
        .json_body()
        .await;
    assert_eq!(changed["events"], json!(["deploy.*"]));
    assert_eq!(changed["enabled"], false);
    assert_eq!(changed["format"], "slack", "absent fields stay");
    let invalid = patch(json!({"events": ["nope"], "targets": ["prod"], "secret": "x"}))
        .json_body()
        .await;
    assert_eq!(invalid["status"], 422);
    assert_eq!(error_fields(&invalid), ["events[0]", "targets[0]"]);
    let unknown = patch(json!({"colour": "red"})).json_body().await;
    assert_eq!(unknown["status"], 422);
    assert!(
        unknown["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("colour"),
        "{unknown}"
    );

    let (_, reader) = app.token(&["read", "deploy"], &["*/*/*"]).await;
    let (_, scoped_admin) = app.token(&["admin"], &["*/prod/*"]).await;
    for token in [&reader, &scoped_admin] {
        assert_eq!(app.get("/v1/subscriptions", token).status_code().await, 403);
        assert_eq!(
            app.delete(&format!("/v1/subscriptions/{id}"), token)
                .status_code()
                .await,
            403
        );
    }
    let path = format!("/v1/subscriptions/{id}");
    assert_eq!(app.delete(&path, &app.admin_token).status_code().await, 204);
    assert_eq!(app.get(&path, &app.admin_token).status_code().await, 404);
    assert_eq!(app.delete(&path, &app.admin_token).status_code().await, 404);
    assert_eq!(
        app.get("/v1/subscriptions/not-a-uuid", &app.admin_token)
            .status_code()
            .await,
        404
    );
}

#[tokio::test]
async fn configured_subscriptions_are_listed_and_changed_only_in_the_file() {
    let chat = Subscription::parse(
        "chat".into(),
        "https://chat.example/hooks/abc",
        None,
        NotifyFormat::Slack,
        None,
        &DestinationPolicy::default(),
    )
    .unwrap();
    let app = spawn_app_with(|config| {
        notifying(config);
        config.notify.subscriptions = vec![ConfiguredSubscription {
            subscription: chat.clone(),
            secret_name: None,
        }];
    })
    .await;
    let listed = app
        .get("/v1/subscriptions", &app.admin_token)
        .json_body()
        .await;
    let item = &listed["items"][0];
    assert_eq!(item["managed_by"], "config");
    assert_eq!(item["url"], "https://chat.example");
    let id = item["id"].as_str().unwrap();
    let problem = app
        .client
        .patch(app.url(&format!("/v1/subscriptions/{id}")))
        .bearer_auth(&app.admin_token)
        .json(&json!({"enabled": false}))
        .json_body()
        .await;
    assert_eq!(problem["status"], 409);
    assert_eq!(
        app.delete(&format!("/v1/subscriptions/{id}"), &app.admin_token)
            .status_code()
            .await,
        409
    );
    // A restart with the entry gone from the file removes it.
    let database_url = app.database_url.clone();
    app.shutdown().await;
    let restarted = spawn_app_on(&database_url, notifying).await;
    let listed = restarted
        .get("/v1/subscriptions", &restarted.admin_token)
        .json_body()
        .await;
    assert_eq!(listed["items"], json!([]));
}
