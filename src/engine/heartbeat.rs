//! Heartbeats: what a ping does, when a silent heartbeat is missed, and the
//! alert a miss raises.
//!
//! A missed heartbeat becomes an ordinary alert that the gateway raises
//! itself (source `heartbeat`, labels: the heartbeat's `labels`, an
//! `alertname` of `HeartbeatMissing` unless those name one, and
//! `heartbeat="NAME"`), dated at the deadline it missed. Incident rules,
//! grouping, silences, SLA clocks, escalation and notifications then apply
//! as to any alert; the next ping resolves the alert, and its incident
//! resolves itself as incidents do when their last alert resolves.
//!
//! A heartbeat that never pinged raises nothing: nothing is expected of it
//! before its first ping, so adding one to the rules pages nobody before
//! its sender is set up.
//!
//! Pure: the stored state of one heartbeat, its rule and now -> a [`Plan`].
use jiff::Timestamp;
use serde_json::json;

use crate::model::heartbeat::HeartbeatState;
use crate::model::{Alert, AlertStatus, Annotations, Fingerprint, LabelSet, Source};
use crate::rules::RuleSet;
use crate::rules::heartbeat::Heartbeat;

/// The `alertname` of a missed heartbeat's alert, unless the heartbeat's
/// labels give one.
pub const ALERTNAME: &str = "HeartbeatMissing";
/// The label naming the heartbeat on its alert.
pub const LABEL: &str = "heartbeat";

/// What the store keeps of a heartbeat that has pinged at least once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub last_ping: Timestamp,
    /// The deadline whose miss raised the heartbeat's alert, while that
    /// alert fires; `None` while it does not.
    pub missed: Option<Timestamp>,
}

/// What to do for one heartbeat, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Plan {
    /// Raise the heartbeat's alert for the deadline missed at this instant
    /// (see [`missing_alert`]); it is dated then, not when it is noticed.
    pub raise_at: Option<Timestamp>,
    /// Resolve the heartbeat's alert now.
    pub clear: bool,
    /// The state to store, when it changes.
    pub store: Option<Stored>,
    /// When to look at the heartbeat again (its timer); `None`: only at its next ping.
    pub next: Option<Timestamp>,
}

/// The fingerprint of a heartbeat's alert: one per heartbeat, whatever its
/// labels become. The hash of a label set no sender's alert has (`__`
/// names are Prometheus' reserved ones, dropped before alerts are sent),
/// in the form of every other fingerprint.
pub fn fingerprint(name: &str) -> Fingerprint {
    Fingerprint::of_labels(&LabelSet::from([("__heartbeat__".to_owned(), name.to_owned())]))
}

/// The heartbeats an ingested alert pings: a firing alert matching a
/// heartbeat's matchers. A resolved one does not (a `Watchdog` that stops
/// firing is no sign of life), nor does a heartbeat's own alert.
pub fn pinged_by<'r>(rules: &'r RuleSet, alert: &Alert) -> impl Iterator<Item = &'r Heartbeat> {
    let live = alert.status == AlertStatus::Firing && alert.source != Source::Heartbeat;
    rules.heartbeats.values().filter(move |hb| live && hb.is_pinged_by(&alert.labels))
}

/// A ping at `now`. A heartbeat whose deadline passed without its miss
/// having been raised yet (the ping came in before the timer's tick, or
/// the gateway was down over the deadline) was missed all the same: its
/// alert is raised, dated at the deadline, and this ping resolves it.
pub fn ping(hb: &Heartbeat, stored: Option<Stored>, now: Timestamp) -> Plan {
    let mut plan = Plan::default();
    if let Some(s) = stored {
        match s.missed {
            Some(_) => plan.clear = true,
            None => {
                let deadline = hb.timing().deadline(s.last_ping);
                if deadline <= now {
                    plan.raise_at = Some(deadline);
                    plan.clear = true;
                }
            }
        }
    }
    // Time never goes back for a heartbeat (a clock stepped back on the host).
    let last_ping = stored.map_or(now, |s| s.last_ping.max(now));
    plan.store = Some(Stored { last_ping, missed: None });
    plan.next = Some(hb.timing().deadline(last_ping));
    plan
}

/// The heartbeat's timer fired at `now`, or the rules changed (`hb` is
/// `None` when they no longer have it).
pub fn check(hb: Option<&Heartbeat>, s: Stored, now: Timestamp) -> Plan {
    let nothing = Plan::default();
    match (hb, s.missed) {
        (Some(hb), None) => {
            let deadline = hb.timing().deadline(s.last_ping);
            if deadline <= now {
                Plan { raise_at: Some(deadline), store: Some(Stored { missed: Some(deadline), ..s }), ..nothing }
            } else {
                Plan { next: Some(deadline), ..nothing }
            }
        }
        // Still down: its alert fires until the next ping.
        (Some(hb), Some(_)) if hb.state(Some(s.last_ping), now) == HeartbeatState::Down => nothing,
        // A longer interval or grace (a reload) says it is not down after all.
        (Some(hb), Some(_)) => Plan {
            clear: true,
            store: Some(Stored { missed: None, ..s }),
            next: Some(hb.timing().deadline(s.last_ping)),
            ..nothing
        },
        // Gone from the rules: its alert resolves.
        (None, Some(_)) => Plan { clear: true, store: Some(Stored { missed: None, ..s }), ..nothing },
        (None, None) => nothing,
    }
}

/// When a stored heartbeat's timer is due (at start, or after a reload);
/// one due in the past fires at the next tick.
pub fn due(hb: Option<&Heartbeat>, s: Stored, now: Timestamp) -> Option<Timestamp> {
    let plan = check(hb, s, now);
    match plan.raise_at {
        Some(deadline) => Some(deadline),
        None if plan.clear => Some(now),
        None => plan.next,
    }
}

/// "Heartbeat NAME missed: last seen T" (T to the second), or "never seen".
pub fn title(name: &str, last_ping: Option<Timestamp>) -> String {
    match last_ping {
        Some(t) => format!("Heartbeat {name} missed: last seen {}", to_second(t)),
        None => format!("Heartbeat {name} missed: never seen"),
    }
}

fn to_second(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// The labels of a heartbeat's alert.
pub fn labels(hb: &Heartbeat) -> LabelSet {
    let mut labels = hb.labels.clone();
    labels.entry("alertname".to_owned()).or_insert_with(|| ALERTNAME.to_owned());
    labels.insert(LABEL.to_owned(), hb.name.clone());
    labels
}

/// The alert a heartbeat raises when it misses `deadline`, last pinged at
/// `last_ping`; it fires until a ping resolves it.
pub fn missing_alert(hb: &Heartbeat, last_ping: Option<Timestamp>, deadline: Timestamp) -> Alert {
    let summary = title(&hb.name, last_ping);
    let seen = last_ping.map_or_else(|| "never".to_owned(), |t| t.to_string());
    let matchers: Vec<String> = hb.matchers.iter().map(ToString::to_string).collect();
    let pinged_by = if matchers.is_empty() {
        format!("POST /api/v1/heartbeats/{}", hb.name)
    } else {
        format!("POST /api/v1/heartbeats/{} or a firing alert matching {{{}}}", hb.name, matchers.join(", "))
    };
    let description = format!(
        "No ping from heartbeat {} by {deadline} (expected every {}, grace {}; last seen {seen}). \
         It is pinged by {pinged_by}: the sender (or the path from it) has stopped.",
        hb.name, hb.interval, hb.grace
    );
    let annotations: Annotations = [("summary".to_owned(), summary), ("description".to_owned(), description)].into();
    let raw = json!({
        "heartbeat": hb.name,
        "lastPing": last_ping,
        "deadline": deadline,
        "interval": hb.interval.to_string(),
        "grace": hb.grace.to_string(),
    });
    Alert {
        fingerprint: fingerprint(&hb.name),
        source: Source::Heartbeat,
        labels: labels(hb),
        annotations,
        status: AlertStatus::Firing,
        starts_at: deadline,
        ends_at: None,
        expires_at: None,
        generator_url: None,
        raw: serde_json::value::to_raw_value(&raw).expect("a JSON value serializes"),
    }
}

/// The title of an incident a heartbeat's alert opens, whatever the rule's
/// title template: the heartbeat's own, naming it and when it was last
/// seen. `None` for any other alert.
pub fn incident_title(fingerprint: &Fingerprint, labels: &LabelSet, annotations: &Annotations) -> Option<String> {
    let name = labels.get(LABEL)?;
    (*fingerprint == self::fingerprint(name)).then(|| annotations.get("summary").cloned()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Duration;

    fn t0() -> Timestamp {
        "2026-03-02T09:00:00Z".parse().unwrap()
    }

    fn at(s: i64) -> Timestamp {
        t0().checked_add(jiff::SignedDuration::from_secs(s)).unwrap()
    }

    /// Interval 60 s, grace 30 s: the deadline is 90 s after a ping.
    fn hb() -> Heartbeat {
        Heartbeat {
            name: "cron.nightly".into(),
            interval: Duration::from_secs(60),
            grace: Duration::from_secs(30),
            matchers: crate::rules::matcher::parse_matchers(r#"alertname="Watchdog""#).unwrap(),
            labels: [("service".to_owned(), "backup".to_owned())].into(),
        }
    }

    fn up(last: i64) -> Option<Stored> {
        Some(Stored { last_ping: at(last), missed: None })
    }

    fn down(last: i64) -> Option<Stored> {
        Some(Stored { last_ping: at(last), missed: Some(at(last + 90)) })
    }

    fn plan(raise_at: Option<i64>, clear: bool, store: Option<Stored>, next: Option<i64>) -> Plan {
        Plan { raise_at: raise_at.map(at), clear, store, next: next.map(at) }
    }

    #[test]
    fn pings() {
        let hb = hb();
        let rows: &[(&str, Option<Stored>, i64, Plan)] = &[
            ("the first ping starts the clock", None, 0, plan(None, false, up(0), Some(90))),
            ("on time", up(0), 50, plan(None, false, up(50), Some(140))),
            ("late but within grace", up(0), 89, plan(None, false, up(89), Some(179))),
            (
                "at the deadline, before its tick: missed all the same",
                up(0),
                90,
                plan(Some(90), true, up(90), Some(180)),
            ),
            ("after a downtime over the deadline", up(0), 600, plan(Some(90), true, up(600), Some(690))),
            ("down and raised: the ping resolves it", down(0), 400, plan(None, true, up(400), Some(490))),
            ("stamped before the last (a clock stepped back)", up(50), 40, plan(None, false, up(50), Some(140))),
        ];
        for (what, stored, now, want) in rows {
            assert_eq!(ping(&hb, *stored, at(*now)), *want, "{what}");
        }
    }

    #[test]
    fn timers() {
        let hb = hb();
        let longer = Heartbeat { interval: Duration::from_secs(600), ..hb.clone() };
        let raised = |last: i64| Some(Stored { last_ping: at(last), missed: Some(at(last + 90)) });
        let rows: &[(&str, Option<&Heartbeat>, Stored, i64, Plan)] = &[
            ("not yet: look again at the deadline", Some(&hb), up(0).unwrap(), 89, plan(None, false, None, Some(90))),
            (
                "at the deadline: raised, dated then",
                Some(&hb),
                up(0).unwrap(),
                90,
                plan(Some(90), false, raised(0), None),
            ),
            (
                "noticed late (a restart): dated at the deadline",
                Some(&hb),
                up(0).unwrap(),
                5000,
                plan(Some(90), false, raised(0), None),
            ),
            (
                "raised and still down: nothing until a ping",
                Some(&hb),
                down(0).unwrap(),
                5000,
                plan(None, false, None, None),
            ),
            (
                "a reload made it late, not down: resolved",
                Some(&longer),
                down(0).unwrap(),
                300,
                plan(None, true, up(0), Some(630)),
            ),
            ("gone from the rules while raised: resolved", None, down(0).unwrap(), 300, plan(None, true, up(0), None)),
            ("gone from the rules: nothing", None, up(0).unwrap(), 300, plan(None, false, None, None)),
        ];
        for (what, hb, stored, now, want) in rows {
            assert_eq!(check(*hb, *stored, at(*now)), *want, "{what}");
        }
        // At start or after a reload: when each timer is due.
        assert_eq!(due(Some(&hb), up(0).unwrap(), at(10)), Some(at(90)));
        assert_eq!(due(Some(&hb), up(0).unwrap(), at(500)), Some(at(90)), "overdue: fires at the first tick");
        assert_eq!(due(Some(&hb), down(0).unwrap(), at(500)), None);
        assert_eq!(due(Some(&longer), down(0).unwrap(), at(300)), Some(at(300)));
        assert_eq!(due(None, down(0).unwrap(), at(300)), Some(at(300)));
        assert_eq!(due(None, up(0).unwrap(), at(300)), None);
    }

    #[test]
    fn the_alert_of_a_miss() {
        let hb = hb();
        let last = "2026-03-02T09:00:00.250Z".parse().unwrap();
        let a = missing_alert(&hb, Some(last), at(90));
        assert_eq!(a.fingerprint, fingerprint("cron.nightly"));
        assert_ne!(a.fingerprint, fingerprint("cron.weekly"));
        assert_eq!(a.source, Source::Heartbeat);
        assert_eq!((a.status, a.starts_at, a.expires_at), (AlertStatus::Firing, at(90), None));
        let want: LabelSet = [("alertname", ALERTNAME), ("heartbeat", "cron.nightly"), ("service", "backup")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        assert_eq!(a.labels, want);
        assert_eq!(a.annotations["summary"], "Heartbeat cron.nightly missed: last seen 2026-03-02T09:00:00Z");
        assert!(a.annotations["description"].contains(r#"alertname="Watchdog""#), "{:?}", a.annotations);
        assert_eq!(title("x", None), "Heartbeat x missed: never seen");
        // The incident of this alert is titled by the heartbeat; no other alert is.
        assert_eq!(
            incident_title(&a.fingerprint, &a.labels, &a.annotations).as_deref(),
            Some(&*a.annotations["summary"])
        );
        let posing = Fingerprint::of_labels(&a.labels);
        assert_eq!(incident_title(&posing, &a.labels, &a.annotations), None);
        // The heartbeat's labels may name the alert.
        let named = Heartbeat { labels: [("alertname".to_owned(), "BackupSilent".to_owned())].into(), ..hb };
        assert_eq!(labels(&named)["alertname"], "BackupSilent");
    }

    #[test]
    fn what_pings() {
        let mut rules = RuleSet::default();
        rules.heartbeats.insert("cron.nightly".into(), hb());
        let http_only = Heartbeat { name: "http".into(), matchers: Vec::new(), ..hb() };
        rules.heartbeats.insert("http".into(), http_only);
        let watchdog = |status, source| Alert {
            labels: [("alertname".to_owned(), "Watchdog".to_owned())].into(),
            status,
            source,
            ..missing_alert(&hb(), None, t0())
        };
        let names = |a: &Alert| pinged_by(&rules, a).map(|h| h.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&watchdog(AlertStatus::Firing, Source::Prometheus)), ["cron.nightly"]);
        assert!(names(&watchdog(AlertStatus::Resolved, Source::Prometheus)).is_empty(), "a resolved Watchdog");
        assert!(names(&watchdog(AlertStatus::Firing, Source::Heartbeat)).is_empty(), "a heartbeat's own alert");
    }
}
