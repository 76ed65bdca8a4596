//! Rotations: people taking turns in shifts of a civil length (hours, days
//! or weeks) that hand over at a civil time in the schedule's time zone.
//!
//! Shift `k` begins at the civil date-time `first + k * length`, where
//! `first` is the first handoff on or after the rotation's start date, and
//! belongs to `people[k % people.len()]`. Shifts are found by arithmetic on
//! civil time (counting civil days for day and week shifts), never by
//! walking shifts since the start, so the shift at an instant costs the same
//! in the first week and in the tenth year.
//!
//! Civil boundaries become instants in the time zone: a `1d` shift with
//! handoff 09:00 hands over at 09:00 local on both sides of a DST switch, so
//! the shift across the switch lasts 23 or 25 hours. A boundary in a DST gap
//! (02:30 on a spring-forward night) takes effect when the gap ends, the
//! first instant whose local time is at or past it; one in a fold takes the
//! first of its two instants. Either way boundaries never go backwards.
use std::fmt;

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};

/// How long each turn lasts, as a civil span: `8h`, `1d`, `1w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShiftLength {
    Hours(u32),
    Days(u32),
    Weeks(u32),
}

/// Where a rotation hands over: a time of day, and for week shifts the weekday.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handoff {
    pub weekday: Option<Weekday>,
    pub time: Time,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RotationError {
    #[error("{0:?} is not a shift length: use whole hours, days or weeks, e.g. 12h, 1d, 1w")]
    Shift(String),
    #[error("{0:?} is too long a shift (at most 8760h, 3650d or 520w)")]
    ShiftTooLong(String),
    #[error("{0:?} is not a handoff: use \"HH:MM\", or \"mon HH:MM\" for week shifts")]
    Handoff(String),
    #[error("{0:?}: a weekday is for week shifts only; give the time of day (\"09:00\")")]
    WeekdayWithoutWeeks(String),
    #[error("{0:?} is not a date (YYYY-MM-DD)")]
    Start(String),
    #[error("name at least one person")]
    NoPeople,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl ShiftLength {
    /// One whole number and one unit: `h`, `d` or `w`.
    pub fn parse(text: &str) -> Result<ShiftLength, RotationError> {
        let err = || RotationError::Shift(text.to_owned());
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        let (digits, unit) = t.split_at(split);
        let n: u32 = digits.parse().map_err(|_| err())?;
        let (length, max) = match unit {
            "h" => (ShiftLength::Hours(n), 8760),
            "d" => (ShiftLength::Days(n), 3650),
            "w" => (ShiftLength::Weeks(n), 520),
            _ => return Err(err()),
        };
        match n {
            0 => Err(err()),
            n if n > max => Err(RotationError::ShiftTooLong(text.to_owned())),
            _ => Ok(length),
        }
    }

    /// Civil days per shift; `None` for hour shifts.
    fn days(self) -> Option<i64> {
        match self {
            ShiftLength::Hours(_) => None,
            ShiftLength::Days(n) => Some(i64::from(n)),
            ShiftLength::Weeks(n) => Some(7 * i64::from(n)),
        }
    }
}

impl fmt::Display for ShiftLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShiftLength::Hours(n) => write!(f, "{n}h"),
            ShiftLength::Days(n) => write!(f, "{n}d"),
            ShiftLength::Weeks(n) => write!(f, "{n}w"),
        }
    }
}

impl Handoff {
    /// `"09:00"` or `"mon 09:00"` (a day name as in calendars, or in full).
    pub fn parse(text: &str) -> Result<Handoff, RotationError> {
        let err = || RotationError::Handoff(text.to_owned());
        let mut words = text.split_whitespace();
        let (day, time) = match (words.next(), words.next(), words.next()) {
            (Some(time), None, None) => (None, time),
            (Some(day), Some(time), None) => (Some(weekday(day).ok_or_else(err)?), time),
            _ => return Err(err()),
        };
        Ok(Handoff { weekday: day, time: time_of_day(time).ok_or_else(err)? })
    }
}

impl fmt::Display for Handoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = self.weekday {
            write!(f, "{} ", DAY_NAMES[d.to_monday_zero_offset() as usize])?;
        }
        write!(f, "{}", self.time.strftime("%H:%M"))
    }
}

/// `mon` or `monday`, any case.
fn weekday(text: &str) -> Option<Weekday> {
    let lower = text.to_ascii_lowercase();
    let i = DAY_NAMES.iter().position(|d| lower.len() >= 3 && (lower == *d || lower.starts_with(d)))?;
    let full = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"][i];
    (lower == DAY_NAMES[i] || lower == full).then(|| Weekday::from_monday_zero_offset(i as i8).ok())?
}

/// `HH:MM` (or `H:MM`) within the day.
fn time_of_day(text: &str) -> Option<Time> {
    let (h, m) = text.split_once(':')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(1..=2).contains(&h.len()) || m.len() != 2 || !digits(h) || !digits(m) {
        return None;
    }
    Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()
}

/// Strictly `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Result<Date, RotationError> {
    let b = text.as_bytes();
    let shape = b.len() == 10 && b[4] == b'-' && b[7] == b'-';
    shape.then(|| text.parse().ok()).flatten().ok_or_else(|| RotationError::Start(text.to_owned()))
}

/// One shift of a rotation: its index (negative before the first handoff,
/// when nobody's turn has begun) and its `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShiftAt {
    pub index: i64,
    pub start: Timestamp,
    pub end: Timestamp,
}

/// A checked rotation.
#[derive(Debug, Clone, PartialEq)]
pub struct Rotation {
    /// In turn order; the same person may appear more than once.
    pub people: Vec<String>,
    pub shift: ShiftLength,
    pub handoff: Handoff,
    pub start: Date,
    /// The civil date-time of the first handoff, where shift 0 begins.
    first: DateTime,
}

impl Rotation {
    /// The first handoff is on `start` at the handoff time; for week shifts
    /// on the handoff's weekday on or after `start` (the start's own weekday
    /// when the handoff names none).
    pub fn new(
        people: Vec<String>,
        shift: ShiftLength,
        handoff: Handoff,
        start: Date,
    ) -> Result<Rotation, RotationError> {
        if people.is_empty() {
            return Err(RotationError::NoPeople);
        }
        let first_day = match (shift, handoff.weekday) {
            (ShiftLength::Weeks(_), Some(day)) => {
                let ahead = (day.to_monday_zero_offset() - start.weekday().to_monday_zero_offset()).rem_euclid(7);
                start
                    .checked_add(SignedDuration::from_hours(24 * i64::from(ahead)))
                    .map_err(|_| RotationError::Start(start.to_string()))?
            }
            (ShiftLength::Weeks(_), None) => start,
            (_, Some(_)) => return Err(RotationError::WeekdayWithoutWeeks(handoff.to_string())),
            (_, None) => start,
        };
        Ok(Rotation { people, shift, handoff, start, first: first_day.to_datetime(handoff.time) })
    }

    /// The civil date-time shift 0 begins at.
    pub fn first_handoff(&self) -> DateTime {
        self.first
    }

    /// Whose turn shift `index` is; nobody's before the first.
    pub fn person(&self, index: i64) -> Option<&str> {
        let n = self.people.len() as i64;
        (index >= 0).then(|| self.people[index.rem_euclid(n) as usize].as_str())
    }

    /// Every shift is the same person's: handoffs change nothing.
    pub fn is_constant(&self) -> bool {
        self.people.iter().all(|p| *p == self.people[0])
    }

    /// The civil date-time shift `index` begins at; `None` past jiff's range.
    fn civil_start(&self, index: i64) -> Option<DateTime> {
        let offset = match self.shift.days() {
            Some(days) => SignedDuration::from_hours(index.checked_mul(days)?.checked_mul(24)?),
            None => {
                let ShiftLength::Hours(h) = self.shift else { unreachable!("days() is None only for hours") };
                SignedDuration::from_hours(index.checked_mul(i64::from(h))?)
            }
        };
        self.first.checked_add(offset).ok()
    }

    /// The instant shift `index` begins at in `tz`, saturating at the ends
    /// of time.
    pub fn boundary(&self, tz: &TimeZone, index: i64) -> Timestamp {
        let far = if index < 0 { Timestamp::MIN } else { Timestamp::MAX };
        self.civil_start(index).and_then(|dt| first_instant_at_or_after(tz, dt)).unwrap_or(far)
    }

    /// The shift index that civil date-time `civil` falls in, counted on
    /// the civil calendar; the instants may put the answer one off near a
    /// DST switch, which [`Rotation::shift_at`] corrects.
    fn civil_index(&self, civil: DateTime) -> i64 {
        match self.shift.days() {
            Some(per_shift) => {
                let mut days = civil.date().duration_since(self.first.date()).as_hours() / 24;
                if civil.time() < self.first.time() {
                    days -= 1;
                }
                days.div_euclid(per_shift)
            }
            None => {
                let ShiftLength::Hours(h) = self.shift else { unreachable!("days() is None only for hours") };
                civil.duration_since(self.first).as_secs().div_euclid(3600 * i64::from(h))
            }
        }
    }

    /// The shift that holds `at`.
    pub fn shift_at(&self, tz: &TimeZone, at: Timestamp) -> ShiftAt {
        let mut index = self.civil_index(tz.to_datetime(at));
        let mut start = self.boundary(tz, index);
        while start > at {
            index -= 1;
            start = self.boundary(tz, index);
        }
        let mut end = self.boundary(tz, index + 1);
        // Past a shift that a DST gap left empty, or one the estimate fell short of.
        while end <= at && end != Timestamp::MAX {
            index += 1;
            start = end;
            end = self.boundary(tz, index + 1);
        }
        ShiftAt { index, start, end }
    }
}

/// The first instant whose local time in `tz` is `dt` or later: `dt`'s
/// instant when it has one, the earlier of two in a fold, the end of the
/// gap when the clocks skip it. Monotonic in `dt`, unlike jiff's
/// "compatible" choice, which moves a time in a gap past later ones.
fn first_instant_at_or_after(tz: &TimeZone, dt: DateTime) -> Option<Timestamp> {
    match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt).ok(),
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(dt).ok(),
        AmbiguousOffset::Gap { after, .. } => {
            // With the offset after the gap `dt` reads as an instant before
            // the switch; the switch itself is the next transition.
            let early = after.to_timestamp(dt).ok()?;
            tz.following(early).next().map(|t| t.timestamp())
        }
    }
}

#[cfg(test)]
mod tests {
    use jiff::civil::{date, time};

    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    fn rotation(people: &[&str], shift: &str, handoff: &str, start: &str) -> Rotation {
        let people = people.iter().map(|p| p.to_string()).collect();
        Rotation::new(
            people,
            ShiftLength::parse(shift).unwrap(),
            Handoff::parse(handoff).unwrap(),
            parse_date(start).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn shift_lengths() {
        let ok = [("1h", ShiftLength::Hours(1)), ("12h", ShiftLength::Hours(12)), ("1d", ShiftLength::Days(1))];
        for (text, want) in ok.into_iter().chain([("2w", ShiftLength::Weeks(2)), (" 3d ", ShiftLength::Days(3))]) {
            assert_eq!(ShiftLength::parse(text), Ok(want), "{text}");
            assert_eq!(want.to_string(), text.trim());
        }
        for bad in ["", "0d", "1", "d", "1m", "90m", "1d12h", "1.5d", "-1d", "1 d"] {
            assert_eq!(ShiftLength::parse(bad), Err(RotationError::Shift(bad.into())), "{bad}");
        }
        assert_eq!(ShiftLength::parse("521w"), Err(RotationError::ShiftTooLong("521w".into())));
        assert!(ShiftLength::parse("99999999999h").is_err());
    }

    #[test]
    fn handoffs() {
        let cases: &[(&str, Option<Weekday>, Time)] = &[
            ("09:00", None, time(9, 0, 0, 0)),
            ("9:30", None, time(9, 30, 0, 0)),
            ("mon 09:00", Some(Weekday::Monday), time(9, 0, 0, 0)),
            ("Friday 17:00", Some(Weekday::Friday), time(17, 0, 0, 0)),
            ("  sun   00:00 ", Some(Weekday::Sunday), time(0, 0, 0, 0)),
        ];
        for (text, weekday, time) in cases {
            assert_eq!(Handoff::parse(text), Ok(Handoff { weekday: *weekday, time: *time }), "{text}");
        }
        assert_eq!(Handoff::parse("mon 09:00").unwrap().to_string(), "mon 09:00");
        for bad in ["", "9", "24:00", "09:60", "mon", "monkey 09:00", "mo 09:00", "mon 09:00 utc", "09:00 mon"] {
            assert_eq!(Handoff::parse(bad), Err(RotationError::Handoff(bad.into())), "{bad}");
        }
    }

    #[test]
    fn rotation_checks() {
        let h = Handoff::parse("mon 09:00").unwrap();
        let start = date(2026, 11, 4);
        assert_eq!(Rotation::new(vec![], ShiftLength::Weeks(1), h, start), Err(RotationError::NoPeople));
        assert_eq!(
            Rotation::new(vec!["a".into()], ShiftLength::Days(1), h, start),
            Err(RotationError::WeekdayWithoutWeeks("mon 09:00".into()))
        );
        // A Wednesday start with a Monday handoff begins the next Monday.
        let r = Rotation::new(vec!["a".into()], ShiftLength::Weeks(1), h, start).unwrap();
        assert_eq!(r.first_handoff(), date(2026, 11, 9).at(9, 0, 0, 0));
        let r = rotation(&["a"], "1w", "10:00", "2026-11-04");
        assert_eq!(r.first_handoff(), date(2026, 11, 4).at(10, 0, 0, 0), "the start's weekday");
        for bad in ["2026-13-01", "20261101", "2026-1-1", "tomorrow"] {
            assert_eq!(parse_date(bad), Err(RotationError::Start(bad.into())));
        }
    }

    /// (rotation, instant, person, shift start, shift end)
    type Case<'a> = (&'a Rotation, &'a str, Option<&'a str>, &'a str, &'a str);

    fn check(zone: &str, cases: &[Case<'_>]) {
        let z = tz(zone);
        for (r, at, person, start, end) in cases {
            let s = r.shift_at(&z, ts(at));
            let got = (r.person(s.index), s.start, s.end);
            assert_eq!(got, (*person, ts(start), ts(end)), "{zone} {} {} at {at}", r.shift, r.handoff);
        }
    }

    #[test]
    fn hour_day_and_week_rotations() {
        let hourly = rotation(&["a", "b", "c"], "1h", "00:00", "2026-06-01");
        let twelve = rotation(&["day", "night"], "12h", "08:00", "2026-06-01");
        let daily = rotation(&["a", "b", "c"], "1d", "09:00", "2026-06-01");
        let weekly = rotation(&["alice", "bob", "carol"], "1w", "mon 09:00", "2026-11-02");
        let fortnight = rotation(&["x", "y"], "2w", "wed 12:00", "2026-06-01");
        let alone = rotation(&["solo"], "1d", "09:00", "2026-06-01");
        check(
            "UTC",
            &[
                (&hourly, "2026-06-01T00:00:00Z", Some("a"), "2026-06-01T00:00:00Z", "2026-06-01T01:00:00Z"),
                (&hourly, "2026-06-01T02:59:59Z", Some("c"), "2026-06-01T02:00:00Z", "2026-06-01T03:00:00Z"),
                (&hourly, "2026-06-02T03:30:00Z", Some("a"), "2026-06-02T03:00:00Z", "2026-06-02T04:00:00Z"),
                // Before the first handoff nobody's turn has begun.
                (&twelve, "2026-06-01T07:59:59Z", None, "2026-05-31T20:00:00Z", "2026-06-01T08:00:00Z"),
                (&twelve, "2026-06-01T20:00:00Z", Some("night"), "2026-06-01T20:00:00Z", "2026-06-02T08:00:00Z"),
                (&twelve, "2026-06-11T09:00:00Z", Some("day"), "2026-06-11T08:00:00Z", "2026-06-11T20:00:00Z"),
                (&daily, "2026-06-02T08:59:59Z", Some("a"), "2026-06-01T09:00:00Z", "2026-06-02T09:00:00Z"),
                (&daily, "2026-06-03T09:00:00Z", Some("c"), "2026-06-03T09:00:00Z", "2026-06-04T09:00:00Z"),
                (&daily, "2027-06-01T12:00:00Z", Some("c"), "2027-06-01T09:00:00Z", "2027-06-02T09:00:00Z"),
                (&weekly, "2026-11-09T08:59:00Z", Some("alice"), "2026-11-02T09:00:00Z", "2026-11-09T09:00:00Z"),
                (&weekly, "2026-11-20T00:00:00Z", Some("carol"), "2026-11-16T09:00:00Z", "2026-11-23T09:00:00Z"),
                (&weekly, "2026-11-23T09:00:00Z", Some("alice"), "2026-11-23T09:00:00Z", "2026-11-30T09:00:00Z"),
                (&fortnight, "2026-06-03T12:00:00Z", Some("x"), "2026-06-03T12:00:00Z", "2026-06-17T12:00:00Z"),
                (&fortnight, "2026-06-20T00:00:00Z", Some("y"), "2026-06-17T12:00:00Z", "2026-07-01T12:00:00Z"),
                (&alone, "2026-06-09T10:00:00Z", Some("solo"), "2026-06-09T09:00:00Z", "2026-06-10T09:00:00Z"),
            ],
        );
        assert!(alone.is_constant() && !daily.is_constant());
        // A century on, as cheap as the first week: the index is arithmetic.
        let s = daily.shift_at(&TimeZone::UTC, ts("2126-06-01T12:00:00Z"));
        assert_eq!(s.index, 36_524);
        assert_eq!(daily.person(s.index), Some(["a", "b", "c"][36_524 % 3]));
    }

    #[test]
    fn berlin_hands_over_at_local_time_across_both_switches() {
        // 2026-03-29 02:00 CET becomes 03:00 CEST; 2026-10-25 03:00 CEST becomes 02:00 CET.
        let spring = rotation(&["a", "b", "c"], "1d", "09:00", "2026-03-27");
        let autumn = rotation(&["a", "b", "c"], "1d", "09:00", "2026-10-23");
        let week_spring = rotation(&["a", "b"], "1w", "mon 09:00", "2026-03-23");
        let week_autumn = rotation(&["a", "b"], "1w", "mon 09:00", "2026-10-19");
        let twelve = rotation(&["day", "night"], "12h", "08:00", "2026-03-28");
        let hourly = rotation(&["a", "b", "c", "d"], "1h", "00:00", "2026-03-29");
        let hourly_fold = rotation(&["a", "b", "c", "d", "e"], "1h", "00:00", "2026-10-25");
        let in_gap = rotation(&["a", "b", "c"], "1d", "02:30", "2026-03-27");
        check(
            "Europe/Berlin",
            &[
                // 09:00 local on both sides: the shift across the switch is 23 h, then 25 h.
                (&spring, "2026-03-28T12:00:00Z", Some("b"), "2026-03-28T08:00:00Z", "2026-03-29T07:00:00Z"),
                (&spring, "2026-03-29T07:00:00Z", Some("c"), "2026-03-29T07:00:00Z", "2026-03-30T07:00:00Z"),
                (&autumn, "2026-10-25T07:59:59Z", Some("b"), "2026-10-24T07:00:00Z", "2026-10-25T08:00:00Z"),
                (&autumn, "2026-10-25T08:00:00Z", Some("c"), "2026-10-25T08:00:00Z", "2026-10-26T08:00:00Z"),
                // A week across the switch: 167 h and 169 h.
                (&week_spring, "2026-03-29T12:00:00Z", Some("a"), "2026-03-23T08:00:00Z", "2026-03-30T07:00:00Z"),
                (&week_autumn, "2026-10-26T07:30:00Z", Some("a"), "2026-10-19T07:00:00Z", "2026-10-26T08:00:00Z"),
                // 20:00 to 08:00 local is 11 h that night.
                (&twelve, "2026-03-29T03:00:00Z", Some("night"), "2026-03-28T19:00:00Z", "2026-03-29T06:00:00Z"),
                // Hourly: the skipped hour 02:00-03:00 is nobody's shift, so c's turn vanishes ...
                (&hourly, "2026-03-29T00:59:59Z", Some("b"), "2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z"),
                (&hourly, "2026-03-29T01:00:00Z", Some("d"), "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"),
                // ... and the repeated hour 02:00-03:00 is one shift of two hours, both passes.
                (&hourly_fold, "2026-10-25T00:30:00Z", Some("c"), "2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z"),
                (&hourly_fold, "2026-10-25T01:30:00Z", Some("c"), "2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z"),
                (&hourly_fold, "2026-10-25T02:00:00Z", Some("d"), "2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z"),
                // A handoff at 02:30, which 2026-03-29 skips, happens as the clocks jump.
                (&in_gap, "2026-03-29T00:59:59Z", Some("b"), "2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z"),
                (&in_gap, "2026-03-29T01:00:00Z", Some("c"), "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"),
            ],
        );
    }

    #[test]
    fn new_york_hands_over_at_local_time_across_both_switches() {
        // 2026-03-08 02:00 EST becomes 03:00 EDT; 2026-11-01 02:00 EDT becomes 01:00 EST.
        let spring = rotation(&["a", "b", "c"], "1d", "09:00", "2026-03-06");
        let autumn = rotation(&["a", "b", "c"], "1d", "09:00", "2026-10-30");
        let week = rotation(&["a", "b"], "1w", "fri 17:00", "2026-10-30");
        let in_gap = rotation(&["a", "b"], "1d", "02:30", "2026-03-07");
        let in_fold = rotation(&["a", "b"], "1d", "01:30", "2026-10-31");
        check(
            "America/New_York",
            &[
                (&spring, "2026-03-08T12:59:59Z", Some("b"), "2026-03-07T14:00:00Z", "2026-03-08T13:00:00Z"),
                (&spring, "2026-03-08T13:00:00Z", Some("c"), "2026-03-08T13:00:00Z", "2026-03-09T13:00:00Z"),
                (&autumn, "2026-11-01T12:00:00Z", Some("b"), "2026-10-31T13:00:00Z", "2026-11-01T14:00:00Z"),
                (&autumn, "2026-11-01T14:00:00Z", Some("c"), "2026-11-01T14:00:00Z", "2026-11-02T14:00:00Z"),
                (&week, "2026-11-03T00:00:00Z", Some("a"), "2026-10-30T21:00:00Z", "2026-11-06T22:00:00Z"),
                (&in_gap, "2026-03-08T06:59:59Z", Some("a"), "2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z"),
                // 01:30 happens twice on 2026-11-01: the handoff is the first.
                (&in_fold, "2026-11-01T05:30:00Z", Some("b"), "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"),
                (&in_fold, "2026-11-01T06:30:00Z", Some("b"), "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"),
            ],
        );
    }

    #[test]
    fn leap_day() {
        let daily = rotation(&["a", "b", "c"], "1d", "09:00", "2028-02-28");
        let weekly = rotation(&["a", "b"], "1w", "tue 09:00", "2028-02-29");
        let yearly = rotation(&["a", "b"], "52w", "09:00", "2028-02-29");
        check(
            "Europe/Berlin",
            &[
                (&daily, "2028-02-29T12:00:00Z", Some("b"), "2028-02-29T08:00:00Z", "2028-03-01T08:00:00Z"),
                (&daily, "2028-03-01T12:00:00Z", Some("c"), "2028-03-01T08:00:00Z", "2028-03-02T08:00:00Z"),
                (&weekly, "2028-03-06T12:00:00Z", Some("a"), "2028-02-29T08:00:00Z", "2028-03-07T08:00:00Z"),
                (&yearly, "2029-02-27T12:00:00Z", Some("b"), "2029-02-27T08:00:00Z", "2030-02-26T08:00:00Z"),
            ],
        );
    }
}
