//! Alertmanager's API v2 on alertgate, against Debian's real `amtool` and
//! a real Alertmanager 0.25:
//! - amtool queries alerts (with matchers), adds, queries and expires
//!   silences, and round-trips them through `silence query -o json |
//!   silence import`, into the same gateway and into a fresh one;
//! - silences made through either API are the same silences;
//! - a differential test sends the same alerts and silences to Alertmanager
//!   and to alertgate (whose rules mirror Alertmanager's routes) and
//!   compares every answer field by field: keys, JSON types, enum values,
//!   and the values themselves where both must agree (times and ids are
//!   compared by format and by mapping);
//! - the role each call needs, with tokens, also through amtool.
//!
//! Everything listens on 127.0.0.1 with ephemeral ports.
mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Gateway, Options, Proc, get, post, run_to_exit, wait_for};
use serde_json::{Value, json};

const AMTOOL: &str = "/usr/bin/amtool";
const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
const WAIT: Duration = Duration::from_secs(30);

/// The routing both sides share: alertgate's rules and, below, the same
/// routes as an Alertmanager config.
const RULES: &str = r#"
incident_rules:
  - name: team-a
    matchers: ['team="a"']
    group_by: [alertname, cluster]
    continue: true
  - name: critical
    matchers: ['severity="critical"']
    group_by: [alertname]
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [alertname]
"#;

const AM_CONFIG: &str = r#"
route:
  receiver: unrouted
  routes:
    - receiver: team-a
      matchers: ['team="a"']
      group_by: [alertname, cluster]
      continue: true
    - receiver: critical
      matchers: ['severity="critical"']
      group_by: [alertname]
receivers:
  - name: unrouted
  - name: team-a
  - name: critical
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [alertname]
"#;

fn start_gateway(config: Option<String>) -> (Gateway, tempfile::TempDir) {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("rules.yaml"), RULES).unwrap();
    let g = Gateway::start_with(Options { config, rules_dir: Some(rules.path().to_path_buf()), ..Default::default() });
    (g, rules)
}

/// Run amtool against `url`; returns exit success, stdout, stderr.
fn amtool(url: &str, args: &[&str], stdin_file: Option<&Path>, http_config: Option<&Path>) -> (bool, String, String) {
    assert!(Path::new(AMTOOL).exists(), "{AMTOOL} is missing: install Debian's prometheus-alertmanager");
    let mut cmd = Command::new(AMTOOL);
    cmd.arg(format!("--alertmanager.url={url}"));
    if let Some(c) = http_config {
        cmd.arg(format!("--http.config.file={}", c.display()));
    }
    cmd.args(args);
    if let Some(f) = stdin_file {
        // `silence import` reads a file argument as well as stdin.
        cmd.arg(f);
    }
    let (status, out, err) = run_to_exit(&mut cmd, WAIT);
    (status.success(), out, err)
}

fn base(g: &Gateway) -> String {
    format!("http://{}", g.addr)
}

fn alert(labels: Value, annotations: Value, generator: Option<&str>) -> Value {
    let mut a = json!({ "labels": labels, "annotations": annotations });
    if let Some(u) = generator {
        a["generatorURL"] = json!(u);
    }
    a
}

/// The alerts of both tests: an inhibiting critical, the warning it
/// inhibits, an unrouted one (silenced below), one for team a only, one
/// critical of another cluster.
fn test_alerts() -> Value {
    json!([
        alert(
            json!({"alertname": "Disk", "severity": "critical", "team": "a", "cluster": "c1"}),
            json!({"summary": "disk full"}),
            Some("http://prometheus.invalid/graph?g0.expr=disk")
        ),
        alert(json!({"alertname": "Disk", "severity": "warning", "team": "a", "cluster": "c1"}), json!({}), None),
        alert(json!({"alertname": "Cpu", "severity": "warning", "instance": "db-1"}), json!({"summary": "hot"}), None),
        alert(json!({"alertname": "Mem", "severity": "info", "team": "a"}), json!({}), None),
        alert(json!({"alertname": "Net", "severity": "critical", "cluster": "c2"}), json!({}), None),
    ])
}

// ---------------------------------------------------------------- amtool

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amtool_queries_alerts_and_manages_silences() {
    let (g, _rules) = start_gateway(None);
    let url = base(&g);
    let (status, body) = post(&g.url("/api/v2/alerts"), &test_alerts().to_string()).await;
    assert_eq!(status, 200, "{body}");

    // `amtool alert query` shows active alerts (not the inhibited warning).
    let (ok, out, err) = amtool(&url, &["alert", "query"], None, None);
    assert!(ok, "{err}");
    let names: BTreeSet<&str> = out.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(names, BTreeSet::from(["Cpu", "Disk", "Mem", "Net"]), "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("Disk")).count(), 1, "the warning is inhibited:\n{out}");

    // With matchers, amtool's syntax: a bare first word is the alertname.
    let (ok, out, err) = amtool(&url, &["alert", "query", "-o", "json", "Disk", "severity=~crit.*"], None, None);
    assert!(ok, "{err}");
    let found: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(found.len(), 1, "{out}");
    assert_eq!(found[0]["labels"]["severity"], "critical");
    assert_eq!(found[0]["receivers"], json!([{"name": "team-a"}, {"name": "critical"}]));
    let (ok, out, _) = amtool(&url, &["alert", "query", "-o", "json", "--inhibited", "alertname=Disk"], None, None);
    assert!(ok);
    let found: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(found.len(), 1, "only the inhibited one: {out}");
    assert_eq!(found[0]["status"]["state"], "suppressed");
    assert_eq!(found[0]["status"]["inhibitedBy"].as_array().unwrap().len(), 1);

    // `silence add` (amtool's syntax, a bare value), then the alert is silenced.
    let (ok, out, err) = amtool(
        &url,
        &["silence", "add", "alertname=Cpu", "instance=~db-.*", "-c", "disk swap", "-d", "2h", "-a", "tester"],
        None,
        None,
    );
    assert!(ok, "{err}");
    let cpu_silence = out.trim().to_string();
    assert_eq!(cpu_silence.len(), 36, "a UUID: {out}");
    let (ok, out, _) = amtool(&url, &["alert", "query", "Cpu"], None, None);
    assert!(ok);
    assert_eq!(out.lines().count(), 1, "only the header: the alert is silenced:\n{out}");
    let (ok, out, _) = amtool(&url, &["alert", "query", "--silenced", "-o", "json", "Cpu"], None, None);
    assert!(ok);
    let found: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(found[0]["status"]["silencedBy"], json!([cpu_silence]));

    // The same silence through alertgate's own API: one store, one id.
    let (status, v1) = get(&g.url("/api/v1/silences")).await;
    assert_eq!(status, 200);
    let v1 = v1["silences"].as_array().unwrap().clone();
    assert_eq!(v1.len(), 1, "{v1:?}");
    let numeric = v1[0]["id"].as_i64().unwrap();
    // The UUID carries the number in its last group, the database's realm in its first.
    let realm = &cpu_silence[..8];
    assert_ne!(realm, "00000000");
    assert_eq!(cpu_silence, format!("{realm}-0000-4000-8000-{numeric:012x}"));
    assert_eq!(v1[0]["matchers"], json!(["alertname=\"Cpu\"", "instance=~\"db-.*\""]));
    assert_eq!(v1[0]["createdBy"], "tester");
    assert_eq!(v1[0]["comment"], "disk swap");

    // A silence made through /api/v1 shows in amtool, which expires it.
    let ends = (common::wall_clock() + jiff::SignedDuration::from_hours(1)).to_string();
    let body = json!({"matchers": ["alertname=\"Mem\""], "endsAt": ends, "createdBy": "ops", "comment": "v1"});
    let (status, made) = post(&g.url("/api/v1/silences"), &body.to_string()).await;
    assert_eq!(status, 201, "{made}");
    let mem_silence = format!("{realm}-0000-4000-8000-{:012x}", made["id"].as_i64().unwrap());
    let (ok, out, _) = amtool(&url, &["silence", "query"], None, None);
    assert!(ok);
    assert!(out.contains(&cpu_silence) && out.contains(&mem_silence), "{out}");
    let (ok, out, _) = amtool(&url, &["silence", "query", "-q", "alertname=Mem"], None, None);
    assert!(ok);
    assert_eq!(out.trim(), mem_silence, "filtered by matcher");

    let (ok, _, err) = amtool(&url, &["silence", "expire", &mem_silence], None, None);
    assert!(ok, "{err}");
    let (ok, out, _) = amtool(&url, &["silence", "query", "-q"], None, None);
    assert!(ok);
    assert_eq!(out.trim(), cpu_silence, "the expired one is no longer listed:\n{out}");
    let (ok, out, _) = amtool(&url, &["silence", "query", "-q", "--expired"], None, None);
    assert!(ok);
    assert_eq!(out.trim(), mem_silence, "{out}");
    let (status, v1) = get(&g.url("/api/v1/silences?expired=true")).await;
    assert_eq!(status, 200);
    let expired = v1["silences"].as_array().unwrap().iter().find(|s| s["id"] == made["id"]).unwrap().clone();
    assert_eq!(expired["state"], "expired", "expired through amtool, seen through /api/v1");

    // Bad requests are 400 with the reason as a JSON string, as
    // Alertmanager answers; nothing is stored.
    for (method, path, body) in [
        ("GET", "/api/v2/silence/not-an-id", None),
        ("GET", "/api/v2/alerts?filter=alertname%3D%22", None),
        ("GET", "/api/v2/alerts?receiver=%28", None),
        ("GET", "/api/v2/alerts?active=maybe", None),
        ("POST", "/api/v2/silences", Some(json!({"matchers": [], "endsAt": "2099-01-01T00:00:00Z", "createdBy": "x"}))),
        (
            "POST",
            "/api/v2/silences",
            Some(json!({"matchers": [{"name": "a", "value": ".*", "isRegex": true}],
                                                 "endsAt": "2099-01-01T00:00:00Z", "createdBy": "x"})),
        ),
        (
            "POST",
            "/api/v2/silences",
            Some(json!({"matchers": [{"name": "a", "value": "b", "isRegex": false}],
                                                 "endsAt": "2001-01-01T00:00:00Z", "createdBy": "x"})),
        ),
    ] {
        let (status, answer) = call(&url, method, path, body.as_ref()).await;
        assert_eq!(status, 400, "{method} {path}: {answer}");
        assert!(answer.as_str().is_some_and(|m| !m.is_empty()), "{method} {path}: {answer}");
    }
    let (status, v1) = get(&g.url("/api/v1/silences?expired=true")).await;
    assert_eq!((status, v1["silences"].as_array().unwrap().len()), (200, 2), "nothing stored by the bad requests");

    // Expiring an unknown silence fails, naming it.
    let (ok, _, err) = amtool(&url, &["silence", "expire", "17b6b4f3-0495-49ea-98d1-6f84a5a5f6e6"], None, None);
    assert!(!ok, "an unknown silence cannot be expired");
    assert!(err.to_lowercase().contains("not found") || err.contains("404"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amtool_silence_import_round_trips() {
    let (g, _rules) = start_gateway(None);
    let url = base(&g);
    for (matchers, comment) in [
        (vec!["alertname=Cpu"], "one"),
        (vec!["service=payments", "severity=~warn|info"], "two"),
        (vec!["instance!=db-1", "job=node"], "three"),
    ] {
        let mut args = vec!["silence", "add", "-c", comment, "-d", "3h", "-a", "tester"];
        args.extend(matchers);
        let (ok, _, err) = amtool(&url, &args, None, None);
        assert!(ok, "{err}");
    }
    let (ok, exported, err) = amtool(&url, &["silence", "query", "-o", "json"], None, None);
    assert!(ok, "{err}");
    let before: Vec<Value> = serde_json::from_str(&exported).unwrap();
    assert_eq!(before.len(), 3);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("silences.json");
    std::fs::write(&file, &exported).unwrap();

    // Into the same gateway: each id exists, so each is updated in place:
    // the same ids, nothing new.
    let (ok, out, err) = amtool(&url, &["silence", "import"], Some(&file), None);
    assert!(ok, "{out}{err}");
    let (_, again, _) = amtool(&url, &["silence", "query", "-o", "json"], None, None);
    let after: Vec<Value> = serde_json::from_str(&again).unwrap();
    let ids = |v: &[Value]| v.iter().map(|s| s["id"].as_str().unwrap().to_string()).collect::<BTreeSet<_>>();
    assert_eq!(ids(&after), ids(&before), "import into the same gateway changes nothing");
    let (status, all) = get(&g.url("/api/v1/silences?expired=true")).await;
    assert_eq!(status, 200);
    assert_eq!(all["silences"].as_array().unwrap().len(), 3, "no silence replaced or added: {all}");

    // Into a fresh gateway: the ids are unknown there (404), so amtool
    // creates them anew; matchers, times, author and comments survive.
    let (fresh, _rules2) = start_gateway(None);
    let (ok, out, err) = amtool(&base(&fresh), &["silence", "import"], Some(&file), None);
    assert!(ok, "{out}{err}");
    let (_, copied, _) = amtool(&base(&fresh), &["silence", "query", "-o", "json"], None, None);
    let copied: Vec<Value> = serde_json::from_str(&copied).unwrap();
    let essence = |v: &[Value]| {
        v.iter()
            .map(|s| (s["comment"].clone(), s["matchers"].clone(), s["endsAt"].clone(), s["createdBy"].clone()))
            .map(|t| serde_json::to_string(&t).unwrap())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(essence(&copied), essence(&before));
}

// ----------------------------------------------------- the differential

struct Alertmanager {
    _proc: Proc,
    addr: String,
    log: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Alertmanager {
    /// Alertmanager 0.25 on free loopback ports, as a cluster of one peer
    /// (its gossip on its own loopback port), so its status has the shape
    /// of a gateway's.
    async fn start() -> Alertmanager {
        assert!(Path::new(ALERTMANAGER).exists(), "{ALERTMANAGER} is missing: install prometheus-alertmanager");
        let tmp = tempfile::tempdir().unwrap();
        let cfg = tmp.path().join("am.yml");
        std::fs::write(&cfg, AM_CONFIG).unwrap();
        let storage = tmp.path().join("data");
        std::fs::create_dir_all(&storage).unwrap();
        let (proc, addr, log) = common::start_peer(ALERTMANAGER, tmp.path(), "alertmanager", WAIT, |addr, _| {
            vec![
                format!("--config.file={}", cfg.display()),
                format!("--web.listen-address={addr}"),
                format!("--cluster.listen-address=127.0.0.1:{}", common::free_port()),
                format!("--storage.path={}", storage.display()),
            ]
        })
        .await;
        Alertmanager { _proc: proc, addr, log, _tmp: tmp }
    }
}

async fn call(base: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut req = common::client().request(method.parse().unwrap(), format!("{base}{path}"));
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The same call to both sides.
async fn both(am: &str, ag: &str, method: &str, path: &str, body: Option<&Value>) -> ((u16, Value), (u16, Value)) {
    (call(am, method, path, body).await, call(ag, method, path, body).await)
}

const TIME_KEYS: [&str; 4] = ["startsAt", "endsAt", "updatedAt", "uptime"];

/// Times as Alertmanager writes them: RFC 3339, UTC, milliseconds.
fn is_am_time(s: &str) -> bool {
    s.len() == 24 && s.ends_with('Z') && s.as_bytes()[19] == b'.' && s.parse::<jiff::Timestamp>().is_ok()
}

/// What is compared of an answer: times become `<time>` once their format
/// is checked, Alertmanager's silence ids become alertgate's (by `ids`),
/// and what describes the server (its name, address, version, config
/// text, cluster state) becomes its type, or a checked enum value.
fn normalize(path: &str, v: &Value, ids: &HashMap<String, String>, problems: &mut Vec<String>) -> Value {
    let key = path.rsplit('.').next().unwrap_or_default().trim_end_matches(|c: char| c == ']' || c.is_ascii_digit());
    let key = key.trim_end_matches('[');
    match v {
        Value::Object(m) => Value::Object(
            m.iter().map(|(k, v)| (k.clone(), normalize(&format!("{path}.{k}"), v, ids, problems))).collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter().enumerate().map(|(i, v)| normalize(&format!("{path}[{i}]"), v, ids, problems)).collect(),
        ),
        Value::String(s) if TIME_KEYS.contains(&key) => {
            if !is_am_time(s) {
                problems.push(format!("{path}: {s:?} is not a time as Alertmanager writes it"));
            }
            json!("<time>")
        }
        Value::String(s) if key == "id" || key == "silenceID" || key == "silencedBy" => {
            json!(ids.get(s).cloned().unwrap_or_else(|| s.clone()))
        }
        Value::String(s) if path.starts_with("$.cluster.status") => {
            if !["ready", "settling", "disabled"].contains(&s.as_str()) {
                problems.push(format!("{path}: {s:?} is not a cluster status"));
            }
            json!("<cluster status>")
        }
        Value::String(_)
            if path.starts_with("$.cluster.name")
                || path.starts_with("$.cluster.peers")
                || path.starts_with("$.versionInfo")
                || path == "$.config.original" =>
        {
            json!("<string>")
        }
        other => other.clone(),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every difference between two normalized answers, by path: JSON types,
/// key sets, array lengths, then values.
fn differences(path: &str, am: &Value, ag: &Value, out: &mut Vec<String>) {
    if kind(am) != kind(ag) {
        out.push(format!("{path}: Alertmanager has a {}, alertgate a {}", kind(am), kind(ag)));
        return;
    }
    match (am, ag) {
        (Value::Object(a), Value::Object(b)) => {
            let ka: BTreeSet<&String> = a.keys().collect();
            let kb: BTreeSet<&String> = b.keys().collect();
            if ka != kb {
                out.push(format!("{path}: keys {ka:?} (Alertmanager) vs {kb:?} (alertgate)"));
            }
            for k in ka.intersection(&kb) {
                differences(&format!("{path}.{k}"), &a[*k], &b[*k], out);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                out.push(format!("{path}: {} items (Alertmanager) vs {} (alertgate)", a.len(), b.len()));
            }
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                differences(&format!("{path}[{i}]"), x, y, out);
            }
        }
        _ if am != ag => out.push(format!("{path}: {am} (Alertmanager) vs {ag} (alertgate)")),
        _ => {}
    }
}

/// Arrays whose order the two servers may choose differently (groups,
/// silences) are sorted by their content.
fn sorted(v: Value) -> Value {
    match v {
        Value::Array(mut a) => {
            a.sort_by_key(|x| x.to_string());
            Value::Array(a)
        }
        other => other,
    }
}

/// Compare one answer of each side; panics listing every difference.
fn compare(what: &str, am: &(u16, Value), ag: &(u16, Value), ids: &HashMap<String, String>, order_free: bool) {
    let mut problems = Vec::new();
    if am.0 != ag.0 {
        problems.push(format!("status {} (Alertmanager) vs {} (alertgate)", am.0, ag.0));
    }
    let mut a = normalize("$", &am.1, ids, &mut problems);
    let mut b = normalize("$", &ag.1, &HashMap::new(), &mut problems);
    if order_free {
        a = sorted(a);
        b = sorted(b);
    }
    differences("$", &a, &b, &mut problems);
    assert!(
        problems.is_empty(),
        "{what}: the answers differ:\n  {}\nAlertmanager: {}\nalertgate:    {}",
        problems.join("\n  "),
        am.1,
        ag.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_have_alertmanagers_shapes_field_by_field() {
    let am = Alertmanager::start().await;
    let (g, _rules) = start_gateway(None);
    let am_url = format!("http://{}", am.addr);
    let ag_url = base(&g);
    let am_log = || std::fs::read_to_string(&am.log).unwrap_or_default();

    let ((s1, _), (s2, b2)) = both(&am_url, &ag_url, "POST", "/api/v2/alerts", Some(&test_alerts())).await;
    assert_eq!((s1, s2), (200, 200), "{b2}");

    // Silences: an active one (it silences Cpu), a pending one, one of
    // every operator, and one expired right away.
    let now = common::wall_clock();
    let at = |mins: i64| (now + jiff::SignedDuration::from_mins(mins)).to_string();
    let matcher = |name: &str, value: &str, regex: bool, equal: bool| json!({"name": name, "value": value, "isRegex": regex, "isEqual": equal});
    let silences = [
        json!({"matchers": [matcher("alertname", "Cpu", false, true)], "startsAt": at(0), "endsAt": at(120),
               "createdBy": "tester", "comment": "active"}),
        json!({"matchers": [matcher("team", "a", false, true), matcher("severity", "info", false, true)],
               "startsAt": at(60), "endsAt": at(120), "createdBy": "tester", "comment": "pending"}),
        json!({"matchers": [matcher("job", "x.*", true, true), matcher("env", "dev", false, false),
                            matcher("zone", "eu.*", true, false)],
               "startsAt": at(0), "endsAt": at(90), "createdBy": "tester", "comment": "operators"}),
        json!({"matchers": [matcher("alertname", "Gone", false, true)], "startsAt": at(0), "endsAt": at(30),
               "createdBy": "tester", "comment": "expired"}),
    ];
    let mut ids = HashMap::new();
    let mut ours = Vec::new();
    for s in &silences {
        let (a, b) = both(&am_url, &ag_url, "POST", "/api/v2/silences", Some(s)).await;
        let (am_id, ag_id) = (a.1["silenceID"].as_str().unwrap(), b.1["silenceID"].as_str().unwrap());
        ids.insert(am_id.to_string(), ag_id.to_string());
        compare("POST /api/v2/silences", &a, &b, &ids, false);
        ours.push((am_id.to_string(), ag_id.to_string()));
    }
    let (expired_am, expired_ag) = ours[3].clone();
    let am_del = call(&am_url, "DELETE", &format!("/api/v2/silence/{expired_am}"), None).await;
    let ag_del = call(&ag_url, "DELETE", &format!("/api/v2/silence/{expired_ag}"), None).await;
    compare("DELETE /api/v2/silence/{id}", &am_del, &ag_del, &ids, false);
    // Expiring it again changes nothing and is no error, on both.
    let am_del = call(&am_url, "DELETE", &format!("/api/v2/silence/{expired_am}"), None).await;
    let ag_del = call(&ag_url, "DELETE", &format!("/api/v2/silence/{expired_ag}"), None).await;
    compare("DELETE /api/v2/silence/{id} again", &am_del, &ag_del, &ids, false);

    // Changing a silence: a later end keeps its id (changed in place);
    // other matchers make a new silence and expire the old one.
    // As `amtool silence update` does, each side's silence is read back,
    // changed and posted with its id.
    let post_with_id = |base: String, id: String, mut body: Value| async move {
        body["id"] = json!(id);
        call(&base, "POST", "/api/v2/silences", Some(&body)).await
    };
    let longer = |base: String, id: String| async move {
        let (_, mut s) = call(&base, "GET", &format!("/api/v2/silence/{id}"), None).await;
        s["endsAt"] = json!((common::wall_clock() + jiff::SignedDuration::from_mins(180)).to_string());
        s
    };
    let a = post_with_id(am_url.clone(), ours[0].0.clone(), longer(am_url.clone(), ours[0].0.clone()).await).await;
    let b = post_with_id(ag_url.clone(), ours[0].1.clone(), longer(ag_url.clone(), ours[0].1.clone()).await).await;
    compare("POST /api/v2/silences with the id, a later end", &a, &b, &ids, false);
    assert_eq!(b.1["silenceID"], json!(ours[0].1), "changed in place, as Alertmanager does");
    assert_eq!(a.1["silenceID"], json!(ours[0].0));
    let mut other = silences[2].clone();
    other["matchers"][0]["value"] = json!("y.*");
    let a = post_with_id(am_url.clone(), ours[2].0.clone(), other.clone()).await;
    let b = post_with_id(ag_url.clone(), ours[2].1.clone(), other).await;
    assert_ne!(a.1["silenceID"], json!(ours[2].0), "Alertmanager replaces it");
    assert_ne!(b.1["silenceID"], json!(ours[2].1), "alertgate replaces it");
    ids.insert(a.1["silenceID"].as_str().unwrap().into(), b.1["silenceID"].as_str().unwrap().into());
    compare("POST /api/v2/silences with the id, other matchers", &a, &b, &ids, false);
    // An unknown id: 404 on both (amtool's import then creates it anew).
    let unknown = "17b6b4f3-0495-49ea-98d1-6f84a5a5f6e6".to_string();
    let a = post_with_id(am_url.clone(), unknown.clone(), silences[0].clone()).await;
    let b = post_with_id(ag_url.clone(), unknown.clone(), silences[0].clone()).await;
    compare("POST /api/v2/silences with an unknown id", &a, &b, &ids, false);

    // Alertmanager applies inhibitions through its dispatcher: wait until
    // both show the same states, then compare every read endpoint.
    let state_of = |v: &Value| -> BTreeMap<String, String> {
        v.as_array()
            .map(|a| a.iter().map(|x| (x["fingerprint"].to_string(), x["status"]["state"].to_string())).collect())
            .unwrap_or_default()
    };
    wait_for(WAIT, "Alertmanager and alertgate to agree on the alerts' states", || {
        let (am_url, ag_url) = (am_url.clone(), ag_url.clone());
        async move {
            let (a, b) = both(&am_url, &ag_url, "GET", "/api/v2/alerts", None).await;
            let (sa, sb) = (state_of(&a.1), state_of(&b.1));
            (sa.len() == 5 && sa == sb).then_some(())
        }
    })
    .await;
    wait_for(WAIT, "Alertmanager's groups", || {
        let am_url = am_url.clone();
        async move {
            let (_, groups) = call(&am_url, "GET", "/api/v2/alerts/groups", None).await;
            (groups.as_array().map_or(0, Vec::len) == 5).then_some(())
        }
    })
    .await;

    let reads: &[(&str, bool)] = &[
        ("/api/v2/status", false),
        ("/api/v2/receivers", false),
        ("/api/v2/alerts", false),
        ("/api/v2/alerts?silenced=false", false),
        ("/api/v2/alerts?inhibited=false&silenced=false", false),
        ("/api/v2/alerts?active=false", false),
        ("/api/v2/alerts?active=true&inhibited=false&silenced=false&unprocessed=false", false),
        ("/api/v2/alerts?filter=alertname%3D~%22D.%2A%22", false),
        ("/api/v2/alerts?filter=severity%3D%22critical%22&filter=team%3Da", false),
        ("/api/v2/alerts?receiver=team-a", false),
        ("/api/v2/alerts?receiver=crit.%2A", false),
        ("/api/v2/alerts/groups", true),
        ("/api/v2/alerts/groups?receiver=team-a", true),
        ("/api/v2/alerts/groups?silenced=false&inhibited=false", true),
        ("/api/v2/alerts/groups?filter=alertname%3DDisk", true),
        ("/api/v2/silences", true),
        ("/api/v2/silences?filter=alertname%3DCpu", true),
        ("/api/v2/silences?filter=job%3D~x.%2A", true),
    ];
    for (path, order_free) in reads {
        let (a, b) = both(&am_url, &ag_url, "GET", path, None).await;
        assert_eq!(a.0, 200, "GET {path} on Alertmanager: {}\n{}", a.1, am_log());
        compare(&format!("GET {path}"), &a, &b, &ids, *order_free);
    }
    for (am_id, ag_id) in &ours {
        let a = call(&am_url, "GET", &format!("/api/v2/silence/{am_id}"), None).await;
        let b = call(&ag_url, "GET", &format!("/api/v2/silence/{ag_id}"), None).await;
        compare("GET /api/v2/silence/{id}", &a, &b, &ids, false);
    }
    let (a, b) = both(&am_url, &ag_url, "GET", &format!("/api/v2/silence/{unknown}"), None).await;
    assert_eq!((a.0, b.0), (404, 404), "an unknown silence");

    // What the checks above rest on: the answers are not empty.
    let (_, alerts) = call(&ag_url, "GET", "/api/v2/alerts", None).await;
    let states: BTreeSet<String> =
        alerts.as_array().unwrap().iter().map(|a| a["status"]["state"].to_string()).collect();
    assert_eq!(states.len(), 2, "active and suppressed alerts both compared: {alerts}");
    let (_, sils) = call(&ag_url, "GET", "/api/v2/silences", None).await;
    let states: BTreeSet<String> = sils.as_array().unwrap().iter().map(|s| s["status"]["state"].to_string()).collect();
    assert_eq!(states.len(), 3, "active, pending and expired silences compared: {sils}");
}

// ------------------------------------------------------------------ roles

const INGEST: &str = "ingest-token-0123456789abcdef";
const VIEWER: &str = "viewer-token-0123456789abcdef";
const RESPONDER: &str = "alice-token-0123456789abcdef";
const ADMIN: &str = "root-token-0123456789abcdef";

fn sha(t: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(t.as_bytes()))
}

async fn as_token(method: &str, url: &str, token: Option<&str>, body: Option<&Value>) -> (u16, String) {
    let mut req = common::client().request(method.parse().unwrap(), url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    let resp = req.send().await.expect("request");
    (resp.status().as_u16(), resp.text().await.unwrap_or_default())
}

/// An amtool HTTP config that sends `token` as a bearer token.
fn http_config(dir: &Path, name: &str, token: &str) -> PathBuf {
    let p = dir.join(format!("{name}.yml"));
    std::fs::write(&p, format!("authorization:\n  type: Bearer\n  credentials: {token}\n")).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_need_the_viewer_role_and_silence_changes_the_admin_role() {
    let config = format!(
        "auth:\n  tokens:\n    - {{name: prom, role: ingest, token_sha256: \"{}\"}}\n    - {{name: vic, role: viewer, token_sha256: \"{}\"}}\n    - {{name: alice, role: responder, token_sha256: \"{}\"}}\n    - {{name: root, role: admin, token_sha256: \"{}\"}}\n",
        sha(INGEST),
        sha(VIEWER),
        sha(RESPONDER),
        sha(ADMIN)
    );
    let (g, _rules) = start_gateway(Some(config));
    let (status, body) = as_token("POST", &g.url("/api/v2/alerts"), Some(INGEST), Some(&test_alerts())).await;
    assert_eq!(status, 200, "the ingest role pushes alerts: {body}");

    let reads = ["/api/v2/status", "/api/v2/receivers", "/api/v2/alerts", "/api/v2/alerts/groups", "/api/v2/silences"];
    for path in reads {
        let url = g.url(path);
        assert_eq!(as_token("GET", &url, None, None).await.0, 401, "GET {path} without a token");
        assert_eq!(as_token("GET", &url, Some(INGEST), None).await.0, 403, "GET {path} as ingest");
        for token in [VIEWER, RESPONDER, ADMIN] {
            let (status, body) = as_token("GET", &url, Some(token), None).await;
            assert_eq!(status, 200, "GET {path}: {body}");
            assert!(serde_json::from_str::<Value>(&body).is_ok(), "GET {path}: {body}");
        }
        let (status, body) = as_token("HEAD", &url, Some(VIEWER), None).await;
        assert_eq!((status, body.as_str()), (200, ""), "HEAD {path} is GET without the body");
        assert_eq!(as_token("HEAD", &url, None, None).await.0, 401, "HEAD {path} without a token");
        assert_eq!(as_token("HEAD", &url, Some(INGEST), None).await.0, 403, "HEAD {path} as ingest");
    }

    let ends = (common::wall_clock() + jiff::SignedDuration::from_hours(1)).to_string();
    let silence = json!({"matchers": [{"name": "alertname", "value": "Cpu", "isRegex": false}], "startsAt": common::wall_clock().to_string(),
                         "endsAt": ends, "createdBy": "tester", "comment": "roles"});
    for token in [None, Some(INGEST), Some(VIEWER), Some(RESPONDER)] {
        let (status, body) = as_token("POST", &g.url("/api/v2/silences"), token, Some(&silence)).await;
        assert_eq!(status, if token.is_none() { 401 } else { 403 }, "{token:?}: {body}");
    }
    let (status, body) = as_token("POST", &g.url("/api/v2/silences"), Some(ADMIN), Some(&silence)).await;
    assert_eq!(status, 200, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["silenceID"].as_str().unwrap().to_string();
    let (status, body) = as_token("GET", &g.url(&format!("/api/v2/silence/{id}")), Some(VIEWER), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["createdBy"],
        "root for tester",
        "the token names the actor"
    );
    for token in [None, Some(INGEST), Some(VIEWER), Some(RESPONDER)] {
        let (status, _) = as_token("DELETE", &g.url(&format!("/api/v2/silence/{id}")), token, None).await;
        assert_eq!(status, if token.is_none() { 401 } else { 403 }, "DELETE as {token:?}");
    }

    // amtool with a token file: the viewer reads, only the admin silences.
    let dir = tempfile::tempdir().unwrap();
    let viewer = http_config(dir.path(), "viewer", VIEWER);
    let admin = http_config(dir.path(), "admin", ADMIN);
    let url = base(&g);
    let (ok, out, err) = amtool(&url, &["alert", "query", "Disk"], None, Some(&viewer));
    assert!(ok, "{err}");
    assert!(out.contains("Disk"), "{out}");
    let (ok, _, err) =
        amtool(&url, &["silence", "add", "alertname=Net", "-c", "x", "-a", "tester"], None, Some(&viewer));
    assert!(!ok, "a viewer cannot silence");
    assert!(err.contains("403"), "{err}");
    let (ok, _, err) = amtool(&url, &["alert", "query"], None, None);
    assert!(!ok && err.contains("401"), "no token: {err}");
    let (ok, out, err) =
        amtool(&url, &["silence", "add", "alertname=Net", "-c", "x", "-a", "tester"], None, Some(&admin));
    assert!(ok, "{err}");
    let (ok, _, err) = amtool(&url, &["silence", "expire", out.trim()], None, Some(&viewer));
    assert!(!ok && err.contains("403"), "{err}");
    let (ok, _, err) = amtool(&url, &["silence", "expire", out.trim(), &id], None, Some(&admin));
    assert!(ok, "{err}");
    let (status, body) = as_token("GET", &g.url("/api/v1/silences"), Some(VIEWER), None).await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["silences"], json!([]), "both expired: {body}");
}
