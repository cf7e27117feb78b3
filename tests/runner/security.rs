//! Secrets of deploys that run (issue 17): `secret_values` sealed at rest with the server key so that
//! any replica runs the deploy, deleted when it ends, and never readable in what rollcall stores or
//! sends.

use std::path::{Path, PathBuf};

use base64::Engine;
use kubesim::store::DEPLOYMENTS;
use rollcall::config::Config;
use rollcall::domain::sealing::ServerKey;
use serde_json::{Value, json};
use uuid::Uuid;

use super::common::app::{TEST_SERVER_KEY, TestApp, spawn_app_on, spawn_app_with};
use super::{follow_events, start_kubesim, wait_for_end, with_runner};

const SECRET_IMAGE: &str = "registry.example/web:sealed-7f3a9c41";
/// 18 bytes: its base64 form has no padding, which the kubesim behaviour annotation could not hold.
const PRINTED_PASSWORD: &str = "p4ssw0rd-leak-913x";
const PRINTED_IMAGE: &str = "registry.example/leaky:tag-c0ffee42";

/// A kubesim cluster and a replica that accepts deploys and runs none; the deploys run on another
/// replica of the same database ([`Replicas::runner`]).
struct Replicas {
    cluster: kubesim::ClusterHandle,
    kubeconfig: PathBuf,
    home: tempfile::TempDir,
    accepting: TestApp,
}

impl Replicas {
    async fn start(key: Option<&str>) -> Self {
        let home = tempfile::tempdir().unwrap();
        let (cluster, kubeconfig) = start_kubesim(0.1, home.path()).await;
        let accepting = spawn_app_with(|config| {
            configure(config, &kubeconfig, home.path(), key);
            config.runner = None;
        })
        .await;
        Replicas {
            cluster,
            kubeconfig,
            home,
            accepting,
        }
    }

    /// A replica with a runner, which never held the accepted values in memory.
    async fn runner(&self, key: Option<&str>) -> TestApp {
        spawn_app_on(&self.accepting.database_url, |config| {
            configure(config, &self.kubeconfig, self.home.path(), key);
        })
        .await
    }

    async fn sealed_rows(&self, id: Uuid) -> Vec<String> {
        sqlx::query_scalar("select sealed from deploy_secret_values where deploy_id = $1")
            .bind(id)
            .fetch_all(&self.accepting.state.pool)
            .await
            .unwrap()
    }

    fn applied_deployment(&self) -> Option<Value> {
        self.cluster
            .store()
            .get(&DEPLOYMENTS, Some("default"), "web")
    }

    async fn stop(self, running: TestApp) {
        running.shutdown().await;
        self.accepting.shutdown().await;
        self.cluster.shutdown().await;
    }
}

fn configure(config: &mut Config, kubeconfig: &Path, home: &Path, key: Option<&str>) {
    with_runner(config, Some(kubeconfig.to_owned()), home);
    config.secret_key = key.map(|key| ServerKey::parse(key).expect("a valid key"));
}

/// A `web` deploy whose image is a secret value.
fn secret_image_deploy() -> Value {
    json!({
        "release": "shop",
        "namespace": "default",
        "chart": {"path": "web"},
        "values": {"replicas": 1},
        "secret_values": {"image": SECRET_IMAGE},
        "timeout": "60s",
    })
}

#[tokio::test]
async fn sealed_secret_values_run_on_another_replica_and_are_deleted_at_the_end() {
    let replicas = Replicas::start(Some(TEST_SERVER_KEY)).await;
    let id = replicas.accepting.submit(&secret_image_deploy()).await;
    let sealed = replicas.sealed_rows(id).await;
    assert_eq!(
        sealed.len(),
        1,
        "sealed in the database until the deploy ends"
    );
    assert!(!sealed[0].contains("sealed-7f3a9c41"), "{}", sealed[0]);
    let dump: String = sqlx::query_scalar("select row_to_json(d)::text from deploys d")
        .fetch_one(&replicas.accepting.state.pool)
        .await
        .unwrap();
    assert!(!dump.contains("sealed-7f3a9c41"), "{dump}");

    let running = replicas.runner(Some(TEST_SERVER_KEY)).await;
    let deploy = wait_for_end(&running, id).await;
    assert_eq!(deploy["status"], "succeeded", "{deploy}");
    let applied = replicas
        .applied_deployment()
        .expect("helm applied the Deployment");
    assert_eq!(
        applied["spec"]["template"]["spec"]["containers"][0]["image"], SECRET_IMAGE,
        "helm received the secret values"
    );
    assert!(
        replicas.sealed_rows(id).await.is_empty(),
        "the sealed values are deleted when the deploy ends"
    );
    replicas.stop(running).await;
}

#[tokio::test]
async fn a_replica_with_another_key_fails_the_deploy_without_running_helm() {
    let replicas = Replicas::start(Some(TEST_SERVER_KEY)).await;
    let id = replicas.accepting.submit(&secret_image_deploy()).await;
    let running = replicas.runner(Some(&"0123456789abcdef".repeat(4))).await;
    let deploy = wait_for_end(&running, id).await;
    assert_eq!(deploy["status"], "failed", "{deploy}");
    assert_eq!(deploy["verdict"]["reason"], "SecretValuesUnavailable");
    assert!(
        deploy["verdict"]["message"]
            .as_str()
            .unwrap()
            .contains("ROLLCALL_SECRET_KEY"),
        "{deploy}"
    );
    assert!(replicas.applied_deployment().is_none(), "helm never ran");
    assert!(replicas.sealed_rows(id).await.is_empty());
    replicas.stop(running).await;
}

#[tokio::test]
async fn without_a_key_a_deploy_run_by_another_replica_fails_as_before() {
    let replicas = Replicas::start(None).await;
    let id = replicas.accepting.submit(&secret_image_deploy()).await;
    assert!(
        replicas.sealed_rows(id).await.is_empty(),
        "nothing sealed without a key"
    );
    let running = replicas.runner(None).await;
    let deploy = wait_for_end(&running, id).await;
    assert_eq!(
        deploy["verdict"]["reason"], "SecretValuesUnavailable",
        "{deploy}"
    );
    assert!(replicas.applied_deployment().is_none(), "helm never ran");
    replicas.stop(running).await;
}

/// Every row rollcall stored about deploys, as text.
async fn database_dump(app: &TestApp) -> String {
    sqlx::query_scalar(
        "select concat_ws(E'\\n',
            (select string_agg(row_to_json(d)::text, E'\\n') from deploys d),
            (select string_agg(row_to_json(e)::text, E'\\n') from deploy_events e),
            (select string_agg(row_to_json(r)::text, E'\\n') from deploy_resources r))",
    )
    .fetch_one(&app.state.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn secrets_the_application_prints_are_redacted_before_they_are_stored_or_sent() {
    let replicas = Replicas::start(Some(TEST_SERVER_KEY)).await;
    let running = replicas.runner(Some(TEST_SERVER_KEY)).await;
    let id = replicas
        .accepting
        .submit(&json!({
            "release": "leaky",
            "namespace": "default",
            "chart": {"path": "leaky"},
            "secret_values": {"password": PRINTED_PASSWORD, "image": PRINTED_IMAGE},
            "timeout": "60s",
        }))
        .await;
    let streamed = Value::from(follow_events(&running, id, |_| {}).await).to_string();
    let deploy = wait_for_end(&running, id).await;
    assert_eq!(deploy["verdict"]["reason"], "CrashLoopBackOff", "{deploy}");

    let encoded = base64::engine::general_purpose::STANDARD.encode(PRINTED_PASSWORD);
    // The application did print them, and each place shows where they were.
    for printed in [
        "connecting with [redacted] token [redacted]",
        "Pulling image \\\"[redacted]\\\"",
    ] {
        assert!(streamed.contains(printed), "{printed} not in {streamed}");
    }
    let stored = database_dump(&running).await;
    let read = format!("{deploy} {streamed}");
    for text in [&stored, &read] {
        for secret in [PRINTED_PASSWORD, encoded.as_str(), PRINTED_IMAGE] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
    replicas.stop(running).await;
}
