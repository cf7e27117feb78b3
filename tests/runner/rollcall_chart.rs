//! rollcall deploying rollcall: its own chart (`deploy/helm/rollcall`) installed onto kubesim by
//! the real helm, tracked by rollcall to `succeeded`, every object of the chart followed; the
//! connection string and admin token go in as secret values and come out nowhere; an upgrade that
//! does not give them keeps the admin token and the generated sealing key of the install.

use kubesim::store::SECRETS;
use serde_json::{Value, json};

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
    let installed = secret_data(&setup);

    let upgraded = setup
        .deploy(&json!({
            "release": "rollcall",
            "namespace": "rollcall-system",
            "chart": {"path": "rollcall"},
            "secret_values": {
                "database": {"url": format!("postgres://rollcall:{PASSWORD}@postgres:5432/rollcall")},
            },
            "timeout": "120s",
        }))
        .await;
    assert_eq!(upgraded.status(), "succeeded", "{}", upgraded.explain());
    let kept = secret_data(&setup);
    for key in ["ROLLCALL_ADMIN_TOKEN", "ROLLCALL_SECRET_KEY"] {
        assert!(installed[key].is_string(), "{key} in {installed}");
        assert_eq!(kept[key], installed[key], "{key} changed on upgrade");
    }
    setup.shutdown().await;
}

/// The data of the chart's Secret as the cluster holds it (base64 values).
fn secret_data(setup: &super::scenarios::Setup) -> Value {
    setup
        .cluster
        .store()
        .get(&SECRETS, Some("rollcall-system"), "rollcall")
        .expect("the chart's Secret")["data"]
        .clone()
}
