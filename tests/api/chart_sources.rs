//! Repository and OCI charts come only from the repositories and registries the server is
//! configured with (DESIGN §6.4): anything else is a 422 naming the field before helm runs and
//! before anything is written. A private repository's credentials reach helm through files only,
//! and appear in no response, event or log; a chart that cannot be fetched is reported in one clean
//! sentence, never with helm's network error.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use base64::Engine as _;
use rollcall::config::FileConfig;
use rollcall::runner::HelmConfig;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::app::{TestApp, all_events, spawn_app_with, test_server_key};
use crate::common::charts;
use crate::common::helm::{helm_bin, helm3_bin};
use crate::common::postgres::fresh_database;
use crate::common::runner::start_kubesim;
use crate::common::serve::{ServeEnv, ServeProcess};

const USERNAME: &str = "deployer";
const PASSWORD: &str = "pw-7Qx2VtR9sKm4";

/// A wrapper around the real helm that appends each command line to `helm-invocations.log` in
/// `dir`: the log tells whether helm ran, and with what arguments.
fn recording_helm(dir: &Path, helm: &Path) -> PathBuf {
    let path = dir.join("recording-helm");
    let log = dir.join("helm-invocations.log");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            helm.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn helm_invocations(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("helm-invocations.log")).unwrap_or_default()
}

/// A chart repository on loopback: `index.yaml` and the catalog's `web` chart packaged by the
/// real helm, behind basic auth; it counts the requests it served and refused.
struct ChartRepository {
    /// `http://127.0.0.1:<port>/private`
    url: String,
    served: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    _files: tempfile::TempDir,
}

#[derive(Clone)]
struct RepositoryState {
    files: PathBuf,
    authorization: String,
    served: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

async fn repository_file(
    State(state): State<RepositoryState>,
    UrlPath(file): UrlPath<String>,
    headers: HeaderMap,
) -> axum::response::Response {
    let authorized = headers
        .get(header::AUTHORIZATION)
        .is_some_and(|value| value.as_bytes() == state.authorization.as_bytes());
    if !authorized {
        state.refused.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"charts\"")],
        )
            .into_response();
    }
    match std::fs::read(state.files.join(&file)) {
        Ok(bytes) if !file.contains('/') => {
            state.served.fetch_add(1, Ordering::SeqCst);
            bytes.into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Runs helm (v4) for the repository's files, failing with its output.
fn helm_in(dir: &Path, args: &[&str]) {
    let output = std::process::Command::new(helm_bin())
        .args(args)
        .env("HOME", dir)
        .output()
        .expect("run helm");
    assert!(
        output.status.success(),
        "helm {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn serve_chart_repository() -> ChartRepository {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/private", listener.local_addr().unwrap());
    let files = tempfile::tempdir().unwrap();
    let dir = files.path().display().to_string();
    let web = charts::catalog().join("web").display().to_string();
    helm_in(files.path(), &["package", &web, "--destination", &dir]);
    helm_in(files.path(), &["repo", "index", &dir, "--url", &url]);
    let state = RepositoryState {
        files: files.path().to_owned(),
        authorization: format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{USERNAME}:{PASSWORD}"))
        ),
        served: Arc::new(AtomicUsize::new(0)),
        refused: Arc::new(AtomicUsize::new(0)),
    };
    let repository = ChartRepository {
        url,
        served: state.served.clone(),
        refused: state.refused.clone(),
        _files: files,
    };
    let router = axum::Router::new()
        .route("/private/{file}", axum::routing::get(repository_file))
        .with_state(state);
    tokio::spawn(async move { axum::serve(listener, router).await });
    repository
}

/// `[charts]` allowing `repository` (plain http on loopback) with the password in a file of `dir`.
fn charts_config(dir: &Path, repository: &str) -> String {
    let password_file = dir.join("charts-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    format!(
        "[[charts.repositories]]\nurl = \"{repository}\"\nallow_http = true\n\
         credentials = {{ username = \"{USERNAME}\", password_file = \"{}\" }}\n",
        password_file.display()
    )
}

/// An app whose helm is the recording wrapper around `helm`, allowing what `charts` (a
/// configuration file's text) allows besides the suite's example repository and registry.
async fn app_with_charts(dir: &Path, helm: &Path, charts: &str) -> TestApp {
    let mut file: FileConfig = toml::from_str(charts).unwrap();
    let allowed = file.allowed_charts(|_| None).unwrap();
    let bin = recording_helm(dir, helm);
    let home = dir.join("helm-home");
    spawn_app_with(move |config| {
        config.helm = HelmConfig {
            home,
            ..HelmConfig::new(bin, None)
        };
        config.secret_key = Some(test_server_key());
        config.allowed_charts.extend(allowed);
    })
    .await
}

async fn post(app: &TestApp, path: &str, body: &Value) -> (u16, Value) {
    let response = app
        .post(path, &app.admin_token)
        .json(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn deploys_written(app: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from deploys")
        .fetch_one(&app.state.pool)
        .await
        .unwrap()
}

fn repo_chart(repo: &str, version: &str) -> Value {
    json!({"repo": repo, "name": "web", "version": version})
}

fn deploy_of(chart: Value) -> Value {
    json!({"release": "web", "namespace": "charts", "create_namespace": true, "chart": chart})
}

#[tokio::test]
async fn charts_from_anywhere_but_the_allowed_sources_are_refused_before_helm_runs() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_charts(dir.path(), &helm_bin(), "").await;
    let repositories = [
        "https://127.0.0.1/charts",
        "http://127.0.0.1:8080",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]:8443",
        "https://10.1.2.3",
        "https://charts.internal.corp",
        "https://charts.example.com.evil.test",
        "https://evil.test/?https://charts.example.com",
        "https://charts.example.com@evil.test",
        "https://user:pass@charts.example.com",
        "https://charts.example.com%2eevil.test",
        "https://charts.example.com:8443",
        "http://charts.example.com",
        "https://charts.example.com/../../admin",
        "file:///etc/passwd",
    ];
    let registries = [
        "oci://127.0.0.1:5000/charts/web",
        "oci://169.254.169.254/charts/web",
        "oci://[::1]/charts/web",
        "oci://10.0.0.7/charts/web",
        "oci://registry.example.evil.test/charts/web",
        "oci://registry.example:5000/charts/web",
        "oci://user@registry.example/charts/web",
        "oci://registry.example/other/web",
        "oci://registry.example/charts/../web",
    ];
    let probes = repositories
        .iter()
        .map(|repo| ("chart.repo", repo_chart(repo, "1.0.0")))
        .chain(
            registries
                .iter()
                .map(|oci| ("chart.oci", json!({"oci": oci, "version": "1.0.0"}))),
        );
    for (field, chart) in probes {
        for path in ["/v1/deploys", "/v1/deploys?dry_run=true"] {
            let (status, problem) = post(&app, path, &deploy_of(chart.clone())).await;
            assert_eq!(status, 422, "{path} {chart}: {problem}");
            assert_eq!(problem["errors"][0]["field"], field, "{chart}: {problem}");
        }
        let hook = json!({
            "name": "probe",
            "provider": "github",
            "secret": "It's a Secret to Everybody",
            "target": {"namespace": "prod", "release": "web", "chart": chart},
        });
        let (status, problem) = post(&app, "/v1/hooks", &hook).await;
        assert_eq!(status, 422, "hook {chart}: {problem}");
        assert_eq!(problem["errors"][0]["field"], format!("target.{field}"));
    }
    assert_eq!(deploys_written(&app).await, 0, "nothing is written");
    assert_eq!(helm_invocations(dir.path()), "", "helm never ran");

    // The allowed ones pass, in canonical form; a catalog chart is unaffected.
    let (status, accepted) = post(
        &app,
        "/v1/deploys",
        &deploy_of(repo_chart("HTTPS://Charts.Example.COM/", "1.0.0")),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let deploy = app
        .deploy(accepted["id"].as_str().unwrap().parse().unwrap())
        .await;
    assert_eq!(deploy["chart"]["repo"], "https://charts.example.com");
    let (status, _) = post(
        &app,
        "/v1/deploys",
        &json!({"release": "api", "namespace": "charts", "chart": {"path": "web"}}),
    )
    .await;
    assert_eq!(status, 202);
}

/// A dry run of the private repository's chart through `helm` (v4 or v3): its index and archive
/// are served only with the configured credentials, which never appear in helm's arguments.
async fn dry_run_from_the_private_repository(helm: PathBuf) {
    let repository = serve_chart_repository().await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_charts(
        dir.path(),
        &helm,
        &charts_config(dir.path(), &repository.url),
    )
    .await;
    let (status, planned) = post(
        &app,
        "/v1/deploys?dry_run=true",
        &deploy_of(repo_chart(&repository.url, "0.1.0")),
    )
    .await;
    assert_eq!(status, 200, "{planned}");
    let kinds: Vec<&str> = planned["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|resource| resource["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"Deployment"), "{planned}");
    assert!(
        repository.served.load(Ordering::SeqCst) >= 2,
        "index and archive served"
    );
    assert_eq!(repository.refused.load(Ordering::SeqCst), 0);
    let invocations = helm_invocations(dir.path());
    assert!(
        invocations.contains("pull rollcall-source/web --version 0.1.0"),
        "{invocations}"
    );
    assert!(!invocations.contains(PASSWORD), "{invocations}");
    assert!(!planned.to_string().contains(PASSWORD));
    assert_eq!(
        files_containing(&dir.path().join("helm-home"), PASSWORD),
        Vec::<PathBuf>::new(),
        "the credential files are gone once the pull is done"
    );
}

#[tokio::test]
async fn a_private_repository_is_reached_with_credentials_from_a_file_by_helm_4() {
    dry_run_from_the_private_repository(helm_bin()).await;
}

#[tokio::test]
async fn a_private_repository_is_reached_with_credentials_from_a_file_by_helm_3() {
    dry_run_from_the_private_repository(helm3_bin()).await;
}

/// Files under `dir` whose contents include `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if std::fs::read(&path)
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
            {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test]
async fn a_repository_that_cannot_be_reached_is_reported_without_helms_network_error() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1.
    let unreachable = "http://127.0.0.1:1/charts";
    let app = app_with_charts(
        dir.path(),
        &helm_bin(),
        &charts_config(dir.path(), unreachable),
    )
    .await;
    let (status, problem) = post(
        &app,
        "/v1/deploys?dry_run=true",
        &deploy_of(repo_chart(unreachable, "0.1.0")),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "chart");
    assert_eq!(
        problem["errors"][0]["message"],
        format!("could not fetch chart web 0.1.0 from repository {unreachable}")
    );
    let text = problem.to_string().to_lowercase();
    for raw in ["connection refused", "dial tcp", "index.yaml", "get \""] {
        assert!(!text.contains(raw), "{raw} in {problem}");
    }
    assert!(helm_invocations(dir.path()).contains("repo update"));
}

async fn wait_until_finished(
    client: &reqwest::Client,
    address: &str,
    token: &str,
    id: Uuid,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let deploy: Value = client
            .get(format!("{address}/v1/deploys/{id}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if matches!(
            deploy["status"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            return deploy;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never finished: {deploy}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `rollcall serve` with `[charts]` in its configuration file and the password in a file: a deploy
/// from the private repository succeeds on kubesim; one of a version the repository lacks fails
/// with a clean `ChartUnavailable`; the password is in no response, event, log line (at debug) or
/// helm command line.
#[tokio::test]
async fn rollcall_serve_deploys_from_a_private_repository_and_never_shows_its_password() {
    let repository = serve_chart_repository().await;
    let dir = tempfile::tempdir().unwrap();
    let (_cluster, kubeconfig) = start_kubesim(0.1, dir.path()).await;
    let config = dir.path().join("rollcall.toml");
    std::fs::write(&config, charts_config(dir.path(), &repository.url)).unwrap();
    let database_url = fresh_database().await;
    let admin_token = format!("admin-{}", Uuid::new_v4().simple());
    let helm = recording_helm(dir.path(), &helm_bin());
    let env = ServeEnv {
        database_url: &database_url,
        kubeconfig: &kubeconfig,
        helm: &helm,
        chart_dir: &charts::catalog(),
        admin_token: &admin_token,
        dir: dir.path(),
    };
    let config = config.display().to_string();
    let server = ServeProcess::start(
        &env,
        "charts",
        &[
            ("ROLLCALL_CONFIG", config.as_str()),
            ("RUST_LOG", "info,rollcall=debug,sqlx=warn"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let submit = |version: &str| {
        client
            .post(format!("{}/v1/deploys", server.address))
            .bearer_auth(&admin_token)
            .json(&deploy_of(repo_chart(&repository.url, version)))
            .send()
    };
    let mut answers = Vec::new();
    let mut ids = Vec::new();
    for version in ["0.1.0", "9.9.9"] {
        let response = submit(version).await.unwrap();
        assert_eq!(response.status(), 202);
        let accepted: Value = response.json().await.unwrap();
        ids.push(accepted["id"].as_str().unwrap().parse::<Uuid>().unwrap());
        answers.push(accepted);
    }
    let deployed = wait_until_finished(&client, &server.address, &admin_token, ids[0]).await;
    assert_eq!(deployed["status"], "succeeded", "{deployed}");
    let missing = wait_until_finished(&client, &server.address, &admin_token, ids[1]).await;
    assert_eq!(missing["status"], "failed", "{missing}");
    assert_eq!(missing["verdict"]["reason"], "ChartUnavailable");
    assert_eq!(
        missing["verdict"]["message"],
        format!(
            "could not fetch chart web 9.9.9 from repository {}",
            repository.url
        )
    );

    let mut seen = serde_json::to_string(&answers).unwrap();
    for (id, deploy) in ids.iter().zip([&deployed, &missing]) {
        seen.push_str(&deploy.to_string());
        let events = all_events(&server.address, &admin_token, *id).await;
        assert!(!events.is_empty());
        seen.push_str(&serde_json::to_string(&events).unwrap());
    }
    assert!(
        !seen.contains(PASSWORD),
        "the password in a response or event"
    );
    let log = server.log();
    assert!(
        log.contains("helm could not fetch a chart"),
        "the debug line is there"
    );
    assert!(!log.contains(PASSWORD), "the password in the log");
    let invocations = helm_invocations(dir.path());
    assert!(
        invocations.contains("pull rollcall-source/web"),
        "{invocations}"
    );
    assert!(!invocations.contains(PASSWORD), "{invocations}");
}
