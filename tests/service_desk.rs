//! The service desk, as timelines: an incident a person reports runs the
//! same SLA clocks and escalation as an alert-born one; alerts are linked
//! to it by hand; two incidents that are one are merged.
mod common;

use common::{BIN, Gateway, Options, get, post, run_to_exit, t0, wait_for};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use std::time::Duration;

const RULES: &str = r#"
sla_policies:
  - name: desk
    warn_at: [50]
    targets:
      P1: {respond: 15m, resolve: 4h}
      P3: {respond: 1h}
escalation_policies:
  - name: payments
    steps:
      - {after: 0s, notify: [oncall]}
      - {after: 10m, notify: [lead]}
incident_rules:
  - name: payments
    matchers: ['service="payments"']
    group_by: [alertname]
    impact: high
    urgency: high
    sla_policy: desk
    escalation: payments
    notify: [chatops]
  - name: other
    matchers: []
    group_by: [alertname]
    sla_policy: desk
"#;

fn start() -> (Gateway, tempfile::TempDir) {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("rules.yaml"), RULES).unwrap();
    let mut config = String::from("resolve_timeout: 1d\nnotifiers:\n");
    for n in ["oncall", "lead", "chatops"] {
        config.push_str(&format!("  - {{name: {n}, type: webhook, url: \"http://127.0.0.1:9/{n}\"}}\n"));
    }
    let g = Gateway::start_with(Options {
        config: Some(config),
        rules_dir: Some(rules.path().to_path_buf()),
        test_clock: Some(t0()),
        ..Default::default()
    });
    (g, rules)
}

fn ts(v: &Value) -> Timestamp {
    v.as_str().unwrap_or_else(|| panic!("not a time: {v}")).parse().unwrap()
}

fn mins(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

fn kinds(inc: &Value, kind: &str) -> Vec<Value> {
    inc["timeline"].as_array().unwrap().iter().filter(|e| e["kind"] == kind).cloned().collect()
}

async fn report(g: &Gateway, body: Value) -> (u16, Value) {
    post(&g.url("/api/v1/incidents"), &body.to_string()).await
}

async fn incident(g: &Gateway, id: i64) -> Value {
    let (status, inc) = get(&g.url(&format!("/api/v1/incidents/{id}"))).await;
    assert_eq!(status, 200, "{inc}");
    inc
}

async fn alert_incident(g: &Gateway, alertname: &str, service: &str) -> Value {
    let alert = json!([{"labels": {"alertname": alertname, "service": service}}]);
    let (status, body) = post(&g.url("/api/v2/alerts"), &alert.to_string()).await;
    assert_eq!(status, 200, "{body}");
    let id = wait_for(Duration::from_secs(15), "the alert's incident", || async {
        let (_, list) = get(&g.url("/api/v1/incidents?state=all")).await;
        list["incidents"].as_array()?.iter().find(|i| i["title"] == alertname).map(|i| i["id"].as_i64().unwrap())
    })
    .await;
    incident(g, id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reported_p1_runs_its_clocks_and_escalates_like_an_alert_born_one() {
    let (g, _rules) = start();

    // t0: a customer cannot pay; the service desk reports it.
    let (status, inc) = report(
        &g,
        json!({
            "title": "Customers cannot pay by card",
            "description": "Three calls in ten minutes: the card form spins.",
            "service": "payments", "impact": "high", "urgency": "high",
            "reporter": "desk:jane", "actor": "jane",
        }),
    )
    .await;
    assert_eq!(status, 201, "{inc}");
    let id = inc["id"].as_i64().unwrap();
    assert_eq!(inc["source"], "reported");
    assert_eq!(inc["reporter"], "desk:jane");
    assert_eq!(inc["priority"], "P1", "impact high x urgency high");
    assert_eq!(inc["rule"], "payments", "matched by its service");
    assert_eq!(inc["alertCount"], 0);
    assert_eq!(ts(&inc["createdAt"]), t0());
    let created = kinds(&inc, "created");
    assert_eq!(created[0]["message"], "reported by desk:jane with priority P1");
    assert_eq!(created[0]["actor"], "jane");
    assert_eq!(inc["sla"]["policy"], "desk");
    assert_eq!(ts(&inc["sla"]["respond"]["breachAt"]), t0() + mins(15));
    let escalated = kinds(&inc, "escalated");
    assert_eq!(escalated.len(), 1, "step 1 at once: {inc:#}");
    assert_eq!(escalated[0]["data"]["notify"], json!(["oncall"]));

    // The rule's notifier is told, as for an alert-born incident.
    let (_, queued) = get(&g.url(&format!("/api/v1/notifications?incident={id}"))).await;
    let events: Vec<(&str, &str)> = queued["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["notifier"].as_str().unwrap(), n["event"].as_str().unwrap()))
        .collect();
    assert!(events.contains(&("chatops", "incident.triggered")), "{events:?}");
    assert!(events.contains(&("oncall", "incident.escalated")), "{events:?}");

    // t0+10m: step 2; t0+15m: nobody acknowledged, the respond clock breaches.
    g.advance(mins(10)).await;
    let inc = incident(&g, id).await;
    assert_eq!(kinds(&inc, "escalated").len(), 2, "{inc:#}");
    g.advance(mins(5)).await;
    let inc = incident(&g, id).await;
    assert_eq!(inc["sla"]["respond"]["state"], "breached", "{inc:#}");
    assert_eq!(ts(&inc["sla"]["respond"]["breached_at"]), t0() + mins(15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_is_checked_and_a_bad_one_stores_nothing() {
    let (g, _rules) = start();
    for (body, names) in [
        (json!({"title": "   "}), "title"),
        (json!({"title": "x", "impact": "huge"}), "impact"),
        (json!({"title": "x", "labels": {"": "v"}}), "labels"),
        (json!({"title": "x", "severity": "high"}), "severity"),
    ] {
        let (status, err) = report(&g, body.clone()).await;
        assert_eq!(status, 400, "{body} -> {err}");
        assert!(err.to_string().contains(names), "{body} -> {err}");
    }
    let (_, list) = get(&g.url("/api/v1/incidents?state=all")).await;
    assert_eq!(list["incidents"].as_array().unwrap().len(), 0, "{list}");

    // A report no rule's matchers take is filed under `reported`, with defaults.
    let (status, inc) =
        report(&g, json!({"title": "Printer on fire", "labels": {"team": "facilities"}, "actor": "desk"})).await;
    assert_eq!(status, 201, "{inc}");
    assert_eq!(inc["rule"], "other", "the catch-all rule takes it");
    assert_eq!(inc["priority"], "P3", "medium x medium");
    assert_eq!(inc["labels"]["source"], "reported");
    assert_eq!(inc["labels"]["team"], "facilities");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_linked_by_hand_and_merges_move_alerts_timeline_and_clocks() {
    let (g, _rules) = start();

    // t0: a colleague reports slow checkouts.
    let (status, reported) =
        report(
            &g,
            json!({"title": "Checkout is slow", "service": "payments", "impact": "high", "urgency": "high", "actor": "jane"}),
        )
        .await;
    assert_eq!(status, 201, "{reported}");
    let reported_id = reported["id"].as_i64().unwrap();

    // t0+5m: the alert fires and opens its own incident.
    g.advance(mins(5)).await;
    let born = alert_incident(&g, "CheckoutLatency", "payments").await;
    let born_id = born["id"].as_i64().unwrap();
    assert_ne!(born_id, reported_id);
    let fingerprint = born["alerts"][0]["fingerprint"].as_str().unwrap().to_owned();

    // Link the alert to the report by hand: it joins, the timeline says who.
    let url = g.url(&format!("/api/v1/incidents/{reported_id}/alerts"));
    let (status, linked) = post(&url, &json!({"fingerprints": [fingerprint], "actor": "bob"}).to_string()).await;
    assert_eq!(status, 200, "{linked}");
    assert_eq!(linked["alertCount"], 1);
    assert_eq!(linked["firingCount"], 1);
    let entry = &kinds(&linked, "alert_linked")[0];
    assert_eq!(entry["actor"], "bob");
    let (status, err) = post(&url, &json!({"fingerprints": ["0000000000000bad"], "actor": "bob"}).to_string()).await;
    assert_eq!(status, 400, "an unknown fingerprint: {err}");

    // t0+6m: merge the alert's incident into the report.
    g.advance(mins(1)).await;
    let merge = g.url(&format!("/api/v1/incidents/{born_id}/merge"));
    let body = json!({"into": reported_id, "comment": "same outage", "actor": "bob"});
    let (status, into) = post(&merge, &body.to_string()).await;
    assert_eq!(status, 200, "{into}");
    assert_eq!(into["id"], reported_id);
    assert_eq!(into["alertCount"], 1, "the shared alert is in it once");
    let merged = &kinds(&into, "merged")[0];
    assert_eq!(merged["message"], format!("incident {born_id} merged into this one: same outage"));
    // The merged incident's timeline came along, naming where from.
    let moved: Vec<&Value> =
        into["timeline"].as_array().unwrap().iter().filter(|e| e["data"]["mergedFrom"] == born_id).collect();
    assert!(moved.iter().any(|e| e["kind"] == "created"), "{into:#}");
    assert!(moved.iter().all(|e| e["message"].as_str().unwrap().starts_with(&format!("[incident {born_id}]"))));
    // The report came first: its clocks stand, counting from t0.
    assert_eq!(ts(&into["sla"]["respond"]["breachAt"]), t0() + mins(15), "{into:#}");

    let gone = incident(&g, born_id).await;
    assert_eq!(gone["state"], "closed");
    assert_eq!(gone["mergedInto"], reported_id);
    assert_eq!(gone["alertCount"], 0);
    assert!(gone.get("sla").is_none(), "its clocks went: {gone:#}");
    assert_eq!(kinds(&gone, "merged_into").len(), 1);

    // A new alert of the merged incident's group goes where it went.
    let another = json!([{"labels": {"alertname": "CheckoutLatency", "service": "payments", "instance": "b"}}]);
    assert_eq!(post(&g.url("/api/v2/alerts"), &another.to_string()).await.0, 200);
    let into = incident(&g, reported_id).await;
    assert_eq!(into["alertCount"], 2, "{into:#}");
    let (_, open) = get(&g.url("/api/v1/incidents?state=open")).await;
    assert_eq!(open["incidents"].as_array().unwrap().len(), 1, "no third incident: {open}");

    // Merging again, or into itself, or into a closed incident, is refused.
    let (status, _) = post(&merge, &json!({"into": reported_id, "actor": "bob"}).to_string()).await;
    assert_eq!(status, 409);
    let self_merge = g.url(&format!("/api/v1/incidents/{reported_id}/merge"));
    let (status, _) = post(&self_merge, &json!({"into": reported_id, "actor": "bob"}).to_string()).await;
    assert_eq!(status, 409);
    let (status, _) = post(&self_merge, &json!({"into": born_id, "actor": "bob"}).to_string()).await;
    assert_eq!(status, 409, "into a closed incident");

    // t0+15m: nobody acknowledged: the promise made at t0 breaches once.
    g.advance_to(t0() + mins(15)).await;
    let into = incident(&g, reported_id).await;
    assert_eq!(into["sla"]["respond"]["state"], "breached", "{into:#}");
    assert_eq!(kinds(&into, "sla_breached").len(), 1, "{into:#}");
}

/// `alertgate incidents open|link|merge` against the gateway, as `alice`;
/// (exit success, stdout, stderr).
async fn cli(g: &Gateway, args: &[&str]) -> (bool, String, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let url = format!("http://{}", g.addr);
    tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(BIN);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ALERTGATE_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("ALERTGATE_URL", url).env("ALERTGATE_ACTOR", "alice").args(&args);
        let (status, stdout, stderr) = run_to_exit(&mut cmd, Duration::from_secs(60));
        (status.success(), stdout, stderr)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_reports_links_and_merges() {
    let (g, _rules) = start();
    let (ok, out, err) = cli(
        &g,
        &[
            "incidents",
            "open",
            "--title",
            "VPN drops every hour",
            "--service",
            "network",
            "--impact",
            "low",
            "--urgency",
            "high",
            "--label",
            "site=berlin",
            "-d",
            "since the update",
        ],
    )
    .await;
    assert!(ok, "{out}{err}");
    let (_, list) = get(&g.url("/api/v1/incidents?state=all")).await;
    let inc = &list["incidents"][0];
    assert_eq!(inc["title"], "VPN drops every hour", "{list}");
    assert_eq!(inc["source"], "reported");
    assert_eq!(inc["reporter"], "alice", "the actor reported it");
    assert_eq!(inc["description"], "since the update");
    assert_eq!(inc["labels"]["site"], "berlin");
    let reported = inc["id"].as_i64().unwrap();

    let born = alert_incident(&g, "VpnTunnelDown", "network").await;
    let (born_id, fp) = (born["id"].as_i64().unwrap(), born["alerts"][0]["fingerprint"].as_str().unwrap().to_owned());
    let (ok, out, err) = cli(&g, &["incidents", "link", &reported.to_string(), &fp]).await;
    assert!(ok, "{out}{err}");
    assert_eq!(incident(&g, reported).await["alertCount"], 1);
    let (ok, out, err) = cli(&g, &["incidents", "merge", &born_id.to_string(), "--into", &reported.to_string()]).await;
    assert!(ok, "{out}{err}");
    assert_eq!(incident(&g, born_id).await["mergedInto"], reported);
    let (ok, _, err) = cli(&g, &["incidents", "open", "--title", "x", "--impact", "huge"]).await;
    assert!(!ok, "a bad impact is refused");
    assert!(err.contains("impact"), "{err}");
}

async fn patch(url: &str, body: &Value) -> (u16, Value) {
    let resp = common::client().patch(url).json(body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolved_incident_gets_a_review_drafted_from_its_timeline_and_published() {
    let (g, _rules) = start();
    let inc = alert_incident(&g, "CardDeclines", "payments").await;
    let id = inc["id"].as_i64().unwrap();
    let review = g.url(&format!("/api/v1/incidents/{id}/review"));

    // An open incident has no review yet.
    let (status, err) = post(&review, &json!({"actor": "alice"}).to_string()).await;
    assert_eq!(status, 409, "{err}");
    assert!(err["error"].as_str().unwrap().contains("resolved"), "{err}");

    // t0+3m acknowledged, t0+4m a note, t0+9m resolved.
    g.advance(mins(3)).await;
    let act = |what: &str| g.url(&format!("/api/v1/incidents/{id}/{what}"));
    assert_eq!(post(&act("acknowledge"), &json!({"actor": "alice"}).to_string()).await.0, 200);
    g.advance(mins(1)).await;
    let note = json!({"actor": "alice", "text": "rolled back card-api 2.14"});
    assert_eq!(post(&act("notes"), &note.to_string()).await.0, 201);
    g.advance(mins(5)).await;
    assert_eq!(post(&act("resolve"), &json!({"actor": "alice"}).to_string()).await.0, 200);

    // The draft's timeline is the incident's, in order.
    let (status, draft) = post(&review, &json!({"actor": "alice"}).to_string()).await;
    assert_eq!(status, 201, "{draft}");
    assert_eq!(draft["state"], "draft");
    let drafted: Vec<&str> =
        draft["timeline"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    let at = |k: &str| drafted.iter().position(|x| *x == k).unwrap_or_else(|| panic!("{k} in {drafted:?}"));
    assert!(at("created") < at("acknowledged") && at("acknowledged") < at("note") && at("note") < at("resolved"));
    let times: Vec<Timestamp> = draft["timeline"].as_array().unwrap().iter().map(|e| ts(&e["at"])).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(draft["timeline"].to_string().contains("rolled back card-api 2.14"));
    assert_eq!(post(&review, &json!({"actor": "alice"}).to_string()).await.0, 409, "one review per incident");

    // Written, sent to review, published; a published review changes no more.
    let (status, r) = patch(
        &review,
        &json!({"actor": "alice", "summary": "A bad card-api deploy declined cards for 9 minutes",
                "rootCause": "a config default flipped", "state": "in_review",
                "lessons": {"wentWell": ["paged within a minute"], "gotLucky": ["low traffic"]}}),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["state"], "in_review");
    let (status, r) = patch(&review, &json!({"actor": "bob", "state": "published"})).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(ts(&r["publishedAt"]), t0() + mins(9));
    let (status, _) = patch(&review, &json!({"actor": "bob", "summary": "rewritten"})).await;
    assert_eq!(status, 409);
    let inc = incident(&g, id).await;
    let moves: Vec<String> = kinds(&inc, "review").iter().map(|e| e["message"].as_str().unwrap().to_owned()).collect();
    assert_eq!(
        moves,
        [
            "post-incident review started",
            "post-incident review draft → in_review",
            "post-incident review in_review → published"
        ]
    );

    // Exported as Markdown, over HTTP and from the command line.
    let md = common::client().get(format!("{review}.md")).send().await.unwrap();
    assert_eq!(md.headers()["content-type"], "text/markdown; charset=utf-8");
    let md = md.text().await.unwrap();
    assert!(md.starts_with("# Post-incident review: CardDeclines"), "{md}");
    assert!(md.contains("## Root cause\n\na config default flipped"), "{md}");
    assert!(md.contains("- paged within a minute"), "{md}");
    let (ok, out, err) = cli(&g, &["reviews", "export", &id.to_string()]).await;
    assert!(ok, "{err}");
    assert_eq!(out, md);
}

/// A `/metrics` sample's value, 0 when the series is absent.
async fn metric(g: &Gateway, series: &str) -> f64 {
    let text = common::client().get(g.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_whose_review_is_required_closes_only_once_it_is_published() {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("rules.yaml"),
        r#"
reviews: {required_for: [P1], due_within: 2d}
incident_rules:
  - {name: pay, matchers: ['service="payments"'], group_by: [alertname], impact: high, urgency: high, service: '{{ labels.service }}'}
  - {name: db, matchers: ['service="db"'], group_by: [alertname], impact: low, urgency: low, review: required, service: '{{ labels.service }}'}
  - {name: rest, matchers: [], group_by: [alertname], impact: low, urgency: low, service: '{{ labels.service }}'}
"#,
    )
    .unwrap();
    let g = Gateway::start_with(Options {
        config: Some("resolve_timeout: 1d\n".into()),
        rules_dir: Some(rules.path().to_path_buf()),
        test_clock: Some(t0()),
        ..Default::default()
    });
    // t0: a P1 (required by priority), a P5 of `db` (required by its rule), a P5 of `rest` (not).
    let p1 = alert_incident(&g, "Checkout", "payments").await["id"].as_i64().unwrap();
    let db = alert_incident(&g, "Replication", "db").await["id"].as_i64().unwrap();
    let rest = alert_incident(&g, "Disk", "web").await["id"].as_i64().unwrap();
    let act = |id: i64, what: &str| g.url(&format!("/api/v1/incidents/{id}/{what}"));
    let alice = json!({"actor": "alice"}).to_string();
    for id in [p1, db, rest] {
        assert_eq!(post(&act(id, "resolve"), &alice).await.0, 200);
    }
    // Closing waits for the review where one is required.
    for id in [p1, db] {
        let (status, err) = post(&act(id, "close"), &alice).await;
        assert_eq!(status, 409, "{err}");
        assert!(err["error"].as_str().unwrap().contains("post-incident review"), "{err}");
    }
    assert_eq!(post(&act(rest, "close"), &alice).await.0, 200, "no review required");

    // t0+2d: both required reviews are overdue.
    assert_eq!(metric(&g, "alertgate_reviews_overdue{service=\"payments\"}").await, 0.0);
    g.advance(SignedDuration::from_hours(48)).await;
    assert_eq!(metric(&g, "alertgate_reviews_overdue{service=\"payments\"}").await, 1.0);
    assert_eq!(metric(&g, "alertgate_reviews_overdue{service=\"db\"}").await, 1.0);

    // The P1's review is written and published: it closes, and is not overdue any more.
    assert_eq!(post(&act(p1, "review"), &alice).await.0, 201);
    let review = act(p1, "review");
    let (status, _) = patch(&review, &json!({"actor": "alice", "summary": "card-api", "state": "in_review"})).await;
    assert_eq!(status, 200);
    assert_eq!(post(&act(p1, "close"), &alice).await.0, 409, "in review is not published");
    assert_eq!(patch(&review, &json!({"actor": "bob", "state": "published"})).await.0, 200);
    assert_eq!(post(&act(p1, "close"), &alice).await.0, 200);
    assert_eq!(metric(&g, "alertgate_reviews_overdue{service=\"payments\"}").await, 0.0);
    assert_eq!(metric(&g, "alertgate_reviews_overdue{service=\"db\"}").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recurring_alert_shows_what_fixed_it_last_time_and_an_unrelated_one_nothing() {
    let (g, _rules) = start();
    let alice = json!({"actor": "alice"}).to_string();
    // t0: DiskFull on db1; a note says what fixed it; resolved.
    let first = alert_incident(&g, "DiskFull", "db").await["id"].as_i64().unwrap();
    let act = |id: i64, what: &str| g.url(&format!("/api/v1/incidents/{id}/{what}"));
    let note = json!({"actor": "alice", "text": "rotated the WAL archive; see runbook db-17"});
    assert_eq!(post(&act(first, "notes"), &note.to_string()).await.0, 201);
    assert_eq!(post(&act(first, "resolve"), &alice).await.0, 200);
    let resolved = json!([{"labels": {"alertname": "DiskFull", "service": "db"}, "endsAt": g.now().to_string()}]);
    assert_eq!(post(&g.url("/api/v2/alerts"), &resolved.to_string()).await.0, 200);

    // A day later it fires again: a new incident, which lists the first.
    g.advance(SignedDuration::from_hours(24)).await;
    let alert = json!([{"labels": {"alertname": "DiskFull", "service": "db"}, "startsAt": g.now().to_string()}]);
    assert_eq!(post(&g.url("/api/v2/alerts"), &alert.to_string()).await.0, 200);
    let second = wait_for(Duration::from_secs(15), "the second incident", || async {
        let (_, list) = get(&g.url("/api/v1/incidents?state=open")).await;
        list["incidents"].as_array()?.iter().find(|i| i["title"] == "DiskFull").map(|i| i["id"].as_i64().unwrap())
    })
    .await;
    assert_ne!(second, first);
    let inc = incident(&g, second).await;
    let similar = inc["similarIncidents"].as_array().unwrap();
    assert_eq!(similar.len(), 1, "{inc:#}");
    assert_eq!(similar[0]["id"], first);
    assert_eq!(similar[0]["likeness"], "same_group");
    assert_eq!(similar[0]["resolvingNote"], "rotated the WAL archive; see runbook db-17");

    // Something else entirely lists nothing.
    let other = alert_incident(&g, "CertExpiring", "edge").await;
    assert_eq!(other["similarIncidents"], json!([]), "{other:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_item_is_tracked_to_done_and_its_overdue_notice_goes_out_once() {
    let (g, _rules) = start();
    let inc = alert_incident(&g, "Replication", "payments").await;
    let id = inc["id"].as_i64().unwrap();
    let items = g.url("/api/v1/action-items");

    // Bad input names the field; nothing is stored.
    for (body, field) in [
        (json!({"title": "x", "owner": "bob", "due": "soon", "incident": id, "actor": "alice"}), "due"),
        (json!({"title": "x", "owner": "bob", "due": "2026-12-01", "actor": "alice"}), "incident, problem"),
        (json!({"title": " ", "owner": "bob", "due": "2026-12-01", "incident": id, "actor": "alice"}), "title"),
    ] {
        let (status, err) = post(&items, &body.to_string()).await;
        assert_eq!(status, 400, "{body}: {err}");
        assert!(err["error"].as_str().unwrap().starts_with(field), "{err}");
    }
    let due = (t0() + mins(60)).to_string();
    let body = json!({"title": "Alert on replica lag", "owner": "bob", "due": due, "incident": id, "actor": "alice"});
    let (status, item) = post(&items, &body.to_string()).await;
    assert_eq!(status, 201, "{item}");
    let item_id = item["id"].as_i64().unwrap();
    assert_eq!(item["state"], "open");
    assert_eq!(item["service"], json!(null), "the rules here set no service template");

    let overdue_notices = || async {
        let (_, n) = get(&g.url(&format!("/api/v1/notifications?incident={id}"))).await;
        n["notifications"].as_array().unwrap().iter().filter(|n| n["event"] == "action_item.overdue").count()
    };
    let (_, listed) = get(&g.url("/api/v1/action-items?owner=bob&overdue=true")).await;
    assert_eq!(listed["actionItems"], json!([]), "not due yet");

    // t0+60m: due; overdue, and the rule's notifier is told, once.
    g.advance(mins(60)).await;
    let (_, listed) = get(&g.url("/api/v1/action-items?owner=bob&overdue=true")).await;
    assert_eq!(listed["actionItems"][0]["id"], item_id, "{listed}");
    assert_eq!(overdue_notices().await, 1);
    g.advance(mins(60)).await;
    assert_eq!(overdue_notices().await, 1, "once, however long it stays overdue");
    let inc = incident(&g, id).await;
    assert_eq!(kinds(&inc, "action_item_overdue").len(), 1);
    assert_eq!(
        common::client()
            .get(g.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .lines()
            .find(|l| l.starts_with("alertgate_action_items{service=\"\",state=\"overdue\"}"))
            .map(|l| l.ends_with(" 1")),
        Some(true)
    );

    // Done: no longer open or overdue.
    let (status, done) =
        patch(&g.url(&format!("/api/v1/action-items/{item_id}")), &json!({"state": "done", "actor": "bob"})).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["state"], "done");
    assert_eq!(ts(&done["settledAt"]), t0() + mins(120));
    let (_, open) = get(&g.url("/api/v1/action-items?state=open")).await;
    assert_eq!(open["actionItems"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sla_report_counts_reports_reviews_on_time_and_action_items() {
    let (g, _rules) = start();
    let alice = json!({"actor": "alice"}).to_string();
    // t0: one reported and one alert-born incident of payments.
    let (status, reported) = report(
        &g,
        json!({"title": "Refunds fail", "service": "payments", "impact": "low", "urgency": "low", "actor": "jane"}),
    )
    .await;
    assert_eq!(status, 201, "{reported}");
    let born = alert_incident(&g, "RefundErrors", "payments").await["id"].as_i64().unwrap();
    let act = |id: i64, what: &str| g.url(&format!("/api/v1/incidents/{id}/{what}"));
    assert_eq!(post(&act(born, "resolve"), &alice).await.0, 200);
    // Its review is published a day later (on time: within 5 days).
    g.advance(SignedDuration::from_hours(24)).await;
    assert_eq!(post(&act(born, "review"), &alice).await.0, 201);
    let review = act(born, "review");
    assert_eq!(patch(&review, &json!({"actor": "alice", "summary": "s", "state": "in_review"})).await.0, 200);
    assert_eq!(patch(&review, &json!({"actor": "bob", "state": "published"})).await.0, 200);
    // Two action items: one done, one past its due date.
    let items = g.url("/api/v1/action-items");
    let item = |title: &str, due: Timestamp| {
        json!({"title": title, "owner": "bob", "due": due.to_string(), "incident": born, "actor": "alice"}).to_string()
    };
    let (_, done) = post(&items, &item("retry refunds", g.now() + mins(60))).await;
    let done_id = done["id"].as_i64().unwrap();
    assert_eq!(post(&items, &item("alert on refund errors", g.now() + mins(30))).await.0, 201);
    let (status, _) =
        patch(&g.url(&format!("/api/v1/action-items/{done_id}")), &json!({"state": "done", "actor": "bob"})).await;
    assert_eq!(status, 200);
    g.advance(mins(45)).await;

    let to = g.now().to_string();
    let from = (t0() - mins(60)).to_string();
    let (status, rep) = get(&g.url(&format!("/api/v1/reports/sla?from={from}&to={to}&group_by=service"))).await;
    assert_eq!(status, 200, "{rep}");
    let total = &rep["total"];
    assert_eq!(total["incidents"], 2, "{rep:#}");
    assert_eq!(total["reported"], 1);
    assert_eq!(total["alertBorn"], 1);
    assert_eq!(total["reviewsPublished"], 1);
    assert_eq!(total["reviewsOnTime"], 1);
    assert_eq!(total["actionItemsDone"], 1);
    assert_eq!(total["actionItemsOverdue"], 1);
    assert_eq!(reported["source"], "reported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_opens_or_links_the_problem_behind_its_incident() {
    let (g, _rules) = start();
    let alice = json!({"actor": "alice"}).to_string();
    let act = |id: i64, what: &str| g.url(&format!("/api/v1/incidents/{id}/{what}"));
    let mut reviewed = Vec::new();
    for name in ["QueueBacklog", "QueueStall"] {
        let id = alert_incident(&g, name, "jobs").await["id"].as_i64().unwrap();
        assert_eq!(post(&act(id, "resolve"), &alice).await.0, 200);
        assert_eq!(post(&act(id, "review"), &alice).await.0, 201);
        let text = json!({"actor": "alice", "summary": format!("{name}: workers starved"), "rootCause": "one pool for two queues"});
        assert_eq!(patch(&act(id, "review"), &text).await.0, 200);
        reviewed.push(id);
    }
    // The first review opens the problem: its summary and root cause flow there.
    let url = act(reviewed[0], "review/problem");
    let (status, p) = post(&url, &json!({"actor": "alice"}).to_string()).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["title"], "QueueBacklog: workers starved");
    assert_eq!(p["rootCause"], "one pool for two queues");
    let pid = p["id"].as_i64().unwrap();
    // The second links to it, adding the workaround.
    let body = json!({"actor": "bob", "problem": pid, "workaround": "scale the pool to 16"});
    let (status, p) = post(&act(reviewed[1], "review/problem"), &body.to_string()).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["workaround"], "scale the pool to 16");
    assert_eq!(p["title"], "QueueBacklog: workers starved", "the problem keeps its title");
    let mut linked: Vec<i64> = p["incidents"].as_array().unwrap().iter().map(|i| i["id"].as_i64().unwrap()).collect();
    linked.sort();
    assert_eq!(linked, reviewed);
    // An incident without a review has nothing to give.
    let other = alert_incident(&g, "Unreviewed", "jobs").await["id"].as_i64().unwrap();
    assert_eq!(post(&act(other, "review/problem"), &alice).await.0, 404);
}
