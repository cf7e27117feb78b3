//! `POST /v1/deploys/{id}/cancel` and the state machine behind it.

use serde_json::{Value, json};

use crate::common::app::{Answer, deploy_body, spawn_app};
use rollcall::store::deploys;

#[tokio::test]
async fn cancelling_a_queued_deploy_records_who_why_and_an_event() {
    let app = spawn_app().await;
    let id = app.submit(&deploy_body("prod", "web")).await;
    let response = app
        .post(&format!("/v1/deploys/{id}/cancel"), &app.admin_token)
        .json(&json!({"reason": "wrong version"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let deploy: Value = response.json().await.unwrap();
    assert_eq!(deploy["status"], "cancelled");
    assert_eq!(deploy["cancel_reason"], "wrong version");
    assert_eq!(deploy["cancelled_by"], "bootstrap-admin");
    assert!(deploy["finished_at"].is_string());

    let events: Value = app
        .get(&format!("/v1/deploys/{id}/events"), &app.admin_token)
        .header("accept", "application/json")
        .json_body()
        .await;
    let types: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["deploy.queued", "deploy.cancelled"]);
    assert_eq!(events["items"][1]["data"]["reason"], "wrong version");
}

#[tokio::test]
async fn cancelling_a_finished_deploy_is_a_conflict_and_changes_nothing() {
    let app = spawn_app().await;
    let id = app.submit(&deploy_body("prod", "web")).await;
    let cancel = || {
        app.post(&format!("/v1/deploys/{id}/cancel"), &app.admin_token)
            .send()
    };
    assert_eq!(cancel().await.unwrap().status(), 200);
    let again = cancel().await.unwrap();
    assert_eq!(again.status(), 409);
    let problem: Value = again.json().await.unwrap();
    assert_eq!(
        problem["detail"],
        "cannot cancel a deploy that is cancelled"
    );
    assert_eq!(app.deploy(id).await["last_event_seq"], 2);
}

#[tokio::test]
async fn cancelling_a_running_deploy_marks_it_cancelling_for_the_runner() {
    let app = spawn_app().await;
    let id = app.submit(&deploy_body("prod", "web")).await;
    let mut tx = app.state.events.begin().await.unwrap();
    let lease = chrono::Utc::now() + chrono::Duration::seconds(30);
    deploys::start(&mut tx, id, "worker-1", lease)
        .await
        .unwrap();
    app.state.events.commit(tx).await.unwrap();

    let response = app
        .post(&format!("/v1/deploys/{id}/cancel"), &app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let deploy: Value = response.json().await.unwrap();
    assert_eq!(deploy["status"], "cancelling");
    assert!(deploy["finished_at"].is_null());
    assert_eq!(deploy["last_event_seq"], 3);
}

#[tokio::test]
async fn the_database_allows_one_active_deploy_per_release() {
    let app = spawn_app().await;
    let first = app.submit(&deploy_body("prod", "web")).await;
    let second = app.submit(&deploy_body("prod", "web")).await;
    let lease = chrono::Utc::now() + chrono::Duration::seconds(30);
    let mut tx = app.state.events.begin().await.unwrap();
    deploys::start(&mut tx, first, "worker-1", lease)
        .await
        .unwrap();
    app.state.events.commit(tx).await.unwrap();

    let mut tx = app.state.events.begin().await.unwrap();
    let error = deploys::start(&mut tx, second, "worker-2", lease)
        .await
        .unwrap_err();
    assert!(
        matches!(error, rollcall::store::StoreError::ReleaseBusy { .. }),
        "{error}"
    );
    drop(tx);
    assert_eq!(app.deploy(second).await["status"], "queued");
    assert_eq!(app.deploy(second).await["last_event_seq"], 1);
}

#[tokio::test]
async fn unknown_deploys_are_404() {
    let app = spawn_app().await;
    for id in [uuid::Uuid::now_v7().to_string(), "not-a-uuid".to_owned()] {
        let response = app
            .post(&format!("/v1/deploys/{id}/cancel"), &app.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        let response = app
            .get(&format!("/v1/deploys/{id}"), &app.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
    }
}

#[tokio::test]
async fn workers_claim_queued_deploys_in_order_one_per_release() {
    let app = spawn_app().await;
    let web_1 = app.submit(&deploy_body("prod", "web")).await;
    let web_2 = app.submit(&deploy_body("prod", "web")).await;
    let api = app.submit(&deploy_body("prod", "api")).await;
    let lease = chrono::Utc::now() + chrono::Duration::seconds(30);
    let claim = || async {
        let mut tx = app.state.events.begin().await.unwrap();
        let claimed = deploys::claim_next(&mut tx, "worker", lease).await.unwrap();
        app.state.events.commit(tx).await.unwrap();
        claimed.map(|deploy| deploy.id)
    };
    assert_eq!(claim().await, Some(web_1));
    // web_2 waits behind the running web_1.
    assert_eq!(claim().await, Some(api));
    assert_eq!(claim().await, None);
    assert_eq!(app.deploy(web_1).await["status"], "running");
    assert_eq!(app.deploy(web_1).await["lease_owner"], "worker");
    assert_eq!(app.deploy(web_2).await["status"], "queued");
}
