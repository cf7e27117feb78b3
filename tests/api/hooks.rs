//! Inbound webhooks: verification before anything is written, filters that say why, deliveries
//! that deploy exactly once per delivery id (across restarts and replicas), the admin API, and
//! hooks of the configuration file.

use rollcall::config::{Config, FileConfig};
use rollcall::domain::chart::ChartSources;
use rollcall::domain::sealing::ServerKey;
use serde_json::{Value, json};

use crate::common::app::{
    Answer, TestApp, example_charts, spawn_app, spawn_app_on, spawn_app_with,
};
use crate::common::charts;
use crate::common::hooks::{
    GITHUB_SECRET, GITLAB_TOKEN, PUSHED_COMMIT, SERVER_KEY, STANDARD_SECRET, fixture,
    github_branch_deletion, github_delivery, github_push, github_signature, github_unsigned,
    gitlab_delivery, metric, standard_delivery, unix_now,
};

fn with_server_key(config: &mut Config) {
    config.secret_key = Some(ServerKey::parse(SERVER_KEY).expect("a valid key"));
}

async fn app_with_key() -> TestApp {
    spawn_app_with(with_server_key).await
}

/// A GitHub hook deploying `prod/web` from pushes to main, the commit as the image tag.
fn web_push_hook() -> Value {
    json!({
        "name": "web-push",
        "provider": "github",
        "secret": GITHUB_SECRET,
        "target": {
            "namespace": "prod",
            "release": "web",
            "chart": {"repo": "https://charts.example.com", "name": "web", "version": "1.0.0"},
            "values": {"replicas": 2},
        },
        "values_from": {"/after": "image.tag"},
        "events": ["push"],
        "refs": ["refs/heads/main"],
    })
}

async fn create_hook(app: &TestApp, hook: &Value) -> Value {
    let response = app
        .post("/v1/hooks", &app.admin_token)
        .json(hook)
        .send()
        .await
        .expect("POST /v1/hooks");
    let status = response.status();
    let body: Value = response.json().await.expect("JSON answer");
    assert_eq!(status, 201, "hook not created: {body}");
    body
}

async fn count(app: &TestApp, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("select count(*) from {table}")))
        .fetch_one(&app.state.pool)
        .await
        .expect("count")
}

async fn deliveries(app: &TestApp, hook: &str) -> Vec<Value> {
    let page = app
        .get(&format!("/v1/hooks/{hook}/deliveries"), &app.admin_token)
        .json_body()
        .await;
    page["items"].as_array().expect("items").clone()
}

/// Sends a delivery; its status and JSON body.
async fn send(request: reqwest::RequestBuilder) -> (u16, Value, reqwest::header::HeaderMap) {
    let response = request.send().await.expect("delivery sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, response.json().await.expect("a JSON body"), headers)
}

/// Delivers GitHub's push `body` to the `web-push` hook.
async fn push_to(
    app: &TestApp,
    delivery_id: &str,
    body: &[u8],
) -> (u16, Value, reqwest::header::HeaderMap) {
    send(github_delivery(app, "web-push", "push", delivery_id, body)).await
}

/// `PATCH /v1/hooks/web-push` with a merge patch, as admin.
async fn patch_hook(app: &TestApp, patch: Value) -> (u16, Value, reqwest::header::HeaderMap) {
    send(
        app.client
            .patch(app.url("/v1/hooks/web-push"))
            .bearer_auth(&app.admin_token)
            .header("content-type", "application/merge-patch+json")
            .body(patch.to_string()),
    )
    .await
}

fn bytes(payload: &Value) -> Vec<u8> {
    serde_json::to_vec(payload).expect("JSON")
}

#[tokio::test]
async fn a_signed_github_push_queues_the_mapped_deploy_with_its_origin() {
    let app = app_with_key().await;
    create_hook(&app, &web_push_hook()).await;
    let push = bytes(&github_push("refs/heads/main", PUSHED_COMMIT));
    let (status, accepted, headers) =
        push_to(&app, "72d3162e-cc78-11e3-81ab-4c9367dc0958", &push).await;
    assert_eq!(status, 202, "{accepted}");
    let id: uuid::Uuid = accepted["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(headers["location"], format!("/v1/deploys/{id}"));
    assert_eq!(accepted["status"], "queued");

    let deploy = app.deploy(id).await;
    assert_eq!(deploy["release"], "web");
    assert_eq!(deploy["namespace"], "prod");
    assert_eq!(
        deploy["values"],
        json!({"replicas": 2, "image": {"tag": PUSHED_COMMIT}}),
        "the static values and the mapped commit, nothing else of the payload"
    );
    assert_eq!(deploy["requested_by"], "hook:web-push");
    let origin = json!({
        "rollcall.dev/hook": "web-push",
        "rollcall.dev/hook-provider": "github",
        "rollcall.dev/hook-event": "push",
        "rollcall.dev/hook-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "rollcall.dev/ref": "refs/heads/main",
        "rollcall.dev/commit": PUSHED_COMMIT,
        "rollcall.dev/sender": "mona",
    });
    assert_eq!(deploy["labels"], origin);
    let events = app
        .get(&format!("/v1/deploys/{id}/events"), &app.admin_token)
        .header("accept", "application/json")
        .json_body()
        .await;
    let queued = &events["items"][0];
    assert_eq!(queued["type"], "deploy.queued");
    assert_eq!(queued["data"]["requested_by"], "hook:web-push");
    assert_eq!(queued["data"]["labels"], origin);
    let by_label = app
        .get(
            "/v1/deploys?label=rollcall.dev/hook=web-push",
            &app.admin_token,
        )
        .json_body()
        .await;
    assert_eq!(by_label["items"][0]["id"], id.to_string());

    let recorded = deliveries(&app, "web-push").await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        recorded[0]["delivery_id"],
        "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    );
    assert_eq!(recorded[0]["event"], "push");
    assert_eq!(recorded[0]["outcome"], "deployed");
    assert_eq!(recorded[0]["ref"], "refs/heads/main");
    assert_eq!(recorded[0]["commit"], PUSHED_COMMIT);
    assert_eq!(recorded[0]["deploy_id"], id.to_string());
    assert_eq!(metric(&app.metrics().await, "web-push", "deployed"), 1);
}

#[tokio::test]
async fn github_form_encoded_deliveries_are_read_from_their_payload_field() {
    let app = app_with_key().await;
    create_hook(&app, &web_push_hook()).await;
    let push = github_push("refs/heads/main", PUSHED_COMMIT).to_string();
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &push)
        .finish();
    let form_type = "application/x-www-form-urlencoded";
    let (status, accepted, _) = send(
        github_unsigned(
            &app,
            "web-push",
            "push",
            "d-form",
            form_type,
            form.as_bytes(),
        )
        .header(
            "x-hub-signature-256",
            github_signature(GITHUB_SECRET, form.as_bytes()),
        ),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let deploy = app
        .deploy(accepted["id"].as_str().unwrap().parse().unwrap())
        .await;
    assert_eq!(deploy["values"]["image"]["tag"], PUSHED_COMMIT);
}

#[tokio::test]
async fn wrong_or_missing_signatures_are_401_say_nothing_more_and_write_nothing() {
    let app = app_with_key().await;
    create_hook(&app, &web_push_hook()).await;
    let push = bytes(&github_push("refs/heads/main", PUSHED_COMMIT));
    let unsigned =
        |id: &str| github_unsigned(&app, "web-push", "push", id, "application/json", &push);
    let mut tampered = push.clone();
    tampered.extend_from_slice(b" ");
    let attempts = [
        unsigned("d-1").header(
            "x-hub-signature-256",
            github_signature("another secret entirely", &push),
        ),
        unsigned("d-2").header("x-hub-signature-256", "sha256=00"),
        github_delivery(&app, "web-push", "push", "d-3", &push).body(tampered),
        unsigned("d-4"),
        // A GitLab token is no GitHub signature.
        gitlab_delivery(&app, "web-push", "Push Hook", "d-5", GITHUB_SECRET, &push),
    ];
    let mut details = Vec::new();
    for attempt in attempts {
        let (status, problem, headers) = send(attempt).await;
        assert_eq!(status, 401, "{problem}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert!(
            !headers.contains_key("www-authenticate"),
            "a webhook sender is not asked for a bearer token"
        );
        details.push(problem["detail"].as_str().unwrap().to_owned());
        assert!(problem.get("errors").is_none(), "{problem}");
    }
    assert!(
        details
            .iter()
            .all(|detail| detail == "the delivery's signature could not be verified"),
        "every refusal reads the same: {details:?}"
    );
    assert_eq!(count(&app, "deploys").await, 0);
    assert_eq!(count(&app, "webhook_deliveries").await, 0);
    assert_eq!(count(&app, "deploy_events").await, 0);
    assert_eq!(metric(&app.metrics().await, "web-push", "unauthorized"), 5);
    assert_eq!(
        app.client
            .post(app.url("/v1/hooks/no-such-hook"))
            .body("{}")
            .status_code()
            .await,
        404
    );
}

#[tokio::test]
async fn a_redelivery_answers_with_the_same_deploy_even_after_a_restart() {
    let app = app_with_key().await;
    create_hook(&app, &web_push_hook()).await;
    let push = bytes(&github_push("refs/heads/main", PUSHED_COMMIT));
    let (_, first, _) = push_to(&app, "d-7", &push).await;
    let (status, again, headers) = push_to(&app, "d-7", &push).await;
    assert_eq!(status, 202);
    assert_eq!(again["id"], first["id"]);
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(count(&app, "deploys").await, 1);
    assert_eq!(metric(&app.metrics().await, "web-push", "duplicate"), 1);

    let database_url = app.database_url.clone();
    app.shutdown().await;
    let restarted = spawn_app_on(&database_url, with_server_key).await;
    let (status, after_restart, _) = push_to(&restarted, "d-7", &push).await;
    assert_eq!(status, 202);
    assert_eq!(after_restart["id"], first["id"]);
    assert_eq!(count(&restarted, "deploys").await, 1);
    let recorded = deliveries(&restarted, "web-push").await;
    assert_eq!(recorded[0]["attempts"], 3);
    // Another delivery of the same push is another deploy.
    let (_, other, _) = push_to(&restarted, "d-8", &push).await;
    assert_ne!(other["id"], first["id"]);
}

#[tokio::test]
async fn two_replicas_receiving_the_same_delivery_start_one_deploy() {
    let a = app_with_key().await;
    let b = spawn_app_on(&a.database_url, with_server_key).await;
    create_hook(&a, &web_push_hook()).await;
    let push = bytes(&github_push("refs/heads/main", PUSHED_COMMIT));
    for round in 0..8 {
        let id = format!("race-{round}");
        let (on_a, on_b) = tokio::join!(push_to(&a, &id, &push), push_to(&b, &id, &push));
        assert_eq!((on_a.0, on_b.0), (202, 202), "{} {}", on_a.1, on_b.1);
        assert_eq!(on_a.1["id"], on_b.1["id"], "round {round}");
    }
    assert_eq!(count(&a, "deploys").await, 8);
    assert_eq!(count(&a, "webhook_deliveries").await, 8);
    let (on_a, on_b) = (a.metrics().await, b.metrics().await);
    let counted = |outcome| metric(&on_a, "web-push", outcome) + metric(&on_b, "web-push", outcome);
    // Each round: one replica queued the deploy, the other answered with it.
    assert_eq!(
        (counted("deployed"), counted("duplicate")),
        (8, 8),
        "{on_a}{on_b}"
    );
}

#[tokio::test]
async fn filtered_deliveries_are_ignored_with_the_reason_and_listed() {
    let app = app_with_key().await;
    create_hook(&app, &web_push_hook()).await;
    let feature = bytes(&github_push("refs/heads/feature/checkout", PUSHED_COMMIT));
    let (status, answer, _) = push_to(&app, "d-feature", &feature).await;
    assert_eq!(status, 202);
    assert_eq!(
        answer,
        json!({"ignored": "ref refs/heads/feature/checkout matches none of the hook's refs (refs/heads/main)"})
    );
    let deletion = bytes(&github_branch_deletion("refs/heads/main"));
    let (status, answer, _) = push_to(&app, "d-delete", &deletion).await;
    assert_eq!(status, 202);
    assert_eq!(answer["ignored"], "the push deletes refs/heads/main");
    let star = bytes(&json!({"action": "created", "starred_at": "2026-12-06T12:00:00Z"}));
    let (_, answer, _) = send(github_delivery(&app, "web-push", "star", "d-star", &star)).await;
    assert!(
        answer["ignored"]
            .as_str()
            .unwrap()
            .contains("not on \"star\""),
        "{answer}"
    );
    let ping = bytes(&json!({"zen": "Design for failure.", "hook_id": 471934}));
    let (status, pong, _) = send(github_delivery(&app, "web-push", "ping", "d-ping", &ping)).await;
    assert_eq!(status, 200);
    assert_eq!(pong, json!({"hook": "web-push", "ping": "ok"}));
    assert_eq!(count(&app, "deploys").await, 0);
    let outcomes: Vec<(String, String)> = deliveries(&app, "web-push")
        .await
        .iter()
        .map(|d| {
            (
                d["delivery_id"].as_str().unwrap().into(),
                d["outcome"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("d-ping".into(), "ping".into()),
            ("d-star".into(), "ignored".into()),
            ("d-delete".into(), "ignored".into()),
            ("d-feature".into(), "ignored".into()),
        ]
    );
    let page = app
        .get("/v1/hooks/web-push/deliveries?limit=3", &app.admin_token)
        .json_body()
        .await;
    let cursor = page["next_cursor"].as_str().expect("a second page");
    let rest = app
        .get(
            &format!("/v1/hooks/web-push/deliveries?limit=3&cursor={cursor}"),
            &app.admin_token,
        )
        .json_body()
        .await;
    assert_eq!(rest["items"][0]["delivery_id"], "d-feature");

    // After the filter is widened, GitHub's "Redeliver" of the ignored push deploys it.
    let widened = patch_hook(
        &app,
        json!({"refs": ["refs/heads/main", "refs/heads/feature/**"]}),
    );
    assert_eq!(widened.await.0, 200);
    let (status, accepted, _) = push_to(&app, "d-feature", &feature).await;
    assert_eq!(status, 202, "{accepted}");
    assert!(accepted["id"].is_string(), "{accepted}");
    let redelivered = deliveries(&app, "web-push").await;
    let feature = redelivered
        .iter()
        .find(|d| d["delivery_id"] == "d-feature")
        .unwrap();
    assert_eq!(
        (&feature["outcome"], &feature["attempts"]),
        (&json!("deployed"), &json!(2))
    );
}

#[tokio::test]
async fn deliveries_that_cannot_deploy_are_refused_with_why_and_recorded() {
    let app = app_with_key().await;
    let mut hook = web_push_hook();
    hook["queue"] = json!("reject");
    create_hook(&app, &hook).await;
    let mut no_commit = github_push("refs/heads/main", PUSHED_COMMIT);
    no_commit.as_object_mut().unwrap().remove("after");
    let (status, problem, _) = push_to(&app, "d-bare", &bytes(&no_commit)).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "/after");
    assert_eq!(count(&app, "deploys").await, 0);

    let push = bytes(&github_push("refs/heads/main", PUSHED_COMMIT));
    let (_, first, _) = push_to(&app, "d-1", &push).await;
    let (status, problem, _) = push_to(&app, "d-2", &push).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["blocking_deploy_id"], first["id"]);
    assert_eq!(count(&app, "deploys").await, 1);
    let recorded = deliveries(&app, "web-push").await;
    let outcome = |id: &str| {
        let delivery = recorded.iter().find(|d| d["delivery_id"] == id).unwrap();
        (
            delivery["outcome"].clone(),
            delivery["detail"].as_str().unwrap().to_owned(),
        )
    };
    let (rejected, detail) = outcome("d-bare");
    assert_eq!(rejected, "rejected");
    assert!(
        detail.contains("/after: is absent from the payload"),
        "{detail}"
    );
    let (rejected, detail) = outcome("d-2");
    assert_eq!(rejected, "rejected");
    assert!(detail.contains("queue mode reject"), "{detail}");
    assert_eq!(metric(&app.metrics().await, "web-push", "rejected"), 2);
}

#[tokio::test]
async fn bodies_up_to_3_mib_are_taken_whatever_the_api_limit_and_larger_are_413() {
    let app = app_with_key().await;
    create_hook(&app, &web_push_hook()).await;
    // A push whose commit message makes it `size` bytes and more.
    let push_of = |size: usize, delivery_id: &'static str| {
        let mut push = github_push("refs/heads/main", PUSHED_COMMIT);
        push["commits"][0]["message"] = json!("x".repeat(size));
        let (app, body) = (&app, bytes(&push));
        async move { push_to(app, delivery_id, &body).await }
    };
    // 2 MiB: over the API's 1 MiB body limit, which does not apply to deliveries.
    let (status, accepted, _) = push_of(2 * 1024 * 1024, "d-large").await;
    assert_eq!(status, 202, "{accepted}");
    let (status, problem, _) = push_of(3 * 1024 * 1024, "d-huge").await;
    assert_eq!(status, 413, "{problem}");
    assert_eq!(count(&app, "deploys").await, 1);
    assert_eq!(count(&app, "webhook_deliveries").await, 1);
    assert_eq!(metric(&app.metrics().await, "web-push", "too_large"), 1);
}

#[tokio::test]
async fn generic_senders_sign_the_standard_webhooks_way_and_old_signatures_are_refused() {
    let app = app_with_key().await;
    create_hook(
        &app,
        &json!({
            "name": "registry",
            "provider": "generic",
            "secret": STANDARD_SECRET,
            "target": {
                "namespace": "prod",
                "release": "api",
                "chart": {"oci": "oci://registry.example/charts/api"},
                "chart_version_from": "/chart_version",
            },
            "values_from": {"/tag": "image.tag"},
            "events": ["image.pushed"],
        }),
    )
    .await;
    let body = bytes(
        &json!({"type": "image.pushed", "tag": "1.4.2", "chart_version": "2.0.1", "ref": "refs/tags/v1.4.2"}),
    );
    let now = unix_now();
    let deliver = |id: &'static str, timestamp: i64, body: &[u8]| {
        send(standard_delivery(&app, "registry", id, timestamp, body))
    };
    let (status, accepted, _) = deliver("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", now, &body).await;
    assert_eq!(status, 202, "{accepted}");
    let deploy = app
        .deploy(accepted["id"].as_str().unwrap().parse().unwrap())
        .await;
    assert_eq!(
        (&deploy["chart"]["oci"], &deploy["chart"]["version"]),
        (&json!("oci://registry.example/charts/api"), &json!("2.0.1"))
    );
    assert_eq!(deploy["values"], json!({"image": {"tag": "1.4.2"}}));
    assert_eq!(deploy["labels"]["rollcall.dev/ref"], "refs/tags/v1.4.2");

    // A delivery captured and replayed within the tolerance is the same delivery.
    let (status, replayed, _) = deliver("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", now, &body).await;
    assert_eq!((status, &replayed["id"]), (202, &accepted["id"]));
    // Outside it, even a correct signature is refused.
    let (status, _, _) = deliver("msg_2KWPC0old", now - 10 * 60, &body).await;
    assert_eq!(status, 401);
    let (status, _, _) = deliver("msg_2KWPC0future", now + 10 * 60, &body).await;
    assert_eq!(status, 401);
    assert_eq!(count(&app, "deploys").await, 1);
    let other = bytes(&json!({"type": "image.deleted", "tag": "1.4.2", "chart_version": "2.0.1"}));
    let (_, ignored, _) = deliver("msg_other", now, &other).await;
    assert!(
        ignored["ignored"]
            .as_str()
            .unwrap()
            .contains("image.deleted"),
        "{ignored}"
    );
}

#[tokio::test]
async fn configured_gitlab_hooks_deploy_successful_pipelines_and_are_read_only_here() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("gitlab-token");
    std::fs::write(&secret_file, format!("{GITLAB_TOKEN}\n")).unwrap();
    let mut file: FileConfig = toml::from_str(&format!(
        r#"
        [[hooks]]
        name = "api-pipeline"
        provider = "gitlab"
        secret_file = "{}"
        events = ["Pipeline Hook"]
        refs = ["main"]
        values_from = {{ "/object_attributes/sha" = "image.tag" }}
        queue = "supersede"

        [hooks.target]
        namespace = "prod"
        release = "api"
        chart = {{ repo = "https://charts.example.com", name = "api", version = "3.1.0" }}
        "#,
        secret_file.display()
    ))
    .unwrap();
    let sources = ChartSources {
        allowed: example_charts(),
        ..ChartSources::default()
    };
    let hooks = file.hooks(&sources, |_| None).unwrap();
    let app = spawn_app_with(|config| config.hooks = hooks).await;

    let pipeline = fixture("gitlab-pipeline.json");
    let (status, accepted, _) = send(gitlab_delivery(
        &app,
        "api-pipeline",
        "Pipeline Hook",
        "6c1d8f2e-0b43-4a57-9d2e-5c8a1f7b3e90",
        GITLAB_TOKEN,
        &bytes(&pipeline),
    ))
    .await;
    assert_eq!(status, 202, "{accepted}");
    let deploy = app
        .deploy(accepted["id"].as_str().unwrap().parse().unwrap())
        .await;
    assert_eq!(
        deploy["values"]["image"]["tag"],
        "5f6e7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f"
    );
    assert_eq!(deploy["queue"], "supersede");
    assert_eq!(
        deploy["labels"]["rollcall.dev/hook-delivery"],
        "6c1d8f2e-0b43-4a57-9d2e-5c8a1f7b3e90"
    );
    assert_eq!(deploy["labels"]["rollcall.dev/sender"], "dana");

    let mut failed = pipeline.clone();
    failed["object_attributes"]["status"] = json!("failed");
    let (status, ignored, _) = send(gitlab_delivery(
        &app,
        "api-pipeline",
        "Pipeline Hook",
        "key-failed",
        GITLAB_TOKEN,
        &bytes(&failed),
    ))
    .await;
    assert_eq!(status, 202);
    assert_eq!(
        ignored["ignored"],
        "the pipeline's status is \"failed\", not \"success\""
    );
    let (status, _, _) = send(gitlab_delivery(
        &app,
        "api-pipeline",
        "Pipeline Hook",
        "key-forged",
        "gitlab-hook-token-guessed",
        &bytes(&pipeline),
    ))
    .await;
    assert_eq!(status, 401);

    let listed = app.get("/v1/hooks", &app.admin_token).json_body().await;
    let hook = &listed["items"][0];
    assert_eq!(hook["name"], "api-pipeline");
    assert_eq!(hook["source"], "config");
    assert_eq!(hook["url"], "/v1/hooks/api-pipeline");
    assert!(!listed.to_string().contains(GITLAB_TOKEN), "{listed}");
    let delete = app
        .delete("/v1/hooks/api-pipeline", &app.admin_token)
        .status_code()
        .await;
    assert_eq!(delete, 409, "a configured hook is changed in its file");
}

#[tokio::test]
async fn the_admin_api_creates_shows_and_deletes_hooks_and_never_reveals_secrets() {
    let app = app_with_key().await;
    let created = create_hook(&app, &web_push_hook()).await;
    assert_eq!(created["name"], "web-push");
    assert_eq!(created["source"], "api");
    assert_eq!(created["created_by"], "bootstrap-admin");
    for view in [
        created.clone(),
        app.get("/v1/hooks", &app.admin_token).json_body().await,
        app.get("/v1/hooks/web-push", &app.admin_token)
            .json_body()
            .await,
    ] {
        assert!(!view.to_string().contains(GITHUB_SECRET), "{view}");
        assert!(view.to_string().contains("refs/heads/main"), "{view}");
    }
    let sealed: String =
        sqlx::query_scalar("select sealed_secret from webhooks where name = 'web-push'")
            .fetch_one(&app.state.pool)
            .await
            .unwrap();
    assert!(
        sealed.starts_with("v1:") && !sealed.contains("Secret"),
        "{sealed}"
    );
    let stored: String = sqlx::query_scalar("select definition::text from webhooks")
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    assert!(!stored.contains(GITHUB_SECRET), "{stored}");

    let again = app
        .post("/v1/hooks", &app.admin_token)
        .json(&web_push_hook())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let (_, reader) = app.token(&["admin"], &["default/prod/*"]).await;
    assert_eq!(app.get("/v1/hooks", &reader).status_code().await, 403);
    assert_eq!(
        app.client.get(app.url("/v1/hooks")).status_code().await,
        401
    );

    let (status, renamed, _) = patch_hook(&app, json!({"name": "other"})).await;
    assert_eq!(
        (status, &renamed["errors"][0]["field"]),
        (422, &json!("name"))
    );
    // A new secret through PATCH: the old one stops working.
    let (status, rotated, _) =
        patch_hook(&app, json!({"secret": "a rotated secret, long enough"})).await;
    assert_eq!(status, 200);
    assert!(!rotated.to_string().contains("rotated"), "{rotated}");
    let push = bytes(&github_push("refs/heads/main", PUSHED_COMMIT));
    let (status, _, _) = push_to(&app, "d-old", &push).await;
    assert_eq!(status, 401);

    assert_eq!(
        app.delete("/v1/hooks/web-push", &app.admin_token)
            .status_code()
            .await,
        204
    );
    assert_eq!(
        app.delete("/v1/hooks/web-push", &app.admin_token)
            .status_code()
            .await,
        404
    );
    let (status, _, _) = push_to(&app, "d-gone", &push).await;
    assert_eq!(status, 404);
    assert_eq!(count(&app, "webhooks").await, 0);
}

#[tokio::test]
async fn invalid_hooks_are_422_naming_each_field_and_nothing_is_stored() {
    let app = app_with_key().await;
    let mut hook = web_push_hook();
    hook["provider"] = json!("bitbucket");
    hook["values_from"] = json!({"after": "image.tag", "/ref": "image tag"});
    hook["refs"] = json!(["refs/heads/[main"]);
    hook["target"]["release"] = json!("Web");
    let (status, problem, _) = send(app.post("/v1/hooks", &app.admin_token).json(&hook)).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["detail"], "hook \"web-push\" has invalid fields");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "provider",
            "values_from./ref",
            "values_from.after",
            "refs[0]"
        ]
    );
    let mut bad_target = web_push_hook();
    bad_target["target"]["release"] = json!("Web");
    let (_, problem, _) = send(app.post("/v1/hooks", &app.admin_token).json(&bad_target)).await;
    assert_eq!(problem["errors"][0]["field"], "target.release");
    let mut weak = web_push_hook();
    weak["secret"] = json!("hunter2");
    let (_, problem, _) = send(app.post("/v1/hooks", &app.admin_token).json(&weak)).await;
    assert_eq!(problem["errors"][0]["field"], "secret");
    assert!(!problem.to_string().contains("hunter2"), "{problem}");
    let mut from_file = web_push_hook();
    from_file["secret_file"] = json!("/etc/passwd");
    let (_, problem, _) = send(app.post("/v1/hooks", &app.admin_token).json(&from_file)).await;
    assert_eq!(problem["errors"][0]["field"], "secret_file");
    assert_eq!(count(&app, "webhooks").await, 0);
}

/// 503, and the problem says which setting would make it work.
fn assert_asks_for_the_server_key(status: u16, problem: &Value) {
    assert_eq!(status, 503, "{problem}");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("ROLLCALL_SECRET_KEY"), "{problem}");
}

#[tokio::test]
async fn without_a_server_key_the_admin_api_refuses_to_store_secrets() {
    let app = spawn_app().await;
    let (status, problem, _) = send(
        app.post("/v1/hooks", &app.admin_token)
            .json(&web_push_hook()),
    )
    .await;
    assert_asks_for_the_server_key(status, &problem);
    assert_eq!(count(&app, "webhooks").await, 0);
    assert_eq!(
        app.get("/v1/hooks", &app.admin_token).json_body().await,
        json!({"items": []})
    );
}

#[tokio::test]
async fn a_stored_hook_on_a_server_without_its_key_is_503_and_deploys_nothing() {
    let app = app_with_key().await;
    create_hook(&app, &web_push_hook()).await;
    let database_url = app.database_url.clone();
    app.shutdown().await;

    let keyless = spawn_app_on(&database_url, |_| {}).await;
    let push = bytes(&github_push("refs/heads/main", PUSHED_COMMIT));
    let (status, problem, _) = push_to(&keyless, "d-keyless", &push).await;
    assert_asks_for_the_server_key(status, &problem);
    assert_eq!(count(&keyless, "deploys").await, 0);
    assert_eq!(count(&keyless, "webhook_deliveries").await, 0);
}

#[tokio::test]
async fn verified_but_unreadable_deliveries_are_400_naming_what_is_missing() {
    let app = app_with_key().await;
    create_hook(&app, &web_push_hook()).await;
    let push = bytes(&github_push("refs/heads/main", PUSHED_COMMIT));
    let (status, problem, _) = send(
        app.client
            .post(app.url("/v1/hooks/web-push"))
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header(
                "x-hub-signature-256",
                github_signature(GITHUB_SECRET, &push),
            )
            .body(push.clone()),
    )
    .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "x-github-delivery");
    let (status, problem, _) = push_to(&app, "d-text", b"{\"ref\": ").await;
    assert_eq!(status, 400, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("malformed JSON at line 1"),
        "{problem}"
    );
    assert_eq!(count(&app, "webhook_deliveries").await, 0);
    assert_eq!(metric(&app.metrics().await, "web-push", "malformed"), 2);
}

/// The `sh` blocks of the README's "Inbound webhooks" section, pointed at `base_url`.
fn readme_hook_recipes(base_url: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split("\n## ")
        .find(|section| section.starts_with("Inbound webhooks"))
        .expect("the README's Inbound webhooks section");
    section
        .split("```sh\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
        .replace("http://127.0.0.1:8080", base_url)
}

#[tokio::test]
async fn the_readmes_curl_recipes_create_a_hook_and_sign_deliveries_it_accepts() {
    for (tool, version) in [("openssl", "version"), ("curl", "--version")] {
        let found = std::process::Command::new(tool)
            .arg(version)
            .output()
            .is_ok_and(|output| output.status.success());
        assert!(
            found,
            "the README's recipes need {tool}: apt-get install -y {tool}"
        );
    }
    let app = spawn_app_with(|config| {
        with_server_key(config);
        config.chart_dir = Some(charts::catalog());
    })
    .await;
    // The README's generic delivery goes to a `registry` hook, defined as it says.
    create_hook(
        &app,
        &json!({
            "name": "registry",
            "provider": "generic",
            "secret": STANDARD_SECRET,
            "target": {"namespace": "prod", "release": "api", "chart": {"path": "web"}},
            "values_from": {"/tag": "image.tag"},
            "events": ["image.pushed"],
        }),
    )
    .await;
    let script = readme_hook_recipes(&app.url(""));
    let output = tokio::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .env("ROLLCALL_TOKEN", &app.admin_token)
        .output()
        .await
        .expect("run the README's recipes");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answers: Vec<Value> = serde_json::Deserializer::from_str(&stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|error| panic!("{error}: {stdout}"));
    assert_eq!(answers.len(), 3, "{stdout}");
    assert_eq!(
        (&answers[0]["name"], &answers[0]["source"]),
        (&json!("shop-push"), &json!("api")),
        "{stdout}"
    );
    for (answer, release, tag) in [
        (&answers[1], "shop", PUSHED_COMMIT),
        (&answers[2], "api", "1.4.2"),
    ] {
        assert_eq!(answer["status"], "queued", "{stdout}");
        let deploy = app
            .deploy(answer["id"].as_str().unwrap().parse().unwrap())
            .await;
        assert_eq!(deploy["release"], release);
        assert_eq!(deploy["values"]["image"]["tag"], tag);
    }
}
