//! The checked-in OpenAPI document must match what the code generates.

#[test]
fn checked_in_openapi_document_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    let generated = format!("{}\n", rollcall::cli::openapi_json());
    assert!(
        checked_in == generated,
        "openapi/openapi.json is out of date; regenerate it with:\n    cargo run -q -- openapi > openapi/openapi.json"
    );
}

/// Clients switch on `verdict.reason`: the document lists every reason, each with its meaning.
#[test]
fn the_document_lists_every_verdict_reason_with_its_description() {
    use rollcall::domain::verdict::VerdictReason;
    let document: serde_json::Value =
        serde_json::from_str(&rollcall::cli::openapi_json()).expect("JSON");
    let schemas = &document["components"]["schemas"];
    assert_eq!(
        schemas["Verdict"]["properties"]["reason"]["$ref"],
        "#/components/schemas/VerdictReason"
    );
    let schema = &schemas["VerdictReason"];
    let listed: Vec<&str> = schema["enum"]
        .as_array()
        .expect("an enum")
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    let descriptions = schema["x-enum-descriptions"]
        .as_array()
        .expect("descriptions");
    assert_eq!(listed.len(), VerdictReason::ALL.len());
    for (index, reason) in VerdictReason::ALL.iter().enumerate() {
        assert_eq!(listed[index], reason.as_str());
        assert_eq!(descriptions[index], reason.description());
        assert!(
            schema["description"]
                .as_str()
                .is_some_and(|text| text.contains(&format!("`{reason}`: "))),
            "{reason} is not described"
        );
    }
}

mod served {
    use serde_json::{Value, json};

    use crate::common::app::{Answer, deploy_body, spawn_app};

    fn document() -> Value {
        serde_json::from_str(&rollcall::cli::openapi_json()).expect("JSON")
    }

    /// Event types as the API sends them are the document's `EventType` values.
    #[tokio::test]
    async fn event_types_on_the_wire_are_the_documents() {
        let app = spawn_app().await;
        let id = app.submit(&deploy_body("prod", "web")).await;
        let cancelled = app
            .post(&format!("/v1/deploys/{id}/cancel"), &app.admin_token)
            .header("content-type", "application/json")
            .body("null")
            .status_code()
            .await;
        assert_eq!(
            cancelled, 200,
            "a null cancel body, as documented, is no body"
        );
        let document = document();
        let documented = document["components"]["schemas"]["EventType"]["enum"]
            .as_array()
            .expect("an enum")
            .clone();
        let events = crate::common::app::all_events(&app.address, &app.admin_token, id).await;
        assert_eq!(events.len(), 2);
        for event in events {
            assert!(documented.contains(&event["type"]), "{event}");
        }
    }

    /// Each status a probe gets is one its operation documents.
    #[tokio::test]
    async fn statuses_the_api_answers_are_documented() {
        let app = spawn_app().await;
        let id = app.submit(&deploy_body("prod", "web")).await;
        let cancel = format!("/v1/deploys/{id}/cancel");
        let token = &app.admin_token;
        let probes = [
            (
                "/v1/deploys/{id}/cancel",
                "post",
                app.post(&cancel, token).json(&json!({"reason": 1})),
            ),
            (
                "/v1/deploys/{id}/cancel",
                "post",
                app.post(&cancel, token)
                    .header("content-type", "text/plain")
                    .body("x"),
            ),
            (
                "/v1/deploys/{id}/cancel",
                "post",
                app.post(&cancel, token)
                    .header("content-type", "application/json")
                    .body("{"),
            ),
            (
                "/v1/deploys/{id}/cancel",
                "post",
                app.post(&cancel, token)
                    .json(&json!({"reason": "x".repeat(2 * 1024 * 1024)})),
            ),
            ("/v1/releases", "get", app.get("/v1/releases?nope=1", token)),
            ("/v1/events", "get", app.get("/v1/events?nope=1", token)),
            ("/v1/deploys", "get", app.get("/v1/deploys?limit=0", token)),
            ("/v1/tokens", "get", app.get("/v1/tokens", "rc_wrong")),
        ];
        let document = document();
        for (path, method, request) in probes {
            let status = request.status_code().await;
            let responses = &document["paths"][path][method]["responses"];
            assert!(
                responses.get(status.to_string()).is_some(),
                "{method} {path} answered {status}, which the document does not list: {responses}"
            );
        }
    }
}
