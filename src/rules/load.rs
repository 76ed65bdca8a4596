//! Reading a rules directory: each file into its tree, each item of each
//! section read and compiled on its own, so every problem of every file is
//! reported at once, each at the line and column of the key or value at
//! fault. References between sections are checked once all files are read.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::heartbeat::RawHeartbeat;
use super::incident::{self, RawIncidentRule, RawInhibitRule};
use super::policy::{RawChangeCorrelation, RawEscalationPolicy, RawProblemRule, RawSlaPolicy};
use super::target::{PersonReference, Target};
use super::template::TemplateBuilder;
use super::{LoadOptions, RouteIndex, RuleError, RuleSet};
use crate::oncall::{RawSchedule, Schedule};
use crate::sla::calendar::{Calendar, RawCalendar};
use crate::yaml::{Mark, Node, YamlError, tree::Kind};

const SECTIONS: &[&str] = &[
    "incident_rules",
    "priority_matrix",
    "inhibit_rules",
    "calendars",
    "sla_policies",
    "escalation_policies",
    "problem_rules",
    "change_correlation",
    "reviews",
    "schedules",
    "heartbeats",
];

/// A reference from one section to a name another defines.
struct Reference {
    file: PathBuf,
    at: Mark,
    who: String,
    /// `calendar`, `sla_policy`, `escalation`, `schedule`, or `notify` (with the field).
    what: &'static str,
    field: String,
    name: String,
}

pub(super) struct Loader<'o> {
    opts: &'o LoadOptions<'o>,
    set: RuleSet,
    templates: TemplateBuilder,
    errors: Vec<RuleError>,
    /// (section, name) -> where first defined.
    defined: BTreeMap<(&'static str, String), (PathBuf, usize)>,
    /// Sections that may appear once in the whole set -> where.
    singles: BTreeMap<&'static str, (PathBuf, usize)>,
    references: Vec<Reference>,
}

fn located(file: &Path, at: Option<Mark>, rule: Option<String>, message: String) -> RuleError {
    RuleError { file: file.to_path_buf(), line: at.map(|m| m.line), column: at.map(|m| m.column), rule, message }
}

/// Where a compile error points: its message starts with the path of the
/// field at fault (`matchers[1]: ...`, `group_window: ...`), found in the
/// item's tree; else the item itself.
fn locate(item: &Node, message: &str) -> Mark {
    let path = message.split([':', ' ']).next().unwrap_or("");
    let is_path = !path.is_empty() && path.chars().all(|c| c.is_ascii_alphanumeric() || "_.[]-".contains(c));
    is_path.then(|| item.find(path)).flatten().map_or(item.at, |n| n.at)
}

impl<'o> Loader<'o> {
    pub(super) fn new(opts: &'o LoadOptions<'o>) -> Loader<'o> {
        Loader {
            opts,
            set: RuleSet::default(),
            templates: TemplateBuilder::default(),
            errors: Vec::new(),
            defined: BTreeMap::new(),
            singles: BTreeMap::new(),
            references: Vec::new(),
        }
    }

    pub(super) fn file(&mut self, file: &Path) {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => return self.errors.push(located(file, None, None, format!("cannot read: {e}"))),
        };
        if text.trim().is_empty() {
            if !self.opts.allow_empty {
                self.errors.push(located(
                    file,
                    None,
                    None,
                    "the file is empty (a deploy caught mid-write?); remove it, or set allow_empty: true in the config"
                        .into(),
                ));
            }
            return;
        }
        let doc = match crate::yaml::parse(&text) {
            Ok(d) => d,
            Err(errs) => {
                return self.errors.extend(errs.into_iter().map(|e| located(file, e.at, None, e.message)));
            }
        };
        let Kind::Map(entries) = &doc.kind else {
            return self.errors.push(located(
                file,
                Some(doc.at),
                None,
                "a rule file is a mapping of sections (incident_rules: ...)".into(),
            ));
        };
        for (key, value) in entries {
            match key.as_str().unwrap_or("") {
                "incident_rules" => self.each(file, value, "incident_rules", Self::incident_rule),
                "inhibit_rules" => self.each(file, value, "inhibit_rules", Self::inhibit_rule),
                "sla_policies" => self.each(file, value, "sla_policies", Self::sla_policy),
                "escalation_policies" => self.each(file, value, "escalation_policies", Self::escalation_policy),
                "problem_rules" => self.each(file, value, "problem_rules", Self::problem_rule),
                "schedules" => self.each(file, value, "schedules", Self::schedule),
                "heartbeats" => self.each(file, value, "heartbeats", Self::heartbeat),
                "calendars" => self.calendars(file, value),
                "priority_matrix" => self.priority_matrix(file, key, value),
                "change_correlation" => self.change_correlation(file, key, value),
                "reviews" => self.reviews(file, key, value),
                other => self.errors.push(located(
                    file,
                    Some(key.at),
                    None,
                    format!("unknown section `{other}`, expected one of {}", SECTIONS.join(", ")),
                )),
            }
        }
    }

    /// Read an item on its own, every problem reported. What is left once
    /// the entries at fault are dropped is still compiled, so its other
    /// problems show in the same run; the set as a whole fails anyway.
    fn read<T: DeserializeOwned>(&mut self, file: &Path, item: &Node, who: &Option<String>) -> Option<T> {
        let (value, errors) = crate::yaml::from_node_all::<T>(item);
        self.errors.extend(errors.into_iter().map(|e: YamlError| located(file, e.at, who.clone(), e.message)));
        value
    }

    /// Compile errors, each at the field it names.
    fn compile_errors(&mut self, file: &Path, item: &Node, who: &Option<String>, problems: Vec<String>) {
        for m in problems {
            let at = locate(item, &m);
            self.errors.push(located(file, Some(at), who.clone(), m));
        }
    }

    /// Each item of a list section.
    fn each(&mut self, file: &Path, list: &Node, section: &str, mut one: impl FnMut(&mut Self, &Path, &Node, usize)) {
        match &list.kind {
            Kind::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    one(self, file, item, i);
                }
            }
            _ if list.is_null() => {}
            _ => self.errors.push(located(file, Some(list.at), None, format!("{section}: expected a list"))),
        }
    }

    fn name_of(item: &Node) -> Option<String> {
        item.get("name").and_then(Node::as_str).map(str::to_owned)
    }

    /// Note a named definition; say where it was first defined if it was.
    fn define(&mut self, section: &'static str, name: &str, file: &Path, at: Mark, who: &Option<String>) {
        let key = (section, name.to_owned());
        if let Some((f, l)) = self.defined.get(&key) {
            let m = format!("duplicate {section} name (first defined at {}:{l})", f.display());
            self.errors.push(located(file, Some(at), who.clone(), m));
        } else {
            self.defined.insert(key, (file.to_path_buf(), at.line));
        }
    }

    fn refer(&mut self, file: &Path, at: Mark, who: &str, what: &'static str, field: String, name: &str) {
        let file = file.to_path_buf();
        self.references.push(Reference { file, at, who: who.to_owned(), what, field, name: name.to_owned() });
    }

    /// A target named at `field`: a notifier or schedule to check once all
    /// files are read, or a person for the config to check.
    fn target(&mut self, file: &Path, item: &Node, who: &str, field: &str, target: &Target) {
        let at = item.find(field).map_or(item.at, |n| n.at);
        let list = field.rsplit_once('[').map_or(field, |(list, _)| list).to_owned();
        match target {
            Target::Notifier(n) => self.refer(file, at, who, "notify", list, n),
            Target::Schedule(s) => self.refer(file, at, who, "schedule", field.to_owned(), s),
            Target::Person(p) => self.person(file, at, who, field, p),
        }
    }

    fn person(&mut self, file: &Path, at: Mark, who: &str, field: &str, person: &str) {
        self.set.person_references.push(PersonReference {
            person: person.to_owned(),
            file: file.to_path_buf(),
            line: at.line,
            column: at.column,
            rule: who.to_owned(),
            field: field.to_owned(),
        });
    }

    fn incident_rule(&mut self, file: &Path, item: &Node, _: usize) {
        let who = Self::name_of(item);
        let Some(raw) = self.read::<RawIncidentRule>(file, item, &who) else { return };
        let name = raw.name().to_owned();
        let who = Some(name.clone());
        let at = item.get("name").map_or(item.at, |n| n.at);
        self.define("rule", &name, file, at, &who);
        match raw.compile(self.set.incident_rules.len(), &mut self.templates) {
            Ok(rule) => {
                let field_at = |f: &str| item.get(f).map_or(item.at, |n| n.at);
                if let Some(p) = &rule.sla_policy {
                    self.refer(file, field_at("sla_policy"), &name, "sla_policy", "sla_policy".into(), p);
                }
                if let Some(p) = &rule.escalation {
                    self.refer(file, field_at("escalation"), &name, "escalation", "escalation".into(), p);
                }
                for (i, n) in rule.notify.iter().enumerate() {
                    let at = item.find(&format!("notify[{i}]")).map_or(item.at, |n| n.at);
                    self.refer(file, at, &name, "notify", "notify".into(), n);
                }
                if let Some(t) = &rule.assign_to_target {
                    self.target(file, item, &name, "assign_to", t);
                }
                self.set.incident_rules.push(rule)
            }
            Err(problems) => self.compile_errors(file, item, &who, problems),
        }
    }

    fn inhibit_rule(&mut self, file: &Path, item: &Node, i: usize) {
        let who = Some(format!("inhibit_rules[{i}]"));
        let Some(raw) = self.read::<RawInhibitRule>(file, item, &who) else { return };
        match raw.compile() {
            Ok(rule) => self.set.inhibit_rules.push(rule),
            Err(problems) => self.compile_errors(file, item, &who, problems),
        }
    }

    fn sla_policy(&mut self, file: &Path, item: &Node, _: usize) {
        let who = Self::name_of(item).map(|n| format!("sla_policies.{n}"));
        let Some(raw) = self.read::<RawSlaPolicy>(file, item, &who) else { return };
        let name = raw.name().to_owned();
        let who = Some(format!("sla_policies.{name}"));
        self.define("sla policy", &name, file, item.get("name").map_or(item.at, |n| n.at), &who);
        match raw.compile() {
            Ok(p) => {
                let at = item.get("calendar").map_or(item.at, |n| n.at);
                self.refer(file, at, &format!("sla_policies.{name}"), "calendar", "calendar".into(), &p.calendar);
                self.set.sla_policies.push(p);
            }
            Err(problems) => self.compile_errors(file, item, &who, problems),
        }
    }

    fn escalation_policy(&mut self, file: &Path, item: &Node, _: usize) {
        let who = Self::name_of(item).map(|n| format!("escalation_policies.{n}"));
        let Some(raw) = self.read::<RawEscalationPolicy>(file, item, &who) else { return };
        let name = raw.name().to_owned();
        let who_text = format!("escalation_policies.{name}");
        let who = Some(who_text.clone());
        self.define("escalation policy", &name, file, item.get("name").map_or(item.at, |n| n.at), &who);
        match raw.compile() {
            Ok(p) => {
                for (i, step) in p.steps.iter().enumerate() {
                    for (j, t) in step.notify.iter().enumerate() {
                        self.target(file, item, &who_text, &format!("steps[{i}].notify[{j}]"), t);
                    }
                }
                self.set.escalation_policies.insert(name, p);
            }
            Err(problems) => self.compile_errors(file, item, &who, problems),
        }
    }

    fn problem_rule(&mut self, file: &Path, item: &Node, _: usize) {
        let who = Self::name_of(item).map(|n| format!("problem_rules.{n}"));
        let Some(raw) = self.read::<RawProblemRule>(file, item, &who) else { return };
        let name = raw.name().to_owned();
        let who = Some(format!("problem_rules.{name}"));
        self.define("problem rule", &name, file, item.get("name").map_or(item.at, |n| n.at), &who);
        match raw.compile() {
            Ok(r) => self.set.problem_rules.push(r),
            Err(problems) => self.compile_errors(file, item, &who, problems),
        }
    }

    fn schedule(&mut self, file: &Path, item: &Node, _: usize) {
        let who = Self::name_of(item).map(|n| format!("schedules.{n}"));
        let Some(raw) = self.read::<RawSchedule>(file, item, &who) else { return };
        let name = raw.name.clone();
        let who_text = format!("schedules.{name}");
        let who = Some(who_text.clone());
        self.define("schedule", &name, file, item.get("name").map_or(item.at, |n| n.at), &who);
        match Schedule::compile(raw) {
            Ok(s) => {
                for (i, layer) in s.layers.iter().enumerate() {
                    for (j, person) in layer.rotation.people.iter().enumerate() {
                        let field = format!("layers[{i}].rotation.people[{j}]");
                        let at = item.find(&field).map_or(item.at, |n| n.at);
                        self.person(file, at, &who_text, &field, person);
                    }
                }
                self.set.schedules.insert(name, s);
            }
            Err(problems) => self.compile_errors(file, item, &who, problems),
        }
    }

    fn heartbeat(&mut self, file: &Path, item: &Node, _: usize) {
        let who = Self::name_of(item).map(|n| format!("heartbeats.{n}"));
        let Some(raw) = self.read::<RawHeartbeat>(file, item, &who) else { return };
        let name = raw.name().to_owned();
        let who = Some(format!("heartbeats.{name}"));
        self.define("heartbeat", &name, file, item.get("name").map_or(item.at, |n| n.at), &who);
        match raw.compile() {
            Ok(h) => _ = self.set.heartbeats.insert(name, h),
            Err(problems) => self.compile_errors(file, item, &who, problems),
        }
    }

    fn calendars(&mut self, file: &Path, section: &Node) {
        let entries = match &section.kind {
            Kind::Map(entries) => entries,
            _ if section.is_null() => return,
            _ => {
                let m = "calendars: expected a mapping of names to calendars".into();
                return self.errors.push(located(file, Some(section.at), None, m));
            }
        };
        for (key, item) in entries {
            let name = key.as_str().unwrap_or("").to_owned();
            let who = Some(format!("calendars.{name}"));
            if name == Calendar::ALWAYS {
                let m = format!("{name} is built in and cannot be redefined");
                self.errors.push(located(file, Some(key.at), who, m));
                continue;
            }
            self.define("calendar", &name, file, key.at, &who);
            let Some(raw) = self.read::<RawCalendar>(file, item, &who) else { continue };
            match Calendar::compile(&name, &raw) {
                Ok(c) => {
                    self.set.calendars.insert(name, std::sync::Arc::new(c));
                }
                Err(problems) => self.compile_errors(file, item, &who, problems),
            }
        }
    }

    /// A section that may appear once in the whole set.
    fn single(&mut self, section: &'static str, file: &Path, key: &Node) -> bool {
        if let Some((f, l)) = self.singles.get(section) {
            let m = format!("{section} is already defined at {}:{l}", f.display());
            self.errors.push(located(file, Some(key.at), None, m));
            return false;
        }
        self.singles.insert(section, (file.to_path_buf(), key.at.line));
        true
    }

    fn priority_matrix(&mut self, file: &Path, key: &Node, value: &Node) {
        if !self.single("priority_matrix", file, key) {
            return;
        }
        let Some(raw) = self.read::<BTreeMap<String, BTreeMap<String, String>>>(file, value, &None) else { return };
        match incident::compile_matrix(&raw) {
            Ok(matrix) => self.set.priority_matrix = matrix,
            Err(problems) => {
                for m in problems {
                    // `priority_matrix.high.low: ...`: the path below the section.
                    let below = m.strip_prefix("priority_matrix.").unwrap_or(&m);
                    let at = locate(value, below);
                    self.errors.push(located(file, Some(at), None, m));
                }
            }
        }
    }

    fn reviews(&mut self, file: &Path, key: &Node, value: &Node) {
        if !self.single("reviews", file, key) {
            return;
        }
        let Some(raw) = self.read::<super::policy::RawReviews>(file, value, &None) else { return };
        match raw.compile() {
            Ok(r) => self.set.reviews = r,
            Err(problems) => self.compile_errors(file, value, &None, problems),
        }
    }

    fn change_correlation(&mut self, file: &Path, key: &Node, value: &Node) {
        if !self.single("change_correlation", file, key) {
            return;
        }
        let Some(raw) = self.read::<RawChangeCorrelation>(file, value, &None) else { return };
        match raw.compile() {
            Ok(w) => self.set.change_window = w,
            Err(problems) => self.compile_errors(file, value, &None, problems),
        }
    }

    /// Check references, and the set as a whole.
    pub(super) fn finish(mut self, dir: &Path, files: Vec<PathBuf>) -> Result<RuleSet, Vec<RuleError>> {
        for r in std::mem::take(&mut self.references) {
            let problem = match r.what {
                "notify" => {
                    let Some(known) = self.opts.notifiers else { continue };
                    if known.contains(&r.name.as_str()) {
                        continue;
                    }
                    let list = if known.is_empty() { "none are configured".to_owned() } else { known.join(", ") };
                    format!("{}: no notifier {:?} in the config (known: {list})", r.field, r.name)
                }
                "schedule" => {
                    if self.set.schedules.contains_key(&r.name) {
                        continue;
                    }
                    format!("{}: no schedule {:?} in schedules", r.field, r.name)
                }
                what => {
                    let (known, section) = match what {
                        "calendar" => (self.set.calendars.contains_key(&r.name), "calendars"),
                        "sla_policy" => (self.set.sla_policies.iter().any(|p| p.name == r.name), "sla_policies"),
                        _ => (self.set.escalation_policies.contains_key(&r.name), "escalation_policies"),
                    };
                    if known {
                        continue;
                    }
                    format!("{what}: no {:?} in {section}", r.name)
                }
            };
            self.errors.push(located(&r.file, Some(r.at), Some(r.who), problem));
        }
        if self.set.incident_rules.is_empty() && !self.opts.allow_empty && self.errors.is_empty() {
            self.errors.push(located(
                dir,
                None,
                None,
                "no incident rules: every alert would be stored and none would open an incident; add rules, or set \
                 allow_empty: true in the config to run without"
                    .into(),
            ));
        }
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        let mut set = self.set;
        set.files = files;
        set.templates = self.templates.finish();
        set.index = RouteIndex::build(&set.incident_rules);
        Ok(set)
    }
}
