//! Notifications end to end, against real receivers: a real SMTP server
//! (aiosmtpd, writing a maildir) and a webhook receiver inside the test that
//! records every request and answers with a programmable sequence of
//! statuses, or hangs. Covers threading of incident mail, webhook signing,
//! subscriptions, retries with backoff, dead letters and manual retry,
//! rate-limit digests, isolation of a hung receiver, durability across a
//! `kill -9`, `alertgate notify test` and `alertgate check`.
//!
//! Every test runs its own gateway on its own config and rules directory.
mod common;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::smtp::Smtp;
use common::{BIN, Gateway, Options, get, post, run_to_exit, t0, wait_for};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

/// Bound for every wait on something the gateway does by itself.
const WAIT: Duration = Duration::from_secs(15);

// ---- the gateway ------------------------------------------------------------

/// A gateway on a config file and rules directory of its own (in `dir`, so
/// paths in the config resolve against it and survive a restart).
struct Env {
    g: Gateway,
    _dir: tempfile::TempDir,
}

impl Env {
    fn start(config: &str, rules: &str) -> Env {
        Env::start_with_files(config, rules, &[])
    }

    /// With extra files (secrets, templates) next to the config file.
    fn start_with_files(config: &str, rules: &str, files: &[(&str, &str)]) -> Env {
        Env::start_at(config, rules, files, None)
    }

    /// On a controlled clock standing at [`t0`]: retries fall due only as
    /// the test moves time.
    fn on_clock(config: &str, rules: &str) -> Env {
        Env::start_at(config, rules, &[], Some(t0()))
    }

    fn start_at(config: &str, rules: &str, files: &[(&str, &str)], test_clock: Option<Timestamp>) -> Env {
        let dir = write_setup(config, rules, files);
        let g = Gateway::start_with(Options {
            rules_dir: Some(dir.path().join("rules")),
            extra: vec!["--config".into(), dir.path().join("alertgate.yml").display().to_string()],
            test_clock,
            ..Default::default()
        });
        Env { g, _dir: dir }
    }
}

/// `alertgate.yml`, `rules/rules.yaml` and `files` in a new tempdir.
fn write_setup(config: &str, rules: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("alertgate.yml"), config).unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/rules.yaml"), rules).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

/// One incident rule: an incident per alertname, P1 (impact and urgency
/// high), notifying `notify`.
fn rules(notify: &[&str]) -> String {
    format!(
        r#"incident_rules:
  - name: all
    matchers: []
    group_by: [alertname]
    title: "{{{{ labels.alertname }}}} on {{{{ labels.instance }}}}"
    impact: high
    urgency: high
    notify: [{}]
"#,
        notify.join(", ")
    )
}

/// Fast retries for tests: 1 s doubling to 2 s.
const OUTBOX: &str = "outbox: {initial_backoff: 1s, max_backoff: 2s, max_age: 1h}\n";

/// A webhook notifier to `url`, with extra YAML flow-mapping fields.
fn webhook(name: &str, url: &str, extra: &str) -> String {
    let extra = if extra.is_empty() { String::new() } else { format!(", {extra}") };
    format!("  - {{name: {name}, type: webhook, url: \"{url}\"{extra}}}\n")
}

/// A firing alert with an instance label and two annotations.
fn alert(name: &str) -> Value {
    alert_at(name, common::wall_clock())
}

/// [`alert`], started at `t`.
fn alert_at(name: &str, t: Timestamp) -> Value {
    json!({
        "labels": {"alertname": name, "instance": "db-1", "severity": "critical"},
        "annotations": {"summary": format!("{name} is burning"), "runbook_url": "https://runbooks.example/x"},
        "startsAt": t.to_string(),
    })
}

/// Retries on a scale a test on a controlled clock moves through: 1 m
/// doubling to 2 m, each ±25 %.
const OUTBOX_MINUTES: &str = "outbox: {initial_backoff: 1m, max_backoff: 2m, max_age: 1h}\n";

/// When the notification `row` is due again.
fn next_attempt(row: &Value) -> Timestamp {
    row["nextAttemptAt"].as_str().unwrap_or_else(|| panic!("no next attempt: {row:#}")).parse().unwrap()
}

/// The gateway's time when it sent a signed webhook request (its
/// `X-Alertgate-Timestamp`, in seconds).
fn sent_at(hit: &Hit) -> i64 {
    hit.header("X-Alertgate-Timestamp").parse().expect("unix seconds")
}

/// Push alerts as Prometheus does; expects 200.
async fn fire(g: &Gateway, alerts: &[Value]) {
    let (status, body) = post(&g.url("/api/v2/alerts"), &Value::Array(alerts.to_vec()).to_string()).await;
    assert_eq!(status, 200, "{body}");
}

/// The incident titled `title` (waits until it exists).
async fn incident_titled(g: &Gateway, title: &str) -> Value {
    wait_for(WAIT, &format!("incident {title:?}"), || async move {
        let (status, body) = get(&g.url("/api/v1/incidents?limit=500")).await;
        assert_eq!(status, 200, "{body}");
        body["incidents"].as_array().unwrap().iter().find(|i| i["title"] == title).cloned()
    })
    .await
}

fn id(v: &Value) -> i64 {
    v["id"].as_i64().unwrap_or_else(|| panic!("no id in {v}"))
}

/// `POST /api/v1/incidents/{id}/{action}` as `alice`; expects 200.
async fn act(g: &Gateway, incident: i64, action: &str) {
    let (status, body) =
        post(&g.url(&format!("/api/v1/incidents/{incident}/{action}")), &json!({"actor": "alice"}).to_string()).await;
    assert_eq!(status, 200, "{action}: {body}");
}

/// `GET /api/v1/notifications` with `query` (starting with `&`).
async fn notifications(g: &Gateway, query: &str) -> Vec<Value> {
    let (status, body) = get(&g.url(&format!("/api/v1/notifications?limit=500{query}"))).await;
    assert_eq!(status, 200, "{query}: {body}");
    body["notifications"].as_array().expect("notifications").clone()
}

/// Wait until the notifications of `query` satisfy `ok`; returns them.
async fn wait_notifications(g: &Gateway, query: &str, what: &str, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let ok = &ok;
    let last = Arc::new(Mutex::new(Vec::new()));
    let seen = last.clone();
    let found = tokio::time::timeout(WAIT + Duration::from_secs(1), async {
        wait_for(WAIT, what, || {
            let seen = seen.clone();
            async move {
                let list = notifications(g, query).await;
                *seen.lock().unwrap() = list.clone();
                ok(&list).then_some(list)
            }
        })
        .await
    })
    .await;
    found.unwrap_or_else(|_| panic!("timed out waiting for {what}: {:#?}", last.lock().unwrap()))
}

// ---- the webhook receiver ---------------------------------------------------

/// How the receiver answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    Status(u16),
    /// Never answer within any notifier's timeout.
    Hang,
}

/// One request the receiver saw.
#[derive(Debug, Clone)]
struct Hit {
    at: Instant,
    path: String,
    /// Lower-case names.
    headers: BTreeMap<String, String>,
    body: String,
}

impl Hit {
    fn header(&self, name: &str) -> &str {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str).unwrap_or_else(|| {
            panic!("no {name} header in {:#?}", self.headers);
        })
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

struct ReceiverState {
    hits: Vec<Hit>,
    /// Replies for the next requests, in order; then `otherwise`.
    script: VecDeque<Reply>,
    otherwise: Reply,
}

/// An HTTP server on 127.0.0.1:0 that records every request.
struct Receiver {
    addr: SocketAddr,
    state: Arc<Mutex<ReceiverState>>,
    task: tokio::task::JoinHandle<()>,
}

async fn receive(
    axum::extract::State(state): axum::extract::State<Arc<Mutex<ReceiverState>>>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let reply = {
        let mut s = state.lock().unwrap();
        s.hits.push(Hit {
            at: Instant::now(),
            path: uri.path().to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        let otherwise = s.otherwise;
        s.script.pop_front().unwrap_or(otherwise)
    };
    match reply {
        Reply::Status(code) => axum::http::StatusCode::from_u16(code).unwrap(),
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(120)).await;
            axum::http::StatusCode::OK
        }
    }
}

impl Receiver {
    async fn start(otherwise: Reply) -> Receiver {
        let state = Arc::new(Mutex::new(ReceiverState { hits: Vec::new(), script: VecDeque::new(), otherwise }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(receive).with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("receiver");
        });
        Receiver { addr, state, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answer the next requests with `replies`, then as before.
    fn script(&self, replies: &[Reply]) {
        self.state.lock().unwrap().script.extend(replies.iter().copied());
    }

    /// Answer every further request with `reply`.
    fn set(&self, reply: Reply) {
        let mut s = self.state.lock().unwrap();
        s.script.clear();
        s.otherwise = reply;
    }

    fn hits(&self) -> Vec<Hit> {
        self.state.lock().unwrap().hits.clone()
    }

    fn hits_on(&self, path: &str) -> Vec<Hit> {
        self.hits().into_iter().filter(|h| h.path == path).collect()
    }

    /// Wait until the requests to `path` satisfy `ok`.
    async fn wait(&self, path: &str, what: &str, timeout: Duration, ok: impl Fn(&[Hit]) -> bool) -> Vec<Hit> {
        let deadline = Instant::now() + timeout;
        loop {
            let hits = self.hits_on(path);
            if ok(&hits) {
                return hits;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; the receiver saw on {path}: {hits:#?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---- the SMTP server ----------------------------------------------------------

/// Character references replaced by their characters.
fn html_unescape(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';').filter(|e| *e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let c = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .map(|h| u32::from_str_radix(h, 16))
                .or_else(|| entity.strip_prefix('#').map(str::parse))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn email_config(smtp_port: u16, extra: &str) -> String {
    format!(
        r#"notifiers:
  - name: oncall-email
    type: email
    smtp: {{host: 127.0.0.1, port: {smtp_port}, tls: none}}
    from: "alertgate <alertgate@example.org>"
    to: [oncall@example.org]
    events: [incident.triggered, incident.acknowledged, incident.resolved, sla.breached]
    timeout: 5s
{extra}{OUTBOX}"#
    )
}

// ---- 1. email ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn email_threads_an_incident_and_carries_its_alerts() {
    let smtp = Smtp::start();
    let env = Env::start(&email_config(smtp.port, ""), &rules(&["oncall-email"]));
    let g = &env.g;

    fire(g, &[alert("DiskFull")]).await;
    let inc = incident_titled(g, "DiskFull on db-1").await;
    let inc_id = id(&inc);
    assert_eq!(inc["priority"], "P1", "{inc:#}");

    let mails = smtp.wait_messages(1, "the triggered mail").await;
    assert_eq!(mails.len(), 1, "{mails:#?}");
    let first = &mails[0];
    assert_eq!(first.must("Subject"), format!("[P1] Incident triggered: #{inc_id} DiskFull on db-1"));
    let from = first.must("From");
    assert!(
        from.ends_with("<alertgate@example.org>") && from.trim_matches('"').starts_with("alertgate"),
        "From: {from}"
    );
    assert!(first.must("To").contains("oncall@example.org"), "To: {}", first.must("To"));
    let root = format!("<incident-{inc_id}.oncall-email@example.org>");
    assert_eq!(first.must("Message-ID"), root, "the triggered mail is the thread root");
    assert!(first.header("In-Reply-To").is_none(), "{:#?}", first.headers);
    assert!(
        first.must("Content-Type").to_ascii_lowercase().starts_with("multipart/alternative"),
        "{}",
        first.must("Content-Type")
    );

    act(g, inc_id, "acknowledge").await;
    let mails = smtp.wait_messages(2, "the acknowledged mail").await;
    assert_eq!(mails.len(), 2, "{mails:#?}");
    let ack = mails.iter().find(|m| m.header("Message-ID") != Some(&root)).expect("a second message");
    assert_eq!(ack.must("Subject"), format!("[P1] Incident acknowledged: #{inc_id} DiskFull on db-1"));
    assert_eq!(ack.must("In-Reply-To"), root, "{:#?}", ack.headers);
    assert_eq!(ack.must("References"), root, "{:#?}", ack.headers);

    // The API lists both, sent at the first attempt; the later mail's id is
    // derived from its idempotency key.
    let rows = wait_notifications(g, &format!("&incident={inc_id}"), "both notifications sent", |l| {
        l.len() == 2 && l.iter().all(|n| n["state"] == "sent")
    })
    .await;
    for n in &rows {
        assert_eq!(n["notifier"], "oncall-email", "{n:#}");
        assert_eq!(n["attempts"], 1, "{n:#}");
        assert_eq!(n["incidentId"], inc_id, "{n:#}");
        assert!(n["lastError"].is_null() && n["sentAt"].is_string() && n["coveredBy"].is_null(), "{n:#}");
    }
    let events: BTreeSet<&str> = rows.iter().map(|n| n["event"].as_str().unwrap()).collect();
    assert_eq!(events, BTreeSet::from(["incident.triggered", "incident.acknowledged"]));
    let ack_row = rows.iter().find(|n| n["event"] == "incident.acknowledged").unwrap();
    assert_eq!(ack.must("Message-ID"), format!("<{}@example.org>", ack_row["idempotencyKey"].as_str().unwrap()));

    // Both bodies say what fired: the alert's labels and annotations.
    let text = first.part("text/plain");
    // Entities in the HTML (minijinja writes `/` as `&#x2f;`) mean their characters.
    let html = html_unescape(&first.part("text/html"));
    for want in [
        "DiskFull",
        "instance=db-1",
        "severity=critical",
        "summary: DiskFull is burning",
        "runbook_url: https://runbooks.example/x",
    ] {
        assert!(text.contains(want), "{want:?} not in the text part of the triggered mail:\n{text}");
    }
    for want in ["db-1", "DiskFull is burning", r#"<a href="https://runbooks.example/x">"#] {
        assert!(html.contains(want), "{want:?} not in the html part of the triggered mail:\n{html}");
    }
}

// ---- 2. webhook signature and headers -----------------------------------------

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_is_signed_and_carries_its_headers() {
    let rx = Receiver::start(Reply::Status(200)).await;
    let config = format!(
        "notifiers:\n{}{OUTBOX}",
        webhook("chatops", &rx.url("/hook"), "secret_file: hmac.txt, headers: {X-Team: sre}, timeout: 2s")
    );
    // The secret file is relative to the config; its trailing newline is not part of the secret.
    let env = Env::start_with_files(&config, &rules(&["chatops"]), &[("hmac.txt", "s3cret-key\n")]);
    let g = &env.g;

    fire(g, &[alert("HighLatency")]).await;
    let inc_id = id(&incident_titled(g, "HighLatency on db-1").await);
    let hits = rx.wait("/hook", "the webhook", WAIT, |h| !h.is_empty()).await;
    assert_eq!(hits.len(), 1, "{hits:#?}");
    let hit = &hits[0];

    let ts: i64 = hit.header("X-Alertgate-Timestamp").parse().expect("unix seconds");
    let now = common::wall_clock().as_second();
    assert!((ts - now).abs() <= 60, "timestamp {ts} is not within 60 s of {now}");
    let sig = hit.header("X-Alertgate-Signature");
    let hex_sig = sig.strip_prefix("sha256=").unwrap_or_else(|| panic!("{sig}"));
    let mut mac = <HmacSha256 as hmac::KeyInit>::new_from_slice(b"s3cret-key").unwrap();
    hmac::Mac::update(&mut mac, format!("{ts}.{}", hit.body).as_bytes());
    hmac::Mac::verify_slice(mac, &hex::decode(hex_sig).expect("hex"))
        .unwrap_or_else(|_| panic!("bad signature {sig} over {ts}.{}", hit.body));

    assert_eq!(hit.header("X-Team"), "sre");
    assert!(hit.header("Content-Type").starts_with("application/json"), "{:#?}", hit.headers);
    let body = hit.json();
    assert_eq!(body["version"], "1", "{body:#}");
    assert_eq!(body["event"], "incident.triggered", "{body:#}");
    assert_eq!(body["incident"]["title"], "HighLatency on db-1", "{body:#}");
    assert_eq!(body["incident"]["id"], inc_id, "{body:#}");
    assert_eq!(body["incident"]["priority"], "P1", "{body:#}");
    assert!(body["digest"].is_null(), "{body:#}");

    let rows =
        wait_notifications(g, "&notifier=chatops", "the webhook row sent", |l| l.len() == 1 && l[0]["state"] == "sent")
            .await;
    let key = rows[0]["idempotencyKey"].as_str().unwrap();
    assert_eq!(hit.header("Idempotency-Key"), key);
    assert_eq!(body["idempotencyKey"], key, "{body:#}");
}

// ---- 3. subscriptions -----------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_notifier_gets_only_the_events_it_subscribes_to() {
    let rx = Receiver::start(Reply::Status(200)).await;
    let config = format!(
        "notifiers:\n{}{}{OUTBOX}",
        webhook("everything", &rx.url("/everything"), ""),
        webhook("resolutions", &rx.url("/resolutions"), "events: [incident.resolved]"),
    );
    let env = Env::start(&config, &rules(&["everything", "resolutions"]));
    let g = &env.g;

    fire(g, &[alert("QueueStuck")]).await;
    let inc_id = id(&incident_titled(g, "QueueStuck on db-1").await);
    // Rows are written with the event: none for the notifier that does not take it.
    rx.wait("/everything", "the triggered message", WAIT, |h| h.len() == 1).await;
    assert_eq!(notifications(g, "&notifier=resolutions").await, Vec::<Value>::new());
    assert!(rx.hits_on("/resolutions").is_empty(), "{:#?}", rx.hits_on("/resolutions"));

    act(g, inc_id, "resolve").await;
    let hits = rx.wait("/resolutions", "the resolved message", WAIT, |h| !h.is_empty()).await;
    rx.wait("/everything", "the resolved message to everything", WAIT, |h| h.len() == 2).await;
    let rows = wait_notifications(g, "&notifier=resolutions", "the resolved row sent", |l| {
        l.iter().all(|n| n["state"] == "sent")
    })
    .await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["event"], "incident.resolved");
    let hits_now = rx.hits_on("/resolutions");
    assert_eq!(hits_now.len(), 1, "{hits_now:#?}");
    assert_eq!(hits[0].json()["event"], "incident.resolved");
    assert_eq!(hits[0].json()["incident"]["state"], "resolved");
}

// ---- 4. retries -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn transient_failures_are_retried_with_the_same_idempotency_key() {
    let rx = Receiver::start(Reply::Status(200)).await;
    rx.script(&[Reply::Status(503), Reply::Status(503)]);
    let config =
        format!("notifiers:\n{}{OUTBOX_MINUTES}", webhook("chatops", &rx.url("/hook"), "timeout: 2s, secret: s3cret"));
    let env = Env::on_clock(&config, &rules(&["chatops"]));
    let g = &env.g;
    let failed = |attempts: u64| {
        move |l: &[Value]| {
            l.len() == 1
                && l[0]["state"] == "pending"
                && l[0]["attempts"] == attempts
                && l[0]["lastError"].as_str().is_some_and(|e| e.contains("503"))
        }
    };

    // t0: the first attempt fails; the retry is due 1 m (±25 %) later.
    fire(g, &[alert_at("Flaky", g.now())]).await;
    let pending = wait_notifications(g, "&notifier=chatops", "a pending row with the last error", failed(1)).await;
    assert!(pending[0]["sentAt"].is_null(), "{pending:#?}");
    let retry1 = next_attempt(&pending[0]);
    let gap = retry1.duration_since(t0());
    assert!(
        (SignedDuration::from_secs(45)..=SignedDuration::from_secs(75)).contains(&gap),
        "first retry after {gap:?}"
    );
    assert_eq!(rx.hits_on("/hook").len(), 1, "no retry before it is due");

    // At the first retry: it fails again; the next is due 2 m (±25 %) later.
    g.advance_to(retry1).await;
    let pending = wait_notifications(g, "&notifier=chatops", "the second attempt failed", failed(2)).await;
    let retry2 = next_attempt(&pending[0]);
    let gap = retry2.duration_since(retry1);
    assert!(
        (SignedDuration::from_secs(90)..=SignedDuration::from_secs(150)).contains(&gap),
        "second retry after {gap:?}"
    );

    // At the second retry: sent.
    g.advance_to(retry2).await;
    let rows =
        wait_notifications(g, "&notifier=chatops", "the row sent", |l| l.len() == 1 && l[0]["state"] == "sent").await;
    let row = &rows[0];
    assert_eq!(row["attempts"], 3, "{row:#}");
    assert!(row["lastError"].is_null(), "{row:#}");
    let hits = rx.hits_on("/hook");
    assert_eq!(hits.len(), 3, "{hits:#?}");
    let at: Vec<i64> = hits.iter().map(sent_at).collect();
    assert_eq!(at, [t0().as_second(), retry1.as_second(), retry2.as_second()], "each attempt when it was due");
    let keys: BTreeSet<&str> = hits.iter().map(|h| h.header("Idempotency-Key")).collect();
    assert_eq!(keys, BTreeSet::from([row["idempotencyKey"].as_str().unwrap()]), "one key for every attempt");
    let bodies: BTreeSet<&str> = hits.iter().map(|h| h.body.as_str()).collect();
    assert_eq!(bodies.len(), 1, "the same message each time: {bodies:#?}");
}

// ---- 5. dead letter and manual retry -------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_notification_is_a_dead_letter_until_retried_by_hand() {
    let rx = Receiver::start(Reply::Status(404)).await;
    let config = format!("notifiers:\n{}{OUTBOX}", webhook("chatops", &rx.url("/hook"), "timeout: 2s"));
    let env = Env::start(&config, &rules(&["chatops"]));
    let g = &env.g;

    fire(g, &[alert("Refused")]).await;
    let rows =
        wait_notifications(g, "&notifier=chatops", "the dead letter", |l| l.len() == 1 && l[0]["state"] == "failed")
            .await;
    let row = &rows[0];
    assert_eq!(row["attempts"], 1, "a 404 is not retried: {row:#}");
    assert!(row["lastError"].as_str().is_some_and(|e| e.contains("404")), "{row:#}");
    assert!(row["sentAt"].is_null() && row["nextAttemptAt"].is_null(), "{row:#}");
    let nid = id(row);
    let failed = notifications(g, "&state=failed").await;
    assert_eq!(failed.iter().map(id).collect::<Vec<_>>(), [nid]);
    assert!(notifications(g, "&state=pending").await.is_empty());

    rx.set(Reply::Status(200));
    let (status, body) = post(&g.url(&format!("/api/v1/notifications/{nid}/retry")), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(id(&body), nid, "{body:#}");
    assert_ne!(body["state"], "failed", "{body:#}");
    let rows =
        wait_notifications(g, "&notifier=chatops", "the retried row sent", |l| l.len() == 1 && l[0]["state"] == "sent")
            .await;
    assert_eq!(rows[0]["attempts"], 2, "{:#}", rows[0]);
    assert!(rows[0]["lastError"].is_null(), "{:#}", rows[0]);
    let hits = rx.hits_on("/hook");
    assert_eq!(hits.len(), 2, "{hits:#?}");
    assert_eq!(hits[0].header("Idempotency-Key"), hits[1].header("Idempotency-Key"));

    let (status, body) = post(&g.url(&format!("/api/v1/notifications/{nid}/retry")), "").await;
    assert_eq!(status, 409, "retrying a sent notification: {body}");
    let (status, body) = post(&g.url("/api/v1/notifications/987654/retry"), "").await;
    assert_eq!(status, 404, "retrying an unknown notification: {body}");
    assert_eq!(rx.hits_on("/hook").len(), 2, "nothing more was sent");
}

// ---- 6. rate limit digest -------------------------------------------------------

/// How many events a message covers.
fn covered(body: &Value) -> usize {
    match body["digest"]["count"].as_u64() {
        Some(n) => n as usize,
        None => 1,
    }
}

/// The rate limit frees its next permit 60 / `per_minute` = 30 s after the
/// first two messages; the digest goes then.
#[tokio::test(flavor = "multi_thread")]
async fn a_storm_past_the_rate_limit_becomes_one_digest() {
    let rx = Receiver::start(Reply::Status(200)).await;
    let config = format!(
        "notifiers:\n{}{OUTBOX}",
        webhook("chatops", &rx.url("/hook"), "rate_limit: {per_minute: 2}, secret: s3cret")
    );
    let env = Env::on_clock(&config, &rules(&["chatops"]));
    let g = &env.g;

    // t0: ten incidents at once; the first messages go at once.
    let names: Vec<String> = (0..10).map(|i| format!("Storm{i:02}")).collect();
    let alerts: Vec<Value> = names.iter().map(|n| alert_at(n, g.now())).collect();
    fire(g, &alerts).await;
    let incidents: BTreeSet<i64> =
        notifications(g, "&notifier=chatops").await.iter().map(|n| n["incidentId"].as_i64().unwrap()).collect();
    assert_eq!(incidents.len(), 10, "one incident and one row per alertname");
    let first = rx.wait("/hook", "the first two messages", WAIT, |h| h.len() >= 2).await;
    assert!(first.iter().all(|h| sent_at(h) == t0().as_second()), "{first:#?}");

    // t0+30s: the limit grants the next message: the digest of the rest.
    g.advance(SignedDuration::from_secs(30)).await;
    let hits = rx
        .wait("/hook", "messages covering all 10 events", WAIT, |h| {
            h.iter().map(|h| covered(&h.json())).sum::<usize>() >= 10
        })
        .await;
    assert!(hits.len() <= 3, "at most 3 messages for 10 events at 2 per minute: {hits:#?}");
    let bodies: Vec<Value> = hits.iter().map(Hit::json).collect();
    assert_eq!(bodies.iter().map(covered).sum::<usize>(), 10, "{bodies:#?}");
    let digests: Vec<(&Hit, &Value)> = hits.iter().zip(&bodies).filter(|(_, b)| !b["digest"].is_null()).collect();
    assert_eq!(digests.len(), 1, "one digest: {bodies:#?}");
    let (digest_hit, digest) = digests[0];
    assert_eq!(sent_at(digest_hit), (t0() + SignedDuration::from_secs(30)).as_second(), "when the limit allowed it");
    let count = covered(digest);
    assert_eq!(count, 10 - (hits.len() - 1), "the digest covers the rest: {digest:#}");
    let key = digest["idempotencyKey"].as_str().unwrap();
    assert_eq!(digest_hit.header("Idempotency-Key"), key);
    assert!(key.starts_with(&format!("digest-{count}-")), "{key}");
    let events = digest["events"].as_array().unwrap();
    assert_eq!(events.len(), count, "{digest:#}");
    assert!(events.iter().all(|e| e["event"] == "incident.triggered"), "{digest:#}");
    let mut seen: BTreeSet<i64> = events.iter().map(|e| e["incident"]["id"].as_i64().unwrap()).collect();
    seen.extend(bodies.iter().filter(|b| b["digest"].is_null()).map(|b| b["incident"]["id"].as_i64().unwrap()));
    assert_eq!(seen, incidents, "every incident told exactly once");

    let rows =
        wait_notifications(g, "&notifier=chatops", "all 10 rows sent", |l| l.iter().all(|n| n["state"] == "sent"))
            .await;
    assert_eq!(rows.len(), 10);
    let by_digest: Vec<&Value> = rows.iter().filter(|n| n["coveredBy"] == key).collect();
    assert_eq!(by_digest.len(), count, "{rows:#?}");
    for n in rows.iter().filter(|n| n["coveredBy"].is_null()) {
        let k = n["idempotencyKey"].as_str().unwrap();
        assert!(hits.iter().any(|h| h.header("Idempotency-Key") == k), "{k} sent on its own: {n:#}");
    }
    assert_eq!(rows.iter().filter(|n| n["coveredBy"].is_null()).count(), hits.len() - 1, "{rows:#?}");
}

// ---- 7. a hung receiver harms nobody ----------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_receiver_delays_only_its_own_notifier() {
    let slow = Receiver::start(Reply::Hang).await;
    let fast = Receiver::start(Reply::Status(200)).await;
    let config = format!(
        "notifiers:\n{}{}{OUTBOX}",
        webhook("slow", &slow.url("/hook"), "timeout: 2s"),
        webhook("fast", &fast.url("/hook"), "timeout: 2s"),
    );
    let env = Env::start(&config, &rules(&["slow", "fast"]));
    let g = &env.g;

    let started = Instant::now();
    fire(g, &[alert("Hung00")]).await;
    let hits = fast.wait("/hook", "the fast receiver's message", Duration::from_secs(5), |h| !h.is_empty()).await;
    let took = hits[0].at - started;
    assert!(took < Duration::from_millis(1900), "fast got its message after {took:?}, behind the hung receiver");
    slow.wait("/hook", "the slow receiver's request", WAIT, |h| !h.is_empty()).await;

    // While the slow receiver hangs, ingest answers promptly and the fast
    // notifier keeps up.
    let n = 20;
    for i in 1..=n {
        let t = Instant::now();
        fire(g, &[alert(&format!("Hung{i:02}"))]).await;
        let took = t.elapsed();
        assert!(took < Duration::from_secs(1), "ingest request {i} took {took:?}");
    }
    fast.wait("/hook", "every message to the fast receiver", Duration::from_secs(5), |h| h.len() > n).await;
    let fast_rows = wait_notifications(g, "&notifier=fast", "every fast row sent", |l| {
        l.len() == n + 1 && l.iter().all(|r| r["state"] == "sent")
    })
    .await;
    assert!(fast_rows.iter().all(|r| r["attempts"] == 1), "{fast_rows:#?}");
    // The hung receiver's rows wait for it, with the timeout as their error.
    let slow_rows = wait_notifications(g, "&notifier=slow", "a slow row timed out", |l| {
        l.iter().any(|r| r["state"] == "pending" && r["attempts"].as_u64() >= Some(1))
    })
    .await;
    assert!(slow_rows.iter().all(|r| r["state"] == "pending"), "{slow_rows:#?}");
    let timed_out = slow_rows.iter().find(|r| r["attempts"].as_u64() >= Some(1)).unwrap();
    assert!(timed_out["lastError"].as_str().is_some_and(|e| e.contains("2s")), "{timed_out:#}");
}

// ---- 8. durability across restart --------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_pending_notification_survives_kill_and_restart() {
    let rx = Receiver::start(Reply::Status(503)).await;
    let config =
        format!("notifiers:\n{}{OUTBOX_MINUTES}", webhook("chatops", &rx.url("/hook"), "timeout: 2s, secret: s3cret"));
    let mut env = Env::on_clock(&config, &rules(&["chatops"]));

    // t0: the first attempt fails; killed while the row waits for its retry.
    fire(&env.g, &[alert_at("Durable", env.g.now())]).await;
    let rows = wait_notifications(&env.g, "&notifier=chatops", "a failed first attempt", |l| {
        l.len() == 1 && l[0]["state"] == "pending" && l[0]["lastError"].as_str().is_some_and(|e| e.contains("503"))
    })
    .await;
    env.g.kill9();
    let before = rows[0].clone();
    let retry = next_attempt(&before);
    assert_eq!(rx.hits_on("/hook").len(), 1);

    // Down until the retry is due; started again then, the row goes out.
    rx.set(Reply::Status(200));
    env.g.respawn_at(retry);
    let g = &env.g;
    let rows = wait_notifications(g, "&notifier=chatops", "the row sent after the restart", |l| {
        l.len() == 1 && l[0]["state"] == "sent"
    })
    .await;
    assert_eq!(rows[0]["id"], before["id"]);
    assert_eq!(rows[0]["idempotencyKey"], before["idempotencyKey"]);
    assert_eq!(rows[0]["attempts"], 2, "{:#}", rows[0]);
    let hits = rx.hits_on("/hook");
    assert_eq!(hits.len(), 2, "{hits:#?}");
    assert_eq!(sent_at(&hits[1]), retry.as_second(), "sent when due, after the restart");
    let keys: BTreeSet<&str> = hits.iter().map(|h| h.header("Idempotency-Key")).collect();
    assert_eq!(keys, BTreeSet::from([before["idempotencyKey"].as_str().unwrap()]));
}

/// Pages claimed by a run that ended mid-delivery (a hung receiver) go out
/// within seconds of the next run's start, not when their lease runs out.
async fn pages_go_out_promptly_after(stop: impl Fn(&mut Gateway)) {
    let rx = Receiver::start(Reply::Hang).await;
    let config = format!("notifiers:\n{}{OUTBOX}", webhook("pager", &rx.url("/hook"), "timeout: 60s"));
    let mut env = Env::start(&config, &rules(&["pager"]));
    let names: Vec<String> = (0..5).map(|i| format!("Restart{i}")).collect();
    for n in &names {
        fire(&env.g, &[alert(n)]).await;
    }
    // The first delivery hangs; the other four wait behind it, claimed.
    rx.wait("/hook", "the first delivery", WAIT, |h| !h.is_empty()).await;
    stop(&mut env.g);

    rx.set(Reply::Status(200));
    let before = rx.hits_on("/hook").len();
    env.g.respawn();
    let ready = Instant::now();
    let hits = rx
        .wait("/hook", "every page after the restart", Duration::from_secs(5), |h| {
            let titles: BTreeSet<String> =
                h[before..].iter().map(|h| h.json()["incident"]["title"].as_str().unwrap_or("").to_owned()).collect();
            names.iter().all(|n| titles.contains(&format!("{n} on db-1")))
        })
        .await;
    let late = hits.last().unwrap().at - ready;
    assert!(late < Duration::from_secs(5), "the last page went out {late:?} after the restart");
    wait_notifications(&env.g, "&notifier=pager", "every row sent", |l| {
        l.len() == 5 && l.iter().all(|r| r["state"] == "sent")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pending_pages_go_out_at_once_after_sigterm() {
    pages_go_out_promptly_after(|g| {
        assert!(g.terminate().success(), "a clean stop");
        assert!(g.stderr().contains("released the leases of unfinished deliveries"), "{}", g.stderr());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pending_pages_go_out_at_once_after_kill_9() {
    pages_go_out_promptly_after(Gateway::kill9).await;
}

// ---- 9. notify test ---------------------------------------------------------------

/// Run the binary without any ALERTGATE_* variable of the environment.
fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ALERTGATE_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args);
    let (status, out, err) = run_to_exit(&mut cmd, Duration::from_secs(60));
    (status.code(), out, err)
}

fn path_arg(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn notify_test_sends_a_sample_or_reports_the_failure() {
    let smtp = Smtp::start();
    let dead = common::free_port();
    let config = email_config(smtp.port, &webhook("deadhook", &format!("http://127.0.0.1:{dead}/hook"), "timeout: 2s"));
    let dir = write_setup(&config, "incident_rules: []\n", &[]);
    let cfg = path_arg(&dir.path().join("alertgate.yml"));

    let (code, out, err) = run(&["notify", "test", "oncall-email", "--config", &cfg]);
    assert_eq!(code, Some(0), "stdout: {out}\nstderr: {err}");
    assert!(out.contains("sent"), "{out}");
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert!(mails[0].must("Subject").contains("Test notification"), "{:#?}", mails[0].headers);
    assert!(mails[0].must("To").contains("oncall@example.org"), "{:#?}", mails[0].headers);

    let (code, out, err) = run(&["notify", "test", "deadhook", "--config", &cfg]);
    assert_eq!(code, Some(1), "stdout: {out}\nstderr: {err}");
    assert!(out.contains("failed"), "{out}");

    let (code, out, err) = run(&["notify", "test", "nobody", "--config", &cfg]);
    assert!(code.is_some_and(|c| c != 0), "an unknown notifier: {code:?}\nstdout: {out}\nstderr: {err}");
    assert!(format!("{out}{err}").contains("nobody"), "stdout: {out}\nstderr: {err}");
    assert_eq!(smtp.messages().len(), 1, "nothing more was mailed");
}

// ---- 10. check ---------------------------------------------------------------------

#[test]
fn check_names_unknown_notifiers_and_broken_templates() {
    let check = |config: &str, rules: &str, files: &[(&str, &str)]| {
        let dir = write_setup(config, rules, files);
        let (code, out, err) = run(&[
            "check",
            "--rules",
            &path_arg(&dir.path().join("rules")),
            "--config",
            &path_arg(&dir.path().join("alertgate.yml")),
        ]);
        (code, format!("{out}{err}"))
    };
    let chatops = format!("notifiers:\n{}", webhook("chatops", "http://127.0.0.1:9/hook", ""));

    let (code, out) = check(&chatops, &rules(&["chatops"]), &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("ok"), "{out}");

    let (code, out) = check(&chatops, &rules(&["chatops", "nope"]), &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("\"nope\"") && out.contains("no notifier"), "{out}");
    assert!(!out.starts_with("ok"), "{out}");

    let bad = r#"notifiers:
  - name: mail
    type: email
    smtp: {host: 127.0.0.1, port: 2525, tls: none}
    from: alertgate@example.org
    to: [oncall@example.org]
    templates: {subject: bad.j2}
"#;
    let (code, out) = check(bad, &rules(&[]), &[("bad.j2", "[{{ incident.priority }}] {{ incident.title\n")]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("templates.subject"), "{out}");
    assert!(!out.starts_with("ok"), "{out}");

    // The same template, fixed, is fine.
    let (code, out) = check(bad, &rules(&[]), &[("bad.j2", "[{{ incident.priority }}] {{ incident.title }}\n")]);
    assert_eq!(code, Some(0), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn emails_say_who_acknowledged_or_resolved_and_why() {
    let smtp = Smtp::start();
    let env = Env::start(&email_config(smtp.port, ""), &rules(&["oncall-email"]));
    let g = &env.g;
    fire(g, &[alert("QueueStuck")]).await;
    let inc_id = id(&incident_titled(g, "QueueStuck on db-1").await);
    smtp.wait_messages(1, "the triggered mail").await;

    let say = |action: &'static str, actor: &'static str, comment: &'static str| async move {
        let (status, body) = post(
            &g.url(&format!("/api/v1/incidents/{inc_id}/{action}")),
            &json!({"actor": actor, "comment": comment}).to_string(),
        )
        .await;
        assert_eq!(status, 200, "{action}: {body}");
    };
    say("acknowledge", "alice", "looking at the consumer <lag>").await;
    let mails = smtp.wait_messages(2, "the acknowledged mail").await;
    say("resolve", "bob", "restarted the consumer").await;
    let mails = [mails, smtp.wait_messages(3, "the resolved mail").await].concat();

    let by_subject = |start: &str| {
        mails
            .iter()
            .find(|m| m.must("Subject").starts_with(start))
            .unwrap_or_else(|| panic!("no mail {start:?}: {mails:#?}"))
            .clone()
    };
    for (subject, line) in [
        ("[P1] Incident acknowledged", "acknowledged by alice: looking at the consumer <lag>"),
        ("[P1] Incident resolved", "resolved by bob: restarted the consumer"),
    ] {
        let mail = by_subject(subject);
        let text = mail.part("text/plain");
        assert!(text.contains(line), "{line:?} not in the text part:\n{text}");
        let html = html_unescape(&mail.part("text/html"));
        let (done, rest) = line.split_once(" by ").unwrap();
        let (who, why) = rest.split_once(": ").unwrap();
        let mut cap = done.chars();
        let done = format!("{}{}", cap.next().unwrap().to_uppercase(), cap.as_str());
        let want = format!("{done} by <b>{who}</b>: {why}");
        assert!(html.contains(&want), "{want:?} not in the html part:\n{html}");
    }
}

// ---- links to the console ---------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn notifications_link_to_the_incident_page_under_web_external_url() {
    let smtp = Smtp::start();
    let rx = Receiver::start(Reply::Status(200)).await;
    // Both notifiers in one list; the trailing slash of the URL is dropped.
    let email = email_config(smtp.port, &webhook("chatops", &rx.url("/hook"), "timeout: 2s"));
    let config = format!("web: {{external_url: \"https://alertgate.example.org/ag/\"}}\n{email}");
    let env = Env::start(&config, &rules(&["oncall-email", "chatops"]));
    let g = &env.g;

    fire(g, &[alert("PageMe")]).await;
    let inc_id = id(&incident_titled(g, "PageMe on db-1").await);
    let link = format!("https://alertgate.example.org/ag/incidents/{inc_id}");

    let hits = rx.wait("/hook", "the webhook", WAIT, |h| !h.is_empty()).await;
    let body = hits[0].json();
    assert_eq!(body["incident"]["url"], link, "{body:#}");
    assert_eq!(body["events"][0]["incident"]["url"], link, "{body:#}");

    let mails = smtp.wait_messages(1, "the triggered mail").await;
    let text = mails[0].part("text/plain");
    assert!(text.contains(&link), "{link} not in the text body:\n{text}");
    let html = html_unescape(&mails[0].part("text/html"));
    assert!(html.contains(&format!("<a href=\"{link}\">incident #{inc_id}</a>")), "{link} not linked in:\n{html}");
}
