//! A deploy followed live: the real helm installs a StatefulSet on kubesim whose pods become ready
//! one by one and then crash. The page's readiness bar moves while the deploy runs, then the page
//! shows the failed verdict with the container's last log lines.

use std::collections::BTreeSet;

use serde_json::json;

use super::browser::{Browser, PATIENCE};
use super::common::app::spawn_app_with;
use super::common::runner::{start_kubesim, with_runner};

/// What the crashing container writes before it exits, as its log shows it.
const LOG_LINE: &str = "FATAL: could not open data directory";

#[tokio::test]
async fn a_crash_looping_deploy_shows_its_bars_moving_then_the_verdict_with_log_lines() {
    let home = tempfile::tempdir().unwrap();
    let (cluster, kubeconfig) = start_kubesim(1.0, home.path()).await;
    let app = spawn_app_with(|config| with_runner(config, Some(kubeconfig), home.path())).await;
    let browser = Browser::start(1280, 1000).await;
    browser.sign_in(&app.address, &app.admin_token).await;

    // OrderedReady: db-0, then db-1, ... each ready after 1 s and crashing 2.5 s after its start.
    let id = app
        .submit(&json!({
            "release": "db",
            "namespace": "default",
            "chart": {"path": "statefulset"},
            "values": {"behavior": format!("readyAfter=1s;crashAfter=2500ms;exitCode=2;log={LOG_LINE} (run {{restartCount}})")},
            "timeout": "60s",
        }))
        .await;
    browser.goto(&app.url(&format!("/ui/deploys/{id}"))).await;

    let bar = "li.resource[data-kind='StatefulSet'] progress";
    let mut readings = BTreeSet::new();
    let mut running_screenshot = false;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let seen = browser
            .run_with(
                "const bar = document.querySelector(arguments[0]); \
                 const verdict = document.querySelector('section.verdict'); \
                 return {value: bar && !bar.hidden ? bar.value : null, max: bar ? bar.max : null, \
                         finished: verdict !== null && !verdict.hidden};",
                vec![json!(bar)],
            )
            .await;
        if seen["finished"] == true {
            break;
        }
        if let Some(value) = seen["value"].as_f64() {
            readings.insert(value as u32);
            if value > 0.0 && !running_screenshot {
                browser.screenshot("deploy-running").await;
                running_screenshot = true;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no verdict on the page; bar readings {readings:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        readings.len() >= 3 && readings.contains(&0) && readings.iter().any(|v| *v > 0),
        "the readiness bar moved while the deploy ran: {readings:?}"
    );
    assert_eq!(
        browser
            .run_with(
                "return document.querySelector(arguments[0]).max",
                vec![json!(bar)]
            )
            .await,
        3,
        "the bar counts the StatefulSet's 3 replicas"
    );

    let verdict = browser.text("section.verdict").await;
    assert!(verdict.contains("failed"), "{verdict}");
    assert!(verdict.contains("CrashLoopBackOff"), "{verdict}");
    let evidence = browser.text("section.verdict .evidence pre.log").await;
    assert!(evidence.contains(LOG_LINE), "the log lines: {evidence}");
    let resource = browser
        .text("li.resource[data-kind='StatefulSet'] .badge")
        .await;
    assert_eq!(resource, "failed");
    let steps = browser.text("ol.timeline").await;
    for step in ["Queued", "Rendering", "Upgrading", "Tracking", "Failed"] {
        assert!(
            steps.contains(step),
            "{step} missing from the timeline: {steps}"
        );
    }
    let deploy = app.deploy(id).await;
    assert_eq!(deploy["status"], "failed");
    assert_eq!(deploy["verdict"]["reason"], "CrashLoopBackOff");

    let problems = browser.accessibility_problems().await;
    assert!(problems.is_empty(), "{problems:#?}");
    browser.full_page_screenshot("deploy-failed", 1280).await;
    browser.client.set_window_size(390, 844).await.unwrap();
    browser
        .assert_fits_the_window("the deploy page on a phone")
        .await;
    browser
        .full_page_screenshot("deploy-failed-narrow", 390)
        .await;
    browser.assert_stayed_on(&app.address).await;
    browser.close().await;
    app.shutdown().await;
    cluster.shutdown().await;
}
