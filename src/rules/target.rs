//! Whom an escalation step notifies, or an incident rule assigns to: a
//! notifier of the config (`chatops`), whoever is on call in a schedule
//! (`schedule:payments-primary`), or a person of the config
//! (`person:carol`).
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Notifier(String),
    Schedule(String),
    Person(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{0:?}: give a name after the colon")]
    NoName(String),
    #[error("a target must not be empty")]
    Empty,
}

impl Target {
    const SCHEDULE: &'static str = "schedule:";
    const PERSON: &'static str = "person:";

    /// `schedule:NAME`, `person:NAME`, or a notifier's name.
    pub fn parse(text: &str) -> Result<Target, TargetError> {
        let text = text.trim();
        let named = |rest: &str| {
            let rest = rest.trim();
            if rest.is_empty() { Err(TargetError::NoName(text.to_owned())) } else { Ok(rest.to_owned()) }
        };
        if let Some(rest) = text.strip_prefix(Self::SCHEDULE) {
            Ok(Target::Schedule(named(rest)?))
        } else if let Some(rest) = text.strip_prefix(Self::PERSON) {
            Ok(Target::Person(named(rest)?))
        } else if text.is_empty() {
            Err(TargetError::Empty)
        } else {
            Ok(Target::Notifier(text.to_owned()))
        }
    }

    /// The notifier's name, for a notifier target.
    pub fn notifier(&self) -> Option<&str> {
        match self {
            Target::Notifier(n) => Some(n),
            _ => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Notifier(n) => f.write_str(n),
            Target::Schedule(s) => write!(f, "{}{s}", Self::SCHEDULE),
            Target::Person(p) => write!(f, "{}{p}", Self::PERSON),
        }
    }
}

/// Where the rules name a person: people are defined in the config file,
/// so whether each exists (and can be reached) is checked where config and
/// rules meet (`config::check_people`), at this place in the rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonReference {
    pub person: String,
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// The rule that names them (`schedules.payments-primary`).
    pub rule: String,
    /// The field (`layers[0].rotation.people[2]`, `steps[1].notify[0]`).
    pub field: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_print_back() {
        let cases = [
            ("chatops", Target::Notifier("chatops".into())),
            ("schedule:payments-primary", Target::Schedule("payments-primary".into())),
            ("person:carol", Target::Person("carol".into())),
            (" person: carol ", Target::Person("carol".into())),
        ];
        for (text, want) in cases {
            let got = Target::parse(text).unwrap();
            assert_eq!(got, want, "{text}");
            assert_eq!(Target::parse(&got.to_string()).unwrap(), got);
        }
        assert_eq!(Target::parse("chatops").unwrap().notifier(), Some("chatops"));
        assert_eq!(Target::parse("person:x").unwrap().notifier(), None);
        assert_eq!(Target::parse("schedule:"), Err(TargetError::NoName("schedule:".into())));
        assert_eq!(Target::parse("person: "), Err(TargetError::NoName("person:".into())));
        assert_eq!(Target::parse(" "), Err(TargetError::Empty));
    }
}
