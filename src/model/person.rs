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
