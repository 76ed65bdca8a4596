//! `alertgate check` on schedules, heartbeats and the people they page:
//! people live in the config, schedules in the rules, and `check` (like
//! `serve` and a reload) checks that every person the rules name exists
//! and can be paged.
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_alertgate");

const RULES: &str = r#"schedules:
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
"#;

const NOTIFIERS: &str = r#"notifiers:
  - {name: chatops, type: webhook, url: "http://127.0.0.1:9/hook"}
  - {name: mail, type: email, smtp: {host: 127.0.0.1, port: 2525, tls: none}, from: alertgate@example.org, to: [ops@example.org]}
"#;

const PEOPLE: &str = r#"people:
  - name: alice
    email: alice@example.org
    timezone: Europe/Berlin
    webhook: {notifier: chatops, handle: "@alice"}
  - {name: bob, email: bob@example.org}
  - {name: dave, webhook: {notifier: chatops, handle: "@dave"}}
"#;

/// `alertgate check` with these rules (and this config), its exit code and stdout.
fn check(dir: &Path, rules: &str, config: Option<&str>) -> (Option<i32>, String) {
    let rules_dir = dir.join("rules");
    std::fs::create_dir_all(&rules_dir).unwrap();
    std::fs::write(rules_dir.join("oncall.yaml"), rules).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("check").arg("--rules").arg(&rules_dir).env_remove("ALERTGATE_CONFIG").env_remove("ALERTGATE_RULES");
    if let Some(text) = config {
        let path = dir.join("alertgate.yml");
        std::fs::write(&path, text).unwrap();
        cmd.arg("--config").arg(path);
    }
    let out = cmd.output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn schedules_and_heartbeats_check_against_the_configs_people() {
    let dir = tempfile::tempdir().unwrap();
    let with_carol = format!("{NOTIFIERS}{PEOPLE}  - {{name: carol, email: carol@example.org}}\n");
    let (code, out) = check(dir.path(), RULES, Some(&with_carol));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("ok: 1 rule file(s), 1 incident rule(s)"), "{out}");
    assert!(out.contains("1 schedule(s), 1 heartbeat(s)"), "{out}");

    // Carol, named twice, is not in the config: each place is reported.
    let (code, out) = check(dir.path(), RULES, Some(&format!("{NOTIFIERS}{PEOPLE}")));
    assert_eq!(code, Some(1), "{out}");
    let file = dir.path().join("rules/oncall.yaml");
    let want = [
        format!(
            "{}:6:41: rule schedules.payments-primary: layers[0].rotation.people[2]: no person \"carol\" in the config's people (known: alice, bob, dave)",
            file.display()
        ),
        format!("{}:20:31: rule escalation_policies.payments: steps[1].notify[0]: no person \"carol\"", file.display()),
    ];
    for w in &want {
        assert!(out.lines().any(|l| l.starts_with(w.as_str())), "no line starting with {w:?} in {out}");
    }
    assert_eq!(out.lines().count(), 2, "{out}");

    // Carol reachable by email only, with no email notifier: not pageable.
    let no_mail = "notifiers:\n  - {name: chatops, type: webhook, url: \"http://127.0.0.1:9/hook\"}\n";
    let (code, out) =
        check(dir.path(), RULES, Some(&format!("{no_mail}people:\n  - {{name: carol, email: carol@example.org}}\n")));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("people[0]: carol has only an email address and the config has no email notifier"), "{out}");

    // A schedule that names nobody the config could know: without a config, no people at all.
    let solo = "schedules:\n  - name: s\n    layers: [{name: l, rotation: {people: [sam], shift: 1d}}]\nincident_rules:\n  - name: all\n";
    let (code, out) = check(dir.path(), solo, None);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("no person \"sam\" in the config's people (none are defined)"), "{out}");
}
