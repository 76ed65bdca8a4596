//! Authentication, roles, rate limits, the audit log and TLS, against the
//! real binary: strangers are refused, each role does only its part, a
//! flooding sender does not slow another, every mutation is audited with
//! its actor and address, and no token text leaks into logs or answers.
mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{BIN, Gateway, Options, run_to_exit, wait_for};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const INGEST: &str = "ingest-token-0123456789abcdef";
const VIEWER: &str = "viewer-token-0123456789abcdef";
const RESPONDER: &str = "alice-token-0123456789abcdef";
const ADMIN: &str = "root-token-0123456789abcdef";
const OTHER_INGEST: &str = "second-sender-0123456789abcdef";
/// A third ingest token, for the PagerDuty sender of the flood test.
const PD_SENDER: &str = "pagerduty-sender-0123456789abcdef";

fn sha(t: &str) -> String {
    hex::encode(Sha256::digest(t.as_bytes()))
}

/// A config with one token of each role; the responder's comes from a
/// file, the others as hashes. `extra` is appended (limits, tls).
fn start(extra: &str) -> (Gateway, tempfile::TempDir) {
    start_on(extra, None)
}

/// [`start`], on a controlled clock standing at `clock` if given.
fn start_on(extra: &str, clock: Option<jiff::Timestamp>) -> (Gateway, tempfile::TempDir) {
    let secrets = tempfile::tempdir().unwrap();
    let alice = secrets.path().join("alice");
    std::fs::write(&alice, format!("{RESPONDER}\n")).unwrap();
    let config = format!(
        "auth:
  tokens:
    - {{name: alertmanager, role: ingest, token_sha256: \"{}\"}}
    - {{name: ci, role: ingest, token_sha256: \"{}\"}}
    - {{name: pd, role: ingest, token_sha256: \"{}\"}}
    - {{name: vic, role: viewer, token_sha256: \"{}\"}}
    - {{name: alice, role: responder, token_file: \"{}\"}}
    - {{name: root, role: admin, token_sha256: \"{}\"}}
{extra}",
        sha(INGEST),
        sha(OTHER_INGEST),
        sha(PD_SENDER),
        sha(VIEWER),
        alice.display(),
        sha(ADMIN)
    );
    (Gateway::start_with(Options { config: Some(config), test_clock: clock, ..Default::default() }), secrets)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

async fn call(method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut req = client().request(method.parse().unwrap(), url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn alert(name: &str) -> Value {
    json!([{ "labels": { "alertname": name, "severity": "critical", "service": "payments" } }])
}

#[tokio::test]
async fn each_role_does_its_part_and_strangers_none() {
    let (g, _secrets) = start("");
    let u = |p: &str| g.url(p);

    // Health checks are open; everything else needs a token.
    assert_eq!(call("GET", &u("/healthz"), None, None).await.0, 200);
    assert_eq!(call("GET", &u("/readyz"), None, None).await.0, 200);
    let (status, body) = call("POST", &u("/api/v2/alerts"), None, Some(alert("NoToken"))).await;
    assert_eq!(status, 401, "{body}");
    let resp = client().get(u("/api/v1/incidents")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    assert_eq!(call("GET", &u("/metrics"), None, None).await.0, 401);
    assert_eq!(call("POST", &u("/api/v2/alerts"), Some("not-a-token-at-all-xx"), Some(alert("Bad"))).await.0, 401);

    // ingest: posts alerts, reads nothing.
    let (status, body) = call("POST", &u("/api/v2/alerts"), Some(INGEST), Some(alert("PayDown"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(call("GET", &u("/api/v1/incidents"), Some(INGEST), None).await.0, 403);
    // Alertmanager's basic_auth: the password is the token.
    let am = r#"{"version":"4","status":"firing","receiver":"alertgate","groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://127.0.0.1:9093","groupKey":"{}:{}","alerts":[{"status":"firing","labels":{"alertname":"AmDown","service":"payments"},"annotations":{},"startsAt":"2026-11-24T10:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"0123456789abcdef"}]}"#;
    let resp = client()
        .post(u("/api/v1/ingest/alertmanager"))
        .basic_auth("alertmanager", Some(INGEST))
        .header("content-type", "application/json")
        .body(am)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());

    // viewer: reads, acts on nothing.
    let incident = wait_for(Duration::from_secs(10), "the incident", || async {
        let (_, page) = call("GET", &u("/api/v1/incidents"), Some(VIEWER), None).await;
        page["incidents"].as_array()?.iter().find(|i| i["title"] == "PayDown").and_then(|i| i["id"].as_i64())
    })
    .await;
    assert_eq!(call("GET", &u("/metrics"), Some(VIEWER), None).await.0, 200);
    let ack = u(&format!("/api/v1/incidents/{incident}/acknowledge"));
    assert_eq!(call("POST", &ack, Some(VIEWER), Some(json!({}))).await.0, 403);
    assert_eq!(call("POST", &u("/api/v2/alerts"), Some(VIEWER), Some(alert("ViewerPost"))).await.0, 403);

    // responder: acknowledges, recorded under the token's name; no silences.
    let (status, inc) = call("POST", &ack, Some(RESPONDER), Some(json!({ "comment": "on it" }))).await;
    assert_eq!(status, 200, "{inc}");
    let entry = inc["timeline"].as_array().unwrap().iter().find(|e| e["kind"] == "acknowledged").unwrap();
    assert_eq!(entry["actor"], "alice");
    let silence = json!({ "matchers": ["alertname=\"PayDown\""], "endsAt": "2099-01-01T00:00:00Z", "comment": "x" });
    assert_eq!(call("POST", &u("/api/v1/silences"), Some(RESPONDER), Some(silence.clone())).await.0, 403);
    assert_eq!(call("GET", &u("/api/v1/audit"), Some(RESPONDER), None).await.0, 403);

    // admin: silences, reload and the audit log.
    let (status, s) = call("POST", &u("/api/v1/silences"), Some(ADMIN), Some(silence)).await;
    assert_eq!(status, 201, "{s}");
    assert_eq!(s["createdBy"], "root");
    assert_eq!(call("POST", &u("/-/reload"), Some(ADMIN), None).await.0, 200);
    let (status, audit) = call("GET", &u("/api/v1/audit"), Some(ADMIN), None).await;
    assert_eq!(status, 200, "{audit}");
    let entries = audit["entries"].as_array().unwrap();
    let acked = entries.iter().find(|e| e["action"] == "incident.acknowledge").unwrap_or_else(|| panic!("{audit:#}"));
    assert_eq!(acked["actor"], "alice");
    assert_eq!(acked["source"], "127.0.0.1");
    assert_eq!(acked["target"], format!("incident:{incident}"));
    assert_eq!(acked["before"]["state"], "triggered");
    assert_eq!(acked["after"]["state"], "acknowledged");
    assert_eq!(acked["detail"]["comment"], "on it");
    let created = entries.iter().find(|e| e["action"] == "silence.create").unwrap();
    assert_eq!(created["actor"], "root");
    assert!(created["after"]["matchers"].is_array(), "{created}");
    assert!(entries.iter().any(|e| e["action"] == "rules.reload" && e["actor"] == "root"));
    let (_, only) = call("GET", &u(&format!("/api/v1/audit?target=incident:{incident}")), Some(ADMIN), None).await;
    assert_eq!(only["entries"].as_array().unwrap().len(), 1, "{only}");

    // PagerDuty senders authenticate with the routing_key.
    let pd = |key: &str| {
        json!({ "routing_key": key, "event_action": "trigger",
                "payload": { "summary": "disk full", "source": "db1", "severity": "critical" } })
    };
    assert_eq!(call("POST", &u("/v2/enqueue"), None, Some(pd(INGEST))).await.0, 202);
    assert_eq!(call("POST", &u("/v2/enqueue"), None, Some(pd("wrong-key-0123456789abcdef"))).await.0, 401);
    assert_eq!(call("POST", &u("/v2/enqueue"), None, Some(pd(VIEWER))).await.0, 403);
    let change = json!({ "routing_key": OTHER_INGEST, "payload": { "summary": "deploy", "source": "payments" } });
    assert_eq!(call("POST", &u("/v2/change/enqueue"), None, Some(change)).await.0, 202);
    let (_, changes) = call("GET", &u("/api/v1/changes"), Some(VIEWER), None).await;
    assert_eq!(changes["changes"][0]["createdBy"], "ci", "the change names the token that sent it");

    // The command line sends ALERTGATE_TOKEN.
    let list = |token: Option<&str>| {
        let mut cmd = Command::new(BIN);
        cmd.args(["incidents", "list", "--url", &g.url("")]).env_remove("ALERTGATE_TOKEN");
        if let Some(t) = token {
            cmd.env("ALERTGATE_TOKEN", t);
        }
        run_to_exit(&mut cmd, Duration::from_secs(30))
    };
    let (status, out, err) = list(Some(VIEWER));
    assert!(status.success() && out.contains("PayDown"), "{out}{err}");
    let (status, _, err) = list(None);
    assert!(!status.success() && err.contains("401"), "{err}");

    // No token text anywhere the gateway speaks.
    let (_, audit) = call("GET", &u("/api/v1/audit?limit=1000"), Some(ADMIN), None).await;
    let metrics = client().get(u("/metrics")).bearer_auth(VIEWER).send().await.unwrap().text().await.unwrap();
    for t in [INGEST, VIEWER, RESPONDER, ADMIN, OTHER_INGEST] {
        assert!(!g.stderr().contains(t), "the log holds a token");
        assert!(!audit.to_string().contains(t), "the audit log holds a token");
        assert!(!metrics.contains(t), "the metrics hold a token");
    }
}

#[tokio::test]
async fn a_flooding_sender_is_limited_and_does_not_slow_another() {
    let (g, _secrets) = start("limits:\n  ingest: {per_second: 5, burst: 5}\n  api: {per_second: 50, burst: 50}\n");
    let url = g.url("/api/v2/alerts");
    // The flood: 60 requests at once from one token.
    let flood: Vec<_> = (0..60)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                let resp = client()
                    .post(&url)
                    .bearer_auth(INGEST)
                    .header("content-type", "application/json")
                    .body(alert(&format!("Flood{i}")).to_string())
                    .send()
                    .await
                    .unwrap();
                (resp.status().as_u16(), resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned()))
            })
        })
        .collect();
    // Meanwhile the other sender, within its own budget.
    let mut other = Vec::new();
    for i in 0..5 {
        let started = Instant::now();
        let (status, body) = call("POST", &url, Some(OTHER_INGEST), Some(alert(&format!("Other{i}")))).await;
        other.push((status, started.elapsed()));
        assert_eq!(status, 200, "the second sender is not limited by the first: {body}");
    }
    let mut limited = 0;
    let mut accepted = 0;
    for f in flood {
        let (status, retry_after) = f.await.unwrap();
        match status {
            200 => accepted += 1,
            429 => {
                limited += 1;
                let secs: u64 = retry_after.expect("Retry-After on a 429").parse().unwrap();
                assert!((1..=2).contains(&secs), "Retry-After {secs}");
            }
            s => panic!("unexpected status {s}"),
        }
    }
    assert!(limited >= 40, "the flood was limited: {accepted} accepted, {limited} limited");
    assert!(accepted >= 5, "the burst went through: {accepted}");
    for (_, took) in &other {
        assert!(*took < Duration::from_secs(2), "the second sender was slowed: {other:?}");
    }
    // A PagerDuty sender is limited under its own token, not under the
    // address that others (or a guesser) share.
    let pd = |key: &str| {
        json!({ "routing_key": key, "event_action": "trigger",
                                   "payload": { "summary": "s", "source": "h", "severity": "info" } })
    };
    let enqueue = g.url("/v2/enqueue");
    let mut refused = Vec::new();
    for _ in 0..20 {
        refused.push(call("POST", &enqueue, None, Some(pd("guessed-key-0123456789abcdef"))).await.0);
    }
    assert!(refused.iter().all(|s| *s == 401 || *s == 429), "{refused:?}");
    assert!(refused.contains(&429), "guessing is rate limited: {refused:?}");
    let (status, body) = call("POST", &enqueue, None, Some(pd(PD_SENDER))).await;
    assert_eq!(status, 202, "a valid sender from the same address is not blocked: {body}");

    // Refusals are counted by class.
    let metrics = client().get(g.url("/metrics")).bearer_auth(VIEWER).send().await.unwrap().text().await.unwrap();
    let counted = metrics
        .lines()
        .find(|l| l.starts_with("alertgate_rate_limited_total{class=\"ingest\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    assert!(counted.is_some_and(|c| c >= limited as f64), "{metrics}");
}

#[test]
fn without_tokens_only_loopback_is_served() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let args = ["serve", "--listen", "0.0.0.0:0", "--data-dir", data.to_str().unwrap()];
    let (status, out, err) = run_to_exit(
        Command::new(BIN).args(args).arg("--rules").arg(common::repo_path("rules")),
        Duration::from_secs(30),
    );
    assert!(!status.success(), "{out}");
    assert!(err.contains("without API tokens") && err.contains("--allow-unauthenticated"), "{err}");
    assert!(!out.contains("listening"), "{out}");
    // The explicit flag serves anyway, saying so.
    let log = tmp.path().join("stderr.log");
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--rules")
        .arg(common::repo_path("rules"))
        .arg("--allow-unauthenticated")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let addr = common::listening_addr(&mut child);
    let _ = child.kill();
    let _ = child.wait();
    let addr = addr.expect("it serves with --allow-unauthenticated");
    assert!(addr.starts_with("0.0.0.0:"), "{addr}");
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(err.contains("--allow-unauthenticated"), "it warns: {err}");
}

fn self_signed(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        // An end-entity certificate (webpki refuses a CA certificate as a server's).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl (Debian package openssl) is needed for the TLS test");
    assert!(status.success());
    (cert, key)
}

fn https_client(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).unwrap();
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test]
async fn tls_serves_https_and_picks_up_a_new_certificate_on_sighup() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(tmp.path(), "live");
    let (first_cert, _) = (cert.clone(), key.clone());
    let first = tmp.path().join("first.crt");
    std::fs::copy(&first_cert, &first).unwrap();
    let (g, _secrets) =
        start(&format!("tls: {{cert_file: \"{}\", key_file: \"{}\"}}\n", cert.display(), key.display()));
    let url = format!("https://{}/healthz", g.addr.replace("127.0.0.1", "localhost"));
    let resp = https_client(&first).get(&url).send().await.expect("https with the first certificate");
    assert_eq!(resp.status(), 200);
    // Plain HTTP on the TLS port gets nothing useful.
    assert!(client().get(g.url("/healthz")).send().await.map(|r| r.status().as_u16() != 200).unwrap_or(true));

    // A renewed certificate in place, then SIGHUP.
    let renewed = tmp.path().join("renewed");
    std::fs::create_dir(&renewed).unwrap();
    let (new_cert, new_key) = self_signed(&renewed, "live");
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    Command::new("kill").args(["-HUP", &g.child.id().to_string()]).status().unwrap();
    wait_for(Duration::from_secs(10), "the renewed certificate", || async {
        https_client(&new_cert).get(&url).send().await.ok().filter(|r| r.status() == 200).map(|_| ())
    })
    .await;
    assert!(https_client(&first).get(&url).send().await.is_err(), "the old certificate is no longer served");
}

/// The README's permission table: (route, [GET, POST, PATCH, DELETE] cells).
fn readme_permissions() -> Vec<(String, [String; 4])> {
    let readme = std::fs::read_to_string(common::repo_path("README.md")).unwrap();
    let start = readme.find("**Permissions by route.**").expect("the README has a permission table");
    readme[start..]
        .lines()
        .skip_while(|l| !l.starts_with("| route |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<String> = l.trim_matches('|').split('|').map(|c| c.trim().to_string()).collect();
            assert_eq!(cells.len(), 5, "{l}");
            (cells[0].trim_matches('`').to_string(), [0, 1, 2, 3].map(|i| cells[i + 1].clone()))
        })
        .collect()
}

#[test]
fn the_readme_permission_table_is_the_gateways() {
    let readme = readme_permissions();
    let code: Vec<(String, [String; 4])> = alertgate::auth::ROUTES
        .iter()
        .map(|r| {
            let cell = |m: &str| {
                r.methods.iter().find(|(x, _)| *x == m).map_or("—".to_string(), |(_, p)| p.as_str().to_string())
            };
            (r.route.to_string(), ["GET", "POST", "PATCH", "DELETE"].map(cell))
        })
        .collect();
    assert_eq!(readme, code);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_method_and_role_gets_what_the_readme_says() {
    let (g, _secrets) = start("");
    let callers: [(&str, Option<&str>); 6] = [
        ("nobody", None),
        ("a stranger", Some("not-a-token-at-all-xx")),
        ("ingest", Some(INGEST)),
        ("viewer", Some(VIEWER)),
        ("responder", Some(RESPONDER)),
        ("admin", Some(ADMIN)),
    ];
    let allows = |role: &str, need: &str| match need {
        "open" => true,
        "ingest" => matches!(role, "ingest" | "admin"),
        "viewer" => matches!(role, "viewer" | "responder" | "admin"),
        "responder" => matches!(role, "responder" | "admin"),
        "admin" => role == "admin",
        other => panic!("unknown role {other:?} in the README's table"),
    };
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (route, cells) in readme_permissions() {
        let path = route
            .replace("{id}", "999999")
            .replace("{name}", "nosuch")
            .replace("{fingerprint}", "0123456789abcdef")
            .replace("{action}", "acknowledge");
        for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] {
            let need = match method {
                "GET" | "HEAD" => &cells[0],
                "POST" => &cells[1],
                "PATCH" => &cells[2],
                "DELETE" => &cells[3],
                _ => "—",
            };
            for (role, token) in callers {
                let mut req = client().request(method.parse().unwrap(), g.url(&path));
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                if matches!(method, "POST" | "PUT" | "PATCH") {
                    req = req.header("content-type", "application/json").body("{}");
                }
                let resp = req.send().await.unwrap();
                let status = resp.status().as_u16();
                let challenged = resp.headers().contains_key("www-authenticate");
                checked += 1;
                let ok = match (need, role) {
                    ("—", _) => status == 405,
                    // A calendar feed takes no token but answers only with its key.
                    ("open", _) if path.ends_with(".ics") => status == 404,
                    ("open", _) => status < 400,
                    (_, "nobody" | "a stranger") => status == 401 && challenged,
                    (need, role) if allows(role, need) => ![401, 403, 405].contains(&status),
                    _ => status == 403,
                };
                if !ok {
                    wrong.push(format!("{method} {path} as {role} (needs {need}): {status}"));
                }
                if status == 401 && !challenged {
                    wrong.push(format!("{method} {path} as {role}: 401 without WWW-Authenticate"));
                }
            }
        }
    }
    assert!(checked > 800, "{checked}");
    assert!(wrong.is_empty(), "{} of {checked} answers differ from the README:\n{}", wrong.len(), wrong.join("\n"));
}

/// `/-/clock` exists only on a gateway started with `--test-clock`; there,
/// only an admin reads or moves it, and only forward.
#[tokio::test]
async fn the_test_clock_exists_only_when_asked_for_and_only_admins_move_it() {
    let (g, _secrets) = start("");
    let (status, body) = call("GET", &g.url("/-/clock"), Some(ADMIN), None).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = call("POST", &g.url("/-/clock"), Some(ADMIN), Some(json!({"advance": "1h"}))).await;
    assert_eq!(status, 404, "{body}");

    let t0 = common::t0();
    let (g, _secrets) = start_on("", Some(t0));
    let url = g.url("/-/clock");
    let at =
        |body: &Value| body["now"].as_str().unwrap_or_else(|| panic!("{body}")).parse::<jiff::Timestamp>().unwrap();
    assert_eq!(call("GET", &url, None, None).await.0, 401);
    assert_eq!(call("POST", &url, None, Some(json!({"advance": "1h"}))).await.0, 401);
    for token in [INGEST, VIEWER, RESPONDER] {
        assert_eq!(call("GET", &url, Some(token), None).await.0, 403, "{token}");
        assert_eq!(call("POST", &url, Some(token), Some(json!({"advance": "1h"}))).await.0, 403, "{token}");
    }
    let (status, body) = call("GET", &url, Some(ADMIN), None).await;
    assert_eq!((status, at(&body)), (200, t0), "{body}");
    let (status, body) = call("POST", &url, Some(ADMIN), Some(json!({"advance": "15m"}))).await;
    assert_eq!((status, at(&body)), (200, t0 + jiff::SignedDuration::from_mins(15)), "{body}");
    let later = t0 + jiff::SignedDuration::from_hours(1);
    let (status, body) = call("POST", &url, Some(ADMIN), Some(json!({"to": later}))).await;
    assert_eq!((status, at(&body)), (200, later), "{body}");

    // Never backwards; one way of saying where to, and a readable one.
    let (status, body) = call("POST", &url, Some(ADMIN), Some(json!({"to": t0}))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("never goes backwards"), "{body}");
    for wrong in [json!({}), json!({"advance": "1m", "to": later}), json!({"advance": "soon"}), json!({"to": "noon"})] {
        let (status, body) = call("POST", &url, Some(ADMIN), Some(wrong.clone())).await;
        assert_eq!(status, 400, "{wrong}: {body}");
    }
    let (status, body) = call("GET", &url, Some(ADMIN), None).await;
    assert_eq!((status, at(&body)), (200, later), "refused moves change nothing: {body}");
}
