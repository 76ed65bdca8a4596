//! Bounds under abuse, against the real binary: what a sender or a stranger
//! controls (label values, request methods, connections, body bytes, the
//! size of a request) cannot grow the gateway's memory or `/metrics`
//! without limit, nor stall another sender.
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Gateway, Options, get, post, wait_for};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const SENDER: &str = "sender-token-0123456789abcdef";
const OTHER: &str = "other-sender-0123456789abcdef";
const ADMIN: &str = "admin-token-0123456789abcdef";

fn sha(t: &str) -> String {
    hex::encode(Sha256::digest(t.as_bytes()))
}

/// Two ingest tokens and an admin, and `extra` config.
fn config(extra: &str) -> String {
    format!(
        "auth:\n  tokens:\n    - {{name: sender, role: ingest, token_sha256: \"{}\"}}\n    - {{name: other, role: ingest, token_sha256: \"{}\"}}\n    - {{name: root, role: admin, token_sha256: \"{}\"}}\n{extra}",
        sha(SENDER),
        sha(OTHER),
        sha(ADMIN)
    )
}

/// `n` distinct firing alerts tagged `tag`, as Prometheus pushes them.
fn alerts(tag: &str, n: usize) -> String {
    let list: Vec<Value> =
        (0..n).map(|i| json!({"labels": {"alertname": "Bounds", "tag": tag, "seq": i.to_string()}})).collect();
    Value::Array(list).to_string()
}

async fn push(g: &Gateway, token: &str, body: String) -> reqwest::Response {
    common::client()
        .post(g.url("/api/v2/alerts"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("push")
}

/// The gateway's resident set, from /proc (kB).
fn rss_kb(g: &Gateway, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", g.child.id())).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn metrics_text(g: &Gateway) -> String {
    let resp = common::client().get(g.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

/// The distinct values of `label` in the series of `metric`.
fn label_values(text: &str, metric: &str, label: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .filter_map(|l| {
            let at = l.find(&format!("{label}=\""))? + label.len() + 2;
            Some(l[at..at + l[at..].find('"')?].to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_and_strangers_cannot_grow_the_metrics() {
    let g =
        Gateway::start_with(Options { config: Some("metrics: {max_label_values: 50}\n".into()), ..Default::default() });
    // 20,000 services through the catch-all rule, which takes `service` from
    // the labels. Each request opens 1,000 incidents: on PostgreSQL, with
    // the gateway built for debugging, that takes ten seconds or more, so
    // these requests wait longer than the usual client's 30 s.
    let patient = reqwest::Client::builder().timeout(std::time::Duration::from_secs(180)).build().unwrap();
    for batch in 0..20 {
        let alerts: Vec<Value> = (0..1000)
            .map(|i| json!({"labels": {"alertname": "Cardinality", "service": format!("svc-{batch}-{i}")}}))
            .collect();
        let resp = patient
            .post(g.url("/api/v2/alerts"))
            .header("content-type", "application/json")
            .body(Value::Array(alerts).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap_or_default());
    }
    // 5,000 invented methods from a client with no credentials at all.
    let client = common::client();
    for i in 0..5000 {
        let method = reqwest::Method::from_bytes(format!("XMETHOD{i}").as_bytes()).unwrap();
        let resp = client.request(method, g.url("/api/v1/incidents")).send().await.unwrap();
        assert!(resp.status().is_client_error(), "{}", resp.status());
    }
    let (_, page) = get(&g.url("/api/v1/incidents?limit=1")).await;
    assert!(page["incidents"].as_array().is_some_and(|l| !l.is_empty()));
    let text = metrics_text(&g).await;
    assert!(text.len() < 1 << 20, "/metrics is {} bytes", text.len());
    for metric in ["alertgate_incidents_created_total", "alertgate_incidents_open"] {
        let services = label_values(&text, metric, "service");
        assert!(services.len() <= 51, "{metric}: {} services", services.len());
        assert!(services.contains("other"), "{metric}: the rest is counted under other");
    }
    let created: u64 = text
        .lines()
        .filter(|l| l.starts_with("alertgate_incidents_created_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(created, 20_000, "nothing is lost by the bound, only aggregated");
    let methods = label_values(&text, "alertgate_http_request_duration_seconds_count", "method");
    assert!(methods.iter().all(|m| !m.starts_with("XMETHOD")), "{methods:?}");
    assert!(methods.contains("other"), "{methods:?}");
    let rss = rss_kb(&g, "VmRSS:");
    assert!(rss < 200 * 1024, "RSS {rss} kB");
}

// ---- fairness: a large request does not hold the writer ----------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_request_is_applied_in_parts_between_other_senders_requests() {
    let g = Gateway::start_with(Options { config: Some(config("")), ..Default::default() });
    let big = {
        let g_url = g.url("/api/v2/alerts");
        let body = alerts("big", 10_000);
        tokio::spawn(async move {
            let resp = common::client()
                .post(g_url)
                .bearer_auth(SENDER)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), Instant::now())
        })
    };
    // Once the first part of the large request is committed, another
    // sender's request is answered before the large request's last part.
    wait_for(Duration::from_secs(60), "the first part of the large request", || async {
        let resp = common::client()
            .get(g.url("/api/v1/alerts?limit=1&filter=tag%3D%22big%22"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        let page: Value = resp.json().await.unwrap();
        page["alerts"].as_array().is_some_and(|a| !a.is_empty()).then_some(())
    })
    .await;
    let small = push(&g, OTHER, alerts("small", 10)).await;
    let small_done = Instant::now();
    assert_eq!(small.status(), 200);
    let (status, big_done) = big.await.unwrap();
    assert_eq!(status, 200);
    assert!(small_done < big_done, "the small request waited for the whole large one");
    let all = common::client()
        .get(g.url("/api/v1/alerts?limit=1000&filter=tag%3D%22big%22"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(all.status(), 200);
    let (_, page) = (0, all.json::<Value>().await.unwrap());
    assert_eq!(page["alerts"].as_array().unwrap().len(), 1000, "every part is stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_alert_cap_or_rate_are_refused_naming_the_limit() {
    let g = Gateway::start_with(Options {
        config: Some(config(
            "limits:\n  max_alerts_per_request: 100\n  ingest: {per_second: 1000, alerts_per_second: 10, alerts_burst: 60}\n",
        )),
        ..Default::default()
    });
    let resp = push(&g, SENDER, alerts("cap", 101)).await;
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("limits.max_alerts_per_request"), "{body}");
    assert_eq!(body["detail"]["alerts"], 101);

    // The alert budget: 60 at once, 10 a second after that, per sender.
    assert_eq!(push(&g, SENDER, alerts("rate1", 50)).await.status(), 200);
    let resp = push(&g, SENDER, alerts("rate2", 50)).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("alerts_per_second"), "{body}");
    // Another sender has its own budget.
    assert_eq!(push(&g, OTHER, alerts("rate3", 50)).await.status(), 200);
    // More than the burst at once can never pass: 413, not a retry forever.
    let resp = push(&g, OTHER, alerts("rate4", 70)).await;
    assert_eq!(resp.status(), 413);
}

// ---- connections and buffered bytes ---------------------------------------------------

/// The gateway's peak resident set (kB).
fn peak_rss_kb(g: &Gateway) -> u64 {
    rss_kb(g, "VmHWM:")
}

/// A raw connection to the gateway.
fn connect(g: &Gateway) -> TcpStream {
    TcpStream::connect(&g.addr).expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_no_request_head_is_closed() {
    let g =
        Gateway::start_with(Options { config: Some(config("limits: {header_timeout: 1s}\n")), ..Default::default() });
    let silent = connect(&g);
    let mut slow = connect(&g);
    slow.write_all(b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\n").unwrap();
    for (what, mut conn) in [("silent", silent), ("slow", slow)] {
        conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 256];
        // EOF (or a reset, or a 408) once the header timeout passes: never a hang.
        let closed = match conn.read(&mut buf) {
            Ok(0) | Err(_) => true,
            Ok(n) => String::from_utf8_lossy(&buf[..n]).contains("408"),
        };
        assert!(closed, "{what}: still open");
        assert!(started.elapsed() < Duration::from_secs(15), "{what}: closed only after {:?}", started.elapsed());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_at_the_file_limit_leave_ingest_working() {
    let g = Gateway::start_with(Options {
        config: Some(config("")),
        launcher: vec!["prlimit".into(), "--nofile=1024:1024".into()],
        ..Default::default()
    });
    let idle: Vec<TcpStream> = (0..1100).map(|_| connect(&g)).collect();
    for i in 0..5 {
        let resp = push(&g, SENDER, alerts(&format!("through{i}"), 5)).await;
        assert_eq!(resp.status(), 200, "ingest behind 1,100 idle connections");
    }
    let text = common::client().get(g.url("/metrics")).bearer_auth(ADMIN).send().await.unwrap().text().await.unwrap();
    let evicted: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("alertgate_http_connections_evicted_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(evicted >= 1.0, "{text}");
    drop(idle);
}

/// A stranger's PagerDuty event: no Authorization header, 4 MiB whose
/// routing key (none valid) would come last.
fn stranger_body(g: &Gateway) {
    let Ok(mut conn) = TcpStream::connect(&g.addr) else { return };
    let size = 4 << 20;
    let head = format!(
        "POST /v2/enqueue HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n{{\"payload\":{{\"summary\":\""
    );
    if conn.write_all(head.as_bytes()).is_err() {
        return;
    }
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = head.len();
    while sent < size {
        match conn.write(&chunk[..chunk.len().min(size - sent)]) {
            Ok(n) => sent += n,
            Err(_) => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_bodies_are_cut_short_and_leave_ingest_working() {
    let g = Arc::new(Gateway::start_with(Options { config: Some(config("")), ..Default::default() }));
    let strangers: Vec<_> = (0..300)
        .map(|_| {
            let g = g.clone();
            std::thread::spawn(move || stranger_body(&g))
        })
        .collect();
    for i in 0..10 {
        let resp = push(&g, SENDER, alerts(&format!("during{i}"), 5)).await;
        assert_eq!(resp.status(), 200, "ingest while strangers send bodies");
    }
    for t in strangers {
        t.join().unwrap();
    }
    let peak = peak_rss_kb(&g);
    assert!(peak < 300 * 1024, "peak RSS {peak} kB");
    // A stranger is told why: a 401 with the challenge, after a small read.
    let resp = common::client()
        .post(g.url("/v2/enqueue"))
        .header("content-type", "application/json")
        .body(format!("{{\"payload\":{{\"summary\":\"{}\"}}}}", "y".repeat(200_000)))
        .send()
        .await;
    if let Ok(resp) = resp {
        assert_eq!(resp.status(), 401);
        assert!(resp.headers().contains_key("www-authenticate"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_past_the_buffer_budget_are_refused_with_503() {
    let g = Gateway::start_with(Options {
        config: Some(config("limits: {max_buffered_bytes: 1MiB}\n")),
        ..Default::default()
    });
    // A sender that has sent most of a large body and pauses holds the budget.
    let hold = || {
        let mut holder = connect(&g);
        let size = 3 << 20;
        holder
            .write_all(
                format!(
                    "POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SENDER}\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n["
                )
                .as_bytes(),
            )
            .unwrap();
        holder.write_all(&vec![b' '; 900 * 1024]).unwrap();
        holder
    };
    // Whether the gateway has answered the holder (it may refuse the holder
    // itself when another request took the budget while its bytes came in).
    let answered = |holder: &TcpStream| {
        holder.set_nonblocking(true).unwrap();
        let peeked = holder.peek(&mut [0u8; 1]);
        holder.set_nonblocking(false).unwrap();
        !matches!(peeked, Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock)
    };
    let mut holder = hold();
    // 200 KiB more do not fit in the 1 MiB budget beside it.
    let padded = || format!("{}{}", alerts("budget", 5), " ".repeat(200 * 1024));
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        assert!(Instant::now() < deadline, "timed out waiting for a 503 while the budget is held");
        if answered(&holder) {
            holder = hold();
        }
        let resp = push(&g, OTHER, padded()).await;
        if resp.status() == 503 && !answered(&holder) {
            break resp;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("limits.max_buffered_bytes"), "{body}");
    drop(holder);
    wait_for(Duration::from_secs(30), "ingest once the budget is free", || async {
        (push(&g, OTHER, padded()).await.status() == 200).then_some(())
    })
    .await;
}

// ---- a large incident is answered in pages ---------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_incident_is_answered_in_pages() {
    let g = Gateway::start();
    let (status, body) = post(&g.url("/api/v2/alerts"), &alerts("many", 3000)).await;
    assert_eq!(status, 200, "{body}");
    let id = wait_for(Duration::from_secs(30), "the incident", || async {
        let (_, page) = get(&g.url("/api/v1/incidents")).await;
        page["incidents"].as_array()?.first()?["id"].as_i64()
    })
    .await;
    let resp = common::client().get(g.url(&format!("/api/v1/incidents/{id}"))).send().await.unwrap();
    let text = resp.text().await.unwrap();
    assert!(text.len() < 1 << 20, "the default answer is {} bytes", text.len());
    let first: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(first["alertCount"], 3000);
    assert_eq!(first["alerts"].as_array().unwrap().len(), 500);
    assert_eq!(first["timeline"].as_array().unwrap().len(), 1000);
    // Following the cursors gives every alert once.
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor = None::<String>;
    loop {
        let mut url = g.url(&format!("/api/v1/incidents/{id}?alerts_limit=1000"));
        if let Some(c) = &cursor {
            url.push_str(&format!("&alerts_cursor={c}"));
        }
        let (status, page) = get(&url).await;
        assert_eq!(status, 200, "{page}");
        for a in page["alerts"].as_array().unwrap() {
            assert!(seen.insert(a["fingerprint"].as_str().unwrap().to_string()), "an alert twice");
        }
        match page["alertsNextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 3000);
    // The newest timeline entries first, and the rest behind the cursor.
    let (_, newest) = get(&g.url(&format!("/api/v1/incidents/{id}?timeline_order=desc&timeline_limit=10"))).await;
    let t = newest["timeline"].as_array().unwrap();
    assert_eq!(t.len(), 10);
    assert!(t[0]["at"].as_str() >= t[9]["at"].as_str());
    let (_, older) = get(&g.url(&format!(
        "/api/v1/incidents/{id}?timeline_order=desc&timeline_limit=10&timeline_cursor={}",
        newest["timelineNextCursor"].as_str().unwrap()
    )))
    .await;
    assert_ne!(older["timeline"][0], t[0]);
    let (status, body) = get(&g.url(&format!("/api/v1/incidents/{id}?alerts_limit=0"))).await;
    assert_eq!(status, 400, "{body}");
}
