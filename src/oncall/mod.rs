//! On-call schedules: who is on call at an instant, from rotations, layers,
//! restrictions and overrides. Pure: callers pass the instants, nothing
//! here reads the clock or stores anything.
//!
//! The final answer at an instant is the person of the latest override
//! covering it, else of the highest layer that has someone on call then.
//! It is piecewise constant: it can only change where some layer hands
//! over or crosses the edge of its restriction, or where an override
//! begins or ends. The functions below step from one such instant to the
//! next, looking only at the sources that can matter (below the layer that
//! wins now, nothing can change the answer until that layer does), so the
//! answer for one instant costs a few shift computations, never a walk
//! over every shift since a rotation's start.
pub mod ical;
mod rotation;
mod schedule;

use jiff::{SignedDuration, Timestamp};

pub use rotation::{Handoff, Rotation, RotationError, ShiftAt, ShiftLength};
pub use schedule::{DEFAULT_START, Layer, NAME_RULE, RawLayer, RawRotation, RawSchedule, Schedule, valid_name};

/// Someone on call instead of the layers, for swaps and cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub person: String,
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Override {
    fn covers(&self, at: Timestamp) -> bool {
        self.start <= at && at < self.end
    }
}

/// Where an answer comes from: a layer of the schedule, or an override,
/// each by its index (in `schedule.layers`, in the overrides passed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    Layer(usize),
    Override(usize),
}

/// Who is on call at an instant, and for how long around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnCall {
    pub person: String,
    /// What puts them on call at the instant asked about.
    pub source: Source,
    /// Since when they have been on call without a break.
    pub since: Timestamp,
    /// Until when; `None` when nothing in sight ends it (a rotation of one
    /// person, with no restriction and no override ahead).
    pub until: Option<Timestamp>,
}

/// A stretch of one person on call, adjacent shifts of the same person
/// merged: a handoff from alice to alice, or alice's override running into
/// her own shift, is one shift.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shift {
    pub person: String,
    pub start: Timestamp,
    pub end: Timestamp,
    /// What put them on call, in order of first appearance.
    pub sources: Vec<Source>,
}

/// Most steps a walk for `since`, `until` or the next shift takes: far
/// more changes than any real schedule has between two handoffs of
/// different people, and a bound on the work an odd one causes.
const MAX_STEPS: usize = 10_000;

/// Who is on call at `at`; `None` when nobody is.
pub fn on_call(schedule: &Schedule, overrides: &[Override], at: Timestamp) -> Option<OnCall> {
    let view = View { schedule, overrides };
    let (person, source) = view.at(at)?;
    Some(OnCall {
        person: person.to_owned(),
        source,
        since: view.stretch_start(at, person),
        until: view.stretch_end(at, Some(person)),
    })
}

/// Who is on call next after `at`: the shift after the current one (after
/// a gap with nobody on call, if there is one; the same person again, if
/// the gap ends with them). `None` when nobody is in sight.
pub fn next_on_call(schedule: &Schedule, overrides: &[Override], at: Timestamp) -> Option<OnCall> {
    let view = View { schedule, overrides };
    let mut t = match view.at(at) {
        Some((person, _)) => view.stretch_end(at, Some(person))?,
        None => at,
    };
    if view.at(t).is_none() {
        t = view.stretch_end(t, None)?;
    }
    let (person, source) = view.at(t)?;
    Some(OnCall { person: person.to_owned(), source, since: t, until: view.stretch_end(t, Some(person)) })
}

/// The final shifts in `[from, to)`, overrides applied, in order; the first
/// and the last are cut at the window's edges (ask [`on_call`] for the
/// whole of the shift at an instant).
pub fn shifts(schedule: &Schedule, overrides: &[Override], from: Timestamp, to: Timestamp) -> Vec<Shift> {
    let view = View { schedule, overrides };
    let mut out: Vec<Shift> = Vec::new();
    let mut at = from;
    while at < to {
        let here = view.at(at);
        let next = view.next_change(at, here.map(|h| h.1)).map_or(to, |n| n.min(to));
        if let Some((person, source)) = here {
            match out.last_mut() {
                Some(last) if last.end == at && last.person == person => {
                    last.end = next;
                    if !last.sources.contains(&source) {
                        last.sources.push(source);
                    }
                }
                _ => out.push(Shift { person: person.to_owned(), start: at, end: next, sources: vec![source] }),
            }
        }
        at = next;
    }
    out
}

/// A schedule with the overrides that apply to it.
struct View<'a> {
    schedule: &'a Schedule,
    overrides: &'a [Override],
}

impl<'a> View<'a> {
    /// The final answer at `at`: the latest override that covers it, else
    /// the highest layer with someone on call.
    fn at(&self, at: Timestamp) -> Option<(&'a str, Source)> {
        if let Some((i, o)) = self.overrides.iter().enumerate().rev().find(|(_, o)| o.covers(at)) {
            return Some((o.person.as_str(), Source::Override(i)));
        }
        let tz = &self.schedule.timezone;
        self.schedule.layers.iter().enumerate().rev().find_map(|(i, l)| Some((l.person_at(tz, at)?, Source::Layer(i))))
    }

    /// The layers whose changes can change the answer while `winner`
    /// holds: while an override wins, none; while a layer wins, it and
    /// those above it; while nobody is on call, all.
    fn layers_that_matter(&self, winner: Option<Source>) -> &'a [schedule::Layer] {
        let layers = &self.schedule.layers[..];
        match winner {
            Some(Source::Override(_)) => &[],
            Some(Source::Layer(i)) => &layers[i..],
            None => layers,
        }
    }

    /// The first instant after `at` where the answer may change.
    fn next_change(&self, at: Timestamp, winner: Option<Source>) -> Option<Timestamp> {
        let tz = &self.schedule.timezone;
        let layers = self.layers_that_matter(winner).iter().filter_map(|l| l.next_change(tz, at));
        let overrides = self.overrides.iter().flat_map(|o| [o.start, o.end]).filter(|t| *t > at);
        layers.chain(overrides).min()
    }

    /// The last instant at or before `at` where the answer may have changed.
    fn prev_change(&self, at: Timestamp, winner: Option<Source>) -> Option<Timestamp> {
        let tz = &self.schedule.timezone;
        let layers = self.layers_that_matter(winner).iter().filter_map(|l| l.prev_change(tz, at));
        let overrides = self.overrides.iter().flat_map(|o| [o.start, o.end]).filter(|t| *t <= at);
        layers.chain(overrides).max()
    }

    /// The first instant after `at` at which the person on call is no
    /// longer `person` (`None`: nobody); `None` when that is not in sight.
    fn stretch_end(&self, at: Timestamp, person: Option<&str>) -> Option<Timestamp> {
        let mut t = at;
        let mut winner = self.at(t).map(|h| h.1);
        for _ in 0..MAX_STEPS {
            let next = self.next_change(t, winner)?;
            let here = self.at(next);
            if here.map(|h| h.0) != person {
                return Some(next);
            }
            (t, winner) = (next, here.map(|h| h.1));
        }
        None
    }

    /// The instant from which `person`, on call at `at`, has been on call
    /// without a break.
    fn stretch_start(&self, at: Timestamp, person: &str) -> Timestamp {
        let mut t = at;
        for _ in 0..MAX_STEPS {
            let winner = self.at(t).map(|h| h.1);
            let Some(change) = self.prev_change(t, winner) else { return t };
            let Ok(before) = change.checked_sub(SignedDuration::from_nanos(1)) else { return change };
            if self.at(before).map(|h| h.0) != Some(person) {
                return change;
            }
            t = before;
        }
        t
    }
}

#[cfg(test)]
mod tests;
