//! People: whom schedules and escalation steps page, and how to reach them.
//! Defined in the config file (`people:`), checked at load.
use jiff::tz::TimeZone;

#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    /// As schedules and `person:NAME` targets name them.
    pub name: String,
    /// Reached through an email notifier at this address.
    pub email: Option<String>,
    /// Where they are, for showing their shifts in their own time.
    pub timezone: Option<TimeZone>,
    /// Reached through a webhook notifier, their handle in the body.
    pub webhook: Option<PersonWebhook>,
}

/// A person's handle on a webhook notifier (a chat bridge, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonWebhook {
    /// A webhook notifier of the config.
    pub notifier: String,
    /// How that notifier's receiver addresses them (`@alice`).
    pub handle: String,
}

/// Everyone the gateway can page, and how: the config's people and the
/// email notifier that carries mail to a person's own address.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub people: Vec<Person>,
    /// The first email notifier of the config: a person's pages go through
    /// its SMTP server and templates, to their address instead of its `to`.
    pub email_notifier: Option<String>,
}

impl Directory {
    pub fn person(&self, name: &str) -> Option<&Person> {
        self.people.iter().find(|p| p.name == name)
    }

    /// Each way `person` is reached: (notifier, recipient), email first.
    /// Empty for a person not (or no longer) in the config.
    pub fn routes(&self, person: &str, via: &str) -> Vec<(String, Recipient)> {
        let Some(p) = self.person(person) else { return Vec::new() };
        let mut out = Vec::new();
        if let (Some(email), Some(notifier)) = (&p.email, &self.email_notifier) {
            let r = Recipient { person: p.name.clone(), via: via.to_owned(), email: Some(email.clone()), handle: None };
            out.push((notifier.clone(), r));
        }
        if let Some(w) = &p.webhook {
            let r =
                Recipient { person: p.name.clone(), via: via.to_owned(), email: None, handle: Some(w.handle.clone()) };
            out.push((w.notifier.clone(), r));
        }
        out
    }
}

/// The person a notification goes to, as its payload carries it
/// (`recipient`): an email notifier sends to `email` instead of its own
/// `to`; a webhook's body names `handle`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Recipient {
    pub person: String,
    /// What paged them: `schedule:payments-primary`, `person:carol`,
    /// `oncall.handoff`.
    pub via: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
}
