//! `KUBECONFIG` as a path list: merged as kubectl merges it (first file wins for a name, the first
//! `current-context` counts), and helm and the watches see the same merged view.

use serde_json::json;

use super::common::app::spawn_app_with;
use super::{refusing_server, start_kubesim, wait_for_end, with_runner};

#[tokio::test]
async fn a_kubeconfig_path_list_gives_helm_and_tracking_the_same_merged_clusters() {
    let home = tempfile::tempdir().unwrap();
    let (cluster, kubesim_kubeconfig) = start_kubesim(0.1, home.path()).await;
    // First file: the simulated cluster as `kubesim`, no current context.
    let first = home.path().join("first");
    let kubesim = std::fs::read_to_string(&kubesim_kubeconfig).unwrap();
    std::fs::write(&first, kubesim.replace("current-context: kubesim\n", "")).unwrap();
    // Second file: `kubesim` again but unreachable (the first file's wins), the current context,
    // and `staging`, a context only it has, on the simulated cluster.
    let second = home.path().join("second");
    std::fs::write(
        &second,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n\
             - name: kubesim\n  cluster: {{server: \"{refusing}\"}}\n\
             - name: staging\n  cluster: {{server: \"{sim}\"}}\n\
             users:\n- name: kubesim\n  user: {{token: other}}\n\
             contexts:\n\
             - name: kubesim\n  context: {{cluster: kubesim, user: kubesim}}\n\
             - name: staging\n  context: {{cluster: staging, user: kubesim}}\n\
             current-context: kubesim\n",
            refusing = refusing_server(),
            sim = cluster.url(),
        ),
    )
    .unwrap();
    let list = std::env::join_paths([&first, &second]).unwrap();
    let app = spawn_app_with(|config| with_runner(config, Some(list.into()), home.path())).await;

    for (release, cluster_name) in [("on-default", None), ("on-staging", Some("staging"))] {
        let mut body = json!({
            "release": release,
            "namespace": "default",
            "chart": {"path": "web"},
            "values": {"name": release, "behavior": "readyAfter=1s"},
            "timeout": "60s",
        });
        if let Some(name) = cluster_name {
            body["cluster"] = json!(name);
        }
        let id = app.submit(&body).await;
        let deploy = wait_for_end(&app, id).await;
        assert_eq!(deploy["status"], "succeeded", "{deploy}");
        assert_eq!(deploy["cluster"], cluster_name.unwrap_or("default"));
    }
    app.shutdown().await;
    cluster.shutdown().await;
}
