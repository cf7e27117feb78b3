//! Bearer tokens, scopes over glob targets, revocation, and what each token may see.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::app::{Answer, TestApp, deploy_body, spawn_app, spawn_app_with};
use clap::Parser;
use rollcall::cli::{Cli, Command};
use rollcall::config::Config;

async fn deploy_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from deploys")
        .fetch_one(&app.state.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn requests_without_a_valid_token_are_401_and_change_nothing() {
    let app = spawn_app().await;
    let anonymous = app
        .client
        .post(app.url("/v1/deploys"))
        .json(&deploy_body("prod", "web"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(
        anonymous.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(anonymous.json::<Value>().await.unwrap()["status"], 401);
    let forged = app
        .post("/v1/deploys", "rc_0123456789abcdef0123456789abcdef")
        .json(&deploy_body("prod", "web"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let listing = app.client.get(app.url("/v1/deploys")).send().await.unwrap();
    assert_eq!(listing.status(), 401);
    assert_eq!(deploy_count(&app).await, 0);
}

#[tokio::test]
async fn scopes_apply_only_within_their_glob_targets() {
    let app = spawn_app().await;
    let (_, ci) = app
        .token(&["deploy", "read"], &["default/prod/web-*"])
        .await;
    let post = |body: Value| app.post("/v1/deploys", &ci).json(&body).send();
    assert_eq!(
        post(deploy_body("prod", "web-eu")).await.unwrap().status(),
        202
    );
    for (namespace, release) in [("prod", "api"), ("staging", "web-eu")] {
        let response = post(deploy_body(namespace, release)).await.unwrap();
        assert_eq!(response.status(), 403, "{namespace}/{release}");
        assert_eq!(response.json::<Value>().await.unwrap()["status"], 403);
    }
    let mut other_cluster = deploy_body("prod", "web-eu");
    other_cluster["cluster"] = json!("eu");
    assert_eq!(post(other_cluster).await.unwrap().status(), 403);
    assert_eq!(deploy_count(&app).await, 1);
}

#[tokio::test]
async fn a_token_without_the_scope_is_403_and_changes_nothing() {
    let app = spawn_app().await;
    let id = app.submit(&deploy_body("prod", "web")).await;
    let (_, reader) = app.token(&["read"], &["*/*/*"]).await;
    let (_, deployer) = app.token(&["deploy"], &["*/*/*"]).await;
    assert_eq!(
        app.post("/v1/deploys", &reader)
            .json(&deploy_body("prod", "web"))
            .status_code()
            .await,
        403
    );
    assert_eq!(
        app.post(&format!("/v1/deploys/{id}/cancel"), &deployer)
            .status_code()
            .await,
        403
    );
    assert_eq!(app.get("/v1/deploys", &deployer).status_code().await, 403);
    assert_eq!(app.deploy(id).await["status"], "queued");
    assert_eq!(deploy_count(&app).await, 1);
}

#[tokio::test]
async fn revoked_tokens_stop_working_at_once() {
    let app = spawn_app().await;
    let (id, token) = app.token(&["read"], &["*/*/*"]).await;
    assert_eq!(app.get("/v1/deploys", &token).status_code().await, 200);
    let revoke = app
        .delete(&format!("/v1/tokens/{id}"), &app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 204);
    assert_eq!(app.get("/v1/deploys", &token).status_code().await, 401);
    let again = app
        .delete(&format!("/v1/tokens/{id}"), &app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
}

#[tokio::test]
async fn tokens_are_stored_hashed_and_shown_once() {
    let app = spawn_app().await;
    let (id, token) = app.token(&["read"], &["*/prod/*"]).await;
    let stored: String = sqlx::query_scalar("select row_to_json(t)::text from api_tokens t")
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    assert!(
        !stored.contains(&token[3..]),
        "the secret is stored in clear: {stored}"
    );
    let digest: Vec<u8> =
        sqlx::query_scalar("select secret_sha256 from api_tokens where id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.state.pool)
            .await
            .unwrap();
    assert_eq!(digest, Sha256::digest(token.as_bytes()).to_vec());
}

#[tokio::test]
async fn only_global_admins_manage_tokens() {
    let app = spawn_app().await;
    let (_, team_admin) = app.token(&["admin"], &["*/team-a/*"]).await;
    let response = app
        .post("/v1/tokens", &team_admin)
        .json(&json!({"name": "x", "scopes": ["admin"], "targets": ["*/*/*"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let invalid = app
        .post("/v1/tokens", &app.admin_token)
        .json(&json!({"name": "x", "scopes": ["root"], "targets": ["prod"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 422);
    let problem: Value = invalid.json().await.unwrap();
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["scopes[0]", "targets[0]"]);
}

#[tokio::test]
async fn lists_show_only_deploys_within_the_read_targets() {
    let app = spawn_app().await;
    let prod = app.submit(&deploy_body("prod", "web")).await;
    let staging = app.submit(&deploy_body("staging", "web")).await;
    let (_, prod_reader) = app.token(&["read"], &["default/prod/*"]).await;

    let page: Value = app.get("/v1/deploys", &prod_reader).json_body().await;
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [prod.to_string()]);
    let releases: Value = app.get("/v1/releases", &prod_reader).json_body().await;
    assert_eq!(releases["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.get(&format!("/v1/deploys/{staging}"), &prod_reader)
            .status_code()
            .await,
        403
    );
    assert_eq!(
        app.get(&format!("/v1/deploys/{staging}/events"), &prod_reader)
            .status_code()
            .await,
        403
    );
    assert_eq!(
        app.get("/v1/releases/staging/web", &prod_reader)
            .status_code()
            .await,
        403
    );
}

#[tokio::test]
async fn tokens_from_the_config_file_are_recognised_by_their_digest() {
    let secret = "config-file-token-secret";
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        format!(
            "[[tokens]]\nname = \"ci\"\nsha256 = \"{}\"\nscopes = [\"deploy\"]\ntargets = [\"*/prod/*\"]\n",
            hex::encode(Sha256::digest(secret.as_bytes()))
        ),
    )
    .unwrap();
    let command = [
        "rollcall",
        "serve",
        "--database-url",
        "unused",
        "--config",
        file.path().to_str().unwrap(),
    ];
    let Command::Serve(args) = Cli::try_parse_from(command).unwrap().command else {
        panic!("not the serve command");
    };
    let file_tokens = Config::from_args(*args).unwrap().static_tokens;
    let app = spawn_app_with(move |config| config.static_tokens.extend(file_tokens)).await;
    assert_eq!(
        app.post("/v1/deploys", secret)
            .json(&deploy_body("prod", "web"))
            .status_code()
            .await,
        202
    );
    assert_eq!(
        app.post("/v1/deploys", secret)
            .json(&deploy_body("dev", "web"))
            .status_code()
            .await,
        403
    );
    assert_eq!(
        app.post("/v1/deploys", "config-file-token-secreT")
            .json(&deploy_body("prod", "web"))
            .status_code()
            .await,
        401
    );
}
