//! The narrow metric handles that workers get: the helm driver a [`HelmMetrics`], the watch hubs a
//! [`WatchMetrics`], the runner a [`DeployMetrics`]. Each records what its worker alone knows;
//! none reaches for the server's state.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::describe;
use super::family::{CounterFamily, HistogramFamily};
use crate::domain::deploy::DeployStatus;
use crate::domain::verdict::VerdictReason;

/// From a quick `helm status` to an upgrade that waits for hook Jobs.
const HELM_BOUNDS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0,
];
/// From a deploy of passive objects to one that reaches its default 15-minute timeout.
const DEPLOY_BOUNDS: &[f64] = &[
    1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
];
/// Around the targets of DESIGN §8: p50 ≤ 50 ms, p99 ≤ 250 ms.
const LATENCY_BOUNDS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// helm processes: how many run now, how long each command takes.
#[derive(Debug)]
pub struct HelmMetrics {
    running: AtomicI64,
    durations: HistogramFamily,
}

impl Default for HelmMetrics {
    fn default() -> Self {
        HelmMetrics {
            running: AtomicI64::new(0),
            durations: HistogramFamily::new(
                "rollcall_helm_duration_seconds",
                "Wall time of helm processes, by command.",
                HELM_BOUNDS,
            ),
        }
    }
}

impl HelmMetrics {
    /// Counts a helm process of `command` as running until the guard drops, which records its
    /// duration.
    pub fn process(self: &Arc<Self>, command: &'static str) -> HelmProcess {
        self.running.fetch_add(1, Ordering::Relaxed);
        HelmProcess {
            metrics: Arc::clone(self),
            command,
            started: Instant::now(),
        }
    }

    pub(super) fn render(&self, out: &mut String) {
        gauge(
            out,
            "rollcall_helm_processes",
            "helm processes running now.",
            self.running.load(Ordering::Relaxed),
        );
        self.durations.render(out);
    }
}

/// A running helm process, see [`HelmMetrics::process`].
pub struct HelmProcess {
    metrics: Arc<HelmMetrics>,
    command: &'static str,
    started: Instant,
}

impl Drop for HelmProcess {
    fn drop(&mut self) {
        self.metrics.running.fetch_sub(1, Ordering::Relaxed);
        self.metrics
            .durations
            .observe(vec![("command", self.command)], self.started.elapsed());
    }
}

/// Why a watch started over.
#[derive(Debug, Clone, Copy)]
pub enum WatchRestart {
    /// An API call failed; retried with back-off.
    Error,
    /// Listed again: its resourceVersion was gone (`410 Gone`), or a list had failed.
    Relist,
}

impl WatchRestart {
    fn as_str(self) -> &'static str {
        match self {
            WatchRestart::Error => "error",
            WatchRestart::Relist => "relist",
        }
    }
}

/// Which of rollcall's own Kubernetes API calls failed.
#[derive(Debug, Clone, Copy)]
pub enum ApiCall {
    List,
    /// The read of a tracked resource when its tracking starts.
    Get,
    Watch,
    Discovery,
    Logs,
}

impl ApiCall {
    fn as_str(self) -> &'static str {
        match self {
            ApiCall::List => "list",
            ApiCall::Get => "get",
            ApiCall::Watch => "watch",
            ApiCall::Discovery => "discovery",
            ApiCall::Logs => "logs",
        }
    }
}

/// The watch hubs: watches open, their restarts, failed API calls.
#[derive(Debug)]
pub struct WatchMetrics {
    active: AtomicI64,
    restarts: CounterFamily,
    api_errors: CounterFamily,
}

impl Default for WatchMetrics {
    fn default() -> Self {
        WatchMetrics {
            active: AtomicI64::new(0),
            restarts: CounterFamily::new(
                "rollcall_watch_restarts_total",
                "Watches started over, by reason (error: retried after a failed call; relist: \
                 listed again after 410 Gone or a failed list).",
            )
            .with_zeros(
                [WatchRestart::Error, WatchRestart::Relist].map(|why| vec![("reason", why.as_str())]),
            ),
            api_errors: CounterFamily::new(
                "rollcall_kubernetes_api_errors_total",
                "Failed Kubernetes API calls of rollcall's own, by call (retried, never a verdict).",
            )
            .with_zeros(
                [
                    ApiCall::List,
                    ApiCall::Get,
                    ApiCall::Watch,
                    ApiCall::Discovery,
                    ApiCall::Logs,
                ]
                    .map(|call| vec![("call", call.as_str())]),
            ),
        }
    }
}

impl WatchMetrics {
    /// Counts a watch as open until the guard drops.
    pub fn watch_opened(self: &Arc<Self>) -> OpenWatch {
        self.active.fetch_add(1, Ordering::Relaxed);
        OpenWatch(Arc::clone(self))
    }

    pub fn restarted(&self, why: WatchRestart) {
        self.restarts.increment(vec![("reason", why.as_str())]);
    }

    pub fn api_error(&self, call: ApiCall) {
        self.api_errors.increment(vec![("call", call.as_str())]);
    }

    pub(super) fn render(&self, out: &mut String) {
        gauge(
            out,
            "rollcall_active_watches",
            "Kubernetes watches open now (each shared by every deploy that needs it).",
            self.active.load(Ordering::Relaxed),
        );
        self.restarts.render(out);
        self.api_errors.render(out);
    }
}

/// An open watch, see [`WatchMetrics::watch_opened`].
pub struct OpenWatch(Arc<WatchMetrics>);

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The runner: how its deploys end and how quickly, and its slots.
#[derive(Debug)]
pub struct DeployMetrics {
    durations: HistogramFamily,
    verdict_latency: HistogramFamily,
    slots: AtomicU64,
    busy_slots: AtomicI64,
}

impl Default for DeployMetrics {
    fn default() -> Self {
        DeployMetrics {
            durations: HistogramFamily::new(
                "rollcall_deploy_duration_seconds",
                "Deploys this process ran to their end, from start to the recorded end, by result \
                 and verdict reason (none for a success).",
                DEPLOY_BOUNDS,
            ),
            verdict_latency: HistogramFamily::new(
                "rollcall_verdict_latency_seconds",
                "From the moment tracking observed the decisive change to the persisted terminal \
                 event, by result.",
                LATENCY_BOUNDS,
            ),
            slots: AtomicU64::new(0),
            busy_slots: AtomicI64::new(0),
        }
    }
}

impl DeployMetrics {
    /// A deploy of this process ended as `status` after running `duration`.
    pub fn finished(
        &self,
        status: DeployStatus,
        reason: Option<VerdictReason>,
        duration: Duration,
    ) {
        let mut labels = vec![("result", status.as_str())];
        if let Some(reason) = reason {
            labels.push(("reason", reason.as_str()));
        }
        self.durations.observe(labels, duration);
    }

    /// The terminal event of a deploy ended as `status` was persisted, `latency` after tracking
    /// observed what decided it.
    pub fn verdict_persisted(&self, status: DeployStatus, latency: Duration) {
        self.verdict_latency
            .observe(vec![("result", status.as_str())], latency);
    }

    /// The deploys this process runs at once.
    pub fn set_slots(&self, slots: usize) {
        self.slots
            .store(u64::try_from(slots).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Counts a slot as busy until the guard drops.
    pub fn slot_taken(self: &Arc<Self>) -> BusySlot {
        self.busy_slots.fetch_add(1, Ordering::Relaxed);
        BusySlot(Arc::clone(self))
    }

    pub(super) fn render(&self, out: &mut String) {
        self.durations.render(out);
        self.verdict_latency.render(out);
        let slots = i64::try_from(self.slots.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        let busy = self.busy_slots.load(Ordering::Relaxed);
        describe(
            out,
            "rollcall_runner_slots",
            "gauge",
            "Deploys this process can run at once, by state (busy or free); 0 without a runner.",
        );
        for (state, value) in [("busy", busy), ("free", (slots - busy).max(0))] {
            use std::fmt::Write as _;
            let _ = writeln!(out, "rollcall_runner_slots{{state=\"{state}\"}} {value}");
        }
    }
}

/// A busy runner slot, see [`DeployMetrics::slot_taken`].
pub struct BusySlot(Arc<DeployMetrics>);

impl Drop for BusySlot {
    fn drop(&mut self) {
        self.0.busy_slots.fetch_sub(1, Ordering::Relaxed);
    }
}

fn gauge(out: &mut String, name: &str, help: &str, value: i64) {
    use std::fmt::Write as _;
    describe(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

/// What the retention policy deletes, as `rollcall_retention_deleted_total` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    LogEvents,
    Events,
    /// Notifications, with their attempts.
    Notifications,
    HookDeliveries,
    IdempotencyKeys,
}

impl Deleted {
    const ALL: [Deleted; 5] = [
        Deleted::LogEvents,
        Deleted::Events,
        Deleted::Notifications,
        Deleted::HookDeliveries,
        Deleted::IdempotencyKeys,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Deleted::LogEvents => "log_events",
            Deleted::Events => "events",
            Deleted::Notifications => "notifications",
            Deleted::HookDeliveries => "hook_deliveries",
            Deleted::IdempotencyKeys => "idempotency_keys",
        }
    }
}

/// The retention worker: rows it deleted, passes it made.
#[derive(Debug)]
pub struct RetentionMetrics {
    deleted: CounterFamily,
    passes: AtomicU64,
}

impl Default for RetentionMetrics {
    fn default() -> Self {
        RetentionMetrics {
            deleted: CounterFamily::new(
                "rollcall_retention_deleted_total",
                "Rows deleted by the retention policy on this replica, by kind (log_events, \
                 events, notifications with their attempts, hook_deliveries, idempotency_keys).",
            )
            .with_zeros(Deleted::ALL.map(|kind| vec![("kind", kind.as_str())])),
            passes: AtomicU64::new(0),
        }
    }
}

impl RetentionMetrics {
    pub fn deleted(&self, kind: Deleted, rows: u64) {
        self.deleted.add(vec![("kind", kind.as_str())], rows);
    }

    pub fn pass_done(&self) {
        self.passes.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        self.deleted.render(out);
        describe(
            out,
            "rollcall_retention_passes_total",
            "counter",
            "Retention passes this replica made (one replica at a time prunes).",
        );
        let _ = writeln!(
            out,
            "rollcall_retention_passes_total {}",
            self.passes.load(Ordering::Relaxed)
        );
    }
}
