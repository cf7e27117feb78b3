//! `rollcall sandbox`: a simulated cluster, a private PostgreSQL, demo charts and the server with its
//! runner, in one process, for trying rollcall out without a cluster or a database.

mod postgres;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use kubesim::Cluster;
use kubesim::options::{ClusterOptions, KubeVersion};
use rand::Rng;
use tokio_util::sync::CancellationToken;

pub use postgres::{LocalPostgres, LocalPostgresError};

use crate::config::Config;
use crate::domain::auth::StaticToken;
use crate::domain::sealing::ServerKey;
use crate::runner::helm::DEFAULT_HELM_BIN;
use crate::runner::pinned_helm::{self, HelmMajor};
use crate::runner::{HelmConfig, RunnerOptions};

#[derive(Debug, Clone, clap::Args)]
pub struct SandboxArgs {
    /// Address the API listens on (port 0: any free port; the URL is printed).
    #[arg(long, env = "ROLLCALL_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Holds the PostgreSQL data, the kubeconfig, the chart catalog and helm's home; reused by the
    /// next run.
    #[arg(
        long,
        env = "ROLLCALL_SANDBOX_DIR",
        default_value = "./.rollcall-sandbox"
    )]
    pub data_dir: PathBuf,
    /// Multiplies every simulated duration: 0.1 runs the demo ten times faster.
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Kubernetes version the simulated cluster emulates, e.g. 1.29.
    #[arg(long, default_value_t = KubeVersion::DEFAULT)]
    pub kube_version: KubeVersion,
    /// Use this PostgreSQL instead of a private one.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// The helm binary (v4 or v3).
    #[arg(long, env = "HELM_BIN", default_value = DEFAULT_HELM_BIN)]
    pub helm_bin: PathBuf,
}

/// The demo chart catalog, `(path inside the catalog, contents)`, from `src/sandbox/charts`. The
/// tests deploy these charts too (`web`, `statefulset`) rather than keep copies of their own.
pub const DEMO_CHARTS: &[(&str, &str)] = &[
    (
        "web/Chart.yaml",
        include_str!("sandbox/charts/web/Chart.yaml"),
    ),
    (
        "web/values.yaml",
        include_str!("sandbox/charts/web/values.yaml"),
    ),
    ("web/templates/deployment.yaml", WEB_DEPLOYMENT),
    ("web/templates/service.yaml", WEB_SERVICE),
    (
        "crashloop/Chart.yaml",
        include_str!("sandbox/charts/crashloop/Chart.yaml"),
    ),
    (
        "crashloop/values.yaml",
        include_str!("sandbox/charts/crashloop/values.yaml"),
    ),
    ("crashloop/templates/deployment.yaml", WEB_DEPLOYMENT),
    ("crashloop/templates/service.yaml", WEB_SERVICE),
    (
        "statefulset/Chart.yaml",
        include_str!("sandbox/charts/statefulset/Chart.yaml"),
    ),
    (
        "statefulset/values.yaml",
        include_str!("sandbox/charts/statefulset/values.yaml"),
    ),
    (
        "statefulset/templates/statefulset.yaml",
        include_str!("sandbox/charts/statefulset/templates/statefulset.yaml"),
    ),
    (
        "failing-job/Chart.yaml",
        include_str!("sandbox/charts/failing-job/Chart.yaml"),
    ),
    (
        "failing-job/values.yaml",
        include_str!("sandbox/charts/failing-job/values.yaml"),
    ),
    (
        "failing-job/templates/job.yaml",
        include_str!("sandbox/charts/failing-job/templates/job.yaml"),
    ),
];

// The crashloop demo is the web chart with a crashing behaviour in its values.
const WEB_DEPLOYMENT: &str = include_str!("sandbox/charts/web/templates/deployment.yaml");
const WEB_SERVICE: &str = include_str!("sandbox/charts/web/templates/service.yaml");

/// Runs the sandbox until `shutdown` is cancelled, then stops the server, the cluster and PostgreSQL.
pub async fn run(args: SandboxArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.time_scale > 0.0 && args.time_scale.is_finite(),
        "--time-scale must be a positive number"
    );
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let data_dir = std::fs::canonicalize(&args.data_dir)
        .with_context(|| format!("cannot resolve {}", args.data_dir.display()))?;
    // First, so that a taken address stops the sandbox before it starts anything.
    let listener = crate::startup::bind(args.listen).await?;
    let helm_bin = helm_binary(args.helm_bin, &data_dir).await?;
    let (database_url, postgres) = match args.database_url {
        Some(url) => (url, None),
        None => {
            allow_postgres_through(&data_dir)?;
            let pg_dir = data_dir.join("pg");
            let postgres =
                tokio::task::spawn_blocking(move || LocalPostgres::start(&pg_dir, "")).await??;
            postgres.create_database().await?;
            (postgres.url(), Some(postgres))
        }
    };
    let cluster = Cluster::start(ClusterOptions {
        time_scale: args.time_scale,
        kube_version: args.kube_version,
        ..ClusterOptions::default()
    })
    .await?;
    let kubeconfig = data_dir.join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig)?;
    let chart_dir = data_dir.join("charts");
    write_demo_charts(&chart_dir)?;
    let admin_token = hex::encode(rand::rng().random::<[u8; 24]>());

    let mut config = Config::new(database_url);
    config.chart_dir = Some(chart_dir);
    config
        .static_tokens
        .push(StaticToken::bootstrap_admin(&admin_token));
    config.helm = HelmConfig {
        home: data_dir.join("helm"),
        ..HelmConfig::new(helm_bin, Some(kubeconfig.clone()))
    };
    config.runner = Some(RunnerOptions::default());
    // A key of its own, so that the sandbox seals secret values as a real installation does.
    config.secret_key = Some(
        ServerKey::parse(&hex::encode(rand::random::<[u8; 32]>()))
            .expect("32 random bytes are a key"),
    );
    let address = listener.local_addr()?;
    config.listen = address;

    let served = match crate::startup::start(config, shutdown.clone()).await {
        Ok(rollcall) => {
            println!("{}", banner(address, &admin_token, &kubeconfig));
            crate::startup::serve(rollcall, listener).await
        }
        Err(error) => Err(error),
    };
    cluster.shutdown().await;
    if let Some(postgres) = postgres {
        postgres.stop()?;
    }
    served?;
    Ok(())
}

/// The helm to run: `--helm-bin` when it is there; when the default `helm` is not on `PATH`, the
/// pinned one, fetched into `<data-dir>/bin` on first use. A missing `--helm-bin` path is left to
/// the runner's check, which says how to fix it.
async fn helm_binary(requested: PathBuf, data_dir: &Path) -> anyhow::Result<PathBuf> {
    let on_path = pinned_helm::find(&requested, std::env::var_os("PATH").as_deref()).is_some();
    if on_path || requested != Path::new(DEFAULT_HELM_BIN) {
        return Ok(requested);
    }
    let dir = data_dir.join("bin");
    let fetched = tokio::task::spawn_blocking(move || {
        pinned_helm::ensure_in(&dir, HelmMajor::V4, |target| {
            tracing::info!(
                "helm is not on PATH: fetching the pinned helm (hash-checked) as {}",
                target.display()
            );
        })
    })
    .await??;
    Ok(fetched)
}

/// As root, PostgreSQL runs as the `postgres` user, which must reach `<data-dir>/pg`.
fn allow_postgres_through(data_dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let mut permissions = std::fs::metadata(data_dir)?.permissions();
    permissions.set_mode(permissions.mode() | 0o001);
    std::fs::set_permissions(data_dir, permissions)
        .with_context(|| format!("cannot make {} traversable", data_dir.display()))
}

fn write_demo_charts(chart_dir: &Path) -> anyhow::Result<()> {
    for (path, contents) in DEMO_CHARTS {
        let path = chart_dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// What to paste next; `url:` and `token:` lines are also read by scripts and tests.
fn banner(address: SocketAddr, token: &str, kubeconfig: &Path) -> String {
    let url = format!("http://{address}");
    let charts = DEMO_CHARTS
        .iter()
        .filter_map(|(path, _)| path.strip_suffix("/Chart.yaml"))
        .collect::<Vec<_>>()
        .join(", ");
    // This very binary is the client, wherever it was built or installed.
    let client = std::env::current_exe()
        .map(|exe| shell_word(&exe.to_string_lossy()))
        .unwrap_or_else(|_| "rollcall".to_owned());
    format!(
        "rollcall sandbox is ready (stop with Ctrl-C)\n\
         url: {url}\n\
         token: {token}\n\
         ui: {url}/ui   (paste the token into its sign-in form; it never goes in a URL)\n\
         kubeconfig: {kubeconfig}   (kubectl --kubeconfig {kubeconfig} get pods -A)\n\
         demo charts: {charts}\n\
         \n\
         Deploy the web chart and follow it to its verdict (other namespaces than default do not \
         exist yet: --create-namespace lets helm create one):\n\
         \n\
         ROLLCALL_URL={url} ROLLCALL_TOKEN={token} {client} deploy web -n demo --create-namespace --chart web\n\
         \n\
         or with curl, following its event stream:\n\
         \n\
         TOKEN={token}; LOCATION=$(curl -sS -o /dev/null -w '%header{{location}}' -X POST \
         -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' \
         -d '{{\"release\":\"web\",\"namespace\":\"demo\",\"create_namespace\":true,\"chart\":{{\"path\":\"web\"}}}}' \
         {url}/v1/deploys) && curl -sSN -H 'Accept: text/event-stream' \
         -H \"Authorization: Bearer $TOKEN\" \"{url}$LOCATION/events\"\n",
        kubeconfig = kubeconfig.display(),
    )
}

/// `text` as one shell word: as it is when it is plain, else single-quoted.
fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}
