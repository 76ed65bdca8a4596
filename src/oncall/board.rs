//! Who is on call, as people read it: per schedule, who now and until
//! when, who next; and a window's final shifts, each saying what put the
//! person on call (a layer by name, or an override by id).
use jiff::Timestamp;
use serde::Serialize;

use super::{OnCall, Override, Schedule, Shift, Source};

/// A person's stretch on call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stretch {
    pub person: String,
    pub start: Timestamp,
    /// `null` when nothing in sight ends it.
    pub end: Option<Timestamp>,
    /// What puts them on call: `layer:weekly`, `override:12`.
    pub source: String,
}

/// One schedule now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleNow {
    pub schedule: String,
    pub timezone: String,
    /// `null` when nobody is on call.
    pub now: Option<Stretch>,
    pub next: Option<Stretch>,
}

/// A final shift of a window, overrides applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShiftView {
    pub person: String,
    pub start: Timestamp,
    pub end: Timestamp,
    /// What put them on call, in order: `layer:weekly`, `override:12`.
    pub sources: Vec<String>,
}

/// A schedule with its stored overrides: `ids` are the overrides' ids,
/// in the order of `overrides`.
pub struct WithOverrides<'a> {
    pub schedule: &'a Schedule,
    pub overrides: &'a [Override],
    pub ids: &'a [i64],
}

impl WithOverrides<'_> {
    fn source(&self, s: Source) -> String {
        match s {
            Source::Layer(i) => format!("layer:{}", self.schedule.layers.get(i).map_or("?", |l| l.name.as_str())),
            Source::Override(i) => format!("override:{}", self.ids.get(i).copied().unwrap_or_default()),
        }
    }

    fn stretch(&self, on: OnCall) -> Stretch {
        Stretch { source: self.source(on.source), person: on.person, start: on.since, end: on.until }
    }

    pub fn now(&self, at: Timestamp) -> ScheduleNow {
        let (s, o) = (self.schedule, self.overrides);
        ScheduleNow {
            schedule: s.name.clone(),
            timezone: s.timezone.iana_name().unwrap_or("UTC").to_owned(),
            now: super::on_call(s, o, at).map(|on| self.stretch(on)),
            next: super::next_on_call(s, o, at).map(|on| self.stretch(on)),
        }
    }

    /// The shifts of `[from, to)`, the first one whole (from when its
    /// person came on call): a calendar feed's events keep their start, and
    /// so their UID, as the window moves.
    pub fn whole_shifts(&self, from: Timestamp, to: Timestamp) -> Vec<ShiftView> {
        let start = super::on_call(self.schedule, self.overrides, from).map_or(from, |on| on.since.min(from));
        self.shifts(start, to)
    }

    pub fn shifts(&self, from: Timestamp, to: Timestamp) -> Vec<ShiftView> {
        super::shifts(self.schedule, self.overrides, from, to)
            .into_iter()
            .map(|Shift { person, start, end, sources }| ShiftView {
                person,
                start,
                end,
                sources: sources.into_iter().map(|s| self.source(s)).collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oncall::RawSchedule;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn sources_are_named_by_layer_and_override_id() {
        let yaml = "name: primary\ntimezone: Europe/Berlin\nlayers:\n  - name: weekly\n    rotation: {people: [alice, bob], shift: 1w, handoff: \"mon 09:00\", start: 2026-11-02}\n";
        let s = Schedule::compile(crate::yaml::from_str::<RawSchedule>(yaml).unwrap()).unwrap();
        let cover =
            [Override { person: "carol".into(), start: t("2026-11-03T08:00:00Z"), end: t("2026-11-04T08:00:00Z") }];
        let w = WithOverrides { schedule: &s, overrides: &cover, ids: &[42] };
        let now = w.now(t("2026-11-03T12:00:00Z"));
        assert_eq!(now.timezone, "Europe/Berlin");
        let on = now.now.unwrap();
        assert_eq!(
            (on.person.as_str(), on.source.as_str(), on.end),
            ("carol", "override:42", Some(t("2026-11-04T08:00:00Z")))
        );
        let next = now.next.unwrap();
        assert_eq!((next.person.as_str(), next.source.as_str()), ("alice", "layer:weekly"));
        assert_eq!(next.end, Some(t("2026-11-09T08:00:00Z")), "09:00 in Berlin is 08:00 UTC in November");
        // A window beginning inside carol's override: its first shift is whole.
        let whole = w.whole_shifts(t("2026-11-03T12:00:00Z"), t("2026-11-03T13:00:00Z"));
        assert_eq!((whole[0].start, whole[0].end), (t("2026-11-03T08:00:00Z"), t("2026-11-03T13:00:00Z")));
        let shifts = w.shifts(t("2026-11-02T00:00:00Z"), t("2026-11-10T00:00:00Z"));
        let said: Vec<_> = shifts.iter().map(|s| (s.person.as_str(), s.sources.join("+"))).collect();
        assert_eq!(
            said,
            [
                ("alice", "layer:weekly".into()),
                ("carol", "override:42".into()),
                ("alice", "layer:weekly".into()),
                ("bob", "layer:weekly".into())
            ]
        );
    }
}
