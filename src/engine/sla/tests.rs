//! Table tests of the SLA and escalation decisions, at exact instants.
use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;

use super::*;
use crate::model::incident::{IncidentState, Priority};
use crate::rules::policy::{EscalationStep, Targets};
use crate::rules::target::Target;
use crate::sla::clock::ClockState;

/// No schedules, overrides or people: steps that name notifiers only.
macro_rules! book {
    () => {
        crate::engine::paging::OnCallBook {
            schedules: &BTreeMap::new(),
            overrides: &crate::engine::paging::Overrides::new(),
            directory: &crate::model::person::Directory::default(),
        }
    };
}

fn t(s: &str) -> Timestamp {
    format!("2026-11-24T{s}Z").parse().unwrap()
}

fn d(s: &str) -> Duration {
    s.parse().unwrap()
}

fn always(_: &str) -> Arc<Calendar> {
    Arc::new(Calendar::always())
}

/// P1: respond 15m, resolve 4h; P2: respond 30m; P4: resolve 1w only.
fn policy() -> SlaPolicy {
    let mut targets = BTreeMap::new();
    targets.insert(Priority::P1, Targets { respond: Some(d("15m")), resolve: Some(d("4h")) });
    targets.insert(Priority::P2, Targets { respond: Some(d("30m")), resolve: None });
    targets.insert(Priority::P4, Targets { respond: None, resolve: Some(d("1w")) });
    SlaPolicy {
        name: "standard".into(),
        matchers: Vec::new(),
        calendar: "24x7".into(),
        targets,
        warn_at: vec![50],
        pause_in: vec![IncidentState::OnHold],
    }
}

/// The clocks `effects` save, by kind, with ids given as a store would.
fn saved(effects: &[SlaEffect]) -> Vec<ClockSlot> {
    let mut slots: Vec<ClockSlot> = Vec::new();
    for e in effects {
        if let SlaEffect::Save(s) = e {
            let mut s = s.clone();
            s.id.get_or_insert(s.clock.kind as i64 + 1);
            slots.retain(|o| o.clock.kind != s.clock.kind);
            slots.push(s);
        }
    }
    slots
}

fn kinds(effects: &[SlaEffect]) -> Vec<&'static str> {
    effects
        .iter()
        .map(|e| match e {
            SlaEffect::Policy(_) => "policy",
            SlaEffect::Save(_) => "save",
            SlaEffect::Record(e) => e.kind,
            SlaEffect::Milestone { .. } => "milestone",
            SlaEffect::Notify { event, .. } => event,
        })
        .collect()
}

fn entries(effects: &[SlaEffect]) -> Vec<(Timestamp, &str)> {
    effects
        .iter()
        .filter_map(|e| match e {
            SlaEffect::Record(e) => Some((e.at, e.message.as_str())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_rule_names_the_policy_or_the_first_matching_one_applies() {
    let mut payments = policy();
    payments.name = "payments".into();
    payments.matchers = vec!["service=\"payments\"".parse().unwrap()];
    let policies = vec![payments, policy()];
    let fields: LabelSet = [("service".to_string(), "payments".to_string())].into_iter().collect();
    let other: LabelSet = [("service".to_string(), "web".to_string())].into_iter().collect();
    for (named, fields, want) in [
        (None, &fields, Some("payments")),
        (None, &other, Some("standard")),
        (Some("standard"), &fields, Some("standard")),
        (Some("gone"), &fields, None),
    ] {
        assert_eq!(choose_policy(&policies, named, fields).map(|p| p.name.as_str()), want, "{named:?} {fields:?}");
    }
}

#[test]
fn an_incident_starts_the_clocks_its_priority_promises() {
    for (priority, clocks, described) in [
        (Priority::P1, vec![ClockKind::Respond, ClockKind::Resolve], Some("respond within 15m, resolve within 4h")),
        (Priority::P2, vec![ClockKind::Respond], Some("respond within 30m")),
        (Priority::P3, vec![], None),
    ] {
        let effects = start(&policy(), priority, t("10:00:00"));
        assert_eq!(effects[0], SlaEffect::Policy("standard".into()));
        let started: Vec<ClockKind> = saved(&effects).iter().map(|s| s.clock.kind).collect();
        assert_eq!(started, clocks, "{priority}");
        let said = entries(&effects).first().map(|(_, m)| m.to_string());
        assert_eq!(said.as_deref().map(|m| m.ends_with(described.unwrap_or("-"))), described.map(|_| true));
    }
}

#[test]
fn following_the_state_records_each_change_and_milestones_at_their_instants() {
    let slots = saved(&start(&policy(), Priority::P1, t("10:00:00")));
    // Acknowledged at 10:09: respond met after its 50 % warning at 7m30s.
    let effects = follow(slots, IncidentState::Acknowledged, &always, t("10:09:00"));
    assert_eq!(
        entries(&effects),
        vec![
            (t("10:07:30"), "respond SLA at 50% (7m30s of 15m used)"),
            (t("10:09:00"), "respond clock running → met (9m of 15m used)"),
        ]
    );
    assert_eq!(kinds(&effects), ["milestone", "sla_warning", "sla.warning", "sla_clock", "save", "save"]);
    let slots = saved(&effects);
    assert_eq!(slots.iter().map(|s| s.clock.state()).collect::<Vec<_>>(), [ClockState::Met, ClockState::Running]);
}

#[test]
fn a_promise_is_not_dodged_through_a_priority_without_it() {
    // P1 with 10 of 15 minutes used → P4 (no respond target) for 3 minutes → P1.
    let slots = saved(&start(&policy(), Priority::P1, t("10:00:00")));
    let p4 = retarget(slots, Some(&policy()), Priority::P4, IncidentState::Triggered, false, &always, t("10:10:00"));
    let slots = saved(&p4);
    let respond = slots.iter().find(|s| s.clock.kind == ClockKind::Respond).expect("the respond clock stays");
    assert_eq!(respond.clock.target_ms, None);
    assert_eq!(respond.clock.state(), ClockState::Running, "shown while at P4, time counting");
    assert!(entries(&p4).iter().any(|(_, m)| m.starts_with("respond target 15m suspended")), "{p4:#?}");
    let p1 = retarget(slots, Some(&policy()), Priority::P1, IncidentState::Triggered, false, &always, t("10:13:00"));
    let respond = saved(&p1).into_iter().find(|s| s.clock.kind == ClockKind::Respond).unwrap();
    assert_eq!(respond.clock.breach_at(&Calendar::always()), Some(t("10:15:00")), "2 minutes left, not 15");
    assert!(!p1.iter().any(|e| matches!(e, SlaEffect::Notify { .. })), "no second 50 % warning");
}

#[test]
fn a_longer_target_warns_at_its_own_thresholds() {
    // P2 (respond 30m): 50 % warned at 10:15; at 10:20 → P1? No: P1 is shorter. Use a 4h respond target.
    let mut long = policy();
    long.targets.insert(Priority::P3, Targets { respond: Some(d("4h")), resolve: None });
    let slots = saved(&start(&long, Priority::P2, t("10:00:00")));
    let warned = fire(slots[0].clone(), &Calendar::always(), t("10:15:00"));
    assert_eq!(entries(&warned), vec![(t("10:15:00"), "respond SLA at 50% (15m of 30m used)")]);
    let effects =
        retarget(saved(&warned), Some(&long), Priority::P3, IncidentState::Triggered, false, &always, t("10:20:00"));
    let respond = saved(&effects).remove(0);
    assert_eq!(respond.clock.next_milestone_at(&Calendar::always()), Some(t("12:00:00")), "50 % of 4h");
    let effects = fire(respond, &Calendar::always(), t("12:00:00"));
    assert_eq!(entries(&effects), vec![(t("12:00:00"), "respond SLA at 50% (2h of 4h used)")]);
}

#[test]
fn a_promise_the_old_priority_lacked_starts_only_if_still_open() {
    let slots = saved(&start(&policy(), Priority::P2, t("10:00:00")));
    for (state, acknowledged, want) in [
        (IncidentState::Triggered, false, vec![ClockKind::Respond, ClockKind::Resolve]),
        (IncidentState::Acknowledged, true, vec![ClockKind::Respond, ClockKind::Resolve]),
        (IncidentState::Resolved, true, vec![ClockKind::Respond]),
    ] {
        let effects =
            retarget(slots.clone(), Some(&policy()), Priority::P1, state, acknowledged, &always, t("10:05:00"));
        let mut kinds: Vec<ClockKind> = saved(&effects).iter().map(|s| s.clock.kind).collect();
        let kept: Vec<ClockKind> = slots.iter().map(|s| s.clock.kind).filter(|k| !kinds.contains(k)).collect();
        kinds.extend(kept);
        kinds.sort();
        assert_eq!(kinds, want, "{state:?}");
    }
}

#[test]
fn a_settled_clock_is_not_rewritten_by_a_new_priority() {
    let slots = saved(&start(&policy(), Priority::P1, t("10:00:00")));
    let acked = saved(&follow(slots, IncidentState::Acknowledged, &always, t("10:05:00")));
    let effects =
        retarget(acked, Some(&policy()), Priority::P2, IncidentState::Acknowledged, true, &always, t("10:06:00"));
    assert!(
        !saved(&effects).iter().any(|s| s.clock.kind == ClockKind::Respond),
        "the met respond clock stays as it was: {effects:#?}"
    );
}

fn escalation_policy() -> EscalationPolicy {
    EscalationPolicy {
        name: "pager".into(),
        steps: vec![
            EscalationStep { after: d("0m"), notify: vec![Target::Notifier("primary".into())] },
            EscalationStep { after: d("10m"), notify: vec![Target::Notifier("secondary".into())] },
            EscalationStep { after: d("20m"), notify: vec![Target::Notifier("manager".into())] },
        ],
        repeat: 0,
        repeat_interval: d("0m"),
    }
}

#[test]
fn each_step_is_paged_when_due_and_steps_missed_while_down_only_recorded() {
    let policy = escalation_policy();
    let mut esc = Escalation::start(&policy, t("10:00:00"));
    let first = escalate(&mut esc, Some(&policy), &book!(), t("10:00:00"));
    assert_eq!(kinds(&first), ["escalated", "incident.escalated"]);
    assert_eq!(esc.due_at, Some(t("10:10:00")));
    // Down from 10:01 to 10:30: step 2 is recorded at its instant, not paged; step 3 is.
    let back = escalate(&mut esc, Some(&policy), &book!(), t("10:30:00"));
    assert_eq!(kinds(&back), ["escalated", "escalated", "incident.escalated"]);
    assert_eq!(
        entries(&back)[0],
        (
            t("10:10:00"),
            "escalation pager step 2 (round 1): missed while the gateway was down, not notified: secondary"
        )
    );
    assert_eq!(entries(&back)[1], (t("10:20:00"), "escalation pager step 3 (round 1): notified manager"));
    assert!(matches!(&back[2], SlaEffect::Notify { targets: Some(t), .. } if t.notifiers == ["manager"]));
    assert_eq!(esc.due_at, None);
    // On time (within a minute of each instant), every step is paged.
    let mut esc = Escalation::start(&policy, t("10:00:00"));
    escalate(&mut esc, Some(&policy), &book!(), t("10:00:00"));
    let on_time = escalate(&mut esc, Some(&policy), &book!(), t("10:20:30"));
    assert_eq!(kinds(&on_time), ["escalated", "escalated", "incident.escalated"], "step 2 was 10m30s late: missed");
    let mut esc = Escalation::start(&policy, t("10:00:00"));
    escalate(&mut esc, Some(&policy), &book!(), t("10:00:00"));
    let late_by_seconds = escalate(&mut esc, Some(&policy), &book!(), t("10:10:30"));
    assert_eq!(kinds(&late_by_seconds), ["escalated", "incident.escalated"]);
}

#[test]
fn an_escalation_stops_once_and_a_vanished_policy_ends_it() {
    let policy = escalation_policy();
    let mut esc = Escalation::start(&policy, t("10:00:00"));
    assert!(escalate(&mut esc, None, &book!(), t("10:00:00")).is_empty());
    assert_eq!(esc.due_at, None, "the policy is gone: the escalation ends");
    let mut esc = Escalation::start(&policy, t("10:00:00"));
    let stopped = stop_escalation(&mut esc, "acknowledged by alice", t("10:03:00"));
    assert_eq!(entries(&stopped), vec![(t("10:03:00"), "escalation pager stopped: acknowledged by alice")]);
    assert!(stop_escalation(&mut esc, "resolved", t("10:04:00")).is_empty(), "once");
}

#[test]
fn a_step_paged_late_pages_whoever_is_on_call_now() {
    // Bob until 10:15, then alice; the second step (due 10:10) is paged at
    // 11:00, after an outage: alice is on call then, and alice is paged.
    let yaml = "name: primary\nlayers:\n  - name: daily\n    rotation: {people: [bob, alice], shift: 1d, handoff: \"10:15\", start: 2026-11-23}\n";
    let schedule = crate::oncall::Schedule::compile(crate::yaml::from_str(yaml).unwrap()).unwrap();
    let schedules = BTreeMap::from([("primary".to_owned(), schedule)]);
    let book = crate::engine::paging::OnCallBook {
        schedules: &schedules,
        overrides: &crate::engine::paging::Overrides::new(),
        directory: &crate::model::person::Directory::default(),
    };
    let mut policy = escalation_policy();
    policy.steps.truncate(2);
    policy.steps[1].notify = vec![Target::Schedule("primary".into())];
    let mut esc = Escalation::start(&policy, t("10:00:00"));
    escalate(&mut esc, Some(&policy), &book, t("10:00:00"));
    let late = escalate(&mut esc, Some(&policy), &book, t("11:00:00"));
    assert_eq!(
        entries(&late)[0],
        (t("10:10:00"), "escalation pager step 2 (round 1): notified schedule:primary (alice)"),
        "recorded at its instant, paged to whoever is on call when it is paged"
    );
    assert!(matches!(&late[1], SlaEffect::Notify { targets: Some(r), .. } if r.people[0].person == "alice"));
}
