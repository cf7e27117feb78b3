//! Hooks of the configuration file as `rollcall serve` reads them: an invalid `[[hooks]]` entry
//! stops the process at start naming the hook and the field; a configured hook verifies
//! deliveries, and those that fail verification leave one log line per interval, never a secret.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::common::charts;
use crate::common::hooks::{GITHUB_SECRET, PUSHED_COMMIT, github_push, github_signature, metric};
use crate::common::postgres::fresh_database;
use crate::common::runner::helm_bin;
use crate::common::serve::{ServeEnv, ServeProcess};

/// A GitHub hook of the configuration file, its secret in `WEB_PUSH_SECRET`.
const CONFIGURED_HOOK: &str = r#"
[[hooks]]
name = "web-push"
provider = "github"
secret_env = "WEB_PUSH_SECRET"
values_from = { "/after" = "image.tag" }
events = ["push"]
refs = ["refs/heads/main"]
target = { namespace = "prod", release = "web", chart = { path = "web" } }
"#;

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("rollcall.toml");
    std::fs::write(&path, text).expect("write the configuration file");
    path.display().to_string()
}

/// Runs `rollcall serve` on `config` until it exits (it must, within 30 s); its stderr.
async fn serve_exits_with(config: &str, database_url: &str) -> String {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .arg("serve")
        .env("ROLLCALL_CONFIG", config)
        .env("DATABASE_URL", database_url)
        .env("ROLLCALL_CHART_DIR", charts::catalog())
        .env("ROLLCALL_LISTEN", "127.0.0.1:0")
        .env("ROLLCALL_NO_RUNNER", "true")
        .env("WEB_PUSH_SECRET", GITHUB_SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start rollcall serve");
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("rollcall serve kept running with an invalid hook")
        .expect("rollcall serve's output");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{stderr}");
    stderr
}

#[tokio::test]
async fn serve_refuses_to_start_with_an_invalid_hook_naming_it_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database().await;
    let cases = [
        (
            CONFIGURED_HOOK.replace("\"github\"", "\"bitbucket\""),
            "provider: unknown provider \"bitbucket\"",
        ),
        (
            CONFIGURED_HOOK.replace("\"/after\"", "\"after\""),
            "values_from.after: must be a JSON pointer",
        ),
        (
            CONFIGURED_HOOK.replace("refs/heads/main", "refs/heads/[main"),
            "refs[0]: invalid glob",
        ),
        (
            CONFIGURED_HOOK.replace("WEB_PUSH_SECRET", "NOT_SET_ANYWHERE"),
            "secret_env: the environment variable NOT_SET_ANYWHERE is not set",
        ),
    ];
    for (config, expected) in cases {
        let stderr = serve_exits_with(&write_config(dir.path(), &config), &database_url).await;
        assert!(
            stderr.contains("hook \"web-push\" in the config file") && stderr.contains(expected),
            "expected {expected:?} about hook web-push, got:\n{stderr}"
        );
        assert!(!stderr.contains(GITHUB_SECRET), "{stderr}");
    }
}

#[tokio::test]
async fn unverified_deliveries_are_counted_and_logged_once_per_interval_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database().await;
    let admin_token = format!("hooks-admin-{}", uuid::Uuid::new_v4().simple());
    let config = write_config(dir.path(), CONFIGURED_HOOK);
    let env = ServeEnv {
        database_url: &database_url,
        kubeconfig: &dir.path().join("kubeconfig"),
        helm: &helm_bin(),
        chart_dir: &charts::catalog(),
        admin_token: &admin_token,
        dir: dir.path(),
    };
    let server = ServeProcess::start(
        &env,
        "hooks",
        &[
            ("ROLLCALL_CONFIG", config.as_str()),
            ("WEB_PUSH_SECRET", GITHUB_SECRET),
            ("ROLLCALL_NO_RUNNER", "true"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let push = serde_json::to_vec(&github_push("refs/heads/main", PUSHED_COMMIT)).unwrap();
    let deliver = |delivery_id: String, secret: &str| {
        client
            .post(format!("{}/v1/hooks/web-push", server.address))
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-github-delivery", delivery_id)
            .header("x-hub-signature-256", github_signature(secret, &push))
            .body(push.clone())
            .send()
    };
    for attempt in 0..5 {
        let response = deliver(format!("forged-{attempt}"), "a guessed secret, wrong")
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    let response = deliver("genuine".into(), GITHUB_SECRET).await.unwrap();
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());

    let metrics = client
        .get(format!("{}/metrics", server.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(metric(&metrics, "web-push", "unauthorized"), 5, "{metrics}");
    assert_eq!(metric(&metrics, "web-push", "deployed"), 1, "{metrics}");
    let log = server.log();
    let unverified: Vec<Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| {
            line["message"]
                .as_str()
                .is_some_and(|message| message.contains("failed verification"))
        })
        .collect();
    assert_eq!(unverified.len(), 1, "one line for the burst:\n{log}");
    assert_eq!(unverified[0]["hook"], "web-push", "{log}");
    assert!(!log.contains(GITHUB_SECRET), "{log}");
}
