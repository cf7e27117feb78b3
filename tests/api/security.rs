//! Probes of issue 17 (hardening), each kept as a regression test: secrets at rest, input the
//! database cannot store, resume points, page sizes, tokens, connection hygiene.

use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::common::app::{Answer, TestApp, deploy_body, spawn_app_with, test_server_key};
use crate::common::sse::SseStream;

async fn with_server_key() -> TestApp {
    spawn_app_with(|config| {
        config.secret_key = Some(test_server_key());
    })
    .await
}

async fn sealed_count(app: &TestApp, id: Uuid) -> i64 {
    sqlx::query_scalar("select count(*) from deploy_secret_values where deploy_id = $1")
        .bind(id)
        .fetch_one(&app.state.pool)
        .await
        .unwrap()
}

fn with_secret(release: &str) -> Value {
    let mut body = deploy_body("prod", release);
    body["secret_values"] = json!({"password": "hunter2-very-secret"});
    body
}

#[tokio::test]
async fn sealed_secret_values_go_with_a_queued_deploy_that_is_cancelled_or_superseded() {
    let app = with_server_key().await;
    let cancelled = app.submit(&with_secret("web")).await;
    let superseded = app.submit(&with_secret("api")).await;
    assert_eq!(sealed_count(&app, cancelled).await, 1);
    assert_eq!(sealed_count(&app, superseded).await, 1);
    let sealed: String =
        sqlx::query_scalar("select string_agg(sealed, ' ') from deploy_secret_values")
            .fetch_one(&app.state.pool)
            .await
            .unwrap();
    assert!(!sealed.contains("hunter2"), "{sealed}");

    let response = app
        .post(&format!("/v1/deploys/{cancelled}/cancel"), &app.admin_token)
        .json(&json!({"reason": "not today"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut newer = deploy_body("prod", "api");
    newer["queue"] = json!("supersede");
    app.submit(&newer).await;
    assert_eq!(app.deploy(superseded).await["status"], "cancelled");
    assert_eq!(sealed_count(&app, cancelled).await, 0);
    assert_eq!(sealed_count(&app, superseded).await, 0);
}

#[tokio::test]
async fn the_secret_values_digest_is_keyed_so_a_guess_cannot_be_confirmed_offline() {
    let app = with_server_key().await;
    let first = app.deploy(app.submit(&with_secret("web")).await).await;
    let again = app.deploy(app.submit(&with_secret("api")).await).await;
    let digest = first["secret_values_digest"].as_str().expect("a digest");
    assert_eq!(digest.len(), 64);
    assert_eq!(
        again["secret_values_digest"], digest,
        "equal secret values, equal digests"
    );
    let unkeyed = hex::encode(Sha256::digest(br#"{"password":"hunter2-very-secret"}"#));
    assert_ne!(digest, unkeyed, "the guess's plain sha256 does not match");
    assert_eq!(first["has_secret_values"], true);
}

/// Rows of the tables a refused request could have written.
async fn rows_written(app: &TestApp) -> i64 {
    sqlx::query_scalar(
        "select (select count(*) from deploys) + (select count(*) from api_tokens)
                + (select count(*) from deploy_events)",
    )
    .fetch_one(&app.state.pool)
    .await
    .unwrap()
}

/// `(status, field named in the problem)` of an answer.
async fn refusal(request: reqwest::RequestBuilder) -> (u16, String) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let problem: Value = response.json().await.unwrap();
    let field = problem["errors"][0]["field"].as_str().unwrap_or_default();
    (status, field.to_owned())
}

#[tokio::test]
async fn a_nul_character_anywhere_a_client_sends_text_is_refused_naming_the_field() {
    let app = spawn_app_with(|_| {}).await;
    let queued = app.submit(&deploy_body("prod", "web")).await;
    let before = rows_written(&app).await;
    let deploy_with = |field: &str, value: Value| {
        let mut body = deploy_body("prod", "api");
        body[field] = value;
        app.post("/v1/deploys", &app.admin_token).json(&body)
    };
    let probes = [
        (
            deploy_with("values", json!({"image": {"tag": "1.0\0"}})),
            422,
            "values.image.tag",
        ),
        (
            deploy_with("secret_values", json!({"password": "\0"})),
            422,
            "secret_values.password",
        ),
        (
            deploy_with("labels", json!({"ci": "run\0"})),
            422,
            "labels.ci",
        ),
        (
            deploy_with("notify", json!([{"url": "https://hooks.example.com/\0"}])),
            422,
            "notify[0].url",
        ),
        (
            deploy_with(
                "tracking",
                json!({"resources": [{"kind": "Deployment", "name": "web\0", "policy": {}}]}),
            ),
            422,
            "tracking.resources[0].name",
        ),
        (
            app.post("/v1/tokens", &app.admin_token)
                .json(&json!({"name": "ci\0", "scopes": ["read"], "targets": ["*/*/*"]})),
            422,
            "name",
        ),
        (
            app.post(&format!("/v1/deploys/{queued}/cancel"), &app.admin_token)
                .json(&json!({"reason": "because\0"})),
            422,
            "reason",
        ),
        (
            app.get("/v1/deploys?namespace=%00", &app.admin_token),
            400,
            "namespace",
        ),
        (
            app.get("/v1/releases?namespace=prod%00", &app.admin_token),
            400,
            "namespace",
        ),
        (
            app.get("/v1/events?release=%00", &app.admin_token),
            400,
            "release",
        ),
        (
            app.get("/v1/releases/prod%00/web", &app.admin_token),
            400,
            "path",
        ),
    ];
    for (request, status, field) in probes {
        assert_eq!(refusal(request).await, (status, field.to_owned()));
    }
    assert_eq!(rows_written(&app).await, before, "nothing was written");
    assert_eq!(app.deploy(queued).await["status"], "queued");
}

#[tokio::test]
async fn a_resume_point_beyond_the_last_event_is_refused_and_end_names_the_real_last_seq() {
    let app = spawn_app_with(|_| {}).await;
    let queued = app.submit(&deploy_body("prod", "web")).await;
    let events = format!("/v1/deploys/{queued}/events");
    let beyond = i64::MAX.to_string();
    let (status, field) = refusal(
        app.get(&events, &app.admin_token)
            .header("last-event-id", &beyond),
    )
    .await;
    assert_eq!(
        (status, field.as_str()),
        (400, "Last-Event-ID"),
        "a live deploy"
    );
    let (status, field) = refusal(
        app.get(&format!("{events}?after=2"), &app.admin_token)
            .header("accept", "application/json"),
    )
    .await;
    assert_eq!((status, field.as_str()), (400, "after"), "a JSON page");

    let cancelled = app
        .post(&format!("/v1/deploys/{queued}/cancel"), &app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    let (status, field) = refusal(
        app.get(&events, &app.admin_token)
            .header("last-event-id", &beyond),
    )
    .await;
    assert_eq!(
        (status, field.as_str()),
        (400, "Last-Event-ID"),
        "a finished deploy"
    );
    let mut stream = SseStream::connect(
        app.get(&events, &app.admin_token)
            .header("last-event-id", "2"),
    )
    .await;
    let end = stream
        .frames_until(Duration::from_secs(10), |frame| {
            frame.event.as_deref() == Some("end")
        })
        .await;
    assert_eq!(
        end.len(),
        1,
        "nothing after the resume point but the end: {end:?}"
    );
    assert_eq!(end[0].json(), json!({"last_seq": 2}));
}

#[tokio::test]
async fn lists_show_summaries_and_only_the_single_deploy_carries_values() {
    let app = spawn_app_with(|_| {}).await;
    let mut body = deploy_body("prod", "web");
    body["values"] = json!({"blob": "v".repeat(200_000)});
    body["tracking"] = json!({"resources": [{"kind": "Deployment", "policy": {}}]});
    let id = app.submit(&body).await;
    for list in ["/v1/deploys", "/v1/releases", "/v1/releases/prod/web"] {
        let text = app.get(list, &app.admin_token).text_body().await;
        assert!(text.contains(&id.to_string()), "{list}: {text}");
        assert!(
            text.len() < 10_000 && !text.contains("\"values\"") && !text.contains("\"tracking\""),
            "{list} shows summaries: {} bytes",
            text.len()
        );
    }
    let deploy = app.deploy(id).await;
    assert_eq!(
        deploy["values"]["blob"].as_str().map(str::len),
        Some(200_000)
    );
    assert_eq!(deploy["tracking"]["resources"][0]["kind"], "Deployment");
}

#[tokio::test]
async fn a_page_of_deploys_ends_before_a_mebibyte_and_its_cursor_goes_on() {
    let app = spawn_app_with(|_| {}).await;
    // 32 labels of 1000 bytes: about 33 KB per summary, 40 of them about 1.3 MB.
    let labels: serde_json::Map<String, Value> = (0..32)
        .map(|index| (format!("label-{index}"), json!("l".repeat(1000))))
        .collect();
    let mut submitted = Vec::new();
    for index in 0..40 {
        let mut body = deploy_body("prod", &format!("web-{index}"));
        body["labels"] = Value::Object(labels.clone());
        submitted.push(app.submit(&body).await.to_string());
    }
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut path = "/v1/deploys?limit=200".to_owned();
    loop {
        let response = app.get(&path, &app.admin_token).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        assert!(text.len() <= 1024 * 1024 + 1024, "{} bytes", text.len());
        let page: Value = serde_json::from_str(&text).unwrap();
        let items = page["items"].as_array().unwrap();
        pages.push(items.len());
        seen.extend(
            items
                .iter()
                .map(|item| item["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/deploys?limit=200&cursor={cursor}"),
            None => break,
        }
    }
    assert!(pages.len() >= 2, "the first page was cut: {pages:?}");
    submitted.reverse();
    assert_eq!(seen, submitted, "every deploy once, newest first");
}

#[tokio::test]
async fn admins_list_tokens_without_their_secrets_and_expired_tokens_are_refused() {
    let app = spawn_app_with(|_| {}).await;
    let (id, secret) = app.token(&["read"], &["default/prod/*"]).await;
    assert_eq!(app.get("/v1/deploys", &secret).status_code().await, 200);
    let listing = app.get("/v1/tokens", &app.admin_token).text_body().await;
    let secret_part = &secret["rc_".len() + 32..];
    assert!(!listing.contains(secret_part), "no secret in {listing}");
    let listing: Value = serde_json::from_str(&listing).unwrap();
    let token = listing["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|token| token["id"] == id)
        .expect("the token is listed");
    assert_eq!(token["scopes"], json!(["read"]));
    assert_eq!(token["targets"], json!(["default/prod/*"]));
    assert!(token["created_at"].is_string() && token["last_used_at"].is_string());
    assert_eq!(app.get("/v1/tokens", &secret).status_code().await, 403);

    let expiring = |expires_at: chrono::DateTime<chrono::Utc>| {
        app.post("/v1/tokens", &app.admin_token).json(&json!({
            "name": "short-lived", "scopes": ["read"], "targets": ["*/*/*"],
            "expires_at": expires_at,
        }))
    };
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    assert_eq!(
        refusal(expiring(past)).await,
        (422, "expires_at".to_owned())
    );
    let soon = chrono::Utc::now() + chrono::Duration::seconds(2);
    let created = expiring(soon).json_body().await;
    let short_lived = created["token"].as_str().unwrap();
    assert_eq!(app.get("/v1/deploys", short_lived).status_code().await, 200);
    // Expiry is the database's clock: a real wait.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(app.get("/v1/deploys", short_lived).status_code().await, 401);
}

#[tokio::test]
async fn revoking_a_token_ends_its_open_streams_on_every_replica_within_a_second() {
    let a = spawn_app_with(|_| {}).await;
    let b = crate::common::app::spawn_app_on(&a.database_url, |_| {}).await;
    let queued = a.submit(&deploy_body("prod", "web")).await;
    let (id, secret) = a.token(&["read"], &["*/*/*"]).await;
    let (_, other) = a.token(&["read"], &["*/*/*"]).await;
    let events = format!("/v1/deploys/{queued}/events");
    let mut streams = vec![
        SseStream::connect(a.get(&events, &secret)).await,
        SseStream::connect(b.get(&events, &secret)).await,
        SseStream::connect(b.get("/v1/events", &secret)).await,
    ];
    let mut unaffected = SseStream::connect(b.get("/v1/events", &other)).await;
    for stream in &mut streams[..2] {
        assert_eq!(
            stream
                .next_frame(Duration::from_secs(5))
                .await
                .unwrap()
                .id
                .as_deref(),
            Some("1")
        );
    }
    let revoked = a
        .delete(&format!("/v1/tokens/{id}"), &a.admin_token)
        .status_code()
        .await;
    assert_eq!(revoked, 204);
    for mut stream in streams {
        let ended = tokio::time::timeout(Duration::from_secs(1), async move {
            while stream.next_frame(Duration::from_secs(5)).await.is_some() {}
        })
        .await;
        assert!(
            ended.is_ok(),
            "a stream of the revoked token still open after a second"
        );
    }
    // Another token's stream goes on: it sees the next event.
    a.post(&format!("/v1/deploys/{queued}/cancel"), &a.admin_token)
        .status_code()
        .await;
    let frame = unaffected
        .next_frame(Duration::from_secs(5))
        .await
        .expect("still open");
    assert_eq!(frame.event.as_deref(), Some("deploy.cancelled"));
}

/// Reads from `stream` until the server closes it; panics if it stays open past `within`.
async fn closed_by_the_server(stream: &mut tokio::net::TcpStream, within: Duration) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut received))
        .await
        .expect("the server closed the connection")
        .expect("read");
    received
}

#[tokio::test]
async fn idle_and_half_sent_connections_are_closed_and_oversized_headers_refused() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app_with(|config| {
        config.connection_limits.header_read_timeout = Duration::from_secs(1);
        config.sse_keep_alive = Duration::from_millis(200);
    })
    .await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let connect = || tokio::net::TcpStream::connect(address.clone());

    let mut idle = connect().await.unwrap();
    assert!(
        closed_by_the_server(&mut idle, Duration::from_secs(3))
            .await
            .is_empty()
    );
    let mut half_sent = connect().await.unwrap();
    half_sent
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: rollcall\r\n")
        .await
        .unwrap();
    assert!(
        closed_by_the_server(&mut half_sent, Duration::from_secs(3))
            .await
            .is_empty()
    );
    let mut kept_alive = connect().await.unwrap();
    kept_alive
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: rollcall\r\n\r\n")
        .await
        .unwrap();
    let answered = closed_by_the_server(&mut kept_alive, Duration::from_secs(3)).await;
    assert!(
        answered.starts_with(b"HTTP/1.1 200"),
        "answered, then closed when idle"
    );

    let many: String = (0..150)
        .map(|index| format!("x-header-{index}: 1\r\n"))
        .collect();
    let large = format!("x-large: {}\r\n", "a".repeat(100 * 1024));
    for headers in [many, large] {
        let mut oversized = connect().await.unwrap();
        let request = format!("GET /healthz HTTP/1.1\r\nhost: rollcall\r\n{headers}\r\n");
        oversized.write_all(request.as_bytes()).await.unwrap();
        let answer = closed_by_the_server(&mut oversized, Duration::from_secs(3)).await;
        assert!(
            answer.starts_with(b"HTTP/1.1 431"),
            "{}",
            String::from_utf8_lossy(&answer[..answer.len().min(200)])
        );
    }

    // A live SSE stream outlasts the header timeout: its keep-alives are a response in progress.
    let queued = app.submit(&deploy_body("prod", "web")).await;
    let mut stream =
        SseStream::connect(app.get(&format!("/v1/deploys/{queued}/events"), &app.admin_token))
            .await;
    assert_eq!(
        stream
            .next_frame(Duration::from_secs(5))
            .await
            .unwrap()
            .id
            .as_deref(),
        Some("1")
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    app.post(&format!("/v1/deploys/{queued}/cancel"), &app.admin_token)
        .status_code()
        .await;
    let frame = stream
        .next_frame(Duration::from_secs(5))
        .await
        .expect("still open");
    assert_eq!(frame.event.as_deref(), Some("deploy.cancelled"));
}

#[tokio::test]
async fn a_chart_at_an_internal_address_is_refused_before_helm_could_fetch_it() {
    let app = spawn_app_with(|_| {}).await;
    let probes = [
        (
            json!({"repo": "http://169.254.169.254/latest/meta-data", "name": "x", "version": "1.0.0"}),
            "chart.repo",
        ),
        (
            json!({"repo": "https://charts.example.com@127.0.0.1:5432", "name": "x", "version": "1.0.0"}),
            "chart.repo",
        ),
        (
            json!({"oci": "oci://127.0.0.1:6443/api/v1", "version": "1.0.0"}),
            "chart.oci",
        ),
    ];
    for (chart, field) in probes {
        for dry_run in ["false", "true"] {
            let body = json!({"release": "web", "namespace": "prod", "chart": chart});
            let request = app
                .post(&format!("/v1/deploys?dry_run={dry_run}"), &app.admin_token)
                .json(&body);
            assert_eq!(refusal(request).await, (422, field.to_owned()), "{chart}");
        }
    }
    assert_eq!(rows_written(&app).await, 0);
}
