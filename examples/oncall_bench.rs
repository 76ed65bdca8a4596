//! On-call schedules at scale: what answering "who is on call" and
//! rendering calendar feeds costs, for 1,000 schedules of the shapes rule
//! files have.
//!
//! Builds 1,000 schedules from YAML (weekly rotations of 3 to 8 people
//! handing over on Mondays at 09:00, daily and 12-hour rotations, in six
//! time zones; a business-hours layer on most, a weekend-nights layer on
//! some; overrides on every third), then times, after a warm-up:
//!
//! - `on_call` for one schedule at many random instants of 2026;
//! - `on_call` and `next_on_call` for every schedule at one instant;
//! - `shifts` of 2026 for every schedule;
//! - `ical::render` of 2026 for one schedule and for every schedule, and of
//!   a year of hourly shifts (8,760 events).
//!
//! Prints a Markdown table; nothing is asserted.
//!
//! ```text
//! cargo run --release --example oncall_bench
//! ```
use std::hint::black_box;
use std::time::{Duration, Instant};

use alertgate::oncall::ical::{self, Feed, FeedShift};
use alertgate::oncall::{Override, RawSchedule, Schedule, next_on_call, on_call, shifts};
use jiff::{SignedDuration, Timestamp};

const SCHEDULES: usize = 1000;
/// Random instants for the single-schedule lookup.
const LOOKUPS: usize = 200_000;
/// Repetitions of each whole-fleet measurement; the median is printed.
const ROUNDS: usize = 7;

const ZONES: [&str; 6] =
    ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC", "Europe/London", "Australia/Sydney"];

/// splitmix64: reproducible figures without a dependency for randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn people(team: usize, n: u64, tag: &str) -> String {
    (0..n).map(|k| format!("{tag}{team}-{k}")).collect::<Vec<_>>().join(", ")
}

/// Schedule `i`: a base rotation by `i % 3` (weekly, daily, 12-hour), a
/// business-hours layer on three in four, weekend nights on one in five.
fn schedule_yaml(i: usize, rng: &mut Rng) -> String {
    let zone = ZONES[i % ZONES.len()];
    let team = people(i, 3 + rng.below(6), "p");
    let start = format!("2025-{:02}-{:02}", 1 + rng.below(12), 1 + rng.below(28));
    let base = match i % 3 {
        0 => format!("{{people: [{team}], shift: 1w, handoff: \"mon 09:00\", start: {start}}}"),
        1 => format!("{{people: [{team}], shift: 1d, handoff: \"09:00\", start: {start}}}"),
        _ => format!("{{people: [{team}], shift: 12h, handoff: \"08:00\", start: {start}}}"),
    };
    let mut yaml = format!("name: team-{i}\ntimezone: {zone}\nlayers:\n  - name: base\n    rotation: {base}\n");
    if i.is_multiple_of(5) {
        let nights = people(i, 2, "n");
        yaml += &format!(
            "  - name: weekend-nights\n    rotation: {{people: [{nights}], shift: 1w, handoff: \"fri 18:00\"}}\n    restrict: {{sat-sun: \"00:00-08:00\"}}\n"
        );
    }
    if i % 4 != 3 {
        let office = people(i, 1 + rng.below(3), "o");
        yaml += &format!(
            "  - name: business-hours\n    rotation: {{people: [{office}], shift: 1d, handoff: \"09:00\"}}\n    restrict: {{mon-fri: \"09:00-17:00\"}}\n"
        );
    }
    yaml
}

/// A dozen swaps and covers over the year, of 2 to 48 hours.
fn overrides(i: usize, year: Timestamp, rng: &mut Rng) -> Vec<Override> {
    if !i.is_multiple_of(3) {
        return Vec::new();
    }
    (0..12)
        .map(|k| {
            let start = year + SignedDuration::from_hours(rng.below(365 * 24) as i64);
            let end = start + SignedDuration::from_hours(2 + rng.below(47) as i64);
            Override { person: format!("cover{i}-{k}"), start, end }
        })
        .collect()
}

fn compile(yaml: &str) -> Schedule {
    let raw: RawSchedule = alertgate::yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e:?}\n{yaml}"));
    Schedule::compile(raw).unwrap_or_else(|e| panic!("{e:?}\n{yaml}"))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The median of `ROUNDS` timed runs of `f`, after one untimed run.
fn timed<T>(mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut last = f();
    let mut runs = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        last = black_box(f());
        runs.push(t.elapsed());
    }
    (median(runs), last)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn feed_shifts<'a>(schedule: &'a Schedule, shifts: &'a [alertgate::oncall::Shift]) -> Vec<FeedShift<'a>> {
    shifts
        .iter()
        .map(|s| FeedShift { schedule: &schedule.name, person: &s.person, start: s.start, end: s.end })
        .collect()
}

fn main() {
    let year: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let year_end: Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
    let now: Timestamp = "2026-06-15T10:30:00Z".parse().unwrap();
    let mut rng = Rng(0x0a1e_27a7_e0a1_e27a);

    let t = Instant::now();
    let fleet: Vec<(Schedule, Vec<Override>)> = (0..SCHEDULES)
        .map(|i| {
            let yaml = schedule_yaml(i, &mut rng);
            (compile(&yaml), overrides(i, year, &mut rng))
        })
        .collect();
    let built = t.elapsed();
    let layers: usize = fleet.iter().map(|(s, _)| s.layers.len()).sum();
    let covers: usize = fleet.iter().map(|(_, o)| o.len()).sum();

    // (a) One schedule with all three layers and overrides: the costliest
    // shape. Each call is timed on its own, the timer's cost included.
    let (one, one_overrides) = &fleet[0];
    let span = year_end.as_second() - year.as_second();
    let instants: Vec<Timestamp> = (0..LOOKUPS)
        .map(|_| Timestamp::from_second(year.as_second() + rng.below(span as u64) as i64).unwrap())
        .collect();
    for at in &instants[..LOOKUPS / 10] {
        black_box(on_call(one, one_overrides, *at));
    }
    let mut lookups: Vec<Duration> = instants
        .iter()
        .map(|at| {
            let t = Instant::now();
            black_box(on_call(one, one_overrides, black_box(*at)));
            t.elapsed()
        })
        .collect();
    lookups.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let (p50, p99) = (us(lookups[LOOKUPS / 2]), us(lookups[LOOKUPS * 99 / 100]));

    // (b) Everyone's now and next, as a status page or an escalation round asks.
    let (now_and_next, answered) = timed(|| {
        fleet
            .iter()
            .filter(|(s, o)| {
                black_box(next_on_call(s, o, now));
                on_call(s, o, now).is_some()
            })
            .count()
    });

    // (c) A year of final shifts for every schedule.
    let (year_of_shifts, all_shifts) =
        timed(|| fleet.iter().map(|(s, o)| shifts(s, o, year, year_end)).collect::<Vec<_>>());
    let shift_count: usize = all_shifts.iter().map(Vec::len).sum();

    // (d) Feeds of the year: from the schedule (shifts, then render), and
    // the render alone, for one schedule and for every schedule.
    let feed_of = |s: &Schedule, computed: &[alertgate::oncall::Shift]| {
        let name = format!("On call: {}", s.name);
        ical::render(&Feed { name: &name, description: None }, &feed_shifts(s, computed), now)
    };
    let (one_feed, one_ics) = timed(|| feed_of(one, &shifts(one, one_overrides, year, year_end)));
    let (one_render, _) = timed(|| feed_of(one, &all_shifts[0]));
    let (fleet_feeds, fleet_bytes) =
        timed(|| fleet.iter().map(|(s, o)| feed_of(s, &shifts(s, o, year, year_end)).len()).sum::<usize>());
    let (fleet_render, _) =
        timed(|| fleet.iter().zip(&all_shifts).map(|((s, _), computed)| feed_of(s, computed).len()).sum::<usize>());

    // The renderer's own pace: a year of hourly handoffs between two people.
    let hourly: Vec<FeedShift<'_>> = (0..365 * 24_i64)
        .map(|h| FeedShift {
            schedule: "payments-primary",
            person: if h % 2 == 0 { "alice" } else { "bob" },
            start: year + SignedDuration::from_hours(h),
            end: year + SignedDuration::from_hours(h + 1),
        })
        .collect();
    let feed = Feed { name: "On call: payments-primary", description: Some("Primary pager of payments") };
    let (hourly_render, hourly_ics) = timed(|| ical::render(&feed, &hourly, now));

    println!(
        "{SCHEDULES} schedules ({layers} layers, {covers} overrides) built from YAML in {}; \
         median of {ROUNDS} runs after a warm-up unless noted\n",
        ms(built)
    );
    println!("| | |");
    println!("|---|---|");
    println!(
        "| who is on call, one schedule ({} layers, {} overrides), {LOOKUPS} random instants of 2026 (`on_call`) | median {p50:.2} µs, p99 {p99:.2} µs |",
        one.layers.len(),
        one_overrides.len()
    );
    println!(
        "| on call now and next, all {SCHEDULES} schedules (`on_call` + `next_on_call`) | {} ({answered} with someone) |",
        ms(now_and_next)
    );
    println!(
        "| final shifts of 2026, all {SCHEDULES} schedules (`shifts`) | {}, {shift_count} shifts |",
        ms(year_of_shifts)
    );
    println!(
        "| iCal feed of 2026, one schedule ({} events; `shifts` + `ical::render`) | {} ({} rendering), {} bytes |",
        all_shifts[0].len(),
        ms(one_feed),
        ms(one_render),
        one_ics.len()
    );
    println!(
        "| iCal feeds of 2026, all {SCHEDULES} schedules (`shifts` + `ical::render`) | {} ({} rendering), {:.1} MB |",
        ms(fleet_feeds),
        ms(fleet_render),
        fleet_bytes as f64 / 1e6
    );
    println!(
        "| iCal feed of a year of hourly shifts ({} events) | {}, {} bytes |",
        hourly.len(),
        ms(hourly_render),
        hourly_ics.len()
    );
}
