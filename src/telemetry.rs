//! Logs (`tracing`, text or JSON) and the Prometheus metrics rollcall keeps in memory.
//!
//! Figures read from the database (deploys by status, queue depth) describe every replica's work:
//! only the replica holding the reporter lock (`store::reporter`) exports them, so that summing a
//! metric over replicas counts each deploy once. Everything else is this process's own.

mod family;
mod handles;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

use crate::domain::deploy::Phase;
use crate::domain::verdict::VerdictReason;
use crate::domain::webhooks::DeliveryOutcome;

/// At most one log line per this interval about deliveries that failed verification, so that
/// unauthenticated traffic cannot flood the logs either.
const UNVERIFIED_LOG_INTERVAL: Duration = Duration::from_secs(10);

pub use handles::{
    ApiCall, BusySlot, Deleted, DeployMetrics, HelmMetrics, HelmProcess, OpenWatch,
    RetentionMetrics, WatchMetrics, WatchRestart,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the global subscriber; `RUST_LOG` filters (default `info`, sqlx notices hidden).
/// Safe to call twice.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Counters and gauges of this process, and the handles its workers record into.
#[derive(Debug, Default)]
pub struct Metrics {
    http_requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    events_written: AtomicU64,
    sse_subscribers: AtomicI64,
    sse_lagged: AtomicU64,
    pub helm: std::sync::Arc<HelmMetrics>,
    pub watches: std::sync::Arc<WatchMetrics>,
    pub deploys: std::sync::Arc<DeployMetrics>,
    pub retention: std::sync::Arc<RetentionMetrics>,
    hook_deliveries: Mutex<BTreeMap<(String, DeliveryOutcome), u64>>,
    unverified_log: Mutex<ThrottledLog>,
    notifications: [AtomicU64; NotificationResult::ALL.len()],
    notification_delivery: Histogram,
}

/// What a notification attempt came to, as `rollcall_notifications_total` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationResult {
    Delivered,
    /// Failed, retried later.
    Retry,
    /// Given up.
    Failed,
    /// Its subscription was deleted or disabled.
    Cancelled,
}

impl NotificationResult {
    const ALL: [NotificationResult; 4] = [
        NotificationResult::Delivered,
        NotificationResult::Retry,
        NotificationResult::Failed,
        NotificationResult::Cancelled,
    ];

    fn as_str(self) -> &'static str {
        match self {
            NotificationResult::Delivered => "delivered",
            NotificationResult::Retry => "retry",
            NotificationResult::Failed => "failed",
            NotificationResult::Cancelled => "cancelled",
        }
    }
}

/// A Prometheus histogram of seconds with fixed buckets.
#[derive(Debug, Default)]
struct Histogram {
    /// Per bucket of [`DELIVERY_BUCKETS`], then +Inf; not cumulative.
    counts: [AtomicU64; DELIVERY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

/// From the event's commit to the receiver's 2xx: milliseconds when idle, hours after an outage.
const DELIVERY_BUCKETS: [f64; 14] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 86400.0,
];

impl Histogram {
    fn observe(&self, value: Duration) {
        let seconds = value.as_secs_f64();
        let bucket = DELIVERY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(DELIVERY_BUCKETS.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(value.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str) {
        let mut cumulative = 0;
        for (index, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let bound = DELIVERY_BUCKETS
                .get(index)
                .map_or_else(|| "+Inf".to_owned(), ToString::to_string);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

/// When the last line was written, and how many were left out since.
#[derive(Debug, Default)]
struct ThrottledLog {
    last: Option<Instant>,
    suppressed: u64,
}

/// The connection pool at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolUsage {
    pub max: u32,
    pub open: u32,
    pub idle: usize,
}

impl Metrics {
    pub fn http_request(&self, method: &str, route: &str, status: u16) {
        *lock(&self.http_requests)
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
    }

    pub fn events_written(&self, count: u64) {
        self.events_written.fetch_add(count, Ordering::Relaxed);
    }

    /// Counts an SSE subscriber for as long as the guard lives.
    pub fn sse_subscriber(self: &std::sync::Arc<Self>) -> SubscriberGuard {
        self.sse_subscribers.fetch_add(1, Ordering::Relaxed);
        SubscriberGuard(self.clone())
    }

    pub fn sse_lagged(&self) {
        self.sse_lagged.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a notification attempt's result; a delivery also records how long after its event
    /// it reached the receiver.
    pub fn notification(&self, result: NotificationResult, since_event: Duration) {
        let index = NotificationResult::ALL
            .iter()
            .position(|known| *known == result)
            .expect("every result is listed");
        self.notifications[index].fetch_add(1, Ordering::Relaxed);
        if result == NotificationResult::Delivered {
            self.notification_delivery.observe(since_event);
        }
    }

    /// Counts a webhook delivery by hook and outcome; one that failed verification is also
    /// logged, at most once per [`UNVERIFIED_LOG_INTERVAL`].
    pub fn hook_delivery(&self, hook: &str, outcome: DeliveryOutcome) {
        *lock(&self.hook_deliveries)
            .entry((hook.to_owned(), outcome))
            .or_default() += 1;
        if outcome == DeliveryOutcome::Unauthorized {
            self.log_unverified(hook, Instant::now());
        }
    }

    /// Logs an unverified delivery unless one was logged less than the interval before `now`;
    /// says whether it did.
    fn log_unverified(&self, hook: &str, now: Instant) -> bool {
        let mut log = lock(&self.unverified_log);
        if log
            .last
            .is_some_and(|last| now.duration_since(last) < UNVERIFIED_LOG_INTERVAL)
        {
            log.suppressed += 1;
            return false;
        }
        let suppressed = std::mem::take(&mut log.suppressed);
        log.last = Some(now);
        tracing::warn!(
            hook,
            unlogged_since_last_line = suppressed,
            "a webhook delivery failed verification; such lines are written at most every 10s"
        );
        true
    }

    /// The Prometheus text exposition of everything; `database` holds the figures read from the
    /// database when this replica reports them.
    pub fn render(&self, database: Option<&DatabaseFigures>, pool: PoolUsage) -> String {
        let mut out = String::new();
        describe(
            &mut out,
            "rollcall_database_reporter",
            "gauge",
            "1 on the one replica that exports the figures read from the database, else 0.",
        );
        let _ = writeln!(
            out,
            "rollcall_database_reporter {}",
            u8::from(database.is_some())
        );
        if let Some(figures) = database {
            render_database_figures(&mut out, &figures.deploys);
            render_outbox(&mut out, &figures.outbox);
        }
        self.render_own(&mut out, pool);
        out
    }

    fn render_own(&self, out: &mut String, pool: PoolUsage) {
        self.deploys.render(out);
        self.helm.render(out);
        self.watches.render(out);
        self.retention.render(out);
        describe(
            out,
            "rollcall_db_pool_connections",
            "gauge",
            "Database connections of this process, by state (in_use or idle).",
        );
        let open = usize::try_from(pool.open).unwrap_or(usize::MAX);
        for (state, count) in [
            ("in_use", open.saturating_sub(pool.idle)),
            ("idle", pool.idle),
        ] {
            let _ = writeln!(
                out,
                "rollcall_db_pool_connections{{state=\"{state}\"}} {count}"
            );
        }
        describe(
            out,
            "rollcall_db_pool_max_connections",
            "gauge",
            "Most database connections this process opens.",
        );
        let _ = writeln!(out, "rollcall_db_pool_max_connections {}", pool.max);
        self.render_requests_and_events(out);
    }

    fn render_requests_and_events(&self, out: &mut String) {
        for (name, kind, help, value) in [
            (
                "rollcall_events_written_total",
                "counter",
                "Events persisted by this process.",
                self.events_written.load(Ordering::Relaxed).to_string(),
            ),
            (
                "rollcall_sse_subscribers",
                "gauge",
                "Open SSE streams.",
                self.sse_subscribers.load(Ordering::Relaxed).to_string(),
            ),
            (
                "rollcall_sse_lagged_total",
                "counter",
                "SSE streams that fell behind and re-read from the database.",
                self.sse_lagged.load(Ordering::Relaxed).to_string(),
            ),
        ] {
            describe(out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        describe(
            out,
            "rollcall_hook_deliveries_total",
            "counter",
            "Webhook deliveries received by this process, by hook and outcome.",
        );
        for ((hook, outcome), count) in lock(&self.hook_deliveries).iter() {
            let _ = writeln!(
                out,
                "rollcall_hook_deliveries_total{{hook=\"{}\",outcome=\"{}\"}} {count}",
                escape(hook),
                outcome.as_str()
            );
        }
        describe(
            out,
            "rollcall_notifications_total",
            "counter",
            "Notification attempts of this process by result (delivered, retry, failed: given up, cancelled).",
        );
        for (result, count) in NotificationResult::ALL.iter().zip(&self.notifications) {
            let _ = writeln!(
                out,
                "rollcall_notifications_total{{result=\"{}\"}} {}",
                result.as_str(),
                count.load(Ordering::Relaxed)
            );
        }
        describe(
            out,
            "rollcall_notification_delivery_seconds",
            "histogram",
            "From a notification's event to its receiver's 2xx, for deliveries by this process.",
        );
        self.notification_delivery
            .render(out, "rollcall_notification_delivery_seconds");
        describe(
            out,
            "rollcall_http_requests_total",
            "counter",
            "HTTP requests by method, route and status.",
        );
        for ((method, route, status), count) in lock(&self.http_requests).iter() {
            let _ = writeln!(
                out,
                "rollcall_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {count}",
                escape(method),
                escape(route)
            );
        }
    }
}

/// The notification outbox, shared by every replica: exported by the reporter replica only.
fn render_outbox(out: &mut String, outbox: &OutboxDepth) {
    describe(
        out,
        "rollcall_notification_outbox",
        "gauge",
        "Notifications not yet delivered nor given up (all replicas), and those of them due now.",
    );
    let _ = writeln!(
        out,
        "rollcall_notification_outbox{{state=\"pending\"}} {}",
        outbox.pending
    );
    let _ = writeln!(
        out,
        "rollcall_notification_outbox{{state=\"due\"}} {}",
        outbox.due
    );
}

/// The figures read from the database, exported by the reporter replica only.
fn render_database_figures(out: &mut String, deploys: &DeployCounts) {
    describe(out, "rollcall_deploys", "gauge", "Deploys by status.");
    for (status, count) in &deploys.by_status {
        let _ = writeln!(
            out,
            "rollcall_deploys{{status=\"{}\"}} {count}",
            escape(status)
        );
    }
    describe(
        out,
        "rollcall_deploy_verdicts",
        "gauge",
        "Deploys that did not succeed, by verdict reason.",
    );
    // Every reason of the closed set, zeros included: the label set never grows.
    for reason in VerdictReason::ALL {
        let count = deploys
            .by_verdict
            .iter()
            .find(|(counted, _)| counted == reason)
            .map_or(0, |(_, count)| *count);
        let _ = writeln!(
            out,
            "rollcall_deploy_verdicts{{reason=\"{reason}\"}} {count}"
        );
    }
    describe(
        out,
        "rollcall_queue_depth",
        "gauge",
        "Deploys queued, waiting for their release or for a runner slot.",
    );
    let _ = writeln!(out, "rollcall_queue_depth {}", deploys.queued);
    describe(
        out,
        "rollcall_queue_oldest_age_seconds",
        "gauge",
        "How long the oldest queued deploy has waited; 0 with an empty queue.",
    );
    let _ = writeln!(
        out,
        "rollcall_queue_oldest_age_seconds {}",
        deploys.oldest_queued_seconds
    );
    describe(
        out,
        "rollcall_running_deploys",
        "gauge",
        "Deploys running (or cancelling), by phase.",
    );
    // Every phase, zeros included: the label set never changes.
    for phase in Phase::ALL {
        let count = deploys
            .running_by_phase
            .iter()
            .find(|(counted, _)| *counted == phase)
            .map_or(0, |(_, count)| *count);
        let _ = writeln!(
            out,
            "rollcall_running_deploys{{phase=\"{}\"}} {count}",
            phase.as_str()
        );
    }
}

/// A counter map's lock; a panic elsewhere leaves the counts usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// The `# HELP` and `# TYPE` lines that introduce a metric.
fn describe(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Deploys as recorded in the database (shared by every replica).
#[derive(Debug, Clone, Default)]
pub struct DeployCounts {
    pub by_status: Vec<(String, i64)>,
    pub by_verdict: Vec<(VerdictReason, i64)>,
    pub queued: i64,
    pub oldest_queued_seconds: f64,
    pub running_by_phase: Vec<(Phase, i64)>,
}

/// What the reporter replica reads from the database: deploys and the notification outbox.
#[derive(Debug, Clone, Default)]
pub struct DatabaseFigures {
    pub deploys: DeployCounts,
    pub outbox: OutboxDepth,
}

/// The notification outbox as recorded in the database (shared by every replica).
#[derive(Debug, Clone, Copy, Default)]
pub struct OutboxDepth {
    /// Notifications not yet delivered nor given up.
    pub pending: i64,
    /// Of those, the ones due now (a backlog when it stays above zero).
    pub due: i64,
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub struct SubscriberGuard(std::sync::Arc<Metrics>);

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.0.sse_subscribers.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_deliveries_are_counted_by_hook_and_outcome() {
        let metrics = Metrics::default();
        metrics.hook_delivery("web-push", DeliveryOutcome::Deployed);
        metrics.hook_delivery("web-push", DeliveryOutcome::Deployed);
        metrics.hook_delivery("web-push", DeliveryOutcome::Unauthorized);
        let text = metrics.render(None, PoolUsage::default());
        assert!(text.contains(
            "rollcall_hook_deliveries_total{hook=\"web-push\",outcome=\"deployed\"} 2\n"
        ));
        assert!(text.contains(
            "rollcall_hook_deliveries_total{hook=\"web-push\",outcome=\"unauthorized\"} 1\n"
        ));
    }

    #[test]
    fn unverified_deliveries_are_logged_at_most_once_per_interval() {
        let metrics = Metrics::default();
        let start = Instant::now();
        assert!(metrics.log_unverified("a", start));
        assert!(!metrics.log_unverified("a", start + Duration::from_secs(1)));
        assert!(!metrics.log_unverified("b", start + Duration::from_secs(9)));
        assert_eq!(lock(&metrics.unverified_log).suppressed, 2);
        assert!(metrics.log_unverified("a", start + UNVERIFIED_LOG_INTERVAL));
        assert_eq!(lock(&metrics.unverified_log).suppressed, 0);
    }

    #[test]
    fn renders_prometheus_text() {
        let metrics = std::sync::Arc::new(Metrics::default());
        metrics.http_request("GET", "/v1/deploys", 200);
        metrics.http_request("GET", "/v1/deploys", 200);
        metrics.events_written(3);
        let guard = metrics.sse_subscriber();
        metrics.notification(NotificationResult::Retry, Duration::from_secs(1));
        metrics.notification(NotificationResult::Delivered, Duration::from_millis(20));
        let text = metrics.render(
            Some(&DatabaseFigures {
                deploys: DeployCounts {
                    by_status: vec![("queued".into(), 2)],
                    by_verdict: vec![(VerdictReason::CrashLoopBackOff, 4)],
                    queued: 2,
                    oldest_queued_seconds: 7.5,
                    running_by_phase: vec![(Phase::Tracking, 3)],
                },
                outbox: OutboxDepth { pending: 5, due: 1 },
            }),
            PoolUsage {
                max: 10,
                open: 3,
                idle: 1,
            },
        );
        assert!(text.contains("rollcall_database_reporter 1\n"));
        assert!(text.contains("rollcall_queue_depth 2\n"));
        assert!(text.contains("rollcall_queue_oldest_age_seconds 7.5\n"));
        assert!(text.contains("rollcall_running_deploys{phase=\"tracking\"} 3\n"));
        assert!(text.contains("rollcall_running_deploys{phase=\"rolling_back\"} 0\n"));
        assert!(text.contains("rollcall_db_pool_connections{state=\"in_use\"} 2\n"));
        assert!(text.contains("rollcall_db_pool_max_connections 10\n"));
        assert!(text.contains("rollcall_deploys{status=\"queued\"} 2\n"));
        for reason in VerdictReason::ALL {
            let count = if *reason == VerdictReason::CrashLoopBackOff {
                4
            } else {
                0
            };
            assert!(
                text.contains(&format!(
                    "rollcall_deploy_verdicts{{reason=\"{reason}\"}} {count}\n"
                )),
                "{reason}"
            );
        }
        assert!(text.contains("rollcall_events_written_total 3\n"));
        assert!(text.contains("rollcall_sse_subscribers 1\n"));
        assert!(text.contains("rollcall_notifications_total{result=\"delivered\"} 1\n"));
        assert!(text.contains("rollcall_notifications_total{result=\"retry\"} 1\n"));
        assert!(text.contains("rollcall_notification_delivery_seconds_bucket{le=\"0.01\"} 0\n"));
        assert!(text.contains("rollcall_notification_delivery_seconds_bucket{le=\"0.025\"} 1\n"));
        assert!(text.contains("rollcall_notification_delivery_seconds_count 1\n"));
        assert!(text.contains("rollcall_notification_outbox{state=\"pending\"} 5\n"));
        assert!(text.contains(
            "rollcall_http_requests_total{method=\"GET\",route=\"/v1/deploys\",status=\"200\"} 2\n"
        ));
        drop(guard);
        let follower = metrics.render(None, PoolUsage::default());
        assert!(follower.contains("rollcall_sse_subscribers 0\n"));
        assert!(follower.contains("rollcall_database_reporter 0\n"));
        assert!(
            !follower.contains("rollcall_deploys{") && !follower.contains("rollcall_queue_depth "),
            "a replica that does not report exports no database figures: {follower}"
        );
    }
}
