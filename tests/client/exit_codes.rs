//! Each way a CI job's `rollcall deploy` can end, with what it prints: 0 succeeded, 1 failed with
//! the failure report, 2 a mistake on the command line, 3 cancelled, 4 rejected by the server with
//! its field errors, 5 could not tell.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::common::app::all_events;
use super::common::app::spawn_app;
use super::{Server, assert_each_event_once, run, words};

/// An address where nothing listens.
fn refusing_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    format!("http://{address}")
}

#[tokio::test]
async fn a_healthy_deploy_prints_each_event_once_and_exits_0() {
    let server = Server::start(0.1).await;
    let app = &server.app;
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, "replicas: 5\nimage: registry.example/web:2.0\n").unwrap();
    let values = values.to_str().unwrap();
    let secrets = dir.path().join("secrets.yaml");
    std::fs::write(&secrets, "database:\n  password: hunter2-in-the-vault\n").unwrap();
    let secrets = secrets.to_str().unwrap();

    let command = format!(
        "deploy web -n default --chart web -f {values} --set replicas=2 --secret-values {secrets} \
         --label ci.run=https://ci.example/runs/42"
    );
    let deployed = run(&app.address, &app.admin_token, &words(&command), &[]).await;

    assert_eq!(deployed.code, 0, "{deployed}");
    let id = deployed.deploy_id();
    assert!(
        deployed
            .stdout
            .contains(&format!("✓ deploy {id} of web to default succeeded")),
        "{deployed}"
    );
    assert!(
        deployed.stdout.contains("  Deployment/web  ready  2/2"),
        "the final state of each resource: {deployed}"
    );
    let events = all_events(&app.address, &app.admin_token, id).await;
    assert_each_event_once(&deployed.event_lines(), &events, &deployed);
    // The file and --set were merged on the client, --set winning, with helm's typing.
    let deploy = app.deploy(id).await;
    assert_eq!(
        deploy["values"],
        json!({"replicas": 2, "image": "registry.example/web:2.0"})
    );
    assert_eq!(deploy["labels"]["ci.run"], "https://ci.example/runs/42");
    // The secret values were sent as such: the server shows only their keyed digest.
    assert_eq!(
        deploy["secret_values_digest"].as_str().map(str::len),
        Some(64),
        "{deploy}"
    );
    assert!(!deployed.to_string().contains("hunter2"), "{deployed}");

    let status = run(
        &app.address,
        &app.admin_token,
        &words(&format!("status {id} -o json")),
        &[],
    )
    .await;
    assert_eq!(status.code, 0, "{status}");
    let shown: Value = serde_json::from_str(&status.stdout).expect("-o json prints JSON only");
    assert_eq!(shown["status"], "succeeded");
    assert_eq!(shown["resources"].as_array().map(Vec::len), Some(2));

    let listed = run(
        &app.address,
        &app.admin_token,
        &words("deploys --release web -n default"),
        &[],
    )
    .await;
    assert_eq!(listed.code, 0, "{listed}");
    let rows: Vec<&str> = listed.stdout.lines().collect();
    assert!(rows[0].starts_with("ID "), "{listed}");
    assert!(
        rows[1].starts_with(&id.to_string()) && rows[1].contains("succeeded"),
        "{listed}"
    );
    server.shutdown().await;
}

/// Where each line stands: inside a `::stop-commands::<token>` region or not.
fn regions(stdout: &str) -> Vec<(bool, &str)> {
    let mut token: Option<String> = None;
    stdout
        .lines()
        .map(|line| {
            if let Some(started) = line.strip_prefix("::stop-commands::") {
                assert!(token.is_none(), "regions do not nest: {line}");
                token = Some(started.to_owned());
            } else if token
                .as_ref()
                .is_some_and(|token| line == format!("::{token}::"))
            {
                token = None;
                return (false, line);
            }
            (token.is_some(), line)
        })
        .collect()
}

#[tokio::test]
async fn a_crash_loop_exits_1_with_its_evidence_and_cannot_drive_the_ci_runner() {
    let server = Server::start(0.1).await;
    let app = &server.app;
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.md");
    // The application prints a workflow command: it must reach the log as text only.
    let forged = "::warning title=forged::from the app";

    let behavior = format!("behavior=crashAfter=1s;exitCode=1;log={forged}");
    let command = [
        words("deploy crashloop -n default --chart crashloop --set"),
        vec![behavior.as_str()],
    ]
    .concat();
    let github = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
    ];
    let failed = run(&app.address, &app.admin_token, &command, &github).await;

    assert_eq!(failed.code, 1, "{failed}");
    let id = failed.deploy_id();
    for expected in [
        format!("✗ deploy {id} of crashloop to default failed: CrashLoopBackOff"),
        "Reason: CrashLoopBackOff".to_owned(),
        "Resource: Deployment default/crashloop".to_owned(),
        "container web: exit code 1 (Error)".to_owned(),
        "log line".to_owned(),
        "of container web".to_owned(),
        format!("  | {forged}"),
    ] {
        assert!(
            failed.stdout.contains(&expected),
            "{expected:?} in {failed}"
        );
    }
    let lines = regions(&failed.stdout);
    let quoting_the_app: Vec<_> = lines
        .iter()
        .filter(|(_, line)| line.contains(forged))
        .collect();
    assert!(
        quoting_the_app.len() >= 2,
        "the log streamed and reported: {failed}"
    );
    assert!(
        quoting_the_app.iter().all(|(stopped, _)| *stopped),
        "cluster text outside ::stop-commands::: {failed}"
    );
    let annotation = "::error title=rollcall%3A crashloop failed (CrashLoopBackOff)::";
    assert!(
        lines
            .iter()
            .any(|(stopped, line)| !stopped && line.starts_with(annotation)),
        "an error annotation the runner reads: {failed}"
    );
    assert!(
        lines
            .iter()
            .any(|(_, line)| *line == "::group::rollcall: crashloop → default"),
        "the event lines are grouped: {failed}"
    );

    let markdown = std::fs::read_to_string(&summary).expect("a job summary");
    assert!(
        markdown
            .starts_with("### ❌ rollcall: `crashloop` in `default` failed: CrashLoopBackOff\n"),
        "{markdown}"
    );
    assert!(
        markdown.contains(&format!("```text\n{forged}\n")),
        "{markdown}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_cancelled_deploy_exits_3() {
    let server = Server::start(0.1).await;
    let app = &server.app;
    let submit = "deploy stuck -n default --chart web --no-follow \
                  --set name=stuck,behavior=neverReady=true";
    let submitted = run(&app.address, &app.admin_token, &words(submit), &[]).await;
    assert_eq!(submitted.code, 0, "{submitted}");
    let id = submitted.deploy_id().to_string();

    let cancelled = run(
        &app.address,
        &app.admin_token,
        &["cancel", &id, "--reason", "superseded by a hotfix"],
        &[],
    )
    .await;
    assert_eq!(cancelled.code, 0, "{cancelled}");
    assert!(
        cancelled.stdout.starts_with(&format!("deploy {id} cancel")),
        "{cancelled}"
    );

    let followed = run(
        &app.address,
        &app.admin_token,
        &words(&format!("status {id} --follow")),
        &[],
    )
    .await;
    assert_eq!(followed.code, 3, "{followed}");
    assert!(
        followed.stdout.contains("superseded by a hotfix"),
        "the reason is shown: {followed}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_rejected_request_prints_the_field_errors_and_exits_4() {
    let app = spawn_app().await;
    let rejected = run(
        &app.address,
        &app.admin_token,
        &[
            "deploy",
            "Web_App",
            "-n",
            "default",
            "--chart",
            "../outside",
        ],
        &[],
    )
    .await;
    assert_eq!(rejected.code, 4, "{rejected}");
    assert!(rejected.stderr.contains("(422)"), "{rejected}");
    for field in ["  release: ", "  chart.path: "] {
        assert!(
            rejected.stderr.lines().any(|line| line.starts_with(field)),
            "{field:?} named: {rejected}"
        );
    }
    assert!(
        !format!("{rejected}").contains(&app.admin_token),
        "the token is never printed"
    );

    let forbidden = run(&app.address, "not-a-token", &words("deploys"), &[]).await;
    assert_eq!(forbidden.code, 4, "{forbidden}");
    assert!(forbidden.stderr.contains("(401)"), "{forbidden}");
}

#[tokio::test]
async fn command_line_mistakes_exit_2_before_anything_is_sent() {
    // Nothing listens there: a request would end in exit code 5, not 2.
    let nowhere = refusing_server();
    for (args, says) in [
        (
            "deploy web -n default --chart web --set replicas",
            "key \"replicas\" has no value",
        ),
        (
            "deploy web -n default --chart web -f /nonexistent/values.yaml",
            "cannot read values file /nonexistent/values.yaml",
        ),
        ("deploy web --chart web", "--namespace"),
        ("deploy web -n default --chart web --queue later", "later"),
    ] {
        let mistaken = run(&nowhere, "token", &words(args), &[]).await;
        assert_eq!(mistaken.code, 2, "{args:?}: {mistaken}");
        assert!(mistaken.stderr.contains(says), "{args:?}: {mistaken}");
    }
}

#[tokio::test]
async fn an_unreachable_server_exits_5_once_the_reconnect_budget_is_spent() {
    let started = Instant::now();
    let unreachable = run(
        &refusing_server(),
        "token",
        &words("deploy web -n default --chart web --reconnect-budget 2s"),
        &[],
    )
    .await;
    let took = started.elapsed();
    assert_eq!(unreachable.code, 5, "{unreachable}");
    assert!(
        unreachable.stderr.contains("trying again"),
        "it retried: {unreachable}"
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(30),
        "gave up after {took:?}"
    );
}
