//! Schedules as rule files write them (`RawSchedule`) and as compiled:
//! layers of rotations, each optionally restricted to hours of the week
//! written in the calendar syntax SLA calendars use.
use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use super::rotation::{self, Handoff, Rotation, ShiftLength};
use crate::sla::calendar::{Calendar, HoursSpec, RawCalendar};

/// When a rotation gives no start: the Monday of the Unix epoch's week, so
/// such a rotation has always been running and its order is fixed by the
/// calendar alone (the same answer on every gateway, whenever it loaded).
pub const DEFAULT_START: jiff::civil::Date = jiff::civil::date(1970, 1, 5);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    pub name: String,
    /// An IANA time zone name; `UTC` when absent.
    pub timezone: Option<String>,
    #[serde(default)]
    pub layers: Vec<RawLayer>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLayer {
    pub name: String,
    pub rotation: RawRotation,
    /// Day keys to hours, as a calendar's `hours:`; the layer has nobody
    /// on call outside them.
    pub restrict: Option<BTreeMap<String, HoursSpec>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRotation {
    #[serde(default)]
    pub people: Vec<String>,
    pub shift: String,
    pub handoff: Option<String>,
    pub start: Option<String>,
}

/// A checked schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub name: String,
    pub timezone: TimeZone,
    /// Lowest first: a later layer wins where it has someone on call.
    pub layers: Vec<Layer>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub name: String,
    pub rotation: Rotation,
    /// Working time of this calendar is when the layer has someone on call.
    pub restrict: Option<Calendar>,
}

/// Names that go into URLs (`/schedules/NAME/shifts`) and calendar feeds.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Names may use letters, digits, `-`, `_` and `.`.
pub const NAME_RULE: &str = "names may use letters, digits, '-', '_' and '.'";

impl Schedule {
    /// Checks and compiles a rule file's schedule; every problem is
    /// returned, each starting with the path of its field
    /// (`layers[1].rotation.shift: ...`).
    pub fn compile(raw: RawSchedule) -> Result<Schedule, Vec<String>> {
        let mut p = Vec::new();
        if !valid_name(&raw.name) {
            p.push(format!("name: {:?}: {NAME_RULE}", raw.name));
        }
        let timezone = match raw.timezone.as_deref() {
            None | Some("UTC") => Some(TimeZone::UTC),
            Some(tz) => TimeZone::get(tz).map_err(|_| p.push(format!("timezone: unknown time zone {tz:?}"))).ok(),
        };
        if raw.layers.is_empty() {
            p.push("layers: give at least one layer".into());
        }
        let tz_name = raw.timezone.as_deref().filter(|_| timezone.is_some()).unwrap_or("UTC");
        let mut layers: Vec<Layer> = Vec::new();
        for (i, layer) in raw.layers.into_iter().enumerate() {
            if layers.iter().any(|l| l.name == layer.name) {
                p.push(format!("layers[{i}].name: duplicate layer name {:?}", layer.name));
            }
            if let Some(l) = compile_layer(layer, tz_name, &format!("layers[{i}]."), &mut p) {
                layers.push(l);
            }
        }
        match timezone {
            Some(timezone) if p.is_empty() => Ok(Schedule { name: raw.name, timezone, layers }),
            _ => Err(p),
        }
    }
}

fn compile_layer(raw: RawLayer, tz_name: &str, at: &str, p: &mut Vec<String>) -> Option<Layer> {
    if raw.name.trim().is_empty() {
        p.push(format!("{at}name must not be empty"));
    }
    let rotation = compile_rotation(raw.rotation, &format!("{at}rotation."), p);
    let restrict = raw.restrict.and_then(|hours| {
        let calendar = RawCalendar { timezone: Some(tz_name.to_owned()), hours, holidays: Vec::new() };
        // The calendar's own checks, its messages said of `restrict`.
        Calendar::compile(&raw.name, &calendar)
            .map_err(|errors| {
                for e in errors {
                    let e = e.replace("no working time in the week", "no time in the week");
                    let below = e.strip_prefix("hours").unwrap_or(&e);
                    p.push(format!("{at}restrict{below}"));
                }
            })
            .ok()
    });
    Some(Layer { name: raw.name, rotation: rotation?, restrict })
}

fn compile_rotation(raw: RawRotation, at: &str, p: &mut Vec<String>) -> Option<Rotation> {
    for (j, person) in raw.people.iter().enumerate() {
        if !valid_name(person) {
            p.push(format!("{at}people[{j}]: {person:?}: people's {NAME_RULE}"));
        }
    }
    let shift = ShiftLength::parse(&raw.shift).map_err(|e| p.push(format!("{at}shift: {e}"))).ok();
    let handoff = match (&raw.handoff, shift) {
        (Some(text), _) => Handoff::parse(text).map_err(|e| p.push(format!("{at}handoff: {e}"))).ok(),
        (None, shift) => Some(default_handoff(shift)),
    };
    let start = match &raw.start {
        Some(text) => rotation::parse_date(text).map_err(|e| p.push(format!("{at}start: {e}"))).ok(),
        None => Some(DEFAULT_START),
    };
    let (shift, handoff, start) = (shift?, handoff?, start?);
    Rotation::new(raw.people, shift, handoff, start)
        .map_err(|e| {
            let field = match e {
                rotation::RotationError::NoPeople => "people",
                _ => "handoff",
            };
            p.push(format!("{at}{field}: {e}"));
        })
        .ok()
}

/// 09:00 for day and week shifts (weeks on the start's weekday); midnight
/// for hour shifts, so 8h shifts hand over at 00:00, 08:00 and 16:00.
fn default_handoff(shift: Option<ShiftLength>) -> Handoff {
    let time = match shift {
        Some(ShiftLength::Hours(_)) => jiff::civil::time(0, 0, 0, 0),
        _ => jiff::civil::time(9, 0, 0, 0),
    };
    Handoff { weekday: None, time }
}

/// How far restriction edges are looked for at once: a restriction has
/// some time in every week.
const EDGE_WINDOWS: [SignedDuration; 2] = [SignedDuration::from_hours(36), SignedDuration::from_hours(8 * 24 + 1)];

impl Layer {
    /// Who this layer has on call at `at`.
    pub fn person_at(&self, tz: &TimeZone, at: Timestamp) -> Option<&str> {
        let shift = self.rotation.shift_at(tz, at);
        let person = self.rotation.person(shift.index)?;
        match &self.restrict {
            Some(c) if !c.is_working(at) => None,
            _ => Some(person),
        }
    }

    /// The first instant after `at` at which this layer's answer may change
    /// (a handoff, the edge of a restriction); `None` if it never does.
    pub(super) fn next_change(&self, tz: &TimeZone, at: Timestamp) -> Option<Timestamp> {
        let shift = self.rotation.shift_at(tz, at);
        // Handoffs between the same person change nothing.
        let handoff = (shift.index < 0 || !self.rotation.is_constant()).then_some(shift.end);
        let handoff = handoff.filter(|t| *t != Timestamp::MAX);
        let edge = match &self.restrict {
            Some(c) if shift.index >= 0 => next_edge(c, at),
            _ => None,
        };
        min_some(handoff, edge)
    }

    /// The last instant at or before `at` at which this layer's answer may
    /// have changed; `None` if it has been the same forever (nobody before
    /// the first handoff).
    pub(super) fn prev_change(&self, tz: &TimeZone, at: Timestamp) -> Option<Timestamp> {
        let shift = self.rotation.shift_at(tz, at);
        if shift.index < 0 {
            return None;
        }
        let handoff = if self.rotation.is_constant() { self.rotation.boundary(tz, 0) } else { shift.start };
        let edge = self.restrict.as_ref().and_then(|c| prev_edge(c, at));
        Some(edge.map_or(handoff, |e| e.max(handoff)))
    }
}

fn min_some(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The first start or end of working time after `at`.
fn next_edge(c: &Calendar, at: Timestamp) -> Option<Timestamp> {
    EDGE_WINDOWS.iter().find_map(|w| {
        let to = at.checked_add(*w).ok()?;
        c.working_intervals(at, to).into_iter().flat_map(|(s, e)| [s, e]).find(|t| *t > at)
    })
}

/// The last start or end of working time at or before `at`.
fn prev_edge(c: &Calendar, at: Timestamp) -> Option<Timestamp> {
    // Calendars count in milliseconds: a window ending 1 ns after `at`
    // would lose an interval that starts at `at`.
    let until = at.checked_add(SignedDuration::from_millis(1)).unwrap_or(at);
    EDGE_WINDOWS.iter().find_map(|w| {
        let from = at.checked_sub(*w).ok()?;
        c.working_intervals(from, until).into_iter().flat_map(|(s, e)| [s, e]).rfind(|t| *t <= at)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(yaml: &str) -> Result<Schedule, Vec<String>> {
        Schedule::compile(crate::yaml::from_str::<RawSchedule>(yaml).unwrap())
    }

    #[test]
    fn the_issue_example_compiles() {
        let s = compile(
            r#"
name: payments-primary
timezone: Europe/Berlin
layers:
  - name: weekly
    rotation: {people: [alice, bob, carol], shift: 1w, handoff: "mon 09:00", start: 2026-11-02}
  - name: business-hours-backup
    rotation: {people: [dave], shift: 1d, handoff: "09:00"}
    restrict: {mon-fri: "09:00-17:00"}
"#,
        )
        .unwrap();
        assert_eq!(s.timezone.iana_name(), Some("Europe/Berlin"));
        assert_eq!(s.layers.len(), 2);
        let weekly = &s.layers[0].rotation;
        assert_eq!((weekly.shift, weekly.handoff.to_string()), (ShiftLength::Weeks(1), "mon 09:00".to_string()));
        assert_eq!(weekly.start, jiff::civil::date(2026, 11, 2));
        let backup = &s.layers[1];
        assert_eq!(backup.rotation.start, DEFAULT_START);
        assert!(backup.restrict.is_some() && s.layers[0].restrict.is_none());
    }

    #[test]
    fn defaults() {
        let s = compile("name: s\nlayers:\n  - {name: a, rotation: {people: [x], shift: 1w}}\n  - {name: b, rotation: {people: [y], shift: 8h}}\n").unwrap();
        assert_eq!(s.timezone, TimeZone::UTC);
        // The epoch's Monday at 09:00 for weeks and days; midnight for hours.
        assert_eq!(s.layers[0].rotation.first_handoff(), jiff::civil::date(1970, 1, 5).at(9, 0, 0, 0));
        assert_eq!(s.layers[1].rotation.first_handoff(), jiff::civil::date(1970, 1, 5).at(0, 0, 0, 0));
    }

    #[test]
    fn every_problem_at_once_each_with_its_path() {
        let cases: &[(&str, &[&str])] = &[
            (
                "name: s\ntimezone: Europe/Berln\nlayers: []\n",
                &["timezone: unknown time zone \"Europe/Berln\"", "layers: give at least one layer"],
            ),
            (
                "name: 'a b'\nlayers: [{name: l, rotation: {people: [x], shift: 1w}}]\n",
                &["name: \"a b\": names may use letters, digits, '-', '_' and '.'"],
            ),
            (
                "name: s\nlayers:\n  - {name: l, rotation: {people: [], shift: 90m, handoff: 'mon 9', start: 2026-02-30}}\n",
                &[
                    "layers[0].rotation.shift: \"90m\" is not a shift length: use whole hours, days or weeks, e.g. 12h, 1d, 1w",
                    "layers[0].rotation.handoff: \"mon 9\" is not a handoff: use \"HH:MM\", or \"mon HH:MM\" for week shifts",
                    "layers[0].rotation.start: \"2026-02-30\" is not a date (YYYY-MM-DD)",
                ],
            ),
            (
                "name: s\nlayers:\n  - {name: l, rotation: {people: [], shift: 1d}}\n",
                &["layers[0].rotation.people: name at least one person"],
            ),
            (
                "name: s\nlayers:\n  - {name: l, rotation: {people: [x], shift: 1d, handoff: 'mon 09:00'}}\n",
                &[
                    "layers[0].rotation.handoff: \"mon 09:00\": a weekday is for week shifts only; give the time of day (\"09:00\")",
                ],
            ),
            (
                "name: s\nlayers:\n  - {name: l, rotation: {people: [x, 'bob smith'], shift: 1d}}\n  - {name: l, rotation: {people: [y], shift: 1d}, restrict: {mon-fry: '09:00-17:00', sat: '17:00-09:00'}}\n",
                &[
                    "layers[0].rotation.people[1]: \"bob smith\": people's names may use letters, digits, '-', '_' and '.'",
                    "layers[1].name: duplicate layer name \"l\"",
                    "layers[1].restrict.mon-fry: unknown day \"fry\" (use mon, tue, wed, thu, fri, sat, sun or a range like mon-fri)",
                    "layers[1].restrict.sat: \"17:00-09:00\": the end must be after the start",
                ],
            ),
            (
                "name: s\nlayers:\n  - {name: l, rotation: {people: [x], shift: 1d}, restrict: {}}\n",
                &["layers[0].restrict: no time in the week"],
            ),
        ];
        for (yaml, want) in cases {
            let mut got = compile(yaml).unwrap_err();
            got.sort();
            let mut want: Vec<String> = want.iter().map(|w| w.to_string()).collect();
            want.sort();
            assert_eq!(got, want, "{yaml}");
        }
        let unknown = "name: s\nlayers:\n  - {name: l, rotation: {people: [x], shift: 1d, length: 1d}}\n";
        assert!(crate::yaml::from_str::<RawSchedule>(unknown).unwrap_err().message.contains("length"));
    }
}
