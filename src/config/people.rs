//! `people:` in the config file, and where people meet the rules: every
//! person a schedule or escalation step names must be defined here and be
//! reachable through a notifier of this config.
use serde::Deserialize;

use crate::model::person::{Person, PersonWebhook};
use crate::notify::{NotifierKind, Notifiers};
use crate::rules::{RuleError, RuleSet};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPerson {
    name: String,
    email: Option<String>,
    timezone: Option<String>,
    webhook: Option<RawPersonWebhook>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPersonWebhook {
    notifier: String,
    handle: String,
}

/// Checks each person; every problem starts with its path in the file
/// (`people[1].webhook.notifier: ...`).
pub(super) fn compile(raw: Vec<RawPerson>, notifiers: &Notifiers, p: &mut Vec<String>) -> Vec<Person> {
    let mut people: Vec<Person> = Vec::new();
    for (i, raw) in raw.into_iter().enumerate() {
        let at = format!("people[{i}]");
        if let Some(person) = compile_one(raw, &at, notifiers, p) {
            if people.iter().any(|o| o.name == person.name) {
                p.push(format!("{at}.name: duplicate person name {:?}", person.name));
            }
            people.push(person);
        }
    }
    people
}

fn compile_one(raw: RawPerson, at: &str, notifiers: &Notifiers, p: &mut Vec<String>) -> Option<Person> {
    let before = p.len();
    if !crate::oncall::valid_name(&raw.name) {
        p.push(format!("{at}.name: {:?}: {}", raw.name, crate::oncall::NAME_RULE));
    }
    let email = raw.email.map(|e| e.trim().to_owned());
    if let Some(e) = &email
        && let Err(why) = e.parse::<lettre::Address>()
    {
        p.push(format!("{at}.email: {e:?} is not an email address: {why}"));
    }
    let timezone = raw.timezone.as_deref().and_then(|tz| {
        jiff::tz::TimeZone::get(tz).map_err(|_| p.push(format!("{at}.timezone: unknown time zone {tz:?}"))).ok()
    });
    let webhook = raw.webhook.map(|w| PersonWebhook { notifier: w.notifier, handle: w.handle.trim().to_owned() });
    if let Some(w) = &webhook {
        if let Err(why) = webhook_problem(&w.notifier, notifiers) {
            p.push(format!("{at}.webhook.notifier: {why}"));
        }
        if w.handle.is_empty() {
            p.push(format!("{at}.webhook.handle: give how the webhook's receiver addresses them (\"@alice\")"));
        }
    }
    let person = Person { name: raw.name, email, timezone, webhook };
    if p.len() == before
        && let Err(why) = reachable(&person, notifiers)
    {
        p.push(format!("{at}: {why}"));
    }
    (p.len() == before).then_some(person)
}

/// A person's webhook must name a webhook notifier of the config.
fn webhook_problem(name: &str, notifiers: &Notifiers) -> Result<(), String> {
    match notifiers.get(name).map(|n| &n.kind) {
        Some(NotifierKind::Webhook(_)) => Ok(()),
        Some(NotifierKind::Email(_)) => {
            Err(format!("{name:?} is an email notifier; a handle needs a webhook notifier"))
        }
        None => Err(format!("no notifier {name:?} in the config")),
    }
}

/// Whether a person can be paged with these notifiers: through their
/// webhook notifier, or through an email notifier at their address. Says
/// why not otherwise.
pub fn reachable(person: &Person, notifiers: &Notifiers) -> Result<(), String> {
    if person.webhook.as_ref().is_some_and(|w| webhook_problem(&w.notifier, notifiers).is_ok()) {
        return Ok(());
    }
    let emailer = notifiers.list.iter().any(|n| matches!(n.kind, NotifierKind::Email(_)));
    match (&person.email, &person.webhook) {
        (Some(_), _) if emailer => Ok(()),
        (Some(_), None) => Err(format!(
            "{} has only an email address and the config has no email notifier to send it through; add one (type: email) or give a webhook",
            person.name
        )),
        (None, None) => Err(format!("{} has no way to be paged: give an email or a webhook", person.name)),
        (_, Some(w)) => Err(format!(
            "{} cannot be paged: {}",
            person.name,
            webhook_problem(&w.notifier, notifiers).err().unwrap_or_default()
        )),
    }
}

/// Where config and rules meet: each person the rules name (in a
/// rotation, a `person:` step target, `assign_to`) is one of `people` and
/// can be paged through `notifiers`. Each problem is located where the
/// rule file names the person.
pub fn check_people(rules: &RuleSet, people: &[Person], notifiers: &Notifiers) -> Vec<RuleError> {
    let mut problems = Vec::new();
    for r in &rules.person_references {
        let message = match people.iter().find(|p| p.name == r.person) {
            None => format!("{}: no person {:?} in the config's people{}", r.field, r.person, known(people)),
            Some(person) => match reachable(person, notifiers) {
                Ok(()) => continue,
                Err(why) => format!("{}: {why}", r.field),
            },
        };
        problems.push(RuleError {
            file: r.file.clone(),
            line: Some(r.line),
            column: Some(r.column),
            rule: Some(r.rule.clone()),
            message,
        });
    }
    problems
}

/// ` (known: a, b, c)`, a few at most; ` (none are defined)`.
fn known(people: &[Person]) -> String {
    const SHOWN: usize = 8;
    if people.is_empty() {
        return " (none are defined)".into();
    }
    let names: Vec<&str> = people.iter().take(SHOWN).map(|p| p.name.as_str()).collect();
    let more = if people.len() > SHOWN { ", ..." } else { "" };
    format!(" (known: {}{more})", names.join(", "))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::rules::target::PersonReference;

    fn notifiers() -> Notifiers {
        let yaml = r#"
- {name: chatops, type: webhook, url: "http://127.0.0.1:9/hook"}
- {name: mail, type: email, smtp: {host: 127.0.0.1, port: 2525, tls: none}, from: alertgate@example.org, to: [ops@example.org]}
"#;
        let raw: Vec<crate::notify::RawNotifier> = crate::yaml::from_str(yaml).unwrap();
        let list =
            raw.into_iter().map(|r| std::sync::Arc::new(r.compile(std::path::Path::new(".")).unwrap())).collect();
        Notifiers { list }
    }

    fn people(yaml: &str, notifiers: &Notifiers) -> Result<Vec<Person>, Vec<String>> {
        let raw: Vec<RawPerson> = crate::yaml::from_str(yaml).unwrap();
        let mut p = Vec::new();
        let people = compile(raw, notifiers, &mut p);
        if p.is_empty() { Ok(people) } else { Err(p) }
    }

    #[test]
    fn the_issue_example_compiles() {
        let got = people(
            "- name: alice\n  email: alice@example.org\n  timezone: Europe/Berlin\n  webhook: {notifier: chatops, handle: \"@alice\"}\n- {name: bob, email: bob@example.org}\n- {name: carol, webhook: {notifier: chatops, handle: '@carol'}}\n",
            &notifiers(),
        )
        .unwrap();
        assert_eq!(got[0].name, "alice");
        assert_eq!(got[0].email.as_deref(), Some("alice@example.org"));
        assert_eq!(got[0].timezone.as_ref().and_then(|t| t.iana_name()), Some("Europe/Berlin"));
        assert_eq!(got[0].webhook, Some(PersonWebhook { notifier: "chatops".into(), handle: "@alice".into() }));
        assert_eq!((got[1].webhook.as_ref(), got[2].email.as_ref()), (None, None));
    }

    #[test]
    fn mistakes() {
        let n = notifiers();
        let only_webhooks = Notifiers { list: n.list.iter().filter(|x| x.name == "chatops").cloned().collect() };
        let cases: &[(&str, &Notifiers, &[&str])] = &[
            ("- {name: dave}", &n, &["people[0]: dave has no way to be paged: give an email or a webhook"]),
            (
                "- {name: dave, email: not-an-address}",
                &n,
                &["people[0].email: \"not-an-address\" is not an email address"],
            ),
            (
                "- {name: dave, email: d@example.org, timezone: Mars/Olympus}",
                &n,
                &["people[0].timezone: unknown time zone \"Mars/Olympus\""],
            ),
            (
                "- {name: dave, webhook: {notifier: mail, handle: '@d'}}",
                &n,
                &["people[0].webhook.notifier: \"mail\" is an email notifier; a handle needs a webhook notifier"],
            ),
            (
                "- {name: dave, webhook: {notifier: pager, handle: ''}}",
                &n,
                &[
                    "people[0].webhook.notifier: no notifier \"pager\" in the config",
                    "people[0].webhook.handle: give how",
                ],
            ),
            (
                "- {name: dave, email: d@example.org}",
                &only_webhooks,
                &["people[0]: dave has only an email address and the config has no email notifier"],
            ),
            (
                "- {name: 'dave smith', email: d@example.org}\n- {name: eve, email: e@example.org}\n- {name: eve, email: e2@example.org}",
                &n,
                &[
                    "people[0].name: \"dave smith\": names may use letters",
                    "people[2].name: duplicate person name \"eve\"",
                ],
            ),
        ];
        for (yaml, notifiers, want) in cases {
            let errs = people(yaml, notifiers).unwrap_err();
            assert_eq!(errs.len(), want.len(), "{yaml}: {errs:#?}");
            for (e, w) in errs.iter().zip(want.iter()) {
                assert!(e.starts_with(w), "{yaml}: {e:?} should start with {w:?}");
            }
        }
        assert!(crate::yaml::from_str::<Vec<RawPerson>>("- {name: x, phone: '+1'}").is_err(), "unknown keys");
    }

    #[test]
    fn the_people_rules_name_must_exist_and_be_reachable() {
        let n = notifiers();
        let known =
            people("- {name: alice, email: alice@example.org}\n- {name: bob, email: bob@example.org}\n", &n).unwrap();
        let named = |person: &str, line: usize| PersonReference {
            person: person.into(),
            file: PathBuf::from("rules/oncall.yaml"),
            line,
            column: 7,
            rule: "schedules.payments-primary".into(),
            field: "layers[0].rotation.people[1]".into(),
        };
        let mut rules = RuleSet::default();
        rules.person_references = vec![named("alice", 3), named("zed", 4)];
        let errs: Vec<String> = check_people(&rules, &known, &n).iter().map(|e| e.to_string()).collect();
        assert_eq!(
            errs,
            [
                "rules/oncall.yaml:4:7: rule schedules.payments-primary: layers[0].rotation.people[1]: no person \"zed\" in the config's people (known: alice, bob)"
            ]
        );
        // Alice's only way is email: with no email notifier she cannot be paged.
        let webhooks_only = Notifiers { list: n.list.iter().filter(|x| x.name == "chatops").cloned().collect() };
        let errs = check_people(&rules, &known, &webhooks_only);
        assert_eq!(errs.len(), 2);
        assert!(errs[0].message.contains("alice has only an email address"), "{}", errs[0]);
        assert!(check_people(&rules, &[], &n)[0].message.ends_with("(none are defined)"));
        assert!(check_people(&RuleSet::default(), &[], &n).is_empty());
    }

    #[test]
    fn the_config_file_reads_people_and_locates_their_problems() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alertgate.yml");
        let load = |text: &str| {
            std::fs::write(&path, text).unwrap();
            super::super::Config::load(&super::super::Overrides {
                config_file: Some(path.clone()),
                ..Default::default()
            })
        };
        let notifiers = "notifiers:\n  - {name: chatops, type: webhook, url: \"http://127.0.0.1:9/hook\"}\n";
        let ok =
            format!("{notifiers}people:\n  - name: alice\n    webhook: {{notifier: chatops, handle: \"@alice\"}}\n");
        let c = load(&ok).unwrap();
        assert_eq!(c.people.len(), 1);
        assert!(super::super::Config::load(&Default::default()).unwrap().people.is_empty());
        let bad = format!(
            "{notifiers}people:\n  - name: alice\n    webhook: {{notifier: pager, handle: \"@alice\"}}\n  - {{name: bob}}\n"
        );
        let err = load(&bad).unwrap_err().to_string();
        let file = path.display();
        assert!(err.contains(&format!("{file}:5:25: people[0].webhook.notifier: no notifier \"pager\"")), "{err}");
        assert!(err.contains(&format!("{file}:6:5: people[1]: bob has no way to be paged")), "{err}");
    }
}
