//! Silences: time-bounded suppression by label matchers, as in Alertmanager.
use jiff::Timestamp;
use serde::Serialize;

use crate::model::LabelSet;
use crate::rules::matcher::Matcher;

/// A silence as given to create or change one.
#[derive(Debug, Clone)]
pub struct SilenceSpec {
    pub matchers: Vec<Matcher>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub created_by: String,
    pub comment: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    pub id: i64,
    /// In Alertmanager's syntax, e.g. `alertname="DiskFull"`, `job=~"node.*"`.
    #[serde(serialize_with = "matcher_strings")]
    #[schema(value_type = Vec<String>)]
    pub matchers: Vec<Matcher>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub created_by: String,
    pub comment: String,
    pub created_at: Timestamp,
}

fn matcher_strings<S: serde::Serializer>(ms: &[Matcher], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(ms.iter().map(|m| m.to_string()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    Pending,
    Active,
    Expired,
}

impl SilenceState {
    /// A silence not expired at the time bound to `?N` (`param`), as an
    /// SQL predicate over its `ends_at` column: the same as [`Silence::state`].
    pub fn not_expired_sql(ends_at: &str, param: &str) -> String {
        format!("{ends_at} > {param}")
    }
}

impl Silence {
    pub fn state(&self, now: Timestamp) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now < self.ends_at {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }

    pub fn mutes(&self, labels: &LabelSet, now: Timestamp) -> bool {
        self.state(now) == SilenceState::Active && self.matchers.iter().all(|m| m.matches(labels))
    }
}

/// How silences are named in Alertmanager's API: UUID-shaped ids whose
/// first group is the database's realm (a random number chosen when the
/// database was created) and whose last group is the silence's number.
/// A silence exported from another gateway (`amtool silence import`)
/// carries that gateway's realm, so it is never taken for a silence of
/// this one that has the same number; it is created anew instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SilenceIds {
    realm: u32,
}

/// The realm of ids given out before realms existed; still ours.
const LEGACY_REALM: &str = "00000000";

impl SilenceIds {
    pub const fn new(realm: u32) -> SilenceIds {
        SilenceIds { realm }
    }

    pub fn format(self, id: i64) -> String {
        format!("{:08x}-0000-4000-8000-{id:012x}", self.realm)
    }

    /// What an id names: one of ours, a silence of alertgate's shape from
    /// another realm or any other UUID (unknown here), or nothing at all.
    pub fn parse(self, s: &str) -> SilenceRef {
        match parse_silence_id(s) {
            SilenceRef::Numbered { realm, id } if realm == LEGACY_REALM || realm == format!("{:08x}", self.realm) => {
                SilenceRef::Id(id)
            }
            SilenceRef::Numbered { .. } => SilenceRef::Unknown,
            other => other,
        }
    }
}

/// What a silence id in a request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SilenceRef {
    /// One of ours (or a plain number).
    Id(i64),
    /// An id of alertgate's shape, of the realm given (see [`SilenceIds`]).
    Numbered { realm: String, id: i64 },
    /// A UUID that no silence of alertgate can have.
    Unknown,
    /// Not a silence id at all.
    Malformed,
}

/// The shape of an id, whatever its realm: [`SilenceIds::parse`] says
/// whether a numbered one is ours.
pub fn parse_silence_id(s: &str) -> SilenceRef {
    let lower = s.trim().to_ascii_lowercase();
    if let Some((realm, hex)) = lower.split_once("-0000-4000-8000-")
        && realm.len() == 8
        && realm.bytes().all(|b| b.is_ascii_hexdigit())
        && hex.len() == 12
        && let Ok(id) = i64::from_str_radix(hex, 16)
    {
        return SilenceRef::Numbered { realm: realm.to_owned(), id };
    }
    if !lower.is_empty()
        && lower.len() <= 15
        && lower.bytes().all(|b| b.is_ascii_digit())
        && let Ok(id) = lower.parse()
    {
        return SilenceRef::Id(id);
    }
    let groups: Vec<&str> = lower.split('-').collect();
    let uuid = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()));
    if uuid { SilenceRef::Unknown } else { SilenceRef::Malformed }
}

/// The first active silence that mutes these labels.
pub fn silenced_by<'s>(silences: &'s [Silence], labels: &LabelSet, now: Timestamp) -> Option<&'s Silence> {
    silences.iter().find(|s| s.mutes(labels, now))
}

/// What is wrong with a silence about to be created or changed, by field,
/// as Alertmanager checks it: at least one matcher, not only matchers that
/// match every alert (which would mute everything), and an end after the
/// start and after now.
pub fn problems(
    matchers: &[Matcher],
    starts_at: Timestamp,
    ends_at: Timestamp,
    now: Timestamp,
) -> Vec<(&'static str, &'static str)> {
    let mut p = Vec::new();
    if matchers.is_empty() {
        p.push(("matchers", "a silence needs at least one matcher"));
    } else if matchers.iter().all(|m| m.matches(&LabelSet::new())) {
        p.push(("matchers", "these matchers match every alert; name at least one label value"));
    }
    if ends_at <= starts_at || ends_at <= now {
        p.push(("endsAt", "endsAt must be after startsAt and in the future"));
    }
    p
}

/// What posting a silence under the id of an existing one does, by
/// Alertmanager's rules (`silence.Silences.Set`): the silence is changed in
/// place when its matchers stay the same and the times may still change
/// (an active silence keeps its start, to the second, and ends no earlier than now; a
/// pending one starts no earlier than now). Otherwise a new silence
/// replaces it, and the old one is expired unless it has ended already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SilenceUpdate {
    InPlace,
    /// A new silence takes over, starting no earlier than now; the old one
    /// is expired first unless it already ended.
    Replace {
        expire_old: bool,
        starts_at: Timestamp,
    },
}

/// The times of a silence expired at `now`: it ends now (and, if it had
/// not started, starts now too, so it never was). `None` when it already
/// ended: expiring it again changes nothing.
pub fn expire(s: &Silence, now: Timestamp) -> Option<(Timestamp, Timestamp)> {
    (s.ends_at > now).then(|| (s.starts_at.min(now), now))
}

pub fn plan_update(
    old: &Silence,
    matchers: &[Matcher],
    starts_at: Timestamp,
    ends_at: Timestamp,
    now: Timestamp,
) -> SilenceUpdate {
    let same_matchers =
        old.matchers.len() == matchers.len() && old.matchers.iter().zip(matchers).all(|(a, b)| a.same_as(b));
    let state = old.state(now);
    let times_allowed = match state {
        // Whole seconds, as Alertmanager compares them: a client that
        // rounds the start it read back still changes the silence in place.
        SilenceState::Active => starts_at.as_second() == old.starts_at.as_second() && ends_at >= now,
        SilenceState::Pending => starts_at >= now,
        SilenceState::Expired => false,
    };
    if same_matchers && times_allowed {
        SilenceUpdate::InPlace
    } else {
        SilenceUpdate::Replace { expire_old: state != SilenceState::Expired, starts_at: starts_at.max(now) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(min: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + min * 60).unwrap()
    }

    fn silence(starts: i64, ends: i64, matchers: &str) -> Silence {
        Silence {
            id: 1,
            matchers: crate::rules::matcher::parse_matchers(matchers).unwrap(),
            starts_at: at(starts),
            ends_at: at(ends),
            created_by: "me".into(),
            comment: String::new(),
            created_at: at(starts),
        }
    }

    #[test]
    fn updates_follow_alertmanagers_rules() {
        use SilenceUpdate::*;
        let m = |s: &str| crate::rules::matcher::parse_matchers(s).unwrap();
        let now = at(10);
        let active = silence(0, 60, "a=\"1\"");
        let pending = silence(20, 60, "a=\"1\"");
        let expired = silence(0, 5, "a=\"1\"");
        let cases = [
            ("active, longer", &active, m("a=\"1\""), at(0), at(120), InPlace),
            ("active, ends now", &active, m("a=\"1\""), at(0), at(10), InPlace),
            (
                "active, ends in the past",
                &active,
                m("a=\"1\""),
                at(0),
                at(9),
                Replace { expire_old: true, starts_at: now },
            ),
            ("active, moved start", &active, m("a=\"1\""), at(1), at(60), Replace { expire_old: true, starts_at: now }),
            (
                "active, other matchers",
                &active,
                m("a=\"2\""),
                at(0),
                at(60),
                Replace { expire_old: true, starts_at: now },
            ),
            (
                "active, regex instead of equal",
                &active,
                m("a=~\"1\""),
                at(0),
                at(60),
                Replace { expire_old: true, starts_at: now },
            ),
            ("pending, later start", &pending, m("a=\"1\""), at(30), at(60), InPlace),
            (
                "pending, start in the past",
                &pending,
                m("a=\"1\""),
                at(5),
                at(60),
                Replace { expire_old: true, starts_at: now },
            ),
            (
                "expired, later start",
                &expired,
                m("a=\"1\""),
                at(30),
                at(60),
                Replace { expire_old: false, starts_at: at(30) },
            ),
        ];
        for (name, old, matchers, starts, ends, want) in cases {
            assert_eq!(plan_update(old, &matchers, starts, ends, now), want, "{name}");
        }
    }

    #[test]
    fn expiring_ends_a_silence_now_and_an_ended_one_not_again() {
        let now = at(10);
        assert_eq!(expire(&silence(0, 60, "a=\"1\""), now), Some((at(0), now)));
        assert_eq!(expire(&silence(20, 60, "a=\"1\""), now), Some((now, now)), "a pending one never was");
        assert_eq!(expire(&silence(0, 5, "a=\"1\""), now), None);
    }
}
