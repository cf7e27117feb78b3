//! `GET /v1/deploys` pagination and filters, and `/v1/releases`.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::common::app::{Answer, TestApp, deploy_body, spawn_app};

async fn list(app: &TestApp, query: &str) -> Value {
    let response = app
        .get(&format!("/v1/deploys{query}"), &app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{query}");
    response.json().await.unwrap()
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn keyset_pages_cover_every_deploy_once_newest_first() {
    let app = spawn_app().await;
    let mut submitted = Vec::new();
    for index in 0..7 {
        submitted.push(
            app.submit(&deploy_body("prod", &format!("web-{index}")))
                .await
                .to_string(),
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(cursor) => format!("?limit=3&cursor={cursor}"),
            None => "?limit=3".to_owned(),
        };
        let page = list(&app, &query).await;
        // A deploy created while paging appears on no later page: pages only move to older ids.
        if pages == 0 {
            app.submit(&deploy_body("prod", "late")).await;
        }
        seen.extend(ids(&page));
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    submitted.reverse();
    assert_eq!(seen, submitted);
}

#[tokio::test]
async fn filters_narrow_the_list() {
    let app = spawn_app().await;
    let mut labelled = deploy_body("prod", "web");
    labelled["labels"] = json!({"ci": "run-1", "team": "a"});
    let web_prod = app.submit(&labelled).await.to_string();
    let web_staging = app.submit(&deploy_body("staging", "web")).await.to_string();
    let mut other_cluster = deploy_body("prod", "api");
    other_cluster["cluster"] = json!("eu");
    let api_eu = app.submit(&other_cluster).await.to_string();
    app.post(
        &format!("/v1/deploys/{web_staging}/cancel"),
        &app.admin_token,
    )
    .send()
    .await
    .unwrap();

    assert_eq!(
        ids(&list(&app, "?release=web").await),
        [web_staging.clone(), web_prod.clone()]
    );
    assert_eq!(
        ids(&list(&app, "?namespace=prod").await),
        [api_eu.clone(), web_prod.clone()]
    );
    assert_eq!(ids(&list(&app, "?cluster=eu").await), [api_eu]);
    assert_eq!(ids(&list(&app, "?status=cancelled").await), [web_staging]);
    assert_eq!(
        ids(&list(&app, "?label=ci=run-1&label=team=a").await),
        [web_prod]
    );
    assert!(ids(&list(&app, "?label=ci=run-2").await).is_empty());
}

#[tokio::test]
async fn bad_list_parameters_are_named() {
    let app = spawn_app().await;
    for (query, field) in [
        ("?limit=0", "limit"),
        ("?limit=201", "limit"),
        ("?status=done", "status"),
        ("?cursor=zzz", "cursor"),
        ("?label=nokey", "label"),
        ("?colour=red", "colour"),
    ] {
        let response = app
            .get(&format!("/v1/deploys{query}"), &app.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], field, "{query}");
    }
}

#[tokio::test]
async fn releases_show_their_last_deploy_and_history() {
    let app = spawn_app().await;
    let first = app.submit(&deploy_body("prod", "web")).await.to_string();
    let second = app.submit(&deploy_body("prod", "web")).await.to_string();
    let api = app.submit(&deploy_body("prod", "api")).await.to_string();

    let releases: Value = app.get("/v1/releases", &app.admin_token).json_body().await;
    let latest: HashSet<String> = releases["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["last_deploy"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(latest, HashSet::from([second.clone(), api]));

    let web: Value = app
        .get("/v1/releases/prod/web", &app.admin_token)
        .json_body()
        .await;
    assert_eq!(web["last_deploy"]["id"], second.as_str());
    let history: Vec<&str> = web["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(history, [second.as_str(), first.as_str()]);

    let missing = app
        .get("/v1/releases/prod/nothing", &app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}
