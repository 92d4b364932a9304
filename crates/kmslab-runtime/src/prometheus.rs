//! Prometheus text for every kmslab `/metrics`, encoded by the `prometheus-client` crate.
//!
//! Each endpoint fills a [`Registry`] of its own (one per host or fleet, never a global
//! one, so several hosts in one process never mix their numbers) and [`encode`]s it. The
//! crate writes OpenMetrics, where a counter's family is named without its `_total`
//! (`# TYPE kmslab_host_requests counter`, samples `kmslab_host_requests_total`); `encode`
//! gives the Prometheus text format 0.0.4 the endpoints have always served (and that
//! `promtool check metrics` reads): counter families named as their samples, no `# EOF`.
//!
//! [`Series`] is a labelled family of values read at scrape time; unlike the crate's
//! `Family` it keeps its `# HELP`/`# TYPE` lines when it has no series yet, so dashboards
//! and rules find every metric on every host.

use std::fmt::Write as _;

pub use prometheus_client;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
pub use prometheus_client::metrics::MetricType;
pub use prometheus_client::metrics::counter::ConstCounter;
pub use prometheus_client::metrics::gauge::ConstGauge;
pub use prometheus_client::registry::Registry;

/// Registers `metric` as `name` with `help`. The crate adds the final full stop to a help
/// text, so one given with it loses it first; a counter is named with its `_total`, as
/// its samples are.
pub fn register(registry: &mut Registry, name: &str, help: &str, metric: impl prometheus_client::registry::Metric) {
    let name = name.strip_suffix("_total").unwrap_or(name);
    registry.register(name, help.strip_suffix('.').unwrap_or(help), metric);
}

/// The registry as Prometheus text (format 0.0.4).
pub fn encode(registry: &Registry) -> String {
    let mut open = String::new();
    prometheus_client::encoding::text::encode_registry(&mut open, registry).expect("encoding to a String cannot fail");
    let mut out = String::with_capacity(open.len() + 256);
    // `# HELP` comes before `# TYPE`, which says whether the family is a counter.
    let mut help: Option<&str> = None;
    for line in open.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest);
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.rsplit_once(' ').unwrap_or((rest, "unknown"));
            let name = if kind == "counter" { format!("{name}_total") } else { name.to_owned() };
            if let Some(text) = help.take().and_then(|h| h.split_once(' ')).map(|(_, text)| text) {
                let _ = writeln!(out, "# HELP {name} {text}");
            }
            let _ = writeln!(out, "# TYPE {name} {kind}");
        } else if !line.starts_with("# UNIT ") && line != "# EOF" {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// A labelled family of values read at scrape time (`kmslab_host_counted_cmids{group=..}`),
/// in the order given.
#[derive(Debug)]
pub struct Series<M> {
    kind: MetricType,
    series: Vec<(Vec<(String, String)>, M)>,
}

impl<M: EncodeMetric> Series<M> {
    /// An empty family of `kind` (the type of `M`).
    pub fn new(kind: MetricType) -> Self {
        Series { kind, series: Vec::new() }
    }

    /// Adds one series with `labels`. Label values are escaped as the text format wants
    /// (`\\`, `\"`, `\n`): `prometheus-client` writes them as given, and a value can come
    /// from a user's file (a catalog's group name).
    pub fn push<K: Into<String>, V: Into<String>>(&mut self, labels: impl IntoIterator<Item = (K, V)>, value: M) {
        self.series.push((labels.into_iter().map(|(k, v)| (k.into(), escape_label_value(&v.into()))).collect(), value));
    }
}

/// `value` as it stands between the quotes of a label in the text format: backslash,
/// double quote and line feed escaped.
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Gauges with labels.
pub fn gauges() -> Series<ConstGauge<f64>> {
    Series::new(MetricType::Gauge)
}

/// Counters with labels.
pub fn counters() -> Series<ConstCounter<u64>> {
    Series::new(MetricType::Counter)
}

impl<M: EncodeMetric> EncodeMetric for Series<M> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, value) in &self.series {
            value.encode(encoder.encode_family(labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        self.kind
    }
}

/// A histogram's values at scrape time: per-bucket counts (upper bound, observations in
/// that bucket alone), then the sum and count of every observation.
#[derive(Debug)]
pub struct HistogramValues {
    /// (upper bound, observations in this bucket and not in a lower one).
    pub buckets: Vec<(f64, u64)>,
    /// Sum of the observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

impl EncodeMetric for HistogramValues {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let inside: u64 = self.buckets.iter().map(|(_, n)| n).sum();
        let mut buckets = self.buckets.clone();
        // The crate writes an upper bound of f64::MAX as `+Inf`.
        buckets.push((f64::MAX, self.count.saturating_sub(inside)));
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_as_their_samples_and_empty_families_keep_their_help() {
        let mut r = Registry::default();
        register(&mut r, "kmslab_x_requests_total", "Requests, by result.", {
            let mut s = counters();
            s.push([("result", "0x00000000")], ConstCounter::new(3));
            s
        });
        register(&mut r, "kmslab_x_zones", "Zones.", gauges());
        register(&mut r, "kmslab_x_up", "1 when up.", ConstGauge::new(1));
        register(&mut r, "kmslab_x_seconds", "Latency.", HistogramValues { buckets: vec![(0.5, 1), (1.0, 1)], sum: 2.25, count: 3 });
        assert_eq!(
            encode(&r),
            "# HELP kmslab_x_requests_total Requests, by result.\n# TYPE kmslab_x_requests_total counter\n\
             kmslab_x_requests_total{result=\"0x00000000\"} 3\n\
             # HELP kmslab_x_zones Zones.\n# TYPE kmslab_x_zones gauge\n\
             # HELP kmslab_x_up 1 when up.\n# TYPE kmslab_x_up gauge\nkmslab_x_up 1\n\
             # HELP kmslab_x_seconds Latency.\n# TYPE kmslab_x_seconds histogram\n\
             kmslab_x_seconds_sum 2.25\nkmslab_x_seconds_count 3\n\
             kmslab_x_seconds_bucket{le=\"0.5\"} 1\nkmslab_x_seconds_bucket{le=\"1.0\"} 2\nkmslab_x_seconds_bucket{le=\"+Inf\"} 3\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label_value("plain"), "plain");
        assert_eq!(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut r = Registry::default();
        let mut s = gauges();
        s.push([("group", "Win \"7\"\\\n")], ConstGauge::new(1.0));
        register(&mut r, "kmslab_x_counted", "Counted.", s);
        assert!(encode(&r).contains("kmslab_x_counted{group=\"Win \\\"7\\\"\\\\\\n\"} 1"), "{}", encode(&r));
    }
}
