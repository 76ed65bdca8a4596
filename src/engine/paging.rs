//! Whom a page reaches: a notifier target as it is, a person through the
//! ways the config gives to reach them, a schedule through whoever is on
//! call in it at the page's instant (overrides applied). Also who an
//! incident rule's `assign_to: schedule:NAME` assigns to. Pure: the
//! caller passes the schedules, the stored overrides and the instant.
use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::model::person::Directory;
use crate::oncall::{self, OnCall, Override, Schedule};
use crate::rules::target::Target;

/// The overrides in force or ahead, by schedule name, oldest first (a
/// later override wins where two overlap).
pub type Overrides = HashMap<String, Vec<Override>>;

/// What decides who is on call and how they are reached.
#[derive(Clone, Copy)]
pub struct OnCallBook<'a> {
    pub schedules: &'a BTreeMap<String, Schedule>,
    pub overrides: &'a Overrides,
    pub directory: &'a Directory,
}

/// A person a page reaches, and the target that reached them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paged {
    pub person: String,
    /// `schedule:payments-primary`, `person:carol`.
    pub via: String,
}

/// Where one page goes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reach {
    pub notifiers: Vec<String>,
    /// Each person once, by the first target that reached them.
    pub people: Vec<Paged>,
    /// Schedules (by name) with nobody on call at the instant: nobody is
    /// paged for them, which the timeline says.
    pub uncovered: Vec<String>,
    /// Each target as the timeline says it: `schedule:payments-primary
    /// (alice)`, `person:carol`, `chatops`.
    pub said: Vec<String>,
}

impl Reach {
    /// What the timeline entry's data records of it.
    pub fn data(&self) -> Value {
        let paged: Vec<Value> = self.people.iter().map(|p| json!({ "person": p.person, "via": p.via })).collect();
        json!({ "paged": paged, "nobodyOnCall": self.uncovered })
    }
}

/// Who an incident is assigned to when it opens, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignee {
    pub name: String,
    /// `schedule:payments-primary` when the schedule's on-call person was
    /// chosen; `None` when the rule names the assignee itself.
    pub via: Option<String>,
}

impl<'a> OnCallBook<'a> {
    pub fn overrides_of(&self, schedule: &str) -> &'a [Override] {
        self.overrides.get(schedule).map_or(&[], Vec::as_slice)
    }

    /// Who is on call in `schedule` at `at`; `None` for nobody, or for a
    /// schedule the rules do not have.
    pub fn on_call(&self, schedule: &str, at: Timestamp) -> Option<OnCall> {
        let s = self.schedules.get(schedule)?;
        oncall::on_call(s, self.overrides_of(schedule), at)
    }

    /// Where a step naming `targets` pages at `at`.
    pub fn reach(&self, targets: &[Target], at: Timestamp) -> Reach {
        let mut r = Reach::default();
        let page = |r: &mut Reach, person: String, via: String| {
            if !r.people.iter().any(|p| p.person == person) {
                r.people.push(Paged { person, via });
            }
        };
        for target in targets {
            let via = target.to_string();
            match target {
                Target::Notifier(n) => {
                    if !r.notifiers.contains(n) {
                        r.notifiers.push(n.clone());
                    }
                    r.said.push(via);
                }
                Target::Person(p) => {
                    page(&mut r, p.clone(), via.clone());
                    r.said.push(via);
                }
                Target::Schedule(s) => match self.on_call(s, at) {
                    Some(on) => {
                        r.said.push(format!("{via} ({})", on.person));
                        page(&mut r, on.person, via);
                    }
                    None => {
                        r.said.push(format!("{via} (nobody on call)"));
                        r.uncovered.push(s.clone());
                    }
                },
            }
        }
        r
    }

    /// An incident rule's `assign_to` at `at`: a schedule's on-call person
    /// (nobody on call: unassigned), a person, or the assignment group as
    /// written.
    pub fn assignee(&self, assign_to: Option<&str>, target: Option<&Target>, at: Timestamp) -> Option<Assignee> {
        match target {
            Some(Target::Schedule(s)) => {
                self.on_call(s, at).map(|on| Assignee { name: on.person, via: Some(format!("schedule:{s}")) })
            }
            Some(Target::Person(p)) => Some(Assignee { name: p.clone(), via: None }),
            Some(Target::Notifier(_)) | None => assign_to.map(|a| Assignee { name: a.to_owned(), via: None }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::person::Person;
    use crate::oncall::RawSchedule;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn schedules() -> BTreeMap<String, Schedule> {
        let yaml = "name: primary\nlayers:\n  - name: daily\n    rotation: {people: [alice, bob], shift: 1d, handoff: \"09:00\", start: 2026-11-02}\n";
        let s = Schedule::compile(crate::yaml::from_str::<RawSchedule>(yaml).unwrap()).unwrap();
        let empty = "name: empty\nlayers:\n  - name: nights\n    rotation: {people: [carol], shift: 1d}\n    restrict: {mon-fri: \"22:00-23:00\"}\n";
        let e = Schedule::compile(crate::yaml::from_str::<RawSchedule>(empty).unwrap()).unwrap();
        BTreeMap::from([(s.name.clone(), s), (e.name.clone(), e)])
    }

    fn directory() -> Directory {
        let person = |name: &str| Person {
            name: name.into(),
            email: Some(format!("{name}@example.org")),
            timezone: None,
            webhook: None,
        };
        Directory { people: vec![person("alice"), person("bob"), person("carol")], email_notifier: Some("mail".into()) }
    }

    #[test]
    fn a_step_pages_the_schedules_on_call_person_notifiers_and_people_once_each() {
        let (s, d) = (schedules(), directory());
        let overrides = Overrides::new();
        let book = OnCallBook { schedules: &s, overrides: &overrides, directory: &d };
        let targets = ["schedule:primary", "person:alice", "chatops", "schedule:empty", "chatops"]
            .map(|t| Target::parse(t).unwrap());
        // 2026-11-02 is day 0 of the rotation: alice from 09:00 UTC.
        let r = book.reach(&targets, t("2026-11-02T12:00:00Z"));
        assert_eq!(r.people, [Paged { person: "alice".into(), via: "schedule:primary".into() }]);
        assert_eq!(r.notifiers, ["chatops"]);
        assert_eq!(r.uncovered, ["empty"]);
        assert_eq!(
            r.said,
            ["schedule:primary (alice)", "person:alice", "chatops", "schedule:empty (nobody on call)", "chatops"]
        );
        // The next day bob is on call; alice is still paged by name.
        let r = book.reach(&targets[..2], t("2026-11-03T12:00:00Z"));
        let people: Vec<_> = r.people.iter().map(|p| (p.person.as_str(), p.via.as_str())).collect();
        assert_eq!(people, [("bob", "schedule:primary"), ("alice", "person:alice")]);
    }

    #[test]
    fn an_override_decides_who_is_paged_and_assigned() {
        let (s, d) = (schedules(), directory());
        let cover =
            Override { person: "carol".into(), start: t("2026-11-02T10:00:00Z"), end: t("2026-11-02T14:00:00Z") };
        let overrides = Overrides::from([("primary".to_owned(), vec![cover])]);
        let book = OnCallBook { schedules: &s, overrides: &overrides, directory: &d };
        let target = Target::parse("schedule:primary").unwrap();
        let r = book.reach(std::slice::from_ref(&target), t("2026-11-02T12:00:00Z"));
        assert_eq!(r.people[0].person, "carol");
        let a = book.assignee(Some("schedule:primary"), Some(&target), t("2026-11-02T13:59:59Z")).unwrap();
        assert_eq!(a, Assignee { name: "carol".into(), via: Some("schedule:primary".into()) });
        let a = book.assignee(Some("schedule:primary"), Some(&target), t("2026-11-02T14:00:00Z")).unwrap();
        assert_eq!(a.name, "alice", "the override ended");
    }

    #[test]
    fn assign_to_a_group_a_person_or_an_empty_schedule() {
        let (s, d) = (schedules(), directory());
        let overrides = Overrides::new();
        let book = OnCallBook { schedules: &s, overrides: &overrides, directory: &d };
        let at = t("2026-11-02T12:00:00Z");
        assert_eq!(book.assignee(Some("payments-team"), None, at).unwrap().name, "payments-team");
        let carol = Target::parse("person:carol").unwrap();
        assert_eq!(book.assignee(Some("person:carol"), Some(&carol), at).unwrap().name, "carol");
        let empty = Target::parse("schedule:empty").unwrap();
        assert_eq!(book.assignee(Some("schedule:empty"), Some(&empty), at), None, "nobody on call: unassigned");
        assert_eq!(book.assignee(None, None, at), None);
    }
}
