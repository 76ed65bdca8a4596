//! On-call shifts as an iCalendar feed (RFC 5545) that calendar apps
//! (Google Calendar, Apple Calendar, Outlook, Thunderbird) subscribe to.
//!
//! Every instant is written in UTC (`20261102T080000Z`): a feed then needs
//! no VTIMEZONE, and each app shows the shift in its user's own zone, DST
//! included, without trusting the app's copy of our schedule's zone rules.
//! Subscribers re-fetch the whole feed and match events by UID, so a UID
//! must not change between renders while the shift stays the same (see
//! `uid`); pass whole shifts, not shifts cut at a moving window's start,
//! or the first event's UID changes with every fetch.
use jiff::Timestamp;
use jiff::tz::Offset;

/// One shift of the feed: `person` on call for `schedule` in `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedShift<'a> {
    pub schedule: &'a str,
    pub person: &'a str,
    pub start: Timestamp,
    pub end: Timestamp,
}

/// What a subscriber sees of the calendar itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feed<'a> {
    /// The calendar's name in the app (`X-WR-CALNAME`), e.g. "On call: payments-primary".
    pub name: &'a str,
    /// Shown by the apps that show one (`X-WR-CALDESC`).
    pub description: Option<&'a str>,
}

/// Octets of a content line, CRLF excluded, before it must be folded.
const MAX_LINE: usize = 75;

/// The calendar's properties up to its name. Apps poll subscribed feeds at
/// their own pace unless told; an hour keeps a swap made today visible today.
const HEAD: &str = "BEGIN:VCALENDAR\r\n\
VERSION:2.0\r\n\
PRODID:-//alertgate//on-call//EN\r\n\
CALSCALE:GREGORIAN\r\n\
METHOD:PUBLISH\r\n\
REFRESH-INTERVAL;VALUE=DURATION:PT1H\r\n\
X-PUBLISHED-TTL:PT1H\r\n";

/// Being on call is not being busy: the shift must not block meetings in
/// free/busy lookups. Outlook reads its own property rather than TRANSP.
const EVENT_TAIL: &str = "TRANSP:TRANSPARENT\r\nX-MICROSOFT-CDO-BUSYSTATUS:FREE\r\nEND:VEVENT\r\n";

/// The feed of `shifts`, stamped as created at `now`. Shifts that end at or
/// before their start are left out: RFC 5545 has no event ending before it
/// begins, and some apps refuse the whole feed for one.
pub fn render(feed: &Feed<'_>, shifts: &[FeedShift<'_>], now: Timestamp) -> String {
    let per_shift: usize = shifts.iter().map(|s| 2 * (s.schedule.len() + s.person.len())).sum();
    let capacity = HEAD.len() + 64 + 2 * feed.name.len() + 2 * feed.description.map_or(0, str::len);
    let mut w = Writer { out: String::with_capacity(capacity + per_shift + 240 * shifts.len()), width: 0 };
    let stamp = utc_basic(now);
    let mut last_end = (now, stamp);
    let stamp_line = ["DTSTAMP:", std::str::from_utf8(&stamp).expect("ASCII"), "\r\n"].concat();

    w.out.push_str(HEAD);
    w.property("X-WR-CALNAME:");
    w.text(feed.name);
    w.end();
    if let Some(description) = feed.description {
        w.property("X-WR-CALDESC:");
        w.text(description);
        w.end();
    }
    for shift in shifts.iter().filter(|s| s.start < s.end) {
        w.out.push_str("BEGIN:VEVENT\r\n");
        w.property("UID:");
        uid(&mut w, shift);
        w.end();
        w.out.push_str(&stamp_line);
        // A shift usually starts where the one before it ended.
        let start = if shift.start == last_end.0 { last_end.1 } else { utc_basic(shift.start) };
        last_end = (shift.end, utc_basic(shift.end));
        w.instant("DTSTART:", &start);
        w.instant("DTEND:", &last_end.1);
        w.property("SUMMARY:On call: ");
        w.text(shift.person);
        w.raw(" (");
        w.text(shift.schedule);
        w.raw(")");
        w.end();
        w.out.push_str(EVENT_TAIL);
    }
    w.out.push_str("END:VCALENDAR\r\n");
    w.out
}

/// `{schedule}+{person}+{start epoch seconds}@alertgate`: the same shift
/// keeps its UID in every render, and a swap (another person) or a moved
/// handoff (another start) is a new event, which apps then show without
/// needing a SEQUENCE. Names of the rule files use letters, digits, `-`,
/// `_` and `.`; any other byte, the separator `+` included, is written
/// `%XX`, so the UID is plain ASCII that needs no TEXT escaping and no two
/// shifts share one (`a-b`'s `c` and `a`'s `b-c` do not meet at a `-`).
fn uid(w: &mut Writer, shift: &FeedShift<'_>) {
    uid_part(w, shift.schedule);
    w.atom("+");
    uid_part(w, shift.person);
    w.atom("+");
    let mut digits = [0; 20];
    w.raw(decimal(&mut digits, shift.start.as_second()));
    w.raw("@alertgate");
}

fn uid_part(w: &mut Writer, name: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let safe = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    // Runs of safe bytes are ASCII, so they begin and end between characters.
    let mut run = 0;
    for (i, b) in name.bytes().enumerate() {
        if safe(b) {
            continue;
        }
        if run < i {
            w.raw(&name[run..i]);
        }
        let escaped = [b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]];
        w.atom(std::str::from_utf8(&escaped).expect("ASCII"));
        run = i + 1;
    }
    if run < name.len() {
        w.raw(&name[run..]);
    }
}

/// `n` in decimal, in `buf`.
fn decimal(buf: &mut [u8; 20], n: i64) -> &str {
    let mut i = buf.len();
    let mut m = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    std::str::from_utf8(&buf[i..]).expect("ASCII")
}

/// `YYYYMMDDTHHMMSSZ`, the UTC form of DATE-TIME; fractions of a second are
/// dropped (the form has none). Digits by hand: strftime parses its format
/// on every call, and a feed writes two of these per event.
fn utc_basic(at: Timestamp) -> [u8; 16] {
    let dt = Offset::UTC.to_datetime(at);
    let mut b = *b"00000000T000000Z";
    let mut put = |at: usize, width: usize, mut v: i32| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    // DATE-TIME has four digits of year; jiff's years before 0000 do not
    // come out of schedules, and are written as 0000.
    put(0, 4, i32::from(dt.year()).max(0));
    put(4, 2, dt.month().into());
    put(6, 2, dt.day().into());
    put(9, 2, dt.hour().into());
    put(11, 2, dt.minute().into());
    put(13, 2, dt.second().into());
    b
}

/// Content lines into one string, folded as they are written: a line that
/// would pass [`MAX_LINE`] octets goes on after CRLF and a space, never
/// inside a UTF-8 character.
struct Writer {
    out: String,
    /// Octets on the physical line being written.
    width: usize,
}

impl Writer {
    /// Starts a content line with its name, parameters and colon.
    fn property(&mut self, name: &str) {
        self.out.push_str(name);
        self.width = name.len();
    }

    fn end(&mut self) {
        self.out.push_str("\r\n");
        self.width = 0;
    }

    /// A whole line of a DATE-TIME property: always short, never folded.
    fn instant(&mut self, name: &str, at: &[u8; 16]) {
        self.out.push_str(name);
        self.out.push_str(std::str::from_utf8(at).expect("ASCII"));
        self.end();
    }

    fn fold(&mut self) {
        self.out.push_str("\r\n ");
        self.width = 1;
    }

    /// Appends `s` as it is, folding where the line is full.
    fn raw(&mut self, mut s: &str) {
        while self.width + s.len() > MAX_LINE {
            // At most three steps back: a UTF-8 character is at most four
            // octets, and a continuation line has room for 74.
            let mut cut = MAX_LINE - self.width;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            self.out.push_str(&s[..cut]);
            self.fold();
            s = &s[cut..];
        }
        self.out.push_str(s);
        self.width += s.len();
    }

    /// Appends `s` (a few octets) whole, folding before it if it does not
    /// fit: an escape like `\,` split across lines is valid, but parsers
    /// that unescape each physical line would read it wrong.
    fn atom(&mut self, s: &str) {
        if self.width + s.len() > MAX_LINE {
            self.fold();
        }
        self.out.push_str(s);
        self.width += s.len();
    }

    /// Appends a TEXT value, escaped: backslash, semicolon, comma and line
    /// breaks (CRLF, LF or CR, each written `\n`). Other control characters
    /// cannot appear in TEXT and are dropped.
    fn text(&mut self, s: &str) {
        let special = |b: u8| matches!(b, b'\\' | b';' | b',') || (b < 0x20 && b != b'\t') || b == 0x7f;
        let mut rest = s;
        while let Some(i) = rest.bytes().position(special) {
            self.raw(&rest[..i]);
            let bytes = rest.as_bytes();
            let mut skip = 1;
            match bytes[i] {
                b'\\' => self.atom("\\\\"),
                b';' => self.atom("\\;"),
                b',' => self.atom("\\,"),
                b'\n' => self.atom("\\n"),
                b'\r' => {
                    self.atom("\\n");
                    if bytes.get(i + 1) == Some(&b'\n') {
                        skip = 2;
                    }
                }
                _ => {}
            }
            rest = &rest[i + skip..];
        }
        self.raw(rest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oncall::{Override, RawSchedule, Schedule};

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn shift<'a>(schedule: &'a str, person: &'a str, start: &str, end: &str) -> FeedShift<'a> {
        FeedShift { schedule, person, start: t(start), end: t(end) }
    }

    /// The physical lines of a feed, each checked to end in CRLF.
    fn physical_lines(ics: &str) -> Vec<&str> {
        assert!(ics.ends_with("\r\n"), "a feed ends with CRLF");
        let lines: Vec<&str> = ics[..ics.len() - 2].split("\r\n").collect();
        assert!(lines.iter().all(|l| !l.contains('\n') && !l.contains('\r')), "bare CR or LF in {ics:?}");
        lines
    }

    /// The content lines: folds joined again, as RFC 5545 section 3.1 unfolds.
    fn unfolded(ics: &str) -> Vec<String> {
        let mut lines: Vec<String> = Vec::new();
        for l in physical_lines(ics) {
            match l.strip_prefix(' ') {
                Some(rest) => lines.last_mut().expect("a fold follows a line").push_str(rest),
                None => lines.push(l.to_owned()),
            }
        }
        lines
    }

    fn unescape(text: &str) -> String {
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n' | 'N') => out.push('\n'),
                Some(c @ ('\\' | ';' | ',')) => out.push(c),
                other => panic!("bad escape \\{other:?} in {text:?}"),
            }
        }
        out
    }

    fn property<'l>(lines: &'l [String], name: &str) -> Vec<&'l str> {
        lines.iter().filter_map(|l| l.strip_prefix(name)?.strip_prefix(':')).collect()
    }

    #[test]
    fn a_small_feed_exactly() {
        let feed = Feed { name: "On call: payments-primary", description: Some("Payments, primary; pager") };
        let shifts = [
            shift("payments-primary", "alice", "2026-11-02T08:00:00Z", "2026-11-09T08:00:00Z"),
            shift("payments-primary", "bob", "2026-11-09T08:00:00Z", "2026-11-16T08:00:00.5Z"),
        ];
        let want = "BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//alertgate//on-call//EN\r
CALSCALE:GREGORIAN\r
METHOD:PUBLISH\r
REFRESH-INTERVAL;VALUE=DURATION:PT1H\r
X-PUBLISHED-TTL:PT1H\r
X-WR-CALNAME:On call: payments-primary\r
X-WR-CALDESC:Payments\\, primary\\; pager\r
BEGIN:VEVENT\r
UID:payments-primary+alice+1793606400@alertgate\r
DTSTAMP:20261101T120000Z\r
DTSTART:20261102T080000Z\r
DTEND:20261109T080000Z\r
SUMMARY:On call: alice (payments-primary)\r
TRANSP:TRANSPARENT\r
X-MICROSOFT-CDO-BUSYSTATUS:FREE\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:payments-primary+bob+1794211200@alertgate\r
DTSTAMP:20261101T120000Z\r
DTSTART:20261109T080000Z\r
DTEND:20261116T080000Z\r
SUMMARY:On call: bob (payments-primary)\r
TRANSP:TRANSPARENT\r
X-MICROSOFT-CDO-BUSYSTATUS:FREE\r
END:VEVENT\r
END:VCALENDAR\r
";
        assert_eq!(render(&feed, &shifts, t("2026-11-01T12:00:00.123Z")), want);
        // No shifts, no description: a valid empty calendar.
        let empty = render(&Feed { name: "x", description: None }, &[], t("2026-11-01T12:00:00Z"));
        assert_eq!(
            empty,
            [&want[..want.find("X-WR-CALNAME").unwrap()], "X-WR-CALNAME:x\r\nEND:VCALENDAR\r\n"].concat()
        );
        // A shift that ends before it starts is no event.
        let inverted = [shift("s", "a", "2026-11-02T08:00:00Z", "2026-11-02T08:00:00Z")];
        assert_eq!(render(&Feed { name: "x", description: None }, &inverted, t("2026-11-01T12:00:00Z")), empty);
    }

    #[test]
    fn utc_form_agrees_with_strftime() {
        let edges = [
            "0000-01-01T00:00:00Z",
            "0000-02-29T12:00:00Z",
            "1969-12-31T23:59:59.999Z",
            "1970-01-01T00:00:00Z",
            "2000-02-29T23:59:59Z",
            "2024-12-31T23:59:59Z",
            "2100-02-28T00:00:00Z",
            "2100-03-01T00:00:00Z",
            "9999-12-30T22:00:00.999999999Z",
        ];
        let (min, max) = (t("0000-01-01T00:00:00Z").as_second(), Timestamp::MAX.as_second());
        // The edges (the last is jiff's latest instant), and every 11.6 days
        // or so across ten thousand years.
        let steps = (min..max).step_by(1_000_003).map(|s| Timestamp::from_second(s).unwrap());
        for at in edges.into_iter().map(t).chain(steps) {
            let want = Offset::UTC.to_datetime(at).strftime("%Y%m%dT%H%M%SZ").to_string();
            assert_eq!(std::str::from_utf8(&utc_basic(at)).unwrap(), want, "{at}");
        }
    }

    #[test]
    fn text_is_escaped() {
        let description = "a,b;c\\d\ne\r\nf\rg\u{7}h\ti";
        let ics = render(&Feed { name: "n", description: Some(description) }, &[], t("2026-11-01T12:00:00Z"));
        let lines = unfolded(&ics);
        assert_eq!(property(&lines, "X-WR-CALDESC"), ["a\\,b\\;c\\\\d\\ne\\nf\\ngh\ti"]);
        assert_eq!(unescape(property(&lines, "X-WR-CALDESC")[0]), "a,b;c\\d\ne\nf\ngh\ti");
    }

    #[test]
    fn long_lines_fold_at_75_octets_between_characters() {
        // Two- three- and four-octet characters, escapes, at every offset.
        let name = "Bereitschaft Zürich–Genève, 東京; \\ on call 🚨🚨 ".repeat(6);
        for pad in 0..8 {
            let name = format!("{}{name}", "x".repeat(pad));
            let description = name.replace(' ', "\n");
            let person = "ß".repeat(50 + pad);
            let feed = Feed { name: &name, description: Some(&description) };
            let shifts = [shift("sched", &person, "2026-11-02T08:00:00Z", "2026-11-09T08:00:00Z")];
            let ics = render(&feed, &shifts, t("2026-11-01T12:00:00Z"));
            let physical = physical_lines(&ics);
            assert!(physical.iter().all(|l| l.len() <= MAX_LINE), "{physical:#?}");
            assert!(physical.iter().filter(|l| l.starts_with(' ')).count() > 10, "it folded");
            // Each physical line is whole characters, and no escape is split.
            for l in &physical {
                let trailing = l.len() - l.trim_end_matches('\\').len();
                assert!(trailing % 2 == 0, "an escape split at the end of {l:?}");
            }
            let lines = unfolded(&ics);
            assert_eq!(unescape(property(&lines, "X-WR-CALNAME")[0]), name);
            assert_eq!(unescape(property(&lines, "X-WR-CALDESC")[0]), description);
            assert_eq!(unescape(property(&lines, "SUMMARY")[0]), format!("On call: {person} (sched)"));
        }
    }

    #[test]
    fn uids_are_stable_distinct_and_plain_ascii() {
        let shifts = [
            shift("team-a", "b", "2026-11-02T08:00:00Z", "2026-11-03T08:00:00Z"),
            shift("team", "a-b", "2026-11-02T08:00:00Z", "2026-11-03T08:00:00Z"),
            shift("team", "a+b", "2026-11-02T08:00:00Z", "2026-11-03T08:00:00Z"),
            shift("team", "a%2Bb", "2026-11-02T08:00:00Z", "2026-11-03T08:00:00Z"),
            shift("team-a", "b", "2026-11-03T08:00:00Z", "2026-11-04T08:00:00Z"),
            shift("team-a", "c", "2026-11-03T08:00:00Z", "2026-11-04T08:00:00Z"),
            shift("Zürich on call", "José; O'Neil, Jr. @home", "1969-12-31T23:59:50Z", "1970-01-01T00:00:00Z"),
        ];
        let uids = |now: &str| {
            let ics = render(&Feed { name: "n", description: None }, &shifts, t(now));
            property(&unfolded(&ics), "UID").into_iter().map(str::to_owned).collect::<Vec<_>>()
        };
        let first = uids("2026-11-01T12:00:00Z");
        assert_eq!(first, uids("2027-03-01T00:00:00Z"), "the same shifts keep their UIDs");
        assert_eq!(
            first,
            [
                "team-a+b+1793606400@alertgate",
                "team+a-b+1793606400@alertgate",
                "team+a%2Bb+1793606400@alertgate",
                "team+a%252Bb+1793606400@alertgate",
                "team-a+b+1793692800@alertgate",
                "team-a+c+1793692800@alertgate",
                "Z%C3%BCrich%20on%20call+Jos%C3%A9%3B%20O%27Neil%2C%20Jr.%20%40home+-10@alertgate",
            ]
        );
        let distinct: std::collections::BTreeSet<&String> = first.iter().collect();
        assert_eq!(distinct.len(), first.len());
        let safe = |c: char| c.is_ascii_alphanumeric() || "-_.+%@".contains(c);
        assert!(first.iter().all(|u| u.chars().all(safe)));
    }

    fn schedule(yaml: &str) -> Schedule {
        Schedule::compile(crate::yaml::from_str::<RawSchedule>(yaml).unwrap()).unwrap()
    }

    /// What a real parser reads from a feed: Debian's python3-icalendar,
    /// the library many calendar tools are built on. Events come back as
    /// (uid, summary, dtstart, dtend, transp), instants as UTC RFC 3339.
    fn parsed_by_python(ics: &str) -> serde_json::Value {
        const SCRIPT: &str = r#"
import datetime, json, sys
import icalendar
cal = icalendar.Calendar.from_ical(open(sys.argv[1], "rb").read())
errors = [(c.name, c.errors) for c in cal.walk() if c.errors]
assert not errors, errors
def utc(prop):
    dt = prop.dt
    assert isinstance(dt, datetime.datetime) and dt.utcoffset() == datetime.timedelta(0), repr(dt)
    return dt.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
events = [
    [str(e["UID"]), str(e["SUMMARY"]), utc(e["DTSTART"]), utc(e["DTEND"]), str(e["TRANSP"])]
    for e in cal.walk("VEVENT")
]
print(json.dumps({
    "name": str(cal["X-WR-CALNAME"]),
    "description": str(cal["X-WR-CALDESC"]),
    "method": str(cal["METHOD"]),
    "events": events,
}))
"#;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("payments-primary.ics");
        std::fs::write(&path, ics).unwrap();
        let out = std::process::Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(SCRIPT)
            .arg(&path)
            .output()
            .expect("this test needs /usr/bin/python3 with python3-icalendar (apt-get install python3-icalendar)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "python3 icalendar could not read the feed:\n{stderr}");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    #[test]
    fn python_icalendar_reads_the_shifts_rust_computed() {
        // Berlin leaves summer time on 2026-10-25 at 01:00 UTC: the weekly
        // handoff is 07:00 UTC before it and 08:00 UTC after, the office
        // hours move by an hour, and an override covers the switch night.
        let s = schedule(
            r#"
name: payments-primary
timezone: Europe/Berlin
layers:
  - name: weekly
    rotation: {people: [alice, bob, carol, dave], shift: 1w, handoff: "mon 09:00", start: 2026-09-07}
  - name: nights
    rotation: {people: [nia, noor], shift: 12h, handoff: "20:00"}
    restrict: {sat-sun: "00:00-08:00"}
  - name: business-hours
    rotation: {people: [erin, frank], shift: 1d, handoff: "09:00"}
    restrict: {mon-fri: "09:00-17:00"}
"#,
        );
        let overrides = [
            Override { person: "grace".into(), start: t("2026-10-24T22:00:00Z"), end: t("2026-10-25T06:00:00Z") },
            Override { person: "bob".into(), start: t("2026-11-04T12:00:00Z"), end: t("2026-11-05T12:00:00Z") },
        ];
        let computed = super::super::shifts(&s, &overrides, t("2026-09-01T00:00:00Z"), t("2026-11-30T00:00:00Z"));
        let switch = t("2026-10-25T01:00:00Z");
        assert!(computed.iter().any(|c| c.start < switch && switch < c.end), "a shift spans the switch");
        assert!(computed.len() > 150, "{} shifts", computed.len());

        let feed_shifts: Vec<FeedShift<'_>> = computed
            .iter()
            .map(|c| FeedShift { schedule: &s.name, person: &c.person, start: c.start, end: c.end })
            .collect();
        let description = "Primary pager for payments; escalates to carol after 15m,\nthen the team lead";
        let feed = Feed { name: "On call: payments-primary", description: Some(description) };
        let parsed = parsed_by_python(&render(&feed, &feed_shifts, t("2026-09-01T00:00:00Z")));

        assert_eq!(parsed["name"], "On call: payments-primary");
        assert_eq!(parsed["description"], description);
        assert_eq!(parsed["method"], "PUBLISH");
        let want: Vec<serde_json::Value> = computed
            .iter()
            .map(|c| {
                serde_json::json!([
                    format!("payments-primary+{}+{}@alertgate", c.person, c.start.as_second()),
                    format!("On call: {} (payments-primary)", c.person),
                    c.start.to_string(),
                    c.end.to_string(),
                    "TRANSPARENT",
                ])
            })
            .collect();
        assert_eq!(parsed["events"].as_array().unwrap(), &want);
    }
}
