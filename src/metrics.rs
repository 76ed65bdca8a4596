//! The Prometheus registry and every metric, named `alertgate_*`. Labels
//! are of bounded cardinality only: source, rule, service, priority, kind,
//! notifier, outcome, endpoint — never a fingerprint or an incident id.
//! `service` comes from senders (rules template it from labels), so each
//! metric admits at most `metrics.max_label_values` distinct services and
//! counts the rest under `other` ([`LabelBudget`]).
//!
//! Counters and histograms are updated where each fact happens; facts
//! decided inside a store transaction are staged and counted only once the
//! transaction commits ([`Fact`]). Gauges of stored state (open incidents,
//! running clocks, compliance, outbox depth) are read from the store at
//! scrape time (`store::Store::gauges`).
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Seconds to days: for time to acknowledge and to resolve.
const RESPONSE_BUCKETS: &[f64] = &[
    10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 172800.0,
    259200.0, 604800.0,
];
const REQUEST_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const COMMIT_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// The label value that stands for every value past a metric's budget.
pub const OTHER: &str = "other";
/// Distinct sender-derived label values a metric admits by default.
pub const DEFAULT_MAX_LABEL_VALUES: usize = 200;

/// Admits label values that come from senders, per metric, up to a limit:
/// a value seen before keeps its series, a new one past the limit becomes
/// [`OTHER`]. Admitted values are never released (their counters live on).
pub struct LabelBudget {
    limit: AtomicUsize,
    admitted: Mutex<HashMap<&'static str, HashSet<String>>>,
}

impl LabelBudget {
    fn new(limit: usize) -> LabelBudget {
        LabelBudget { limit: AtomicUsize::new(limit), admitted: Mutex::default() }
    }

    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// `value` itself, or [`OTHER`] once `metric` has its fill of values.
    pub fn admit<'a>(&self, metric: &'static str, value: &'a str) -> Cow<'a, str> {
        let mut admitted = self.admitted.lock().expect("label budget lock");
        let seen = admitted.entry(metric).or_default();
        if seen.contains(value) {
            return Cow::Borrowed(value);
        }
        if seen.len() < self.limit.load(Ordering::Relaxed) {
            seen.insert(value.to_owned());
            return Cow::Borrowed(value);
        }
        Cow::Borrowed(OTHER)
    }
}

/// The request methods the duration histogram names; any other is `other`,
/// so a client cannot create series by inventing methods.
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => OTHER,
    }
}

/// The window of `alertgate_sla_compliance_ratio`.
pub const COMPLIANCE_WINDOW_DAYS: i64 = 30;

pub struct Metrics {
    pub registry: Registry,
    pub alerts_received: IntCounterVec,
    pub alerts_deduplicated: IntCounterVec,
    pub ingest_rejected: IntCounterVec,
    pub alerts_muted: IntCounterVec,
    pub http_duration: HistogramVec,
    pub incidents_created: IntCounterVec,
    pub incidents_reopened: IntCounterVec,
    pub incidents_flapping: IntCounterVec,
    pub incidents_open: IntGaugeVec,
    pub sla_breaches: IntCounterVec,
    pub sla_warnings: IntCounterVec,
    pub time_to_acknowledge: HistogramVec,
    pub time_to_resolve: HistogramVec,
    pub sla_clocks_running: IntGaugeVec,
    pub sla_compliance: GaugeVec,
    pub problems_open: IntGaugeVec,
    pub notifications: IntCounterVec,
    pub rate_limited: IntCounterVec,
    pub outbox_depth: IntGauge,
    pub outbox_oldest: Gauge,
    pub commit_batch_size: Histogram,
    pub commit_duration: Histogram,
    pub commits_failed: prometheus::IntCounter,
    pub database_size: IntGaugeVec,
    pub build_info: IntGaugeVec,
    pub reload_ok: IntGauge,
    pub reload_time: Gauge,
    pub connections_open: IntGauge,
    pub connections_evicted: prometheus::IntCounter,
    pub connections_refused: prometheus::IntCounter,
    /// Bounds the `service` label of every metric that has one.
    pub services: LabelBudget,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

fn int_counter(r: &Registry, name: &str, help: &str) -> prometheus::IntCounter {
    let c = prometheus::IntCounter::new(name, help).expect("valid metric");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

fn histogram_vec(r: &Registry, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels).expect("valid metric");
    r.register(Box::new(h.clone())).expect("registered once");
    h
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec())).expect("valid metric");
    r.register(Box::new(h.clone())).expect("registered once");
    h
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        #[cfg(target_os = "linux")]
        {
            let _ = r.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()));
        }
        let sla_compliance = GaugeVec::new(
            Opts::new(
                "alertgate_sla_compliance_ratio",
                "Share of decided SLA clocks (met or breached) that were met, of incidents created in the last 30 days.",
            ),
            &["kind", "priority", "service"],
        )
        .expect("valid metric");
        r.register(Box::new(sla_compliance.clone())).expect("registered once");
        let outbox_oldest = Gauge::new(
            "alertgate_outbox_oldest_pending_seconds",
            "Age of the oldest notification waiting for delivery.",
        )
        .expect("valid metric");
        r.register(Box::new(outbox_oldest.clone())).expect("registered once");
        let outbox_depth =
            IntGauge::new("alertgate_outbox_pending", "Notifications waiting for delivery.").expect("valid metric");
        r.register(Box::new(outbox_depth.clone())).expect("registered once");
        let commits_failed = prometheus::IntCounter::new(
            "alertgate_store_commits_failed_total",
            "Store transactions that failed to commit (nothing of them was stored).",
        )
        .expect("valid metric");
        r.register(Box::new(commits_failed.clone())).expect("registered once");
        let build_info = gauge_vec(&r, "alertgate_build_info", "Always 1; the version as a label.", &["version"]);
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        Metrics {
            alerts_received: counter(
                &r,
                "alertgate_alerts_received_total",
                "Alerts accepted from senders, by source and the status they were sent with.",
                &["source", "status"],
            ),
            alerts_deduplicated: counter(
                &r,
                "alertgate_alerts_deduplicated_total",
                "Received alerts that repeated one already stored (same fingerprint and state).",
                &["source"],
            ),
            ingest_rejected: counter(
                &r,
                "alertgate_ingest_rejected_total",
                "Ingest requests refused, by reason (invalid, too_large, unsupported_media_type, unavailable).",
                &["source", "reason"],
            ),
            alerts_muted: counter(
                &r,
                "alertgate_alerts_muted_total",
                "Firing alerts kept from incidents, by reason (silenced, inhibited, maintenance).",
                &["reason"],
            ),
            http_duration: histogram_vec(
                &r,
                "alertgate_http_request_duration_seconds",
                "HTTP request duration by endpoint (route pattern), method and status code.",
                &["endpoint", "method", "code"],
                REQUEST_BUCKETS,
            ),
            incidents_created: counter(
                &r,
                "alertgate_incidents_created_total",
                "Incidents opened.",
                &["rule", "priority", "service"],
            ),
            incidents_reopened: counter(&r, "alertgate_incidents_reopened_total", "Incidents reopened.", &["rule"]),
            incidents_flapping: counter(
                &r,
                "alertgate_incidents_flapping_total",
                "Resolved incidents reopened by an alert firing again within the flap window.",
                &["rule"],
            ),
            incidents_open: gauge_vec(
                &r,
                "alertgate_incidents_open",
                "Incidents not resolved or closed, by state, priority and service.",
                &["state", "priority", "service"],
            ),
            sla_breaches: counter(
                &r,
                "alertgate_sla_breaches_total",
                "SLA clocks that passed their target.",
                &["kind", "priority", "service"],
            ),
            sla_warnings: counter(
                &r,
                "alertgate_sla_warnings_total",
                "SLA warnings given (a clock passed a warn_at threshold).",
                &["kind", "priority", "service"],
            ),
            time_to_acknowledge: histogram_vec(
                &r,
                "alertgate_time_to_acknowledge_seconds",
                "Wall-clock time from an incident's creation to its first acknowledgement.",
                &["priority", "service"],
                RESPONSE_BUCKETS,
            ),
            time_to_resolve: histogram_vec(
                &r,
                "alertgate_time_to_resolve_seconds",
                "Wall-clock time from an incident's creation to its resolution.",
                &["priority", "service"],
                RESPONSE_BUCKETS,
            ),
            sla_clocks_running: gauge_vec(
                &r,
                "alertgate_sla_clocks",
                "SLA clocks of open incidents by kind and state (running, paused).",
                &["kind", "state"],
            ),
            sla_compliance,
            problems_open: gauge_vec(
                &r,
                "alertgate_problems",
                "Problems not closed, by state (open, known_error, resolved).",
                &["state"],
            ),
            notifications: counter(
                &r,
                "alertgate_notifications_total",
                "Notification deliveries by notifier and outcome (sent, retried, dead).",
                &["notifier", "outcome"],
            ),
            rate_limited: counter(
                &r,
                "alertgate_rate_limited_total",
                "Requests refused with 429 by the rate limits (class: ingest, api).",
                &["class"],
            ),
            outbox_depth,
            outbox_oldest,
            commit_batch_size: histogram(
                &r,
                "alertgate_store_commit_batch_requests",
                "Requests committed together in one store transaction.",
                BATCH_BUCKETS,
            ),
            commit_duration: histogram(
                &r,
                "alertgate_store_commit_duration_seconds",
                "Time to apply and commit one store transaction.",
                COMMIT_BUCKETS,
            ),
            commits_failed,
            database_size: gauge_vec(
                &r,
                "alertgate_database_size_bytes",
                "Size of the SQLite files (file: db, wal).",
                &["file"],
            ),
            build_info,
            reload_ok: {
                let g = IntGauge::new(
                    "alertgate_rules_last_reload_successful",
                    "1 when the last load of the rule files succeeded, 0 when it was refused.",
                )
                .expect("valid metric");
                r.register(Box::new(g.clone())).expect("registered once");
                g
            },
            reload_time: {
                let g = Gauge::new(
                    "alertgate_rules_last_reload_success_timestamp_seconds",
                    "When the rule files last loaded successfully.",
                )
                .expect("valid metric");
                r.register(Box::new(g.clone())).expect("registered once");
                g
            },
            connections_open: {
                let g =
                    IntGauge::new("alertgate_http_connections", "HTTP connections open now.").expect("valid metric");
                r.register(Box::new(g.clone())).expect("registered once");
                g
            },
            connections_evicted: int_counter(
                &r,
                "alertgate_http_connections_evicted_total",
                "Idle connections closed to make room for a new one at limits.max_connections.",
            ),
            connections_refused: int_counter(
                &r,
                "alertgate_http_connections_refused_total",
                "New connections closed at once: limits.max_connections reached and every connection busy.",
            ),
            registry: r,
            services: LabelBudget::new(DEFAULT_MAX_LABEL_VALUES),
        }
    }

    /// Create the series of every known label value at zero, so the first
    /// event of each shows in `rate()` and `increase()`.
    pub fn init(&self, notifiers: &[&str]) {
        const SOURCES: [&str; 5] = ["alertmanager", "prometheus", "grafana", "pagerduty", "generic"];
        for source in SOURCES {
            for status in ["firing", "resolved"] {
                self.alerts_received.with_label_values(&[source, status]);
            }
            self.alerts_deduplicated.with_label_values(&[source]);
            for reason in
                ["invalid", "too_large", "unsupported_media_type", "unavailable", "unauthorized", "rate_limited"]
            {
                self.ingest_rejected.with_label_values(&[source, reason]);
            }
        }
        for reason in ["silenced", "inhibited", "maintenance"] {
            self.alerts_muted.with_label_values(&[reason]);
        }
        for n in notifiers {
            for outcome in ["sent", "retried", "dead"] {
                self.notifications.with_label_values(&[n, outcome]);
            }
        }
        for class in ["ingest", "api"] {
            self.rate_limited.with_label_values(&[class]);
        }
    }

    /// Record how a load of the rule files went.
    pub fn rules_loaded(&self, ok: bool) {
        self.reload_ok.set(i64::from(ok));
        if ok {
            self.reload_time.set(crate::clock::now().as_millisecond() as f64 / 1000.0);
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// A fact decided inside a store transaction, counted once it commits.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    Muted { reason: &'static str },
    IncidentCreated { rule: String, priority: &'static str, service: String },
    Reopened { rule: String },
    Flapping { rule: String },
    SlaWarning { kind: &'static str, priority: String, service: String },
    SlaBreach { kind: &'static str, priority: String, service: String },
    Acknowledged { priority: String, service: String, seconds: f64 },
    Resolved { priority: String, service: String, seconds: f64 },
}

impl Fact {
    pub fn count(&self) {
        let m = metrics();
        let admit = |metric: &'static str, service: &str| m.services.admit(metric, service).into_owned();
        match self {
            Fact::Muted { reason } => m.alerts_muted.with_label_values(&[reason]).inc(),
            Fact::IncidentCreated { rule, priority, service } => {
                let service = admit("incidents_created", service);
                m.incidents_created.with_label_values(&[rule.as_str(), priority, service.as_str()]).inc()
            }
            Fact::Reopened { rule } => m.incidents_reopened.with_label_values(&[rule]).inc(),
            Fact::Flapping { rule } => m.incidents_flapping.with_label_values(&[rule]).inc(),
            Fact::SlaWarning { kind, priority, service } => {
                let service = admit("sla_warnings", service);
                m.sla_warnings.with_label_values(&[kind, priority.as_str(), service.as_str()]).inc()
            }
            Fact::SlaBreach { kind, priority, service } => {
                let service = admit("sla_breaches", service);
                m.sla_breaches.with_label_values(&[kind, priority.as_str(), service.as_str()]).inc()
            }
            Fact::Acknowledged { priority, service, seconds } => {
                let service = admit("time_to_acknowledge", service);
                m.time_to_acknowledge.with_label_values(&[priority.as_str(), service.as_str()]).observe(*seconds)
            }
            Fact::Resolved { priority, service, seconds } => {
                let service = admit("time_to_resolve", service);
                m.time_to_resolve.with_label_values(&[priority.as_str(), service.as_str()]).observe(*seconds)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_named_alertgate_and_exposes() {
        Fact::IncidentCreated { rule: "r".into(), priority: "P1", service: "s".into() }.count();
        Fact::Acknowledged { priority: "P1".into(), service: "s".into(), seconds: 42.0 }.count();
        let text = metrics().encode();
        assert!(
            text.contains("alertgate_incidents_created_total{priority=\"P1\",rule=\"r\",service=\"s\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("alertgate_time_to_acknowledge_seconds_bucket{priority=\"P1\",service=\"s\",le=\"60\"} 1")
        );
        assert!(text.contains("alertgate_build_info{version="));
        let budget = LabelBudget::new(2);
        assert_eq!(budget.admit("m", "a"), "a");
        assert_eq!(budget.admit("m", "b"), "b");
        assert_eq!(budget.admit("m", "c"), OTHER, "past the limit");
        assert_eq!(budget.admit("m", "a"), "a", "admitted values keep their series");
        assert_eq!(budget.admit("n", "c"), "c", "each metric has its own budget");
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("FROBNICATE"), OTHER);
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let name = line.split_whitespace().nth(2).unwrap();
            assert!(name.starts_with("alertgate_") || name.starts_with("process_"), "{name}");
        }
    }
}
