//! The ITSM layer through HTTP against the real binary: SLA clocks (breach,
//! pause, stop, restarts across deadlines, retargeting), escalation,
//! problems, changes and maintenance windows, calendars, and the rule-file
//! checks of the new sections. Every test writes its own rules directory and
//! runs its own gateway.
//!
//! The gateways run on a controlled clock (`serve --test-clock`) standing
//! at `t0`: the tests read as timelines ("at t0+7m30s, the 50 % warning"),
//! move time with `advance`, and compare every instant exactly. Nothing
//! sleeps; the only waits are for a restarted gateway's first timer round.
mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{BIN, Gateway, Options, all_alerts, client, get, post, run_to_exit, t0, wait_for};
use jiff::{SignedDuration, Timestamp};
use reqwest::Method;
use serde_json::{Value, json};

/// Bound for every wait on something the gateway does by itself.
const WAIT: Duration = Duration::from_secs(15);

/// A gateway running on its own rules directory (`rules.yaml` in a tempdir),
/// on a controlled clock standing at [`t0`].
struct Env {
    g: Gateway,
    _rules: tempfile::TempDir,
}

impl Env {
    fn start(rules_yaml: &str) -> Env {
        Env::start_notifying(rules_yaml, &[])
    }

    /// With rules that send to these notifiers (`notify:`, escalation
    /// steps), declared in the config as the gateway requires.
    fn start_notifying(rules_yaml: &str, notifiers: &[&str]) -> Env {
        let rules = tempfile::tempdir().expect("rules tempdir");
        std::fs::write(rules.path().join("rules.yaml"), rules_yaml).unwrap();
        // The timelines span hours: alerts keep firing without re-sends.
        let mut config = String::from("resolve_timeout: 1d\n");
        if !notifiers.is_empty() {
            config.push_str(&notifier_config(notifiers));
        }
        let g = Gateway::start_with(Options {
            config: Some(config),
            rules_dir: Some(rules.path().to_path_buf()),
            test_clock: Some(t0()),
            ..Default::default()
        });
        Env { g, _rules: rules }
    }
}

/// A config declaring `names` as webhook notifiers (to a closed port; what
/// they deliver is tested in tests/notifications.rs).
fn notifier_config(names: &[&str]) -> String {
    let mut cfg = String::from("notifiers:\n");
    for n in names {
        cfg.push_str(&format!("  - {{name: {n}, type: webhook, url: \"http://127.0.0.1:9/{n}\"}}\n"));
    }
    cfg
}

// ---- time -----------------------------------------------------------------

fn secs(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}

fn mins(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

/// `secs` seconds before the gateway's time, as RFC 3339.
fn ago(g: &Gateway, secs: i64) -> String {
    (g.now() - SignedDuration::from_secs(secs)).to_string()
}

fn ts(v: &Value) -> Timestamp {
    v.as_str().unwrap_or_else(|| panic!("not a time: {v}")).parse().unwrap()
}

// ---- HTTP -----------------------------------------------------------------

/// Any method, an optional JSON body; status and parsed body (Null when not JSON).
async fn call(method: Method, url: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = client().request(method, url);
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Push alerts as Prometheus does (`POST /api/v2/alerts`); expects 200.
async fn push(g: &Gateway, alerts: Value) {
    let (status, body) = post(&g.url("/api/v2/alerts"), &alerts.to_string()).await;
    assert_eq!(status, 200, "{body}");
}

/// Fire one alert with these labels.
async fn fire(g: &Gateway, labels: Value) {
    push(g, json!([{ "labels": labels }])).await;
}

/// Incidents of one listing page with extra query `query` (starting with `&`).
async fn incidents(g: &Gateway, query: &str) -> Vec<Value> {
    let (status, body) = get(&g.url(&format!("/api/v1/incidents?limit=500{query}"))).await;
    assert_eq!(status, 200, "{query}: {body}");
    body["incidents"].as_array().expect("incidents").clone()
}

/// Ids of the incidents listed with `query`.
async fn listed(g: &Gateway, query: &str) -> BTreeSet<i64> {
    incidents(g, query).await.iter().map(id).collect()
}

/// The incident (detail) whose common labels name `alertname`, if any.
async fn find_incident(g: &Gateway, alertname: &str) -> Option<Value> {
    let list = incidents(g, "").await;
    let mut found = list.iter().filter(|i| i["labels"]["alertname"] == alertname);
    let first = found.next()?;
    assert!(found.next().is_none(), "more than one incident for {alertname}: {list:#?}");
    Some(incident(g, id(first)).await)
}

/// Wait for the incident of `alertname` to open; its detail.
async fn opened(g: &Gateway, alertname: &str) -> Value {
    wait_for(WAIT, &format!("an incident for {alertname}"), || find_incident(g, alertname)).await
}

async fn incident(g: &Gateway, id: i64) -> Value {
    let (status, body) = get(&g.url(&format!("/api/v1/incidents/{id}"))).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn id(v: &Value) -> i64 {
    v["id"].as_i64().unwrap_or_else(|| panic!("no id in {v}"))
}

/// `POST /api/v1/incidents/{id}/{what}` by alice; expects 200, returns the detail.
async fn act(g: &Gateway, id: i64, what: &str) -> Value {
    let (status, body) = call(
        Method::POST,
        &g.url(&format!("/api/v1/incidents/{id}/{what}")),
        Some(json!({"actor": "alice", "comment": format!("{what} from the test")})),
    )
    .await;
    assert_eq!(status, 200, "{what}: {body}");
    body
}

fn timeline(inc: &Value) -> &Vec<Value> {
    inc["timeline"].as_array().expect("timeline")
}

fn kinds(inc: &Value) -> Vec<&str> {
    timeline(inc).iter().map(|e| e["kind"].as_str().unwrap()).collect()
}

/// The timeline entries of one kind.
fn entries<'a>(inc: &'a Value, kind: &str) -> Vec<&'a Value> {
    timeline(inc).iter().filter(|e| e["kind"] == kind).collect()
}

fn position(inc: &Value, kind: &str) -> usize {
    timeline(inc).iter().position(|e| e["kind"] == kind).unwrap_or_else(|| panic!("no {kind} entry: {inc:#}"))
}

fn respond(inc: &Value) -> &Value {
    let c = &inc["sla"]["respond"];
    assert!(c.is_object(), "no respond clock: {inc:#}");
    c
}

fn seconds(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// A rules file: one SLA policy with only a respond target of `target` for
/// P1 and a 50 % warning, and one rule opening P1 incidents per alertname.
fn respond_rules(target: &str) -> String {
    format!(
        r#"
sla_policies:
  - name: fast
    matchers: []
    targets: {{P1: {{respond: {target}}}}}
    warn_at: ['50%']
incident_rules:
  - name: pay
    matchers: []
    group_by: [alertname]
    service: "{{{{ labels.service }}}}"
    impact: high
    urgency: high
"#
    )
}

// ---- 1. respond breach ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn respond_breach_is_recorded_once_at_the_deadline() {
    let env = Env::start(&respond_rules("15m"));
    let g = &env.g;

    // t0: the alert fires; the incident opens with its respond clock.
    fire(g, json!({"alertname": "Breach", "service": "payments"})).await;
    let inc = opened(g, "Breach").await;
    let id = id(&inc);
    let created = ts(&inc["createdAt"]);
    assert_eq!(created, t0());
    assert_eq!(inc["priority"], "P1", "high impact x high urgency");
    assert_eq!(inc["service"], "payments");
    let sla = &inc["sla"];
    assert_eq!(sla["policy"], "fast", "{inc:#}");
    assert_eq!(sla["calendar"], "24x7", "the default calendar");
    assert!(sla.get("resolve").is_none(), "the policy has no resolve target: {sla}");
    let c = respond(&inc);
    assert_eq!(c["target"], "15m");
    assert_eq!(seconds(&c["target_seconds"]), 900.0);
    assert!(c["breached_at"].is_null() && c["stopped_at"].is_null(), "{c}");
    assert_eq!(c["state"], "running", "{c}");
    assert_eq!(ts(&c["due_at"]), created + mins(7) + secs(30), "next due: the 50% warning");
    assert_eq!(seconds(&c["elapsed_seconds"]), 0.0, "{c}");
    assert_eq!(seconds(&c["remaining_seconds"]), 900.0, "{c}");
    let started = entries(&inc, "sla_started");
    assert_eq!(started.len(), 1, "{inc:#}");
    assert_eq!(ts(&started[0]["at"]), created);
    assert_eq!(started[0]["data"]["policy"], "fast");
    assert!(inc.get("escalation").is_none(), "no escalation policy: {inc:#}");
    // While the clock runs, `?sla=running` lists it.
    assert!(listed(g, "&sla=running").await.contains(&id));

    // t0+7m30s: the 50 % warning, at its instant; the breach is next.
    g.advance(mins(7) + secs(30)).await;
    let inc = incident(g, id).await;
    let warnings = entries(&inc, "sla_warning");
    assert_eq!(warnings.len(), 1, "{inc:#}");
    assert_eq!(ts(&warnings[0]["at"]), t0() + mins(7) + secs(30));
    assert!(warnings[0]["message"].as_str().unwrap().contains("50%"), "{}", warnings[0]);
    assert_eq!(ts(&respond(&inc)["due_at"]), created + mins(15), "{inc:#}");
    assert!(entries(&inc, "sla_breached").is_empty(), "{inc:#}");

    // t0+15m: the breach, at the deadline instant, visible at once.
    g.advance(mins(7) + secs(30)).await;
    let inc = incident(g, id).await;
    let c = respond(&inc);
    assert_eq!(c["state"], "breached", "{c}");
    let breached = ts(&c["breached_at"]);
    assert_eq!(breached, created + mins(15), "recorded at the deadline instant");
    assert_eq!(seconds(&c["elapsed_seconds"]), 900.0, "{c}");
    assert!(seconds(&c["remaining_seconds"]) <= 0.0, "{c}");
    assert!(c["due_at"].is_null(), "no milestone left: {c}");
    assert!(c["stopped_at"].is_null(), "{c}");
    let warned = c["warned_at"].as_array().expect("warned_at");
    assert_eq!(warned.len(), 1, "{c}");
    assert_eq!(warned[0]["percent"], 50);
    assert_eq!(ts(&warned[0]["at"]), created + mins(7) + secs(30));
    assert_eq!(entries(&inc, "sla_warning").len(), 1, "{inc:#}");
    let breaches = entries(&inc, "sla_breached");
    assert_eq!(breaches.len(), 1, "{inc:#}");
    assert_eq!(ts(&breaches[0]["at"]), breached);
    assert_eq!(breaches[0]["actor"], "alertgate");
    assert_eq!(breaches[0]["data"]["clock"], "respond");
    assert!(breaches[0]["message"].as_str().unwrap().contains("respond"), "{}", breaches[0]);
    assert!(position(&inc, "sla_warning") < position(&inc, "sla_breached"), "{:?}", kinds(&inc));

    // The listing filters.
    assert!(listed(g, "&sla=breached").await.contains(&id));
    assert!(!listed(g, "&sla=running").await.contains(&id), "its only clock is breached");
    assert!(!listed(g, "&sla=at_risk").await.contains(&id), "breached is past at risk");
    assert!(!listed(g, "&sla=met").await.contains(&id));
    assert!(!listed(g, "&sla=paused").await.contains(&id));
    let (status, body) = get(&g.url("/api/v1/incidents?sla=late")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("late"), "{body}");

    // t0+1h: once; more time and more ticks record nothing more.
    g.advance(mins(45)).await;
    let again = incident(g, id).await;
    assert_eq!(entries(&again, "sla_breached").len(), 1, "{again:#}");
    assert_eq!(entries(&again, "sla_warning").len(), 1, "{again:#}");
    assert_eq!(ts(&respond(&again)["breached_at"]), breached);
}

// ---- 2. on hold pauses the respond clock ----------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_hold_pauses_the_respond_clock_and_acknowledge_meets_it() {
    let env = Env::start(&respond_rules("15m"));
    let g = &env.g;

    // t0: opened; t0+5m: put on hold, 5 of 15 minutes used.
    fire(g, json!({"alertname": "Held", "service": "payments"})).await;
    let id = id(&opened(g, "Held").await);
    g.advance(mins(5)).await;
    let held = act(g, id, "hold").await;
    assert_eq!(held["state"], "on_hold");
    let c = respond(&held);
    assert_eq!(c["state"], "paused", "{c}");
    assert_eq!(seconds(&c["elapsed_seconds"]), 300.0, "{c}");
    assert!(c["due_at"].is_null(), "a paused clock falls due never: {c}");
    let clock_entries = entries(&held, "sla_clock");
    assert_eq!(clock_entries.len(), 1, "{held:#}");
    assert_eq!(ts(&clock_entries[0]["at"]), t0() + mins(5));
    assert_eq!(clock_entries[0]["data"]["from"], "running");
    assert_eq!(clock_entries[0]["data"]["to"], "paused");

    // t0+20m, past the target: still paused, the time used has not grown.
    g.advance(mins(15)).await;
    let inc = incident(g, id).await;
    let c = respond(&inc);
    assert_eq!(c["state"], "paused", "{c}");
    assert_eq!(seconds(&c["elapsed_seconds"]), 300.0, "no time counts while paused: {c}");
    assert!(c["breached_at"].is_null(), "{c}");
    assert!(entries(&inc, "sla_breached").is_empty(), "{inc:#}");
    assert!(listed(g, "&sla=paused").await.contains(&id));
    assert!(!listed(g, "&sla=breached").await.contains(&id));
    assert!(!listed(g, "&sla=running").await.contains(&id));

    // Acknowledged from on hold: the promise is kept.
    let acked = act(g, id, "acknowledge").await;
    assert_eq!(acked["state"], "acknowledged");
    let c = respond(&acked);
    assert_eq!(c["state"], "met", "{c}");
    assert_eq!(ts(&c["stopped_at"]), t0() + mins(20), "{c}");
    assert!(c["breached_at"].is_null(), "{c}");
    assert_eq!(seconds(&c["elapsed_seconds"]), 300.0, "{c}");
    assert!(entries(&acked, "sla_breached").is_empty(), "{acked:#}");
    let clock_entries = entries(&acked, "sla_clock");
    assert_eq!(clock_entries.last().unwrap()["data"]["to"], "met", "{acked:#}");
    assert!(position(&acked, "on_hold") < position(&acked, "acknowledged"), "{:?}", kinds(&acked));
    assert!(listed(g, "&sla=met").await.contains(&id));
    assert!(!listed(g, "&sla=paused").await.contains(&id));

    // t1 = t0+20m: another opens; held at t1+10m, after the 50 % warning
    // and before the breach: at risk, and stays so.
    fire(g, json!({"alertname": "HeldLate", "service": "payments"})).await;
    let late = opened(g, "HeldLate").await;
    let late_id = late["id"].as_i64().unwrap();
    let t1 = ts(&late["createdAt"]);
    assert_eq!(t1, t0() + mins(20));
    g.advance(mins(10)).await;
    let held = act(g, late_id, "hold").await;
    let c = respond(&held);
    assert_eq!(c["state"], "paused", "{c}");
    let warned = c["warned_at"].as_array().unwrap();
    assert_eq!(warned.len(), 1, "{c}");
    assert_eq!(ts(&warned[0]["at"]), t1 + mins(7) + secs(30));
    // t1+30m, past its target.
    g.advance(mins(20)).await;
    let at_risk = listed(g, "&sla=at_risk").await;
    assert!(at_risk.contains(&late_id), "paused past a warning: {at_risk:?}");
    assert!(!at_risk.contains(&id), "a met clock is not at risk");
    assert!(listed(g, "&sla=paused").await.contains(&late_id));
    assert!(!listed(g, "&sla=breached").await.contains(&late_id));
}

// ---- 3. acknowledge in time -----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledge_before_the_deadline_meets_the_respond_target() {
    let env = Env::start(&respond_rules("15m"));
    let g = &env.g;

    // t0: opened; t0+4m: acknowledged.
    fire(g, json!({"alertname": "Answered", "service": "payments"})).await;
    let id = id(&opened(g, "Answered").await);
    g.advance(mins(4)).await;
    let acked = act(g, id, "acknowledge").await;
    let acked_at = ts(&acked["acknowledgedAt"]);
    assert_eq!(acked_at, t0() + mins(4));
    let c = respond(&acked);
    assert_eq!(c["state"], "met", "{c}");
    assert_eq!(ts(&c["stopped_at"]), acked_at, "stopped when acknowledged");
    assert!(c["breached_at"].is_null() && c["due_at"].is_null(), "{c}");
    assert_eq!(seconds(&c["elapsed_seconds"]), 240.0, "{c}");

    // t0+1h, long past the target: nothing changes.
    g.advance(mins(56)).await;
    let inc = incident(g, id).await;
    let c = respond(&inc);
    assert_eq!(c["state"], "met", "{c}");
    assert_eq!(ts(&c["stopped_at"]), acked_at);
    assert_eq!(seconds(&c["elapsed_seconds"]), 240.0, "a stopped clock does not count on: {c}");
    assert!(entries(&inc, "sla_warning").is_empty(), "{inc:#}");
    assert!(entries(&inc, "sla_breached").is_empty(), "{inc:#}");
    assert!(listed(g, "&sla=met").await.contains(&id));
    assert!(!listed(g, "&sla=breached").await.contains(&id));
    assert!(!listed(g, "&sla=running").await.contains(&id));
}

// ---- 4. a deadline passed while the gateway was down ----------------------

/// [`respond_rules`] with 15m, and an escalation with a step after 5m.
const DOWN_RULES: &str = r#"
sla_policies:
  - name: fast
    targets: {P1: {respond: 15m}}
    warn_at: ['50%']
escalation_policies:
  - name: page
    steps:
      - {after: 0s, notify: [oncall]}
      - {after: 5m, notify: [lead]}
incident_rules:
  - name: pay
    matchers: []
    group_by: [alertname]
    service: "{{ labels.service }}"
    impact: high
    urgency: high
    escalation: page
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_passed_while_down_is_recorded_at_its_instant_once() {
    let mut env = Env::start_notifying(DOWN_RULES, &["oncall", "lead"]);

    // t0: opened; t0+1m: killed; down until t0+20m, past the warning
    // (7m30s), the escalation step (5m) and the breach (15m).
    fire(&env.g, json!({"alertname": "Down", "service": "payments"})).await;
    let inc = opened(&env.g, "Down").await;
    let id = id(&inc);
    let created = ts(&inc["createdAt"]);
    env.g.advance(mins(1)).await;
    tokio::task::block_in_place(|| env.g.kill9());
    let restarted = t0() + mins(20);
    tokio::task::block_in_place(|| env.g.respawn_at(restarted));
    let g = &env.g;

    // The restarted gateway's first round records each at its own instant.
    let inc = wait_for(WAIT, "the breach recorded after the restart", || async {
        let inc = incident(g, id).await;
        (respond(&inc)["state"] == "breached" && entries(&inc, "escalated").len() >= 2).then_some(inc)
    })
    .await;
    let c = respond(&inc);
    assert_eq!(ts(&c["breached_at"]), created + mins(15), "at the deadline, not at the restart: {c}");
    let warned = c["warned_at"].as_array().unwrap();
    assert_eq!(warned.len(), 1, "{c}");
    assert_eq!(ts(&warned[0]["at"]), created + mins(7) + secs(30));
    let breaches = entries(&inc, "sla_breached");
    assert_eq!(breaches.len(), 1, "{inc:#}");
    assert_eq!(ts(&breaches[0]["at"]), created + mins(15));
    // Written down after the restart, and the entry says so.
    assert_eq!(ts(&breaches[0]["recordedAt"]), restarted, "{}", breaches[0]);
    let warnings = entries(&inc, "sla_warning");
    assert_eq!(warnings.len(), 1, "{inc:#}");
    assert_eq!(ts(&warnings[0]["at"]), created + mins(7) + secs(30));
    assert!(position(&inc, "sla_warning") < position(&inc, "sla_breached"));
    // The escalation step due while down fires once, at its own instant.
    let steps: Vec<Timestamp> = entries(&inc, "escalated").iter().map(|e| ts(&e["at"])).collect();
    assert_eq!(steps, [created, created + mins(5)], "{inc:#}");
    assert!(inc["escalation"]["nextAt"].is_null(), "every step done: {inc:#}");

    // Another crash and restart, and an hour of rounds, record nothing twice.
    tokio::task::block_in_place(|| env.g.restart());
    let g = &env.g;
    g.advance(mins(60)).await;
    let inc = incident(g, id).await;
    assert_eq!(entries(&inc, "sla_breached").len(), 1, "{inc:#}");
    assert_eq!(entries(&inc, "sla_warning").len(), 1, "{inc:#}");
    assert_eq!(entries(&inc, "escalated").len(), 2, "{inc:#}");
    assert_eq!(ts(&respond(&inc)["breached_at"]), created + mins(15));
    assert!(listed(g, "&sla=breached").await.contains(&id));
}

// ---- 5. a graceful restart while the clock runs ---------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clock_keeps_running_across_a_graceful_restart() {
    let mut env = Env::start(&respond_rules("15m"));

    // t0: opened; t0+5m: stopped gracefully; t0+6m: started again.
    fire(&env.g, json!({"alertname": "Restarted", "service": "payments"})).await;
    let inc = opened(&env.g, "Restarted").await;
    let id = id(&inc);
    let created = ts(&inc["createdAt"]);
    env.g.advance(mins(5)).await;
    let status = tokio::task::block_in_place(|| env.g.terminate());
    assert!(status.success(), "graceful stop: {status:?}");
    tokio::task::block_in_place(|| env.g.respawn_at(t0() + mins(6)));
    let g = &env.g;

    let inc = incident(g, id).await;
    let c = respond(&inc);
    assert_eq!(c["state"], "running", "{c}");
    // 24x7: the downtime is working time too.
    assert_eq!(seconds(&c["elapsed_seconds"]), 360.0, "{c}");
    assert_eq!(ts(&c["due_at"]), created + mins(7) + secs(30), "the 50% warning next: {c}");

    // t0+15m: the breach, at the deadline.
    g.advance_to(t0() + mins(15)).await;
    let inc = incident(g, id).await;
    assert_eq!(respond(&inc)["state"], "breached", "{inc:#}");
    assert_eq!(ts(&respond(&inc)["breached_at"]), created + mins(15), "wall-clock time on 24x7, downtime included");
    assert_eq!(entries(&inc, "sla_breached").len(), 1, "{inc:#}");
    let warnings = entries(&inc, "sla_warning");
    assert_eq!(warnings.len(), 1, "{inc:#}");
    assert_eq!(ts(&warnings[0]["at"]), created + mins(7) + secs(30));
}

// ---- 6. a priority change retargets the clocks ----------------------------

const TIERED_RULES: &str = r#"
sla_policies:
  - name: tiered
    targets:
      P1: {respond: 30m}
      P3: {respond: 10m, resolve: 4h}
incident_rules:
  - name: pay
    matchers: []
    group_by: [alertname]
    service: "{{ labels.service }}"
    impact: high
    urgency: high
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_priority_change_retargets_the_clocks() {
    let env = Env::start(TIERED_RULES);
    let g = &env.g;
    fire(g, json!({"alertname": "Retarget", "service": "payments"})).await;
    let inc = opened(g, "Retarget").await;
    let id = id(&inc);
    let created = ts(&inc["createdAt"]);
    assert_eq!(inc["priority"], "P1");
    assert_eq!(respond(&inc)["target"], "30m");
    assert!(inc["sla"].get("resolve").is_none(), "P1 has no resolve target: {inc:#}");

    let url = g.url(&format!("/api/v1/incidents/{id}/priority"));
    let (status, body) = call(Method::PATCH, &url, Some(json!({"actor": "alice", "priority": "P9"}))).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) =
        call(Method::PATCH, &g.url("/api/v1/incidents/999999/priority"), Some(json!({"actor": "a", "priority": "P3"})))
            .await;
    assert_eq!(status, 404, "{body}");

    // t0+8m: lowered to P3, whose 10 m target is nearly used up.
    g.advance(mins(8)).await;
    let (status, inc) = call(
        Method::PATCH,
        &url,
        Some(json!({"actor": "alice", "priority": "P3", "comment": "customer impact is small"})),
    )
    .await;
    assert_eq!(status, 200, "{inc}");
    assert_eq!(inc["priority"], "P3");
    let c = respond(&inc);
    assert_eq!(c["target"], "10m", "{c}");
    assert_eq!(seconds(&c["target_seconds"]), 600.0);
    assert_eq!(seconds(&c["elapsed_seconds"]), 480.0, "the time used is kept: {c}");
    let resolve = &inc["sla"]["resolve"];
    assert_eq!(resolve["target"], "4h", "a clock the old priority lacked starts: {inc:#}");
    assert_eq!(resolve["state"], "running");
    let changed = entries(&inc, "priority_changed");
    assert_eq!(changed.len(), 1, "{inc:#}");
    assert_eq!(changed[0]["actor"], "alice");
    let retargeted = entries(&inc, "sla_retargeted");
    assert_eq!(retargeted.len(), 2, "respond retargeted, resolve started: {inc:#}");
    let r = retargeted.iter().find(|e| e["data"]["clock"] == "respond").expect("respond retarget");
    assert_eq!(r["data"]["beforeMs"], 1_800_000);
    assert_eq!(r["data"]["afterMs"], 600_000);
    let m = r["message"].as_str().unwrap();
    assert!(m.contains("30m") && m.contains("10m"), "{m}");
    assert!(retargeted.iter().any(|e| e["data"]["clock"] == "resolve"), "{inc:#}");
    assert!(position(&inc, "priority_changed") < position(&inc, "sla_retargeted"));

    // t0+10m: the breach, at the instant the time used reached the new target.
    g.advance(mins(2)).await;
    let inc = incident(g, id).await;
    assert_eq!(respond(&inc)["state"], "breached", "{inc:#}");
    assert_eq!(ts(&respond(&inc)["breached_at"]), created + mins(10), "{inc:#}");
    assert_eq!(entries(&inc, "sla_breached").len(), 1, "{inc:#}");
    assert_eq!(entries(&inc, "sla_warning").len(), 2, "50% and 75% of the new target: {inc:#}");
    assert_eq!(inc["sla"]["resolve"]["state"], "running");
    assert!(listed(g, "&sla=breached").await.contains(&id));
    assert!(listed(g, "&sla=running").await.contains(&id), "by its resolve clock");

    // The same priority again retargets nothing.
    let (status, inc) = call(Method::PATCH, &url, Some(json!({"actor": "alice", "priority": "P3"}))).await;
    assert_eq!(status, 200, "{inc}");
    assert_eq!(entries(&inc, "sla_retargeted").len(), 2, "{inc:#}");
}

// ---- 7. escalation --------------------------------------------------------

const ESCALATION_RULES: &str = r#"
escalation_policies:
  - name: pay
    steps:
      - {after: 0s, notify: [oncall]}
      - {after: 5m, notify: [lead]}
    repeat: 1
    repeat_interval: 10m
incident_rules:
  - name: esc
    matchers: []
    group_by: [alertname]
    escalation: pay
    notify: [chatops]
"#;

/// The `escalated` entries as (round, step, at).
fn escalations(inc: &Value) -> Vec<(i64, i64, Timestamp)> {
    entries(inc, "escalated")
        .iter()
        .map(|e| (e["data"]["round"].as_i64().unwrap(), e["data"]["step"].as_i64().unwrap(), ts(&e["at"])))
        .collect()
}

/// The steps of the `pay` policy in order, (round, step, minutes after the
/// incident's creation): rounds begin `repeat_interval` after the previous
/// round's last step.
const PAY_STEPS: [(i64, i64, i64); 4] = [(1, 1, 0), (1, 2, 5), (2, 1, 15), (2, 2, 20)];

/// The escalated entries are the first steps of the policy, each at its
/// own instant, and each notified.
fn assert_step_prefix(inc: &Value, created: Timestamp) {
    let got = escalations(inc);
    assert!(got.len() <= PAY_STEPS.len(), "{got:?}");
    for (g, (round, step, offset)) in got.iter().zip(PAY_STEPS) {
        assert_eq!(*g, (round, step, created + mins(offset)), "{got:?}");
    }
    for e in entries(inc, "escalated") {
        assert_eq!(e["data"]["notified"], true, "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_steps_fire_until_acknowledged_or_resolved() {
    let env = Env::start_notifying(ESCALATION_RULES, &["oncall", "lead", "chatops"]);
    let g = &env.g;

    // t0: one request opens three incidents.
    push(
        g,
        json!([
            {"labels": {"alertname": "EscAck"}},
            {"labels": {"alertname": "EscResolve"}},
            {"labels": {"alertname": "EscRepeat"}},
        ]),
    )
    .await;
    let ack = opened(g, "EscAck").await;
    let (ack_id, created) = (id(&ack), ts(&ack["createdAt"]));
    assert_eq!(created, t0());
    let res = opened(g, "EscResolve").await;
    let rep = opened(g, "EscRepeat").await;
    let (res_id, rep_id) = (id(&res), id(&rep));
    assert_eq!(ts(&res["createdAt"]), created, "one request opened all three");
    assert_eq!(ts(&rep["createdAt"]), created);

    // Step 1 (after 0s) fired with the incident.
    let first = entries(&ack, "escalated");
    assert_eq!(first.len(), 1, "{ack:#}");
    assert_eq!(first[0]["data"]["notify"], json!(["oncall"]));
    assert_eq!(first[0]["data"]["policy"], "pay");
    assert_eq!(ts(&first[0]["at"]), created);
    assert_eq!(ack["escalation"]["policy"], "pay", "{ack:#}");
    assert_eq!(ack["escalation"]["round"], 1, "{ack:#}");
    assert_eq!(ack["escalation"]["nextStep"], 2, "{ack:#}");
    assert_eq!(ts(&ack["escalation"]["nextAt"]), created + mins(5), "{ack:#}");

    // t0: EscResolve resolved at once; no further step.
    let resolved = act(g, res_id, "resolve").await;
    let stop = entries(&resolved, "escalation_stopped");
    assert_eq!(stop.len(), 1, "{resolved:#}");
    assert_eq!(stop[0]["data"]["reason"], "resolved");
    assert_eq!(ts(&stop[0]["at"]), t0());
    assert!(resolved["escalation"]["nextAt"].is_null(), "{resolved:#}");

    // t0+5m: step 2 of EscAck; t0+6m: acknowledged.
    g.advance(mins(5)).await;
    let ack = incident(g, ack_id).await;
    assert_eq!(escalations(&ack).len(), 2, "{ack:#}");
    assert_step_prefix(&ack, created);
    assert_eq!(entries(&ack, "escalated")[1]["data"]["notify"], json!(["lead"]));
    g.advance(mins(1)).await;
    let acked = act(g, ack_id, "acknowledge").await;
    let stop = entries(&acked, "escalation_stopped");
    assert_eq!(stop.len(), 1, "{acked:#}");
    assert!(stop[0]["data"]["reason"].as_str().unwrap().contains("alice"), "{}", stop[0]);
    assert_eq!(ts(&stop[0]["at"]), t0() + mins(6));
    assert_eq!(acked["escalation"]["policy"], "pay");
    assert!(acked["escalation"]["nextAt"].is_null(), "{acked:#}");

    // t0+20m: EscRepeat went through both rounds, each step at its own
    // instant (t0, +5m, +15m, +20m), then done.
    g.advance_to(t0() + mins(20)).await;
    let rep = incident(g, rep_id).await;
    assert_eq!(escalations(&rep).len(), 4, "{rep:#}");
    assert_step_prefix(&rep, created);
    let notified: Vec<&Value> = entries(&rep, "escalated").iter().map(|e| &e["data"]["notify"]).collect();
    assert_eq!(notified, [&json!(["oncall"]), &json!(["lead"]), &json!(["oncall"]), &json!(["lead"])]);

    // t0+1h, past every due time: nothing more anywhere.
    g.advance_to(t0() + mins(60)).await;
    let rep = incident(g, rep_id).await;
    assert_eq!(escalations(&rep).len(), 4, "repeat 1: two rounds only: {rep:#}");
    assert!(rep["escalation"]["nextAt"].is_null(), "{rep:#}");
    assert_eq!(rep["escalation"]["round"], 2, "{rep:#}");
    assert!(entries(&rep, "escalation_stopped").is_empty(), "exhausted, not stopped: {rep:#}");

    let ack = incident(g, ack_id).await;
    assert_eq!(escalations(&ack).len(), 2, "no step after the acknowledgement: {ack:#}");
    assert_step_prefix(&ack, created);
    assert_eq!(entries(&ack, "escalation_stopped").len(), 1);
    assert!(ack["escalation"]["nextAt"].is_null());

    let res = incident(g, res_id).await;
    assert_eq!(escalations(&res).len(), 1, "resolved before step 2: {res:#}");
    assert_step_prefix(&res, created);
    assert_eq!(entries(&res, "escalation_stopped").len(), 1);
    assert!(res["escalation"]["nextAt"].is_null());
}

// ---- 8. problems ----------------------------------------------------------

const PROBLEM_RULES: &str = r#"
problem_rules:
  - name: recurring
    matchers: ['service="checkout"']
    group_by: [rule, service]
    min_incidents: 2
    window: 1h
incident_rules:
  - name: flaky
    matchers: []
    group_by: [alertname]
    title: "{{ labels.alertname }} on {{ labels.service }}"
    service: "{{ labels.service }}"
"#;

async fn problem(g: &Gateway, id: i64) -> Value {
    let (status, body) = get(&g.url(&format!("/api/v1/problems/{id}"))).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn problems(g: &Gateway, query: &str) -> Vec<Value> {
    let (status, body) = get(&g.url(&format!("/api/v1/problems{query}"))).await;
    assert_eq!(status, 200, "{query}: {body}");
    body["problems"].as_array().expect("problems").clone()
}

async fn patch_problem(g: &Gateway, id: i64, body: Value) -> (u16, Value) {
    call(Method::PATCH, &g.url(&format!("/api/v1/problems/{id}")), Some(body)).await
}

fn linked_ids(p: &Value) -> BTreeSet<i64> {
    p["incidents"].as_array().expect("incidents").iter().map(id).collect()
}

fn problem_ids(inc: &Value) -> Vec<i64> {
    inc["problems"].as_array().expect("problems").iter().map(id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recurring_incidents_form_a_problem_and_known_errors_carry_a_workaround() {
    let env = Env::start(PROBLEM_RULES);
    let g = &env.g;
    let key = r#"recurring{rule="flaky",service="checkout"}"#;

    fire(g, json!({"alertname": "Flaky1", "service": "checkout"})).await;
    let i1 = opened(g, "Flaky1").await;
    assert!(problem_ids(&i1).is_empty(), "{i1:#}");
    assert!(problems(g, "").await.is_empty());

    // The second incident of the key opens the problem, linking both.
    fire(g, json!({"alertname": "Flaky2", "service": "checkout"})).await;
    let i2 = opened(g, "Flaky2").await;
    let list = problems(g, "").await;
    assert_eq!(list.len(), 1, "{list:#?}");
    let p = &list[0];
    let pid = id(p);
    assert_eq!(p["rule"], "recurring");
    assert_eq!(p["key"], key);
    assert_eq!(p["state"], "open");
    assert_eq!(p["title"], "Recurring: Flaky2 on checkout");
    assert_eq!(p["incidentCount"], 2);
    assert_eq!(p["createdBy"], "alertgate");
    assert!(p["workaround"].is_null() && p["rootCause"].is_null(), "{p}");
    assert_eq!(problem_ids(&i2), [pid], "{i2:#}");
    let i1 = incident(g, id(&i1)).await;
    assert_eq!(problem_ids(&i1), [pid], "the earlier incident is linked too: {i1:#}");
    let linked = entries(&i1, "problem_linked");
    assert_eq!(linked.len(), 1, "{i1:#}");
    assert!(linked[0]["message"].as_str().unwrap().contains(&format!("problem {pid}")), "{}", linked[0]);
    assert!(i1.get("workaround").is_none(), "an open problem has no workaround yet: {i1:#}");

    // A resolved incident stays linked; the third links at once.
    act(g, id(&i1), "resolve").await;
    fire(g, json!({"alertname": "Flaky3", "service": "checkout"})).await;
    let i3 = opened(g, "Flaky3").await;
    assert_eq!(problem_ids(&i3), [pid], "{i3:#}");
    let list = problems(g, "").await;
    assert_eq!(list.len(), 1, "still one problem: {list:#?}");
    let p = &list[0];
    assert_eq!(p["incidentCount"], 3);
    assert_eq!(ts(&p["firstOccurrence"]), ts(&i1["createdAt"]));
    assert_eq!(ts(&p["lastOccurrence"]), ts(&i3["createdAt"]));
    let detail = problem(g, pid).await;
    assert_eq!(linked_ids(&detail), BTreeSet::from([id(&i1), id(&i2), id(&i3)]));
    let pkinds: Vec<&str> =
        detail["timeline"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(pkinds, ["opened", "incident_linked", "incident_linked", "incident_linked"], "{detail:#}");

    // Edits: mistakes first.
    let (status, body) = patch_problem(g, pid, json!({"actor": "bob", "state": "known_error"})).await;
    assert_eq!(status, 400, "a known error needs a workaround: {body}");
    let (status, body) = patch_problem(g, pid, json!({"actor": "bob", "state": "fixed"})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = patch_problem(g, pid, json!({"actor": "bob", "state": "closed"})).await;
    assert_eq!(status, 409, "open -> closed skips resolved: {body}");
    let (status, body) = patch_problem(g, pid, json!({"actor": "bob", "severity": "high"})).await;
    assert_eq!(status, 400, "unknown field: {body}");
    assert!(body.to_string().contains("severity"), "{body}");
    let (status, body) = patch_problem(g, pid, json!({"state": "resolved"})).await;
    assert_eq!(status, 400, "an edit needs an actor: {body}");
    let (status, body) = patch_problem(g, 999_999, json!({"actor": "bob", "title": "x"})).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(problem(g, pid).await["state"], "open", "nothing changed");

    // Known error with its workaround.
    let workaround = "restart the checkout pods";
    let (status, p) = patch_problem(
        g,
        pid,
        json!({"actor": "bob", "state": "known_error", "workaround": workaround, "root_cause": "connection leak"}),
    )
    .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["state"], "known_error");
    assert_eq!(p["workaround"], workaround);
    assert_eq!(p["rootCause"], "connection leak");
    let updated = p["timeline"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(updated["kind"], "updated", "{p:#}");
    assert_eq!(updated["actor"], "bob");
    assert!(ids_of(&problems(g, "?state=known_error").await).contains(&pid));
    assert!(!ids_of(&problems(g, "?state=open").await).contains(&pid));
    assert!(ids_of(&problems(g, "?state=open,known_error").await).contains(&pid));
    let (status, body) = get(&g.url("/api/v1/problems?state=fixed")).await;
    assert_eq!(status, 400, "{body}");
    let i2 = incident(g, id(&i2)).await;
    assert_eq!(i2["workaround"], workaround, "a linked incident shows the known error's workaround: {i2:#}");

    // A new incident of the key links to the known error and says its workaround.
    fire(g, json!({"alertname": "Flaky4", "service": "checkout"})).await;
    let i4 = opened(g, "Flaky4").await;
    assert_eq!(problem_ids(&i4), [pid], "{i4:#}");
    assert_eq!(i4["workaround"], workaround, "{i4:#}");
    let linked = entries(&i4, "problem_linked");
    assert_eq!(linked.len(), 1, "{i4:#}");
    assert!(linked[0]["message"].as_str().unwrap().contains(workaround), "{}", linked[0]);
    let p = problem(g, pid).await;
    assert_eq!(p["incidentCount"], 4);
    assert_eq!(ts(&p["lastOccurrence"]), ts(&i4["createdAt"]));

    // Problems by hand, for incidents no problem rule matches.
    fire(g, json!({"alertname": "Ledger1", "service": "ledger"})).await;
    fire(g, json!({"alertname": "Ledger2", "service": "ledger"})).await;
    let l1 = opened(g, "Ledger1").await;
    let l2 = opened(g, "Ledger2").await;
    assert!(problem_ids(&l2).is_empty(), "no rule matches ledger: {l2:#}");
    let create = g.url("/api/v1/problems");
    let (status, body) = post(&create, &json!({"actor": "bob", "title": "x", "colour": "red"}).to_string()).await;
    assert_eq!(status, 400, "unknown field: {body}");
    let (status, body) = post(&create, &json!({"actor": "bob", "title": "  "}).to_string()).await;
    assert_eq!(status, 400, "a title is required: {body}");
    let (status, body) =
        post(&create, &json!({"actor": "bob", "title": "x", "incidents": [999_999]}).to_string()).await;
    assert_eq!(status, 404, "{body}");
    let (status, manual) = post(
        &create,
        &json!({"actor": "bob", "title": "Ledger timeouts", "key": "ledger-timeouts",
                "root_cause": "slow disk", "incidents": [id(&l1)]})
        .to_string(),
    )
    .await;
    assert_eq!(status, 201, "{manual}");
    let mid = id(&manual);
    assert_ne!(mid, pid);
    assert_eq!(manual["title"], "Ledger timeouts");
    assert_eq!(manual["key"], "ledger-timeouts");
    assert!(manual["rule"].is_null(), "opened by hand: {manual}");
    assert_eq!(manual["state"], "open");
    assert_eq!(manual["rootCause"], "slow disk");
    assert_eq!(manual["createdBy"], "bob");
    assert_eq!(manual["incidentCount"], 1);
    assert_eq!(linked_ids(&manual), BTreeSet::from([id(&l1)]));
    assert_eq!(manual["incidents"][0]["linkedBy"], "bob");

    // The link endpoint.
    let link = g.url(&format!("/api/v1/problems/{mid}/incidents"));
    let (status, body) = post(&link, &json!({"actor": "bob", "incidents": []}).to_string()).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(&link, &json!({"actor": "bob", "incidents": [999_999]}).to_string()).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = post(&link, &json!({"actor": "bob", "incidents": [1], "why": "x"}).to_string()).await;
    assert_eq!(status, 400, "unknown field: {body}");
    let (status, body) =
        post(&g.url("/api/v1/problems/999999/incidents"), &json!({"actor": "bob", "incidents": [1]}).to_string()).await;
    assert_eq!(status, 404, "{body}");
    let (status, manual) = post(&link, &json!({"actor": "bob", "incidents": [id(&l2)]}).to_string()).await;
    assert_eq!(status, 200, "{manual}");
    assert_eq!(manual["incidentCount"], 2);
    assert_eq!(linked_ids(&manual), BTreeSet::from([id(&l1), id(&l2)]));
    let l2 = incident(g, id(&l2)).await;
    assert_eq!(problem_ids(&l2), [mid]);
    let linked = entries(&l2, "problem_linked");
    assert_eq!(linked.len(), 1, "{l2:#}");
    assert_eq!(linked[0]["actor"], "bob");
    // Linking again changes nothing.
    let (status, again) = post(&link, &json!({"actor": "bob", "incidents": [id(&l2)]}).to_string()).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["incidentCount"], 2);
    assert_eq!(entries(&incident(g, id(&l2)).await, "problem_linked").len(), 1);

    // Edit the title; only what changed is recorded.
    let (status, p) = patch_problem(g, mid, json!({"actor": "bob", "title": "Ledger write timeouts"})).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["title"], "Ledger write timeouts");
    assert_eq!(p["state"], "open");
    assert_eq!(p["rootCause"], "slow disk", "kept");
    let last = p["timeline"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "updated");
    assert!(last["data"].get("title").is_some() && last["data"].get("state").is_none(), "{last}");

    // Resolve, close; a closed problem is final and takes no incidents.
    let (status, p) = patch_problem(g, mid, json!({"actor": "bob", "state": "resolved"})).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["state"], "resolved");
    assert!(p["resolvedAt"].is_string(), "{p}");
    let (status, p) = patch_problem(g, mid, json!({"actor": "bob", "state": "closed"})).await;
    assert_eq!(status, 200, "{p}");
    assert!(p["closedAt"].is_string(), "{p}");
    let (status, body) = patch_problem(g, mid, json!({"actor": "bob", "state": "open"})).await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = post(&link, &json!({"actor": "bob", "incidents": [id(&i4)]}).to_string()).await;
    assert_eq!(status, 409, "{body}");

    // A problem opened with a workaround becomes a known error without repeating it.
    let (status, cache) = post(
        &create,
        &json!({"actor": "carol", "title": "Cache stampede", "workaround": "warm the cache"}).to_string(),
    )
    .await;
    assert_eq!(status, 201, "{cache}");
    let (status, cache) = patch_problem(g, id(&cache), json!({"actor": "carol", "state": "known_error"})).await;
    assert_eq!(status, 200, "{cache}");
    assert_eq!(cache["state"], "known_error");
    assert_eq!(cache["workaround"], "warm the cache");

    let (status, body) = get(&g.url("/api/v1/problems/999999")).await;
    assert_eq!(status, 404, "{body}");
}

fn ids_of(list: &[Value]) -> BTreeSet<i64> {
    list.iter().map(id).collect()
}

const WINDOW_RULES: &str = r#"
problem_rules:
  - name: burst
    matchers: []
    group_by: [service]
    min_incidents: 2
    window: 1h
incident_rules:
  - name: any
    matchers: []
    group_by: [alertname]
    service: "{{ labels.service }}"
"#;

/// Only incidents within the problem rule's window count towards a problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_incidents_within_the_window_form_a_problem() {
    let env = Env::start(WINDOW_RULES);
    let g = &env.g;
    // t0: the first; t0+61m: the second, outside the hour's window.
    fire(g, json!({"alertname": "Cart1", "service": "cart"})).await;
    let c1 = opened(g, "Cart1").await;
    g.advance(mins(61)).await;
    fire(g, json!({"alertname": "Cart2", "service": "cart"})).await;
    let c2 = opened(g, "Cart2").await;
    assert!(problem_ids(&c2).is_empty(), "the first is outside the 1h window: {c2:#}");
    assert!(problems(g, "").await.is_empty());
    // t0+1h59m: the third, within the hour after the second.
    g.advance(mins(58)).await;
    fire(g, json!({"alertname": "Cart3", "service": "cart"})).await;
    let c3 = opened(g, "Cart3").await;
    let list = problems(g, "").await;
    assert_eq!(list.len(), 1, "{list:#?}");
    let p = problem(g, id(&list[0])).await;
    assert_eq!(p["key"], r#"burst{service="cart"}"#);
    assert_eq!(linked_ids(&p), BTreeSet::from([id(&c2), id(&c3)]), "{p:#}");
    assert!(problem_ids(&incident(g, id(&c1)).await).is_empty());
}

// ---- 9. changes -----------------------------------------------------------

const CHANGE_RULES: &str = r#"
change_correlation: {window: 1h}
incident_rules:
  - name: svc
    matchers: []
    group_by: [alertname, service]
    service: "{{ labels.service }}"
"#;

async fn new_change(g: &Gateway, body: Value) -> Value {
    let (status, c) = post(&g.url("/api/v1/changes"), &body.to_string()).await;
    assert_eq!(status, 201, "{body}: {c}");
    c
}

async fn changes(g: &Gateway, query: &str) -> Vec<Value> {
    let (status, body) = get(&g.url(&format!("/api/v1/changes{query}"))).await;
    assert_eq!(status, 200, "{query}: {body}");
    body["changes"].as_array().expect("changes").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_changes_of_the_service_are_suspected_causes() {
    let env = Env::start(CHANGE_RULES);
    let g = &env.g;

    let deploy = new_change(
        g,
        json!({"service": "payments", "summary": "deploy payments v1.2.3", "start": ago(g, 600),
               "link": "https://ci.example/1", "labels": {"version": "1.2.3"}, "actor": "ci-bot"}),
    )
    .await;
    assert_eq!(deploy["service"], "payments");
    assert_eq!(deploy["summary"], "deploy payments v1.2.3");
    assert!(deploy["endsAt"].is_null(), "a point change: {deploy}");
    assert_eq!(deploy["link"], "https://ci.example/1");
    assert_eq!(deploy["labels"], json!({"version": "1.2.3"}));
    assert_eq!(deploy["source"], "api");
    assert_eq!(deploy["suppress"], false);
    assert_eq!(deploy["createdBy"], "ci-bot");
    assert_eq!(ts(&deploy["startsAt"]), t0() - mins(10), "{deploy}");
    // Ended half an hour ago: still within the 1 h window.
    let migration = new_change(
        g,
        json!({"service": "payments", "summary": "schema migration", "start": ago(g, 5400), "end": ago(g, 1800)}),
    )
    .await;
    let other = new_change(g, json!({"service": "search", "summary": "deploy search", "start": ago(g, 300)})).await;
    let old = new_change(g, json!({"service": "payments", "summary": "old deploy", "start": ago(g, 7200)})).await;
    let future =
        new_change(g, json!({"service": "payments", "summary": "planned deploy", "start": ago(g, -600)})).await;
    let unscoped = new_change(g, json!({"summary": "network maintenance", "start": ago(g, 60)})).await;
    assert!(unscoped["service"].is_null(), "{unscoped}");

    fire(g, json!({"alertname": "PaymentErrors", "service": "payments"})).await;
    let inc = opened(g, "PaymentErrors").await;
    let suspected: BTreeSet<i64> =
        inc["suspectedChanges"].as_array().expect("suspectedChanges").iter().map(id).collect();
    assert_eq!(suspected, BTreeSet::from([id(&deploy), id(&migration)]), "{inc:#}");
    for not in [&other, &old, &future, &unscoped] {
        assert!(!suspected.contains(&id(not)), "{not} is no suspect");
    }
    let listed = inc["suspectedChanges"].as_array().unwrap();
    let d = listed.iter().find(|c| id(c) == id(&deploy)).unwrap();
    assert_eq!(d["summary"], "deploy payments v1.2.3");
    assert_eq!(d["service"], "payments");
    let noted = entries(&inc, "change_suspected");
    assert_eq!(noted.len(), 2, "{inc:#}");
    let noted_ids: BTreeSet<i64> = noted.iter().map(|e| e["data"]["change"].as_i64().unwrap()).collect();
    assert_eq!(noted_ids, suspected);

    // An incident of another service lists only its own change.
    fire(g, json!({"alertname": "SearchSlow", "service": "search"})).await;
    let search = opened(g, "SearchSlow").await;
    let suspected: Vec<i64> = search["suspectedChanges"].as_array().unwrap().iter().map(id).collect();
    assert_eq!(suspected, [id(&other)], "{search:#}");
    // No change, no suspect.
    fire(g, json!({"alertname": "Quiet", "service": "billing"})).await;
    let quiet = opened(g, "Quiet").await;
    assert_eq!(quiet["suspectedChanges"], json!([]), "{quiet:#}");

    // Listing by service.
    let pay = changes(g, "?service=payments").await;
    assert_eq!(ids_of(&pay), BTreeSet::from([id(&deploy), id(&migration), id(&old), id(&future)]));
    assert_eq!(changes(g, "").await.len(), 6);
    assert!(changes(g, "?service=nothing").await.is_empty());
    let (status, body) = get(&g.url("/api/v1/changes?team=x")).await;
    assert_eq!(status, 400, "{body}");

    // Mistakes.
    let bad = [
        json!({"service": "payments"}),
        json!({"service": "payments", "summary": ""}),
        json!({"service": "payments", "summary": "x", "start": "yesterday"}),
        json!({"service": "payments", "summary": "x", "start": ago(g, 60), "end": ago(g, 120)}),
        json!({"service": "payments", "summary": "x", "servce": "typo"}),
    ];
    for body in bad {
        let (status, answer) = post(&g.url("/api/v1/changes"), &body.to_string()).await;
        assert_eq!(status, 400, "{body}: {answer}");
    }

    // PagerDuty change events.
    let started = ago(g, 120);
    let event = json!({
        "routing_key": "R0123456789ABCDEF0123456789ABCDE",
        "payload": {
            "summary": "Build 42 deployed to inventory",
            "source": "ci",
            "timestamp": started,
            "custom_details": {"service": "inventory", "build": "42"}
        },
        "links": [{"href": "https://ci.example/builds/42", "text": "Build 42"}]
    });
    let (status, body) = post(&g.url("/v2/change/enqueue"), &event.to_string()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["message"], "Change event processed");
    let inv = changes(g, "?service=inventory").await;
    assert_eq!(inv.len(), 1, "{inv:#?}");
    let c = &inv[0];
    assert_eq!(id(c), body["id"].as_i64().expect("the change's id"));
    assert_eq!(c["summary"], "Build 42 deployed to inventory");
    assert_eq!(c["source"], "pagerduty");
    assert_eq!(c["link"], "https://ci.example/builds/42");
    assert_eq!(c["labels"]["build"], "42");
    assert_eq!(ts(&c["startsAt"]).as_millisecond(), started.parse::<Timestamp>().unwrap().as_millisecond());
    // ... and an inventory incident suspects it.
    fire(g, json!({"alertname": "StockDrift", "service": "inventory"})).await;
    let stock = opened(g, "StockDrift").await;
    let suspected: Vec<i64> = stock["suspectedChanges"].as_array().unwrap().iter().map(id).collect();
    assert_eq!(suspected, [id(c)], "{stock:#}");

    let mut no_key = event.clone();
    no_key.as_object_mut().unwrap().remove("routing_key");
    let (status, body) = post(&g.url("/v2/change/enqueue"), &no_key.to_string()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["status"], "invalid event", "{body}");
    assert!(body.to_string().contains("routing_key"), "{body}");
    let (status, body) = post(&g.url("/v2/change/enqueue"), &json!({"routing_key": "k"}).to_string()).await;
    assert_eq!(status, 400, "no payload: {body}");
    assert_eq!(body["status"], "invalid event", "{body}");
    assert_eq!(changes(g, "?service=inventory").await.len(), 1, "refused events store nothing");
}

// ---- 10. maintenance windows ----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintenance_window_mutes_its_service_until_it_ends() {
    let env = Env::start(CHANGE_RULES);
    let g = &env.g;

    for body in [
        json!({"service": "payments", "summary": "db upgrade", "suppress": true}),
        json!({"summary": "db upgrade", "end": ago(g, -60), "suppress": true}),
    ] {
        let (status, answer) = post(&g.url("/api/v1/changes"), &body.to_string()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer.to_string().contains("maintenance window"), "{answer}");
    }

    // t0: a window on payments until t0+2h.
    let end = t0() + mins(120);
    let window = new_change(
        g,
        json!({"service": "payments", "summary": "db upgrade", "end": end.to_string(), "suppress": true}),
    )
    .await;
    assert_eq!(window["suppress"], true);
    assert_eq!(ts(&window["endsAt"]), end);
    let muted_by = format!("change:{}", id(&window));

    // t0: payments fires: muted; another service is not in maintenance.
    let pay = json!({"alertname": "PayDown", "service": "payments"});
    fire(g, pay.clone()).await;
    let stored = |labels: Value| async move {
        all_alerts(g, "").await.into_iter().find(|a| a["labels"] == labels).expect("the stored alert")
    };
    let a = stored(pay.clone()).await;
    assert_eq!(a["mutedBy"], muted_by, "{a}");
    fire(g, json!({"alertname": "SearchDown", "service": "search"})).await;
    opened(g, "SearchDown").await;
    assert!(find_incident(g, "PayDown").await.is_none(), "muted while the window lasts");

    // t0+1h: sent again: still muted. A blip fires and resolves a minute later.
    g.advance(mins(60)).await;
    fire(g, pay.clone()).await;
    assert_eq!(stored(pay.clone()).await["mutedBy"], muted_by);
    assert!(find_incident(g, "PayDown").await.is_none(), "muted while the window lasts");
    let brief = json!({"alertname": "PayBlip", "service": "payments"});
    fire(g, brief.clone()).await;
    let blip_start = g.now().to_string();
    g.advance(mins(1)).await;
    push(g, json!([{"labels": brief, "startsAt": blip_start, "endsAt": g.now().to_string()}])).await;

    // t0+2h: the window ends: the gateway routes the still-firing alert itself, then.
    g.advance_to(end).await;
    let inc = find_incident(g, "PayDown").await.expect("PayDown's incident when the window ends");
    assert_eq!(ts(&inc["createdAt"]), end, "{inc:#}");
    assert_eq!(inc["service"], "payments");
    assert_eq!(inc["state"], "triggered");
    let a = stored(pay.clone()).await;
    assert!(a.get("mutedBy").is_none(), "no longer muted: {a}");
    assert_eq!(inc["alerts"].as_array().unwrap().len(), 1, "{inc:#}");
    assert!(find_incident(g, "PayBlip").await.is_none(), "resolved during the window");
}

/// A window that ends while the gateway is down releases its alerts after
/// the restart, as it would have had the gateway kept running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintenance_window_that_ends_while_down_releases_its_alerts_after_restart() {
    let mut env = Env::start(CHANGE_RULES);
    // t0: a window until t0+2h; its service fires; the gateway is killed.
    let end = t0() + mins(120);
    let window = new_change(
        &env.g,
        json!({"service": "payments", "summary": "network cutover", "end": end.to_string(), "suppress": true}),
    )
    .await;
    let pay = json!({"alertname": "CutoverDown", "service": "payments"});
    fire(&env.g, pay.clone()).await;
    let a = all_alerts(&env.g, "").await.into_iter().find(|a| a["labels"] == pay).expect("the stored alert");
    assert_eq!(a["mutedBy"], format!("change:{}", id(&window)), "{a}");
    tokio::task::block_in_place(|| env.g.kill9());

    // t0+2h30m: started again. Nobody re-sends the alert: the gateway's
    // first round releases it by itself.
    let restarted = end + mins(30);
    tokio::task::block_in_place(|| env.g.respawn_at(restarted));
    let g = &env.g;
    let inc =
        wait_for(WAIT, "the released alert's incident after the restart", || find_incident(g, "CutoverDown")).await;
    assert_eq!(inc["service"], "payments");
    assert_eq!(ts(&inc["createdAt"]), restarted, "{inc:#}");
    let a = all_alerts(g, "").await.into_iter().find(|a| a["labels"] == pay).expect("the stored alert");
    assert!(a.get("mutedBy").is_none(), "no longer muted: {a}");
}

// ---- 11. business-hours calendars -----------------------------------------

const CALENDAR_RULES: &str = r#"
calendars:
  business-eu:
    timezone: Europe/Berlin
    hours: {mon-fri: "09:00-17:00"}
    holidays: [2026-12-24]
sla_policies:
  - name: scoped
    matchers: ['service="nosla"']
    targets: {P1: {respond: 1h}}
  - name: std
    matchers: []
    targets: {P3: {respond: 1h}}
  - name: biz
    matchers: ['service="never"']
    calendar: business-eu
    targets: {P3: {respond: 4h, resolve: 3d}}
incident_rules:
  - name: office
    matchers: ['team="office"']
    group_by: [alertname]
    service: "{{ labels.service }}"
    impact: medium
    urgency: medium
    sla_policy: biz
  - name: rest
    matchers: []
    group_by: [alertname]
    service: "{{ labels.service }}"
    impact: medium
    urgency: medium
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_business_hours_calendar_is_named_in_the_incident_sla() {
    let env = Env::start(CALENDAR_RULES);
    let g = &env.g;
    push(
        g,
        json!([
            {"labels": {"alertname": "Office", "team": "office", "service": "hr"}},
            {"labels": {"alertname": "Anywhere", "service": "web"}},
            {"labels": {"alertname": "NoTargets", "service": "nosla"}},
        ]),
    )
    .await;

    // The rule names its policy, over the first policy that matches.
    let office = opened(g, "Office").await;
    let start = ts(&office["createdAt"]);
    assert_eq!(office["priority"], "P3");
    let sla = &office["sla"];
    assert_eq!(sla["policy"], "biz", "{office:#}");
    assert_eq!(sla["calendar"], "business-eu");
    assert_eq!(sla["respond"]["target"], "4h");
    assert_eq!(seconds(&sla["respond"]["target_seconds"]), 4.0 * 3600.0);
    assert_eq!(sla["resolve"]["target"], "3d");
    let started = entries(&office, "sla_started");
    assert_eq!(started.len(), 1, "{office:#}");
    assert_eq!(started[0]["data"]["calendar"], "business-eu");
    assert!(started[0]["message"].as_str().unwrap().contains("business-eu"), "{}", started[0]);
    assert_eq!(start, t0(), "Monday 10:00 in Berlin");
    assert_eq!(seconds(&sla["respond"]["elapsed_seconds"]), 0.0);

    // The first matching policy, on 24x7.
    let anywhere = opened(g, "Anywhere").await;
    assert_eq!(anywhere["sla"]["policy"], "std", "{anywhere:#}");
    assert_eq!(anywhere["sla"]["calendar"], "24x7");
    assert!(anywhere["sla"].get("resolve").is_none());

    // A matching policy without targets for the priority runs no clock.
    let none = opened(g, "NoTargets").await;
    assert!(none.get("sla").is_none(), "{none:#}");
    assert!(entries(&none, "sla_started").is_empty(), "{none:#}");

    // t0+8h, 18:00 in Berlin: the office clock counted 10:00 to 17:00 only;
    // the 24x7 one all eight hours.
    g.advance(mins(8 * 60)).await;
    let office = incident(g, id(&office)).await;
    assert_eq!(seconds(&office["sla"]["respond"]["elapsed_seconds"]), 7.0 * 3600.0, "{office:#}");
    let anywhere = incident(g, id(&anywhere)).await;
    assert_eq!(seconds(&anywhere["sla"]["respond"]["elapsed_seconds"]), 8.0 * 3600.0, "{anywhere:#}");
}

// ---- 12. rule-file errors -------------------------------------------------

/// `alertgate check --rules DIR [--config FILE]`: exit code and output.
fn check(dir: &Path, config: Option<&Path>) -> (Option<i32>, String) {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ALERTGATE_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(["check", "--rules", &dir.display().to_string()]);
    if let Some(c) = config {
        cmd.args(["--config", &c.display().to_string()]);
    }
    let (status, stdout, stderr) = run_to_exit(&mut cmd, Duration::from_secs(60));
    (status.code(), format!("{stdout}{}", if stderr.is_empty() { String::new() } else { format!("\n{stderr}") }))
}

#[test]
fn check_names_file_and_line_of_itsm_mistakes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = &tmp.path().join("rules");
    std::fs::create_dir(dir).unwrap();
    let cfg_file = tmp.path().join("alertgate.yml");
    std::fs::write(&cfg_file, notifier_config(&["oncall", "lead", "chatops"])).unwrap();
    let config = Some(cfg_file.as_path());
    // The ITSM sections as documented are accepted.
    std::fs::write(
        dir.join("good.yaml"),
        r#"calendars:
  business-eu: {timezone: Europe/Berlin, hours: {mon-fri: "09:00-17:00"}, holidays: [2026-12-24]}
sla_policies:
  - name: fast
    matchers: []
    calendar: business-eu
    targets: {P1: {respond: 2s, resolve: 30s}}
    warn_at: ['50%']
    pause_in: [on_hold]
escalation_policies:
  - {name: pay, steps: [{after: 0s, notify: [oncall]}, {after: 2s, notify: [lead]}], repeat: 0}
problem_rules:
  - {name: recurring, matchers: [], group_by: [rule, service], min_incidents: 2, window: 1h}
change_correlation: {window: 1h}
incident_rules:
  - name: pay
    matchers: []
    sla_policy: fast
    escalation: pay
    notify: [chatops]
"#,
    )
    .unwrap();
    let (code, out) = check(dir, config);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("ok"), "{out}");

    // An undefined priority in a policy's targets.
    std::fs::write(
        dir.join("p0.yaml"),
        "# targets for a priority that does not exist\nsla_policies:\n  - name: broken\n    targets: {P0: {respond: 1m}, P1: {respond: 5m}}\n",
    )
    .unwrap();
    // A policy naming an undefined calendar.
    std::fs::write(
        dir.join("cal.yaml"),
        "sla_policies:\n  - name: ok-one\n    targets: {P2: {respond: 1h}}\n  - name: weekdays\n    calendar: business-us\n    targets: {P1: {respond: 15m}}\n",
    )
    .unwrap();
    let (code, out) = check(dir, config);
    assert_eq!(code, Some(1), "{out}");
    assert!(!out.starts_with("ok"), "{out}");
    let line_with = |file: &str, at: &str| -> String {
        let at = format!("{}:{at}: ", dir.join(file).display());
        out.lines()
            .find(|l| l.starts_with(&at))
            .unwrap_or_else(|| panic!("no line starting with {at:?}:\n{out}"))
            .to_string()
    };
    let p0 = line_with("p0.yaml", "4:14");
    assert!(p0.contains("P0") && p0.contains("broken"), "{p0}");
    let cal = line_with("cal.yaml", "5:15");
    assert!(cal.contains("business-us") && cal.contains("weekdays") && cal.contains("calendar"), "{cal}");
    assert!(!out.contains("good.yaml"), "{out}");
    assert_eq!(out.lines().filter(|l| !l.trim().is_empty()).count(), 2, "one line per problem:\n{out}");
}

/// Notifier names in rule files are checked against the config, and each
/// unknown one is reported at its file and line like every other rule-file
/// problem.
#[test]
fn check_names_file_and_line_of_undeclared_notifiers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = &tmp.path().join("rules");
    std::fs::create_dir(dir).unwrap();
    let cfg_file = tmp.path().join("alertgate.yml");
    std::fs::write(&cfg_file, notifier_config(&["oncall", "chatops"])).unwrap();
    let config = Some(cfg_file.as_path());
    std::fs::write(
        dir.join("paging.yaml"),
        "escalation_policies:\n  - name: pay\n    steps: [{after: 0s, notify: [oncall, pager]}]\nincident_rules:\n  - name: paging\n    matchers: []\n    notify: [chatops, sms]\n    escalation: pay\n",
    )
    .unwrap();
    let (code, out) = check(dir, config);
    assert_eq!(code, Some(1), "{out}");
    let file = dir.join("paging.yaml").display().to_string();
    // Each at the notifier's name in its list.
    for (at, name, who) in [("3:42", "pager", "pay"), ("7:23", "sms", "paging")] {
        let at = format!("{file}:{at}: ");
        let found = out.lines().find(|l| l.contains(&format!("{name:?}")));
        let found = found.unwrap_or_else(|| panic!("no problem naming {name:?}:\n{out}"));
        assert!(found.starts_with(&at), "{name:?} should be reported at {at:?} ({who}):\n{out}");
        assert!(found.contains(who), "{found}");
    }
    assert_eq!(out.lines().filter(|l| !l.trim().is_empty()).count(), 2, "one line per problem:\n{out}");
}

// ---- review follow-ups ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_priority_without_a_target_suspends_the_promise_not_the_time() {
    let rules = r#"
sla_policies:
  - name: tiered
    targets:
      P1: {respond: 15m}
incident_rules:
  - name: pay
    matchers: []
    group_by: [alertname]
    impact: high
    urgency: high
"#;
    let env = Env::start(rules);
    let g = &env.g;
    fire(g, json!({"alertname": "Lowered"})).await;
    let inc = opened(g, "Lowered").await;
    let id = id(&inc);
    assert_eq!(respond(&inc)["state"], "running");
    // t0+5m: lowered to P5.
    g.advance(mins(5)).await;
    let url = g.url(&format!("/api/v1/incidents/{id}/priority"));
    let (status, inc) = call(Method::PATCH, &url, Some(json!({"actor": "alice", "priority": "P5"}))).await;
    assert_eq!(status, 200, "{inc}");
    // P5 promises no response time: the clock stays, shown, counting, with no deadline.
    assert_eq!(respond(&inc)["state"], "running", "{inc:#}");
    assert_eq!(respond(&inc)["target"], Value::Null, "{inc:#}");
    assert_eq!(respond(&inc)["breachAt"], Value::Null, "{inc:#}");
    let suspended = entries(&inc, "sla_retargeted");
    assert!(suspended.iter().any(|e| e["message"].as_str().unwrap().contains("suspended")), "{inc:#}");
    // t0+20m, past the old target: no breach.
    g.advance(mins(15)).await;
    let inc = incident(g, id).await;
    assert!(entries(&inc, "sla_breached").is_empty(), "{inc:#}");
    // t0+20m, back to P1: the promise returns with the 20 minutes used, 15
    // of them allowed: breached at once, so a detour through P5 cannot dodge it.
    let (status, inc) = call(Method::PATCH, &url, Some(json!({"actor": "alice", "priority": "P1"}))).await;
    assert_eq!(status, 200, "{inc}");
    assert_eq!(respond(&inc)["state"], "breached", "{inc:#}");
    assert_eq!(respond(&inc)["elapsed_seconds"], 1200.0, "{inc:#}");
    assert_eq!(ts(&respond(&inc)["breached_at"]), t0() + mins(20), "{inc:#}");
    assert_eq!(entries(&inc, "sla_breached").len(), 1, "{inc:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolved_problem_is_not_reopened_by_its_own_incidents() {
    let env = Env::start(PROBLEM_RULES);
    let g = &env.g;
    for n in ["Churn1", "Churn2"] {
        fire(g, json!({"alertname": n, "service": "checkout"})).await;
        opened(g, n).await;
    }
    let list = problems(g, "").await;
    assert_eq!(list.len(), 1, "{list:#?}");
    let first = id(&list[0]);
    let (status, body) = patch_problem(g, first, json!({"actor": "alice", "state": "resolved"})).await;
    assert_eq!(status, 200, "{body}");
    // One new incident is not a recurrence yet: the resolved problem's own
    // incidents do not count again.
    fire(g, json!({"alertname": "Churn3", "service": "checkout"})).await;
    let i3 = opened(g, "Churn3").await;
    assert!(problem_ids(&i3).is_empty(), "{i3:#}");
    assert_eq!(problems(g, "").await.len(), 1);
    // A second new one is.
    fire(g, json!({"alertname": "Churn4", "service": "checkout"})).await;
    opened(g, "Churn4").await;
    let list = problems(g, "?state=open").await;
    assert_eq!(list.len(), 1, "{list:#?}");
    assert_eq!(list[0]["incidentCount"], 2, "only the new incidents: {list:#?}");
    assert_ne!(id(&list[0]), first);
}

/// The incidents whose common labels name `alertname`, oldest first, once
/// there are `n` of them.
async fn incidents_of(g: &Gateway, alertname: &str, n: usize) -> Vec<Value> {
    wait_for(WAIT, &format!("{n} incident(s) of {alertname}"), || async move {
        let mut list: Vec<Value> =
            incidents(g, "").await.into_iter().filter(|i| i["labels"]["alertname"] == alertname).collect();
        list.sort_by_key(id);
        (list.len() == n).then_some(list)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_rules_make_no_problem_of_unrelated_alerts_without_a_service() {
    // The shipped rules/: the catch-all incident rule and the problem rules
    // `recurring` (by rule and service) and `recurring-alert`.
    let g = &Gateway::start();

    // Three unrelated alerts without a service: three incidents, no problem
    // (they would all have shared the key service="").
    for name in ["DiskFull", "CertExpiring", "QueueBacklog"] {
        fire(g, json!({"alertname": name, "instance": "host-1"})).await;
        let inc = &incidents_of(g, name, 1).await[0];
        assert_eq!(inc["rule"], "catch-all", "{inc:#}");
        assert!(inc["service"].is_null() || inc["service"] == "", "{inc:#}");
    }
    assert!(problems(g, "").await.is_empty(), "{:#?}", problems(g, "").await);

    // Three alerts of one service: its recurring problem.
    let mut ids = BTreeSet::new();
    for name in ["PaymentsLatency", "PaymentsErrors", "PaymentsSaturation"] {
        fire(g, json!({"alertname": name, "service": "payments"})).await;
        ids.insert(id(&incidents_of(g, name, 1).await[0]));
    }
    let list = problems(g, "").await;
    assert_eq!(list.len(), 1, "{list:#?}");
    assert_eq!(list[0]["key"], r#"recurring{rule="catch-all",service="payments"}"#, "{list:#?}");
    assert_eq!(linked_ids(&problem(g, id(&list[0])).await), ids);

    // The same alert coming back without a service (each incident resolved
    // before the next fires) is one problem too: `recurring-alert`.
    let mut ids = BTreeSet::new();
    for n in 0..3 {
        fire(g, json!({"alertname": "BackupFailed", "instance": format!("db-{n}")})).await;
        let newest = incidents_of(g, "BackupFailed", n + 1).await.pop().unwrap();
        ids.insert(id(&newest));
        if n < 2 {
            act(g, id(&newest), "resolve").await;
        }
    }
    let list = problems(g, "").await;
    assert_eq!(list.len(), 2, "{list:#?}");
    let backup = list.iter().find(|p| p["rule"] == "recurring-alert").expect("the recurring-alert problem");
    assert_eq!(backup["key"], r#"recurring-alert{rule="catch-all",title="BackupFailed"}"#, "{backup:#}");
    assert_eq!(linked_ids(&problem(g, id(backup)).await), ids);
}
