//! Figures the benchmarks print: latency percentiles and the machine's load beside them.

use std::time::Duration;

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` gives them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Reports one figure to `scripts/bench`, which collects these lines into `BENCHMARKS.md`:
/// `figure <id> <value> <unit>`.
pub fn figure(id: &str, value: f64, unit: &str) {
    println!("{}", figure_line(id, value, unit));
}

pub fn figure_line(id: &str, value: f64, unit: &str) -> String {
    format!("figure {id} {value:.3} {unit}")
}

/// Milliseconds of a duration, for figures.
pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// p50, p90, p99 and max (nearest rank).
pub fn percentiles(samples: &[Duration]) -> [Duration; 4] {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let percentile = |p: f64| {
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted.get(index).copied().unwrap_or_default()
    };
    [
        percentile(0.5),
        percentile(0.9),
        percentile(0.99),
        percentile(1.0),
    ]
}

/// `p50 … ms, p90 … ms, p99 … ms, max … ms`.
pub fn latency_summary(samples: &[Duration]) -> String {
    let [p50, p90, p99, max] = percentiles(samples).map(|d| d.as_secs_f64() * 1000.0);
    format!("p50 {p50:.1} ms, p90 {p90:.1} ms, p99 {p99:.1} ms, max {max:.1} ms")
}
