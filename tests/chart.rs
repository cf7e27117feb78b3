//! The Helm chart that installs rollcall (`deploy/helm/rollcall`): the real helm lints it and
//! renders it with its default values and with others, and its values schema refuses what
//! rollcall would not run with. What operators rely on is asserted in the rendered objects and in
//! the NOTES helm prints.
//! (Installing it onto kubesim, tracked by rollcall itself: `tests/runner/rollcall_chart.rs`.)

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::Value;

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/helm/rollcall")
}

/// `helm <args>` on the chart; its output, or the error it printed.
fn run_helm(args: &[&str], values: Option<&str>) -> Result<String, String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new(common::helm::helm_bin());
    command.args(args).arg(chart());
    if let Some(values) = values {
        let file = dir.path().join("values.yaml");
        std::fs::write(&file, values).expect("write values");
        command.arg("--values").arg(file);
    }
    // helm keeps its settings in a home of its own, never the user's.
    for variable in ["HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"] {
        command.env(variable, dir.path().join(variable));
    }
    let output = command.output().expect("run helm");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// The objects `helm template` renders with `values`.
fn render(values: Option<&str>) -> Vec<Value> {
    let text = run_helm(&["template", "rc", "--namespace", "ops"], values)
        .unwrap_or_else(|error| panic!("helm template failed: {error}"));
    rollcall::tracker::core::yaml_objects(&text)
        .expect("the rendered chart is YAML")
        .into_iter()
        .map(|(_, object)| object)
        .collect()
}

fn all<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects
        .iter()
        .filter(|object| object["kind"] == kind)
        .collect()
}

fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found = all(objects, kind);
    assert_eq!(found.len(), 1, "one {kind} expected: {found:?}");
    found[0]
}

fn env<'a>(deployment: &'a Value, name: &str) -> Option<&'a Value> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|variable| variable["name"] == name)
}

/// Every verb of every rule of a Role or ClusterRole, as `group/resource:verb`.
fn grants(role: &Value) -> Vec<String> {
    let mut grants = Vec::new();
    for rule in role["rules"].as_array().expect("rules") {
        for group in rule["apiGroups"].as_array().expect("apiGroups") {
            for resource in rule["resources"].as_array().expect("resources") {
                for verb in rule["verbs"].as_array().expect("verbs") {
                    grants.push(format!(
                        "{}/{}:{}",
                        group.as_str().unwrap(),
                        resource.as_str().unwrap(),
                        verb.as_str().unwrap()
                    ));
                }
            }
        }
    }
    grants
}

const OTHER_VALUES: &str = r#"
replicaCount: 3
image: {repository: registry.example.com/rollcall, tag: "1.2.3"}
existingSecret: rollcall-credentials
rbac:
  scope: namespaces
  namespaces: [team-a, team-b]
  deployedResources:
    - apiGroups: [apps]
      resources: [deployments]
    - apiGroups: [rbac.authorization.k8s.io]
      resources: [roles, rolebindings]
config: |
  [limits]
  body_limit_bytes = 2097152
serviceMonitor: {enabled: true, interval: 15s, labels: {release: prometheus}}
dashboard: {enabled: true}
podDisruptionBudget: {enabled: false}
"#;

#[test]
fn helm_lint_passes_with_default_and_other_values() {
    for values in [None, Some(OTHER_VALUES)] {
        let linted = run_helm(&["lint", "--strict"], values);
        assert!(linted.is_ok(), "{values:?}: {linted:?}");
    }
}

#[test]
fn default_values_render_two_replicas_with_probes_least_privilege_and_a_generated_token() {
    let objects = render(None);
    let deployment = one(&objects, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["args"], serde_json::json!(["serve"]));
    assert_eq!(container["image"], "rollcall:0.1.0");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert!(container["resources"]["limits"]["memory"].is_string());
    assert_eq!(pod["serviceAccountName"], "rc-rollcall");
    assert_eq!(
        env(deployment, "DATABASE_URL").expect("DATABASE_URL")["valueFrom"]["secretKeyRef"]["name"],
        "rc-rollcall"
    );

    let secret = one(&objects, "Secret");
    let token = secret["data"]["ROLLCALL_ADMIN_TOKEN"]
        .as_str()
        .expect("an admin token");
    assert_eq!(
        token.len(),
        56,
        "40 random characters, base64-encoded: {token}"
    );
    let sealing_key = secret["data"]["ROLLCALL_SECRET_KEY"]
        .as_str()
        .and_then(|key| base64::engine::general_purpose::STANDARD.decode(key).ok())
        .expect("a sealing key");
    rollcall::domain::sealing::ServerKey::parse(
        std::str::from_utf8(&sealing_key).expect("a text key"),
    )
    .expect("the generated sealing key is one rollcall accepts");
    assert!(
        secret["data"].get("DATABASE_URL").is_none(),
        "no connection string is made up"
    );
    assert_eq!(one(&objects, "Service")["spec"]["ports"][0]["port"], 8080);
    assert_eq!(
        one(&objects, "PodDisruptionBudget")["spec"]["maxUnavailable"],
        1
    );
    one(&objects, "ServiceAccount");

    let role = one(&objects, "ClusterRole");
    let granted = grants(role);
    for needed in [
        "/pods:watch",
        "/pods/log:get",
        "/events:watch",
        "events.k8s.io/events:watch",
        "apps/replicasets:watch",
        "apps/controllerrevisions:list",
        "/secrets:create",
        "apps/deployments:patch",
        "/namespaces:create",
    ] {
        assert!(
            granted.iter().any(|grant| grant == needed),
            "{needed}: {granted:?}"
        );
    }
    assert!(
        !granted.iter().any(|grant| grant.contains('*')
            || grant.ends_with(":bind")
            || grant.ends_with(":escalate")),
        "no wildcard, and bind or escalate only for RBAC kinds: {granted:?}"
    );
    assert!(
        !granted
            .iter()
            .any(|grant| grant.starts_with("rbac.authorization.k8s.io/"))
    );
    assert_eq!(
        one(&objects, "ClusterRoleBinding")["subjects"][0]["namespace"],
        "ops"
    );
    for absent in ["ServiceMonitor", "ConfigMap", "Role"] {
        assert!(
            all(&objects, absent).is_empty(),
            "{absent} with default values"
        );
    }
}

#[test]
fn other_values_render_roles_per_namespace_an_existing_secret_config_and_monitoring() {
    let objects = render(Some(OTHER_VALUES));
    let deployment = one(&objects, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com/rollcall:1.2.3"
    );
    assert!(
        all(&objects, "Secret").is_empty(),
        "the existing secret is used"
    );
    assert_eq!(
        env(deployment, "ROLLCALL_ADMIN_TOKEN").expect("token")["valueFrom"]["secretKeyRef"]["name"],
        "rollcall-credentials"
    );

    assert!(all(&objects, "ClusterRole").is_empty());
    let roles = all(&objects, "Role");
    let namespaces: Vec<&Value> = roles
        .iter()
        .map(|role| &role["metadata"]["namespace"])
        .collect();
    assert_eq!(namespaces, ["team-a", "team-b"]);
    assert_eq!(all(&objects, "RoleBinding").len(), 2);
    let granted = grants(roles[0]);
    assert!(granted.contains(&"rbac.authorization.k8s.io/roles:escalate".to_owned()));
    assert!(granted.contains(&"rbac.authorization.k8s.io/rolebindings:bind".to_owned()));
    assert!(granted.contains(&"apps/deployments:update".to_owned()));
    assert!(!granted.contains(&"/namespaces:create".to_owned()));
    assert!(
        !granted.contains(&"apps/deployments:bind".to_owned()),
        "bind only on RBAC kinds"
    );

    let configs = all(&objects, "ConfigMap");
    let config = configs
        .iter()
        .find(|map| map["data"].get("rollcall.toml").is_some())
        .expect("the config file's ConfigMap");
    let config_dir = tempfile::tempdir().unwrap();
    let config_file = config_dir.path().join("rollcall.toml");
    std::fs::write(
        &config_file,
        config["data"]["rollcall.toml"].as_str().unwrap(),
    )
    .unwrap();
    let parsed = rollcall::config::FileConfig::read(&config_file).expect("rollcall reads it");
    assert_eq!(parsed.limits.body_limit_bytes, Some(2_097_152));
    assert_eq!(
        env(deployment, "ROLLCALL_CONFIG").expect("ROLLCALL_CONFIG")["value"],
        "/etc/rollcall/rollcall.toml"
    );

    let monitor = one(&objects, "ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["interval"], "15s");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    let dashboard = configs
        .iter()
        .find(|map| map["metadata"]["labels"]["grafana_dashboard"] == "1")
        .expect("the dashboard's ConfigMap");
    let json: Value = serde_json::from_str(dashboard["data"]["rollcall.json"].as_str().unwrap())
        .expect("the dashboard is JSON");
    assert_eq!(json["uid"], "rollcall");
    assert!(all(&objects, "PodDisruptionBudget").is_empty());
}

#[test]
fn values_the_schema_refuses_name_what_is_wrong() {
    for (values, named) in [
        ("rbac: {scope: everything}", "/rbac/scope"),
        ("rbac: {scope: namespaces}", "/rbac/namespaces"),
        ("database: {url: mysql://db/rollcall}", "/database/url"),
        ("replicas: 2", "replicas"),
    ] {
        let refused = run_helm(&["template", "rc"], Some(values)).expect_err(values);
        assert!(refused.contains(named), "{values}: {refused}");
    }
}

/// What `helm install` prints after installing: NOTES.txt, rendered with `values`.
fn notes(values: Option<&str>) -> String {
    let printed = run_helm(
        &["install", "rc", "--namespace", "ops", "--dry-run=client"],
        values,
    )
    .unwrap_or_else(|error| panic!("helm install --dry-run failed: {error}"));
    let (_, notes) = printed
        .split_once("NOTES:\n")
        .unwrap_or_else(|| panic!("no NOTES: {printed}"));
    notes.to_owned()
}

#[test]
fn notes_say_how_to_reach_the_api_and_warn_without_a_database() {
    let without_database = notes(None);
    for expected in [
        "kubectl --namespace ops port-forward service/rc-rollcall 8080:8080",
        "get secret rc-rollcall -o jsonpath='{.data.ROLLCALL_ADMIN_TOKEN}'",
        "rollcall deploy web -n prod",
        "WARNING: database.url is not set",
    ] {
        assert!(
            without_database.contains(expected),
            "{expected:?} in {without_database}"
        );
    }
    let scoped = notes(Some(
        "database: {url: postgres://rollcall:pw@db:5432/rollcall}\n\
         rbac: {scope: namespaces, namespaces: [team-a, team-b]}\n\
         existingSecret: rollcall-credentials\n",
    ));
    assert!(!scoped.contains("WARNING"), "{scoped}");
    assert!(
        scoped.contains("get secret rollcall-credentials "),
        "{scoped}"
    );
    assert!(
        scoped.contains("rollcall may deploy only to: team-a, team-b."),
        "{scoped}"
    );
    assert!(
        !scoped.contains("pw@db"),
        "NOTES never print secrets: {scoped}"
    );
}
