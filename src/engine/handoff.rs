//! Handoffs: when the person on call in a schedule changes, the incoming
//! and the outgoing person are told (`oncall.handoff`). Each schedule
//! keeps how far its handoffs have been announced, so a restart neither
//! repeats one nor skips one; of handoffs that passed while the gateway
//! was down only the latest is told (it says who is on call now).
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::engine::paging::Paged;
use crate::oncall::{self, Override, Schedule};

/// The person on call changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    pub schedule: String,
    pub at: Timestamp,
    /// `None`: nobody was on call before.
    pub outgoing: Option<String>,
    /// `None`: nobody is on call after.
    pub incoming: Option<String>,
    /// When the incoming person's stretch ends, if in sight.
    pub until: Option<Timestamp>,
}

/// How far a schedule's handoffs have been told, and to whom it was
/// handed last (`None`: nobody was on call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    pub through: Timestamp,
    pub person: Option<String>,
}

/// What a handoff timer decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffPlan {
    /// Every handoff in `(announced_through, now]`, in order.
    pub passed: Vec<Handoff>,
    /// The handoff to tell: the latest passed, once caught up.
    pub tell: Option<Handoff>,
    pub announced: Announced,
    /// The next handoff's instant, for the timer.
    pub next: Option<Timestamp>,
}

/// Most handoffs one timer walks: an odd schedule (a restriction of one
/// minute a day over months) catches up over a few timers, not in one
/// long transaction.
const MAX_WALK: usize = 1_000;

/// How far back a gateway that was down looks for handoffs it missed.
const CATCH_UP: jiff::SignedDuration = jiff::SignedDuration::from_hours(7 * 24);

/// Where the person on call may next change after `at`: the end of the
/// current stretch, or the start of the next one when nobody is on call.
pub fn next_handoff(schedule: &Schedule, overrides: &[Override], at: Timestamp) -> Option<Timestamp> {
    match oncall::on_call(schedule, overrides, at) {
        Some(on) => on.until,
        None => oncall::next_on_call(schedule, overrides, at).map(|n| n.since),
    }
}

/// The handoffs of `schedule` after `announced.through` up to `now`. The
/// person told last hands over: an override created or deleted since
/// (which rewrote who was on call) is a handoff from them, now.
pub fn due(schedule: &Schedule, overrides: &[Override], announced: &Announced, now: Timestamp) -> HandoffPlan {
    let mut passed: Vec<Handoff> = Vec::new();
    let start = announced.through.max(now.checked_sub(CATCH_UP).unwrap_or(now)).min(now);
    let mut at = start;
    let mut outgoing = oncall::on_call(schedule, overrides, at).map(|o| o.person);
    let hand = |when: Timestamp, outgoing: Option<String>| {
        let incoming = oncall::on_call(schedule, overrides, when);
        let (person, until) = (incoming.as_ref().map(|o| o.person.clone()), incoming.and_then(|o| o.until));
        let handoff = Handoff { schedule: schedule.name.clone(), at: when, outgoing, incoming: person, until };
        (handoff.outgoing != handoff.incoming).then_some(handoff)
    };
    while passed.len() < MAX_WALK {
        let Some(change) = next_handoff(schedule, overrides, at).filter(|c| *c <= now) else { break };
        if let Some(h) = hand(change, outgoing.clone()) {
            outgoing.clone_from(&h.incoming);
            passed.push(h);
        }
        at = change;
    }
    let caught_up = passed.len() < MAX_WALK;
    // Whoever was told last is who hands over first.
    match passed.first_mut() {
        Some(first) => first.outgoing.clone_from(&announced.person),
        None => passed.extend(hand(now, announced.person.clone())),
    }
    passed.retain(|h| h.outgoing != h.incoming);
    let through = if caught_up { now.max(announced.through) } else { at };
    let person = if caught_up { oncall::on_call(schedule, overrides, through).map(|o| o.person) } else { outgoing };
    let next = if caught_up { next_handoff(schedule, overrides, through) } else { Some(now) };
    let tell = if caught_up { passed.last().cloned() } else { None };
    HandoffPlan { tell, passed, announced: Announced { through, person }, next }
}

impl Handoff {
    /// Who is told: the incoming person, then the outgoing one.
    pub fn told(&self) -> Vec<Paged> {
        let via = format!("schedule:{}", self.schedule);
        [&self.incoming, &self.outgoing]
            .into_iter()
            .flatten()
            .map(|p| Paged { person: p.clone(), via: via.clone() })
            .collect()
    }

    /// What the notification says.
    pub fn message(&self) -> String {
        let until = self.until.map(|u| format!(" until {u}")).unwrap_or_default();
        match (&self.outgoing, &self.incoming) {
            (Some(out), Some(inc)) => {
                format!("{inc} takes over on call for {} from {out} at {}{until}", self.schedule, self.at)
            }
            (None, Some(inc)) => format!("{inc} is on call for {} from {}{until}", self.schedule, self.at),
            (Some(out), None) => {
                format!("nobody is on call for {} from {}: {out}'s shift ended", self.schedule, self.at)
            }
            (None, None) => format!("nobody is on call for {}", self.schedule),
        }
    }

    /// The notification's `data`.
    pub fn data(&self) -> Value {
        json!({
            "schedule": self.schedule, "at": self.at, "outgoing": self.outgoing, "incoming": self.incoming,
            "until": self.until, "message": self.message(),
        })
    }

    /// The idempotency origin: one handoff of one schedule.
    pub fn origin(&self) -> String {
        let incoming = self.incoming.as_deref().unwrap_or("nobody");
        format!("handoff-{}-{}-{incoming}", self.schedule, self.at.as_millisecond())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oncall::RawSchedule;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn schedule() -> Schedule {
        // alice, bob, alice, bob...: daily at 09:00 UTC from 2026-11-02;
        // dave covers business hours on weekdays, over them.
        let yaml = "name: primary\nlayers:\n  - name: daily\n    rotation: {people: [alice, bob], shift: 1d, handoff: \"09:00\", start: 2026-11-02}\n  - name: day\n    rotation: {people: [dave], shift: 1w}\n    restrict: {mon-fri: \"10:00-12:00\"}\n";
        Schedule::compile(crate::yaml::from_str::<RawSchedule>(yaml).unwrap()).unwrap()
    }

    fn from(through: &str, person: &str) -> Announced {
        Announced { through: t(through), person: Some(person.into()) }
    }

    fn said(plan: &HandoffPlan) -> Vec<String> {
        plan.passed
            .iter()
            .map(|h| format!("{} {:?}->{:?}", h.at.strftime("%d %H:%M"), h.outgoing, h.incoming))
            .collect()
    }

    #[test]
    fn each_change_of_person_is_a_handoff_and_the_latest_is_told() {
        let s = schedule();
        let plan = due(&s, &[], &from("2026-11-02T09:30:00Z", "alice"), t("2026-11-03T09:00:00Z"));
        assert_eq!(
            said(&plan),
            [
                "02 10:00 Some(\"alice\")->Some(\"dave\")",
                "02 12:00 Some(\"dave\")->Some(\"alice\")",
                "03 09:00 Some(\"alice\")->Some(\"bob\")"
            ]
        );
        let tell = plan.tell.unwrap();
        assert_eq!(tell.until, Some(t("2026-11-03T10:00:00Z")), "dave takes over at 10:00");
        assert_eq!(tell.told().iter().map(|p| p.person.as_str()).collect::<Vec<_>>(), ["bob", "alice"]);
        assert_eq!(
            tell.message(),
            "bob takes over on call for primary from alice at 2026-11-03T09:00:00Z until 2026-11-03T10:00:00Z"
        );
        assert_eq!(plan.announced, Announced { through: t("2026-11-03T09:00:00Z"), person: Some("bob".into()) });
        assert_eq!(plan.next, Some(t("2026-11-03T10:00:00Z")));
    }

    #[test]
    fn nothing_passed_tells_no_one_and_an_override_is_a_handoff() {
        let s = schedule();
        let plan = due(&s, &[], &from("2026-11-02T09:30:00Z", "alice"), t("2026-11-02T09:59:59Z"));
        assert!(plan.passed.is_empty() && plan.tell.is_none());
        assert_eq!(plan.next, Some(t("2026-11-02T10:00:00Z")));
        let cover =
            Override { person: "carol".into(), start: t("2026-11-02T09:45:00Z"), end: t("2026-11-02T09:50:00Z") };
        let plan =
            due(&s, std::slice::from_ref(&cover), &from("2026-11-02T09:30:00Z", "alice"), t("2026-11-02T09:59:59Z"));
        assert_eq!(
            said(&plan),
            ["02 09:45 Some(\"alice\")->Some(\"carol\")", "02 09:50 Some(\"carol\")->Some(\"alice\")"]
        );
        // An override of the person already on call changes no one.
        let same = Override { person: "alice".into(), ..cover.clone() };
        assert!(due(&s, &[same], &from("2026-11-02T09:30:00Z", "alice"), t("2026-11-02T09:59:59Z")).passed.is_empty());
        // Carol was told she is on call; the override was deleted since: alice is told now.
        let told_carol = Announced { through: t("2026-11-02T09:46:00Z"), person: Some("carol".into()) };
        let plan = due(&s, &[], &told_carol, t("2026-11-02T09:47:00Z"));
        assert_eq!(said(&plan), ["02 09:47 Some(\"carol\")->Some(\"alice\")"], "the handoff is now");
    }

    #[test]
    fn a_long_outage_looks_back_a_week_and_tells_the_latest() {
        let s = schedule();
        let plan = due(&s, &[], &from("2020-01-01T00:00:00Z", "alice"), t("2026-11-13T09:00:00Z"));
        // From 11-06 09:00 (alice, as told): 7 daily handoffs, and dave
        // twice a weekday (5 weekdays).
        assert_eq!(plan.passed.len(), 7 + 2 * 5, "{:?}", said(&plan));
        assert_eq!(plan.tell.unwrap().at, t("2026-11-13T09:00:00Z"));
        assert_eq!(plan.announced.through, t("2026-11-13T09:00:00Z"));
    }

    #[test]
    fn a_walk_is_bounded_and_tells_only_once_caught_up() {
        let yaml = "name: flicker\nlayers:\n  - name: a\n    rotation: {people: [a, b], shift: 1h}\n";
        let s = Schedule::compile(crate::yaml::from_str::<RawSchedule>(yaml).unwrap()).unwrap();
        let now = t("2026-11-13T09:00:00Z");
        let plan = due(&s, &[], &Announced { through: t("2026-11-01T00:00:00Z"), person: None }, now);
        assert_eq!(plan.passed.len(), 7 * 24, "hourly, a week back");
        let overrides: Vec<Override> = (0..1_200)
            .map(|i| {
                let start = t("2026-11-12T00:00:00Z") + jiff::SignedDuration::from_secs(i * 60);
                Override { person: "c".into(), start, end: start + jiff::SignedDuration::from_secs(30) }
            })
            .collect();
        let plan = due(&s, &overrides, &Announced { through: t("2026-11-12T00:00:00Z"), person: None }, now);
        assert_eq!(plan.passed.len(), MAX_WALK);
        assert!(plan.tell.is_none(), "not caught up: nothing told yet");
        assert_eq!(plan.next, Some(now), "due again at once");
        assert!(plan.announced.through < now);
        // Told last of the person the walk's first change hands to: that change
        // is no handoff, and the walk is still not caught up.
        let first_person = oncall::on_call(&s, &overrides, t("2026-11-12T00:00:30Z")).unwrap().person;
        let told = Announced { through: t("2026-11-12T00:00:00Z"), person: Some(first_person) };
        let plan = due(&s, &overrides, &told, now);
        assert_eq!(plan.passed.len(), MAX_WALK - 1);
        assert!(plan.tell.is_none(), "not caught up: nothing told yet");
        assert!(plan.announced.through < now);
    }
}
