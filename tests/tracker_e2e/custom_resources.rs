//! Custom resources read by a configured per-GroupKind rule (`[[tracking.custom_resources]]`).

use chrono::Utc;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use rollcall::domain::policy::TrackingOverrides;
use rollcall::tracker::core::{ConditionSpec, CustomResourceRuleSpec, CustomResourceRules};
use rollcall::tracker::watch::TrackOptions;
use serde_json::{Value, json};

use crate::support::{NAMESPACE, Sim};

async fn create_widget_definition(sim: &Sim) {
    let definitions: Api<CustomResourceDefinition> = Api::all(sim.client.clone());
    let definition: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                          "subresources": {"status": {}},
                          "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }))
    .expect("valid definition");
    definitions
        .create(&PostParams::default(), &definition)
        .await
        .expect("the definition is created");
}

/// What the widget's operator reports, written through the status subresource.
async fn set_widget_conditions(widgets: &Api<DynamicObject>, conditions: Value) {
    widgets
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": conditions}})),
        )
        .await
        .expect("the status is patched");
}

fn available_rule() -> CustomResourceRules {
    CustomResourceRules::from_specs(vec![CustomResourceRuleSpec {
        group: "example.com".to_owned(),
        kind: "Widget".to_owned(),
        ready_when: vec![ConditionSpec {
            condition: "Available".to_owned(),
            status: "True".to_owned(),
        }],
        ..CustomResourceRuleSpec::default()
    }])
    .expect("valid rule")
}

#[tokio::test]
async fn a_configured_condition_decides_when_a_custom_resource_is_ready() {
    let sim = Sim::start().await;
    create_widget_definition(&sim).await;
    let since = Utc::now();
    let resources = sim
        .apply(&[json!({
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "namespace": NAMESPACE}, "spec": {"size": 1},
        })])
        .await
        .expect("the widget applies");
    let (widget_resource, _) = sim
        .hub
        .resolve("example.com/v1", "Widget")
        .await
        .expect("the kind is discovered");
    let widgets: Api<DynamicObject> =
        Api::namespaced_with(sim.client.clone(), NAMESPACE, &widget_resource);
    // kstatus would call this ready; the rule waits for Available=True.
    set_widget_conditions(&widgets, json!([{"type": "Ready", "status": "True"}])).await;
    let options = TrackOptions {
        since: Some(since),
        custom_resources: available_rule(),
        ..TrackOptions::default()
    };
    let outcome = sim
        .track(
            resources,
            &TrackingOverrides::default(),
            options,
            move |_| {
                tokio::spawn(async move {
                    set_widget_conditions(
                        &widgets,
                        json!([{"type": "Ready", "status": "True"},
                               {"type": "Available", "status": "True"}]),
                    )
                    .await;
                });
            },
        )
        .await;
    assert_eq!(outcome.result(), "succeeded", "{}", outcome.explain());
    let messages: Vec<&str> = outcome
        .of("resource.status")
        .iter()
        .map(|event| event.message.as_str())
        .collect();
    assert_eq!(
        messages.first().copied(),
        Some("Waiting for widget \"w\": Available=True..."),
        "{}",
        outcome.explain()
    );
    assert_eq!(
        messages.last().copied(),
        Some("widget \"w\" is ready"),
        "{}",
        outcome.explain()
    );
    sim.shutdown().await;
}
