//! Hostile input: every parser answers Ok or Err to anything (an in-process,
//! deterministic mutation fuzzer over the fixtures), and the running gateway
//! answers a 4xx or stores the text as data — never crashes, never renders a
//! label as a template, never lets text change a query.
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::Duration;

use alertgate::ingest::IngestContext;
use alertgate::ingest::generic::{Mapping, MappingSpec};
use alertgate::model::Fingerprint;
use common::{Gateway, Options, all_alerts, fixture, get, post, repo_path};
use serde_json::{Value, json};

// ---- the in-process mutation fuzzer ------------------------------------------

/// xorshift64*: small, fast and the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// 0..n (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Text that breaks parsers: JSON and YAML syntax, escapes, control
/// characters, surrogates, template and SQL syntax.
const TOKENS: &[&str] = &[
    "\"",
    "'",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\\",
    "\\u0000",
    "\\ud800",
    "\\udfff",
    "\\u202e",
    "\u{0}",
    "\u{1b}[31m",
    "\u{7f}",
    "\u{202e}",
    "\u{feff}",
    "\r\n",
    "\t",
    "null",
    "true",
    "[]",
    "{}",
    "\"\"",
    "{{ 7*7 }}",
    "{% for %}",
    "'; DROP TABLE alerts; --",
    "- ",
    "? ",
    "&a ",
    "*a",
    "!!binary ",
    "%YAML 1.2\n",
    "---\n",
    "...\n",
    "#",
    "|\n",
    ">-\n",
    "=~",
    "!~",
    "!=",
    "=",
    "🔥",
    "\u{10ffff}",
];

/// Numbers that overflow every integer type, or no float.
const HUGE: &[&str] = &[
    "18446744073709551616",
    "-9223372036854775809",
    "99999999999999999999999999999999999999",
    "1e999",
    "-1e999",
    "1.7976931348623157e309",
    "0.000000000000000000000000000000000000000000000000001",
    "NaN",
    "-0",
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00Z",
    "-999999-01-01T00:00:00Z",
    "2026-13-45T25:61:61Z",
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let at = if b.is_empty() { 0 } else { rng.below(b.len() + 1) };
        match rng.below(11) {
            // Flip a bit.
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            // Any byte, including invalid UTF-8 and control bytes.
            1 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
            // Insert a hostile token.
            2 | 3 => {
                let t = rng.pick(TOKENS).as_bytes();
                b.splice(at..at, t.iter().copied());
            }
            // Truncate.
            4 => b.truncate(at),
            // Duplicate a span somewhere else.
            5 if !b.is_empty() => {
                let from = rng.below(b.len());
                let len = 1 + rng.below((b.len() - from).min(512));
                let span = b[from..from + len].to_vec();
                let to = rng.below(b.len() + 1);
                b.splice(to..to, span);
            }
            // Delete a span.
            6 if !b.is_empty() => {
                let from = rng.below(b.len());
                let len = 1 + rng.below((b.len() - from).min(64));
                b.drain(from..from + len);
            }
            // Replace a number (or a time) with a huge one.
            7 => {
                let digits: Vec<usize> =
                    b.iter().enumerate().filter(|(_, c)| c.is_ascii_digit()).map(|(i, _)| i).collect();
                if let Some(&start) = digits.get(rng.below(digits.len().max(1))) {
                    let end = b[start..].iter().position(|c| !c.is_ascii_digit()).map_or(b.len(), |p| start + p);
                    let huge = rng.pick(HUGE).as_bytes();
                    b.splice(start..end, huge.iter().copied());
                }
            }
            // Deep nesting.
            8 => {
                let depth = 1 + rng.below(5000);
                let open = *rng.pick(&["[", "{\"a\":", "[{\"x\":", "- ", "{a: ", "[["]);
                b.splice(at..at, open.repeat(depth).into_bytes());
            }
            // A long string where a short one was.
            9 => {
                let len = rng.below(20_000);
                let fill = *rng.pick(&["x", "é", "\u{202e}", "🔥", "%", "\\\\"]);
                let s = format!("\"{}\"", fill.repeat(len));
                b.splice(at..at, s.into_bytes());
            }
            // Swap a JSON value's type: a quoted string becomes something else.
            _ => {
                if let Some(q) = b[at.min(b.len())..].iter().position(|&c| c == b'"').map(|p| p + at)
                    && let Some(close) = b[q + 1..].iter().position(|&c| c == b'"').map(|p| p + q + 1)
                {
                    let with = *rng.pick(&["null", "0", "-1", "[]", "{}", "true", "1e400", "[[[[]]]]", "{\"\":{}}"]);
                    b.splice(q..=close, with.bytes());
                }
            }
        }
    }
    b
}

/// Run `parse` over `iterations` mutations of each seed (and the seeds
/// themselves) and fail, naming the saved inputs, if any call panicked.
fn fuzz(name: &str, seeds: &[Vec<u8>], iterations: usize, parse: impl Fn(&[u8])) {
    assert!(!seeds.is_empty(), "{name}: no seeds");
    let mut rng = Rng::new(0x5eed ^ name.bytes().fold(0u64, |h, c| h.wrapping_mul(31).wrapping_add(u64::from(c))));
    let mut panics: Vec<String> = Vec::new();
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hostile-input");
    std::fs::create_dir_all(&out_dir).unwrap();
    let current = out_dir.join(format!("{name}-running.bin"));
    for i in 0..iterations + seeds.len() {
        let input = if i < seeds.len() {
            seeds[i].clone()
        } else {
            let seed = seeds[rng.below(seeds.len())].clone();
            mutate(&mut rng, &seed)
        };
        // Kept on disk while it runs: a stack overflow aborts the process
        // before any report could be written.
        std::fs::write(&current, &input).unwrap();
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| parse(&input))) {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let saved = out_dir.join(format!("{name}-{i}.bin"));
            std::fs::write(&saved, &input).unwrap();
            panics.push(format!("input {i} ({} bytes, saved to {}): {msg}", input.len(), saved.display()));
        }
    }
    let _ = std::fs::remove_file(&current);
    assert!(panics.is_empty(), "{name} panicked on {} of {} inputs:\n{}", panics.len(), iterations, panics.join("\n"));
}

fn ctx() -> IngestContext {
    IngestContext { now: "2026-11-24T12:00:00Z".parse().unwrap(), resolve_timeout: jiff::SignedDuration::from_mins(5) }
}

fn fixtures(names: &[&str]) -> Vec<Vec<u8>> {
    names.iter().map(|n| fixture(n).into_bytes()).collect()
}

/// What the HTTP layer hands a parser: the body as text. Invalid UTF-8 is
/// refused before any parser runs, so the fuzzer decodes lossily rather
/// than throwing those inputs away.
fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const ITERATIONS: usize = 3000;

const ALL_JSON: &[&str] = &[
    "alertmanager_webhook_firing.json",
    "alertmanager_webhook_resolved.json",
    "prometheus_v2_alerts.json",
    "prometheus_v2_alerts_resolved.json",
    "grafana_webhook.json",
    "pagerduty_trigger.json",
    "pagerduty_acknowledge.json",
    "pagerduty_resolve.json",
];

#[test]
fn the_alertmanager_parser_never_panics() {
    let seeds = fixtures(&["alertmanager_webhook_firing.json", "alertmanager_webhook_resolved.json"]);
    fuzz("alertmanager", &seeds, ITERATIONS, |b| {
        let _ = alertgate::ingest::alertmanager::parse(&text(b), &ctx());
    });
}

#[test]
fn the_prometheus_parser_never_panics() {
    let seeds = fixtures(&["prometheus_v2_alerts.json", "prometheus_v2_alerts_resolved.json"]);
    fuzz("prometheus", &seeds, ITERATIONS, |b| {
        let _ = alertgate::ingest::prometheus::parse(&text(b), &ctx());
    });
}

#[test]
fn the_grafana_parser_never_panics() {
    fuzz("grafana", &fixtures(&["grafana_webhook.json"]), ITERATIONS, |b| {
        let _ = alertgate::ingest::grafana::parse(&text(b), &ctx());
    });
}

#[test]
fn the_pagerduty_parser_never_panics() {
    let seeds = fixtures(&["pagerduty_trigger.json", "pagerduty_acknowledge.json", "pagerduty_resolve.json"]);
    fuzz("pagerduty", &seeds, ITERATIONS, |b| {
        let _ = alertgate::ingest::pagerduty::parse(&text(b), &ctx());
    });
}

#[test]
fn the_generic_mapping_never_panics() {
    let specs = [
        "alerts: /alerts\nlabels_from: /labels\nannotations_from: /annotations\nfingerprint: /fingerprint\n\
         status: {field: /status, firing: [firing], resolved: [resolved]}\nstarts_at: /startsAt\nends_at: /endsAt\n\
         generator_url: /generatorURL\n",
        "labels_from: /labels\nannotations: {summary: /annotations/summary}\nstarts_at: /startsAt\n",
        "labels: {alertname: /payload/summary, instance: /payload/source}\nfingerprint: /dedup_key\n\
         annotations_from: /payload/custom_details\nstarts_at: /payload/timestamp\n",
    ];
    let mappings: Vec<Mapping> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let spec: MappingSpec = alertgate::yaml::from_str(s).unwrap();
            Mapping::compile(&format!("m{i}"), spec).unwrap()
        })
        .collect();
    let mut seeds = fixtures(ALL_JSON);
    seeds.push(br#"{"items":[{"monitor":{"id":42},"status":0,"time":1764000000}]}"#.to_vec());
    fuzz("generic", &seeds, ITERATIONS, |b| {
        let body = text(b);
        for m in &mappings {
            let _ = m.parse(&body, &ctx());
        }
    });
}

#[test]
fn the_change_parsers_never_panic() {
    let mut seeds = fixtures(&["pagerduty_trigger.json"]);
    seeds.push(
        br#"{"service":"payments","summary":"deploy v1.2.3","start":"2026-11-24T10:00:00Z","end":"2026-11-24T11:00:00Z","link":"https://ci.example/1","labels":{"version":"1.2.3"},"suppress":true,"actor":"ci"}"#
            .to_vec(),
    );
    seeds.push(
        br#"{"routing_key":"k","payload":{"summary":"Build ok","timestamp":"2026-11-24T10:00:00Z","source":"ci","custom_details":{"service":"payments","build":"2","n":3}},"links":[{"href":"https://ci.example/2"}]}"#
            .to_vec(),
    );
    let now: jiff::Timestamp = "2026-11-24T12:00:00Z".parse().unwrap();
    fuzz("change", &seeds, ITERATIONS, |b| {
        let body = text(b);
        let _ = alertgate::ingest::change::parse_api(&body, now);
        let _ = alertgate::ingest::change::parse_pagerduty(&body, now);
    });
}

#[test]
fn matchers_and_durations_never_panic() {
    let matchers: Vec<Vec<u8>> = [
        r#"{alertname="KubePodCrashLooping", namespace=~"prod-.*", severity!="info", team!~"a|b"}"#,
        r#"severity=~"crit.*""#,
        r#""label name"="va\"lue\n", x=bare"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let labels: alertgate::model::LabelSet =
        [("alertname".to_string(), "X".to_string()), ("team".to_string(), "a\nb".to_string())].into();
    fuzz("matchers", &matchers, ITERATIONS, |b| {
        if let Ok(ms) = alertgate::rules::matcher::parse_matchers(&text(b)) {
            for m in ms {
                let _ = m.matches(&labels);
            }
        }
    });
    let durations: Vec<Vec<u8>> =
        ["1h30m", "7d", "500ms", "1y2w3d4h5m6s7ms", "0"].iter().map(|s| s.as_bytes().to_vec()).collect();
    fuzz("duration", &durations, ITERATIONS, |b| {
        let _ = text(b).parse::<alertgate::model::Duration>();
    });
}

/// The rule and config loaders are fuzzed in a child process (this test
/// binary again, running only the ignored `*_child` test): a stack overflow
/// aborts a process outright, and must fail this test with the input that
/// caused it rather than take every other test of the binary down with it.
fn in_child_process(child_test: &str, name: &str) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", child_test, "--ignored", "--nocapture", "--test-threads=1"])
        .output()
        .expect("run the child test");
    if out.status.success() {
        return;
    }
    let running = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hostile-input").join(format!("{name}-running.bin"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let tail = |s: &str| s.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    panic!(
        "the {name} fuzzer's process failed ({}); the input it was on is {} ({} bytes)\nstderr:\n{}\nstdout:\n{}",
        out.status,
        running.display(),
        std::fs::metadata(&running).map(|m| m.len()).unwrap_or(0),
        tail(&stderr),
        tail(&stdout)
    );
}

#[test]
fn the_rule_loader_never_panics() {
    in_child_process("rule_loader_child", "rules");
}

#[test]
#[ignore = "run by the_rule_loader_never_panics in a child process"]
fn rule_loader_child() {
    let seeds = vec![
        std::fs::read(repo_path("rules/default.yaml")).unwrap(),
        std::fs::read(repo_path("tests/fixtures/rules-e2e/rules.yaml")).unwrap(),
    ];
    let dir = tempfile::tempdir().unwrap();
    fuzz("rules", &seeds, 1500, |b| {
        std::fs::write(dir.path().join("rules.yaml"), b).unwrap();
        let _ = alertgate::rules::RuleSet::load_dir(dir.path());
    });
}

#[test]
fn the_config_loader_never_panics() {
    in_child_process("config_loader_child", "config");
}

#[test]
#[ignore = "run by the_config_loader_never_panics in a child process"]
fn config_loader_child() {
    let seeds = vec![std::fs::read(repo_path("examples/alertgate.yml")).unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alertgate.yml");
    fuzz("config", &seeds, 1500, |b| {
        std::fs::write(&path, b).unwrap();
        let _ = alertgate::config::Config::load(&alertgate::config::Overrides {
            config_file: Some(path.clone()),
            ..Default::default()
        });
    });
}

// ---- over HTTP, against the real binary --------------------------------------

/// Every endpoint that takes a JSON body, with a body it accepts.
fn json_endpoints() -> Vec<&'static str> {
    vec![
        "/api/v1/ingest/alertmanager",
        "/api/v2/alerts",
        "/api/v1/ingest/grafana",
        "/v2/enqueue",
        "/api/v1/ingest/generic/hostile",
        "/v2/change/enqueue",
        "/api/v1/changes",
        "/api/v1/silences",
        "/api/v1/problems",
    ]
}

const GENERIC: &str = "generic:\n  hostile:\n    labels_from: /labels\n    annotations_from: /annotations\n";

/// A gateway with a generic mapping, simple rules (one incident per
/// alertname, titled by it) and `extra_config`.
fn start(extra_config: &str) -> (Gateway, tempfile::TempDir) {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("rules.yaml"),
        r#"incident_rules:
  - name: by-name
    matchers: []
    group_by: [alertname]
    title: "{{ labels.alertname }}"
    service: "{{ labels.service }}"
"#,
    )
    .unwrap();
    let g = Gateway::start_with(Options {
        config: Some(format!("{GENERIC}{extra_config}")),
        rules_dir: Some(rules.path().to_path_buf()),
        ..Default::default()
    });
    (g, rules)
}

async fn post_bytes(url: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = common::client()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn assert_alive(g: &Gateway, after: &str) {
    let (status, body) = get(&g.url("/healthz")).await;
    assert_eq!(status, 200, "/healthz after {after}: {body}");
    let (status, body) = get(&g.url("/readyz")).await;
    assert_eq!(status, 200, "/readyz after {after}: {body}");
}

/// Percent-encode everything but RFC 3986's unreserved characters.
fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn fp(labels: &BTreeMap<String, String>) -> String {
    Fingerprint::of_labels(labels).as_str().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_nesting_is_a_4xx_and_the_gateway_lives() {
    let (g, _rules) = start("");
    let shapes = [
        "[".repeat(100_000),
        format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000)),
        "{\"a\":".repeat(100_000),
        format!("{{\"labels\":{}}}", "{\"a\":".repeat(50_000)),
        format!("[{{\"labels\":{{\"alertname\":\"X\"}},\"annotations\":{}}}]", "[".repeat(100_000)),
    ];
    for endpoint in json_endpoints() {
        for (i, body) in shapes.iter().enumerate() {
            let (status, answer) = post(&g.url(endpoint), body).await;
            assert!((400..500).contains(&status), "{endpoint} nesting shape {i}: {status} {answer}");
            assert!(answer["error"].is_string(), "{endpoint} shape {i}: a JSON error: {answer}");
        }
    }
    assert_alive(&g, "100 000 levels of nesting").await;
    assert!(all_alerts(&g, "").await.is_empty(), "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_max_body_is_413_and_one_at_the_limit_is_not() {
    let max: usize = 64 * 1024;
    let (g, _rules) = start(&format!("max_body: {max}\n"));
    // A valid payload padded with JSON whitespace to an exact size.
    let payload = json!([{"labels": {"alertname": "AtTheLimit"}}]).to_string();
    let padded = |size: usize| {
        let mut b = payload.clone().into_bytes();
        b.resize(size, b' ');
        b
    };
    let (status, body) = post_bytes(&g.url("/api/v2/alerts"), padded(max)).await;
    assert_eq!(status, 200, "exactly max_body bytes: {body}");
    for endpoint in json_endpoints() {
        let (status, body) = post_bytes(&g.url(endpoint), padded(max + 1)).await;
        assert_eq!(status, 413, "{endpoint}, max_body + 1 bytes: {body}");
        assert!(body["error"].as_str().is_some_and(|e| e.contains("larger than")), "{endpoint}: {body}");
    }
    // Without a Content-Length (chunked), the limit holds as the body streams in.
    let status = chunked_post(&g.addr, "/api/v2/alerts", &padded(max + 1));
    assert_eq!(status, 413, "a chunked body over max_body");
    let status = chunked_post(&g.addr, "/api/v2/alerts", &padded(max));
    assert_eq!(status, 200, "a chunked body of exactly max_body");
    assert_alive(&g, "oversized bodies").await;
    let stored = all_alerts(&g, "").await;
    assert_eq!(stored.len(), 1, "only the at-the-limit alert: {stored:?}");
}

/// POST `body` with `Transfer-Encoding: chunked` over a raw socket; returns
/// the status code of the answer.
fn chunked_post(addr: &str, path: &str, body: &[u8]) -> u16 {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    for chunk in body.chunks(4096) {
        // The server may answer 413 and close before all chunks are sent.
        if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).is_err()
            || s.write_all(chunk).is_err()
            || s.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    let line = text.lines().next().unwrap_or_default();
    line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("no status in {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_is_400_and_stores_nothing() {
    let (g, _rules) = start("");
    let bad: &[&[u8]] = &[
        b"\xff\xfe",         // never valid
        b"\xc0\xaf",         // overlong '/'
        b"\xed\xa0\x80",     // an encoded surrogate (CESU-8)
        b"\x80",             // a lone continuation byte
        b"\xf4\x90\x80\x80", // past U+10FFFF
        b"\xe2\x82",         // truncated sequence
    ];
    for endpoint in json_endpoints() {
        for seq in bad {
            let prefix = br#"[{"labels":{"alertname":"Bad"#;
            let mut body = prefix.to_vec();
            body.extend_from_slice(seq);
            body.extend_from_slice(br#"UTF8"}}]"#);
            let (status, answer) = post_bytes(&g.url(endpoint), body).await;
            assert_eq!(status, 400, "{endpoint} {seq:x?}: {answer}");
            let error = answer["error"].as_str().unwrap_or_default();
            assert!(error.contains("UTF-8"), "{endpoint} {seq:x?}: the error names the problem: {answer}");
            assert_eq!(answer["detail"]["byte_offset"], prefix.len(), "{endpoint} {seq:x?}: {answer}");
        }
    }
    // A JSON escape of a lone surrogate is valid UTF-8 but no string.
    let (status, answer) = post(&g.url("/api/v2/alerts"), r#"[{"labels":{"alertname":"\ud800"}}]"#).await;
    assert_eq!(status, 400, "{answer}");
    assert_alive(&g, "invalid UTF-8").await;
    assert!(all_alerts(&g, "").await.is_empty(), "nothing was stored");
}

/// Label and annotation values that are awkward as text: all of them must
/// come back exactly as sent.
fn awkward_values() -> Vec<(&'static str, String)> {
    vec![
        ("control", "a\u{1}b\u{7}c\u{8}\u{1b}[31mred\u{1b}[0m\u{7f}".to_string()),
        ("nul", "before\u{0}after\u{0}".to_string()),
        ("rtl", "\u{202e}gnp.exe\u{202c} \u{200f}\u{061c}".to_string()),
        ("newlines", "line1\nline2\r\nline3\rline4\u{2028}\u{2029}".to_string()),
        ("emoji", "🔥🚨 👩‍👩‍👧‍👦 🏳️‍🌈 1️⃣".to_string()),
        ("combining", "e\u{301}\u{302}\u{303} Z\u{351}\u{34d}\u{32a}".to_string()),
        ("zero_width", "a\u{200b}b\u{200d}c\u{feff}d".to_string()),
        ("astral", "\u{10ffff}\u{1d11e}\u{e000}".to_string()),
        ("quotes", r#""'`\\" \" \\\\ {"json": [1]}"#.to_string()),
        ("big", "0123456789abcdef🔥".repeat(10 * 1024 / 20)),
        ("empty", String::new()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_and_annotation_text_is_stored_byte_identical() {
    let (g, _rules) = start("");
    let values = awkward_values();
    assert!(values.iter().any(|(_, v)| v.len() >= 10 * 1024), "a 10 KB value");
    for (i, (what, v)) in values.iter().enumerate() {
        // As Prometheus pushes: the fingerprint is the label hash.
        let lbls = labels(&[("alertname", &format!("Awkward{i}")), ("value", v), ("kind", what)]);
        let annotations = labels(&[("summary", v), ("description", &format!("{what}: {v}"))]);
        let body = json!([{"labels": lbls, "annotations": annotations}]).to_string();
        let (status, answer) = post(&g.url("/api/v2/alerts"), &body).await;
        assert_eq!(status, 200, "{what}: {answer}");
        let want_fp = fp(&lbls);
        let (status, stored) = get(&g.url(&format!("/api/v1/alerts/{want_fp}"))).await;
        assert_eq!(status, 200, "{what}: {stored}");
        let got_labels: BTreeMap<String, String> = serde_json::from_value(stored["labels"].clone()).unwrap();
        let got_annotations: BTreeMap<String, String> = serde_json::from_value(stored["annotations"].clone()).unwrap();
        assert_eq!(got_labels, lbls, "{what}: labels come back byte-identical");
        assert_eq!(got_annotations, annotations, "{what}: annotations come back byte-identical");
        assert_eq!(stored["raw"]["labels"]["value"].as_str(), Some(v.as_str()), "{what}: the raw payload too");

        // As Alertmanager relays: its own fingerprint, the same text.
        let am_fp = format!("am{i:014x}");
        let webhook = json!({
            "version": "4", "status": "firing", "receiver": "r", "groupKey": "{}", "groupLabels": {},
            "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://127.0.0.1:9093",
            "alerts": [{"status": "firing", "labels": lbls.iter().map(|(k, v)| (format!("am_{k}"), v.clone())).collect::<BTreeMap<_, _>>(),
                        "annotations": annotations, "startsAt": "2026-11-24T10:00:00Z",
                        "endsAt": "0001-01-01T00:00:00Z", "generatorURL": v, "fingerprint": am_fp}],
        });
        let (status, answer) = post(&g.url("/api/v1/ingest/alertmanager"), &webhook.to_string()).await;
        assert_eq!(status, 200, "{what} via Alertmanager: {answer}");
        let (status, stored) = get(&g.url(&format!("/api/v1/alerts/{am_fp}"))).await;
        assert_eq!(status, 200, "{what}: {stored}");
        assert_eq!(stored["labels"]["am_value"].as_str(), Some(v.as_str()), "{what} via Alertmanager");
        assert_eq!(stored["annotations"]["summary"].as_str(), Some(v.as_str()), "{what} via Alertmanager");
        // An empty generatorURL is no URL.
        let want_url = Some(v.as_str()).filter(|v| !v.is_empty());
        assert_eq!(stored["generatorURL"].as_str(), want_url, "{what}: generatorURL");
    }
    // And the list shows the same text (the same fingerprints, the same values).
    let listed = all_alerts(&g, "").await;
    assert_eq!(listed.len(), values.len() * 2, "{} alerts listed", listed.len());
    for a in &listed {
        let kind = a["labels"]["kind"].as_str().or(a["labels"]["am_kind"].as_str()).unwrap();
        let (_, v) = values.iter().find(|(w, _)| *w == kind).unwrap();
        let value = a["labels"]["value"].as_str().or(a["labels"]["am_value"].as_str()).unwrap();
        assert_eq!(value, v, "{kind} in the list");
    }
    // Label names are checked: a control character in a name is refused whole.
    let body = json!([{"labels": {"alertname": "Fine"}}, {"labels": {"bad\u{0}name": "x", "alertname": "Y"}}]);
    let (status, answer) = post(&g.url("/api/v2/alerts"), &body.to_string()).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(all_alerts(&g, "").await.len(), values.len() * 2, "the refused payload stored nothing");
    assert_alive(&g, "awkward text").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_text_is_never_run_as_a_template() {
    let (g, _rules) = start("");
    let payloads = [
        "{{ 7*7 }}",
        "{% for x in range(3) %}x{% endfor %}",
        "{{ self }}",
        "{{ labels }}",
        "{{ labels.alertname }}{{ 7*7 }}",
        "{% raw %}{{ 7*7 }}{% endraw %}",
        "{# comment #}visible",
        "{{ range(100000000)|list }}",
        "{%- set x = 7*7 -%}{{ x }}",
        "${7*7} #{7*7} <%= 7*7 %> {{7*'7'}}",
    ];
    let mut alerts = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        alerts.push(json!({
            "labels": {"alertname": p, "service": format!("svc-{i}-{p}"), "n": i.to_string()},
            "annotations": {"summary": p, "description": "{{ annotations.summary }}"},
        }));
    }
    let (status, answer) = post(&g.url("/api/v2/alerts"), &Value::Array(alerts).to_string()).await;
    assert_eq!(status, 200, "{answer}");
    let incidents = common::wait_for(Duration::from_secs(15), "one incident per alert", || async {
        let (status, body) = get(&g.url("/api/v1/incidents?limit=500")).await;
        assert_eq!(status, 200, "{body}");
        let list = body["incidents"].as_array().cloned().unwrap_or_default();
        (list.len() == payloads.len()).then_some(list)
    })
    .await;
    let titles: BTreeSet<&str> = incidents.iter().map(|i| i["title"].as_str().unwrap()).collect();
    let want: BTreeSet<&str> = payloads.iter().copied().collect();
    assert_eq!(titles, want, "every title is the literal label text");
    for inc in &incidents {
        let title = inc["title"].as_str().unwrap();
        assert_ne!(title, "49");
        let i = payloads.iter().position(|p| *p == title).unwrap();
        assert_eq!(inc["service"].as_str(), Some(format!("svc-{i}-{title}").as_str()), "{inc}");
    }
    assert_alive(&g, "template text in labels").await;
}

/// Text that would change a query built by pasting strings together.
const SQL: &[&str] = &[
    "'; DROP TABLE alerts; --",
    "\" OR 1=1 --",
    "' OR '1'='1",
    "%",
    "_",
    "%' --",
    "1; DELETE FROM incidents",
    "*/ DROP TABLE incidents; /*",
    "\\",
    "'",
];

/// Alerts and incidents as they stand, by fingerprint and id, for
/// before/after comparisons of the rows a request must not touch.
async fn snapshot(g: &Gateway) -> (BTreeMap<String, Value>, BTreeMap<i64, Value>) {
    let alerts =
        all_alerts(g, "").await.into_iter().map(|a| (a["fingerprint"].as_str().unwrap().to_string(), a)).collect();
    let (status, body) = get(&g.url("/api/v1/incidents?limit=500")).await;
    assert_eq!(status, 200, "{body}");
    let incidents =
        body["incidents"].as_array().unwrap().iter().map(|i| (i["id"].as_i64().unwrap(), i.clone())).collect();
    (alerts, incidents)
}

fn assert_untouched(
    before: &(BTreeMap<String, Value>, BTreeMap<i64, Value>),
    after: &(BTreeMap<String, Value>, BTreeMap<i64, Value>),
    what: &str,
) {
    for (fp, a) in &before.0 {
        assert_eq!(after.0.get(fp), Some(a), "{what}: alert {fp} changed or vanished");
    }
    for (id, i) in &before.1 {
        assert_eq!(after.1.get(id), Some(i), "{what}: incident {id} changed or vanished");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_metacharacters_are_data_everywhere() {
    let (g, _rules) = start("");
    // Rows the hostile requests must leave alone.
    let baseline: Vec<Value> = (0..5)
        .map(
            |i| json!({"labels": {"alertname": format!("Baseline{i}"), "service": "checkout", "severity": "critical"}}),
        )
        .collect();
    let (status, body) = post(&g.url("/api/v2/alerts"), &Value::Array(baseline).to_string()).await;
    assert_eq!(status, 200, "{body}");
    let before = common::wait_for(Duration::from_secs(15), "the baseline incidents", || async {
        let s = snapshot(&g).await;
        (s.1.len() == 5).then_some(s)
    })
    .await;
    assert_eq!(before.0.len(), 5);

    // 1. In label names and values, and annotations.
    let mut sent = Vec::new();
    for (i, s) in SQL.iter().enumerate() {
        let l = labels(&[("alertname", &format!("Sql{i} {s}")), ("service", s), ("job", s), (s, s)]);
        let body = json!([{"labels": l, "annotations": {"summary": s, *s: s}}]).to_string();
        let (status, answer) = post(&g.url("/api/v2/alerts"), &body).await;
        assert_eq!(status, 200, "{s:?}: {answer}");
        let (status, stored) = get(&g.url(&format!("/api/v1/alerts/{}", fp(&l)))).await;
        assert_eq!(status, 200, "{s:?}: {stored}");
        let got: BTreeMap<String, String> = serde_json::from_value(stored["labels"].clone()).unwrap();
        assert_eq!(got, l, "{s:?}: labels stored as data");
        assert_eq!(stored["annotations"]["summary"].as_str(), Some(*s));
        sent.push(l);
    }
    let after_labels = snapshot(&g).await;
    assert_untouched(&before, &after_labels, "hostile labels");
    assert_eq!(after_labels.0.len(), 5 + SQL.len(), "exactly the new alerts were added");

    // 2. In query parameters: a 4xx, or exactly the rows the text names.
    for (i, s) in SQL.iter().enumerate() {
        let filter = format!("alertname=\"Sql{i} {}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let (status, body) = get(&g.url(&format!("/api/v1/alerts?filter={}", pct(&filter)))).await;
        assert_eq!(status, 200, "filter {filter}: {body}");
        let listed = body["alerts"].as_array().unwrap();
        assert_eq!(listed.len(), 1, "filter {filter} selects exactly its alert: {body}");
        assert_eq!(listed[0]["fingerprint"].as_str(), Some(fp(&sent[i]).as_str()));

        let (status, body) = get(&g.url(&format!("/api/v1/alerts?source={}", pct(s)))).await;
        assert_eq!(status, 200, "source {s:?}: {body}");
        assert_eq!(body["alerts"].as_array().unwrap().len(), 0, "source {s:?} is no source: {body}");

        let (status, body) = get(&g.url(&format!("/api/v1/alerts?fingerprint={}", pct(s)))).await;
        assert!(status == 200 || status == 400, "fingerprint {s:?}: {status} {body}");
        if status == 200 {
            assert_eq!(body["alerts"].as_array().unwrap().len(), 0, "fingerprint {s:?}: {body}");
        }

        for (param, path) in
            [("state", "/api/v1/alerts"), ("state", "/api/v1/incidents"), ("sort", "/api/v1/incidents")]
        {
            let (status, body) = get(&g.url(&format!("{path}?{param}={}", pct(s)))).await;
            assert_eq!(status, 400, "{path}?{param}={s:?}: {body}");
        }
        for param in ["cursor", "limit", "priority", "since"] {
            let (status, body) = get(&g.url(&format!("/api/v1/incidents?{param}={}", pct(s)))).await;
            assert_eq!(status, 400, "incidents ?{param}={s:?}: {body}");
        }

        // `service` selects the incidents whose service is exactly this text.
        let (status, body) = get(&g.url(&format!("/api/v1/incidents?service={}", pct(s)))).await;
        assert_eq!(status, 200, "service {s:?}: {body}");
        let list = body["incidents"].as_array().unwrap();
        assert_eq!(list.len(), 1, "service {s:?} selects only its own incident: {body}");
        assert_eq!(list[0]["service"].as_str(), Some(*s));
        for param in ["assignee", "rule"] {
            let (status, body) = get(&g.url(&format!("/api/v1/incidents?{param}={}", pct(s)))).await;
            assert_eq!(status, 200, "{param} {s:?}: {body}");
            assert_eq!(body["incidents"].as_array().unwrap().len(), 0, "{param} {s:?} matches nothing: {body}");
        }
        let (status, body) = get(&g.url(&format!("/api/v1/problems?state={}", pct(s)))).await;
        assert_eq!(status, 400, "problems ?state={s:?}: {body}");
        let (status, body) = get(&g.url(&format!("/api/v1/changes?service={}", pct(s)))).await;
        assert_eq!(status, 200, "changes ?service={s:?}: {body}");
        assert_eq!(body["changes"].as_array().unwrap().len(), 0, "no change recorded yet: {body}");
    }
    let after_queries = snapshot(&g).await;
    assert_eq!(after_queries, after_labels, "queries changed nothing");

    // 3. In silence matchers (they match only the hostile alerts' text).
    for (i, s) in SQL.iter().enumerate() {
        let quoted = s.replace('\\', "\\\\").replace('"', "\\\"");
        let matchers = [format!("job=\"{quoted}\""), format!("alertname=~\"Sql{i} .*\"")];
        let body = json!({"matchers": matchers, "endsAt": "2099-01-01T00:00:00Z", "createdBy": s, "comment": s});
        let (status, answer) = post(&g.url("/api/v1/silences"), &body.to_string()).await;
        assert_eq!(status, 201, "silence {s:?}: {answer}");
        assert_eq!(answer["createdBy"].as_str(), Some(*s), "{answer}");
        assert_eq!(answer["comment"].as_str(), Some(*s), "{answer}");
    }
    let (status, body) = get(&g.url("/api/v1/silences")).await;
    assert_eq!(status, 200, "{body}");
    let silences = body["silences"].as_array().unwrap();
    assert_eq!(silences.len(), SQL.len(), "{body}");
    for s in SQL {
        assert!(silences.iter().any(|x| x["comment"].as_str() == Some(*s)), "silence {s:?} listed: {body}");
    }

    // 4. In change summaries, services, links and labels.
    for s in SQL {
        let body = json!({"service": s, "summary": format!("deploy {s}"), "link": s, "labels": {*s: s}, "actor": "ci"});
        let (status, answer) = post(&g.url("/api/v1/changes"), &body.to_string()).await;
        assert_eq!(status, 201, "change {s:?}: {answer}");
        let (status, listed) = get(&g.url(&format!("/api/v1/changes?service={}", pct(s)))).await;
        assert_eq!(status, 200, "{listed}");
        let changes = listed["changes"].as_array().unwrap();
        assert_eq!(changes.len(), 1, "service {s:?} lists only its own change: {listed}");
        assert_eq!(changes[0]["summary"].as_str(), Some(format!("deploy {s}").as_str()), "{listed}");
        assert_eq!(changes[0]["labels"][*s].as_str(), Some(*s), "{listed}");
    }

    // 5. In problem titles, keys, root causes and workarounds.
    for s in SQL {
        let body = json!({"actor": "alice", "title": format!("title {s}"), "key": format!("key {s}"),
                          "root_cause": format!("cause {s}"), "workaround": format!("work {s}")});
        let (status, answer) = post(&g.url("/api/v1/problems"), &body.to_string()).await;
        assert_eq!(status, 201, "problem {s:?}: {answer}");
        let id = answer["id"].as_i64().or(answer["problem"]["id"].as_i64()).unwrap_or_else(|| panic!("{answer}"));
        let (status, got) = get(&g.url(&format!("/api/v1/problems/{id}"))).await;
        assert_eq!(status, 200, "{got}");
        let text = got.to_string();
        for want in [format!("title {s}"), format!("cause {s}"), format!("work {s}")] {
            assert!(text.contains(&serde_json::to_string(&want).unwrap()), "{want:?} stored as data: {got}");
        }
    }
    let (status, body) = get(&g.url("/api/v1/problems?limit=500")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["problems"].as_array().unwrap().len(), SQL.len(), "{body}");

    // 6. In notes and actors on an incident of the hostile alerts.
    let (_, list) = get(&g.url(&format!("/api/v1/incidents?service={}", pct(SQL[0])))).await;
    let hostile_incident = list["incidents"][0]["id"].as_i64().unwrap();
    for s in SQL {
        let (status, answer) = post(
            &g.url(&format!("/api/v1/incidents/{hostile_incident}/notes")),
            &json!({"actor": "bob", "text": s}).to_string(),
        )
        .await;
        assert!((200..300).contains(&status), "note {s:?}: {status} {answer}");
    }
    let (status, detail) = get(&g.url(&format!("/api/v1/incidents/{hostile_incident}"))).await;
    assert_eq!(status, 200, "{detail}");
    for s in SQL {
        let notes = detail["timeline"].as_array().unwrap().iter().filter(|e| e["kind"] == "note");
        assert_eq!(notes.filter(|e| e["message"].as_str() == Some(*s)).count(), 1, "note {s:?} in the timeline");
    }

    // Every baseline row is as it was, and every table still answers.
    let after = snapshot(&g).await;
    assert_untouched(&before, &after, "after every hostile request");
    assert_eq!(after.0.len(), 5 + SQL.len());
    for path in ["/api/v1/alerts", "/api/v1/incidents", "/api/v1/silences", "/api/v1/changes", "/api/v1/problems"] {
        let (status, body) = get(&g.url(path)).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    assert_alive(&g, "SQL metacharacters").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_pagerduty_dedup_key_is_refused_cleanly_or_retrievable() {
    let (g, _rules) = start("");
    let event = |key: &str, action: &str| {
        json!({
            "routing_key": "0123456789abcdef0123456789abcdef", "event_action": action, "dedup_key": key,
            "payload": {"summary": "hostile key", "source": "db-1", "severity": "critical"},
        })
        .to_string()
    };
    // 10 KB of URL syntax: longer than any fingerprint may be.
    let long: String = "/?#%&=+ ;.. %2F%00".chars().cycle().take(10 * 1024).collect();
    let (status, answer) = post(&g.url("/v2/enqueue"), &event(&long, "trigger")).await;
    match status {
        400 => {
            assert_eq!(answer["status"], "invalid event", "{answer}");
            assert!(answer.to_string().contains("dedup_key"), "the error names dedup_key: {answer}");
            assert!(all_alerts(&g, "").await.is_empty(), "nothing stored");
        }
        202 => {
            let (status, stored) = raw_get(&g.addr, &format!("/api/v1/alerts/{}", pct(&long)));
            assert_eq!(status, 200, "{stored}");
            assert_eq!(stored["fingerprint"].as_str(), Some(long.as_str()));
        }
        other => panic!("a 10 KB dedup_key: {other} {answer}"),
    }

    // The longest key accepted, full of characters URLs treat specially.
    let mut key: String = "/?#%&=+ ;..\\\"'<>é🔥".chars().cycle().take(200).collect();
    while key.len() > 255 {
        key.pop();
    }
    for k in [key.as_str(), "..", "/", "%2F", "?a=b#c", "%", "a/b/../c"] {
        let (status, answer) = post(&g.url("/v2/enqueue"), &event(k, "trigger")).await;
        assert_eq!(status, 202, "dedup_key {k:?}: {answer}");
        assert_eq!(answer["dedup_key"].as_str(), Some(k), "{answer}");
        // Over a raw socket: an HTTP client library would resolve `..` and
        // `.` (even percent-encoded) as path segments before sending.
        let (status, stored) = raw_get(&g.addr, &format!("/api/v1/alerts/{}", pct(k)));
        assert_eq!(status, 200, "GET /api/v1/alerts/{{{k:?}}}: {stored}");
        assert_eq!(stored["fingerprint"].as_str(), Some(k), "{stored}");
        let (status, listed) = get(&g.url(&format!("/api/v1/alerts?fingerprint={}", pct(k)))).await;
        assert_eq!(status, 200, "{listed}");
        assert_eq!(listed["alerts"].as_array().unwrap().len(), 1, "?fingerprint={k:?}: {listed}");
        let (status, answer) = post(&g.url("/v2/enqueue"), &event(k, "resolve")).await;
        assert_eq!(status, 202, "resolve {k:?}: {answer}");
        let (_, stored) = raw_get(&g.addr, &format!("/api/v1/alerts/{}", pct(k)));
        assert_eq!(stored["status"], "resolved", "{k:?}: {stored}");
    }
    assert_alive(&g, "hostile dedup keys").await;
}

/// `GET target` over a raw socket, exactly as written; status and JSON body.
fn raw_get(addr: &str, target: &str) -> (u16, Value) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap();
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    let body = if chunked {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&after[..n]);
            rest = &after[n + 2..];
        }
        out
    } else {
        body.to_string()
    };
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// POST that reports a dropped connection instead of panicking on it.
async fn try_post(url: &str, body: &str) -> Result<(u16, Value), String> {
    let resp = common::client()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("no answer: {e:?}"))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| format!("no body: {e:?}"))?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pagerduty_event_with_odd_json_in_fields_it_ignores_gets_an_answer() {
    // JSON that a typed parse skips but a generic `Value` cannot hold: a
    // number past f64 and an escaped lone surrogate, in fields PagerDuty
    // defines (`links`, `images`) or in unknown ones.
    let (g, _rules) = start("");
    let base = json!({
        "routing_key": "0123456789abcdef0123456789abcdef", "event_action": "trigger",
        "payload": {"summary": "odd json", "source": "db-1", "severity": "info"},
    })
    .to_string();
    let cases = [
        (r#""links": [{"href": "https://example.com/", "text": 1e400}]"#, "links[0].text 1e400"),
        (r#""images": [{"src": "https://example.com/x.png", "alt": "\ud800"}]"#, "images[0].alt lone surrogate"),
        (r#""extra": -1e999"#, "an unknown field -1e999"),
        (r#""extra\udfff": 1"#, "a lone surrogate in an unknown key"),
    ];
    let mut failures = Vec::new();
    for (i, (field, what)) in cases.iter().enumerate() {
        let body = format!("{}, \"dedup_key\": \"odd-{i}\", {field}}}", &base[..base.len() - 1]);
        match try_post(&g.url("/v2/enqueue"), &body).await {
            Ok((202, answer)) => {
                let (status, stored) = get(&g.url(&format!("/api/v1/alerts/odd-{i}"))).await;
                if status != 200 {
                    failures.push(format!("{what}: accepted ({answer}) but GET answers {status} {stored}"));
                }
            }
            Ok((400, answer)) if answer["status"] == "invalid event" => {}
            Ok((status, answer)) => failures.push(format!("{what}: {status} {answer}")),
            Err(e) => failures.push(format!("{what}: {e} (body {body})")),
        }
    }
    assert_alive(&g, "odd JSON in PagerDuty events").await;
    assert!(
        failures.is_empty(),
        "each event must be accepted (202) or refused as an invalid event (400):\n{}",
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_file_with_a_deeply_nested_template_is_refused_not_fatal() {
    // The template counterpart of 100 000 `[`: a title of 100 000 unary
    // minus signs. Reload and `alertgate check` must refuse it with errors.
    let (g, rules) = start("");
    let deep = format!(
        "incident_rules:\n  - name: deep\n    matchers: ['alertname=\"Deep\"']\n    title: \"{{{{ {}labels.x }}}}\"\n",
        "- ".repeat(100_000)
    );
    std::fs::write(rules.path().join("zz-deep.yaml"), &deep).unwrap();
    let answer = try_post(&g.url("/-/reload"), "").await;
    let alive = try_post(&g.url("/api/v2/alerts"), "[]").await;
    std::fs::remove_file(rules.path().join("zz-deep.yaml")).unwrap();

    let check = tempfile::tempdir().unwrap();
    std::fs::write(check.path().join("rules.yaml"), &deep).unwrap();
    let (status, _, stderr) = common::run_to_exit(
        std::process::Command::new(common::BIN).args(["check", "--rules", &check.path().display().to_string()]),
        Duration::from_secs(60),
    );
    assert!(
        matches!(answer, Ok((400, _))),
        "POST /-/reload with a 100 000-level template: want 400, got {answer:?}; the gateway afterwards: {alive:?}\n{}",
        g.stderr().lines().rev().take(5).collect::<Vec<_>>().join("\n")
    );
    assert_alive(&g, "a refused reload").await;
    assert_eq!(status.code(), Some(1), "alertgate check: want exit 1 with the errors, got {status}: {stderr}");
}
