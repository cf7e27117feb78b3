//! Verdict reasons: one closed set, also for verdicts recorded by earlier versions.

use serde_json::{Value, json};

use crate::common::app::{TestApp, deploy_body, spawn_app};

/// The verdict migration, run again over rows written in the old spellings (it maps only those).
const VERDICT_MIGRATION: &str = include_str!("../../migrations/20261206000001_verdict_reasons.sql");

async fn failed_with(app: &TestApp, release: &str, verdict: Value) -> uuid::Uuid {
    let id = app.submit(&deploy_body("prod", release)).await;
    sqlx::query("update deploys set status = 'failed', verdict = $2 where id = $1")
        .bind(id)
        .bind(verdict)
        .execute(&app.state.pool)
        .await
        .expect("legacy verdict written");
    id
}

#[tokio::test]
async fn verdicts_recorded_in_earlier_spellings_are_mapped_onto_the_closed_set() {
    let app = spawn_app().await;
    let web = json!({"kind": "Deployment", "namespace": "prod", "name": "web"});
    let cases = [
        (
            json!({"reason": "namespace_not_found", "message": "namespaces \"prod\" not found"}),
            "NamespaceNotFound",
        ),
        (
            json!({"reason": "Error", "resource": web,
                   "message": "3 failures, 2 allowed: container \"web\" terminated with exit code 1 (Error)"}),
            "CrashLoopBackOff",
        ),
        (
            json!({"reason": "InvalidSpec", "message": "widget \"w\" is stalled",
                   "resource": {"kind": "Widget", "namespace": "prod", "name": "w"}}),
            "CustomResourceFailed",
        ),
        (
            json!({"reason": "ImagePullBackOff", "resource": web, "message": "cannot pull"}),
            "ImagePullBackOff",
        ),
    ];
    let mut ids = Vec::new();
    for (index, (verdict, _)) in cases.iter().enumerate() {
        ids.push(failed_with(&app, &format!("app-{index}"), verdict.clone()).await);
    }
    sqlx::raw_sql(VERDICT_MIGRATION)
        .execute(&app.state.pool)
        .await
        .expect("migration runs");

    for (id, (old, expected)) in ids.iter().zip(&cases) {
        let deploy = app.deploy(*id).await;
        let verdict = &deploy["verdict"];
        assert_eq!(verdict["reason"], *expected, "{verdict}");
        assert_eq!(verdict["message"], old["message"], "{verdict}");
        if old["reason"] == *expected {
            assert!(verdict.get("detail").is_none(), "{verdict}");
        } else {
            assert_eq!(
                verdict["detail"]["original_reason"], old["reason"],
                "{verdict}"
            );
        }
    }
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("rollcall_deploy_verdicts{reason=\"CrashLoopBackOff\"} 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("rollcall_deploy_verdicts{reason=\"Timeout\"} 0\n"));
    app.shutdown().await;
}
