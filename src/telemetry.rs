//! Logs (`tracing`, text or JSON) and the Prometheus metrics rollcall keeps in memory.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

use crate::domain::verdict::VerdictReason;

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

/// Counters and gauges of this process. Deploy counts by status are read from the database at
/// scrape time, so they agree across instances.
#[derive(Debug, Default)]
pub struct Metrics {
    http_requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    events_written: AtomicU64,
    sse_subscribers: AtomicI64,
    sse_lagged: AtomicU64,
}

impl Metrics {
    pub fn http_request(&self, method: &str, route: &str, status: u16) {
        let mut requests = self
            .http_requests
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        *requests
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

    /// The Prometheus text exposition of everything, plus the deploys recorded in the database.
    pub fn render(&self, deploys: &DeployCounts) -> String {
        let mut out = String::new();
        describe(&mut out, "rollcall_deploys", "gauge", "Deploys by status.");
        for (status, count) in &deploys.by_status {
            let _ = writeln!(
                out,
                "rollcall_deploys{{status=\"{}\"}} {count}",
                escape(status)
            );
        }
        describe(
            &mut out,
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
            describe(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        describe(
            &mut out,
            "rollcall_http_requests_total",
            "counter",
            "HTTP requests by method, route and status.",
        );
        let requests = self
            .http_requests
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        for ((method, route, status), count) in requests.iter() {
            let _ = writeln!(
                out,
                "rollcall_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {count}",
                escape(method),
                escape(route)
            );
        }
        out
    }
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
    fn renders_prometheus_text() {
        let metrics = std::sync::Arc::new(Metrics::default());
        metrics.http_request("GET", "/v1/deploys", 200);
        metrics.http_request("GET", "/v1/deploys", 200);
        metrics.events_written(3);
        let guard = metrics.sse_subscriber();
        let text = metrics.render(&DeployCounts {
            by_status: vec![("queued".into(), 2)],
            by_verdict: vec![(VerdictReason::CrashLoopBackOff, 4)],
        });
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
        assert!(text.contains(
            "rollcall_http_requests_total{method=\"GET\",route=\"/v1/deploys\",status=\"200\"} 2\n"
        ));
        drop(guard);
        assert!(
            metrics
                .render(&DeployCounts::default())
                .contains("rollcall_sse_subscribers 0\n")
        );
    }
}
