//! The normalized alert and the deduplication decision.
use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::Fingerprint;

/// Labels identify an alert; sorted so hashing and display are stable.
pub type LabelSet = BTreeMap<String, String>;
/// Annotations describe an alert; a repeat replaces them.
pub type Annotations = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "firing" => Some(AlertStatus::Firing),
            "resolved" => Some(AlertStatus::Resolved),
            _ => None,
        }
    }

    /// The SQL condition that `column` holds this status (a literal, so
    /// partial indexes on it stay usable).
    pub fn sql(self, column: &str) -> String {
        format!("{column} = '{}'", self.as_str())
    }
}

/// Which integration delivered an alert.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// The Alertmanager webhook receiver.
    Alertmanager,
    /// The Alertmanager v2 push API, as Prometheus uses it.
    Prometheus,
    /// Grafana unified alerting's webhook contact point.
    Grafana,
    /// The PagerDuty Events API v2.
    PagerDuty,
    /// Any JSON, through the named mapping from the config.
    Generic(String),
    /// The gateway itself: a heartbeat that missed its deadline.
    Heartbeat,
}

impl Source {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "alertmanager" => Source::Alertmanager,
            "prometheus" => Source::Prometheus,
            "grafana" => Source::Grafana,
            "pagerduty" => Source::PagerDuty,
            "heartbeat" => Source::Heartbeat,
            other => Source::Generic(other.strip_prefix("generic:")?.to_owned()),
        })
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Alertmanager => f.write_str("alertmanager"),
            Source::Prometheus => f.write_str("prometheus"),
            Source::Grafana => f.write_str("grafana"),
            Source::PagerDuty => f.write_str("pagerduty"),
            Source::Heartbeat => f.write_str("heartbeat"),
            Source::Generic(name) => write!(f, "generic:{name}"),
        }
    }
}

impl Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One alert as a sender reported it, normalized.
#[derive(Debug, Clone)]
pub struct Alert {
    pub fingerprint: Fingerprint,
    pub source: Source,
    pub labels: LabelSet,
    pub annotations: Annotations,
    pub status: AlertStatus,
    pub starts_at: Timestamp,
    /// When a resolved alert ended.
    pub ends_at: Option<Timestamp>,
    /// When a firing alert resolves by itself unless the sender repeats it
    /// (Prometheus' `endsAt` for firing alerts, or the resolve timeout).
    pub expires_at: Option<Timestamp>,
    pub generator_url: Option<String>,
    /// The sender's own JSON for this alert, kept verbatim.
    pub raw: Box<RawValue>,
}

/// What a sender can say about an alert.
#[derive(Debug, Clone)]
pub enum AlertUpdate {
    /// The alert as it is now (firing or resolved).
    Observe(Alert),
    /// A PagerDuty `acknowledge` for a known dedup key.
    Acknowledge { fingerprint: Fingerprint },
    /// A PagerDuty `resolve` for a known dedup key, carrying no alert body.
    Resolve { fingerprint: Fingerprint },
}

impl AlertUpdate {
    /// The alert it observes, if it is an observation.
    pub fn observed(&self) -> Option<&Alert> {
        match self {
            AlertUpdate::Observe(a) => Some(a),
            _ => None,
        }
    }

    pub fn fingerprint(&self) -> &Fingerprint {
        match self {
            AlertUpdate::Observe(a) => &a.fingerprint,
            AlertUpdate::Acknowledge { fingerprint } | AlertUpdate::Resolve { fingerprint } => fingerprint,
        }
    }
}

/// The part of a stored alert that deduplication decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertState {
    pub status: AlertStatus,
    pub starts_at: Timestamp,
    pub ends_at: Option<Timestamp>,
    /// True when the gateway resolved it because the sender stopped repeating
    /// it, rather than because the sender said so.
    pub expired: bool,
}

/// What an incoming observation means for the stored alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Observation {
    /// First time this fingerprint is seen.
    Created,
    /// Same state as stored: only last-seen, count and annotations change.
    Repeated,
    /// A firing alert is now resolved.
    Resolved,
    /// A resolved alert fires again (a new episode).
    Refired,
    /// A late copy of an episode the store has already moved past (an HA
    /// peer's or a retry's firing after the resolve, or an old episode's
    /// resolve after a new firing): counted, but the status stays.
    Stale,
}

impl Observation {
    pub fn as_str(self) -> &'static str {
        match self {
            Observation::Created => "created",
            Observation::Repeated => "repeated",
            Observation::Resolved => "resolved",
            Observation::Refired => "refired",
            Observation::Stale => "stale",
        }
    }
}

/// Decide what an observation does to the stored alert, if any.
pub fn observe(stored: Option<&AlertState>, incoming: &Alert) -> Observation {
    let Some(stored) = stored else {
        return Observation::Created;
    };
    match (stored.status, incoming.status) {
        (AlertStatus::Firing, AlertStatus::Firing) => Observation::Repeated,
        (AlertStatus::Resolved, AlertStatus::Resolved) => Observation::Repeated,
        (AlertStatus::Firing, AlertStatus::Resolved) => {
            match incoming.ends_at {
                // The end of an episode older than the one firing now.
                Some(end) if end < stored.starts_at => Observation::Stale,
                _ => Observation::Resolved,
            }
        }
        (AlertStatus::Resolved, AlertStatus::Firing) => {
            let same_episode = stored.ends_at.is_some_and(|end| incoming.starts_at <= end);
            // A sender that keeps repeating an alert we expired is still
            // firing it; a sender that resolved it does not un-resolve the
            // same episode.
            if same_episode && !stored.expired { Observation::Stale } else { Observation::Refired }
        }
    }
}

/// The stored alert's times after an observation that changes its status
/// or repeats a resolved one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Episode {
    pub starts_at: Timestamp,
    pub ends_at: Option<Timestamp>,
    /// A new firing episode: a sender's acknowledgement of the last one
    /// does not carry over.
    pub clears_acknowledgement: bool,
}

/// The times of `stored` after `incoming` was observed as `obs` at `now`: a
/// new episode starts afresh; a repeat keeps the earliest start; a
/// resolution ends at the sender's end (or now), and a repeated resolution
/// keeps the end first recorded.
pub fn episode(stored: &AlertState, incoming: &Alert, obs: Observation, now: Timestamp) -> Episode {
    let starts_at = match obs {
        Observation::Refired => incoming.starts_at,
        _ => stored.starts_at.min(incoming.starts_at),
    };
    let ends_at = match (obs, incoming.status) {
        (Observation::Resolved, _) => Some(incoming.ends_at.unwrap_or(now)),
        (_, AlertStatus::Resolved) => stored.ends_at.or(incoming.ends_at),
        (_, AlertStatus::Firing) => None,
    };
    Episode { starts_at, ends_at, clears_acknowledgement: obs == Observation::Refired }
}

/// A sender resolved an alert by its key (PagerDuty `resolve`): a firing
/// alert resolves now; an already resolved one is a repeat (PagerDuty
/// accepts both); `None` for a key never seen.
pub fn resolved_by_sender(stored: Option<&AlertState>, now: Timestamp) -> Option<(Observation, Option<Episode>)> {
    let stored = stored?;
    Some(match stored.status {
        AlertStatus::Firing => (
            Observation::Resolved,
            Some(Episode { starts_at: stored.starts_at, ends_at: Some(now), clears_acknowledgement: false }),
        ),
        AlertStatus::Resolved => (Observation::Repeated, None),
    })
}

/// A sender acknowledged an alert by its key (PagerDuty `acknowledge`),
/// whatever its status: a repeat of it, acknowledged since its first
/// acknowledgement (`stored` is that, `None` until then).
pub fn acknowledged_by_sender(stored: Option<Timestamp>, now: Timestamp) -> (Observation, Timestamp) {
    (Observation::Repeated, stored.unwrap_or(now))
}

/// A firing alert whose sender stopped repeating it resolves at the
/// instant it expired (its `endsAt`, or `resolve_timeout` after the last
/// receipt), not when the gateway noticed.
pub fn expired(stored: &AlertState, expires_at: Timestamp) -> Episode {
    Episode { starts_at: stored.starts_at, ends_at: Some(expires_at), clears_acknowledgement: false }
}

/// When the expiry sweep must look at an alert again, kept apart from the
/// alert's own `expires_at`: a firing alert is re-sent far more often than
/// it expires, and its expiry only ever moves later then, so the sweep's
/// check stays where it is (no later than the expiry) and a re-send writes
/// nothing but the alert's row. The check moves only when an alert gains
/// an expiry or its expiry comes earlier: the instant it must then be
/// checked by, or `None` when the check it has is early enough.
pub fn expiry_check_by(stored: Option<Timestamp>, incoming: Option<Timestamp>) -> Option<Timestamp> {
    match (stored, incoming) {
        (Some(stored), Some(incoming)) if incoming >= stored => None,
        (_, incoming) => incoming,
    }
}

/// What the expiry sweep does with an alert whose check is due at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryCheck {
    /// It expired: resolve it as of then (see [`expired`]).
    Expire(Timestamp),
    /// Re-sent since: look again when it would expire now.
    Later(Timestamp),
    /// Resolved, or without an expiry: nothing to look at.
    Drop,
}

pub fn check_expiry(status: AlertStatus, expires_at: Option<Timestamp>, now: Timestamp) -> ExpiryCheck {
    match (status, expires_at) {
        (AlertStatus::Firing, Some(at)) if at <= now => ExpiryCheck::Expire(at),
        (AlertStatus::Firing, Some(at)) => ExpiryCheck::Later(at),
        _ => ExpiryCheck::Drop,
    }
}

/// An alert as stored, with what the gateway has learnt about it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertRecord {
    pub fingerprint: Fingerprint,
    /// The integration that delivered it: `alertmanager`, `prometheus`,
    /// `grafana`, `pagerduty` or `generic:NAME`; `heartbeat` for the alert
    /// of a missed heartbeat, which the gateway raises itself.
    #[schema(value_type = String, examples("alertmanager"))]
    pub source: Source,
    pub status: AlertStatus,
    pub labels: LabelSet,
    pub annotations: Annotations,
    pub starts_at: Timestamp,
    pub ends_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    #[serde(rename = "generatorURL")]
    pub generator_url: Option<String>,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub occurrences: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<Timestamp>,
    /// Why the alert opens no incident.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "silence:12")]
    pub muted_by: Option<crate::model::MuteReason>,
    /// The sender's own JSON for this alert, verbatim.
    #[schema(value_type = Value)]
    pub raw: Box<RawValue>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_sender_resolves_a_firing_alert_now_and_repeats_a_resolved_one() {
        let now = ts("2026-11-26T10:05:00Z");
        let firing = AlertState {
            status: AlertStatus::Firing,
            starts_at: ts("2026-11-26T10:00:00Z"),
            ends_at: None,
            expired: false,
        };
        let (obs, e) = resolved_by_sender(Some(&firing), now).unwrap();
        assert_eq!(obs, Observation::Resolved);
        assert_eq!(e.unwrap().ends_at, Some(now));
        let resolved = AlertState { status: AlertStatus::Resolved, ends_at: Some(now), ..firing };
        assert_eq!(resolved_by_sender(Some(&resolved), now), Some((Observation::Repeated, None)));
        assert_eq!(resolved_by_sender(None, now), None, "a key never seen");
    }

    #[test]
    fn the_first_acknowledgement_by_a_sender_stands() {
        let (first, later) = (ts("2026-11-26T10:00:00Z"), ts("2026-11-26T10:07:00Z"));
        assert_eq!(acknowledged_by_sender(None, first), (Observation::Repeated, first));
        assert_eq!(acknowledged_by_sender(Some(first), later), (Observation::Repeated, first));
    }

    #[test]
    fn a_re_send_moves_the_expiry_check_only_when_its_expiry_comes_earlier_or_is_new() {
        let (early, late) = (ts("2026-11-26T10:04:00Z"), ts("2026-11-26T10:05:00Z"));
        assert_eq!(expiry_check_by(Some(early), Some(late)), None, "the usual re-send: expiry later");
        assert_eq!(expiry_check_by(Some(late), Some(late)), None);
        assert_eq!(expiry_check_by(Some(late), Some(early)), Some(early), "endsAt moved earlier");
        assert_eq!(expiry_check_by(None, Some(late)), Some(late), "a new alert, or a new episode");
        assert_eq!(expiry_check_by(Some(late), None), None, "no expiry: the sweep drops the check");
        assert_eq!(expiry_check_by(None, None), None);
    }

    #[test]
    fn a_due_expiry_check_expires_a_firing_alert_past_its_expiry_and_else_looks_again_or_drops() {
        let (expiry, now) = (ts("2026-11-26T10:04:00Z"), ts("2026-11-26T10:05:00Z"));
        assert_eq!(check_expiry(AlertStatus::Firing, Some(expiry), now), ExpiryCheck::Expire(expiry));
        assert_eq!(check_expiry(AlertStatus::Firing, Some(now), now), ExpiryCheck::Expire(now));
        let later = ts("2026-11-26T10:09:00Z");
        assert_eq!(check_expiry(AlertStatus::Firing, Some(later), now), ExpiryCheck::Later(later), "re-sent since");
        assert_eq!(check_expiry(AlertStatus::Resolved, Some(expiry), now), ExpiryCheck::Drop);
        assert_eq!(check_expiry(AlertStatus::Firing, None, now), ExpiryCheck::Drop);
    }

    #[test]
    fn an_expired_alert_ends_when_it_expired_not_when_noticed() {
        let firing = AlertState {
            status: AlertStatus::Firing,
            starts_at: ts("2026-11-26T10:00:00Z"),
            ends_at: None,
            expired: false,
        };
        let e = expired(&firing, ts("2026-11-26T10:04:00Z"));
        assert_eq!((e.starts_at, e.ends_at), (firing.starts_at, Some(ts("2026-11-26T10:04:00Z"))));
    }

    fn alert(status: AlertStatus, starts: &str, ends: Option<&str>) -> Alert {
        let labels: LabelSet = [("alertname".to_string(), "X".to_string())].into();
        Alert {
            fingerprint: Fingerprint::of_labels(&labels),
            source: Source::Alertmanager,
            labels,
            annotations: Annotations::new(),
            status,
            starts_at: ts(starts),
            ends_at: ends.map(ts),
            expires_at: None,
            generator_url: None,
            raw: RawValue::from_string("{}".into()).unwrap(),
        }
    }

    fn state(status: AlertStatus, starts: &str, ends: Option<&str>, expired: bool) -> AlertState {
        AlertState { status, starts_at: ts(starts), ends_at: ends.map(ts), expired }
    }

    const T0: &str = "2026-01-01T10:00:00Z";
    const T1: &str = "2026-01-01T10:05:00Z";
    const T2: &str = "2026-01-01T10:10:00Z";

    #[test]
    fn table_of_observations() {
        use AlertStatus::*;
        let cases = [
            ("new alert", None, alert(Firing, T0, None), Observation::Created),
            ("new resolved alert is still stored", None, alert(Resolved, T0, Some(T1)), Observation::Created),
            ("firing repeat", Some(state(Firing, T0, None, false)), alert(Firing, T0, None), Observation::Repeated),
            ("resolve", Some(state(Firing, T0, None, false)), alert(Resolved, T0, Some(T1)), Observation::Resolved),
            (
                "resolved repeat",
                Some(state(Resolved, T0, Some(T1), false)),
                alert(Resolved, T0, Some(T1)),
                Observation::Repeated,
            ),
            (
                "HA peer's late firing copy of a resolved episode",
                Some(state(Resolved, T0, Some(T1), false)),
                alert(Firing, T0, None),
                Observation::Stale,
            ),
            (
                "new episode after resolve",
                Some(state(Resolved, T0, Some(T1), false)),
                alert(Firing, T2, None),
                Observation::Refired,
            ),
            (
                "sender still repeats an alert the gateway expired",
                Some(state(Resolved, T0, Some(T1), true)),
                alert(Firing, T0, None),
                Observation::Refired,
            ),
            (
                "old episode's resolve after a new firing",
                Some(state(Firing, T2, None, false)),
                alert(Resolved, T0, Some(T1)),
                Observation::Stale,
            ),
        ];
        for (name, stored, incoming, want) in cases {
            assert_eq!(observe(stored.as_ref(), &incoming), want, "{name}");
        }
    }

    #[test]
    fn source_round_trips_through_its_name() {
        for s in [
            Source::Alertmanager,
            Source::Prometheus,
            Source::Grafana,
            Source::PagerDuty,
            Source::Generic("uptime".into()),
            Source::Heartbeat,
        ] {
            assert_eq!(Source::parse(&s.to_string()), Some(s));
        }
        assert_eq!(Source::parse("nagios"), None);
    }

    #[test]
    fn each_episode_keeps_the_times_it_should() {
        let now = ts("2026-01-01T11:00:00Z");
        use AlertStatus::{Firing, Resolved};
        // (stored, incoming, observation) -> (starts, ends, clears ack)
        let cases = [
            // The sender resolves it: ends at its endsAt.
            (
                state(Firing, T0, None, false),
                alert(Resolved, T0, Some(T2)),
                Observation::Resolved,
                (T0, Some(T2), false),
            ),
            // ... or now, when it says no end.
            (
                state(Firing, T0, None, false),
                alert(Resolved, T0, None),
                Observation::Resolved,
                (T0, Some("2026-01-01T11:00:00Z"), false),
            ),
            // A resolved alert sent again keeps the end first recorded and the earliest start.
            (
                state(Resolved, T1, Some(T2), false),
                alert(Resolved, T0, Some(T1)),
                Observation::Repeated,
                (T0, Some(T2), false),
            ),
            // Firing again: a new episode from its own start, no end, no acknowledgement.
            (state(Resolved, T0, Some(T1), false), alert(Firing, T2, None), Observation::Refired, (T2, None, true)),
        ];
        for (stored, incoming, obs, (starts, ends, clears)) in cases {
            let e = episode(&stored, &incoming, obs, now);
            assert_eq!(
                e,
                Episode { starts_at: ts(starts), ends_at: ends.map(ts), clears_acknowledgement: clears },
                "{obs:?}"
            );
        }
    }
}
