//! kubesim: a simulated Kubernetes cluster that speaks the real Kubernetes HTTP API, so that unmodified
//! clients (helm, kubectl, kube-rs) can be tested against it on machines where no cluster can run.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kubesim::ClusterError> {
//! let cluster = kubesim::Cluster::start(kubesim::options::ClusterOptions::default()).await?;
//! cluster.write_kubeconfig(std::path::Path::new("/tmp/kubeconfig"))?;
//! // ... run helm / kubectl / kube-rs against it ...
//! cluster.shutdown().await;
//! # Ok(()) }
//! ```

pub mod admin;
pub mod api;
pub mod behavior;
pub mod cli;
pub mod control_loop;
pub mod controllers;
pub mod kubelet;
pub mod logs;
pub mod options;
pub mod pod_util;
pub mod recorder;
pub mod store;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use admin::{Admin, RequestCounts};
use control_loop::ControllerControl;
use logs::LogBook;
use options::ClusterOptions;
use store::{Store, StoreError, WatchEventType};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot write the kubeconfig to {path}: {source}")]
    Kubeconfig {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot create the simulated nodes: {0}")]
    Nodes(#[from] StoreError),
}

/// Entry point: `Cluster::start(options)`.
pub struct Cluster;

impl Cluster {
    /// Starts a cluster on 127.0.0.1 with a free port.
    pub async fn start(options: ClusterOptions) -> Result<ClusterHandle, ClusterError> {
        Self::start_on(options, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts a cluster listening on `address`.
    pub async fn start_on(
        options: ClusterOptions,
        address: SocketAddr,
    ) -> Result<ClusterHandle, ClusterError> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| ClusterError::Bind { address, source })?;
        let address = listener
            .local_addr()
            .map_err(|source| ClusterError::Bind { address, source })?;
        let store = Store::new();
        let logs = LogBook::new();
        create_nodes(&store, options.nodes)?;

        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let admin = Admin::default();
        let control = ControllerControl::new();
        let state = api::ApiState::new(
            store.clone(),
            logs.clone(),
            options.kube_version,
            admin.clone(),
            control.clone(),
            shutdown.clone(),
        );
        tasks.spawn(forget_logs_of_removed_pods(
            store.clone(),
            logs.clone(),
            shutdown.clone(),
        ));
        controllers::spawn_all(
            store.clone(),
            logs.clone(),
            options.clone(),
            control.clone(),
            &tasks,
            shutdown.clone(),
        );
        let server_shutdown = shutdown.clone();
        tasks.spawn(async move {
            let served = axum::serve(listener, api::router(state))
                .with_graceful_shutdown(server_shutdown.cancelled_owned())
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "kubesim API server stopped");
            }
        });
        tracing::debug!(%address, nodes = options.nodes, version = %options.kube_version, "kubesim started");
        Ok(ClusterHandle {
            address,
            options,
            store,
            logs,
            admin,
            controllers: control,
            shutdown,
            tasks,
        })
    }
}

/// The simulated nodes, Ready, before any controller runs.
fn create_nodes(store: &Store, count: u32) -> Result<(), StoreError> {
    let now = store::timestamp(chrono::Utc::now());
    for index in 0..count {
        let name = format!("node-{index}");
        let node = json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}},
            "spec": {"podCIDR": format!("10.244.{index}.0/24")},
            "status": {
                "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now}],
                "addresses": [{"type": "InternalIP", "address": format!("172.18.0.{}", index + 2)}, {"type": "Hostname", "address": name}],
                "nodeInfo": {"kubeletVersion": "v1.31.0", "containerRuntimeVersion": "kubesim://1", "operatingSystem": "linux", "architecture": "amd64"},
            },
        });
        store.create(&store::NODES, node)?;
    }
    Ok(())
}

/// A pod recreated with the same name (StatefulSet) must not show its predecessor's logs.
async fn forget_logs_of_removed_pods(store: Store, logs: LogBook, shutdown: CancellationToken) {
    let mut events = store.subscribe();
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            event = events.recv() => event,
        };
        match event {
            Ok(event)
                if event.resource == store::PODS && event.event_type == WatchEventType::Deleted =>
            {
                logs.forget_pod(event.namespace().unwrap_or_default(), event.name());
            }
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

/// A running simulated cluster. Dropping it without `shutdown()` leaves the server running until the
/// runtime ends.
pub struct ClusterHandle {
    address: SocketAddr,
    options: ClusterOptions,
    store: Store,
    logs: LogBook,
    admin: Admin,
    controllers: ControllerControl,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl ClusterHandle {
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn options(&self) -> &ClusterOptions {
        &self.options
    }

    /// A kubeconfig (plain http, context and cluster named `kubesim`, namespace `default`).
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kubesim\n  cluster:\n    server: {url}\nusers:\n- name: kubesim\n  user:\n    token: kubesim\ncontexts:\n- name: kubesim\n  context:\n    cluster: kubesim\n    user: kubesim\n    namespace: default\ncurrent-context: kubesim\npreferences: {{}}\n",
            url = self.url()
        )
    }

    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), ClusterError> {
        std::fs::write(path, self.kubeconfig_yaml()).map_err(|source| ClusterError::Kubeconfig {
            path: path.display().to_string(),
            source,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn logs(&self) -> &LogBook {
        &self.logs
    }

    /// Faults and counters (the same as the `/sim/...` endpoints).
    pub fn admin(&self) -> &Admin {
        &self.admin
    }

    /// Pause/resume of the controllers and the stream of notable transitions (pod ready, crash loop,
    /// rollout complete, ...) for benchmarks.
    pub fn controllers(&self) -> &ControllerControl {
        &self.controllers
    }

    /// Ends every open watch (clients re-watch from their last resourceVersion).
    pub fn drop_watches(&self) {
        self.admin.drop_watches();
    }

    /// Forgets the change history: watches from an older resourceVersion get 410 Gone.
    pub fn compact(&self) {
        self.store.compact();
    }

    /// The next `count` API requests (optionally only those whose path contains `path_contains`) fail
    /// with `status` (500, 429, ...).
    pub fn fail_next(&self, count: u32, status: StatusCode, path_contains: Option<&str>) {
        self.admin
            .fail_next(count, status, path_contains.map(str::to_owned));
    }

    pub fn set_latency(&self, latency: Duration) {
        self.admin.set_latency(latency);
    }

    /// Limits every fault to requests whose `User-Agent` contains `user_agent_contains` (`None`:
    /// every request), e.g. rollcall's own while helm's go through; `clear_faults` lifts it.
    pub fn scope_faults(&self, user_agent_contains: Option<&str>) {
        self.admin
            .scope_faults(user_agent_contains.map(str::to_owned));
    }

    pub fn clear_faults(&self) {
        self.admin.clear_faults();
    }

    /// Removes a pod at once, without grace, as if its node vanished.
    pub fn delete_pod_behind_controllers(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Value, StoreError> {
        admin::delete_pod_behind_controllers(&self.store, namespace, name)
    }

    pub fn request_counts(&self) -> RequestCounts {
        self.admin.request_counts()
    }

    pub fn reset_request_counts(&self) {
        self.admin.reset_request_counts();
    }

    /// Stops the server (open watches and log streams end) and every background task.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}
