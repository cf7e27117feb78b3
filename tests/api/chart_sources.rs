//! Repository and OCI charts come only from the repositories and registries the server is
//! configured with (DESIGN §6.4): anything else is a 422 naming the field before helm runs and
//! before anything is written. A private repository's credentials reach helm through files only,
//! and appear in no response, event or log; a chart that cannot be fetched is reported in one clean
//! sentence, never with helm's network error.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, StatusCode, Uri, header};
use axum::response::IntoResponse;
use base64::Engine as _;
use rollcall::config::FileConfig;
use rollcall::runner::HelmConfig;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::common::app::{
    EXAMPLE_REPOSITORY, TestApp, all_events, spawn_app_on, spawn_app_with, test_server_key,
};
use crate::common::charts;
use crate::common::helm::{helm_bin, helm3_bin};
use crate::common::postgres::fresh_database;
use crate::common::remote::wait_for_the_end;
use crate::common::runner::{start_kubesim, with_runner};
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

/// A chart repository or OCI registry on loopback, serving fixed files only to requests with the
/// basic-auth credentials; it counts the files it served.
struct ChartServer {
    /// `http://127.0.0.1:<port>/private` (a repository) or `127.0.0.1:<port>` (a registry).
    location: String,
    served: Arc<AtomicUsize>,
}

/// One served file: its content type and bytes.
type Served = HashMap<String, (&'static str, Vec<u8>)>;

#[derive(Clone)]
struct ServerState {
    files: Arc<Served>,
    authorization: String,
    served: Arc<AtomicUsize>,
}

async fn serve_file(
    State(state): State<ServerState>,
    uri: Uri,
    headers: HeaderMap,
) -> axum::response::Response {
    let authorized = headers
        .get(header::AUTHORIZATION)
        .is_some_and(|value| value.as_bytes() == state.authorization.as_bytes());
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"charts\"")],
        )
            .into_response();
    }
    let Some((content_type, bytes)) = state.files.get(uri.path()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    state.served.fetch_add(1, Ordering::SeqCst);
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                HeaderName::from_static("docker-content-digest"),
                digest(bytes),
            ),
        ],
        bytes.clone(),
    )
        .into_response()
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// Serves `files(base URL)` on a port of its own.
async fn serve_charts(
    base: impl FnOnce(std::net::SocketAddr) -> String,
    files: impl FnOnce(&str) -> Served,
) -> ChartServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let location = base(listener.local_addr().unwrap());
    let state = ServerState {
        files: Arc::new(files(&location)),
        authorization: format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{USERNAME}:{PASSWORD}"))
        ),
        served: Arc::new(AtomicUsize::new(0)),
    };
    let server = ChartServer {
        location,
        served: state.served.clone(),
    };
    let router = axum::Router::new().fallback(serve_file).with_state(state);
    tokio::spawn(async move { axum::serve(listener, router).await });
    server
}

/// Runs helm (v4) in `dir`, failing with its output.
fn helm_in(dir: &Path, args: &[&str]) {
    let output = std::process::Command::new(helm_bin())
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .output()
        .expect("run helm");
    assert!(
        output.status.success(),
        "helm {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The catalog's `web` chart (0.1.0) packaged by the real helm.
fn packaged_web_chart() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let web = charts::catalog().join("web").display().to_string();
    helm_in(dir.path(), &["package", &web, "--destination", "."]);
    std::fs::read(dir.path().join("web-0.1.0.tgz")).unwrap()
}

/// A chart repository at `/private`: its `index.yaml` made by `helm repo index`, and the archive.
async fn serve_chart_repository() -> ChartServer {
    serve_charts(
        |address| format!("http://{address}/private"),
        |url| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("web-0.1.0.tgz"), packaged_web_chart()).unwrap();
            helm_in(dir.path(), &["repo", "index", ".", "--url", url]);
            let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
            HashMap::from([
                (
                    "/private/index.yaml".to_owned(),
                    ("application/x-yaml", read("index.yaml")),
                ),
                (
                    "/private/web-0.1.0.tgz".to_owned(),
                    ("application/gzip", read("web-0.1.0.tgz")),
                ),
            ])
        },
    )
    .await
}

/// An OCI registry holding `charts/web:0.1.0` as helm pushes a chart: a manifest whose config is
/// the chart's metadata and whose one layer is the archive.
async fn serve_chart_registry() -> ChartServer {
    serve_charts(
        |address| address.to_string(),
        |_| {
            let archive = packaged_web_chart();
            let config = serde_json::to_vec(
                &json!({"apiVersion": "v2", "name": "web", "version": "0.1.0", "appVersion": "1.0"}),
            )
            .unwrap();
            let manifest = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.cncf.helm.config.v1+json",
                    "digest": digest(&config),
                    "size": config.len(),
                },
                "layers": [{
                    "mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                    "digest": digest(&archive),
                    "size": archive.len(),
                }],
            }))
            .unwrap();
            let blob = |bytes: &[u8]| format!("/v2/charts/web/blobs/{}", digest(bytes));
            HashMap::from([
                (
                    "/v2/charts/web/manifests/0.1.0".to_owned(),
                    ("application/vnd.oci.image.manifest.v1+json", manifest.clone()),
                ),
                (
                    format!("/v2/charts/web/manifests/{}", digest(&manifest)),
                    ("application/vnd.oci.image.manifest.v1+json", manifest),
                ),
                (blob(&config), ("application/vnd.cncf.helm.config.v1+json", config)),
                (blob(&archive), ("application/octet-stream", archive)),
            ])
        },
    )
    .await
}

/// The `credentials` of a `[charts]` entry, the password in a file of `dir`.
fn credentials_in(dir: &Path) -> String {
    let password_file = dir.join("charts-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    format!(
        "credentials = {{ username = \"{USERNAME}\", password_file = \"{}\" }}",
        password_file.display()
    )
}

/// `[charts]` allowing `repository` (plain http on loopback) with its credentials.
fn charts_config(dir: &Path, repository: &str) -> String {
    format!(
        "[[charts.repositories]]\nurl = \"{repository}\"\nallow_http = true\n{}\n",
        credentials_in(dir)
    )
}

/// `[charts]` allowing the `charts` path of `registry` (plain http on loopback) with its
/// credentials.
fn registry_config(dir: &Path, registry: &str) -> String {
    format!(
        "[[charts.registries]]\nprefix = \"{registry}/charts\"\nplain_http = true\n{}\n",
        credentials_in(dir)
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

/// Where a dry run takes the private chart from.
enum PrivateSource {
    Repository,
    Registry,
}

/// A dry run of a chart from a private repository or registry through `helm` (v4 or v3): the
/// server answers only with the configured credentials, which never appear in helm's arguments,
/// and whose files are gone once the pull is done.
async fn dry_run_from_a_private_source(helm: PathBuf, source: PrivateSource) {
    let dir = tempfile::tempdir().unwrap();
    let (server, config, chart, pulled) = match source {
        PrivateSource::Repository => {
            let server = serve_chart_repository().await;
            let config = charts_config(dir.path(), &server.location);
            let chart = repo_chart(&server.location, "0.1.0");
            (
                server,
                config,
                chart,
                "pull rollcall-source/web --version 0.1.0",
            )
        }
        PrivateSource::Registry => {
            let server = serve_chart_registry().await;
            let config = registry_config(dir.path(), &server.location);
            let oci = format!("oci://{}/charts/web", server.location);
            let chart = json!({"oci": oci, "version": "0.1.0"});
            (server, config, chart, "--plain-http --destination")
        }
    };
    let app = app_with_charts(dir.path(), &helm, &config).await;
    let (status, planned) = post(&app, "/v1/deploys?dry_run=true", &deploy_of(chart)).await;
    assert_eq!(status, 200, "{planned}");
    let kinds: Vec<&str> = planned["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|resource| resource["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"Deployment"), "{planned}");
    assert!(
        server.served.load(Ordering::SeqCst) >= 2,
        "the index or manifest and the archive were served"
    );
    let invocations = helm_invocations(dir.path());
    assert!(invocations.contains(pulled), "{invocations}");
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
    dry_run_from_a_private_source(helm_bin(), PrivateSource::Repository).await;
}

#[tokio::test]
async fn a_private_repository_is_reached_with_credentials_from_a_file_by_helm_3() {
    dry_run_from_a_private_source(helm3_bin(), PrivateSource::Repository).await;
}

#[tokio::test]
async fn a_private_oci_registry_is_reached_with_credentials_from_a_file_by_helm_4() {
    dry_run_from_a_private_source(helm_bin(), PrivateSource::Registry).await;
}

#[tokio::test]
async fn a_private_oci_registry_is_reached_with_credentials_from_a_file_by_helm_3() {
    dry_run_from_a_private_source(helm3_bin(), PrivateSource::Registry).await;
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
    // Nothing listens on port 1.
    let unreachable = "http://127.0.0.1:1/charts";
    let public = format!("[[charts.repositories]]\nurl = \"{unreachable}\"\nallow_http = true\n");
    let dir = tempfile::tempdir().unwrap();
    let private = charts_config(dir.path(), unreachable);
    for (config, failing_step) in [
        (
            public,
            "pull web --repo http://127.0.0.1:1/charts --version 0.1.0",
        ),
        (private, "repo update"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let app = app_with_charts(dir.path(), &helm_bin(), &config).await;
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
        let invocations = helm_invocations(dir.path());
        assert!(invocations.contains(failing_step), "{invocations}");
        assert!(
            !invocations.contains("template"),
            "helm stopped at the fetch: {invocations}"
        );
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
    std::fs::write(&config, charts_config(dir.path(), &repository.location)).unwrap();
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
            .json(&deploy_of(repo_chart(&repository.location, version)))
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
    let deployed = wait_for_the_end(&server.address, &admin_token, ids[0]).await;
    assert_eq!(deployed["status"], "succeeded", "{deployed}");
    let missing = wait_for_the_end(&server.address, &admin_token, ids[1]).await;
    assert_eq!(missing["status"], "failed", "{missing}");
    assert_eq!(missing["verdict"]["reason"], "ChartUnavailable");
    assert_eq!(
        missing["verdict"]["message"],
        format!(
            "could not fetch chart web 9.9.9 from repository {}",
            repository.location
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
    assert_eq!(
        files_containing(&dir.path().join("tmp"), PASSWORD),
        Vec::<PathBuf>::new(),
        "no credential file is left in the server's temporary directory"
    );
}

/// A deploy accepted while its repository was allowed, run by a replica whose configuration no
/// longer allows it: it fails without helm fetching anything.
#[tokio::test]
async fn a_runner_refuses_a_source_its_configuration_no_longer_allows() {
    let dir = tempfile::tempdir().unwrap();
    let accepting = spawn_app_with(|_| {}).await;
    let bin = recording_helm(dir.path(), &helm_bin());
    let running = spawn_app_on(&accepting.database_url, |config| {
        with_runner(config, None, dir.path());
        config.helm.bin = bin;
        config.allowed_charts = Default::default();
    })
    .await;
    let id = accepting
        .submit(&deploy_of(repo_chart(EXAMPLE_REPOSITORY, "1.0.0")))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let deploy = loop {
        let deploy = running.deploy(id).await;
        if deploy["status"] == "failed" {
            break deploy;
        }
        assert!(tokio::time::Instant::now() < deadline, "{deploy}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(deploy["verdict"]["reason"], "ChartUnavailable");
    assert_eq!(
        deploy["verdict"]["message"],
        format!(
            "chart source {EXAMPLE_REPOSITORY} is not allowed by this server's configuration ([charts])"
        )
    );
    let invocations = helm_invocations(dir.path());
    assert!(!invocations.contains("pull"), "{invocations}");
}
