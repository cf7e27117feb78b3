//! Metric families with labels: counters and histograms, kept in memory and rendered in the
//! Prometheus text format. Label values come from closed sets (commands, reasons, results), never
//! from ids or names, so a family's series stay few.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::{describe, escape};

/// `(name, value)` pairs, in the order they are written.
pub type Labels = Vec<(&'static str, &'static str)>;

/// A counter per label set.
#[derive(Debug)]
pub struct CounterFamily {
    name: &'static str,
    help: &'static str,
    counts: Mutex<BTreeMap<Labels, u64>>,
}

impl CounterFamily {
    pub const fn new(name: &'static str, help: &'static str) -> Self {
        CounterFamily {
            name,
            help,
            counts: Mutex::new(BTreeMap::new()),
        }
    }

    /// Exports `labels` at 0 until counted: a rate over a series that does not exist yet shows
    /// nothing rather than zero.
    pub fn with_zeros(self, label_sets: impl IntoIterator<Item = Labels>) -> Self {
        {
            let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
            for labels in label_sets {
                counts.entry(labels).or_default();
            }
        }
        self
    }

    pub fn increment(&self, labels: Labels) {
        self.add(labels, 1);
    }

    pub fn add(&self, labels: Labels, count: u64) {
        *self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(labels)
            .or_default() += count;
    }

    pub fn render(&self, out: &mut String) {
        describe(out, self.name, "counter", self.help);
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        for (labels, count) in counts.iter() {
            let _ = writeln!(out, "{}{} {count}", self.name, label_set(labels, None));
        }
    }
}

/// A histogram of durations (in seconds) per label set, with fixed bucket bounds.
#[derive(Debug)]
pub struct HistogramFamily {
    name: &'static str,
    help: &'static str,
    /// Upper bounds in seconds, ascending; `+Inf` is implied.
    bounds: &'static [f64],
    series: Mutex<BTreeMap<Labels, Series>>,
}

#[derive(Debug, Default)]
struct Series {
    /// Per bound: observations at or below it (not cumulative; summed when rendered).
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl HistogramFamily {
    pub const fn new(name: &'static str, help: &'static str, bounds: &'static [f64]) -> Self {
        HistogramFamily {
            name,
            help,
            bounds,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn observe(&self, labels: Labels, value: Duration) {
        let seconds = value.as_secs_f64();
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let series = series.entry(labels).or_insert_with(|| Series {
            buckets: vec![0; self.bounds.len()],
            ..Series::default()
        });
        if let Some(bucket) = self.bounds.iter().position(|bound| seconds <= *bound) {
            series.buckets[bucket] += 1;
        }
        series.sum += seconds;
        series.count += 1;
    }

    pub fn render(&self, out: &mut String) {
        describe(out, self.name, "histogram", self.help);
        let name = self.name;
        let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        for (labels, series) in series.iter() {
            let mut cumulative = 0;
            for (bound, count) in self.bounds.iter().zip(&series.buckets) {
                cumulative += count;
                let le = bound.to_string();
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {cumulative}",
                    label_set(labels, Some(&le))
                );
            }
            let _ = writeln!(
                out,
                "{name}_bucket{} {}",
                label_set(labels, Some("+Inf")),
                series.count
            );
            let _ = writeln!(out, "{name}_sum{} {}", label_set(labels, None), series.sum);
            let _ = writeln!(
                out,
                "{name}_count{} {}",
                label_set(labels, None),
                series.count
            );
        }
    }
}

/// `{a="x",le="0.5"}`, or nothing for no labels.
fn label_set(labels: &Labels, le: Option<&str>) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|(name, value)| format!("{name}=\"{}\"", escape(value)))
        .chain(le.map(|le| format!("le=\"{le}\"")))
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_render_cumulative_buckets_sum_and_count_per_label_set() {
        let family = HistogramFamily::new("x_seconds", "X.", &[0.1, 1.0]);
        family.observe(vec![("command", "upgrade")], Duration::from_millis(50));
        family.observe(vec![("command", "upgrade")], Duration::from_millis(500));
        family.observe(vec![("command", "upgrade")], Duration::from_secs(3));
        family.observe(vec![("command", "template")], Duration::from_millis(100));
        let mut out = String::new();
        family.render(&mut out);
        assert_eq!(
            out,
            "# HELP x_seconds X.\n# TYPE x_seconds histogram\n\
             x_seconds_bucket{command=\"template\",le=\"0.1\"} 1\n\
             x_seconds_bucket{command=\"template\",le=\"1\"} 1\n\
             x_seconds_bucket{command=\"template\",le=\"+Inf\"} 1\n\
             x_seconds_sum{command=\"template\"} 0.1\n\
             x_seconds_count{command=\"template\"} 1\n\
             x_seconds_bucket{command=\"upgrade\",le=\"0.1\"} 1\n\
             x_seconds_bucket{command=\"upgrade\",le=\"1\"} 2\n\
             x_seconds_bucket{command=\"upgrade\",le=\"+Inf\"} 3\n\
             x_seconds_sum{command=\"upgrade\"} 3.55\n\
             x_seconds_count{command=\"upgrade\"} 3\n"
        );
    }

    #[test]
    fn counters_count_per_label_set_and_start_declared_sets_at_zero() {
        let family = CounterFamily::new("y_total", "Y.");
        family.increment(vec![("reason", "expired")]);
        family.increment(vec![("reason", "expired")]);
        family.increment(Vec::new());
        let family = family.with_zeros([vec![("reason", "error")], vec![("reason", "expired")]]);
        let mut out = String::new();
        family.render(&mut out);
        assert_eq!(
            out,
            "# HELP y_total Y.\n# TYPE y_total counter\ny_total 1\ny_total{reason=\"error\"} 0\n\
             y_total{reason=\"expired\"} 2\n"
        );
    }
}
