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
pub mod stored;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use prometheus::core::Collector;

use crate::model::heartbeat::HeartbeatState;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
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
    pub reviews_overdue: IntGaugeVec,
    pub action_items: IntGaugeVec,
    pub notifications: IntCounterVec,
    pub rate_limited: IntCounterVec,
    pub outbox_depth: IntGauge,
    pub outbox_oldest: Gauge,
    pub commit_batch_size: Histogram,
    pub commit_duration: Histogram,
    pub commits_failed: IntCounter,
    pub batches_beside_others: IntCounterVec,
    pub database_size: IntGaugeVec,
    pub build_info: IntGaugeVec,
    pub reload_ok: IntGauge,
    pub reload_time: Gauge,
    pub connections_open: IntGauge,
    pub connections_evicted: IntCounter,
    pub connections_refused: IntCounter,
    pub heartbeat_last_ping: GaugeVec,
    pub heartbeat_state: IntGaugeVec,
    pub oncall_uncovered: IntGauge,
    pub oncall_covered: IntGaugeVec,
    pub oncall_shift_end: GaugeVec,
    pub oncall_overrides: IntGaugeVec,
    pub oncall_handoffs: IntCounterVec,
    /// Bounds the `service` label of every metric that has one.
    pub services: LabelBudget,
}

/// What a metric is: its name, help text and labels, defined once here.
struct Spec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
}

impl Spec {
    const fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Spec {
        Spec { name, help, labels }
    }

    fn opts(&self) -> Opts {
        Opts::new(self.name, self.help)
    }

    fn histogram_opts(&self, buckets: &[f64]) -> HistogramOpts {
        HistogramOpts::new(self.name, self.help).buckets(buckets.to_vec())
    }
}

// Ingest.
const ALERTS_RECEIVED: Spec = Spec::new(
    "alertgate_alerts_received_total",
    "Alerts accepted from senders, by source and the status they were sent with.",
    &["source", "status"],
);
const ALERTS_DEDUPLICATED: Spec = Spec::new(
    "alertgate_alerts_deduplicated_total",
    "Received alerts that repeated one already stored (same fingerprint and state).",
    &["source"],
);
const INGEST_REJECTED: Spec = Spec::new(
    "alertgate_ingest_rejected_total",
    "Ingest requests refused, by reason (invalid, too_large, unsupported_media_type, unavailable).",
    &["source", "reason"],
);
const ALERTS_MUTED: Spec = Spec::new(
    "alertgate_alerts_muted_total",
    "Firing alerts kept from incidents, by reason (silenced, inhibited, maintenance).",
    &["reason"],
);

// Incidents and problems.
const INCIDENTS_CREATED: Spec =
    Spec::new("alertgate_incidents_created_total", "Incidents opened.", &["rule", "priority", "service"]);
const INCIDENTS_REOPENED: Spec = Spec::new("alertgate_incidents_reopened_total", "Incidents reopened.", &["rule"]);
const INCIDENTS_FLAPPING: Spec = Spec::new(
    "alertgate_incidents_flapping_total",
    "Resolved incidents reopened by an alert firing again within the flap window.",
    &["rule"],
);
const INCIDENTS_OPEN: Spec = Spec::new(
    "alertgate_incidents_open",
    "Incidents not resolved or closed, by state, priority and service.",
    &["state", "priority", "service"],
);
const TIME_TO_ACKNOWLEDGE: Spec = Spec::new(
    "alertgate_time_to_acknowledge_seconds",
    "Wall-clock time from an incident's creation to its first acknowledgement.",
    &["priority", "service"],
);
const TIME_TO_RESOLVE: Spec = Spec::new(
    "alertgate_time_to_resolve_seconds",
    "Wall-clock time from an incident's creation to its resolution.",
    &["priority", "service"],
);
const PROBLEMS_OPEN: Spec =
    Spec::new("alertgate_problems", "Problems not closed, by state (open, known_error, resolved).", &["state"]);

const REVIEWS_OVERDUE: Spec = Spec::new(
    "alertgate_reviews_overdue",
    "Incidents whose required post-incident review is not published within reviews.due_within of their resolution (resolved in the last 90 days).",
    &["service"],
);

const ACTION_ITEMS: Spec = Spec::new(
    "alertgate_action_items",
    "Action items not done, by the service of their incident (\"\" for a problem's): state=\"open\" all of them, state=\"overdue\" those past their due date.",
    &["service", "state"],
);

// SLA clocks.
const SLA_BREACHES: Spec =
    Spec::new("alertgate_sla_breaches_total", "SLA clocks that passed their target.", &["kind", "priority", "service"]);
const SLA_WARNINGS: Spec = Spec::new(
    "alertgate_sla_warnings_total",
    "SLA warnings given (a clock passed a warn_at threshold).",
    &["kind", "priority", "service"],
);
const SLA_CLOCKS_RUNNING: Spec = Spec::new(
    "alertgate_sla_clocks",
    "SLA clocks of open incidents by kind and state (running, paused).",
    &["kind", "state"],
);
const SLA_COMPLIANCE: Spec = Spec::new(
    "alertgate_sla_compliance_ratio",
    "Share of decided SLA clocks (met or breached) that were met, of incidents created in the last 30 days.",
    &["kind", "priority", "service"],
);

// Notifications.
const NOTIFICATIONS: Spec = Spec::new(
    "alertgate_notifications_total",
    "Notification deliveries by notifier and outcome (sent, retried, dead).",
    &["notifier", "outcome"],
);
const OUTBOX_DEPTH: Spec = Spec::new("alertgate_outbox_pending", "Notifications waiting for delivery.", &[]);
const OUTBOX_OLDEST: Spec =
    Spec::new("alertgate_outbox_oldest_pending_seconds", "Age of the oldest notification waiting for delivery.", &[]);

// The store.
const COMMIT_BATCH_SIZE: Spec =
    Spec::new("alertgate_store_commit_batch_requests", "Requests committed together in one store transaction.", &[]);
const COMMIT_DURATION: Spec =
    Spec::new("alertgate_store_commit_duration_seconds", "Time to apply and commit one store transaction.", &[]);
const COMMITS_FAILED: Spec = Spec::new(
    "alertgate_store_commits_failed_total",
    "Store transactions that failed to commit (nothing of them was stored).",
    &[],
);
const BATCHES_BESIDE_OTHERS: Spec = Spec::new(
    "alertgate_store_batches_beside_others_total",
    "Ingest batches tried beside other gateways' on a shared PostgreSQL (outcome: committed, or retried holding \
     the write lock alone because they held more than alerts sent again).",
    &["outcome"],
);
const DATABASE_SIZE: Spec =
    Spec::new("alertgate_database_size_bytes", "Size of the SQLite files (file: db, wal).", &["file"]);

// HTTP.
const HTTP_DURATION: Spec = Spec::new(
    "alertgate_http_request_duration_seconds",
    "HTTP request duration by endpoint (route pattern), method and status code.",
    &["endpoint", "method", "code"],
);
const RATE_LIMITED: Spec = Spec::new(
    "alertgate_rate_limited_total",
    "Requests refused with 429 by the rate limits (class: ingest, api).",
    &["class"],
);
const CONNECTIONS_OPEN: Spec = Spec::new("alertgate_http_connections", "HTTP connections open now.", &[]);
const CONNECTIONS_EVICTED: Spec = Spec::new(
    "alertgate_http_connections_evicted_total",
    "Idle connections closed to make room for a new one at limits.max_connections.",
    &[],
);
const CONNECTIONS_REFUSED: Spec = Spec::new(
    "alertgate_http_connections_refused_total",
    "New connections closed at once: limits.max_connections reached and every connection busy.",
    &[],
);

// Heartbeats (their names come from the rules, so the label is bounded).
const HEARTBEAT_LAST_PING: Spec = Spec::new(
    "alertgate_heartbeat_last_ping_timestamp_seconds",
    "When each heartbeat last pinged (absent before its first ping).",
    &["heartbeat"],
);
const HEARTBEAT_STATE: Spec = Spec::new(
    "alertgate_heartbeat_state",
    "1 for each heartbeat's state now (never, up, late, down), 0 for the others.",
    &["heartbeat", "state"],
);

// On call (schedule names come from the rules, so the label is bounded).
const ONCALL_UNCOVERED: Spec =
    Spec::new("alertgate_oncall_schedules_uncovered", "Schedules with nobody on call now, overrides applied.", &[]);
const ONCALL_COVERED: Spec = Spec::new(
    "alertgate_oncall_covered",
    "1 when someone is on call in the schedule now, 0 when nobody is.",
    &["schedule"],
);
const ONCALL_SHIFT_END: Spec = Spec::new(
    "alertgate_oncall_shift_end_timestamp_seconds",
    "When the current on-call person's stretch ends (absent when nobody is on call or no end is in sight).",
    &["schedule"],
);
const ONCALL_OVERRIDES: Spec =
    Spec::new("alertgate_oncall_overrides_active", "Overrides in force now, by schedule.", &["schedule"]);
const ONCALL_HANDOFFS: Spec =
    Spec::new("alertgate_oncall_handoffs_total", "Changes of the person on call, by schedule.", &["schedule"]);

// The gateway itself.
const BUILD_INFO: Spec = Spec::new("alertgate_build_info", "Always 1; the version as a label.", &["version"]);
const RELOAD_OK: Spec = Spec::new(
    "alertgate_rules_last_reload_successful",
    "1 when the last load of the rule files succeeded, 0 when it was refused.",
    &[],
);
const RELOAD_TIME: Spec = Spec::new(
    "alertgate_rules_last_reload_success_timestamp_seconds",
    "When the rule files last loaded successfully.",
    &[],
);

/// Registers `metric` with `r` and hands back a handle to it.
fn register<M: Collector + Clone + 'static>(r: &Registry, metric: prometheus::Result<M>) -> M {
    let metric = metric.expect("valid metric");
    r.register(Box::new(metric.clone())).expect("registered once");
    metric
}

fn counter_vec(r: &Registry, spec: &Spec) -> IntCounterVec {
    register(r, IntCounterVec::new(spec.opts(), spec.labels))
}

fn counter(r: &Registry, spec: &Spec) -> IntCounter {
    register(r, IntCounter::with_opts(spec.opts()))
}

fn int_gauge_vec(r: &Registry, spec: &Spec) -> IntGaugeVec {
    register(r, IntGaugeVec::new(spec.opts(), spec.labels))
}

fn int_gauge(r: &Registry, spec: &Spec) -> IntGauge {
    register(r, IntGauge::with_opts(spec.opts()))
}

fn gauge_vec(r: &Registry, spec: &Spec) -> GaugeVec {
    register(r, GaugeVec::new(spec.opts(), spec.labels))
}

fn gauge(r: &Registry, spec: &Spec) -> Gauge {
    register(r, Gauge::with_opts(spec.opts()))
}

fn histogram_vec(r: &Registry, spec: &Spec, buckets: &[f64]) -> HistogramVec {
    register(r, HistogramVec::new(spec.histogram_opts(buckets), spec.labels))
}

fn histogram(r: &Registry, spec: &Spec, buckets: &[f64]) -> Histogram {
    register(r, Histogram::with_opts(spec.histogram_opts(buckets)))
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        {
            let _ = registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()));
        }
        let r = &registry;
        let metrics = Metrics {
            alerts_received: counter_vec(r, &ALERTS_RECEIVED),
            alerts_deduplicated: counter_vec(r, &ALERTS_DEDUPLICATED),
            ingest_rejected: counter_vec(r, &INGEST_REJECTED),
            alerts_muted: counter_vec(r, &ALERTS_MUTED),
            http_duration: histogram_vec(r, &HTTP_DURATION, REQUEST_BUCKETS),
            incidents_created: counter_vec(r, &INCIDENTS_CREATED),
            incidents_reopened: counter_vec(r, &INCIDENTS_REOPENED),
            incidents_flapping: counter_vec(r, &INCIDENTS_FLAPPING),
            incidents_open: int_gauge_vec(r, &INCIDENTS_OPEN),
            sla_breaches: counter_vec(r, &SLA_BREACHES),
            sla_warnings: counter_vec(r, &SLA_WARNINGS),
            time_to_acknowledge: histogram_vec(r, &TIME_TO_ACKNOWLEDGE, RESPONSE_BUCKETS),
            time_to_resolve: histogram_vec(r, &TIME_TO_RESOLVE, RESPONSE_BUCKETS),
            sla_clocks_running: int_gauge_vec(r, &SLA_CLOCKS_RUNNING),
            sla_compliance: gauge_vec(r, &SLA_COMPLIANCE),
            problems_open: int_gauge_vec(r, &PROBLEMS_OPEN),
            reviews_overdue: int_gauge_vec(r, &REVIEWS_OVERDUE),
            action_items: int_gauge_vec(r, &ACTION_ITEMS),
            notifications: counter_vec(r, &NOTIFICATIONS),
            rate_limited: counter_vec(r, &RATE_LIMITED),
            outbox_depth: int_gauge(r, &OUTBOX_DEPTH),
            outbox_oldest: gauge(r, &OUTBOX_OLDEST),
            commit_batch_size: histogram(r, &COMMIT_BATCH_SIZE, BATCH_BUCKETS),
            commit_duration: histogram(r, &COMMIT_DURATION, COMMIT_BUCKETS),
            commits_failed: counter(r, &COMMITS_FAILED),
            batches_beside_others: counter_vec(r, &BATCHES_BESIDE_OTHERS),
            database_size: int_gauge_vec(r, &DATABASE_SIZE),
            build_info: int_gauge_vec(r, &BUILD_INFO),
            reload_ok: int_gauge(r, &RELOAD_OK),
            reload_time: gauge(r, &RELOAD_TIME),
            connections_open: int_gauge(r, &CONNECTIONS_OPEN),
            connections_evicted: counter(r, &CONNECTIONS_EVICTED),
            connections_refused: counter(r, &CONNECTIONS_REFUSED),
            heartbeat_last_ping: gauge_vec(r, &HEARTBEAT_LAST_PING),
            heartbeat_state: int_gauge_vec(r, &HEARTBEAT_STATE),
            oncall_uncovered: int_gauge(r, &ONCALL_UNCOVERED),
            oncall_covered: int_gauge_vec(r, &ONCALL_COVERED),
            oncall_shift_end: gauge_vec(r, &ONCALL_SHIFT_END),
            oncall_overrides: int_gauge_vec(r, &ONCALL_OVERRIDES),
            oncall_handoffs: counter_vec(r, &ONCALL_HANDOFFS),
            services: LabelBudget::new(DEFAULT_MAX_LABEL_VALUES),
            registry,
        };
        metrics.build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        metrics
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

    /// Set the heartbeat gauges for a scrape: each heartbeat of the rules,
    /// its state at `now` and its last ping (a heartbeat gone from the
    /// rules leaves no series).
    pub fn heartbeats(&self, heartbeats: &[(&str, HeartbeatState, Option<jiff::Timestamp>)]) {
        self.heartbeat_last_ping.reset();
        self.heartbeat_state.reset();
        for (name, state, last_ping) in heartbeats {
            for s in HeartbeatState::ALL {
                self.heartbeat_state.with_label_values(&[name, s.as_str()]).set(i64::from(s == *state));
            }
            if let Some(t) = last_ping {
                self.heartbeat_last_ping.with_label_values(&[name]).set(t.as_millisecond() as f64 / 1000.0);
            }
        }
    }

    /// Set the on-call gauges for a scrape: each schedule of the rules,
    /// whether someone is on call, until when, and its live overrides.
    pub fn oncall(&self, schedules: &[(&str, bool, Option<jiff::Timestamp>, usize)]) {
        self.oncall_covered.reset();
        self.oncall_shift_end.reset();
        self.oncall_overrides.reset();
        let mut uncovered = 0;
        for (name, covered, until, overrides) in schedules {
            self.oncall_covered.with_label_values(&[name]).set(i64::from(*covered));
            uncovered += i64::from(!covered);
            if let Some(t) = until {
                self.oncall_shift_end.with_label_values(&[name]).set(t.as_millisecond() as f64 / 1000.0);
            }
            self.oncall_overrides.with_label_values(&[name]).set(*overrides as i64);
            self.oncall_handoffs.with_label_values(&[name]);
        }
        self.oncall_uncovered.set(uncovered);
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
    Handoff { schedule: String },
}

impl Fact {
    pub fn count(&self) {
        let m = metrics();
        let admit = |metric: &'static str, service: &str| m.services.admit(metric, service).into_owned();
        match self {
            Fact::Muted { reason } => m.alerts_muted.with_label_values(&[reason]).inc(),
            Fact::Handoff { schedule } => m.oncall_handoffs.with_label_values(&[schedule]).inc(),
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
