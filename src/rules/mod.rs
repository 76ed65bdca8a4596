//! Rule files: `rules/*.yaml`, all files in the directory merged in name
//! order. Each file is parsed into raw types (unknown keys are errors), then
//! compiled into checked rules; every problem of every file is reported with
//! its file, line and rule name. `alertgate check` runs this same code.
pub mod heartbeat;
pub mod incident;
mod load;
pub mod matcher;
pub mod policy;
pub mod target;
pub mod template;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::model::Duration;
use crate::model::incident::PriorityMatrix;
use crate::oncall::Schedule;
use crate::sla::calendar::Calendar;
use incident::{IncidentRule, InhibitRule};
use policy::{EscalationPolicy, ProblemRule, SlaPolicy};
use template::Templates;

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
    /// Which incidents need a published post-incident review.
    pub reviews: policy::ReviewPolicy,
    /// On-call schedules by name.
    pub schedules: BTreeMap<String, Schedule>,
    /// Heartbeats by name.
    pub heartbeats: BTreeMap<String, heartbeat::Heartbeat>,
    /// Every place the rules name a person; people live in the config, so
    /// these are checked where config and rules meet.
    pub person_references: Vec<target::PersonReference>,
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
            reviews: policy::ReviewPolicy::default(),
            schedules: BTreeMap::new(),
            heartbeats: BTreeMap::new(),
            person_references: Vec::new(),
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
        self.route_indexes(labels).into_iter().map(|i| &self.incident_rules[i]).collect()
    }

    /// [`RuleSet::route`] as indexes into `incident_rules`.
    pub fn route_indexes(&self, labels: &crate::model::LabelSet) -> Vec<usize> {
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
                out.push(i);
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
    pub column: Option<usize>,
    pub rule: Option<String>,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        if let Some(r) = &self.rule {
            write!(f, ": rule {r}")?;
        }
        // One line per problem, whatever the message (a regex error spans several).
        let message: Vec<&str> = self.message.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        write!(f, ": {}", message.join(" "))
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
        let entries = std::fs::read_dir(dir).map_err(|e| {
            vec![RuleError {
                file: dir.to_path_buf(),
                line: None,
                column: None,
                rule: None,
                message: format!("cannot read rules directory: {e}"),
            }]
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        let mut loader = load::Loader::new(opts);
        for file in &files {
            loader.file(file);
        }
        loader.finish(dir, files)
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
    fn every_kind_of_mistake_names_file_line_column_and_rule() {
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
        // Each at the key or value at fault, not at the rule's first line.
        let want = [
            ("r.yaml:5:16: rule broken: matchers[0]:", "invalid regex"),
            ("r.yaml:6:19: rule broken: group_window:", "invalid duration"),
            ("r.yaml:8:13: rule broken: impact:", "huge"),
            ("r.yaml:9:53: rule broken: urgency_from.map.critical:", "urgent"),
            ("r.yaml:10:17: rule broken: min_alerts", "at least 1"),
            ("r.yaml:7:12: rule broken: title:", "syntax error"),
            ("r.yaml:14:5: rule inhibit_rules[0]:", "source_matchers"),
            ("r.yaml:12:16: priority_matrix.high.high:", "P0"),
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
        assert!(errs[0].to_string().contains("b.yaml:3:11: rule x"), "{}", errs[0]);
        assert!(errs[1].to_string().contains("priority_matrix is already defined"));
    }

    #[test]
    fn reviews_are_required_by_rule_or_by_priority_and_checked() {
        let set = load(&[(
            "r.yaml",
            "reviews: {required_for: [P1, P2], due_within: 3d}\nincident_rules:\n  - {name: a, matchers: ['x=\"1\"'], review: required}\n",
        )])
        .unwrap();
        assert!(set.incident_rules[0].review_required);
        use crate::model::incident::Priority;
        assert_eq!(set.reviews.required_for, [Priority::P1, Priority::P2]);
        assert_eq!(set.reviews.due_within, Duration::from_secs(3 * 86_400));
        let errs = load(&[(
            "r.yaml",
            "reviews: {required_for: [P9]}\nincident_rules:\n  - {name: a, matchers: ['x=\"1\"'], review: maybe}\n",
        )])
        .unwrap_err();
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(text.iter().any(|e| e.contains("required_for[0]") && e.contains("P9")), "{text:?}");
        assert!(text.iter().any(|e| e.contains("review: expected required or optional")), "{text:?}");
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
            "b.yaml:5:11: rule sla_policies.biz: duplicate sla policy name",
            "b.yaml:8:3: rule calendars.24x7: 24x7 is built in",
            "b.yaml:3:15: rule sla_policies.biz: calendar: no \"business-us\" in calendars",
            "b.yaml:11:17: rule payments: sla_policy: no \"nope\" in sla_policies",
            "b.yaml:12:17: rule payments: escalation: no \"missing\" in escalation_policies",
        ];
        for w in want {
            assert!(errs.iter().any(|e| e.contains(w)), "no {w:?} in {errs:#?}");
        }
        assert_eq!(errs.len(), want.len(), "{errs:#?}");
    }

    #[test]
    fn schedules_heartbeats_and_targets_compile() {
        use target::Target;
        let a = r#"schedules:
  - name: payments-primary
    timezone: Europe/Berlin
    layers:
      - name: weekly
        rotation: {people: [alice, bob, carol], shift: 1w, handoff: "mon 09:00", start: 2026-11-02}
      - name: business-hours-backup
        rotation: {people: [dave], shift: 1d, handoff: "09:00"}
        restrict: {mon-fri: "09:00-17:00"}
heartbeats:
  - name: prometheus-prod
    interval: 1m
    grace: 2m
    matchers: ['alertname="Watchdog"', 'prometheus="monitoring/k8s"']
    labels: {service: monitoring, severity: critical}
escalation_policies:
  - name: payments
    steps:
      - {after: 0m,  notify: [schedule:payments-primary]}
      - {after: 15m, notify: [person:carol, chatops]}
incident_rules:
  - name: payments
    escalation: payments
    assign_to: schedule:payments-primary
  - name: db
    assign_to: dba-team
"#;
        let set = load(&[("a.yaml", a)]).unwrap();
        let s = &set.schedules["payments-primary"];
        assert_eq!(s.layers.len(), 2);
        let at = "2026-11-02T10:00:00Z".parse().unwrap();
        assert_eq!(crate::oncall::on_call(s, &[], at).unwrap().person, "dave");
        let h = &set.heartbeats["prometheus-prod"];
        assert_eq!((h.interval, h.grace), (Duration::from_secs(60), Duration::from_secs(120)));
        let steps = &set.escalation_policies["payments"].steps;
        assert_eq!(steps[0].notify, [Target::Schedule("payments-primary".into())]);
        assert_eq!(steps[1].notify, [Target::Person("carol".into()), Target::Notifier("chatops".into())]);
        let rule = &set.incident_rules[0];
        assert_eq!(rule.assign_to.as_deref(), Some("schedule:payments-primary"));
        assert_eq!(rule.assign_to_target, Some(Target::Schedule("payments-primary".into())));
        assert_eq!(set.incident_rules[1].assign_to_target, None, "a plain name is an assignment group");
        // Every person the rules name, where, for the config to check.
        let named: Vec<String> = set
            .person_references
            .iter()
            .map(|r| {
                format!(
                    "{}:{}:{} {} {} {}",
                    r.file.file_name().unwrap().to_string_lossy(),
                    r.line,
                    r.column,
                    r.rule,
                    r.field,
                    r.person
                )
            })
            .collect();
        assert_eq!(
            named,
            [
                "a.yaml:6:29 schedules.payments-primary layers[0].rotation.people[0] alice",
                "a.yaml:6:36 schedules.payments-primary layers[0].rotation.people[1] bob",
                "a.yaml:6:41 schedules.payments-primary layers[0].rotation.people[2] carol",
                "a.yaml:8:29 schedules.payments-primary layers[1].rotation.people[0] dave",
                "a.yaml:20:31 escalation_policies.payments steps[1].notify[0] carol",
            ]
        );
    }

    #[test]
    fn schedule_and_heartbeat_mistakes_name_file_line_column_and_rule() {
        let a = "schedules:
  - name: s
    timezone: Europe/Berln
    layers:
      - name: weekly
        rotation: {people: [a], shift: 1 week, handoff: 'mon 9am'}
        restrict: {mon-fry: '09:00-17:00'}
  - name: s
    layers: [{name: l, rotation: {people: [a], shift: 1d}}]
heartbeats:
  - name: hb
    interval: 500ms
    matchers: ['job=~\"(\"']
  - name: hb
    interval: 1m
    timeout: 2m
escalation_policies:
  - name: p
    steps: [{after: 0m, notify: ['schedule:nope', chatops]}]
  - name: q
    steps: [{after: 0m, notify: ['person:']}]
incident_rules:
  - name: r
    assign_to: schedule:missing
";
        let errs: Vec<String> = load(&[("a.yaml", a)]).unwrap_err().iter().map(|e| e.to_string()).collect();
        let want = [
            "a.yaml:3:15: rule schedules.s: timezone: unknown time zone \"Europe/Berln\"",
            "a.yaml:6:40: rule schedules.s: layers[0].rotation.shift: \"1 week\" is not a shift length",
            "a.yaml:6:57: rule schedules.s: layers[0].rotation.handoff: \"mon 9am\" is not a handoff",
            "a.yaml:7:29: rule schedules.s: layers[0].restrict.mon-fry: unknown day \"fry\"",
            "a.yaml:8:11: rule schedules.s: duplicate schedule name (first defined at",
            "a.yaml:12:15: rule heartbeats.hb: interval: at least 1s",
            "a.yaml:13:16: rule heartbeats.hb: matchers[0]: bad matcher",
            "a.yaml:16:5: rule heartbeats.hb: unknown field `timeout`",
            "a.yaml:14:11: rule heartbeats.hb: duplicate heartbeat name (first defined at",
            "a.yaml:19:34: rule escalation_policies.p: steps[0].notify[0]: no schedule \"nope\" in schedules",
            "a.yaml:21:34: rule escalation_policies.q: steps[0].notify[0]: \"person:\": give a name after the colon",
            "a.yaml:24:16: rule r: assign_to: no schedule \"missing\" in schedules",
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
