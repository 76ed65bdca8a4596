//! The ingest endpoints and the reading API, through HTTP against the real binary.
mod common;

use common::{Gateway, Options, all_alerts, fixture, get, post};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

#[tokio::test]
async fn health_and_readiness() {
    let g = Gateway::start();
    let resp = common::client().get(g.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let (status, body) = get(&g.url("/readyz")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["database"], "ok");
    assert!(body["rules"]["files"].as_u64().unwrap() >= 1);
    let (status, body) = get(&g.url("/nope")).await;
    assert_eq!(status, 404);
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn alertmanager_webhook_is_stored_once_per_fingerprint() {
    let g = Gateway::start();
    let url = g.url("/api/v1/ingest/alertmanager");
    let firing = fixture("alertmanager_webhook_firing.json");
    let (status, body) = post(&url, &firing).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"]["created"], 2);
    // An HA pair sends the same group again: nothing new.
    let (status, body) = post(&url, &firing).await;
    assert_eq!(status, 200);
    assert_eq!(body["outcome"]["repeated"], 2);

    let alerts = all_alerts(&g, "").await;
    assert_eq!(alerts.len(), 2);
    for a in &alerts {
        assert_eq!(a["status"], "firing");
        assert_eq!(a["source"], "alertmanager");
        assert_eq!(a["occurrences"], 2);
        assert_eq!(a["labels"]["alertname"], "HighLatency");
        assert!(a["raw"]["fingerprint"].is_string(), "raw payload kept: {a}");
        let seen = |k: &str| a[k].as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
        assert!(seen("firstSeen") <= seen("lastSeen"), "{a}");
    }

    let (status, body) = post(&url, &fixture("alertmanager_webhook_resolved.json")).await;
    assert_eq!(status, 200);
    assert_eq!(body["outcome"]["resolved"], 2);
    let fp = "6b094fb1f4f1ca1e";
    let (status, a) = get(&g.url(&format!("/api/v1/alerts/{fp}"))).await;
    assert_eq!(status, 200);
    assert_eq!(a["status"], "resolved");
    assert!(a["endsAt"].is_string());
    assert_eq!(a["occurrences"], 3);
    // A late firing copy from the other HA peer does not reopen it.
    let (_, body) = post(&url, &firing).await;
    assert_eq!(body["outcome"]["stale"], 2);
    let (_, a) = get(&g.url(&format!("/api/v1/alerts/{fp}"))).await;
    assert_eq!(a["status"], "resolved");
}

#[tokio::test]
async fn concurrent_copies_from_an_ha_pair_make_one_alert() {
    let g = Gateway::start();
    let url = g.url("/api/v1/ingest/alertmanager");
    let firing = fixture("alertmanager_webhook_firing.json");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (url, body) = (url.clone(), firing.clone());
        tasks.push(tokio::spawn(async move { post(&url, &body).await.0 }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let alerts = all_alerts(&g, "").await;
    assert_eq!(alerts.len(), 2);
    assert!(alerts.iter().all(|a| a["occurrences"] == 16));
}

/// Alerts expire in rounds of a thousand (so senders are answered between
/// them), and a clock that passes the expiry of more than a round's worth
/// resolves them all: 2,500 here, and each ends at its own endsAt.
#[tokio::test]
async fn more_alerts_than_an_expiry_round_all_expire_at_their_ends() {
    let g = Gateway::start_with(Options { test_clock: Some(common::t0()), ..Default::default() });
    let url = g.url("/api/v2/alerts");
    let now = g.now();
    let end = |i: usize| now + SignedDuration::from_secs(60) + SignedDuration::from_millis(i as i64 % 7);
    for part in 0..5 {
        let alerts: Vec<Value> = (part * 500..(part + 1) * 500)
            .map(|i| json!({"labels": {"alertname": "Many", "n": i.to_string()}, "endsAt": end(i).to_string()}))
            .collect();
        let (status, body) = post(&url, &Value::Array(alerts).to_string()).await;
        assert_eq!(status, 200, "{body}");
    }
    let firing = |alerts: &[Value]| alerts.iter().filter(|a| a["status"] == "firing").count();
    assert_eq!(firing(&all_alerts(&g, "").await), 2_500);
    g.advance_to(now + SignedDuration::from_secs(60) + SignedDuration::from_millis(6)).await;
    let alerts = all_alerts(&g, "").await;
    assert_eq!(alerts.len(), 2_500);
    assert_eq!(firing(&alerts), 0, "every alert past its endsAt is resolved");
    for a in &alerts {
        let i: usize = a["labels"]["n"].as_str().unwrap().parse().unwrap();
        assert_eq!(a["endsAt"].as_str().unwrap().parse::<Timestamp>().unwrap(), end(i), "{a}");
    }
}

/// The grouping timers run after every alert due has expired, however
/// many rounds that takes: a group held pending (`min_duration`) whose
/// 1,500 alerts all ended before its timer fell due opens no incident,
/// though the clock passes both in one step.
#[tokio::test]
async fn a_pending_group_whose_alerts_ended_opens_nothing_after_a_long_expiry() {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("rules.yaml"),
        "incident_rules:\n  - name: held\n    matchers: []\n    group_by: [alertname]\n    min_alerts: 100000\n    min_duration: 30s\n    title: held\n",
    )
    .unwrap();
    let g = Gateway::start_with(Options {
        test_clock: Some(common::t0()),
        rules_dir: Some(rules.path().to_path_buf()),
        ..Default::default()
    });
    let now = g.now();
    let ends = (now + SignedDuration::from_secs(10)).to_string();
    for part in 0..3 {
        let alerts: Vec<Value> = (part * 500..(part + 1) * 500)
            .map(|i| json!({"labels": {"alertname": "Held", "n": i.to_string()}, "endsAt": ends}))
            .collect();
        let (status, body) = post(&g.url("/api/v2/alerts"), &Value::Array(alerts).to_string()).await;
        assert_eq!(status, 200, "{body}");
    }
    g.advance_to(now + SignedDuration::from_secs(31)).await;
    let alerts = all_alerts(&g, "").await;
    assert_eq!(alerts.iter().filter(|a| a["status"] == "resolved").count(), 1_500);
    let (status, incidents) = get(&g.url("/api/v1/incidents")).await;
    assert_eq!(status, 200, "{incidents}");
    assert_eq!(incidents["incidents"], json!([]), "no incident for alerts that had all ended");
}

/// A re-send moves an alert's expiry: later (Prometheus re-sends each
/// firing alert with a new endsAt) or earlier, and it expires at the last
/// one it was sent with. 2,500 alerts re-sent with a later endsAt are all
/// looked at again when the first one passes (three rounds of the sweep)
/// and stay firing; one sent again with an earlier endsAt ends then.
#[tokio::test]
async fn a_re_sent_alert_expires_at_the_last_endsat_it_was_sent_with() {
    let g = Gateway::start_with(Options { test_clock: Some(common::t0()), ..Default::default() });
    let url = g.url("/api/v2/alerts");
    let now = g.now();
    let at = |secs: i64| now + SignedDuration::from_secs(secs);
    let send = |ends: Timestamp, range: std::ops::Range<usize>| {
        let alerts: Vec<Value> = range
            .map(|i| json!({"labels": {"alertname": "Resent", "n": i.to_string()}, "endsAt": ends.to_string()}))
            .collect();
        let url = url.clone();
        async move {
            let (status, body) = post(&url, &Value::Array(alerts).to_string()).await;
            assert_eq!(status, 200, "{body}");
        }
    };
    for part in 0..5 {
        send(at(60), part * 500..(part + 1) * 500).await;
    }
    // t0+30s: every alert re-sent, its endsAt now t0+120s; alert 0 once
    // more, its endsAt back to t0+90s.
    g.advance_to(at(30)).await;
    for part in 0..5 {
        send(at(120), part * 500..(part + 1) * 500).await;
    }
    send(at(90), 0..1).await;
    let by_status = |alerts: &[Value], status: &str| alerts.iter().filter(|a| a["status"] == status).count();
    let end_of = |a: &Value| a["endsAt"].as_str().unwrap().parse::<Timestamp>().unwrap();

    // t0+60s: the first endsAt passed; nothing ends.
    g.advance_to(at(60)).await;
    assert_eq!(by_status(&all_alerts(&g, "").await, "firing"), 2_500);
    // t0+90s: alert 0 ends at the earlier endsAt it was sent last.
    g.advance_to(at(90) - SignedDuration::from_millis(1)).await;
    assert_eq!(by_status(&all_alerts(&g, "").await, "firing"), 2_500);
    g.advance_to(at(90)).await;
    let alerts = all_alerts(&g, "").await;
    assert_eq!(by_status(&alerts, "resolved"), 1);
    let first = alerts.iter().find(|a| a["labels"]["n"] == "0").unwrap();
    assert_eq!((first["status"].as_str(), end_of(first)), (Some("resolved"), at(90)), "{first}");
    // t0+120s: the rest end at theirs.
    g.advance_to(at(120) - SignedDuration::from_millis(1)).await;
    assert_eq!(by_status(&all_alerts(&g, "").await, "firing"), 2_499);
    g.advance_to(at(120)).await;
    let alerts = all_alerts(&g, "").await;
    assert_eq!(by_status(&alerts, "firing"), 0);
    assert!(alerts.iter().filter(|a| a["labels"]["n"] != "0").all(|a| end_of(a) == at(120)));
}

#[tokio::test]
async fn prometheus_push_and_expiry() {
    let g = Gateway::start_with(Options { test_clock: Some(common::t0()), ..Default::default() });
    let url = g.url("/api/v2/alerts");
    let (status, body) = post(&url, &fixture("prometheus_v2_alerts.json")).await;
    assert_eq!(status, 200, "{body}");
    let stored = all_alerts(&g, "&source=prometheus").await;
    assert!(!stored.is_empty());

    // t0: a firing alert whose endsAt (t0+90s) passes without a re-send
    // resolves by itself then; one without endsAt, `resolve_timeout` (5m)
    // after it was last received.
    let now = g.now();
    let ends = now + SignedDuration::from_secs(90);
    let body = json!([
        {"labels": {"alertname": "Short", "job": "x"}, "startsAt": now.to_string(), "endsAt": ends.to_string()},
        {"labels": {"alertname": "Quiet", "job": "x"}, "startsAt": now.to_string()},
    ]);
    let (status, _) = post(&url, &body.to_string()).await;
    assert_eq!(status, 200);
    let alert = |name: &'static str| {
        let g = &g;
        async move {
            let a = all_alerts(g, &format!("&filter=alertname%3D%22{name}%22")).await;
            assert_eq!(a.len(), 1, "{a:#?}");
            a[0].clone()
        }
    };
    assert_eq!(alert("Short").await["status"], "firing");
    assert_eq!(alert("Quiet").await["status"], "firing");
    let end_of = |a: &Value| a["endsAt"].as_str().unwrap().parse::<Timestamp>().unwrap();

    // t0+90s-1ms: still firing; t0+90s: resolved at its endsAt.
    g.advance_to(ends - SignedDuration::from_millis(1)).await;
    assert_eq!(alert("Short").await["status"], "firing");
    g.advance_to(ends).await;
    let a = alert("Short").await;
    assert_eq!(a["status"], "resolved", "{a}");
    assert_eq!(end_of(&a), ends);
    assert_eq!(alert("Quiet").await["status"], "firing");
    // t0+5m: the alert without endsAt resolves.
    let timeout = now + SignedDuration::from_mins(5);
    g.advance_to(timeout - SignedDuration::from_millis(1)).await;
    assert_eq!(alert("Quiet").await["status"], "firing");
    g.advance_to(timeout).await;
    let a = alert("Quiet").await;
    assert_eq!(a["status"], "resolved", "{a}");
    assert_eq!(end_of(&a), timeout);

    // The same alert from Alertmanager's webhook and from Prometheus folds into one.
    let labels = json!({"alertname": "Both", "job": "y"});
    post(&url, &json!([{"labels": labels}]).to_string()).await;
    let hook = json!({"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": labels, "startsAt": now.to_string()}]});
    post(&g.url("/api/v1/ingest/alertmanager"), &hook.to_string()).await;
    let both = all_alerts(&g, "&filter=alertname%3D%22Both%22").await;
    assert_eq!(both.len(), 1);
    assert_eq!(both[0]["occurrences"], 2);
}

#[tokio::test]
async fn grafana_webhook() {
    let g = Gateway::start();
    let (status, body) = post(&g.url("/api/v1/ingest/grafana"), &fixture("grafana_webhook.json")).await;
    assert_eq!(status, 200, "{body}");
    let alerts = all_alerts(&g, "&source=grafana").await;
    assert!(!alerts.is_empty());
    assert!(alerts.iter().all(|a| a["annotations"]["silence_url"].is_string()));
    assert!(alerts.iter().all(|a| a["annotations"]["value_string"].is_string()));
    assert!(alerts.iter().all(|a| a["raw"]["values"].is_object()));
}

#[tokio::test]
async fn pagerduty_events_answer_like_pagerduty() {
    let g = Gateway::start();
    let url = g.url("/v2/enqueue");
    let resp = common::client()
        .post(&url)
        .header("content-type", "application/json")
        .body(fixture("pagerduty_trigger.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "success");
    assert_eq!(body["message"], "Event processed");
    let key = body["dedup_key"].as_str().unwrap().to_string();
    let (_, a) = get(&g.url(&format!("/api/v1/alerts/{key}"))).await;
    assert_eq!(a["status"], "firing");
    assert_eq!(a["source"], "pagerduty");
    assert_eq!(a["raw"]["event_action"], "trigger", "raw event kept");
    assert!(a["raw"].get("routing_key").is_none(), "but not its credential");
    assert!(a["labels"].get("routing_key").is_none());

    let (status, _) = post(&url, &fixture("pagerduty_acknowledge.json")).await;
    assert_eq!(status, 202);
    let (_, a) = get(&g.url(&format!("/api/v1/alerts/{key}"))).await;
    assert!(a["acknowledgedAt"].is_string());
    let (status, _) = post(&url, &fixture("pagerduty_resolve.json")).await;
    assert_eq!(status, 202);
    let (_, a) = get(&g.url(&format!("/api/v1/alerts/{key}"))).await;
    assert_eq!(a["status"], "resolved");

    let (status, body) = post(&url, r#"{"routing_key":"k","event_action":"snooze","dedup_key":"x"}"#).await;
    assert_eq!(status, 400);
    assert_eq!(body["status"], "invalid event");
    assert!(body["errors"][0].as_str().unwrap().contains("snooze"));
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn generic_json_through_a_configured_mapping() {
    let config = r#"
generic:
  kuma:
    labels: {alertname: /monitor/name, instance: /monitor/url}
    annotations: {summary: /msg}
    status: {field: /heartbeat/status, firing: ["0"], resolved: ["1"]}
    fingerprint: /monitor/id
"#;
    let g = Gateway::start_with(Options { config: Some(config.into()), ..Default::default() });
    let url = g.url("/api/v1/ingest/generic/kuma");
    let down =
        json!({"monitor": {"id": 7, "name": "web", "url": "http://web"}, "msg": "down", "heartbeat": {"status": 0}});
    let (status, body) = post(&url, &down.to_string()).await;
    assert_eq!(status, 200, "{body}");
    let (_, a) = get(&g.url("/api/v1/alerts/7")).await;
    assert_eq!(a["source"], "generic:kuma");
    assert_eq!(a["labels"]["alertname"], "web");
    assert_eq!(a["annotations"]["summary"], "down");
    let up = json!({"monitor": {"id": 7, "name": "web"}, "heartbeat": {"status": 1}});
    post(&url, &up.to_string()).await;
    let (_, a) = get(&g.url("/api/v1/alerts/7")).await;
    assert_eq!(a["status"], "resolved");

    let (status, body) = post(&g.url("/api/v1/ingest/generic/other"), "{}").await;
    assert_eq!(status, 404);
    assert_eq!(body["detail"]["known"][0], "kuma");
    let weird = json!({"monitor": {"id": 8}, "heartbeat": {"status": 5}});
    let (status, body) = post(&url, &weird.to_string()).await;
    assert_eq!(status, 400);
    assert_eq!(body["detail"]["errors"][0]["path"], "/heartbeat/status");
}

#[tokio::test]
async fn bad_input_is_refused_clearly_and_stores_nothing() {
    let g = Gateway::start_with(Options { extra: vec!["--max-body".into(), "64KiB".into()], ..Default::default() });
    let am = g.url("/api/v1/ingest/alertmanager");
    let good = fixture("alertmanager_webhook_firing.json");
    assert_eq!(post(&am, &good).await.0, 200);
    let before = all_alerts(&g, "").await;

    // Malformed JSON.
    let (status, body) = post(&am, "{\"alerts\": [").await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("EOF"), "{body}");
    // Wrong type, with the path.
    let (status, body) =
        post(&am, r#"{"alerts":[{"status":"firing","labels":{"a":"1"}},{"status":"firing","labels":["x"]}]}"#).await;
    assert_eq!(status, 400);
    assert_eq!(body["detail"]["errors"][0]["path"], "alerts[1].labels");
    // One bad alert in a batch refuses the whole batch: the good one is not stored either.
    let (status, body) =
        post(&am, r#"{"alerts":[{"status":"firing","labels":{"new":"1"}},{"status":"maybe","labels":{"a":"1"}}]}"#)
            .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["detail"]["errors"][0]["path"], "alerts[1].status");
    // Missing required fields.
    let (status, body) = post(&g.url("/api/v2/alerts"), r#"[{"annotations":{}}]"#).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("missing field `labels`"));
    // Wrong content type.
    let resp = common::client().post(&am).header("content-type", "text/plain").body(good.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 415);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("application/json"));
    let resp = common::client().post(&am).body(good.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 415);
    // Over the body limit.
    let huge = format!(r#"{{"alerts":[],"pad":"{}"}}"#, "x".repeat(100 * 1024));
    let (status, body) = post(&am, &huge).await;
    assert_eq!(status, 413);
    assert!(body["error"].as_str().unwrap().contains("limit"));
    // Invalid UTF-8.
    let resp = common::client()
        .post(&am)
        .header("content-type", "application/json")
        .body(vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // Deeply nested JSON.
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(post(&g.url("/api/v2/alerts"), &nested).await.0, 400);

    // Nothing changed, and the gateway still serves.
    let after = all_alerts(&g, "").await;
    assert_eq!(before, after);
    assert_eq!(post(&am, &good).await.0, 200);
}

#[tokio::test]
async fn listing_filters_and_pages() {
    let g = Gateway::start();
    let alerts: Vec<Value> = (0..25)
        .map(|i| json!({"labels": {"alertname": "Paged", "n": i.to_string(), "severity": if i % 5 == 0 {"critical"} else {"warning"}}}))
        .collect();
    post(&g.url("/api/v2/alerts"), &Value::Array(alerts).to_string()).await;
    let resolved =
        json!([{"labels": {"alertname": "Old"}, "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2026-01-01T01:00:00Z"}]);
    post(&g.url("/api/v2/alerts"), &resolved.to_string()).await;

    let mut seen = Vec::new();
    let mut cursor = None::<String>;
    loop {
        let mut url = g.url("/api/v1/alerts?limit=10&filter=alertname%3D%22Paged%22");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let (_, page) = get(&url).await;
        let batch = page["alerts"].as_array().unwrap();
        assert!(batch.len() <= 10);
        seen.extend(batch.iter().map(|a| a["labels"]["n"].as_str().unwrap().to_string()));
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.into()),
            None => break,
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 25);

    assert_eq!(all_alerts(&g, "&filter=severity%3D%22critical%22").await.len(), 5);
    assert_eq!(all_alerts(&g, "&filter=%7Balertname%3D%22Paged%22%2Cseverity%21%3D%22critical%22%7D").await.len(), 20);
    assert_eq!(all_alerts(&g, "&state=resolved").await.len(), 1);
    assert_eq!(all_alerts(&g, "&state=firing").await.len(), 25);
    let (status, body) = get(&g.url("/api/v1/alerts?filter=severity%3D~%22%28%22")).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("regex"));
    let (status, _) = get(&g.url("/api/v1/alerts/unknownfp")).await;
    assert_eq!(status, 404);
}
