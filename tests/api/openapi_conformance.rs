//! Every operation of the checked-in OpenAPI document, driven for real (a deploy of the demo chart
//! `web` to kubesim with the real helm, a hook, a subscription, a token), each answer checked
//! against the document: its status is one the operation lists, its content type one that status
//! lists, its body valid against that schema (`$ref`s resolved into `components`), and so are the
//! JSON pages of events and the `data` of every SSE event of the deploy's stream and the firehose.
//! The test ends by checking that no operation of the document went unexercised.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::app::{TestApp, spawn_app_with, test_server_key};
use crate::common::hooks::{GITHUB_SECRET, PUSHED_COMMIT, github_delivery, github_push};
use crate::common::runner::{start_kubesim, with_runner};
use crate::common::sse::{SseFrame, SseStream, content_type};

/// Generous: only guards against a hung test.
const SAFETY_TIMEOUT: Duration = Duration::from_secs(90);

/// The checked-in document, the validators compiled from it, and the operations exercised so far.
struct Document {
    document: Value,
    validators: Mutex<HashMap<String, jsonschema::Validator>>,
    exercised: Mutex<BTreeSet<String>>,
}

impl Document {
    fn load() -> Self {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
        let text = std::fs::read_to_string(path).expect("openapi/openapi.json");
        Document {
            document: serde_json::from_str(&text).expect("the document is JSON"),
            validators: Mutex::default(),
            exercised: Mutex::default(),
        }
    }

    /// Every operation, as `METHOD /path/{template}`.
    fn operations(&self) -> BTreeSet<String> {
        let paths = self.document["paths"].as_object().expect("paths");
        paths
            .iter()
            .flat_map(|(path, operations)| {
                let methods = operations.as_object().expect("operations");
                methods
                    .keys()
                    .map(move |method| format!("{} {path}", method.to_uppercase()))
            })
            .collect()
    }

    /// `instance` against `schema`, a schema of this document (its `$ref`s point into
    /// `components`); the errors as text when it is not valid.
    fn validate(&self, schema: &Value, instance: &Value) -> Result<(), String> {
        let key = schema.to_string();
        let mut validators = self.validators.lock().expect("validators");
        if !validators.contains_key(&key) {
            let root = json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "$ref": "#/$defs/answer",
                "$defs": {"answer": schema},
                "components": self.document["components"],
            });
            let validator = jsonschema::options()
                .should_validate_formats(true)
                .build(&root)
                .unwrap_or_else(|error| panic!("schema {schema} does not compile: {error}"));
            validators.insert(key.clone(), validator);
        }
        let errors: Vec<String> = validators[&key]
            .iter_errors(instance)
            .map(|error| format!("at {:?}: {error}", error.instance_path().as_str()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// The operation object of `operation` (`METHOD /path`), recorded as exercised.
    fn operation(&self, operation: &str) -> &Value {
        let (method, path) = operation.split_once(' ').expect("METHOD /path");
        let found = &self.document["paths"][path][method.to_lowercase()];
        assert!(found.is_object(), "{operation} is not in the document");
        self.exercised
            .lock()
            .expect("exercised")
            .insert(operation.to_owned());
        found
    }

    /// The schema `operation` documents for `status` and `content_type` (its essence), or the
    /// failure naming what is undocumented.
    fn documented(&self, operation: &str, status: u16, content_type: &str) -> Option<Value> {
        let responses = &self.operation(operation)["responses"];
        let response = responses.get(status.to_string()).unwrap_or_else(|| {
            panic!("{operation} answered {status}, which it does not document: {responses}")
        });
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        match response.get("content") {
            None => {
                assert!(
                    essence.is_empty(),
                    "{operation} {status}: documented without a body, answered {content_type:?}"
                );
                None
            }
            Some(content) => {
                let media = content.get(essence).unwrap_or_else(|| {
                    panic!(
                        "{operation} {status}: content type {content_type:?} is not among {content}"
                    )
                });
                Some(media["schema"].clone())
            }
        }
    }

    /// Sends `request`, checks the answer against `operation`, returns its status and body (JSON,
    /// or the text as a JSON string; `null` when empty).
    async fn send(&self, operation: &str, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request
            .send()
            .await
            .unwrap_or_else(|error| panic!("{operation}: {error}"));
        let status = response.status().as_u16();
        let content_type = content_type(&response);
        let text = response.text().await.expect("a body");
        let schema = self.documented(operation, status, &content_type);
        let body = if text.is_empty() {
            Value::Null
        } else if content_type.contains("json") {
            serde_json::from_str(&text)
                .unwrap_or_else(|error| panic!("{operation} {status}: not JSON ({error}): {text}"))
        } else {
            Value::String(text)
        };
        if let Some(schema) = schema {
            self.validate(&schema, &body).unwrap_or_else(|error| {
                panic!(
                    "{operation} {status}: the body does not match the document: {error}\n{body}"
                )
            });
        }
        (status, body)
    }

    /// As [`Document::send`], and the status must be `expected`.
    async fn expect(
        &self,
        operation: &str,
        expected: u16,
        request: reqwest::RequestBuilder,
    ) -> Value {
        let (status, body) = self.send(operation, request).await;
        assert_eq!(status, expected, "{operation}: {body}");
        body
    }

    /// An SSE stream of `operation`: its status and content type documented.
    async fn stream(&self, operation: &str, request: reqwest::RequestBuilder) -> SseStream {
        let stream = SseStream::connect(request).await;
        assert_eq!(stream.status(), 200, "{operation}");
        self.documented(operation, 200, stream.content_type());
        stream
    }

    /// The `data` of an SSE frame against the component schema `name`.
    fn check_frame(&self, operation: &str, frame: &SseFrame, name: &str) -> Value {
        let data = frame.json();
        let schema = json!({"$ref": format!("#/components/schemas/{name}")});
        self.validate(&schema, &data).unwrap_or_else(|error| {
            panic!(
                "{operation}: the data of SSE event {:?} is no {name}: {error}\n{data}",
                frame.event
            )
        });
        data
    }
}

/// The deploy stream to its `end`, every frame checked: events as `Event`, `end` as `StreamEnd`.
async fn follow_deploy(document: &Document, app: &TestApp, id: Uuid) -> Vec<Value> {
    let operation = "GET /v1/deploys/{id}/events";
    let request = app.get(&format!("/v1/deploys/{id}/events"), &app.admin_token);
    let mut stream = document.stream(operation, request).await;
    let mut events = Vec::new();
    loop {
        let frame = stream
            .next_frame(SAFETY_TIMEOUT)
            .await
            .unwrap_or_else(|| panic!("the stream of {id} closed before `end`"));
        if frame.event.as_deref() == Some("end") {
            let end = document.check_frame(operation, &frame, "StreamEnd");
            assert_eq!(end["last_seq"], events.len());
            return events;
        }
        events.push(document.check_frame(operation, &frame, "Event"));
    }
}

fn hook_definition() -> Value {
    json!({
        "name": "web-push",
        "provider": "github",
        "secret": GITHUB_SECRET,
        "target": {"namespace": "default", "release": "web-hooked", "chart": {"path": "web"}},
        "values_from": {"/after": "image.tag"},
        "events": ["push"],
        "refs": ["refs/heads/main"],
    })
}

#[tokio::test]
async fn every_operation_answers_as_the_document_says() {
    let home = tempfile::tempdir().expect("a temporary directory");
    let (cluster, kubeconfig) = start_kubesim(0.1, home.path()).await;
    let app = spawn_app_with(|config| {
        with_runner(config, Some(kubeconfig.clone()), home.path());
        config.secret_key = Some(test_server_key());
    })
    .await;
    let document = Document::load();
    let token = app.admin_token.as_str();
    let client = &app.client;

    document
        .expect("GET /healthz", 200, client.get(app.url("/healthz")))
        .await;
    document
        .expect("GET /readyz", 200, client.get(app.url("/readyz")))
        .await;
    document
        .expect("GET /metrics", 200, client.get(app.url("/metrics")))
        .await;

    // The firehose, open before the deploy, and its refusals.
    let firehose = "GET /v1/events";
    let mut live = document
        .stream(
            firehose,
            app.get("/v1/events?type=deploy.*,phase,resource.*", token),
        )
        .await;
    document
        .expect(firehose, 400, app.get("/v1/events?type=", token))
        .await;
    document
        .expect(firehose, 401, client.get(app.url("/v1/events")))
        .await;

    // Refused submissions, then a dry run and a real deploy.
    let submit = "POST /v1/deploys";
    let body = json!({
        "release": "web",
        "namespace": "default",
        "chart": {"path": "web"},
        "values": {"behavior": "readyAfter=1s"},
        "labels": {"source": "conformance"},
        "timeout": "2m",
    });
    let deploys = "/v1/deploys";
    document
        .expect(submit, 401, client.post(app.url(deploys)).json(&body))
        .await;
    let malformed = app
        .post(deploys, token)
        .header("content-type", "application/json")
        .body("{");
    document.expect(submit, 400, malformed).await;
    let not_json = app
        .post(deploys, token)
        .header("content-type", "text/plain")
        .body("x");
    document.expect(submit, 415, not_json).await;
    let invalid = json!({"release": "", "namespace": "default", "chart": {"path": "web"}});
    document
        .expect(submit, 422, app.post(deploys, token).json(&invalid))
        .await;
    let bad_key = app
        .post(deploys, token)
        .header("idempotency-key", "two words")
        .json(&body);
    document.expect(submit, 400, bad_key).await;
    let planned = app.post("/v1/deploys?dry_run=true", token).json(&body);
    document.expect(submit, 200, planned).await;
    let accepted = document
        .expect(submit, 202, app.post(deploys, token).json(&body))
        .await;
    let id: Uuid = accepted["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("a uuid");

    let events = follow_deploy(&document, &app, id).await;
    assert_eq!(
        events.last().expect("events")["type"],
        "deploy.succeeded",
        "{events:?}"
    );
    loop {
        let frame = live
            .next_frame(SAFETY_TIMEOUT)
            .await
            .expect("the firehose stays open");
        let event = document.check_frame(firehose, &frame, "Event");
        if event["deploy_id"] == id.to_string() && event["type"] == "deploy.succeeded" {
            break;
        }
    }

    let one = "GET /v1/deploys/{id}";
    document
        .expect(one, 200, app.get(&format!("/v1/deploys/{id}"), token))
        .await;
    let unknown = Uuid::now_v7();
    document
        .expect(one, 404, app.get(&format!("/v1/deploys/{unknown}"), token))
        .await;
    document
        .expect(one, 400, app.get("/v1/deploys/a%00b", token))
        .await;
    let list = "GET /v1/deploys";
    let page = document
        .expect(
            list,
            200,
            app.get("/v1/deploys?label=source=conformance", token),
        )
        .await;
    assert_eq!(page["items"][0]["id"], id.to_string());
    document
        .expect(list, 400, app.get("/v1/deploys?limit=0", token))
        .await;
    document
        .expect(list, 400, app.get("/v1/deploys?cursor=", token))
        .await;

    let pages = "GET /v1/deploys/{id}/events";
    let json_page = app
        .get(&format!("/v1/deploys/{id}/events?limit=5"), token)
        .header("accept", "application/json");
    let first = document.expect(pages, 200, json_page).await;
    assert_eq!(first["items"].as_array().expect("items").len(), 5);
    let beyond = app
        .get(
            &format!("/v1/deploys/{id}/events?after={}", events.len() + 1),
            token,
        )
        .header("accept", "application/json");
    document.expect(pages, 400, beyond).await;
    let notifications = format!("/v1/deploys/{id}/notifications");
    document
        .expect(
            "GET /v1/deploys/{id}/notifications",
            200,
            app.get(&notifications, token),
        )
        .await;
    let cancel = app
        .post(&format!("/v1/deploys/{id}/cancel"), token)
        .json(&json!({}));
    document
        .expect("POST /v1/deploys/{id}/cancel", 409, cancel)
        .await;
    let unknown_field = app
        .post(&format!("/v1/deploys/{id}/cancel"), token)
        .json(&json!({"why": "x"}));
    document
        .expect("POST /v1/deploys/{id}/cancel", 422, unknown_field)
        .await;

    document
        .expect("GET /v1/releases", 200, app.get("/v1/releases", token))
        .await;
    document
        .expect(
            "GET /v1/releases",
            400,
            app.get("/v1/releases?nope=1", token),
        )
        .await;
    let release = "GET /v1/releases/{namespace}/{release}";
    document
        .expect(release, 200, app.get("/v1/releases/default/web", token))
        .await;
    document
        .expect(release, 404, app.get("/v1/releases/default/nothing", token))
        .await;

    // Tokens.
    let minted = json!({"name": "ci", "scopes": ["read"], "targets": ["*/default/*"]});
    let created = document
        .expect(
            "POST /v1/tokens",
            201,
            app.post("/v1/tokens", token).json(&minted),
        )
        .await;
    let no_scopes = json!({"name": "ci", "scopes": [], "targets": ["*/*/*"]});
    document
        .expect(
            "POST /v1/tokens",
            422,
            app.post("/v1/tokens", token).json(&no_scopes),
        )
        .await;
    document
        .expect("GET /v1/tokens", 200, app.get("/v1/tokens", token))
        .await;
    let reader = created["token"].as_str().expect("a token");
    document
        .expect("GET /v1/tokens", 403, app.get("/v1/tokens", reader))
        .await;
    let revoke = format!("/v1/tokens/{}", created["id"].as_str().expect("id"));
    document
        .expect("DELETE /v1/tokens/{id}", 204, app.delete(&revoke, token))
        .await;
    document
        .expect("DELETE /v1/tokens/{id}", 404, app.delete(&revoke, token))
        .await;

    // Subscriptions.
    let subscription = json!({"name": "portal", "url": "https://hooks.example.com/rollcall/7f3a"});
    let created = document
        .expect(
            "POST /v1/subscriptions",
            201,
            app.post("/v1/subscriptions", token).json(&subscription),
        )
        .await;
    let private = json!({"name": "internal", "url": "http://192.168.1.20/hook"});
    document
        .expect(
            "POST /v1/subscriptions",
            422,
            app.post("/v1/subscriptions", token).json(&private),
        )
        .await;
    document
        .expect(
            "GET /v1/subscriptions",
            200,
            app.get("/v1/subscriptions", token),
        )
        .await;
    let one = format!("/v1/subscriptions/{}", created["id"].as_str().expect("id"));
    document
        .expect("GET /v1/subscriptions/{id}", 200, app.get(&one, token))
        .await;
    let disable = client
        .patch(app.url(&one))
        .bearer_auth(token)
        .json(&json!({"enabled": false}));
    document
        .expect("PATCH /v1/subscriptions/{id}", 200, disable)
        .await;
    document
        .expect(
            "DELETE /v1/subscriptions/{id}",
            204,
            app.delete(&one, token),
        )
        .await;
    document
        .expect("GET /v1/subscriptions/{id}", 404, app.get(&one, token))
        .await;

    // Hooks: defined, changed, delivered to, listed with their deliveries, deleted.
    document
        .expect(
            "POST /v1/hooks",
            201,
            app.post("/v1/hooks", token).json(&hook_definition()),
        )
        .await;
    document
        .expect(
            "POST /v1/hooks",
            409,
            app.post("/v1/hooks", token).json(&hook_definition()),
        )
        .await;
    document
        .expect("GET /v1/hooks", 200, app.get("/v1/hooks", token))
        .await;
    document
        .expect(
            "GET /v1/hooks/{name}",
            200,
            app.get("/v1/hooks/web-push", token),
        )
        .await;
    let patch = client
        .patch(app.url("/v1/hooks/web-push"))
        .bearer_auth(token)
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"refs": ["refs/heads/main", "refs/heads/release"]}"#);
    document.expect("PATCH /v1/hooks/{name}", 200, patch).await;
    let delivery = "POST /v1/hooks/{name}";
    let push = serde_json::to_vec(&github_push("refs/heads/feature", PUSHED_COMMIT)).expect("JSON");
    let ignored = document
        .expect(
            delivery,
            202,
            github_delivery(&app, "web-push", "push", "delivery-1", &push),
        )
        .await;
    assert!(ignored["ignored"].is_string(), "{ignored}");
    let unsigned = client
        .post(app.url("/v1/hooks/web-push"))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", "delivery-2")
        .body(push.clone());
    document.expect(delivery, 401, unsigned).await;
    let deliveries = "GET /v1/hooks/{name}/deliveries";
    let recorded = document
        .expect(
            deliveries,
            200,
            app.get("/v1/hooks/web-push/deliveries", token),
        )
        .await;
    assert_eq!(recorded["items"].as_array().expect("items").len(), 1);
    document
        .expect(
            deliveries,
            400,
            app.get("/v1/hooks/web-push/deliveries?limit=0", token),
        )
        .await;
    document
        .expect(
            "DELETE /v1/hooks/{name}",
            204,
            app.delete("/v1/hooks/web-push", token),
        )
        .await;
    document
        .expect(
            "GET /v1/hooks/{name}",
            404,
            app.get("/v1/hooks/web-push", token),
        )
        .await;

    let exercised = document.exercised.lock().expect("exercised").clone();
    let missed: Vec<String> = document
        .operations()
        .difference(&exercised)
        .cloned()
        .collect();
    assert!(
        missed.is_empty(),
        "operations of the document this test does not exercise (add them): {missed:?}"
    );
    app.shutdown().await;
    cluster.shutdown().await;
}
