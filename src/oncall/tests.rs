//! Who is on call: layers, restrictions, overrides, merging, who next, and
//! the time zone's switches, as tables of instants. Instants are UTC and
//! in 2026 unless written in full: `11-02 10:00` is 2026-11-02T10:00:00Z.
use super::*;

fn t(s: &str) -> Timestamp {
    if s.contains('T') { s.parse().unwrap() } else { format!("2026-{}:00Z", s.replace(' ', "T")).parse().unwrap() }
}

fn short(at: Timestamp) -> String {
    let full = at.strftime("%Y-%m-%d %H:%M").to_string();
    full.strip_prefix("2026-").map_or_else(|| at.to_string(), str::to_owned)
}

fn schedule(yaml: &str) -> Schedule {
    Schedule::compile(crate::yaml::from_str::<RawSchedule>(yaml).unwrap()).unwrap()
}

fn cover(person: &str, start: &str, end: &str) -> Override {
    Override { person: person.into(), start: t(start), end: t(end) }
}

/// `alice L0 11-06 16:00..11-09 08:00`: person, source (layer or override
/// index), since and until (empty when none is in sight); `-` for nobody.
fn said(on: Option<OnCall>) -> String {
    let Some(on) = on else { return "-".into() };
    let source = match on.source {
        Source::Layer(i) => format!("L{i}"),
        Source::Override(i) => format!("O{i}"),
    };
    format!("{} {source} {}..{}", on.person, short(on.since), on.until.map(short).unwrap_or_default())
}

/// Rows of (instant, who is on call then).
fn check(s: &Schedule, overrides: &[Override], rows: &[(&str, &str)]) {
    for (at, want) in rows {
        assert_eq!(said(on_call(s, overrides, t(at))), *want, "{} at {at} with {overrides:?}", s.name);
    }
}

/// The issue's example: a weekly rotation from Monday 2026-11-02 09:00
/// Berlin time, and Dave on business hours above it.
fn payments() -> Schedule {
    schedule(
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
}

#[test]
fn layers_restrictions_and_a_future_start() {
    check(
        &payments(),
        &[],
        &[
            // Before the weekly rotation starts, and outside Dave's hours: nobody.
            ("11-01 12:00", "-"),
            ("11-02 07:59", "-"),
            // Dave's hours (09:00-17:00 CET) win over the weekly layer ...
            ("11-02 10:00", "dave L1 11-02 08:00..11-02 16:00"),
            // ... which has the rest of the day.
            ("11-02 20:00", "alice L0 11-02 16:00..11-03 08:00"),
            // The weekend is Alice's from Friday 17:00 to Monday 09:00.
            ("11-07 12:00", "alice L0 11-06 16:00..11-09 08:00"),
            ("11-09 07:00", "alice L0 11-06 16:00..11-09 08:00"),
            ("11-09 16:00", "bob L0 11-09 16:00..11-10 08:00"),
            ("11-21 23:00", "carol L0 11-20 16:00..11-23 08:00"),
            ("11-28 00:00", "alice L0 11-27 16:00..11-30 08:00"),
        ],
    );
}

#[test]
fn overrides_win_over_every_layer() {
    let s = payments();
    // Part of Alice's weekend.
    let saturday = [cover("carol", "11-07 00:00", "11-08 00:00")];
    check(
        &s,
        &saturday,
        &[
            ("11-06 20:00", "alice L0 11-06 16:00..11-07 00:00"),
            ("11-07 00:00", "carol O0 11-07 00:00..11-08 00:00"),
            ("11-07 23:59", "carol O0 11-07 00:00..11-08 00:00"),
            ("11-08 00:00", "alice L0 11-08 00:00..11-09 08:00"),
        ],
    );
    // Bob from 07:00 to 13:00 on Monday: across the weekly handoff and over Dave's hours.
    let across = [cover("bob", "11-09 06:00", "11-09 12:00")];
    check(
        &s,
        &across,
        &[
            ("11-09 05:00", "alice L0 11-06 16:00..11-09 06:00"),
            ("11-09 08:30", "bob O0 11-09 06:00..11-09 12:00"),
            ("11-09 12:00", "dave L1 11-09 12:00..11-09 16:00"),
        ],
    );
    // Where overrides overlap, the later one wins.
    let both = [cover("bob", "11-09 06:00", "11-09 12:00"), cover("erin", "11-09 07:00", "11-09 08:00")];
    check(
        &s,
        &both,
        &[("11-09 07:00", "erin O1 11-09 07:00..11-09 08:00"), ("11-09 08:00", "bob O0 11-09 08:00..11-09 12:00")],
    );
    // Before the rotation starts an override is all there is; an inverted one covers nothing.
    let early = [cover("erin", "10-31 00:00", "11-01 00:00"), cover("erin", "11-07 13:00", "11-07 11:00")];
    check(
        &s,
        &early,
        &[("10-31 12:00", "erin O0 10-31 00:00..11-01 00:00"), ("11-07 12:00", "alice L0 11-06 16:00..11-09 08:00")],
    );
}

#[test]
fn one_person_rotations_and_merged_handoffs() {
    let solo =
        schedule("name: solo\nlayers:\n  - {name: l, rotation: {people: [sam], shift: 1d, start: 2026-01-01}}\n");
    // A handoff from Sam to Sam is none: on call since the start, no end in sight.
    check(&solo, &[], &[("2031-05-05T05:05:05Z", "sam L0 01-01 09:00.."), ("01-01 08:00", "-")]);
    assert_eq!(next_on_call(&solo, &[], t("2027-01-01T00:00:00Z")), None);
    // An override ahead ends it, one behind starts it, and one by Sam changes nothing.
    let kim = [cover("kim", "03-02 00:00", "03-03 00:00")];
    check(&solo, &kim, &[("03-01 00:00", "sam L0 01-01 09:00..03-02 00:00"), ("03-04 00:00", "sam L0 03-03 00:00..")]);
    check(&solo, &[cover("sam", "03-02 00:00", "03-05 00:00")], &[("03-04 00:00", "sam O0 01-01 09:00..")]);

    let twice = schedule(
        "name: twice\nlayers:\n  - {name: l, rotation: {people: [ann, ann, ben], shift: 1d, handoff: '00:00', start: 2026-06-01}}\n",
    );
    check(
        &twice,
        &[],
        &[("06-02 12:00", "ann L0 06-01 00:00..06-03 00:00"), ("06-06 12:00", "ben L0 06-06 00:00..06-07 00:00")],
    );
    let got: Vec<String> = shifts(&twice, &[], t("06-01 00:00"), t("06-08 00:00"))
        .iter()
        .map(|s| format!("{} {}..{}", s.person, short(s.start), short(s.end)))
        .collect();
    assert_eq!(
        got,
        [
            "ann 06-01 00:00..06-03 00:00",
            "ben 06-03 00:00..06-04 00:00",
            "ann 06-04 00:00..06-06 00:00",
            "ben 06-06 00:00..06-07 00:00",
            "ann 06-07 00:00..06-08 00:00",
        ]
    );
}

fn listed(shifts: &[Shift]) -> Vec<String> {
    shifts.iter().map(|s| format!("{} {}..{} {:?}", s.person, short(s.start), short(s.end), s.sources)).collect()
}

#[test]
fn final_shifts_of_a_window() {
    let s = payments();
    let o = [cover("carol", "11-03 12:00", "11-03 20:00")];
    assert_eq!(
        listed(&shifts(&s, &o, t("11-02 00:00"), t("11-05 00:00"))),
        [
            "dave 11-02 08:00..11-02 16:00 [Layer(1)]",
            "alice 11-02 16:00..11-03 08:00 [Layer(0)]",
            "dave 11-03 08:00..11-03 12:00 [Layer(1)]",
            "carol 11-03 12:00..11-03 20:00 [Override(0)]",
            "alice 11-03 20:00..11-04 08:00 [Layer(0)]",
            "dave 11-04 08:00..11-04 16:00 [Layer(1)]",
            // Cut at the window's end ...
            "alice 11-04 16:00..11-05 00:00 [Layer(0)]",
        ]
    );
    // ... and at its start; an empty or inverted window has none.
    assert_eq!(
        listed(&shifts(&s, &[], t("11-02 12:00"), t("11-02 13:00"))),
        ["dave 11-02 12:00..11-02 13:00 [Layer(1)]"]
    );
    assert!(shifts(&s, &[], t("11-02 12:00"), t("11-02 12:00")).is_empty());
    assert!(shifts(&s, &[], t("11-03 12:00"), t("11-02 12:00")).is_empty());
    // Before the weekly rotation starts only Dave's hours have someone (his
    // rotation, without a start, has always been running).
    assert!(shifts(&s, &[], t("10-31 00:00"), t("11-02 08:00")).is_empty());
    let october = shifts(&s, &[], t("10-01 00:00"), t("11-01 00:00"));
    assert_eq!(october.len(), 22, "one each weekday");
    assert!(october.iter().all(|s| s.person == "dave"));

    // An override by the person whose shift follows merges into it.
    let weekly = schedule(
        "name: s\nlayers:\n  - {name: l, rotation: {people: [a, b], shift: 1w, handoff: 'mon 09:00', start: 2026-06-01}}\n",
    );
    let early = [cover("b", "06-08 08:00", "06-08 09:00")];
    assert_eq!(
        listed(&shifts(&weekly, &early, t("06-01 00:00"), t("06-20 00:00"))),
        [
            "a 06-01 09:00..06-08 08:00 [Layer(0)]",
            "b 06-08 08:00..06-15 09:00 [Override(0), Layer(0)]",
            "a 06-15 09:00..06-20 00:00 [Layer(0)]",
        ]
    );
}

#[test]
fn who_is_next() {
    let s = payments();
    let next = |at: &str, overrides: &[Override]| said(next_on_call(&s, overrides, t(at)));
    // Nobody on call yet: the first shift.
    assert_eq!(next("11-01 00:00", &[]), "dave L1 11-02 08:00..11-02 16:00");
    assert_eq!(next("11-02 10:00", &[]), "alice L0 11-02 16:00..11-03 08:00");
    assert_eq!(next("11-07 10:00", &[]), "dave L1 11-09 08:00..11-09 16:00");
    assert_eq!(
        next("11-07 10:00", &[cover("carol", "11-07 12:00", "11-07 13:00")]),
        "carol O0 11-07 12:00..11-07 13:00"
    );
    // After a gap with nobody, the same person again.
    let nights = schedule(
        "name: n\nlayers:\n  - {name: l, rotation: {people: [nia], shift: 1d}, restrict: {daily: '22:00-24:00'}}\n",
    );
    assert_eq!(said(next_on_call(&nights, &[], t("06-01 23:00"))), "nia L0 06-02 22:00..06-03 00:00");
}

#[test]
fn restrictions_and_rotations_across_the_switches() {
    let berlin = schedule(
        r#"
name: berlin
timezone: Europe/Berlin
layers:
  - name: weekly
    rotation: {people: [alice, bob], shift: 1w, handoff: "mon 09:00", start: 2026-03-23}
  - name: office
    rotation: {people: [dave], shift: 1d}
    restrict: {mon-fri: "09:00-17:00"}
"#,
    );
    // Friday 17:00 CET to Monday 09:00 CEST: 62 hours, not 64; Monday's
    // office hours are 07:00-15:00 UTC.
    check(
        &berlin,
        &[],
        &[
            ("03-29 12:00", "alice L0 03-27 16:00..03-30 07:00"),
            ("03-30 07:00", "dave L1 03-30 07:00..03-30 15:00"),
            ("03-30 15:00", "bob L0 03-30 15:00..03-31 07:00"),
        ],
    );
    let new_york = schedule(
        r#"
name: nyc
timezone: America/New_York
layers:
  - name: daily
    rotation: {people: [ana, ben], shift: 1d, handoff: "09:00", start: 2026-10-30}
  - name: evenings
    rotation: {people: [eve], shift: 1d}
    restrict: {daily: "18:00-22:00"}
"#,
    );
    check(
        &new_york,
        &[],
        &[
            // 18:00-22:00 local on both sides of 2026-11-01 ...
            ("10-31 23:00", "eve L1 10-31 22:00..11-01 02:00"),
            ("11-01 23:30", "eve L1 11-01 23:00..11-02 03:00"),
            // ... and the daily handoff at 09:00 EDT, then 09:00 EST.
            ("10-31 20:00", "ben L0 10-31 13:00..10-31 22:00"),
            ("11-01 12:00", "ben L0 11-01 02:00..11-01 14:00"),
            ("11-01 14:00", "ana L0 11-01 14:00..11-01 23:00"),
        ],
    );
    let day = shifts(&new_york, &[], t("10-31 13:00"), t("11-01 14:00"));
    let hours: Vec<(&str, i64)> =
        day.iter().map(|s| (s.person.as_str(), s.end.duration_since(s.start).as_hours())).collect();
    assert_eq!(
        hours,
        [("ben", 9), ("eve", 4), ("ben", 12)],
        "Ben's shift across the switch is 25 hours, less Eve's evening"
    );
}
