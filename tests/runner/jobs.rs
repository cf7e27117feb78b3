//! DESIGN §8 Job scenarios end to end (chart `tests/charts/jobs`): a Job as a release resource,
//! tracked after the upgrade, and a migration Job run by helm as a hook, followed while helm waits
//! for it. Real helm against kubesim, a real PostgreSQL, rollcall over HTTP; the event sequence is
//! read from the SSE stream.

use kubesim::options::KubeVersion;
use serde_json::{Value, json};

use super::common::helm::helm3_bin;
use super::scenarios::{Finished, HEALTHY, Setup, request, setup, setup_with};

/// The line the failing containers log: it must reach the evidence. Containers whose streamed log
/// is asserted run 5s (0.5s at this time scale), leaving time to open the log stream.
const FAILURE_LOG: &str = "migration failed: relation users does not exist";

/// Panics unless `finished` streamed a container log line containing `line`.
fn assert_logged(finished: &Finished, line: &str) {
    assert!(
        finished
            .of("container.log")
            .iter()
            .any(|event| event["message"]
                .as_str()
                .is_some_and(|message| message.contains(line))),
        "no log line {line:?}:\n{}",
        finished.explain()
    );
}

/// A reported failure of a Job on its backoff limit, with the failing container's log as evidence.
fn assert_backoff_failure(failure: &Value) {
    assert_eq!(failure["reason"], "BackoffLimitExceeded", "{failure}");
    assert_eq!(
        failure["evidence"]["log_lines"],
        json!([FAILURE_LOG]),
        "{failure}"
    );
}

#[tokio::test]
async fn a_job_that_completes_succeeds_once_it_is_complete() {
    let setup = setup().await;
    // Runs long enough (3s at this time scale) for its log to be read before it completes: the
    // tracking of the revision starts only after helm has returned.
    let finished = setup
        .deploy(&request(
            "jobs",
            "batch",
            json!({"job": {"behavior": "exitAfter=30s;log=42 rows copied"}}),
        ))
        .await;
    assert_eq!(finished.status(), "succeeded", "{}", finished.explain());
    finished.assert_in_order(&HEALTHY);
    assert_logged(&finished.about("batch-task"), "42 rows copied");
    assert_eq!(finished.resource("Job", "batch-task")["state"], "ready");
    setup.shutdown().await;
}

#[tokio::test]
async fn a_failed_job_fails_the_deploy_with_backoff_limit_exceeded_and_its_logs() {
    let setup = setup().await;
    let behavior = format!("exitAfter=1s;exitCode=2;log={FAILURE_LOG}");
    let finished = setup
        .deploy(&request(
            "jobs",
            "batch",
            json!({"job": {"behavior": behavior}}),
        ))
        .await;
    assert_eq!(finished.status(), "failed", "{}", finished.explain());
    assert_eq!(
        finished.verdict_reason(),
        "BackoffLimitExceeded",
        "{}",
        finished.explain()
    );
    assert_eq!(finished.deploy["verdict"]["resource"]["kind"], "Job");
    assert_eq!(finished.deploy["verdict"]["resource"]["name"], "batch-task");
    finished.assert_in_order(&[
        "phase:tracking",
        "resource.added",
        "resource.failed",
        "report",
        "deploy.failed",
    ]);
    assert_backoff_failure(finished.reported_failure("Job", "batch-task"));
    assert_eq!(finished.resource("Job", "batch-task")["state"], "failed");
    setup.shutdown().await;
}

#[tokio::test]
async fn a_log_line_with_a_nul_byte_is_stored_with_its_evidence_and_verdict() {
    // PostgreSQL's text refuses U+0000: the line must not keep its batch, the report or the
    // verdict out of the database. It is stored with U+FFFD in the NUL's place.
    let setup = setup().await;
    let finished = setup
        .deploy(&request(
            "jobs",
            "batch",
            json!({"job": {"behavior": "exitAfter=1s;exitCode=2;log=bad{nul}bytes"}}),
        ))
        .await;
    assert_eq!(finished.status(), "failed", "{}", finished.explain());
    assert_eq!(
        finished.verdict_reason(),
        "BackoffLimitExceeded",
        "{}",
        finished.explain()
    );
    let failure = finished.reported_failure("Job", "batch-task");
    assert_eq!(
        failure["evidence"]["log_lines"],
        json!(["bad\u{FFFD}bytes"]),
        "{failure}"
    );
    assert!(
        !finished.explain().contains('\0'),
        "a NUL reached the API:\n{}",
        finished.explain()
    );
    setup.shutdown().await;
}

/// Values with the regular Job off and the migration hook on, `hook` overriding its defaults.
fn with_hook(hook: Value) -> Value {
    let mut values = json!({"enabled": true, "behavior": "exitAfter=1s"});
    if let (Some(values), Some(hook)) = (values.as_object_mut(), hook.as_object()) {
        values.extend(hook.clone());
    }
    json!({"job": {"enabled": false}, "hook": values})
}

async fn failed_pre_upgrade_hook_scenario(setup: Setup) {
    // The first revision's hook succeeds and stays (`before-hook-creation`): the upgrade's hook
    // replaces it, and the old Job's completion must not be taken for the new one's.
    let first = setup
        .deploy(&request("jobs", "shop", with_hook(json!({}))))
        .await;
    assert_eq!(first.status(), "succeeded", "{}", first.explain());
    let behavior = format!("exitAfter=5s;exitCode=3;log={FAILURE_LOG}");
    let finished = setup
        .deploy(&request(
            "jobs",
            "shop",
            with_hook(json!({"behavior": behavior})),
        ))
        .await;

    assert_eq!(finished.status(), "failed", "{}", finished.explain());
    let verdict = &finished.deploy["verdict"];
    assert_eq!(verdict["reason"], "HookFailed", "{verdict}");
    assert_eq!(
        verdict["detail"]["original_reason"], "BackoffLimitExceeded",
        "{verdict}"
    );
    assert_eq!(verdict["resource"]["kind"], "Job", "{verdict}");
    assert_eq!(verdict["resource"]["name"], "shop-migrate", "{verdict}");
    let message = verdict["message"].as_str().unwrap();
    assert!(
        message.starts_with("hook Job default/shop-migrate (pre-install,pre-upgrade): "),
        "{message}"
    );
    assert!(
        !finished.sequence().contains(&"phase:tracking".to_owned()),
        "{}",
        finished.explain()
    );

    // Followed while helm waited for it: its status, Events and logs, then its failure.
    let upgrading = finished.during("upgrading");
    let hook = upgrading.about("shop-migrate");
    assert!(
        hook.events
            .iter()
            .all(|event| event["data"]["hook"] == "pre-install,pre-upgrade"),
        "{}",
        hook.explain()
    );
    hook.assert_in_order(&["resource.added", "resource.status", "resource.failed"]);
    for kind in ["k8s.event", "container.log", "pod.status"] {
        assert!(!hook.of(kind).is_empty(), "no {kind}:\n{}", hook.explain());
    }
    assert_logged(&hook, FAILURE_LOG);
    let failure = upgrading.reported_failure("Job", "shop-migrate");
    assert_backoff_failure(failure);
    assert!(
        !failure["evidence"]["events"].as_array().unwrap().is_empty(),
        "{failure}"
    );
    assert_eq!(finished.resource("Job", "shop-migrate")["state"], "failed");
    setup.shutdown().await;
}

#[tokio::test]
async fn a_failed_pre_upgrade_hook_fails_the_deploy_naming_the_hook_job() {
    failed_pre_upgrade_hook_scenario(setup().await).await;
}

#[tokio::test]
async fn a_failed_pre_upgrade_hook_fails_the_deploy_naming_the_hook_job_with_helm_v3() {
    failed_pre_upgrade_hook_scenario(setup_with(KubeVersion::DEFAULT, helm3_bin()).await).await;
}

#[tokio::test]
async fn a_hook_still_running_when_helm_gives_up_is_named_in_the_verdict() {
    let setup = setup().await;
    let mut body = request(
        "jobs",
        "shop",
        with_hook(json!({"behavior": "exitAfter=10m;log=migrating"})),
    );
    // helm's hook timeout is what is left of the deploy's.
    body["timeout"] = json!("4s");
    let finished = setup.deploy(&body).await;
    assert_eq!(finished.status(), "failed", "{}", finished.explain());
    let verdict = &finished.deploy["verdict"];
    assert_eq!(verdict["resource"]["name"], "shop-migrate", "{verdict}");
    let message = verdict["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "hook Job default/shop-migrate (pre-install,pre-upgrade) had not finished: "
        ),
        "{message}"
    );
    assert_eq!(
        finished.resource("Job", "shop-migrate")["state"],
        "progressing"
    );
    setup.shutdown().await;
}

#[tokio::test]
async fn a_succeeding_hook_job_is_followed_while_helm_runs_it() {
    let setup = setup().await;
    let values = with_hook(json!({
        "behavior": "exitAfter=5s;log=schema is current",
        // helm deletes it once it succeeded: that is not news worth streaming.
        "deletePolicy": "before-hook-creation,hook-succeeded",
    }));
    let finished = setup.deploy(&request("jobs", "shop", values)).await;
    assert_eq!(finished.status(), "succeeded", "{}", finished.explain());
    let hook = finished.during("upgrading").about("shop-migrate");
    hook.assert_in_order(&["resource.added", "resource.status", "resource.ready"]);
    assert_logged(&hook, "schema is current");
    let mut after_ready = hook
        .events
        .iter()
        .skip_while(|event| event["type"] != "resource.ready")
        .skip(1);
    assert!(
        after_ready.all(|event| event["type"] != "resource.status"),
        "{}",
        hook.explain()
    );
    // Only the release's own resources are tracked after the upgrade; the hook is not in its manifest.
    finished.assert_in_order(&[
        "phase:upgrading",
        "phase:tracking",
        "report",
        "deploy.succeeded",
    ]);
    let tracked_hook = finished.during("tracking").about("shop-migrate");
    assert!(tracked_hook.events.is_empty(), "{}", tracked_hook.explain());
    assert_eq!(finished.resource("Job", "shop-migrate")["state"], "ready");
    setup.shutdown().await;
}

#[tokio::test]
async fn cancel_while_helm_waits_for_a_hook_leaves_the_release_usable() {
    let setup = setup().await;
    let values = with_hook(json!({"behavior": "exitAfter=10m;log=migrating"}));
    let id = setup.app.submit(&request("jobs", "shop", values)).await;
    // Cancelled once the hook's container is seen running (logging), while the stream is followed.
    let (running, seen_running) = tokio::sync::oneshot::channel();
    let mut running = Some(running);
    let follow = setup.follow(id, |event| {
        if event["type"] == "container.log"
            && event["resource"]["name"] == "shop-migrate"
            && let Some(running) = running.take()
        {
            // Only the cancel waits on it, and it waits until the stream ends.
            _ = running.send(());
        }
    });
    let cancel = async {
        seen_running
            .await
            .expect("the hook's container logs before the deploy ends");
        setup.cancel(id, "migration takes too long").await;
    };
    let (finished, ()) = tokio::join!(follow, cancel);
    assert_eq!(finished.status(), "cancelled", "{}", finished.explain());
    finished.assert_in_order(&[
        "phase:upgrading",
        "container.log",
        "deploy.cancelling",
        "deploy.cancelled",
    ]);
    // helm was stopped mid-hook without leaving the release locked: the next deploy runs, and its
    // hook Job (replacing the one left running) is the one followed.
    let next = setup
        .deploy(&request("jobs", "shop", with_hook(json!({}))))
        .await;
    assert_eq!(next.status(), "succeeded", "{}", next.explain());
    let hook = next.during("upgrading").about("shop-migrate");
    assert!(!hook.of("resource.ready").is_empty(), "{}", hook.explain());
    setup.shutdown().await;
}
