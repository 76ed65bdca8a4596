//! The deployment recipes run as written: the container image's default
//! command (read from deploy/Dockerfile, with the environment
//! deploy/README.md tells `docker run` to pass), the systemd recipe (the
//! unit's ExecStart on examples/alertgate.yml with its token files, scraped
//! and fed by a real Prometheus on deploy/prometheus/prometheus.yml), every
//! panel of the shipped Grafana dashboard on the first scrape of a fresh
//! gateway, and the README's walkthrough, command by command.
//!
//! No Docker engine or systemd runs here: the files the image and the
//! recipe install are put under a temporary root, and the absolute paths in
//! the arguments and configs are rewritten into it. The only other changes
//! are an ephemeral loopback port where the recipes name 9797 (through
//! `ALERTGATE_LISTEN`, which overrides the config file), and a 1 s scrape
//! interval for Prometheus.
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Gateway, Proc, repo_path, run_to_exit};
use regex::Regex;
use serde_json::{Value, json};

/// Upper bound for any wait on Prometheus or alertgate.
const WAIT: Duration = Duration::from_secs(60);

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).expect("YAML")
}

/// A token no one else has (at least 16 characters, as alertgate demands).
fn fresh_token(role: &str) -> String {
    let nanos = common::wall_clock().as_nanosecond();
    format!("{role}-{}-{nanos:x}", std::process::id())
}

/// `alertgate` with no inherited `ALERTGATE_*` variable.
fn alertgate() -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ALERTGATE_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let p = entry.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

/// A machine's file system under a temporary directory: absolute paths
/// below `prefixes` (as the image or the recipe install them) live under it.
struct Root {
    dir: tempfile::TempDir,
    prefixes: Vec<String>,
}

impl Root {
    fn new(prefixes: &[&str]) -> Root {
        Root {
            dir: tempfile::tempdir().unwrap(),
            prefixes: prefixes.iter().map(|p| p.trim_end_matches('/').into()).collect(),
        }
    }

    fn path(&self, absolute: &str) -> PathBuf {
        self.dir.path().join(absolute.trim_start_matches('/'))
    }

    /// `text` with every absolute path below one of the prefixes moved under the root.
    fn rewrite(&self, text: &str) -> String {
        let path = Regex::new(r#"(^|[\s"'=\[,{])(/[A-Za-z0-9._/-]*)"#).unwrap();
        path.replace_all(text, |c: &regex::Captures| {
            let p = &c[2];
            let ours = self.prefixes.iter().any(|pre| p == pre || p.starts_with(&format!("{pre}/")));
            if ours { format!("{}{}", &c[1], self.path(p).display()) } else { c[0].to_string() }
        })
        .into_owned()
    }

    /// Install a repository file at an absolute path, its absolute paths rewritten.
    fn install(&self, rel: &str, absolute: &str) -> PathBuf {
        let dest = self.path(absolute);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(&dest, self.rewrite(&read(rel))).unwrap();
        dest
    }
}

/// Start the gateway as `cmd` says; killed on drop. Returns it with its
/// address and the file its stderr goes to.
fn start(mut cmd: Command, log: &Path) -> (Proc, String) {
    let err = std::fs::File::create(log).unwrap();
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(err).spawn().expect("start alertgate");
    let mut proc = Proc(child);
    match common::listening_addr(&mut proc.0) {
        Some(addr) => (proc, addr),
        None => panic!("alertgate did not start: {}", std::fs::read_to_string(log).unwrap_or_default()),
    }
}

async fn get_with(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = common::client().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("get");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn post_with(url: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut req = common::client().post(url).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("post");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

// ---- the container image ---------------------------------------------------------

/// What deploy/Dockerfile's final stage does.
#[derive(Debug, Default)]
struct Image {
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    env: Vec<(String, String)>,
    /// (source in the build context, destination)
    copies: Vec<(String, String)>,
    volumes: Vec<String>,
    workdir: String,
    exposed: Vec<u16>,
    healthcheck: String,
}

impl Image {
    fn parse(text: &str) -> Image {
        // Instructions, continuation lines joined, comments dropped.
        let mut instructions: Vec<(String, String)> = Vec::new();
        let mut current = String::new();
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
                continue;
            }
            if let Some(head) = t.strip_suffix('\\') {
                current.push_str(head);
                current.push(' ');
                continue;
            }
            current.push_str(t);
            let (word, rest) = current.split_once(char::is_whitespace).unwrap_or((&current, ""));
            instructions.push((word.to_uppercase(), rest.trim().to_string()));
            current.clear();
        }
        let last_from = instructions.iter().rposition(|(i, _)| i == "FROM").expect("a FROM");
        let json_array = |rest: &str| -> Vec<String> {
            serde_json::from_str(rest).unwrap_or_else(|e| panic!("not the exec form (a JSON array): {rest}: {e}"))
        };
        let mut image = Image::default();
        for (word, rest) in &instructions[last_from..] {
            match word.as_str() {
                "ENTRYPOINT" => image.entrypoint = json_array(rest),
                "CMD" => image.cmd = json_array(rest),
                "ENV" => {
                    for pair in rest.split_whitespace() {
                        let (k, v) = pair.split_once('=').expect("ENV NAME=VALUE");
                        image.env.push((k.into(), v.trim_matches('"').into()));
                    }
                }
                "COPY" if !rest.contains("--from") => {
                    let words: Vec<&str> = rest.split_whitespace().filter(|w| !w.starts_with("--")).collect();
                    let (dest, sources) = words.split_last().expect("COPY SRC DEST");
                    for src in sources {
                        image.copies.push((src.to_string(), dest.to_string()));
                    }
                }
                "VOLUME" => image.volumes.extend(rest.split_whitespace().map(str::to_string)),
                "WORKDIR" => image.workdir = rest.clone(),
                "EXPOSE" => image.exposed.extend(rest.split_whitespace().map(|p| p.parse::<u16>().expect("a port"))),
                "HEALTHCHECK" => image.healthcheck = rest.clone(),
                _ => {}
            }
        }
        image
    }

    /// A root with what the image holds: each COPY from the build context
    /// (the repository), the volumes and the working directory.
    fn root(&self) -> Root {
        let mut prefixes: Vec<&str> = self.copies.iter().map(|(_, d)| d.as_str()).collect();
        prefixes.extend(self.volumes.iter().map(String::as_str));
        prefixes.push(&self.workdir);
        let root = Root::new(&prefixes);
        for (src, dest) in &self.copies {
            let from = repo_path(src);
            if from.is_dir() {
                copy_dir(&from, &root.path(dest));
            } else if dest.ends_with('/') {
                root.install(src, &format!("{dest}{}", from.file_name().unwrap().to_string_lossy()));
            } else {
                root.install(src, dest);
            }
        }
        for dir in self.volumes.iter().chain([&self.workdir]) {
            std::fs::create_dir_all(root.path(dir)).unwrap();
        }
        root
    }
}

/// The variables deploy/README.md's `docker run` passes with `-e NAME`
/// (from the caller's environment) or `-e NAME=VALUE`.
fn documented_docker_env() -> BTreeMap<String, Option<String>> {
    let readme = read("deploy/README.md");
    let joined = readme.replace("\\\n", " ");
    let run_lines: Vec<&str> = joined.lines().filter(|l| l.trim_start().starts_with("docker run")).collect();
    assert!(!run_lines.is_empty(), "deploy/README.md has no `docker run` line");
    let flag = Regex::new(r"(?:^|\s)-e\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(\S+))?").unwrap();
    run_lines
        .iter()
        .flat_map(|l| flag.captures_iter(l))
        .map(|c| (c[1].to_string(), c.get(2).map(|m| m.as_str().to_string())))
        .collect()
}

/// The `token_env` variables of a config.
fn token_envs(config: &Value) -> BTreeSet<String> {
    config["auth"]["tokens"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["token_env"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_container_image_default_command_serves_with_the_documented_tokens() {
    let image = Image::parse(&read("deploy/Dockerfile"));
    assert_eq!(image.entrypoint, ["alertgate"], "the image's entry point is the binary");
    assert!(!image.cmd.is_empty(), "no CMD");
    let root = image.root();
    let args: Vec<String> = image.cmd.iter().map(|a| root.rewrite(a)).collect();

    // The config the default command serves: all interfaces on the port the
    // image exposes and its health check asks, so it needs tokens, which
    // come from the environment.
    let config_at = args.iter().position(|a| a == "--config").map(|i| PathBuf::from(&args[i + 1])).expect("--config");
    let config = yaml(&std::fs::read_to_string(&config_at).expect("the config is in the image"));
    let listen = config["listen"].as_str().expect("listen");
    assert!(listen.starts_with("0.0.0.0:"), "a container must listen on all its interfaces to be published: {listen}");
    let port: u16 = listen.rsplit(':').next().unwrap().parse().unwrap();
    assert!(image.exposed.contains(&port), "listens on {port}, exposes {:?}", image.exposed);
    assert!(image.healthcheck.contains(&format!("/dev/tcp/127.0.0.1/{port}")), "{}", image.healthcheck);
    let health_path =
        Regex::new(r"GET (\S+) HTTP").unwrap().captures(&image.healthcheck).expect("a GET")[1].to_string();
    let wanted = token_envs(&config);
    assert!(wanted.len() >= 3, "tokens from the environment: {wanted:?}");
    let documented = documented_docker_env();
    let passed: BTreeSet<String> = documented.keys().cloned().collect();
    assert!(wanted.is_subset(&passed), "deploy/README.md's docker run passes {passed:?}; the image needs {wanted:?}");

    let workdir = root.path(&image.workdir);
    let command = |env: &[(String, String)]| {
        let mut cmd = alertgate();
        cmd.args(&args).current_dir(&workdir).envs(image.env.iter().map(|(k, v)| (k, v)));
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        // The published port: an ephemeral one on loopback here.
        cmd.env("ALERTGATE_LISTEN", "127.0.0.1:0");
        cmd
    };

    // Without them, it stops at once and names every missing variable.
    let (status, _, stderr) = run_to_exit(&mut command(&[]), WAIT);
    assert!(!status.success(), "started without tokens:\n{stderr}");
    for var in &wanted {
        assert!(stderr.contains(var.as_str()), "{var} is not named:\n{stderr}");
    }

    // With them, as `docker run -e NAME` passes them, it starts and serves.
    let tokens: BTreeMap<String, String> = documented
        .iter()
        .map(|(name, value)| (name.clone(), value.clone().unwrap_or_else(|| fresh_token(&name.to_lowercase()))))
        .collect();
    let env: Vec<(String, String)> = tokens.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let log = root.dir.path().join("alertgate.log");
    let (_proc, addr) = start(command(&env), &log);
    let url = |path: &str| format!("http://{addr}{path}");
    let token_of = |role: &str| {
        let var = config["auth"]["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["role"] == role)
            .and_then(|t| t["token_env"].as_str())
            .unwrap_or_else(|| panic!("no {role} token"));
        tokens[var].clone()
    };
    let (ingest, viewer, admin) = (token_of("ingest"), token_of("viewer"), token_of("admin"));

    let (status, _) = get_with(&url(&health_path), None).await;
    assert_eq!(status, 200, "the health check's {health_path}");
    let (status, body) = get_with(&url("/api/v1/incidents"), None).await;
    assert_eq!(status, 401, "tokens are in force: {body}");
    let alert = json!([{"labels": {"alertname": "ContainerTest", "service": "payments"}}]);
    let (status, body) = post_with(&url("/api/v2/alerts"), Some(&ingest), &alert).await;
    assert_eq!(status, 200, "ingest token: {body}");
    let (status, body) = get_with(&url("/api/v1/alerts"), Some(&viewer)).await;
    assert_eq!(status, 200, "viewer token: {body}");
    assert_eq!(body["alerts"][0]["labels"]["alertname"], "ContainerTest", "{body}");
    let silence = json!({"matchers": ["alertname=\"ContainerTest\""], "endsAt": "2099-01-01T00:00:00Z",
                         "createdBy": "test", "comment": "container"});
    let (status, _) = post_with(&url("/api/v1/silences"), Some(&viewer), &silence).await;
    assert_eq!(status, 403, "a viewer may not add silences");
    let (status, body) = post_with(&url("/api/v1/silences"), Some(&admin), &silence).await;
    assert_eq!(status, 201, "admin token: {body}");

    // The command line with the admin token, as the README shows.
    let mut cli = alertgate();
    cli.args(["alerts", "list"]).env("ALERTGATE_URL", &addr).env("ALERTGATE_TOKEN", &admin);
    let (status, stdout, stderr) = tokio::task::spawn_blocking(move || run_to_exit(&mut cli, WAIT)).await.unwrap();
    assert!(status.success() && stdout.contains("ContainerTest"), "{stdout}\n{stderr}");

    // The database is in the image's volume.
    let volume = root.path(&image.volumes[0]);
    assert!(volume.join("alertgate.db").exists(), "no database in the volume {}", volume.display());
}

// ---- Prometheus ------------------------------------------------------------------

const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";

/// A real Prometheus; killed on drop.
struct Prometheus {
    _proc: Proc,
    addr: String,
    log: PathBuf,
}

impl Prometheus {
    /// Start Prometheus in `dir` on a free loopback port; `config` makes
    /// its config file from the port's address (so it can scrape itself).
    async fn start(dir: &Path, config: impl Fn(&str) -> String) -> Prometheus {
        let bin = std::env::var("ALERTGATE_TEST_PROMETHEUS").unwrap_or_else(|_| PROMETHEUS_BIN.to_string());
        assert!(Path::new(&bin).exists(), "{bin} is missing: install Debian's `prometheus` package to run this test");
        let cfg = dir.join("prometheus.yml");
        let (proc, addr, log) = common::start_peer(&bin, dir, "prometheus", WAIT, |addr, attempt| {
            std::fs::write(&cfg, config(addr)).unwrap();
            vec![
                format!("--config.file={}", cfg.display()),
                format!("--storage.tsdb.path={}", dir.join(format!("data-{attempt}")).display()),
                format!("--web.listen-address={addr}"),
                // Send firing alerts again every second, not every minute.
                "--rules.alert.resend-delay=1s".into(),
            ]
        })
        .await;
        Prometheus { _proc: proc, addr, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// An instant query (at `time`, Unix seconds, if given): the result vector.
    async fn query(&self, promql: &str, time: Option<f64>) -> Result<Vec<Value>, String> {
        let mut params = vec![("query", promql.to_string())];
        params.extend(time.map(|t| ("time", format!("{t:.3}"))));
        let resp = common::client()
            .get(format!("http://{}/api/v1/query", self.addr))
            .query(&params)
            .send()
            .await
            .map_err(|e| format!("{promql}: {e}"))?;
        let body: Value = resp.json().await.map_err(|e| format!("{promql}: {e}"))?;
        if body["status"] != "success" {
            return Err(format!("{promql}: {body}"));
        }
        Ok(body["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// Poll until `check` returns Ok; after `WAIT`, panic with its last
    /// answer and Prometheus' log.
    async fn wait<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, String>>,
    {
        let deadline = Instant::now() + WAIT;
        loop {
            let last = match check().await {
                Ok(v) => return v,
                Err(e) => e,
            };
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; last: {last}\n=== Prometheus log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn sample_value(sample: &Value) -> f64 {
    sample["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

// ---- the systemd recipe -------------------------------------------------------------

/// The `credentials_file` values of a Prometheus config, everywhere in it.
fn credentials_files(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("credentials_file", Value::String(f)) => out.push(f.clone()),
                    _ => credentials_files(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| credentials_files(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_systemd_recipe_is_scraped_and_fed_by_prometheus_with_its_tokens() {
    let unit = read("deploy/alertgate.service");
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("ExecStart");
    let words: Vec<&str> = exec.split_whitespace().collect();
    assert!(words[0].ends_with("/alertgate"), "{exec}");
    let state_dir = unit.lines().find_map(|l| l.strip_prefix("StateDirectory=")).expect("StateDirectory");
    let root = Root::new(&["/etc/alertgate", "/etc/prometheus", &format!("/var/lib/{state_dir}")]);
    let readme = read("deploy/README.md");

    // As deploy/README.md installs it: the shipped rules, the example
    // config, a token file for each token it names, the state directory.
    for entry in std::fs::read_dir(repo_path("rules")).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".yaml") {
            root.install(&format!("rules/{name}"), &format!("/etc/alertgate/rules/{name}"));
        }
    }
    assert!(
        readme.contains("examples/alertgate.yml /etc/alertgate/alertgate.yml"),
        "the recipe copies the example config"
    );
    root.install("examples/alertgate.yml", "/etc/alertgate/alertgate.yml");
    let config = yaml(&read("examples/alertgate.yml"));
    let mut tokens: BTreeMap<String, String> = BTreeMap::new();
    for t in config["auth"]["tokens"].as_array().expect("auth.tokens") {
        let file = t["token_file"].as_str().unwrap_or_else(|| panic!("a token not from a file: {t}"));
        let role = t["role"].as_str().unwrap().to_string();
        let installed = Path::new("/etc/alertgate").join(file);
        assert!(
            readme.contains(&installed.parent().unwrap().display().to_string()),
            "deploy/README.md does not create {}",
            installed.display()
        );
        let token = fresh_token(&role);
        let at = root.path(&installed.display().to_string());
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::write(&at, format!("{token}\n")).unwrap();
        tokens.insert(role, token);
    }
    for role in ["ingest", "viewer", "admin"] {
        assert!(tokens.contains_key(role), "examples/alertgate.yml has no {role} token: {tokens:?}");
    }
    std::fs::create_dir_all(root.path(&format!("/var/lib/{state_dir}"))).unwrap();

    let mut cmd = alertgate();
    cmd.args(words[1..].iter().map(|a| root.rewrite(a))).env("ALERTGATE_LISTEN", "127.0.0.1:0");
    let (_gateway, addr) = start(cmd, &root.dir.path().join("alertgate.log"));
    let (status, _) = get_with(&format!("http://{addr}/metrics"), None).await;
    assert_eq!(status, 401, "/metrics needs a token, so the scrape below succeeds only with its credentials");

    // Prometheus as the recipe sets it up: its config, the rules beside it,
    // and the token files it names, copied from alertgate's.
    let prom_text = read("deploy/prometheus/prometheus.yml");
    let mut files = Vec::new();
    credentials_files(&yaml(&prom_text), &mut files);
    assert!(files.len() >= 2, "the scrape and the alert push both authenticate: {files:?}");
    let prom_dir = root.path("/etc/prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    std::fs::copy(repo_path("deploy/prometheus/alertgate.rules.yml"), prom_dir.join("alertgate.rules.yml")).unwrap();
    for f in &files {
        let role = ["ingest", "viewer", "admin"]
            .into_iter()
            .find(|r| f.contains(r))
            .unwrap_or_else(|| panic!("{f}: whose token?"));
        assert!(readme.contains(f.as_str()), "deploy/README.md does not write {f}");
        std::fs::write(prom_dir.join(f), format!("{}\n", tokens[role])).unwrap();
    }
    // Debian's Alertmanager is not running here: a port nobody listens on.
    let no_alertmanager = format!("127.0.0.1:{}", common::free_port());
    let p = Prometheus::start(&prom_dir, |own| {
        root.rewrite(&prom_text)
            .replace("127.0.0.1:9797", &addr)
            .replace("127.0.0.1:9093", &no_alertmanager)
            .replace("127.0.0.1:9090", own)
            .replace("scrape_interval: 30s", "scrape_interval: 1s")
            .replace("evaluation_interval: 30s", "evaluation_interval: 1s")
    })
    .await;

    // The scrape succeeds ...
    p.wait("up{job=\"alertgate\"} == 1", || async {
        let r = p.query("up{job=\"alertgate\"}", None).await?;
        if r.len() == 1 && sample_value(&r[0]) == 1.0 { Ok(()) } else { Err(format!("{}", Value::Array(r))) }
    })
    .await;
    let (_, targets) = get_with(&format!("http://{}/api/v1/targets", p.addr), None).await;
    let ours = targets["data"]["activeTargets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["labels"]["job"] == "alertgate")
        .cloned()
        .expect("the alertgate target");
    assert_eq!(ours["health"], "up", "{ours}");
    assert_eq!(ours["lastError"], "", "{ours}");

    // ... and so does the alert push: the shipped rules' heartbeat arrives.
    let url = format!("http://{addr}/api/v1/alerts?filter=alertname%3D%22AlertgateDeadMansSwitch%22");
    let viewer = tokens["viewer"].clone();
    p.wait("the heartbeat pushed to alertgate", || async {
        let (status, body) = get_with(&url, Some(&viewer)).await;
        let n = body["alerts"].as_array().map_or(0, Vec::len);
        if status == 200 && n == 1 { Ok(()) } else { Err(format!("{status} {body}")) }
    })
    .await;
}

// ---- the Grafana dashboard ---------------------------------------------------------

/// Every panel, those nested in rows included.
fn panels(dash: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    let mut stack: Vec<Value> = dash["panels"].as_array().cloned().unwrap_or_default();
    while let Some(p) = stack.pop() {
        stack.extend(p["panels"].as_array().cloned().unwrap_or_default());
        out.push(p);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_dashboard_panel_shows_a_value_from_the_first_scrape_of_a_fresh_gateway() {
    let g = Gateway::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(repo_path("deploy/prometheus/alertgate.rules.yml"), dir.path().join("alertgate.rules.yml")).unwrap();
    let target = g.addr.clone();
    let p = Prometheus::start(dir.path(), |_| {
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: [alertgate.rules.yml]\n\
             scrape_configs:\n  - job_name: alertgate\n    static_configs: [{{targets: ['{target}']}}]\n"
        )
    })
    .await;

    // The instant of the first scrape: every query is asked as of then,
    // when each series has one sample and rate() has nothing to work on.
    let first = p
        .wait("the first scrape", || async {
            let r = p.query("up{job=\"alertgate\"}[1h]", None).await?;
            let values = r.first().and_then(|s| s["values"].as_array().cloned()).unwrap_or_default();
            values.first().and_then(|v| v[0].as_f64()).ok_or_else(|| format!("{}", Value::Array(r)))
        })
        .await;

    let dash: Value = serde_json::from_str(&read("deploy/grafana/dashboards/alertgate.json")).unwrap();
    let mut failures = Vec::new();
    let mut asked = 0;
    for panel in panels(&dash) {
        if panel["type"] == "row" {
            continue;
        }
        for t in panel["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("expr");
            // What Grafana puts in place of its variables: the rate window
            // it would pick, a range, and the "All" of $service.
            let promql = expr.replace("$__rate_interval", "1m").replace("$__range", "1h").replace("$service", ".*");
            asked += 1;
            match p.query(&promql, Some(first)).await {
                Ok(r) if r.iter().any(|s| sample_value(s).is_finite()) => {}
                Ok(r) => failures.push(format!("panel {}: {expr} = {}", panel["title"], Value::Array(r))),
                Err(e) => failures.push(format!("panel {}: {e}", panel["title"])),
            }
        }
    }
    assert!(asked >= 40, "only {asked} queries");
    assert!(failures.is_empty(), "panels without a value at the first scrape (\"No data\"):\n{}", failures.join("\n"));
}

// ---- the README's walkthrough -----------------------------------------------------

/// The first `sh` block after the heading `## {heading}` of README.md.
fn readme_block(heading: &str) -> String {
    let readme = read("README.md");
    let at = readme.find(&format!("## {heading}\n")).unwrap_or_else(|| panic!("no section {heading}"));
    let rest = &readme[at..];
    let start = rest.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = rest[start..].find("```").expect("the block's end");
    rest[start..start + end].to_string()
}

#[test]
fn the_readme_walkthrough_runs_top_to_bottom() {
    let script = readme_block("Point your senders at it");
    let bin_dir = Path::new(BIN).parent().unwrap().display().to_string();
    // What a fresh checkout has that the walkthrough uses; it runs in a
    // copy, so that its ./data is not the repository's.
    let mut failures = Vec::new();
    for attempt in 1..=3 {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&repo_path("rules"), &dir.path().join("rules"));
        copy_dir(&repo_path("tests/fixtures"), &dir.path().join("tests/fixtures"));
        // The build is this test's binary (release or debug); the port a free one.
        let port = common::free_port();
        let address = format!("127.0.0.1:{port}");
        assert!(script.contains("cargo build --release\n"), "{script}");
        assert!(script.contains("$PWD/target/release"), "{script}");
        let text = script
            .replace("cargo build --release\n", ": the binary is built\n")
            .replace("$PWD/target/release", &bin_dir)
            .replace("127.0.0.1:9797", &address);
        let mut cmd = Command::new("bash");
        cmd.args(["-e", "-c", &text])
            .current_dir(dir.path())
            .env("ALERTGATE_LISTEN", &address)
            .env("ALERTGATE_URL", format!("http://{address}"))
            .env_remove("ALERTGATE_TOKEN")
            .env_remove("ALERTGATE_CONFIG")
            .env_remove("ALERTGATE_RULES")
            .env_remove("ALERTGATE_DATA_DIR");
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("bash");
        let pgid = child.id();
        let out = std::thread::spawn({
            let mut s = child.stdout.take().unwrap();
            move || {
                let mut t = String::new();
                std::io::Read::read_to_string(&mut s, &mut t).ok();
                t
            }
        });
        let err = std::thread::spawn({
            let mut s = child.stderr.take().unwrap();
            move || {
                let mut t = String::new();
                std::io::Read::read_to_string(&mut s, &mut t).ok();
                t
            }
        });
        let status = common::wait_exit(&mut child, Duration::from_secs(120));
        // Whatever the script left running (the gateway, if it failed before `kill %1`).
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).stderr(Stdio::null()).status();
        let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
        if status.success() {
            eprintln!("{stdout}");
            for want in ["HighLatency", "acknowledged", "SLA report", "alertgate_incidents_open{"] {
                assert!(
                    stdout.contains(want),
                    "{want:?} not in the walkthrough's output:\n{stdout}\n--- stderr\n{stderr}"
                );
            }
            assert!(dir.path().join("data/alertgate.db").exists(), "no ./data/alertgate.db");
            return;
        }
        // A port taken between choosing and binding: again, elsewhere.
        failures.push(format!("attempt {attempt} ({status}):\n{stdout}\n--- stderr\n{stderr}"));
        if !stderr.contains("Address already in use") {
            break;
        }
    }
    panic!("the walkthrough failed:\n{}", failures.join("\n"));
}
