//! On call end to end, on a controlled clock: a team's rotation in YAML,
//! who is on call (API, CLI, the iCalendar feed read by Python's
//! `icalendar`), an override through the API, handoff mail to the incoming
//! and outgoing person, and an escalation that pages the on-call person
//! at their own address through a real SMTP server (aiosmtpd).
mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::smtp::{Mail, Smtp};
use common::{BIN, Gateway, Options, get, post, run_to_exit, wait_for};
use jiff::Timestamp;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// Alice and bob take turns daily at 09:00 UTC from Monday 2026-03-02;
/// carol is the escalation's second step by name.
const RULES: &str = r#"
schedules:
  - name: payments-primary
    timezone: UTC
    layers:
      - name: daily
        rotation: {people: [alice, bob], shift: 1d, handoff: "09:00", start: 2026-03-02}
escalation_policies:
  - name: payments
    steps:
      - {after: 0m, notify: ["schedule:payments-primary"]}
      - {after: 15m, notify: ["person:carol"]}
incident_rules:
  - name: payments
    matchers: ['alertname="PaymentsDown"']
    title: "Payments down"
    assign_to: "schedule:payments-primary"
    escalation: payments
"#;

/// `chatops` posts to `hook`; carol is reached there too, as `@carol`.
fn config_with(smtp_port: u16, hook: &str) -> String {
    format!(
        r#"notifiers:
  - {{name: chatops, type: webhook, url: "http://{hook}/chat", timeout: 5s}}
  - name: mail
    type: email
    smtp: {{host: 127.0.0.1, port: {smtp_port}, tls: none}}
    from: "alertgate <alertgate@example.org>"
    to: [ops@example.org]
    timeout: 5s
people:
  - {{name: alice, email: alice@example.org, timezone: Europe/Berlin}}
  - {{name: bob, email: bob@example.org}}
  - {{name: carol, email: carol@example.org, webhook: {{notifier: chatops, handle: "@carol"}}}}
outbox: {{initial_backoff: 1s, max_backoff: 2s, max_age: 1h}}
"#
    )
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// A chat bridge on 127.0.0.1:0 that keeps every JSON body it is sent.
struct Chat {
    addr: std::net::SocketAddr,
    bodies: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Chat {
    async fn start() -> Chat {
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = bodies.clone();
        let app = axum::Router::new().route(
            "/chat",
            axum::routing::post(move |body: axum::body::Bytes| {
                let kept = kept.clone();
                async move {
                    kept.lock().unwrap().push(serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null));
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Chat { addr, bodies }
    }

    fn of(&self, event: &str) -> Vec<Value> {
        self.bodies.lock().unwrap().iter().filter(|b| b["event"] == event).cloned().collect()
    }
}

fn start(rules: &Path, smtp: &Smtp, clock: Timestamp) -> Gateway {
    start_with_chat(rules, smtp, clock, "127.0.0.1:9")
}

fn start_with_chat(rules: &Path, smtp: &Smtp, clock: Timestamp, chat: &str) -> Gateway {
    Gateway::start_with(Options {
        config: Some(config_with(smtp.port, chat)),
        rules_dir: Some(rules.to_path_buf()),
        test_clock: Some(clock),
        ..Default::default()
    })
}

async fn oncall(g: &Gateway) -> Value {
    let (status, board) = get(&g.url("/api/v1/oncall")).await;
    assert_eq!(status, 200, "{board}");
    board["schedules"][0].clone()
}

/// The recipients of a message.
fn to(mail: &Mail) -> String {
    mail.must("To").to_owned()
}

/// Wait until `n` messages arrived; each message's (To, Subject).
async fn mails(smtp: &Smtp, n: usize, what: &str) -> Vec<(String, String)> {
    let all = smtp.wait_messages(n, what).await;
    all.iter().map(|m| (to(m), m.must("Subject").to_owned())).collect()
}

async fn timeline(g: &Gateway, id: i64) -> Vec<Value> {
    let (status, body) = get(&g.url(&format!("/api/v1/incidents/{id}"))).await;
    assert_eq!(status, 200, "{body}");
    body["timeline"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_on_call_person_is_paged_at_their_address_with_overrides_applied() {
    let smtp = Smtp::start();
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("oncall.yaml"), RULES).unwrap();
    let chat = Chat::start().await;
    let g = start_with_chat(rules.path(), &smtp, at("2026-03-02T10:00:00Z"), &chat.addr.to_string());

    // 10:00: alice since 09:00 until tomorrow 09:00, then bob.
    let now = oncall(&g).await;
    assert_eq!(now["now"]["person"], "alice", "{now}");
    assert_eq!(now["now"]["source"], "layer:daily");
    assert_eq!(now["now"]["end"], "2026-03-03T09:00:00Z");
    assert_eq!(now["next"]["person"], "bob");

    // Carol covers 10:30-12:00; the override is audited.
    let body = json!({ "person": "carol", "start": "2026-03-02T10:30:00Z", "end": "2026-03-02T12:00:00Z",
                       "reason": "alice at the dentist", "actor": "alice" });
    let (status, made) = post(&g.url("/api/v1/schedules/payments-primary/overrides"), &body.to_string()).await;
    assert_eq!(status, 201, "{made}");
    let override_id = made["id"].as_i64().unwrap();
    let (_, audit) = get(&g.url("/api/v1/audit?action=schedule.override.create")).await;
    assert_eq!(audit["entries"][0]["actor"], "alice", "{audit}");
    assert_eq!(audit["entries"][0]["after"]["person"], "carol", "{audit}");
    // Bad overrides are refused whole, naming each problem, and store nothing.
    let bad = json!({ "person": "zed", "start": "2026-03-02T12:00:00Z", "end": "2026-03-02T11:00:00Z" });
    let (status, err) = post(&g.url("/api/v1/schedules/payments-primary/overrides"), &bad.to_string()).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["detail"]["errors"].as_array().map(Vec::len), Some(2), "{err}");
    let (status, _) = post(&g.url("/api/v1/schedules/nope/overrides"), &body.to_string()).await;
    assert_eq!(status, 404);

    // 10:45: the override began at 10:30; carol and alice are told of the handoff.
    g.advance_to(at("2026-03-02T10:45:00Z")).await;
    let now = oncall(&g).await;
    assert_eq!(now["now"]["person"], "carol", "{now}");
    assert_eq!(now["now"]["source"], format!("override:{override_id}"));
    let handoff = mails(&smtp, 2, "the handoff to carol").await;
    let mut told: Vec<&str> = handoff.iter().map(|(to, _)| to.as_str()).collect();
    told.sort();
    assert_eq!(told, ["alice@example.org", "carol@example.org"], "{handoff:?}");
    assert!(handoff.iter().all(|(_, s)| s.contains("On-call handoff: payments-primary, carol on call")), "{handoff:?}");

    // The incident is assigned to carol and its first step pages her, at her address only.
    // Prometheus re-sends a firing alert; one with its end an hour away stands for that.
    let alert = json!([{ "labels": { "alertname": "PaymentsDown", "service": "payments" },
                         "endsAt": "2026-03-02T12:00:00Z" }]);
    let (status, body) = post(&g.url("/api/v2/alerts"), &alert.to_string()).await;
    assert_eq!(status, 200, "{body}");
    let id = wait_for(WAIT, "the incident", || async {
        let (_, list) = get(&g.url("/api/v1/incidents")).await;
        list["incidents"][0]["id"].as_i64()
    })
    .await;
    let (_, incident) = get(&g.url(&format!("/api/v1/incidents/{id}"))).await;
    assert_eq!(incident["assignee"], "carol", "{incident}");
    let paged = mails(&smtp, 3, "the page to carol").await;
    assert_eq!(paged[2].0, "carol@example.org", "{paged:?}");
    assert!(paged[2].1.contains("Incident escalated"), "{paged:?}");
    let entries = timeline(&g, id).await;
    let said = |kind: &str| -> Vec<String> {
        entries.iter().filter(|e| e["kind"] == kind).map(|e| e["message"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(said("assigned"), ["assigned to carol, on call in schedule:payments-primary"]);
    assert_eq!(said("escalated"), ["escalation payments step 1 (round 1): notified schedule:payments-primary (carol)"]);
    let body = smtp.wait_messages(3, "the page").await[2].part("text/plain");
    assert!(body.contains("To carol, paged through schedule:payments-primary"), "{body}");
    // Carol's chat handle is paged too, through the webhook notifier.
    let pages = wait_for(WAIT, "carol's page in the chat", || async {
        let pages = chat.of("incident.escalated");
        (!pages.is_empty()).then_some(pages)
    })
    .await;
    assert_eq!(pages.len(), 1, "{pages:#?}");
    assert_eq!(
        pages[0]["recipient"],
        json!({ "person": "carol", "via": "schedule:payments-primary", "handle": "@carol" })
    );
    assert_eq!(pages[0]["incident"]["assignee"], "carol");

    // 10:59: the override is deleted (audited): alice is on call again, and she
    // and carol are told so.
    g.advance_to(at("2026-03-02T10:59:00Z")).await;
    let resp = common::client()
        .delete(g.url(&format!("/api/v1/schedules/payments-primary/overrides/{override_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(oncall(&g).await["now"]["person"], "alice");
    let back = mails(&smtp, 5, "the handoff back to alice").await;
    assert!(back[3..].iter().all(|(_, s)| s.contains("alice on call")), "{back:?}");
    let mut told: Vec<&str> = back[3..].iter().map(|(to, _)| to.as_str()).collect();
    told.sort();
    assert_eq!(told, ["alice@example.org", "carol@example.org"]);
    let (_, audit) = get(&g.url("/api/v1/audit?action=schedule.override.delete")).await;
    assert_eq!(audit["entries"][0]["before"]["person"], "carol", "{audit}");

    // 11:00 is 15 minutes after the incident opened: step 2 pages carol by name.
    g.advance_to(at("2026-03-02T11:00:00Z")).await;
    let all = mails(&smtp, 6, "step 2").await;
    assert_eq!(all[5].0, "carol@example.org", "{all:?}");
    assert!(said_now(&g, id).await.contains(&"escalation payments step 2 (round 1): notified person:carol".to_owned()));
    // Nobody else was mailed: not the notifier's own list, not bob.
    assert!(all.iter().all(|(to, _)| !to.contains("ops@") && !to.contains("bob@")), "{all:?}");
}

async fn said_now(g: &Gateway, id: i64) -> Vec<String> {
    timeline(g, id).await.iter().filter_map(|e| e["message"].as_str().map(str::to_owned)).collect()
}

/// Parse a calendar with Python's `icalendar` (Debian's python3-icalendar)
/// and print each event as JSON: summary, start and end in UTC.
fn parse_ics(ics: &str) -> Vec<Value> {
    let script = r#"
import json, sys, icalendar
cal = icalendar.Calendar.from_ical(sys.stdin.buffer.read())
out = []
for e in cal.walk('VEVENT'):
    out.append({"summary": str(e.get('summary')), "uid": str(e.get('uid')),
                "start": e.decoded('dtstart').astimezone(__import__('datetime').timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
                "end": e.decoded('dtend').astimezone(__import__('datetime').timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')})
print(json.dumps({"name": str(cal.get('x-wr-calname')), "events": out}))
"#;
    use std::io::Write;
    let mut child = Command::new(common::smtp::PYTHON)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with icalendar (apt-get install python3-icalendar)");
    child.stdin.take().unwrap().write_all(ics.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "icalendar refused the feed: {}", String::from_utf8_lossy(&out.stderr));
    let parsed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(parsed["name"].as_str().unwrap().starts_with("On call: "), "{parsed}");
    parsed["events"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn shifts_the_cli_and_revocable_calendar_feeds() {
    let smtp = Smtp::start();
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("oncall.yaml"), RULES).unwrap();
    let g = start(rules.path(), &smtp, at("2026-03-02T10:00:00Z"));
    let body =
        json!({ "person": "carol", "start": "2026-03-04T12:00:00Z", "end": "2026-03-04T18:00:00Z", "actor": "bob" });
    let (status, made) = post(&g.url("/api/v1/schedules/payments-primary/overrides"), &body.to_string()).await;
    assert_eq!(status, 201, "{made}");

    // The final shifts of a window: the override cuts into alice's Wednesday.
    let (status, list) =
        get(&g.url("/api/v1/schedules/payments-primary/shifts?from=2026-03-02T09:00:00Z&to=2026-03-05T09:00:00Z"))
            .await;
    assert_eq!(status, 200, "{list}");
    let shifts: Vec<(String, String, String)> = list["shifts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["person"].as_str().unwrap().into(),
                s["start"].as_str().unwrap().into(),
                s["end"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want = [
        ("alice", "2026-03-02T09:00:00Z", "2026-03-03T09:00:00Z"),
        ("bob", "2026-03-03T09:00:00Z", "2026-03-04T09:00:00Z"),
        ("alice", "2026-03-04T09:00:00Z", "2026-03-04T12:00:00Z"),
        ("carol", "2026-03-04T12:00:00Z", "2026-03-04T18:00:00Z"),
        ("alice", "2026-03-04T18:00:00Z", "2026-03-05T09:00:00Z"),
    ];
    let want: Vec<(String, String, String)> =
        want.iter().map(|(p, s, e)| ((*p).into(), (*s).into(), (*e).into())).collect();
    assert_eq!(shifts, want);
    let (status, err) =
        get(&g.url("/api/v1/schedules/payments-primary/shifts?from=2026-03-05T00:00:00Z&to=2026-03-04T00:00:00Z"))
            .await;
    assert_eq!((status, err["error"].as_str()), (400, Some("from: must be before to")));

    // The CLI says the same.
    let url = g.url("");
    let (st, out, err) = run_to_exit(Command::new(BIN).args(["oncall", "--url", &url]), Duration::from_secs(20));
    assert!(st.success(), "{err}");
    assert!(out.contains("payments-primary") && out.contains("alice (layer:daily)") && out.contains("bob"), "{out}");
    let (st, out, err) = run_to_exit(
        Command::new(BIN).args([
            "schedules",
            "shifts",
            "payments-primary",
            "--from",
            "2026-03-04T00:00:00Z",
            "--to",
            "2026-03-05T00:00:00Z",
            "--url",
            &url,
        ]),
        Duration::from_secs(20),
    );
    assert!(st.success(), "{err}");
    assert!(out.contains("carol") && out.contains("override:"), "{out}");
    let end = (common::wall_clock() + jiff::SignedDuration::from_hours(24)).to_string();
    let (st, out, err) = run_to_exit(
        Command::new(BIN)
            .args(["schedules", "override", "payments-primary", "--person", "bob", "--start", "now", "--end", &end])
            .args(["--reason", "swap", "--actor", "bob", "--url", &url]),
        Duration::from_secs(20),
    );
    assert!(st.success(), "{err}");
    assert!(out.contains("bob") && out.contains("swap"), "{out}");
    let (_, listed) = get(&g.url("/api/v1/schedules/payments-primary/overrides")).await;
    assert_eq!(listed["overrides"].as_array().map(Vec::len), Some(2), "{listed}");
    assert_eq!(listed["overrides"][1]["createdBy"], "bob");

    // A feed of the schedule: parsed by a real iCalendar parser, the same shifts.
    let (status, feed) = post(
        &g.url("/api/v1/calendar-feeds"),
        &json!({ "schedule": "payments-primary", "actor": "alice" }).to_string(),
    )
    .await;
    assert_eq!(status, 201, "{feed}");
    let feed_url = feed["url"].as_str().unwrap().to_owned();
    assert!(feed_url.starts_with("/api/v1/schedules/payments-primary/calendar.ics?key="), "{feed_url}");
    let ics = common::client().get(g.url(&feed_url)).send().await.unwrap();
    assert_eq!(ics.status().as_u16(), 200);
    assert!(ics.headers()["content-type"].to_str().unwrap().starts_with("text/calendar"));
    let events = parse_ics(&ics.text().await.unwrap());
    let carol: Vec<&Value> = events.iter().filter(|e| e["summary"].as_str().unwrap().contains("carol")).collect();
    assert_eq!(carol.len(), 1, "{events:#?}");
    assert_eq!(
        (carol[0]["start"].as_str(), carol[0]["end"].as_str()),
        (Some("2026-03-04T12:00:00Z"), Some("2026-03-04T18:00:00Z"))
    );
    assert!(events.len() > 300, "a year ahead of daily shifts: {}", events.len());
    // A person's feed holds only their shifts.
    let (_, pfeed) =
        post(&g.url("/api/v1/calendar-feeds"), &json!({ "person": "carol", "actor": "carol" }).to_string()).await;
    let text = common::client().get(g.url(pfeed["url"].as_str().unwrap())).send().await.unwrap().text().await.unwrap();
    let mine = parse_ics(&text);
    assert_eq!(mine.len(), 1, "{mine:#?}");
    // A wrong key, another feed's key and a revoked key are all the same 404.
    let wrong = get(&g.url("/api/v1/schedules/payments-primary/calendar.ics?key=00")).await.0;
    let key = pfeed["key"].as_str().unwrap();
    let other = get(&g.url(&format!("/api/v1/schedules/payments-primary/calendar.ics?key={key}"))).await.0;
    assert_eq!((wrong, other), (404, 404));
    let id = feed["id"].as_i64().unwrap();
    let resp = common::client().delete(g.url(&format!("/api/v1/calendar-feeds/{id}"))).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(common::client().get(g.url(&feed_url)).send().await.unwrap().status().as_u16(), 404, "revoked");
    let (_, feeds) = get(&g.url("/api/v1/calendar-feeds")).await;
    assert!(feeds["calendarFeeds"][0]["revokedAt"].is_string(), "{feeds}");
    assert!(!feeds.to_string().contains(key), "keys are never listed");
}

#[tokio::test(flavor = "multi_thread")]
async fn handoffs_are_told_once_across_a_restart_and_metrics_show_coverage() {
    let smtp = Smtp::start();
    let rules = tempfile::tempdir().unwrap();
    // Business hours only: nobody is on call at night.
    let restricted = RULES.replace(
        "rotation: {people: [alice, bob], shift: 1d, handoff: \"09:00\", start: 2026-03-02}",
        "rotation: {people: [alice, bob], shift: 1d, handoff: \"09:00\", start: 2026-03-02}\n        restrict: {mon-fri: \"09:00-17:00\"}",
    );
    std::fs::write(rules.path().join("oncall.yaml"), restricted).unwrap();
    let mut g = start(rules.path(), &smtp, at("2026-03-02T16:00:00Z"));
    let m = metrics(&g).await;
    assert!(m.contains("alertgate_oncall_covered{schedule=\"payments-primary\"} 1"), "{m}");
    assert!(m.contains("alertgate_oncall_schedules_uncovered 0"), "{m}");

    // 17:00 alice's day ends: she is told nobody is on call after her.
    g.advance_to(at("2026-03-02T17:00:00Z")).await;
    let told = mails(&smtp, 1, "the end of alice's day").await;
    assert_eq!(told[0].0, "alice@example.org", "{told:?}");
    let m = metrics(&g).await;
    assert!(m.contains("alertgate_oncall_schedules_uncovered 1"), "{m}");
    assert!(m.contains("alertgate_oncall_handoffs_total{schedule=\"payments-primary\"} 1"), "{m}");

    // Down overnight; back at 09:30 the next day: bob took over at 09:00 and is told once.
    g.kill9();
    g.respawn_at(at("2026-03-03T09:30:00Z"));
    let told = mails(&smtp, 2, "bob's morning").await;
    assert_eq!(told[1].0, "bob@example.org", "{told:?}");
    g.advance_to(at("2026-03-03T09:31:00Z")).await;
    g.restart();
    g.advance_to(at("2026-03-03T09:32:00Z")).await;
    // A restart tells no one again.
    wait_for(WAIT, "the outbox to settle", || async {
        let (_, n) = get(&g.url("/api/v1/notifications?state=pending")).await;
        n["notifications"].as_array().is_some_and(Vec::is_empty).then_some(())
    })
    .await;
    assert_eq!(smtp.messages().len(), 2, "{:?}", smtp.messages().iter().map(to).collect::<Vec<_>>());
    let m = metrics(&g).await;
    assert!(m.contains("alertgate_oncall_covered{schedule=\"payments-primary\"} 1"), "{m}");
    assert!(
        m.contains("alertgate_oncall_shift_end_timestamp_seconds{schedule=\"payments-primary\"} 1772557200"),
        "{m}"
    );
}

async fn metrics(g: &Gateway) -> String {
    common::client().get(g.url("/metrics")).send().await.unwrap().text().await.unwrap()
}
