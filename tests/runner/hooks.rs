//! A webhook delivery end to end: GitHub's push, signed, reaches rollcall's hook; the commit it
//! pushed becomes the image tag; the real helm deploys the chart to kubesim, whose pods then run
//! that image.

use kubesim::options::KubeVersion;
use kubesim::store::{DEPLOYMENTS, PODS};
use rollcall::domain::sealing::ServerKey;
use serde_json::json;

use super::common::hooks::{GITHUB_SECRET, SERVER_KEY, github_delivery, github_push};
use super::scenarios::{HEALTHY, setup_configured};

/// A commit other than the fixture's, so that only the delivery can have put it in the cluster.
const COMMIT: &str = "3b18e512dba79e4c8300dd08aeb37f8e728b8dad";

#[tokio::test]
async fn a_signed_github_push_deploys_its_commit_and_the_cluster_runs_that_image() {
    let setup = setup_configured(KubeVersion::DEFAULT, |config| {
        config.secret_key = Some(ServerKey::parse(SERVER_KEY).expect("a valid key"));
    })
    .await;
    let app = &setup.app;
    let created = app
        .post("/v1/hooks", &app.admin_token)
        .json(&json!({
            "name": "shop-push",
            "provider": "github",
            "secret": GITHUB_SECRET,
            "target": {
                "namespace": "default",
                "release": "shop",
                "chart": {"path": "web"},
                "values": {"behavior": "readyAfter=1s"},
                "timeout": "60s",
            },
            "values_from": {"/after": "image.tag"},
            "events": ["push"],
            "refs": ["refs/heads/main"],
        }))
        .send()
        .await
        .expect("POST /v1/hooks");
    assert_eq!(created.status(), 201);

    let push = serde_json::to_vec(&github_push("refs/heads/main", COMMIT)).unwrap();
    let response = github_delivery(app, "shop-push", "push", "e2e-1", &push)
        .send()
        .await
        .expect("delivery sent");
    assert_eq!(response.status(), 202);
    let accepted: serde_json::Value = response.json().await.unwrap();
    let id = accepted["id"].as_str().unwrap().parse().unwrap();
    let finished = setup.follow(id, |_| {}).await;
    assert_eq!(finished.status(), "succeeded", "{}", finished.explain());
    finished.assert_in_order(&HEALTHY);
    assert_eq!(
        finished.events[0]["data"]["labels"]["rollcall.dev/commit"],
        COMMIT
    );

    let image = format!("registry.example/web:{COMMIT}");
    let store = setup.cluster.store();
    let web = store
        .get(&DEPLOYMENTS, Some("default"), "web")
        .expect("the Deployment");
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"],
        image.as_str()
    );
    let (pods, _) = store.list(&PODS, Some("default"));
    let running: Vec<_> = pods
        .iter()
        .filter(|pod| pod["metadata"]["labels"]["app"] == "web")
        .filter(|pod| pod["status"]["phase"] == "Running")
        .collect();
    assert_eq!(running.len(), 2, "{pods:?}");
    for pod in running {
        assert_eq!(pod["spec"]["containers"][0]["image"], image.as_str());
        assert_eq!(
            pod["status"]["containerStatuses"][0]["image"],
            image.as_str(),
            "{pod}"
        );
        assert_eq!(
            pod["status"]["containerStatuses"][0]["ready"], true,
            "{pod}"
        );
    }
    setup.shutdown().await;
}
