//! Times as people type them on the command line.
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// Which end of a range a time bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Start,
    End,
}

/// `now`, an RFC 3339 time (`2026-11-26T09:00:00Z`), a local date and time
/// (`2026-11-26T09:00`), or a date (`2026-11-26`) in `tz`. A date names the
/// whole day: as a start its first instant, as an end the next day's, so
/// `--from 2026-11-01 --to 2026-11-30` is all of November.
pub fn parse_time(text: &str, bound: Bound, tz: &TimeZone) -> Result<Timestamp, String> {
    let text = text.trim();
    if text == "now" {
        return Ok(crate::clock::now());
    }
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t);
    }
    let local = |dt: DateTime| {
        tz.to_zoned(dt)
            .map(|z| z.timestamp())
            .map_err(|e| format!("{text:?} does not exist in the local time zone: {e}"))
    };
    // jiff reads a date out of a date and time too; only a bare date is a day.
    let has_time = text.contains(['T', 't', ' ']);
    if let Some(date) = text.parse::<Date>().ok().filter(|_| !has_time) {
        let day = match bound {
            Bound::Start => date,
            Bound::End => date.checked_add(1.day()).map_err(|e| format!("{text:?}: {e}"))?,
        };
        return local(day.to_datetime(jiff::civil::Time::midnight()));
    }
    if let Ok(dt) = text.parse::<DateTime>() {
        return local(dt);
    }
    Err(format!("{text:?} is not now, a date (2026-11-26), a local time (2026-11-26T09:00) or an RFC 3339 time"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_is_the_whole_day_in_the_time_zone() {
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let utc = TimeZone::UTC;
        assert_eq!(parse_time("2026-11-26", Bound::Start, &utc).unwrap().to_string(), "2026-11-26T00:00:00Z");
        assert_eq!(parse_time("2026-11-26", Bound::End, &utc).unwrap().to_string(), "2026-11-27T00:00:00Z");
        assert_eq!(parse_time("2026-11-26", Bound::Start, &berlin).unwrap().to_string(), "2026-11-25T23:00:00Z");
        assert_eq!(parse_time("2026-11-30", Bound::End, &berlin).unwrap().to_string(), "2026-11-30T23:00:00Z");
        assert_eq!(parse_time("2026-07-01T09:30", Bound::End, &berlin).unwrap().to_string(), "2026-07-01T07:30:00Z");
        assert_eq!(
            parse_time("2026-11-26T10:00:00+01:00", Bound::Start, &utc).unwrap().to_string(),
            "2026-11-26T09:00:00Z"
        );
        assert!(parse_time("26.11.2026", Bound::Start, &utc).unwrap_err().contains("is not now, a date"));
        assert!(parse_time("now", Bound::Start, &utc).is_ok());
    }
}
