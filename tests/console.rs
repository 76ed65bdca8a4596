//! The web console in a real browser: Debian's headless Chromium driven
//! through chromedriver (WebDriver), against the real gateway. One browser
//! session walks through what an on-call engineer does, as a timeline:
//! sign in with a token, watch an incident arrive without a reload,
//! acknowledge it, bulk-resolve three, work on a phone-sized screen,
//! silence an alert from its row, look at every page (screenshots of each,
//! at desktop and phone width, go to `target/console-screenshots/`), and
//! finally sign in as a viewer, who sees no buttons and whose forged POSTs
//! are refused.
mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Gateway, Options, Proc, free_port, wait_for};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const INGEST: &str = "ingest-token-0123456789abcdef";
const VIEWER: &str = "viewer-token-0123456789abcdef";
const RESPONDER: &str = "alice-token-0123456789abcdef";
const ADMIN: &str = "root-token-0123456789abcdef";

/// Bound for every wait on the browser or the gateway.
const WAIT: Duration = Duration::from_secs(20);

fn sha(t: &str) -> String {
    hex::encode(Sha256::digest(t.as_bytes()))
}

fn screenshot_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is target/tmp; the screenshots sit beside it.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target dir").join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// chromedriver on a free loopback port, driving a headless Chromium with
/// a fresh profile. Both end when this is dropped.
struct Browser {
    client: Client,
    _driver: Proc,
    _profile: tempfile::TempDir,
}

/// chromedriver ends with its `Proc`, but Chromium, never told to quit (a
/// test may fail before it could be), would outlive it: the whole process
/// group goes.
impl Drop for Browser {
    fn drop(&mut self) {
        let group = self._driver.0.id().to_string();
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{group}")]).status();
    }
}

impl Browser {
    async fn start() -> Browser {
        Browser::start_with(&[]).await
    }

    /// A browser started with `extra` switches besides the usual ones.
    async fn start_with(extra: &[&str]) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let log = profile.path().join(format!("chromedriver-{port}.log"));
            // Its own process group, which the browser it starts joins:
            // dropping the Browser ends them all (see Drop).
            let child = Command::new("chromedriver")
                .process_group(0)
                .args([format!("--port={port}"), format!("--log-path={}", log.display())])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("the console tests need chromedriver (apt-get install chromium chromium-driver)");
            let mut driver = Proc(child);
            let url = format!("http://127.0.0.1:{port}");
            let ready = wait_ready(&mut driver, &url).await;
            if !ready {
                last = std::fs::read_to_string(&log).unwrap_or_default();
                continue;
            }
            let caps = json!({
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": "/usr/bin/chromium",
                    "args": [
                        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run",
                        "--disable-default-apps", "--disable-extensions", "--disable-dev-shm-usage",
                        // Nothing leaves the machine: no pings, reports or checks.
                        "--no-pings", "--disable-breakpad", "--disable-domain-reliability",
                        "--disable-client-side-phishing-detection", "--no-default-browser-check",
                        "--window-size=1280,900",
                        format!("--user-data-dir={}", profile.path().join("chrome").display()),
                    ],
                },
            });
            let mut caps = caps.as_object().unwrap().clone();
            let args = caps["goog:chromeOptions"]["args"].as_array_mut().expect("args");
            args.extend(extra.iter().map(|s| json!(s)));
            // chromedriver speaks plain HTTP on loopback: no TLS connector.
            let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps)
                .connect(&url)
                .await
                .unwrap_or_else(|e| panic!("cannot start Chromium through chromedriver: {e}"));
            return Browser { client, _driver: driver, _profile: profile };
        }
        panic!("chromedriver would not start: {last}");
    }

    async fn goto(&self, g: &Gateway, path: &str) {
        self.client.goto(&g.url(path)).await.unwrap_or_else(|e| panic!("goto {path}: {e}"));
    }

    /// The first element matching `css`, waiting for it.
    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css:?} within {WAIT:?}: {e}"))
    }

    async fn count(&self, css: &str) -> usize {
        self.client.find_all(Locator::Css(css)).await.map(|v| v.len()).unwrap_or(0)
    }

    /// The text of every element matching `css`, in page order.
    async fn texts(&self, css: &str) -> Vec<String> {
        let mut out = Vec::new();
        for e in self.client.find_all(Locator::Css(css)).await.unwrap() {
            out.push(e.text().await.unwrap());
        }
        out
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap_or_default()
    }

    async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// Poll until the text of `css` contains `want`.
    async fn wait_text(&self, css: &str, want: &str) -> String {
        wait_for(WAIT, &format!("{css:?} to contain {want:?}"), || async move {
            let els = self.client.find_all(Locator::Css(css)).await.ok()?;
            for e in els {
                let t = e.text().await.ok()?;
                if t.contains(want) {
                    return Some(t);
                }
            }
            None
        })
        .await
    }

    /// Click the first element matching `css`; a live part may swap it
    /// out between finding and clicking, so a stale element is found again.
    async fn click(&self, css: &str) {
        wait_for(WAIT, &format!("a clickable {css:?}"), || async move {
            let e = self.client.find(Locator::Css(css)).await.ok()?;
            e.click().await.ok()
        })
        .await
    }

    async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        e.clear().await.ok();
        e.send_keys(text).await.unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(screenshot_dir().join(format!("{name}.png")), png).expect("write screenshot");
    }

    async fn size(&self, w: u32, h: u32) {
        self.client.set_window_size(w, h).await.expect("window size");
    }

    async fn sign_in(&self, g: &Gateway, token: &str, who: &str) {
        self.goto(g, "/incidents").await;
        self.find("#token").await;
        assert!(self.client.current_url().await.unwrap().path().ends_with("/login"), "signed out: the login page");
        self.fill("#token", token).await;
        self.click("#sign-in").await;
        self.wait_text("#who", who).await;
    }

    async fn sign_out(&self) {
        self.click("header .who button[type=submit]").await;
        self.find("#token").await;
    }

    /// A POST from this page's own script, as a forger with a stolen
    /// session would send it: the status it gets.
    async fn post_form(&self, path: &str, body: &str) -> i64 {
        let script = "const [url, body, done] = arguments;
            fetch(url, {method: 'POST', headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body, credentials: 'same-origin', redirect: 'manual'})
              .then(r => done(r.status), e => done(-1));";
        let v = self.client.execute_async(script, vec![json!(path), json!(body)]).await.expect("fetch");
        v.as_i64().unwrap_or(-1)
    }
}

async fn wait_ready(driver: &mut Proc, url: &str) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = driver.0.try_wait() {
            return false;
        }
        if let Ok(r) = common::client().get(format!("{url}/status")).timeout(Duration::from_secs(2)).send().await
            && r.status() == 200
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn api(g: &Gateway, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = common::client().request(method.parse().unwrap(), g.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    let resp = req.send().await.expect("api call");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn fire(g: &Gateway, alerts: Value) {
    let (status, body) = api(g, "POST", "/api/v2/alerts", INGEST, Some(alerts)).await;
    assert_eq!(status, 200, "{body}");
}

async fn incident(g: &Gateway, id: i64) -> Value {
    let (status, body) = api(g, "GET", &format!("/api/v1/incidents/{id}"), VIEWER, None).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The gateway with one token per role, the shipped rules with every
/// incident notifying a webhook nobody listens on (so `/notifications`
/// has deliveries waiting with their errors).
fn start_gateway() -> (Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let rules = std::fs::read_to_string(common::repo_path("rules/default.yaml")).unwrap();
    let rules = rules.replace("  - name: catch-all\n", "  - name: catch-all\n    notify: [dead-hook]\n");
    assert!(rules.contains("notify: [dead-hook]"), "the shipped rules still end with the catch-all");
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/default.yaml"), rules).unwrap();
    let config = format!(
        "auth:
  tokens:
    - {{name: alertmanager, role: ingest, token_sha256: \"{}\"}}
    - {{name: vic, role: viewer, token_sha256: \"{}\"}}
    - {{name: alice, role: responder, token_sha256: \"{}\"}}
    - {{name: root, role: admin, token_sha256: \"{}\"}}
notifiers:
  - {{name: dead-hook, type: webhook, url: \"http://127.0.0.1:{}/hook\", timeout: 1s}}
outbox: {{initial_backoff: 1h, max_backoff: 1h, max_age: 24h}}
",
        sha(INGEST),
        sha(VIEWER),
        sha(RESPONDER),
        sha(ADMIN),
        free_port()
    );
    let g = Gateway::start_with(Options {
        config: Some(config),
        rules_dir: Some(dir.path().join("rules")),
        ..Default::default()
    });
    (g, dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_on_call_shift_in_the_console() {
    let (g, _rules) = start_gateway();
    let b = Browser::start().await;

    // 1. Signed out, every page leads to the login form; a wrong token is refused.
    b.goto(&g, "/").await;
    b.find("#token").await;
    b.shot("login-desktop").await;
    b.fill("#token", "not-a-token-0123456789").await;
    b.click("#sign-in").await;
    b.wait_text("#login-error", "not valid").await;
    b.sign_in(&g, RESPONDER, "alice").await;
    assert!(b.client.current_url().await.unwrap().path().ends_with("/incidents"));
    b.wait_text("#count", "0 incidents").await;

    // 2. An alert posted through the API shows up without a reload, with
    // the count in the tab's title. (A navigation would drop the marker.)
    b.js("window.__stay = 'same page'").await;
    let posted = Instant::now();
    fire(
        &g,
        json!([{
            "labels": {"alertname": "DiskFull", "service": "payments", "severity": "critical",
                       "instance": "<script>window.__xss = 1</script><img src=x onerror=\"window.__xss = 2\">"},
            "annotations": {"summary": "disk almost full", "runbook_url": "https://runbooks.example/disk",
                            "dashboard_url": "javascript:window.__xss = 3"},
            "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=disk"
        }]),
    )
    .await;
    b.wait_text("#live tr[data-id='1']", "DiskFull").await;
    println!("the new incident showed on the open page {:?} after it was posted", posted.elapsed());
    assert_eq!(b.js("return window.__stay").await, "same page", "the page was not reloaded");
    wait_for(WAIT, "the title to count 1", || async {
        b.client.title().await.ok().filter(|t| t.starts_with("(1) Incidents"))
    })
    .await;
    let respond = b.text("#live tr[data-id='1'] .sla").await;
    assert!(respond.ends_with(" left"), "the respond clock counts down: {respond:?}");
    b.shot("incidents-desktop").await;

    // 3. Acknowledge from the incident's page: only valid transitions are buttons.
    b.click("#live tr[data-id='1'] td.title a").await;
    b.find("#do-acknowledge").await;
    assert_eq!(b.texts("#live .actions button").await, ["Acknowledge", "Hold", "Resolve"]);
    // Label and annotation text is shown as text, never run.
    let body_text = b.js("return document.body.innerText").await;
    assert!(body_text.as_str().unwrap().contains("<script>window.__xss = 1</script>"), "{body_text}");
    assert!(body_text.as_str().unwrap().contains("javascript:window.__xss = 3"), "shown as text");
    assert_eq!(b.count("a[href^='javascript:']").await, 0, "a javascript: annotation is not a link");
    assert_eq!(b.text("#live .links a[href^='https://runbooks.example']").await, "Runbook");
    assert_eq!(b.js("return window.__xss === undefined").await, true, "no injected script ran");
    b.shot("incident-desktop").await;
    b.fill("#act-comment", "looking at it").await;
    b.click("#do-acknowledge").await;
    b.wait_text("#incident-state", "acknowledged").await;
    b.wait_text("#flash", "Acknowledged incident #1").await;
    b.wait_text("#timeline", "alice").await;
    b.wait_text("#timeline", "looking at it").await;
    assert_eq!(b.texts("#live .actions button").await, ["Hold", "Resolve"]);
    let inc = incident(&g, 1).await;
    assert_eq!(inc["state"], "acknowledged", "{inc:#}");
    let ack = inc["timeline"].as_array().unwrap().iter().find(|e| e["kind"] == "acknowledged").expect("an entry");
    assert_eq!(ack["actor"], "alice", "recorded under the signed-in name: {ack:#}");
    let (_, audit) = api(&g, "GET", "/api/v1/audit?target=incident:1", ADMIN, None).await;
    let entries = audit["entries"].as_array().unwrap();
    assert!(entries.iter().any(|e| e["actor"] == "alice" && e["action"] == "incident.acknowledge"), "{audit:#}");

    // The incident's page is live too: a note added elsewhere appears.
    b.js("window.__stay = 'detail'").await;
    let (status, _) = api(&g, "POST", "/api/v1/incidents/1/notes", ADMIN, Some(json!({"text": "db team paged"}))).await;
    assert_eq!(status, 201);
    b.wait_text("#timeline", "db team paged").await;
    assert_eq!(b.js("return window.__stay").await, "detail");

    // 4. Bulk-resolve three.
    fire(
        &g,
        json!([
            {"labels": {"alertname": "Bulk1", "service": "web", "severity": "warning"}},
            {"labels": {"alertname": "Bulk2", "service": "web", "severity": "warning"}},
            {"labels": {"alertname": "Bulk3", "service": "web", "severity": "warning"}},
        ]),
    )
    .await;
    b.goto(&g, "/incidents?service=web").await;
    wait_for(WAIT, "three web incidents", || async { (b.count("#live tr[data-id]").await == 3).then_some(()) }).await;
    for id in [2, 3, 4] {
        b.click(&format!("#sel-{id}")).await;
    }
    b.click("#bulk-resolve").await;
    b.wait_text("#flash", "Resolved 3 incidents").await;
    for id in [2, 3, 4] {
        assert_eq!(incident(&g, id).await["state"], "resolved", "incident {id}");
    }
    b.wait_text("#count", "0 incidents").await;

    // 5. A phone-sized screen: nothing wider than the screen, the actions reachable.
    b.size(375, 812).await;
    b.goto(&g, "/incidents").await;
    b.find("#live tr[data-id='1']").await;
    let fits = b.js("return document.documentElement.scrollWidth <= window.innerWidth + 1").await;
    assert_eq!(fits, true, "the list page is no wider than 375 px");
    b.shot("incidents-phone").await;
    b.goto(&g, "/incidents/1").await;
    let resolve = b.find("#do-resolve").await;
    assert!(resolve.is_displayed().await.unwrap());
    let (x, _, w, _) = resolve.rectangle().await.unwrap();
    let inner = b.js("return window.innerWidth").await.as_f64().unwrap();
    assert!(x >= 0.0 && x + w <= inner + 1.0, "the Resolve button is on screen: x={x} w={w} of {inner}");
    assert_eq!(b.js("return document.documentElement.scrollWidth <= window.innerWidth + 1").await, true);
    b.shot("incident-phone").await;
    b.size(1280, 900).await;
    b.sign_out().await;

    // 6. An admin silences the alert from its row and sees it muted.
    b.sign_in(&g, ADMIN, "root").await;
    // Filtered in Alertmanager's matcher syntax, as typed in the filter box.
    b.goto(&g, "/alerts").await;
    b.fill("#a-filter", "{alertname=~\"Disk.*\", severity=\"critical\"}").await;
    b.click("form.filters button[type=submit]").await;
    b.wait_text("#alert-count", "1").await;
    assert_eq!(b.count("li[data-row]").await, 1);
    b.click("li[data-row] a.silence").await;
    let matchers = b.find("#s-matchers").await.prop("value").await.unwrap().unwrap_or_default();
    assert!(matchers.contains("alertname=\"DiskFull\""), "prefilled with the alert's labels: {matchers}");
    b.wait_text("#s-preview", "Matches 1 firing alert").await;
    b.fill("#s-comment", "disk is being replaced").await;
    b.click("#create-silence").await;
    b.wait_text("#flash", "Silence #1 created; it matches 1 firing alert").await;
    b.wait_text("#silence-1", "root").await;
    b.goto(&g, "/alerts?filter=alertname%3D%22DiskFull%22").await;
    b.wait_text("li[data-row] .muted-by", "silenced by silence #1").await;
    b.goto(&g, "/alerts?filter=alertname%3D%22Bulk1%22").await;
    b.find("li[data-row]").await;
    assert_eq!(b.count(".muted-by").await, 0, "the silence mutes only what it matches");
    let (_, silences) = api(&g, "GET", "/api/v1/silences", VIEWER, None).await;
    assert_eq!(silences["silences"][0]["createdBy"], "root", "{silences:#}");

    // 7. Every page renders, at desktop and at phone width.
    // (The three web incidents already formed a problem by the shipped problem rule.)
    let (status, problem) = api(
        &g,
        "POST",
        "/api/v1/problems",
        ADMIN,
        Some(json!({"title": "Disks fill up", "root_cause": "log rotation", "workaround": "delete old logs", "incidents": [1]})),
    )
    .await;
    assert_eq!(status, 201, "{problem}");
    let problem_page = format!("/problems/{}", problem["id"]);
    let (status, _) = api(
        &g,
        "POST",
        "/api/v1/changes",
        ADMIN,
        Some(json!({"service": "payments", "summary": "deploy v1.2", "link": "https://ci.example/1"})),
    )
    .await;
    assert_eq!(status, 201);
    let end = common::wall_clock() + jiff::SignedDuration::from_hours(2);
    let (status, _) = api(
        &g,
        "POST",
        "/api/v1/changes",
        ADMIN,
        Some(json!({"service": "web", "summary": "db failover drill", "end": end.to_string(), "suppress": true})),
    )
    .await;
    assert_eq!(status, 201);
    let pages = [
        ("incidents", "/incidents?state=all", "h1"),
        ("incident", "/incidents/1", "#incident-title"),
        ("alerts", "/alerts", "#alert-count"),
        ("silences", "/silences", "#silence-1"),
        ("problems", "/problems", "table"),
        ("problem", problem_page.as_str(), "#problem-workaround"),
        ("changes", "/changes", "svg.timeline-svg"),
        ("notifications", "/notifications", "table"),
        ("audit", "/audit", "#audit td.actor"),
        ("reports", "/reports", "#report-total"),
    ];
    for (width, height, suffix) in [(1280, 900, "desktop"), (375, 812, "phone")] {
        b.size(width, height).await;
        for (name, path, marker) in pages {
            b.goto(&g, path).await;
            b.find(marker).await;
            assert_eq!(b.count(".error-page").await, 0, "{path} is not an error page");
            b.shot(&format!("{name}-{suffix}")).await;
            let overflow = b.js("return document.documentElement.scrollWidth <= window.innerWidth + 1").await;
            let wide = b.js("return Array.from(document.querySelectorAll('body *')).filter(e => !(e.parentElement && e.parentElement.closest('.table-wrap')) && e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 8).map(e => e.tagName + '.' + e.className + ' ' + e.getBoundingClientRect().right).join(', ')").await;
            assert_eq!(overflow, true, "{path} fits {width} px: wider are {wide}");
        }
    }
    b.size(1280, 900).await;
    assert_eq!(b.text("#report-total").await, "4", "the report counts the four incidents");
    b.goto(&g, &problem_page).await;
    b.wait_text("#problem-workaround", "delete old logs").await;
    b.goto(&g, "/problems").await;
    b.wait_text("table", "Recurring: Bulk3").await;
    b.goto(&g, "/notifications").await;
    let waiting = b.text("table").await;
    assert!(waiting.contains("pending") && waiting.contains("dead-hook"), "{waiting}");
    b.click("button[id^='retry-']").await;
    b.wait_text("#flash", "will be sent again now").await;
    b.goto(&g, "/reports").await;
    let href = b.find("#csv-service").await.attr("href").await.unwrap().unwrap();
    let csv = b.fetch_text(&href).await;
    assert!(csv.starts_with("service,incidents,acknowledged,resolved,mtta_seconds"), "{csv}");
    assert!(csv.contains("\r\npayments,1,1,0,"), "the acknowledged payments incident: {csv}");
    b.sign_out().await;

    // 8. A viewer sees no buttons, and a POST forged from the page is refused.
    b.sign_in(&g, VIEWER, "vic").await;
    b.find("#live tr[data-id='1']").await;
    assert_eq!(b.count("#bulk-ack").await + b.count("#bulk-resolve").await + b.count("input[name=id]").await, 0);
    b.goto(&g, "/incidents/1").await;
    b.find("#incident-title").await;
    assert_eq!(b.count("#live .actions button").await, 0, "no action buttons for a viewer");
    assert_eq!(b.count("form[action$='/assign']").await + b.count("form[action$='/note']").await, 0);
    b.goto(&g, "/alerts").await;
    b.find("#alert-count").await;
    assert_eq!(b.count("a.silence").await, 0, "no Silence action for a viewer");
    b.goto(&g, "/incidents/1").await;
    b.find("#incident-title").await;
    let csrf = b.js("return document.body.dataset.csrf").await.as_str().unwrap().to_owned();
    assert_eq!(b.post_form("/incidents/1/act", &format!("csrf={csrf}&action=resolve")).await, 403);
    assert_eq!(b.post_form("/incidents/1/act", "action=resolve").await, 403, "no CSRF token");
    assert_eq!(b.post_form("/silences", &format!("csrf={csrf}&matchers=a%3D%22b%22&comment=x")).await, 403);
    assert_eq!(incident(&g, 1).await["state"], "acknowledged", "nothing changed");
    b.goto(&g, "/audit").await;
    b.wait_text("#error", "needs the admin role").await;
    b.client.clone().close().await.ok();
}

impl Browser {
    /// Fetch a same-origin URL from the page and return its text.
    async fn fetch_text(&self, href: &str) -> String {
        let script = "const [url, done] = arguments;
            fetch(url, {credentials: 'same-origin'}).then(r => r.text()).then(done, e => done(String(e)));";
        let v = self.client.execute_async(script, vec![json!(href)]).await.expect("fetch");
        v.as_str().unwrap_or_default().to_owned()
    }
}

/// Working the incident list from the keyboard alone, on a system set to a
/// dark theme: `j`/`k` move, `a` acknowledges the current row, `x` and `r`
/// resolve the chosen one, `/` goes to the search box, `?` opens the help.
#[tokio::test(flavor = "multi_thread")]
async fn the_lists_work_from_the_keyboard_in_a_dark_theme() {
    let (g, _rules) = start_gateway();
    let b = Browser::start_with(&["--force-dark-mode"]).await;
    b.sign_in(&g, RESPONDER, "alice").await;
    for name in ["KeyboardFirst", "KeyboardSecond"] {
        fire(&g, json!([{"labels": {"alertname": name, "service": "web", "severity": "warning"}}])).await;
    }
    b.goto(&g, "/incidents").await;
    wait_for(WAIT, "two incidents listed", || async { (b.count("#live tr[data-id]").await == 2).then_some(()) }).await;

    // The system's dark preference is followed: light text on a dark page.
    assert_eq!(b.js("return matchMedia('(prefers-color-scheme: dark)').matches").await, true);
    let bg = b.js("return getComputedStyle(document.body).backgroundColor").await;
    let fg = b.js("return getComputedStyle(document.body).color").await;
    assert_eq!(bg, "rgb(18, 20, 24)", "the dark background");
    assert_eq!(fg, "rgb(230, 232, 235)", "light text");

    let body = b.find("body").await;
    let current = || async {
        b.js("var r = document.querySelector('[data-row].current'); return r && r.getAttribute('data-id')").await
    };
    let ids: Vec<String> = {
        let v = b
            .js("return Array.from(document.querySelectorAll('#live tr[data-id]')).map(r => r.getAttribute('data-id'))")
            .await;
        v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect()
    };
    body.send_keys("j").await.unwrap();
    assert_eq!(current().await, json!(ids[0]), "j marks the first row");
    body.send_keys("j").await.unwrap();
    assert_eq!(current().await, json!(ids[1]), "j again: the second");
    body.send_keys("k").await.unwrap();
    assert_eq!(current().await, json!(ids[0]), "k: back to the first");
    let focused = b.js("return document.activeElement.closest('[data-row]')?.getAttribute('data-id')").await;
    assert_eq!(focused, json!(ids[0]), "the current row's link has the focus");

    // `a` acknowledges the current row and nothing else.
    b.find("body").await.send_keys("a").await.unwrap();
    b.wait_text("#flash", "Acknowledged 1 incident").await;
    let first: i64 = ids[0].parse().unwrap();
    let second: i64 = ids[1].parse().unwrap();
    assert_eq!(incident(&g, first).await["state"], "acknowledged");
    assert_eq!(incident(&g, second).await["state"], "triggered");

    // `x` ticks a row, `r` resolves the ticked ones.
    b.goto(&g, "/incidents").await;
    wait_for(WAIT, "two incidents listed", || async { (b.count("#live tr[data-id]").await == 2).then_some(()) }).await;
    let row_of_second = b.js(&format!(
        "return Array.from(document.querySelectorAll('#live tr[data-id]')).findIndex(r => r.getAttribute('data-id') == '{second}')"
    )).await.as_i64().unwrap();
    let body = b.find("body").await;
    for _ in 0..=row_of_second {
        body.send_keys("j").await.unwrap();
    }
    assert_eq!(current().await, json!(ids[1]));
    body.send_keys("x").await.unwrap();
    assert_eq!(b.js(&format!("return document.querySelector('#sel-{second}').checked")).await, true, "x ticks the row");
    body.send_keys("r").await.unwrap();
    b.wait_text("#flash", "Resolved 1 incident").await;
    assert_eq!(incident(&g, second).await["state"], "resolved");
    assert_eq!(incident(&g, first).await["state"], "acknowledged", "the other row is untouched");

    // `/` puts the cursor in the search box (and typing there is not a shortcut);
    // `?` opens the list of shortcuts.
    b.goto(&g, "/incidents").await;
    b.find("body").await.send_keys("/").await.unwrap();
    assert_eq!(b.js("return document.activeElement.id").await, "f-q");
    b.find("#f-q").await.send_keys("a").await.unwrap();
    assert_eq!(incident(&g, first).await["state"], "acknowledged", "an `a` typed into the search box acts on nothing");
    b.js("document.activeElement.blur()").await;
    b.find("body").await.send_keys("?").await.unwrap();
    assert_eq!(b.js("return document.querySelector('#help').open").await, true, "? opens the help");
    b.shot("incidents-keyboard-dark").await;
}

/// The version a page embeds for its live updates (`data-version`).
async fn page_version(g: &Gateway) -> u64 {
    let html = common::client().get(g.url("/incidents")).send().await.unwrap().text().await.unwrap();
    let at = html.find("data-version=\"").expect("a data-version") + "data-version=\"".len();
    html[at..].split('"').next().unwrap().parse().expect("a number")
}

/// A sender's re-sends of alerts already in open incidents change nothing
/// a live page shows: they wake no open tab. A new incident does.
#[tokio::test(flavor = "multi_thread")]
async fn re_sent_alerts_wake_no_live_page() {
    let g = Gateway::start();
    let alert = json!([{"labels": {"alertname": "Resent", "service": "web"}}]).to_string();
    let (status, body) = common::post(&g.url("/api/v2/alerts"), &alert).await;
    assert_eq!(status, 200, "{body}");
    wait_for(WAIT, "the incident", || async {
        let (_, list) = common::get(&g.url("/api/v1/incidents")).await;
        (list["incidents"].as_array()?.len() == 1).then_some(())
    })
    .await;
    let before = page_version(&g).await;
    for _ in 0..5 {
        let (status, body) = common::post(&g.url("/api/v2/alerts"), &alert).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(page_version(&g).await, before, "re-sends are not news to a live page");
    let other = json!([{"labels": {"alertname": "Fresh", "service": "web"}}]).to_string();
    let (status, body) = common::post(&g.url("/api/v2/alerts"), &other).await;
    assert_eq!(status, 200, "{body}");
    assert!(page_version(&g).await > before, "a new incident is");
}

/// The expiry sweep finding alerts re-sent since their last check moves
/// the checks and changes nothing a live page shows; an alert expiring does.
#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_that_finds_only_re_sent_alerts_wakes_no_live_page() {
    let g = Gateway::start_with(common::Options { test_clock: Some(common::t0()), ..Default::default() });
    let at = |secs: i64| g.now() + jiff::SignedDuration::from_secs(secs);
    let (first, later) = (at(60), at(120));
    let alert = |ends: jiff::Timestamp| {
        json!([{"labels": {"alertname": "Resent", "service": "web"}, "endsAt": ends.to_string()}]).to_string()
    };
    let (status, body) = common::post(&g.url("/api/v2/alerts"), &alert(first)).await;
    assert_eq!(status, 200, "{body}");
    wait_for(WAIT, "the incident", || async {
        let (_, list) = common::get(&g.url("/api/v1/incidents")).await;
        (list["incidents"].as_array()?.len() == 1).then_some(())
    })
    .await;
    let (status, body) = common::post(&g.url("/api/v2/alerts"), &alert(later)).await;
    assert_eq!(status, 200, "{body}");
    let before = page_version(&g).await;
    g.advance_to(first).await;
    assert_eq!(page_version(&g).await, before, "a check moved to the later endsAt is not news");
    g.advance_to(later).await;
    assert!(page_version(&g).await > before, "the alert expiring is");
}

/// The service desk in the console: a responder reports an incident with
/// the form on the incident list and lands on its page; a viewer sees no form.
#[tokio::test(flavor = "multi_thread")]
async fn a_responder_reports_an_incident_from_the_console() {
    let (g, _rules) = start_gateway();
    let b = Browser::start().await;
    b.sign_in(&g, VIEWER, "vic").await;
    b.goto(&g, "/incidents").await;
    b.find("#count").await;
    assert_eq!(b.count("#report-incident").await, 0, "a viewer may not report");
    b.sign_out().await;

    b.sign_in(&g, RESPONDER, "alice").await;
    b.goto(&g, "/incidents").await;
    b.click("#report-incident summary").await;
    b.fill("#r-title", "Customers cannot pay by card").await;
    b.fill("#r-description", "three calls in ten minutes").await;
    b.fill("#r-service", "payments").await;
    b.js("document.getElementById('r-impact').value = 'high'; document.getElementById('r-urgency').value = 'high'")
        .await;
    b.fill("#r-reporter", "desk:jane").await;
    b.shot("report-incident-desktop").await;
    b.click("#report-submit").await;
    b.wait_text("#flash", "reported").await;
    assert!(b.client.current_url().await.unwrap().path().starts_with("/incidents/"), "lands on the incident");
    b.wait_text("h1", "Customers cannot pay by card").await;
    b.wait_text("#incident-reporter", "desk:jane").await;
    b.wait_text("#incident-description", "three calls in ten minutes").await;
    b.shot("reported-incident-desktop").await;

    // A second report of the service lists the first as a similar incident.
    let body = json!({"title": "Card payments time out", "service": "payments", "actor": "alice"});
    let (status, second) = api(&g, "POST", "/api/v1/incidents", RESPONDER, Some(body)).await;
    assert_eq!(status, 201, "{second}");
    b.goto(&g, &format!("/incidents/{}", second["id"])).await;
    b.wait_text("#similar-1", "Customers cannot pay by card").await;
    b.size(375, 812).await;
    b.shot("reported-incident-phone").await;
    b.goto(&g, "/incidents").await;
    b.click("#report-incident summary").await;
    b.shot("report-incident-phone").await;

    let inc = incident(&g, 1).await;
    assert_eq!(inc["source"], "reported", "{inc:#}");
    assert_eq!(inc["priority"], "P1", "high impact, high urgency");
    assert_eq!(inc["reporter"], "desk:jane");
    assert_eq!(inc["description"], "three calls in ten minutes");
}

/// Daily rotation alice/bob in Berlin, handing over at 09:00 from the test
/// clock's date; an incident rule that pages whoever is on call and
/// assigns to them.
const ONCALL_RULES: &str = r#"schedules:
  - name: payments-primary
    timezone: Europe/Berlin
    layers:
      - name: daily
        rotation: {people: [alice, bob], shift: 1d, handoff: "09:00", start: 2026-03-02}
escalation_policies:
  - name: payments
    steps:
      - {after: 0m, notify: [schedule:payments-primary]}
incident_rules:
  - name: payments
    matchers: ['service="payments"']
    title: "{{ labels.alertname }}"
    escalation: payments
    assign_to: schedule:payments-primary
"#;

/// A gateway on a controlled clock (Monday 2 March 2026, 10:00 in Berlin)
/// with three people reached by email through an SMTP server nobody runs:
/// deliveries fail and wait, which does not matter here.
fn start_oncall_gateway() -> (Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/oncall.yaml"), ONCALL_RULES).unwrap();
    let config = format!(
        "auth:
  tokens:
    - {{name: alertmanager, role: ingest, token_sha256: \"{}\"}}
    - {{name: vic, role: viewer, token_sha256: \"{}\"}}
    - {{name: ops, role: responder, token_sha256: \"{}\"}}
    - {{name: root, role: admin, token_sha256: \"{}\"}}
notifiers:
  - {{name: mail, type: email, smtp: {{host: 127.0.0.1, port: {}, tls: none}}, from: alertgate@example.org, to: [ops@example.org]}}
outbox: {{initial_backoff: 1h, max_backoff: 1h, max_age: 24h}}
people:
  - {{name: alice, email: alice@example.org}}
  - {{name: bob, email: bob@example.org}}
  - {{name: carol, email: carol@example.org}}
",
        sha(INGEST),
        sha(VIEWER),
        sha(RESPONDER),
        sha(ADMIN),
        free_port()
    );
    let g = Gateway::start_with(Options {
        config: Some(config),
        rules_dir: Some(dir.path().join("rules")),
        test_clock: Some(common::t0()),
        ..Default::default()
    });
    (g, dir)
}

impl Browser {
    /// Set a form field's value as a script would (a `datetime-local`
    /// field's typing order depends on the browser's locale).
    async fn set_value(&self, id: &str, value: &str) {
        self.client
            .execute("document.getElementById(arguments[0]).value = arguments[1]", vec![json!(id), json!(value)])
            .await
            .unwrap_or_else(|e| panic!("set #{id}: {e}"));
    }

    /// Nothing on the page is wider than the window, tables aside (they
    /// scroll in their own box).
    async fn assert_fits(&self, what: &str) {
        let fits = self.js("return document.documentElement.scrollWidth <= window.innerWidth + 1").await;
        let wide = self.js("return Array.from(document.querySelectorAll('body *')).filter(e => !(e.parentElement && e.parentElement.closest('.table-wrap')) && e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 8).map(e => e.tagName + '.' + e.className + ' ' + e.getBoundingClientRect().right).join(', ')").await;
        assert_eq!(fits, true, "{what} fits the window: wider are {wide}");
    }
}

/// On call in the console, as a timeline on a controlled clock: alice is
/// on call and bob next; carol covers through the override form (a
/// refused attempt first); an incident pages carol through the schedule,
/// which its page says; deleting the override (from the keyboard) gives
/// the shift back to alice; past the handoff, bob. A viewer sees no forms;
/// the page works at phone width and in the dark theme.
#[tokio::test(flavor = "multi_thread")]
async fn on_call_overrides_and_who_was_paged() {
    let (g, _rules) = start_oncall_gateway();
    let b = Browser::start().await;
    b.sign_in(&g, RESPONDER, "ops").await;

    // Mon 10:00 Berlin: alice since 09:00, until Tuesday's handoff; bob next.
    b.click("header nav a[href='/oncall']").await;
    b.wait_text("#now-payments-primary", "alice").await;
    assert_eq!(b.text("#next-payments-primary").await, "bob");
    let now = b.text("#schedule-payments-primary .oncall-now .now dd").await;
    assert!(now.contains("until Tue 3 Mar 09:00 CET") && now.contains("23h 00m left"), "{now}");
    assert!(now.contains("through layer daily"), "{now}");
    assert!(b.text("#schedule-payments-primary h2").await.contains("Europe/Berlin"), "the zone is named");
    let shifts = b.texts("#schedule-payments-primary table.shifts tbody tr").await;
    assert_eq!(shifts.len(), 15, "two weeks of daily shifts from now, the first cut at now: {shifts:?}");
    assert!(shifts[0].starts_with("alice now") && shifts[0].contains("Mon 2 Mar 10:00"), "{shifts:?}");
    assert!(shifts[1].starts_with("bob") && shifts[1].contains("Tue 3 Mar 09:00"), "{shifts:?}");
    b.wait_text("#schedule-payments-primary", "No overrides").await;

    // A refused override comes back to the form, filled in, saying why.
    b.click("#new-override summary").await;
    b.set_value("o-person", "carol").await;
    b.set_value("o-end", "2026-03-02T09:30").await;
    b.fill("#o-reason", "alice at the dentist").await;
    b.click("#add-override").await;
    let refused = b.wait_text("#flash.error[role=alert]", "The override was not added").await;
    assert!(refused.contains("end: 2026-03-02T08:30:00Z is in the past"), "{refused}");
    assert_eq!(b.js("return document.getElementById('new-override').open").await, true, "the form is open again");
    assert_eq!(b.js("return document.getElementById('o-person').value").await, "carol");
    assert_eq!(b.js("return document.getElementById('o-reason').value").await, "alice at the dentist");
    b.shot("oncall-refused-desktop").await;
    b.wait_text("#schedule-payments-primary", "No overrides").await;

    // Carol covers from now (start left blank) to 18:00 Berlin.
    b.set_value("o-end", "2026-03-02T18:00").await;
    b.click("#add-override").await;
    b.wait_text(
        "#flash",
        "Override #1: carol on call in payments-primary from Mon 2 Mar 10:00 to Mon 2 Mar 18:00 (Europe/Berlin)",
    )
    .await;
    assert_eq!(b.text("#now-payments-primary").await, "carol");
    let now = b.text("#schedule-payments-primary .oncall-now .now dd").await;
    assert!(now.contains("until Mon 2 Mar 18:00 CET") && now.contains("through override #1"), "{now}");
    assert_eq!(b.text("#next-payments-primary").await, "alice", "alice again after the cover");
    let listed = b.text("#override-1").await;
    assert!(
        listed.contains("carol") && listed.contains("in force") && listed.contains("alice at the dentist"),
        "{listed}"
    );
    assert!(listed.contains("by ops"), "recorded under the signed-in name: {listed}");
    let shifts = b.texts("#schedule-payments-primary table.shifts tbody tr").await;
    assert!(shifts[0].starts_with("carol now") && shifts[0].contains("override #1"), "{shifts:?}");
    assert!(shifts[1].starts_with("alice") && shifts[1].contains("Mon 2 Mar 18:00"), "{shifts:?}");
    let (_, api_view) = api(&g, "GET", "/api/v1/oncall", VIEWER, None).await;
    assert_eq!(api_view["schedules"][0]["now"]["source"], "override:1", "the API agrees: {api_view:#}");
    b.shot("oncall-desktop").await;
    b.size(375, 812).await;
    b.goto(&g, "/oncall").await;
    b.find("#override-1").await;
    b.assert_fits("/oncall at 375 px").await;
    let delete = b.find("#delete-override-1").await;
    let (x, _, w, _) = delete.rectangle().await.unwrap();
    assert!(x >= 0.0 && x + w <= 376.0, "the Delete button is on screen: x={x} w={w}");
    b.shot("oncall-phone").await;
    b.js("document.getElementById('shifts-payments-primary-h').scrollIntoView()").await;
    b.shot("oncall-shifts-phone").await;
    b.click("#new-override summary").await;
    b.assert_fits("/oncall's form at 375 px").await;
    b.shot("oncall-form-phone").await;
    b.size(1280, 900).await;

    // An alert opens an incident: its first step pages the schedule, which is carol now.
    fire(&g, json!([{"labels": {"alertname": "CardPaymentsFailing", "service": "payments", "severity": "critical"}}]))
        .await;
    let id = wait_for(WAIT, "the incident to page someone", || async {
        let (_, list) = api(&g, "GET", "/api/v1/incidents", VIEWER, None).await;
        let id = list["incidents"].as_array()?.first()?["id"].as_i64()?;
        let inc = incident(&g, id).await;
        let paged = inc["timeline"].as_array()?.iter().any(|e| e["kind"] == "escalated");
        paged.then_some(id)
    })
    .await;
    let inc = incident(&g, id).await;
    assert_eq!(inc["assignee"], "carol", "assign_to: schedule: the person on call: {inc:#}");
    b.goto(&g, &format!("/incidents/{id}")).await;
    let paged = b.wait_text("#paged li", "carol").await;
    assert!(
        paged.starts_with("carol via schedule:payments-primary") && paged.contains("step 1 of payments"),
        "{paged}"
    );
    assert_eq!(b.count("#paged li").await, 1, "only carol was paged");
    let to_schedule = b.find("#paged a.via").await.attr("href").await.unwrap().unwrap_or_default();
    assert_eq!(to_schedule, "/oncall#schedule-payments-primary");
    b.wait_text("#incident-assignee", "carol").await;
    let png = b.find("#paged").await.screenshot().await.expect("a screenshot of the Paged section");
    std::fs::write(screenshot_dir().join("incident-paged.png"), png).unwrap();
    b.shot("incident-paged-desktop").await;
    b.size(375, 812).await;
    b.goto(&g, &format!("/incidents/{id}")).await;
    b.js("document.getElementById('paged').scrollIntoView()").await;
    b.assert_fits("the incident page at 375 px").await;
    b.shot("incident-paged-phone").await;
    b.size(1280, 900).await;

    // The override is deleted from the keyboard: alice has her shift back.
    b.goto(&g, "/oncall").await;
    b.js("document.getElementById('delete-override-1').focus()").await;
    assert_eq!(b.js("return document.activeElement.id").await, "delete-override-1");
    b.find("#delete-override-1").await.send_keys("\u{e007}").await.unwrap();
    b.wait_text("#flash", "Override #1 of payments-primary deleted").await;
    assert_eq!(b.text("#now-payments-primary").await, "alice");
    assert_eq!(b.text("#next-payments-primary").await, "bob");
    b.wait_text("#schedule-payments-primary", "No overrides").await;
    let (_, left) = api(&g, "GET", "/api/v1/schedules/payments-primary/overrides", VIEWER, None).await;
    assert_eq!(left["overrides"], json!([]), "{left:#}");

    // Tuesday 09:30 Berlin, past the handoff: bob, then alice. The
    // responder's session ended meanwhile (12 h); a viewer signs in, and
    // sees who is on call with no way to change it.
    g.advance_to_as("2026-03-03T08:30:00Z".parse().unwrap(), ADMIN).await;
    b.sign_in(&g, VIEWER, "vic").await;
    b.goto(&g, "/oncall").await;
    b.wait_text("#now-payments-primary", "bob").await;
    assert_eq!(b.text("#next-payments-primary").await, "alice");
    assert_eq!(b.count("#new-override").await + b.count("form.delete").await, 0, "no forms for a viewer");
    let csrf = b.js("return document.body.dataset.csrf").await.as_str().unwrap().to_owned();
    let forged = format!("csrf={csrf}&schedule=payments-primary&person=carol&end=2026-03-04T00:00");
    assert_eq!(b.post_form("/oncall/overrides", &forged).await, 403);
    b.client.clone().close().await.ok();

    // In the dark theme, reached with `g o`.
    let d = Browser::start_with(&["--force-dark-mode"]).await;
    d.sign_in(&g, RESPONDER, "ops").await;
    d.find("body").await.send_keys("go").await.unwrap();
    d.wait_text("#now-payments-primary", "bob").await;
    assert!(d.client.current_url().await.unwrap().path().ends_with("/oncall"), "g o goes to the on-call page");
    assert_eq!(d.js("return getComputedStyle(document.body).backgroundColor").await, "rgb(18, 20, 24)");
    d.shot("oncall-dark-desktop").await;
    d.size(375, 812).await;
    d.goto(&g, "/oncall").await;
    d.find("#now-payments-primary").await;
    d.assert_fits("/oncall dark at 375 px").await;
    d.shot("oncall-dark-phone").await;
    d.client.clone().close().await.ok();
}
