//! The OpenAPI document (`GET /api/v1/openapi.json`): it is OpenAPI 3.1,
//! it lists exactly the routes the gateway serves with the permissions
//! `auth::ROUTES` gives them, and schemathesis, driving the real gateway
//! from it over every operation, finds no server error, no answer that
//! the document does not describe, and no crash.
mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{Gateway, Options, run_to_exit};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const ADMIN: &str = "openapi-admin-0123456789abcdef";

/// The pinned schemathesis (and openapi-spec-validator), in the venv that
/// `.ci/run` makes: `python3 -m venv target/schemathesis-venv &&
/// target/schemathesis-venv/bin/pip install -r .ci/schemathesis-requirements.txt`.
fn venv_tool(name: &str) -> PathBuf {
    let dir = std::env::var_os("ALERTGATE_SCHEMATHESIS_VENV")
        .map_or_else(|| common::repo_path("target/schemathesis-venv"), PathBuf::from);
    let tool = dir.join("bin").join(name);
    assert!(
        tool.exists(),
        "{} is missing: run `python3 -m venv target/schemathesis-venv && \
         target/schemathesis-venv/bin/pip install -r .ci/schemathesis-requirements.txt` (as .ci/run does)",
        tool.display()
    );
    tool
}

fn document() -> Value {
    serde_json::to_value(alertgate::api::openapi::document()).unwrap()
}

/// Every (method, path) the document has an operation for.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            ops.insert((method.to_uppercase(), path.clone()));
        }
    }
    ops
}

#[test]
fn the_document_lists_exactly_the_routes_the_gateway_serves() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let documented = operations(&doc);
    let served: BTreeSet<(String, String)> = alertgate::auth::ROUTES
        .iter()
        .flat_map(|r| r.methods.iter().map(|(m, _)| (m.to_string(), r.route.to_string())))
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(undocumented.is_empty(), "in auth::ROUTES but not in the document: {undocumented:?}");
    assert!(unserved.is_empty(), "in the document but not in auth::ROUTES: {unserved:?}");
    assert!(documented.contains(&("GET".into(), "/api/v1/openapi.json".into())));
}

#[test]
fn each_operation_says_who_may_call_it_and_what_it_answers() {
    use alertgate::auth::Permission;
    let doc = document();
    let mut ids = BTreeSet::new();
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][method.to_lowercase()];
        let at = format!("{method} {path}");
        let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{at}: no operationId"));
        assert!(ids.insert(id.to_owned()), "{at}: operationId {id} is used twice");
        let need = Permission::of(&method, &path, false).unwrap();
        assert_eq!(op["x-alertgate-role"], need.as_str(), "{at}");
        let responses = op["responses"].as_object().unwrap();
        assert!(responses.keys().any(|s| s.starts_with('2')), "{at}: no 2xx answer");
        if need == Permission::Open {
            assert_eq!(op["security"], json!([]), "{at} is open");
            assert!(!responses.contains_key("401"), "{at} is open");
        } else {
            for status in ["401", "403", "429"] {
                assert!(responses.contains_key(status), "{at}: no {status}");
            }
        }
        if op.get("requestBody").is_some() {
            for status in ["400", "413", "415"] {
                assert!(responses.contains_key(status), "{at}: takes a body but no {status}");
            }
        }
        // Every path parameter is described, with a schema.
        for name in path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')) {
            let described = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true));
            assert!(described, "{at}: path parameter {name} is not described");
        }
    }
    // The bounds of page sizes are the handlers' own.
    let limit = |path: &str, name: &str| {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| (p["schema"]["minimum"].clone(), p["schema"]["maximum"].clone()))
            .unwrap()
    };
    assert_eq!(limit("/api/v1/alerts", "limit"), (json!(1), json!(1000)));
    assert_eq!(limit("/api/v1/incidents", "limit"), (json!(1), json!(500)));
    assert_eq!(limit("/api/v1/incidents/{id}", "timeline_limit"), (json!(1), json!(5000)));
    // utoipa names the schema of every `BTreeMap` field `BTreeMap`: all of
    // them must be label sets (names to string values), or one would
    // silently stand for another.
    let maps = &doc["components"]["schemas"]["BTreeMap"];
    assert_eq!(maps["additionalProperties"], json!({"type": "string"}), "{maps}");
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["basic"]["scheme"], "basic");
}

#[test]
fn every_reference_resolves() {
    let doc = document();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 50, "{}", refs.len());
    for r in refs {
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("external reference {r}"));
        let pointer = pointer.replace("~1", "/");
        assert!(doc.pointer(&pointer).is_some(), "{r} does not resolve");
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

async fn post(g: &Gateway, path: &str, body: Value) -> Value {
    let resp = client().post(g.url(path)).bearer_auth(ADMIN).json(&body).send().await.unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert!(status.is_success(), "POST {path}: {status} {body}");
    body
}

async fn get(g: &Gateway, path: &str) -> Value {
    let resp = client().get(g.url(path)).bearer_auth(ADMIN).send().await.unwrap();
    assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
    resp.json().await.unwrap()
}

/// A gateway with some of everything, so schemathesis reaches past the 404s.
async fn seeded_gateway() -> (Gateway, Value, tempfile::TempDir) {
    let config = format!(
        "auth:
  tokens:
    - {{name: root, role: admin, token_sha256: \"{}\"}}
generic:
  kuma:
    labels: {{alertname: /monitor/name}}
    status: {{field: /status, firing: [\"down\"], resolved: [\"up\"]}}
",
        hex::encode(Sha256::digest(ADMIN.as_bytes()))
    );
    // The shipped rules, and a heartbeat named as the generic mapping, so
    // that `{name}` drawn from the dictionary below finds both.
    let rules = tempfile::tempdir().unwrap();
    std::fs::copy(common::repo_path("rules/default.yaml"), rules.path().join("default.yaml")).unwrap();
    std::fs::write(rules.path().join("heartbeats.yaml"), "heartbeats:\n  - {name: kuma, interval: 1m}\n").unwrap();
    let g = Gateway::start_with(Options {
        config: Some(config),
        rules_dir: Some(rules.path().to_path_buf()),
        ..Default::default()
    });
    let fixture = |name: &str| serde_json::from_str::<Value>(&common::fixture(name)).unwrap();
    post(&g, "/api/v1/ingest/alertmanager", fixture("alertmanager_webhook_firing.json")).await;
    post(&g, "/api/v2/alerts", fixture("prometheus_v2_alerts.json")).await;
    post(&g, "/api/v1/ingest/grafana", fixture("grafana_webhook.json")).await;
    let mut pd = fixture("pagerduty_trigger.json");
    pd["routing_key"] = json!(ADMIN);
    post(&g, "/v2/enqueue", pd).await;
    post(&g, "/api/v1/ingest/generic/kuma", json!({"monitor": {"name": "Site"}, "status": "down"})).await;
    post(
        &g,
        "/api/v1/silences",
        json!({"matchers": ["alertname=\"Nothing\""], "endsAt": "2099-01-01T00:00:00Z", "comment": "seed"}),
    )
    .await;
    post(&g, "/api/v1/changes", json!({"service": "api", "summary": "deploy 1.2"})).await;
    post(&g, "/api/v1/heartbeats/kuma", Value::Null).await;
    let incidents = get(&g, "/api/v1/incidents").await;
    let incident_ids: Vec<i64> =
        incidents["incidents"].as_array().unwrap().iter().map(|i| i["id"].as_i64().unwrap()).collect();
    assert!(!incident_ids.is_empty(), "the seed alerts opened incidents");
    post(&g, "/api/v1/problems", json!({"title": "seeded", "incidents": [incident_ids[0]]})).await;
    let alerts = get(&g, "/api/v1/alerts").await;
    let fingerprints: Vec<Value> =
        alerts["alerts"].as_array().unwrap().iter().map(|a| a["fingerprint"].clone()).collect();
    let seed = json!({ "ids": incident_ids, "fingerprints": fingerprints });
    (g, seed, rules)
}

/// schemathesis' configuration: the known ids and fingerprints are drawn
/// half the time, so operations on one thing get past "not found".
fn schemathesis_config(seed: &Value) -> String {
    let list = |v: &Value| v.as_array().unwrap().iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ");
    format!(
        "[dictionaries.ids]
values = [{ids}, 1]

[dictionaries.fingerprints]
values = [{fps}]

[dictionaries.mappings]
values = [\"kuma\"]

[dictionaries.actions]
values = [\"acknowledge\", \"hold\", \"resolve\", \"reopen\", \"close\"]

[parameters]
\"path.id\" = {{ dictionary = \"ids\", probability = 0.5 }}
\"path.fingerprint\" = {{ dictionary = \"fingerprints\", probability = 0.5 }}
\"path.name\" = {{ dictionary = \"mappings\", probability = 0.5 }}
",
        ids = list(&seed["ids"]),
        fps = list(&seed["fingerprints"]),
    )
}

/// Found by schemathesis: serde fills a struct from an array of its fields
/// in order, so `[null, null]` unassigned an incident and `[null]`
/// acknowledged one. Bodies must be objects.
#[tokio::test]
async fn an_array_body_is_refused_not_read_as_fields() {
    let (g, seed, _rules) = seeded_gateway().await;
    let id = seed["ids"][0].as_i64().unwrap();
    post(&g, &format!("/api/v1/incidents/{id}/assign"), json!({"assignee": "alice"})).await;
    for (path, body) in [
        (format!("/api/v1/incidents/{id}/assign"), json!([null, null])),
        (format!("/api/v1/incidents/{id}/acknowledge"), json!([null])),
        (format!("/api/v1/incidents/{id}/notes"), json!([null, "a note"])),
        ("/api/v1/problems".to_owned(), json!([null, "a title"])),
        ("/api/v1/silences".to_owned(), json!([["a=\"b\""], null, "2099-01-01T00:00:00Z"])),
        ("/api/v1/changes".to_owned(), json!([null, "deploy"])),
    ] {
        let resp = client().post(g.url(&path)).bearer_auth(ADMIN).json(&body).send().await.unwrap();
        let status = resp.status().as_u16();
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(status, 400, "POST {path} {body}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains("expected a JSON object, got an array"), "{answer}");
    }
    let incident = get(&g, &format!("/api/v1/incidents/{id}")).await;
    assert_eq!(incident["assignee"], "alice", "still assigned");
    assert_eq!(incident["state"], "triggered", "not acknowledged");
    let resp = client()
        .post(g.url("/api/v2/silences"))
        .bearer_auth(ADMIN)
        .json(&json!([null, [{"name": "a", "value": "b", "isRegex": false}]]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let answer: Value = resp.json().await.unwrap();
    assert!(answer.as_str().is_some_and(|m| m.contains("got an array")), "an Alertmanager error string: {answer}");
}

/// Found while writing the document: a path parameter that is not UTF-8
/// got axum's plain-text 400, and a body error of the Alertmanager API's
/// silence endpoint got alertgate's error object instead of the string
/// Alertmanager's clients read.
#[tokio::test]
async fn malformed_requests_get_the_documented_error_shapes() {
    let (g, _, _rules) = seeded_gateway().await;
    for path in ["/api/v1/alerts/%FF", "/api/v1/ingest/generic/%C3%28", "/api/v2/silence/%FF"] {
        let method = if path.contains("generic") { "POST" } else { "GET" };
        let resp = client()
            .request(method.parse().unwrap(), g.url(path))
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{method} {path}");
        assert_eq!(resp.headers()["content-type"], "application/json", "{method} {path}");
        let body: Value = resp.json().await.unwrap();
        if path.starts_with("/api/v2/") {
            assert!(body.is_string(), "{path}: {body}");
        } else {
            assert!(body["error"].as_str().unwrap().contains("bad path"), "{path}: {body}");
        }
    }
    let resp = client()
        .post(g.url("/api/v2/silences"))
        .bearer_auth(ADMIN)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let body: Value = resp.json().await.unwrap();
    assert!(body.as_str().is_some_and(|m| m.contains("application/json")), "{body}");
    // A PagerDuty event that is not UTF-8 is an invalid event, as PagerDuty answers.
    let resp = client()
        .post(g.url("/v2/enqueue"))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body(b"{\"routing_key\": \"\xff\"}".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "invalid event", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_fault_in_any_operation() {
    let schemathesis = venv_tool("schemathesis");
    let validator = venv_tool("openapi-spec-validator");
    let (g, seed, _rules) = seeded_gateway().await;
    let work = tempfile::tempdir().unwrap();

    // The served document is the library's, and valid OpenAPI 3.1.
    let served: Value = client().get(g.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(served, document());
    let doc_file = work.path().join("openapi.json");
    std::fs::write(&doc_file, served.to_string()).unwrap();
    let (status, out, err) =
        run_to_exit(Command::new(&validator).args(["--schema", "3.1"]).arg(&doc_file), Duration::from_secs(60));
    assert!(status.success(), "openapi-spec-validator refused the document:\n{out}\n{err}");

    let config = work.path().join("schemathesis.toml");
    std::fs::write(&config, schemathesis_config(&seed)).unwrap();
    let base = format!("http://{}", g.addr);
    assert!(g.addr.starts_with("127.0.0.1:"), "schemathesis talks to loopback only");
    let mut cmd = Command::new(&schemathesis);
    cmd.current_dir(work.path())
        .env("NO_PROXY", "*")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("{base}/api/v1/openapi.json"))
        .args(["--url", &base])
        .args(["--header", &format!("Authorization: Bearer {ADMIN}")])
        // Every check but "a request the document allows is accepted": the
        // document gives types and bounds, not every rule of the handlers
        // (an actor's printable characters, a silence's end after its start).
        .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance"])
        .args(["--max-examples", "25", "--seed", "20261201", "--workers", "2"])
        .args(["--generation-database", "none", "--no-color", "--max-failures", "20"])
        .args(["--request-timeout", "20"]);
    // A longer hunt, e.g. `ALERTGATE_SCHEMATHESIS_ARGS="--max-examples 200 --seed 7"`.
    if let Ok(extra) = std::env::var("ALERTGATE_SCHEMATHESIS_ARGS") {
        cmd.args(extra.split_whitespace());
    }
    let (status, out, err) = run_to_exit(&mut cmd, Duration::from_secs(300));
    eprintln!("{out}");
    assert!(status.success(), "schemathesis found faults:\n{out}\n{err}\n--- gateway log ---\n{}", g.stderr());
    assert!(out.contains("passed"), "schemathesis ran no test:\n{out}");
    assert!(!g.stderr().contains("panicked"), "the gateway panicked:\n{}", g.stderr());
    // The gateway is still up and answering after all that.
    let health = client().get(g.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}
