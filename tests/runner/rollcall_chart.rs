//! rollcall deploying rollcall: its own chart (`deploy/helm/rollcall`) installed onto kubesim by
//! the real helm, tracked by rollcall to `succeeded`, every object of the chart followed; the
//! connection string and admin token go in as secret values and come out nowhere.

use serde_json::json;

use super::scenarios::setup;

#[tokio::test]
async fn rollcall_installs_its_own_chart_and_tracks_it_to_success() {
    const PASSWORD: &str = "s3cret-database-password";
    const ADMIN_TOKEN: &str = "admin-token-from-the-ci-vault";
    let setup = setup().await;
    let finished = setup
        .deploy(&json!({
            "release": "rollcall",
            "namespace": "rollcall-system",
            "create_namespace": true,
            "chart": {"path": "rollcall"},
            "values": {"config": "[limits]\nbody_limit_bytes = 2097152\n"},
            "secret_values": {
                "database": {"url": format!("postgres://rollcall:{PASSWORD}@postgres:5432/rollcall")},
                "adminToken": ADMIN_TOKEN,
            },
            "timeout": "120s",
        }))
        .await;

    assert_eq!(finished.status(), "succeeded", "{}", finished.explain());
    assert_eq!(finished.resource("Deployment", "rollcall")["ready"], "2/2");
    for (kind, name) in [
        ("Service", "rollcall"),
        ("ServiceAccount", "rollcall"),
        ("Secret", "rollcall"),
        ("ConfigMap", "rollcall"),
        ("ClusterRole", "rollcall"),
        ("ClusterRoleBinding", "rollcall"),
        ("PodDisruptionBudget", "rollcall"),
    ] {
        assert_eq!(
            finished.resource(kind, name)["state"],
            "ready",
            "{kind} {name}: {}",
            finished.explain()
        );
    }
    let recorded = format!("{}{:?}", finished.deploy, finished.events);
    for secret in [PASSWORD, ADMIN_TOKEN] {
        assert!(!recorded.contains(secret), "{secret} was recorded");
    }
    setup.shutdown().await;
}
