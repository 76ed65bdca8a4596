//! On-call facts the store keeps: overrides people make to a schedule
//! (swaps, cover), and the keys of calendar feeds.
use jiff::Timestamp;
use serde::Serialize;

/// Someone on call in a schedule instead of its layers, from `start` to `end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleOverride {
    pub id: i64,
    pub schedule: String,
    pub person: String,
    pub start: Timestamp,
    pub end: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub created_by: String,
    pub created_at: Timestamp,
}

/// An override as asked for, checked: its schedule and person exist, it
/// ends after it starts and after now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOverride {
    pub schedule: String,
    pub person: String,
    pub start: Timestamp,
    pub end: Timestamp,
    pub reason: Option<String>,
}

/// The longest override: cover for a long leave, not a second rotation.
pub const MAX_OVERRIDE: jiff::SignedDuration = jiff::SignedDuration::from_hours(366 * 24);

impl NewOverride {
    /// Every problem of the request at once, each naming its field.
    pub fn check(
        schedule_exists: bool,
        person_exists: bool,
        new: NewOverride,
        now: Timestamp,
    ) -> Result<NewOverride, Vec<String>> {
        let mut p = Vec::new();
        if !schedule_exists {
            p.push(format!("no schedule named {:?} in the rules", new.schedule));
        }
        if !person_exists {
            p.push(format!("person: no person {:?} in the config's people", new.person));
        }
        if new.end <= new.start {
            p.push(format!("end: {} is not after start {}", new.end, new.start));
        } else if new.end.duration_since(new.start) > MAX_OVERRIDE {
            p.push("end: an override lasts at most 366 days".into());
        }
        if new.end <= now {
            p.push(format!("end: {} is in the past", new.end));
        }
        if p.is_empty() { Ok(new) } else { Err(p) }
    }
}

/// What a calendar feed shows: one schedule's shifts, or one person's
/// shifts in every schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum FeedOf {
    Schedule(String),
    Person(String),
}

impl FeedOf {
    pub fn path(&self) -> String {
        match self {
            FeedOf::Schedule(s) => format!("/api/v1/schedules/{s}/calendar.ics"),
            FeedOf::Person(p) => format!("/api/v1/people/{p}/calendar.ics"),
        }
    }
}

/// A calendar feed's key: calendar apps send no headers, so the URL
/// carries an unguessable key, stored only as its hash, until revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CalendarFeed {
    pub id: i64,
    pub of: FeedOf,
    pub created_by: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// A new feed's key: 32 random bytes, URL-safe.
pub fn new_feed_key() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    hex::encode(bytes)
}

/// How a key is stored and looked up.
pub fn feed_key_hash(key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn new(start: &str, end: &str) -> NewOverride {
        NewOverride { schedule: "primary".into(), person: "carol".into(), start: t(start), end: t(end), reason: None }
    }

    #[test]
    fn an_override_is_checked_whole() {
        let now = t("2026-11-26T10:00:00Z");
        assert!(NewOverride::check(true, true, new("2026-11-26T09:00:00Z", "2026-11-26T18:00:00Z"), now).is_ok());
        let errs =
            NewOverride::check(false, false, new("2026-11-26T09:00:00Z", "2026-11-26T08:00:00Z"), now).unwrap_err();
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(errs[0].starts_with("no schedule named \"primary\""));
        assert!(errs[1].starts_with("person: no person \"carol\""));
        assert!(errs[2].starts_with("end: 2026-11-26T08:00:00Z is not after start"));
        assert!(errs[3].ends_with("is in the past"));
        let long = NewOverride::check(true, true, new("2026-11-26T09:00:00Z", "2028-01-01T00:00:00Z"), now);
        assert_eq!(long.unwrap_err(), ["end: an override lasts at most 366 days"]);
    }

    #[test]
    fn feed_keys_are_long_random_and_stored_hashed() {
        let (a, b) = (new_feed_key(), new_feed_key());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(feed_key_hash(&a), feed_key_hash(&a));
        assert_ne!(feed_key_hash(&a), a);
        assert_eq!(FeedOf::Person("alice".into()).path(), "/api/v1/people/alice/calendar.ics");
    }
}
