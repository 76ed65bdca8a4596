//! Rule files: `rules/*.yaml`, all files in the directory merged in name
//! order. Each file is parsed into raw types (unknown keys are errors), then
//! compiled into checked rules; every problem of every file is reported with
//! its file, line and rule name. `alertgate check` runs this same code.
pub mod incident;
pub mod matcher;
pub mod policy;
pub mod template;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model::Duration;
use crate::model::incident::PriorityMatrix;
use crate::sla::calendar::{Calendar, RawCalendar};
use crate::yaml::{Spanned, line_of};
use incident::{IncidentRule, InhibitRule, RawIncidentRule, RawInhibitRule};
use policy::{
    EscalationPolicy, ProblemRule, RawChangeCorrelation, RawEscalationPolicy, RawProblemRule, RawSlaPolicy, SlaPolicy,
};
use template::{TemplateBuilder, Templates};

/// The top level of one rule file. Unknown keys are errors: a typo in a
/// section name must not silently disable it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    incident_rules: Vec<Spanned<RawIncidentRule>>,
    priority_matrix: Option<Spanned<BTreeMap<String, BTreeMap<String, String>>>>,
    #[serde(default)]
    inhibit_rules: Vec<Spanned<RawInhibitRule>>,
    #[serde(default)]
    calendars: BTreeMap<String, Spanned<RawCalendar>>,
    #[serde(default)]
    sla_policies: Vec<Spanned<RawSlaPolicy>>,
    #[serde(default)]
    escalation_policies: Vec<Spanned<RawEscalationPolicy>>,
    #[serde(default)]
    problem_rules: Vec<Spanned<RawProblemRule>>,
    change_correlation: Option<Spanned<RawChangeCorrelation>>,
}

/// All rule files of a directory, compiled.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub files: Vec<PathBuf>,
    pub incident_rules: Vec<IncidentRule>,
    pub inhibit_rules: Vec<InhibitRule>,
    pub priority_matrix: PriorityMatrix,
    pub templates: Templates,
    /// By name; always holds the built-in `24x7`. Shared, as every clock
    /// operation looks one up.
    pub calendars: HashMap<String, std::sync::Arc<Calendar>>,
    /// In order: the first whose matchers match an incident applies.
    pub sla_policies: Vec<SlaPolicy>,
    pub escalation_policies: HashMap<String, EscalationPolicy>,
    pub problem_rules: Vec<ProblemRule>,
    /// How long after a change an incident of its service lists it.
    pub change_window: Duration,
    index: RouteIndex,
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet {
            files: Vec::new(),
            incident_rules: Vec::new(),
            inhibit_rules: Vec::new(),
            priority_matrix: PriorityMatrix::default(),
            templates: Templates::default(),
            calendars: HashMap::from([(Calendar::ALWAYS.to_owned(), std::sync::Arc::new(Calendar::always()))]),
            sla_policies: Vec::new(),
            escalation_policies: HashMap::new(),
            problem_rules: Vec::new(),
            change_window: policy::DEFAULT_CHANGE_WINDOW,
            index: RouteIndex::default(),
        }
    }
}

/// Which incident rules can match an alert at all, found without testing
/// every rule: each rule with an equality matcher is filed under that
/// label's value, the others are always candidates. With a thousand rules an
/// alert is tested against the few that name its labels.
#[derive(Debug, Default, Clone)]
struct RouteIndex {
    by_label: std::collections::HashMap<String, std::collections::HashMap<String, Vec<usize>>>,
    always: Vec<usize>,
}

impl RouteIndex {
    fn build(rules: &[IncidentRule]) -> Self {
        let mut idx = RouteIndex::default();
        for (i, rule) in rules.iter().enumerate() {
            let key = rule.matchers.iter().find(|m| m.op == matcher::MatchOp::Equal && !m.value.is_empty());
            match key {
                Some(m) => idx.by_label.entry(m.name.clone()).or_default().entry(m.value.clone()).or_default().push(i),
                None => idx.always.push(i),
            }
        }
        idx
    }
}

impl RuleSet {
    /// A calendar by name. One a reload removed counts as 24x7, so a clock
    /// that uses it keeps running rather than stopping.
    pub fn calendar(&self, name: &str) -> std::sync::Arc<Calendar> {
        match self.calendars.get(name).or_else(|| self.calendars.get(Calendar::ALWAYS)) {
            Some(c) => c.clone(),
            None => std::sync::Arc::new(Calendar::always()),
        }
    }

    /// The incident rules an alert routes to, in rule order: the first
    /// match, and further matches while the matched rules say `continue`.
    pub fn route(&self, labels: &crate::model::LabelSet) -> Vec<&IncidentRule> {
        let mut candidates: Vec<usize> = self.index.always.clone();
        for (name, values) in &self.index.by_label {
            if let Some(found) = labels.get(name).and_then(|v| values.get(v)) {
                candidates.extend_from_slice(found);
            }
        }
        candidates.sort_unstable();
        let mut out = Vec::new();
        for i in candidates {
            let rule = &self.incident_rules[i];
            if rule.matches(labels) {
                out.push(rule);
                if !rule.continue_matching {
                    break;
                }
            }
        }
        out
    }
}

/// How a rule directory is loaded.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions<'a> {
    /// The notifiers the config defines; rules may name only these.
    pub notifiers: Option<&'a [&'a str]>,
    /// Accept empty files and a set without incident rules.
    pub allow_empty: bool,
}

/// One problem in a rule file, located as precisely as known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub rule: Option<String>,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(r) = &self.rule {
            write!(f, ": rule {r}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl RuleSet {
    /// Load every `*.yaml` / `*.yml` file of `dir`, in name order, and
    /// report every error of every file.
    pub fn load_dir(dir: &Path) -> Result<RuleSet, Vec<RuleError>> {
        Self::load_dir_with(dir, None)
    }

    /// As [`RuleSet::load_dir`], and every notifier the rules name
    /// (`notify:` of incident rules and escalation steps) must be one of
    /// `notifiers` when given.
    pub fn load_dir_with(dir: &Path, notifiers: Option<&[&str]>) -> Result<RuleSet, Vec<RuleError>> {
        Self::load(dir, &LoadOptions { notifiers, allow_empty: true })
    }

    /// What the gateway loads: as [`RuleSet::load_dir_with`], and unless
    /// `allow_empty`, an empty file or a set without incident rules is an
    /// error: a rule file truncated mid-deploy must not turn paging off.
    pub fn load(dir: &Path, opts: &LoadOptions<'_>) -> Result<RuleSet, Vec<RuleError>> {
        let notifiers = opts.notifiers;
        let err = |file: &Path, line: Option<usize>, rule: Option<String>, message: String| RuleError {
            file: file.to_path_buf(),
            line,
            rule,
            message,
        };
        let entries = std::fs::read_dir(dir)
            .map_err(|e| vec![err(dir, None, None, format!("cannot read rules directory: {e}"))])?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        let mut set = RuleSet::default();
        let mut templates = TemplateBuilder::default();
        let mut errors = Vec::new();
        let mut matrix_from: Option<(PathBuf, usize)> = None;
        let mut names: BTreeMap<String, (PathBuf, usize)> = BTreeMap::new();
        // Every other named section: (section, name) -> where first defined.
        let mut defined: BTreeMap<(&str, String), (PathBuf, usize)> = BTreeMap::new();
        let mut duplicate = |section: &'static str, name: &str, file: &Path, line: usize| -> Option<String> {
            let first = defined.get(&(section, name.to_owned())).cloned();
            defined.entry((section, name.to_owned())).or_insert((file.to_path_buf(), line));
            first.map(|(f, l)| format!("duplicate {section} name (first defined at {}:{l})", f.display()))
        };
        // References to check once every file is read: (file, line, rule, what, name).
        let mut references: Vec<(PathBuf, usize, String, &str, String)> = Vec::new();
        let mut change_from: Option<(PathBuf, usize)> = None;
        for file in &files {
            let text = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(err(file, None, None, format!("cannot read: {e}")));
                    continue;
                }
            };
            if text.trim().is_empty() {
                if !opts.allow_empty {
                    errors.push(err(
                        file,
                        None,
                        None,
                        "the file is empty (a deploy caught mid-write?); remove it, or set allow_empty: true in \
                         the config"
                            .into(),
                    ));
                }
                continue;
            }
            let rf = match crate::yaml::from_str::<RuleFile>(&text) {
                Ok(rf) => rf,
                Err(e) => {
                    errors.push(err(file, e.line, None, e.message));
                    continue;
                }
            };
            for spanned in rf.incident_rules {
                let line = line_of(&spanned);
                let raw = spanned.value;
                let name = raw.name().to_owned();
                if let Some((f, l)) = names.get(&name) {
                    errors.push(err(
                        file,
                        Some(line),
                        Some(name.clone()),
                        format!("duplicate rule name (first defined at {}:{l})", f.display()),
                    ));
                }
                names.insert(name.clone(), (file.clone(), line));
                match raw.compile(set.incident_rules.len(), &mut templates) {
                    Ok(rule) => {
                        if let Some(p) = &rule.sla_policy {
                            references.push((file.clone(), line, name.clone(), "sla_policy", p.clone()));
                        }
                        if let Some(p) = &rule.escalation {
                            references.push((file.clone(), line, name.clone(), "escalation", p.clone()));
                        }
                        for n in &rule.notify {
                            references.push((file.clone(), line, name.clone(), "notify", n.clone()));
                        }
                        set.incident_rules.push(rule)
                    }
                    Err(problems) => {
                        errors.extend(problems.into_iter().map(|m| err(file, Some(line), Some(name.clone()), m)))
                    }
                }
            }
            for (i, spanned) in rf.inhibit_rules.into_iter().enumerate() {
                let line = line_of(&spanned);
                match spanned.value.compile() {
                    Ok(rule) => set.inhibit_rules.push(rule),
                    Err(problems) => errors.extend(
                        problems.into_iter().map(|m| err(file, Some(line), Some(format!("inhibit_rules[{i}]")), m)),
                    ),
                }
            }
            for (name, spanned) in rf.calendars {
                let line = line_of(&spanned);
                let who = Some(format!("calendars.{name}"));
                if name == Calendar::ALWAYS {
                    errors.push(err(file, Some(line), who, format!("{name} is built in and cannot be redefined")));
                    continue;
                }
                if let Some(m) = duplicate("calendar", &name, file, line) {
                    errors.push(err(file, Some(line), who.clone(), m));
                }
                match Calendar::compile(&name, &spanned.value) {
                    Ok(c) => {
                        set.calendars.insert(name, std::sync::Arc::new(c));
                    }
                    Err(problems) => errors.extend(problems.into_iter().map(|m| err(file, Some(line), who.clone(), m))),
                }
            }
            for spanned in rf.sla_policies {
                let line = line_of(&spanned);
                let name = spanned.value.name().to_owned();
                let who = Some(format!("sla_policies.{name}"));
                if let Some(m) = duplicate("sla policy", &name, file, line) {
                    errors.push(err(file, Some(line), who.clone(), m));
                }
                match spanned.value.compile() {
                    Ok(p) => {
                        references.push((
                            file.clone(),
                            line,
                            format!("sla_policies.{name}"),
                            "calendar",
                            p.calendar.clone(),
                        ));
                        set.sla_policies.push(p);
                    }
                    Err(problems) => errors.extend(problems.into_iter().map(|m| err(file, Some(line), who.clone(), m))),
                }
            }
            for spanned in rf.escalation_policies {
                let line = line_of(&spanned);
                let name = spanned.value.name().to_owned();
                let who = Some(format!("escalation_policies.{name}"));
                if let Some(m) = duplicate("escalation policy", &name, file, line) {
                    errors.push(err(file, Some(line), who.clone(), m));
                }
                match spanned.value.compile() {
                    Ok(p) => {
                        for (i, step) in p.steps.iter().enumerate() {
                            for n in &step.notify {
                                let who = format!("escalation_policies.{name}");
                                references.push((file.clone(), line, who, "notify", format!("{i}:{n}")));
                            }
                        }
                        set.escalation_policies.insert(name, p);
                    }
                    Err(problems) => errors.extend(problems.into_iter().map(|m| err(file, Some(line), who.clone(), m))),
                }
            }
            for spanned in rf.problem_rules {
                let line = line_of(&spanned);
                let name = spanned.value.name().to_owned();
                let who = Some(format!("problem_rules.{name}"));
                if let Some(m) = duplicate("problem rule", &name, file, line) {
                    errors.push(err(file, Some(line), who.clone(), m));
                }
                match spanned.value.compile() {
                    Ok(r) => set.problem_rules.push(r),
                    Err(problems) => errors.extend(problems.into_iter().map(|m| err(file, Some(line), who.clone(), m))),
                }
            }
            if let Some(c) = rf.change_correlation {
                let line = line_of(&c);
                if let Some((f, l)) = &change_from {
                    errors.push(err(
                        file,
                        Some(line),
                        None,
                        format!("change_correlation is already defined at {}:{l}", f.display()),
                    ));
                }
                change_from = Some((file.clone(), line));
                match c.value.compile() {
                    Ok(w) => set.change_window = w,
                    Err(problems) => errors.extend(problems.into_iter().map(|m| err(file, Some(line), None, m))),
                }
            }
            if let Some(m) = rf.priority_matrix {
                let line = line_of(&m);
                if let Some((f, l)) = &matrix_from {
                    errors.push(err(
                        file,
                        Some(line),
                        None,
                        format!("priority_matrix is already defined at {}:{l}", f.display()),
                    ));
                }
                matrix_from = Some((file.clone(), line));
                match incident::compile_matrix(&m.value) {
                    Ok(matrix) => set.priority_matrix = matrix,
                    Err(problems) => errors.extend(problems.into_iter().map(|msg| err(file, Some(line), None, msg))),
                }
            }
        }
        for (file, line, who, what, name) in references {
            if what == "notify" {
                let Some(known) = notifiers else { continue };
                // Escalation steps carry their index: `STEP:NAME`.
                let (field, name) = match (who.starts_with("escalation_policies."), name.split_once(':')) {
                    (true, Some((step, n))) => (format!("steps[{step}].notify"), n.to_owned()),
                    _ => ("notify".to_owned(), name),
                };
                if !known.contains(&name.as_str()) {
                    let list = if known.is_empty() { "none are configured".to_owned() } else { known.join(", ") };
                    errors.push(err(
                        &file,
                        Some(line),
                        Some(who),
                        format!("{field}: no notifier {name:?} in the config (known: {list})"),
                    ));
                }
                continue;
            }
            let known = match what {
                "calendar" => set.calendars.contains_key(&name),
                "sla_policy" => set.sla_policies.iter().any(|p| p.name == name),
                _ => set.escalation_policies.contains_key(&name),
            };
            if !known {
                let section = match what {
                    "calendar" => "calendars",
                    "sla_policy" => "sla_policies",
                    _ => "escalation_policies",
                };
                errors.push(err(&file, Some(line), Some(who), format!("{what}: no {name:?} in {section}")));
            }
        }
        if set.incident_rules.is_empty() && !opts.allow_empty && errors.is_empty() {
            errors.push(err(
                dir,
                None,
                None,
                "no incident rules: every alert would be stored and none would open an incident; add rules, or set \
                 allow_empty: true in the config to run without"
                    .into(),
            ));
        }
        set.files = files;
        set.templates = templates.finish();
        set.index = RouteIndex::build(&set.incident_rules);
        if errors.is_empty() { Ok(set) } else { Err(errors) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_rules_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let set = RuleSet::load_dir(&dir).unwrap();
        assert!(!set.files.is_empty());
        let last = set.incident_rules.last().expect("incident rules");
        assert!(last.matchers.is_empty(), "the shipped rules end with a catch-all");
    }

    #[test]
    fn errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "incident_rules: []\n").unwrap();
        std::fs::write(dir.path().join("b.yaml"), "incident_rules: []\ninhibit_rulez: []\n").unwrap();
        std::fs::write(dir.path().join("c.yml"), "incident_rules: [\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a rule file").unwrap();
        let errs = RuleSet::load_dir(dir.path()).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        let first = errs[0].to_string();
        assert!(first.contains("b.yaml:2"), "{first}");
        assert!(first.contains("inhibit_rulez"), "{first}");
        assert!(errs[1].to_string().contains("c.yml"));
    }

    fn load(files: &[(&str, &str)]) -> Result<RuleSet, Vec<RuleError>> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        RuleSet::load_dir(dir.path())
    }

    #[test]
    fn every_kind_of_mistake_names_file_line_and_rule() {
        let text = "incident_rules:
  - name: ok
    matchers: ['severity=\"critical\"']
  - name: broken
    matchers: ['job=~\"(\"']
    group_window: 4 hours
    title: '{{ labels.alertname '
    impact: huge
    urgency_from: {label: severity, map: {critical: urgent}}
    min_alerts: 0
priority_matrix:
  high: {high: P0}
inhibit_rules:
  - source_matchers: []
    target_matchers: ['a=\"b\"']
";
        let errs = load(&[("r.yaml", text)]).unwrap_err();
        let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        let want = [
            ("r.yaml:4: rule broken: matchers:", "invalid regex"),
            ("r.yaml:4: rule broken: group_window:", "invalid duration"),
            ("r.yaml:4: rule broken: impact:", "huge"),
            ("r.yaml:4: rule broken: urgency_from.map.critical:", "urgent"),
            ("r.yaml:4: rule broken: min_alerts", "at least 1"),
            ("r.yaml:4: rule broken: title:", "syntax error"),
            ("r.yaml:14: rule inhibit_rules[0]:", "source_matchers"),
            ("r.yaml:12: priority_matrix.high.high:", "P0"),
        ];
        for (prefix, part) in want {
            assert!(
                lines.iter().any(|l| l.contains(prefix) && l.contains(part)),
                "no line with {prefix:?} and {part:?} in {lines:#?}"
            );
        }
        assert_eq!(lines.len(), want.len(), "{lines:#?}");
    }

    #[test]
    fn duplicates_across_files_are_errors() {
        let a = "incident_rules:\n  - name: x\npriority_matrix: {low: {low: P4}}\n";
        let b = "incident_rules:\n  - name: y\n  - name: x\npriority_matrix: {low: {low: P5}}\n";
        let errs = load(&[("a.yaml", a), ("b.yaml", b)]).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].to_string().contains("duplicate rule name (first defined at"));
        assert!(errs[0].to_string().contains("b.yaml:3: rule x"));
        assert!(errs[1].to_string().contains("priority_matrix is already defined"));
    }

    #[test]
    fn rules_compile_to_typed_values() {
        use crate::model::incident::{Impact, Priority, Urgency};
        let text = "incident_rules:
  - name: crashloops
    matchers: ['alertname=\"KubePodCrashLooping\"', 'namespace=~\"prod-.*\"']
    group_by: [alertname, namespace]
    group_window: 4h
    title: '{{ labels.alertname }} in {{ labels.namespace }}'
    impact: high
    urgency_from: {label: severity, map: {critical: high, warning: medium}, default: low}
    auto_resolve_after: never
    continue: true
priority_matrix:
  high: {medium: P1}
";
        let set = load(&[("r.yaml", text)]).unwrap();
        let r = &set.incident_rules[0];
        let labels: crate::model::LabelSet = [
            ("alertname".to_string(), "KubePodCrashLooping".to_string()),
            ("namespace".to_string(), "prod-eu".to_string()),
            ("severity".to_string(), "warning".to_string()),
        ]
        .into();
        assert!(r.matches(&labels));
        assert_eq!(r.group_key(&labels), r#"crashloops{alertname="KubePodCrashLooping",namespace="prod-eu"}"#);
        assert_eq!(r.priority(&set.priority_matrix, &labels), (Impact::High, Urgency::Medium, Priority::P1));
        assert_eq!(r.auto_resolve_after, None);
        assert!(r.continue_matching);
        let title = set.templates.render(&r.title_template, &labels, &Default::default()).unwrap();
        assert_eq!(title, "KubePodCrashLooping in prod-eu");
    }

    #[test]
    fn itsm_sections_compile_and_cross_references_are_checked() {
        let a = "calendars:
  business-eu:
    timezone: Europe/Berlin
    hours: {mon-fri: \"09:00-17:00\"}
sla_policies:
  - name: biz
    calendar: business-eu
    targets: {P1: {respond: 15m}}
escalation_policies:
  - name: pay
    steps: [{after: 0m, notify: [oncall]}]
problem_rules:
  - name: recurring
    group_by: [rule, service]
change_correlation: {window: 2h}
incident_rules:
  - name: payments
    sla_policy: biz
    escalation: pay
    notify: [chatops]
";
        let set = load(&[("a.yaml", a)]).unwrap();
        assert_eq!(set.sla_policies[0].calendar, "business-eu");
        assert!(set.calendars.contains_key("business-eu") && set.calendars.contains_key("24x7"));
        assert_eq!(set.escalation_policies["pay"].steps.len(), 1);
        assert_eq!(set.problem_rules[0].min_incidents, 3);
        assert_eq!(set.change_window, Duration::from_secs(7200));
        assert_eq!(set.incident_rules[0].notify, ["chatops"]);

        let b = "sla_policies:
  - name: biz
    calendar: business-us
    targets: {P1: {respond: 15m}}
  - name: biz
    targets: {P1: {respond: 15m}}
calendars:
  24x7: {}
incident_rules:
  - name: payments
    sla_policy: nope
    escalation: missing
";
        let errs: Vec<String> = load(&[("b.yaml", b)]).unwrap_err().iter().map(|e| e.to_string()).collect();
        let want = [
            "b.yaml:5: rule sla_policies.biz: duplicate sla policy name",
            "calendars.24x7: 24x7 is built in",
            "b.yaml:2: rule sla_policies.biz: calendar: no \"business-us\" in calendars",
            "b.yaml:10: rule payments: sla_policy: no \"nope\" in sla_policies",
            "b.yaml:10: rule payments: escalation: no \"missing\" in escalation_policies",
        ];
        for w in want {
            assert!(errs.iter().any(|e| e.contains(w)), "no {w:?} in {errs:#?}");
        }
        assert_eq!(errs.len(), want.len(), "{errs:#?}");
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let errs = RuleSet::load_dir(Path::new("/nonexistent/rules")).unwrap_err();
        assert!(errs[0].message.contains("cannot read rules directory"));
    }
}
