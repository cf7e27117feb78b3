//! The helm driver on its own: value files, the real `helm template`, process groups, time limits.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rollcall::domain::chart::{ChartCatalog, ChartSource, ChartSources};
use rollcall::domain::deploy::{DeployRequest, NewDeploy};
use rollcall::domain::policy::TrackingOverrides;
use rollcall::domain::redaction::Redactor;
use rollcall::domain::release::ReleaseId;
use rollcall::domain::verdict::VerdictReason;
use rollcall::runner::{
    Helm, HelmConfig, HelmError, RenderCache, RenderRequest, ValuesFiles, render,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::helm_bin;
use crate::common::charts;

fn target() -> ReleaseId {
    ReleaseId::new("default", "prod", "shop")
}

fn helm_at(bin: PathBuf, home: &Path) -> Helm {
    Helm::new(
        HelmConfig {
            home: home.join("helm"),
            kill_grace: Duration::from_millis(500),
            ..HelmConfig::new(bin, None)
        },
        Default::default(),
    )
}

/// A stand-in for helm (a shell script), for process behaviour that real helm shows only with a
/// cluster that hangs.
fn script(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("fake-helm");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn alive(pid: i32) -> bool {
    // /proc/<pid> disappears once the process is reaped; a zombie counts as dead.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.split_whitespace().nth(2).is_none_or(|s| s != "Z"))
}

#[tokio::test]
async fn helm_template_reads_values_from_a_private_file_removed_afterwards() {
    let home = tempfile::tempdir().unwrap();
    let helm = helm_at(helm_bin(), home.path());
    let values = json!({"name": "storefront", "replicas": 5});
    let files = ValuesFiles::write(&helm.config().home, values.as_object().unwrap(), None).unwrap();
    let file = files.files()[0].clone();
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(file.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);

    let sources = ChartSources {
        catalog: ChartCatalog::new(Some(charts::catalog())),
        ..ChartSources::default()
    };
    let cancel = CancellationToken::new();
    let slot = helm.try_slot().expect("a free helm slot");
    let chart = helm
        .locate(
            &ChartSource::Path { path: "web".into() },
            &sources,
            &slot,
            Duration::from_secs(60),
            &cancel,
        )
        .await
        .unwrap();
    let invocation = helm.template(&target(), chart.args(), &files, Duration::from_secs(60));
    let manifest = helm
        .run(
            &slot,
            invocation,
            &Redactor::default(),
            None,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(manifest.contains("name: storefront"), "{manifest}");
    assert!(manifest.contains("replicas: 5"), "{manifest}");
    drop(files);
    assert!(!file.exists(), "the values file is removed after the run");
}

#[tokio::test]
async fn the_real_helm_version_is_accepted_and_other_programs_are_not() {
    let home = tempfile::tempdir().unwrap();
    let version = helm_at(helm_bin(), home.path())
        .check_version()
        .await
        .unwrap();
    assert!(version.starts_with('v'), "{version}");
    let impostor = script(home.path(), "echo 'kubectl v1.31'");
    let error = helm_at(impostor, home.path())
        .check_version()
        .await
        .unwrap_err();
    assert!(matches!(error, HelmError::Version { .. }), "{error}");
}

async fn run_script(
    body: &str,
    time_limit: Duration,
    cancel: CancellationToken,
) -> (HelmError, i32) {
    let home = tempfile::tempdir().unwrap();
    let pid_file = home.path().join("child.pid");
    let bin = script(
        home.path(),
        &format!("sleep 600 &\necho $! > {}\n{body}", pid_file.display()),
    );
    let helm = helm_at(bin, home.path());
    let invocation = rollcall::runner::helm::Invocation {
        command: "upgrade",
        args: Vec::new(),
        time_limit,
        stream_stdout: true,
    };
    let slot = helm.try_slot().expect("a free helm slot");
    let error = helm
        .run(&slot, invocation, &Redactor::default(), None, &cancel)
        .await
        .unwrap_err();
    let child: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (error, child)
}

#[tokio::test]
async fn cancelling_helm_stops_its_whole_process_group() {
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let (error, child) = run_script("wait", Duration::from_secs(60), cancel).await;
    assert!(matches!(error, HelmError::Cancelled { .. }), "{error}");
    assert_eq!(error.reason(), VerdictReason::Cancelled);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while alive(child) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(child), "helm's child {child} survived");
}

#[tokio::test]
async fn helm_that_ignores_sigterm_is_killed_after_its_time_limit() {
    let (error, child) = run_script(
        "trap '' TERM\nwhile true; do sleep 1; done",
        Duration::from_millis(300),
        CancellationToken::new(),
    )
    .await;
    assert!(matches!(error, HelmError::TimedOut { .. }), "{error}");
    assert_eq!(error.reason(), VerdictReason::Timeout);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while alive(child) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(child), "helm's child {child} survived SIGKILL");
}

#[tokio::test]
async fn helm_processes_run_in_a_pool_of_their_own_size() {
    let home = tempfile::tempdir().unwrap();
    let helm = Helm::new(
        HelmConfig {
            slots: 2,
            ..HelmConfig::new(helm_bin(), None)
        },
        Default::default(),
    );
    let first = helm.try_slot().expect("a first slot");
    let _second = helm.try_slot().expect("a second slot");
    assert!(helm.try_slot().is_none(), "a third helm process must wait");
    let pool = helm.clone();
    let cancel = CancellationToken::new();
    let waiting = tokio::spawn(async move { pool.slot(&cancel).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "the pool is full: the third waits");
    drop(first);
    let third = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("a freed slot goes to the one waiting")
        .unwrap();
    assert!(third.is_ok());
    let cancel = CancellationToken::new();
    cancel.cancel();
    let stopped = helm.slot(&cancel).await.unwrap_err();
    assert!(matches!(stopped, HelmError::Cancelled { .. }), "{stopped}");
    drop(home);
}

#[tokio::test]
async fn an_unchanged_render_is_reused_and_a_change_of_chart_or_values_renders_again() {
    let home = tempfile::tempdir().unwrap();
    let calls = home.path().join("calls");
    // A stand-in for `helm template` that counts its runs and prints one ConfigMap.
    let bin = script(
        home.path(),
        &format!(
            "echo run >> {}\nprintf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: settings\\n'",
            calls.display()
        ),
    );
    let helm = helm_at(bin, home.path());
    let charts = home.path().join("charts");
    std::fs::create_dir_all(charts.join("app/templates")).unwrap();
    std::fs::write(charts.join("app/Chart.yaml"), "name: app\nversion: 1.0.0\n").unwrap();
    let sources = ChartSources {
        catalog: ChartCatalog::new(Some(charts.clone())),
        ..ChartSources::default()
    };
    let cache = RenderCache::default();
    let chart = ChartSource::Path { path: "app".into() };
    let tracking = TrackingOverrides::default();
    let runs = || {
        std::fs::read_to_string(&calls)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let render_with = |values: serde_json::Value| {
        let (helm, sources, cache, chart, tracking) = (&helm, &sources, &cache, &chart, &tracking);
        async move {
            let values = values.as_object().unwrap().clone();
            let request = RenderRequest {
                release: target(),
                chart,
                values: &values,
                secrets: None,
                tracking,
            };
            let slot = helm.try_slot().expect("a free helm slot");
            render(
                helm,
                &slot,
                sources,
                Some(cache),
                &request,
                Duration::from_secs(30),
                &CancellationToken::new(),
            )
            .await
            .expect("renders")
            .resources
        }
    };
    let first = render_with(json!({"replicas": 2})).await;
    assert_eq!(first[0].name, "settings");
    let again = render_with(json!({"replicas": 2})).await;
    assert_eq!(again[0].name, "settings");
    assert_eq!(
        runs(),
        1,
        "the same chart and values: helm template ran once"
    );
    render_with(json!({"replicas": 3})).await;
    assert_eq!(runs(), 2, "other values render again");
    std::fs::write(charts.join("app/templates/extra.yaml"), "# changed\n").unwrap();
    render_with(json!({"replicas": 3})).await;
    assert_eq!(runs(), 3, "a changed chart renders again");

    // Secret values are never kept, not even as a digest: the same secrets render every time.
    let with_secrets: DeployRequest = serde_json::from_value(json!({
        "release": "web", "namespace": "prod", "chart": {"path": "app"},
        "values": {"replicas": 3}, "secret_values": {"password": "hunter2"}
    }))
    .unwrap();
    let new = NewDeploy::parse(with_secrets, &sources).expect("a valid deploy");
    for expected in [4, 5] {
        let slot = helm.try_slot().expect("a free helm slot");
        render(
            &helm,
            &slot,
            &sources,
            Some(&cache),
            &RenderRequest::of(&new),
            Duration::from_secs(30),
            &CancellationToken::new(),
        )
        .await
        .expect("renders");
        assert_eq!(runs(), expected, "a render with secret values is not kept");
    }
}
