//! Business-hours calendars for SLA clocks.
//!
//! An SLA such as "respond within 4 business hours" only runs while someone is
//! expected to be at work, so clocks measure elapsed time through a calendar:
//! weekly civil working hours in a time zone, minus holidays. The built-in
//! `24x7` calendar makes every instant working time.
//!
//! Working hours are civil times, so each day's intervals are converted to
//! instants with that day's UTC offset; a DST day is then 23 or 25 hours long,
//! as the people on shift experience it. Everything here is pure: callers pass
//! the instants, nothing reads the wall clock.
use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::Deserialize;

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const MINUTES_PER_DAY: u16 = 24 * 60;

/// A calendar as written in a rule file; unknown keys are errors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCalendar {
    /// An IANA time zone name; `UTC` when absent.
    pub timezone: Option<String>,
    /// Day keys (`mon`, `mon-fri`, `mon,wed`, `daily`) to working hours.
    #[serde(default)]
    pub hours: BTreeMap<String, HoursSpec>,
    /// Civil dates (`YYYY-MM-DD`) in the calendar's time zone without working time.
    #[serde(default)]
    pub holidays: Vec<String>,
}

/// `"09:00-17:00"`, `"09:00-12:00, 13:00-17:00"`, or a list of such strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum HoursSpec {
    One(String),
    Many(Vec<String>),
}

impl HoursSpec {
    fn items(&self) -> Vec<&str> {
        let parts: &[String] = match self {
            HoursSpec::One(s) => std::slice::from_ref(s),
            HoursSpec::Many(list) => list,
        };
        parts.iter().flat_map(|p| p.split(',')).map(str::trim).collect()
    }
}

/// A compiled calendar: checked once at rule load, so the per-clock
/// arithmetic below cannot fail.
#[derive(Debug, Clone, PartialEq)]
pub struct Calendar {
    name: String,
    schedule: Schedule,
}

#[derive(Debug, Clone, PartialEq)]
enum Schedule {
    /// Kept apart so the common case is plain arithmetic, not a day walk.
    Always,
    Weekly(Box<Weekly>),
}

#[derive(Debug, Clone, PartialEq)]
struct Weekly {
    tz: TimeZone,
    /// Monday first; sorted, disjoint, non-adjacent `[start, end)` minutes of the civil day.
    days: [Vec<(u16, u16)>; 7],
    holidays: BTreeSet<Date>,
}

impl Calendar {
    pub const ALWAYS: &'static str = "24x7";

    /// The built-in calendar: every instant is working time.
    pub fn always() -> Calendar {
        Calendar { name: Calendar::ALWAYS.to_owned(), schedule: Schedule::Always }
    }

    /// Checks and compiles a rule file's calendar. Every problem is returned,
    /// each naming its key, so a rule author fixes them in one pass. Whether
    /// `name` clashes with [`Calendar::ALWAYS`] is the caller's concern.
    pub fn compile(name: &str, raw: &RawCalendar) -> Result<Calendar, Vec<String>> {
        let mut errors = Vec::new();
        let tz = match raw.timezone.as_deref() {
            // Needs no tzdb, so the default works even without one.
            None | Some("UTC") => Some(TimeZone::UTC),
            Some(tz) => TimeZone::get(tz).map_err(|_| errors.push(format!("timezone: unknown time zone {tz:?}"))).ok(),
        };

        let mut days: [Vec<(u16, u16)>; 7] = Default::default();
        let mut given = [false; 7];
        let errors_before_hours = errors.len();
        for (key, spec) in &raw.hours {
            let intervals = parse_intervals(spec).unwrap_or_else(|es| {
                errors.extend(es.into_iter().map(|e| format!("hours.{key}: {e}")));
                Vec::new()
            });
            let weekdays = parse_days(key).unwrap_or_else(|e| {
                errors.push(format!("hours.{key}: {e}"));
                Vec::new()
            });
            for day in weekdays {
                if given[day] {
                    let which = if key == DAY_NAMES[day] { String::new() } else { format!("{} ", DAY_NAMES[day]) };
                    errors.push(format!("hours.{key}: {which}given twice"));
                }
                given[day] = true;
                days[day] = intervals.clone();
            }
        }
        // After a bad key the week may only look empty; that message would be noise.
        if errors.len() == errors_before_hours && days.iter().all(Vec::is_empty) {
            errors.push("hours: no working time in the week".to_owned());
        }

        let mut holidays = BTreeSet::new();
        for (i, text) in raw.holidays.iter().enumerate() {
            match parse_date(text) {
                Some(date) => _ = holidays.insert(date),
                None => errors.push(format!("holidays[{i}]: invalid date {text:?}")),
            }
        }

        match tz {
            Some(tz) if errors.is_empty() => Ok(Calendar {
                name: name.to_owned(),
                schedule: Schedule::Weekly(Box::new(Weekly { tz, days, holidays })),
            }),
            _ => Err(errors),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Working milliseconds in `[from, to)`; 0 when `to <= from`.
    pub fn working_ms(&self, from: Timestamp, to: Timestamp) -> i64 {
        let (from_ms, to_ms) = (from.as_millisecond(), to.as_millisecond());
        if to_ms <= from_ms {
            return 0;
        }
        let Schedule::Weekly(week) = &self.schedule else { return to_ms - from_ms };
        let mut total = 0;
        let last = week.date_of(to).tomorrow().unwrap_or(Date::MAX);
        week.walk(week.walk_start(from), last, |start, end| {
            if start >= to_ms {
                return ControlFlow::Break(());
            }
            total += (end.min(to_ms) - start.max(from_ms)).max(0);
            ControlFlow::Continue(())
        });
        total
    }

    /// The earliest instant `t >= from` with `working_ms(from, t) >= ms`, so a
    /// deadline falls at the end of the last working interval it needs rather
    /// than at the start of the next one. `from` itself when `ms <= 0`;
    /// [`Timestamp::MAX`] when holidays keep the amount out of reach for 20
    /// years, which is "never" for an SLA and keeps the walk bounded.
    pub fn add_working(&self, from: Timestamp, ms: i64) -> Timestamp {
        if ms <= 0 {
            return from;
        }
        let from_ms = from.as_millisecond();
        let Schedule::Weekly(week) = &self.schedule else { return timestamp(from_ms.saturating_add(ms)) };
        let first = week.walk_start(from);
        let mut remaining = ms;
        let found = week.walk(first, first.saturating_add(20.years()), |start, end| {
            let start = start.max(from_ms);
            if end - start >= remaining {
                return ControlFlow::Break(start + remaining);
            }
            remaining -= (end - start).max(0);
            ControlFlow::Continue(())
        });
        found.map_or(Timestamp::MAX, timestamp)
    }

    /// The working intervals that overlap `[from, to)`, in order, each
    /// `[start, end)` whole (not clipped to the window); `[from, to)` itself
    /// for 24x7. On-call restrictions need where working time begins and
    /// ends, not only how much of it there is.
    pub fn working_intervals(&self, from: Timestamp, to: Timestamp) -> Vec<(Timestamp, Timestamp)> {
        let (from_ms, to_ms) = (from.as_millisecond(), to.as_millisecond());
        let Schedule::Weekly(week) = &self.schedule else {
            return if to > from { vec![(from, to)] } else { Vec::new() };
        };
        let mut out = Vec::new();
        let last = week.date_of(to).tomorrow().unwrap_or(Date::MAX);
        week.walk(week.walk_start(from), last, |start, end| {
            if start >= to_ms {
                return ControlFlow::Break(());
            }
            if end > from_ms {
                out.push((timestamp(start), timestamp(end)));
            }
            ControlFlow::Continue(())
        });
        out
    }

    /// Whether `at` lies in working time.
    pub fn is_working(&self, at: Timestamp) -> bool {
        let Schedule::Weekly(week) = &self.schedule else { return true };
        let at_ms = at.as_millisecond();
        let last = week.date_of(at).tomorrow().unwrap_or(Date::MAX);
        let found = week.walk(week.walk_start(at), last, |start, end| {
            if start > at_ms || at_ms < end { ControlFlow::Break(start <= at_ms) } else { ControlFlow::Continue(()) }
        });
        found.unwrap_or(false)
    }
}

impl Weekly {
    fn date_of(&self, at: Timestamp) -> Date {
        self.tz.to_datetime(at).date()
    }

    /// The day before `at`'s civil date: a fold can give an instant an
    /// earlier civil date than an instant before it, and starting a day early
    /// costs little.
    fn walk_start(&self, at: Timestamp) -> Date {
        let date = self.date_of(at);
        date.yesterday().unwrap_or(date)
    }

    /// The instant (in ms) of a civil minute, `24:00` being the next midnight
    /// (which DST may put other than 24 hours after this one). Times in a gap
    /// move forward, ambiguous ones take the earlier instant ("compatible").
    fn instant(&self, date: Date, minute: u16) -> i64 {
        let far = if date.year() > 0 { Timestamp::MAX } else { Timestamp::MIN }.as_millisecond();
        let (date, minute) = match minute {
            MINUTES_PER_DAY => match date.tomorrow() {
                Ok(next) => (next, 0),
                Err(_) => return far,
            },
            _ => (date, minute),
        };
        // Both casts are in range: minute < 1440 was checked at compile time.
        let at = date.at((minute / 60) as i8, (minute % 60) as i8, 0, 0);
        self.tz.to_ambiguous_timestamp(at).compatible().map_or(far, Timestamp::as_millisecond)
    }

    /// Feeds the working intervals of the days `first..=last`, as increasing,
    /// disjoint, non-empty `[start, end)` ms ranges, to `f` until it breaks.
    /// Converted intervals can overlap around DST changes (a start in a gap
    /// moves forward past a later civil time), so each start is clipped to
    /// the previous end and nothing is counted twice.
    fn walk<B>(&self, first: Date, last: Date, mut f: impl FnMut(i64, i64) -> ControlFlow<B>) -> Option<B> {
        let mut covered = i64::MIN;
        let mut date = first;
        while date <= last {
            if !self.holidays.contains(&date) {
                for &(from, to) in &self.days[date.weekday().to_monday_zero_offset() as usize] {
                    let start = self.instant(date, from).max(covered);
                    let end = self.instant(date, to).max(start);
                    covered = end;
                    if end > start
                        && let ControlFlow::Break(b) = f(start, end)
                    {
                        return Some(b);
                    }
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }
}

/// A timestamp from ms, saturating at jiff's range (whose ends are not whole
/// milliseconds, hence the fallback rather than a clamp).
fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 { Timestamp::MIN } else { Timestamp::MAX })
}

/// Day indices (Monday = 0) named by a key; a day named twice appears twice,
/// so the caller reports it.
fn parse_days(key: &str) -> Result<Vec<usize>, String> {
    let index = |name: &str| {
        DAY_NAMES.iter().position(|d| d.eq_ignore_ascii_case(name.trim())).ok_or_else(|| {
            format!("unknown day {:?} (use mon, tue, wed, thu, fri, sat, sun or a range like mon-fri)", name.trim())
        })
    };
    let mut days = Vec::new();
    for part in key.split(',').map(str::trim) {
        if part.eq_ignore_ascii_case("daily") || part.eq_ignore_ascii_case("all") {
            days.extend(0..7);
        } else if let Some((a, b)) = part.split_once('-') {
            let (a, b) = (index(a)?, index(b)?);
            // `fri-mon` wraps over the weekend.
            days.extend((0..=(b + 7 - a) % 7).map(|i| (a + i) % 7));
        } else {
            days.push(index(part)?);
        }
    }
    Ok(days)
}

/// Sorted, merged `[start, end)` minute intervals of one day's spec.
fn parse_intervals(spec: &HoursSpec) -> Result<Vec<(u16, u16)>, Vec<String>> {
    let mut errors = Vec::new();
    let mut parsed = Vec::new();
    for item in spec.items() {
        let Some((a, b)) = item.split_once('-') else {
            errors.push(format!("{item:?}: expected HH:MM-HH:MM"));
            continue;
        };
        match (parse_time(a), parse_time(b)) {
            (Some(start), Some(end)) if end > start => parsed.push((start, end, item)),
            (Some(_), Some(_)) => errors.push(format!("{item:?}: the end must be after the start")),
            (None, _) => errors.push(format!("{item:?}: invalid time {:?} (use HH:MM)", a.trim())),
            (_, None) => errors.push(format!("{item:?}: invalid time {:?} (use HH:MM)", b.trim())),
        }
    }
    parsed.sort_unstable();
    let mut merged: Vec<(u16, u16, &str)> = Vec::new();
    for (start, end, item) in parsed {
        match merged.last_mut() {
            Some(prev) if start < prev.1 => errors.push(format!("{:?} overlaps {item:?}", prev.2)),
            // Back to back (`09:00-12:00, 12:00-17:00`) is one stretch of work.
            Some(prev) if start == prev.1 => *prev = (prev.0, end, item),
            _ => merged.push((start, end, item)),
        }
    }
    if errors.is_empty() { Ok(merged.into_iter().map(|(start, end, _)| (start, end)).collect()) } else { Err(errors) }
}

/// Minutes since midnight of `HH:MM` (`H:MM` too), `24:00` included.
fn parse_time(text: &str) -> Option<u16> {
    let (h, m) = text.trim().split_once(':')?;
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !(1..=2).contains(&h.len()) || m.len() != 2 || !digits(h) || !digits(m) {
        return None;
    }
    let (h, m) = (h.parse::<u16>().ok()?, m.parse::<u16>().ok()?);
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

/// Strictly `YYYY-MM-DD`, refusing the other forms jiff's parser accepts.
fn parse_date(text: &str) -> Option<Date> {
    let b = text.as_bytes();
    let shape = b.len() == 10 && b[4] == b'-' && b[7] == b'-';
    if shape { text.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;

    use super::*;

    const H: i64 = 3_600_000;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn raw(tz: &str, hours: &[(&str, &str)], holidays: &[&str]) -> RawCalendar {
        RawCalendar {
            timezone: Some(tz.to_owned()),
            hours: hours.iter().map(|(k, v)| (k.to_string(), HoursSpec::One(v.to_string()))).collect(),
            holidays: holidays.iter().map(|d| d.to_string()).collect(),
        }
    }

    fn cal(tz: &str, hours: &[(&str, &str)], holidays: &[&str]) -> Calendar {
        Calendar::compile("test", &raw(tz, hours, holidays)).unwrap()
    }

    fn business_eu() -> Calendar {
        cal("Europe/Berlin", &[("mon-fri", "09:00-17:00")], &["2026-12-24", "2026-12-25", "2026-12-26"])
    }

    fn errors(raw: RawCalendar) -> Vec<String> {
        Calendar::compile("test", &raw).unwrap_err()
    }

    #[test]
    fn always_is_identity() {
        let c = Calendar::always();
        assert_eq!(c.name(), "24x7");
        let from = ts("2026-03-29T00:30:00+01:00");
        assert_eq!(c.working_ms(from, ts("2026-03-30T00:30:00+02:00")), 23 * H);
        assert_eq!(c.add_working(from, 23 * H), ts("2026-03-30T00:30:00+02:00"));
        assert!(c.is_working(from));
        assert_eq!(c.add_working(from, i64::MAX), Timestamp::MAX);
    }

    #[test]
    fn weekday_span_inside_hours() {
        let c = business_eu();
        assert_eq!(c.name(), "test");
        let mon = ts("2026-12-07T10:00:00+01:00");
        assert_eq!(c.working_ms(mon, ts("2026-12-07T12:30:00+01:00")), 2 * H + H / 2);
        assert_eq!(c.working_ms(ts("2026-12-07T08:00:00+01:00"), ts("2026-12-08T10:00:00+01:00")), 9 * H);
        assert_eq!(c.add_working(mon, 3 * H), ts("2026-12-07T13:00:00+01:00"));
        assert!(c.is_working(mon) && !c.is_working(ts("2026-12-07T17:00:00+01:00")));
    }

    #[test]
    fn full_day_ends_at_end_of_interval() {
        let c = business_eu();
        assert_eq!(c.add_working(ts("2026-12-07T09:00:00+01:00"), 8 * H), ts("2026-12-07T17:00:00+01:00"));
    }

    #[test]
    fn friday_afternoon_carries_over_the_weekend() {
        let c = business_eu();
        let fri = ts("2026-12-04T16:00:00+01:00");
        assert_eq!(c.add_working(fri, 2 * H), ts("2026-12-07T10:00:00+01:00"));
        assert_eq!(c.working_ms(fri, ts("2026-12-07T10:00:00+01:00")), 2 * H);
    }

    #[test]
    fn saturday_start_counts_from_monday() {
        let c = business_eu();
        let sat = ts("2026-12-05T11:00:00+01:00");
        assert!(!c.is_working(sat));
        assert_eq!(c.working_ms(sat, ts("2026-12-07T09:00:00+01:00")), 0);
        assert_eq!(c.add_working(sat, H), ts("2026-12-07T10:00:00+01:00"));
    }

    #[test]
    fn holidays_are_skipped() {
        let c = business_eu();
        assert!(!c.is_working(ts("2026-12-24T10:00:00+01:00")));
        let wed = ts("2026-12-23T16:00:00+01:00");
        assert_eq!(c.add_working(wed, 2 * H), ts("2026-12-28T10:00:00+01:00"));
        assert_eq!(c.working_ms(wed, ts("2026-12-28T10:00:00+01:00")), 2 * H);
    }

    #[test]
    fn dst_days_have_their_civil_length() {
        let c = cal("Europe/Berlin", &[("daily", "00:00-24:00")], &[]);
        let spring = (ts("2026-03-29T00:00:00+01:00"), ts("2026-03-30T00:00:00+02:00"));
        assert_eq!(c.working_ms(spring.0, spring.1), 23 * H);
        assert_eq!(c.add_working(spring.0, 23 * H), spring.1);
        assert_eq!(c.working_ms(ts("2026-10-25T00:00:00+02:00"), ts("2026-10-26T00:00:00+01:00")), 25 * H);
        assert_eq!(c.working_ms(ts("2026-03-28T00:00:00+01:00"), ts("2026-03-31T00:00:00+02:00")), 71 * H);

        let night = cal("Europe/Berlin", &[("daily", "01:00-04:00")], &[]);
        let day = |from: &str, to: &str| night.working_ms(ts(from), ts(to));
        assert_eq!(day("2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"), 2 * H);
        assert_eq!(day("2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00"), 4 * H);
        assert_eq!(day("2026-03-28T00:00:00+01:00", "2026-03-29T00:00:00+01:00"), 3 * H);
        assert_eq!(night.add_working(ts("2026-03-29T01:00:00+01:00"), 2 * H), ts("2026-03-29T04:00:00+02:00"));

        // A start inside the gap moves forward, as jiff's "compatible" does.
        let gap = cal("Europe/Berlin", &[("sun", "02:30-05:00")], &[]);
        assert_eq!(gap.working_ms(ts("2026-03-29T00:00:00+01:00"), ts("2026-03-30T00:00:00+02:00")), H + H / 2);
    }

    #[test]
    fn working_intervals_whole_and_in_order() {
        let c = cal("Europe/Berlin", &[("mon-fri", "09:00-12:00, 13:00-17:00")], &["2026-03-31"]);
        // Monday 2026-03-30 (after the switch to CEST) to Wednesday, the Tuesday a holiday.
        let got = c.working_intervals(ts("2026-03-30T10:00:00+02:00"), ts("2026-04-01T09:30:00+02:00"));
        let want = [
            ("2026-03-30T09:00:00+02:00", "2026-03-30T12:00:00+02:00"),
            ("2026-03-30T13:00:00+02:00", "2026-03-30T17:00:00+02:00"),
            ("2026-04-01T09:00:00+02:00", "2026-04-01T12:00:00+02:00"),
        ];
        assert_eq!(got, want.map(|(a, b)| (ts(a), ts(b))));
        assert!(c.working_intervals(ts("2026-03-28T00:00:00Z"), ts("2026-03-29T00:00:00Z")).is_empty());
        let (a, b) = (ts("2026-03-28T00:00:00Z"), ts("2026-03-29T00:00:00Z"));
        assert_eq!(Calendar::always().working_intervals(a, b), [(a, b)]);
        assert!(Calendar::always().working_intervals(b, a).is_empty());
    }

    #[test]
    fn split_day() {
        let c = cal("Europe/Berlin", &[("mon-fri", "09:00-12:00, 13:00-17:00")], &[]);
        let many = RawCalendar {
            hours: [("mon-fri".to_owned(), HoursSpec::Many(vec!["13:00-17:00".into(), "09:00-12:00".into()]))].into(),
            ..raw("Europe/Berlin", &[], &[])
        };
        assert_eq!(Calendar::compile("test", &many), Ok(c.clone()));
        assert_eq!(c.working_ms(ts("2026-12-07T00:00:00+01:00"), ts("2026-12-08T00:00:00+01:00")), 7 * H);
        assert_eq!(c.add_working(ts("2026-12-07T11:00:00+01:00"), 2 * H), ts("2026-12-07T14:00:00+01:00"));
        assert_eq!(c.add_working(ts("2026-12-07T11:00:00+01:00"), H), ts("2026-12-07T12:00:00+01:00"));
        assert!(!c.is_working(ts("2026-12-07T12:30:00+01:00")));
        // Back-to-back intervals are one stretch.
        let joined = cal("UTC", &[("mon", "09:00-12:00,12:00-17:00")], &[]);
        assert_eq!(joined, cal("UTC", &[("mon", "09:00-17:00")], &[]));
    }

    #[test]
    fn day_key_forms() {
        let wrap = cal("UTC", &[("fri-mon", "10:00-14:00")], &[]);
        // 2026-12-01 is a Tuesday.
        let week = (ts("2026-12-01T00:00:00Z"), ts("2026-12-08T00:00:00Z"));
        assert_eq!(wrap.working_ms(week.0, week.1), 4 * 4 * H);
        assert!(wrap.is_working(ts("2026-12-06T11:00:00Z")) && !wrap.is_working(ts("2026-12-02T11:00:00Z")));
        let list = cal("UTC", &[("mon,wed,fri", "10:00-14:00")], &[]);
        assert_eq!(list.working_ms(week.0, week.1), 3 * 4 * H);
        assert!(list.is_working(ts("2026-12-02T11:00:00Z")) && !list.is_working(ts("2026-12-01T11:00:00Z")));
        for key in ["daily", "all", "mon-sun"] {
            assert_eq!(cal("UTC", &[(key, "10:00-14:00")], &[]).working_ms(week.0, week.1), 7 * 4 * H, "{key}");
        }
        let default_tz = RawCalendar { timezone: None, ..raw("", &[("daily", "00:00-24:00")], &[]) };
        assert_eq!(Calendar::compile("test", &default_tz).unwrap().working_ms(week.0, week.1), 7 * 24 * H);
    }

    #[test]
    fn zero_and_negative_amounts() {
        for c in [business_eu(), Calendar::always()] {
            let sat = ts("2026-12-05T11:00:00.123+01:00");
            assert_eq!(c.add_working(sat, 0), sat);
            assert_eq!(c.add_working(sat, -5 * H), sat);
            assert_eq!(c.working_ms(sat, sat), 0);
            assert_eq!(c.working_ms(ts("2026-12-08T11:00:00+01:00"), ts("2026-12-07T11:00:00+01:00")), 0);
        }
    }

    #[test]
    fn unreachable_amount_saturates() {
        let days: Vec<String> = (0..366 * 25).map(|i| date(2026, 1, 1).saturating_add(i.days()).to_string()).collect();
        let c = cal("UTC", &[("daily", "09:00-17:00")], &days.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(c.add_working(ts("2026-01-01T00:00:00Z"), H), Timestamp::MAX);
    }

    #[test]
    fn round_trip_property() {
        let calendars = [
            business_eu(),
            cal("Europe/Berlin", &[("mon-fri", "09:00-12:00, 13:00-17:00")], &["2026-05-01"]),
            cal("America/New_York", &[("fri-mon", "01:00-04:00"), ("wed", "22:00-24:00")], &[]),
            cal("Europe/Berlin", &[("daily", "00:00-24:00")], &[]),
            Calendar::always(),
        ];
        // xorshift64: deterministic, no extra crates.
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move |bound: i64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound as u64) as i64
        };
        let base = ts("2026-01-01T00:00:00Z").as_millisecond();
        for c in &calendars {
            for _ in 0..400 {
                let from = timestamp(base + next(2 * 366 * 24 * H));
                let amount = if next(2) == 0 { 1 + next(2 * H) } else { 1 + next(5 * 24 * H) };
                let to = c.add_working(from, amount);
                assert_eq!(c.working_ms(from, to), amount, "{} from {from} + {amount}", c.name());
                let before = timestamp(to.as_millisecond() - 1);
                assert_eq!(c.working_ms(from, before), amount - 1, "{} from {from} + {amount}", c.name());
                assert!(c.is_working(before), "{} at {before}", c.name());
            }
        }
    }

    #[test]
    fn compile_errors() {
        let cases: &[(RawCalendar, &[&str])] = &[
            (
                raw("Europe/Berlin", &[("mon-fry", "09:00-17:00")], &[]),
                &["hours.mon-fry: unknown day \"fry\" (use mon, tue, wed, thu, fri, sat, sun or a range like mon-fri)"],
            ),
            (raw("Europe/Berln", &[("mon", "09:00-17:00")], &[]), &["timezone: unknown time zone \"Europe/Berln\""]),
            (
                raw("UTC", &[("mon", "09:00-17:00")], &["2026-12-24", "2026-13-01", "20261224"]),
                &["holidays[1]: invalid date \"2026-13-01\"", "holidays[2]: invalid date \"20261224\""],
            ),
            (
                raw("UTC", &[("mon", "17:00-09:00")], &[]),
                &["hours.mon: \"17:00-09:00\": the end must be after the start"],
            ),
            (
                raw("UTC", &[("mon", "09:00-12:00, 11:00-13:00")], &[]),
                &["hours.mon: \"09:00-12:00\" overlaps \"11:00-13:00\""],
            ),
            (
                raw("UTC", &[("tue", "9-17, 24:30-25:00")], &[]),
                &[
                    "hours.tue: \"9-17\": invalid time \"9\" (use HH:MM)",
                    "hours.tue: \"24:30-25:00\": invalid time \"24:30\" (use HH:MM)",
                ],
            ),
            (raw("UTC", &[("tue", "09:00")], &[]), &["hours.tue: \"09:00\": expected HH:MM-HH:MM"]),
            (raw("UTC", &[], &[]), &["hours: no working time in the week"]),
            (raw("UTC", &[("mon", "")], &[]), &["hours.mon: \"\": expected HH:MM-HH:MM"]),
            (raw("UTC", &[("daily", "09:00-17:00"), ("sat", "10:00-12:00")], &[]), &["hours.sat: given twice"]),
            (
                raw("UTC", &[("mon-fri", "09:00-17:00"), ("fri-sun", "10:00-12:00")], &[]),
                &["hours.mon-fri: fri given twice"],
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(errors(raw.clone()), *want);
        }
        // Every problem at once.
        assert_eq!(errors(raw("Nowhere/City", &[("xyz", "x")], &["y"])).len(), 4);
        let empty = RawCalendar { hours: [("sat".to_owned(), HoursSpec::Many(vec![]))].into(), ..raw("UTC", &[], &[]) };
        assert_eq!(errors(empty), ["hours: no working time in the week"]);
    }

    #[test]
    fn rule_file_shape() {
        let text = r#"
calendars:
  business-eu:
    timezone: Europe/Berlin
    hours: {mon-fri: "09:00-17:00"}
    holidays: [2026-12-24, 2026-12-25, 2026-12-26]
"#;
        let file: BTreeMap<String, BTreeMap<String, RawCalendar>> = crate::yaml::from_str(text).unwrap();
        let compiled = Calendar::compile("business-eu", &file["calendars"]["business-eu"]).unwrap();
        assert_eq!(compiled, Calendar { name: "business-eu".into(), ..business_eu() });
        let unknown = "timezone: UTC\nhour: {mon: \"09:00-17:00\"}\n";
        assert!(crate::yaml::from_str::<RawCalendar>(unknown).is_err());
    }
}
