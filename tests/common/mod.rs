//! Test support: start the real `alertgate` binary on an ephemeral port with
//! its own temporary data directory, and talk to it over HTTP.
#![allow(dead_code)] // each test binary uses a different part of this

pub mod pg;
pub mod smtp;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_alertgate");

/// The wall clock, for tests of a gateway that runs on it: the tests' one
/// read of it (`clippy.toml` disallows the others, as in the gateway).
#[allow(clippy::disallowed_methods)]
pub fn wall_clock() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(repo_path("tests/fixtures").join(name)).expect("fixture")
}

/// Run a command to its exit, failing the test after `timeout`; returns the
/// status, stdout and stderr.
pub fn run_to_exit(cmd: &mut Command, timeout: Duration) -> (ExitStatus, String, String) {
    let mut child =
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn alertgate");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let status = wait_exit(&mut child, timeout);
    (status, out.join().unwrap(), err.join().unwrap())
}

/// Wait for the process to exit; kill it and fail after `timeout`.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("alertgate did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The address from a server's first stdout line, `alertgate listening on
/// ADDR`; the rest of stdout is drained so the server never blocks on it.
/// `None` when no such line comes within 30 s.
pub fn listening_addr(child: &mut Child) -> Option<String> {
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {}
    });
    let line = rx.recv_timeout(Duration::from_secs(30)).ok()?;
    Some(
        line.strip_prefix("alertgate listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string(),
    )
}

/// A running gateway. Killed on drop.
pub struct Gateway {
    pub child: Child,
    pub addr: String,
    pub dir: PathBuf,
    pub args: Vec<String>,
    /// A program that runs the gateway (e.g. `prlimit --nofile=…`), if any.
    pub launcher: Vec<String>,
    /// Where the controlled clock stands, when the gateway runs on one; a
    /// restart starts it there again.
    clock: std::sync::Mutex<Option<Timestamp>>,
    /// The gateway's own PostgreSQL database, when the suite runs on PostgreSQL.
    pub database: Option<pg::Database>,
    _tmp: Option<tempfile::TempDir>,
    stderr_log: PathBuf,
}

#[derive(Default)]
pub struct Options {
    pub config: Option<String>,
    pub rules_dir: Option<PathBuf>,
    pub extra: Vec<String>,
    /// Run the gateway through this program and its arguments.
    pub launcher: Vec<String>,
    /// Run on a controlled clock standing at this instant (`serve
    /// --test-clock`); time then moves only by [`Gateway::advance`].
    pub test_clock: Option<Timestamp>,
    /// Keep the data in this PostgreSQL database (shared with other
    /// gateways of the test), whatever backend the suite runs on.
    pub database_url: Option<String>,
}

impl Options {
    /// A gateway on its embedded SQLite file, whatever backend the suite
    /// runs on (for what only SQLite has: its files, WAL, backups).
    pub fn embedded() -> Options {
        Options { database_url: Some(String::new()), ..Default::default() }
    }
}

/// Where tests on a controlled clock start: a Monday, 09:00 UTC (10:00 in
/// Berlin), so calendars give the same answer on every run.
pub fn t0() -> Timestamp {
    "2026-03-02T09:00:00Z".parse().unwrap()
}

impl Gateway {
    pub fn start() -> Gateway {
        Gateway::start_with(Options::default())
    }

    pub fn start_with(opts: Options) -> Gateway {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut args = vec![
            "serve".to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--data-dir".into(),
            dir.join("data").display().to_string(),
            "--rules".into(),
            opts.rules_dir.unwrap_or_else(|| repo_path("rules")).display().to_string(),
        ];
        if let Some(cfg) = opts.config {
            let p = dir.join("alertgate.yml");
            std::fs::write(&p, cfg).unwrap();
            args.push("--config".into());
            args.push(p.display().to_string());
        }
        // The whole suite runs on either backend (ALERTGATE_TEST_BACKEND=postgres).
        let database = (opts.database_url.is_none() && pg::on_postgres()).then(pg::Database::create);
        if let Some(url) = opts.database_url.as_ref().or(database.as_ref().map(|d| &d.url)) {
            args.push("--database-url".into());
            args.push(url.clone());
        }
        args.extend(opts.extra);
        let (child, addr, stderr_log) = spawn(&dir, &opts.launcher, &args, opts.test_clock);
        Gateway {
            child,
            addr,
            dir,
            args,
            launcher: opts.launcher,
            clock: std::sync::Mutex::new(opts.test_clock),
            database,
            _tmp: Some(tmp),
            stderr_log,
        }
    }
}

fn spawn(dir: &Path, launcher: &[String], args: &[String], clock: Option<Timestamp>) -> (Child, String, PathBuf) {
    let stderr_log = dir.join(format!("stderr-{}.log", wall_clock().as_nanosecond()));
    let err = std::fs::File::create(&stderr_log).unwrap();
    let mut cmd = match launcher.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(BIN);
            c
        }
        None => Command::new(BIN),
    };
    cmd.args(args);
    if let Some(t) = clock {
        cmd.args(["--test-clock", &t.to_string()]);
    }
    let mut child = cmd
        .env_remove("ALERTGATE_LISTEN")
        .env("ALERTGATE_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .expect("start alertgate");
    let Some(addr) = listening_addr(&mut child) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("alertgate did not start: {}", std::fs::read_to_string(&stderr_log).unwrap_or_default());
    };
    (child, addr, stderr_log)
}

impl Gateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// `kill -9`: no chance to flush or close anything.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        self.child.wait().expect("wait")
    }

    /// Start again on the same data directory (and a new port), after the
    /// caller stopped it its own way.
    pub fn respawn(&mut self) {
        let (child, addr, stderr_log) = spawn(&self.dir, &self.launcher, &self.args, self.clock());
        self.child = child;
        self.addr = addr;
        self.stderr_log = stderr_log;
    }

    /// Start again on the same data directory (and a new port).
    pub fn restart(&mut self) {
        self.kill9();
        let (child, addr, stderr_log) = spawn(&self.dir, &self.launcher, &self.args, self.clock());
        self.child = child;
        self.addr = addr;
        self.stderr_log = stderr_log;
    }

    /// Start again, its controlled clock at `t`: the time that passed while
    /// it was down (after the caller stopped it its own way).
    pub fn respawn_at(&mut self, t: Timestamp) {
        let was = self.clock().expect("respawn_at needs a gateway on a controlled clock");
        assert!(t >= was, "the clock never goes backwards: it stood at {was}, {t} is earlier");
        *self.clock.lock().unwrap() = Some(t);
        self.respawn();
    }

    fn clock(&self) -> Option<Timestamp> {
        *self.clock.lock().unwrap()
    }

    /// The gateway's time: its controlled clock's, or else the wall clock's.
    pub fn now(&self) -> Timestamp {
        self.clock().unwrap_or_else(wall_clock)
    }

    /// Move the controlled clock forward by `d`. Returns once every timer
    /// due meanwhile has run, each at its own instant; the new time.
    pub async fn advance(&self, d: SignedDuration) -> Timestamp {
        self.advance_to(self.now() + d).await
    }

    /// Move the controlled clock forward to `t` (see [`Gateway::advance`]).
    pub async fn advance_to(&self, t: Timestamp) -> Timestamp {
        self.move_clock(t, None).await
    }

    /// As [`Gateway::advance_to`], on a gateway with tokens: `admin` is an
    /// admin's token (only admins move the clock).
    pub async fn advance_to_as(&self, t: Timestamp, admin: &str) -> Timestamp {
        self.move_clock(t, Some(admin)).await
    }

    async fn move_clock(&self, t: Timestamp, token: Option<&str>) -> Timestamp {
        assert!(self.clock().is_some(), "only a gateway on a controlled clock (Options::test_clock) moves in time");
        let mut req = client()
            .post(self.url("/-/clock"))
            .header("content-type", "application/json")
            .body(serde_json::json!({ "to": t }).to_string());
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.expect("post /-/clock");
        let status = resp.status().as_u16();
        let body: Value = serde_json::from_str(&resp.text().await.unwrap_or_default()).unwrap_or(Value::Null);
        assert_eq!(status, 200, "moving the clock to {t}: {body}");
        let now: Timestamp = body["now"].as_str().expect("the clock's time").parse().unwrap();
        assert_eq!(now, t, "the clock stands where it was sent");
        *self.clock.lock().unwrap() = Some(now);
        now
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test shows what the gateway said (the log's errors and warnings).
        if std::thread::panicking() {
            let said: Vec<String> = self
                .stderr()
                .lines()
                .filter(|l| l.contains("ERROR") || l.contains("WARN"))
                .map(str::to_owned)
                .collect();
            let from = said.len().saturating_sub(20);
            eprintln!("--- the gateway's last warnings and errors:\n{}", said[from..].join("\n"));
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

/// POST a JSON text; returns status and parsed body (Null when not JSON).
pub async fn post(url: &str, body: &str) -> (u16, Value) {
    let resp = client()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("post");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A series' value on a gateway's `/metrics` (`series` with its labels as
/// exposed, e.g. `name{label="v"}`); `None` while it is not exposed.
pub async fn metric(g: &Gateway, series: &str) -> Option<f64> {
    let text = client().get(g.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

pub async fn get(url: &str) -> (u16, Value) {
    let resp = client().get(url).send().await.expect("get");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Poll until `check` returns Some, or panic after `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every alert stored, following the cursor through all pages.
pub async fn all_alerts(g: &Gateway, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = g.url(&format!("/api/v1/alerts?limit=1000{query}"));
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = get(&url).await;
        assert_eq!(status, 200, "{page}");
        out.extend(page["alerts"].as_array().unwrap().iter().cloned());
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

/// A real peer (Prometheus, Alertmanager) started by a test; killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// True once `GET http://ADDR/-/ready` answers 200 (Prometheus and
/// Alertmanager both have it); false if the process exits first; panics with
/// the peer's log after `timeout`.
pub async fn wait_ready(proc: &mut Proc, addr: &str, log: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let url = format!("http://{addr}/-/ready");
    while Instant::now() < deadline {
        if let Ok(Some(_)) = proc.0.try_wait() {
            return false;
        }
        if let Ok(r) = client().get(&url).timeout(Duration::from_secs(2)).send().await
            && r.status() == 200
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{addr} not ready after {timeout:?}:\n{}", std::fs::read_to_string(log).unwrap_or_default());
}

/// A loopback port free right now. The listener is dropped before the
/// caller binds, so a retry covers the port being taken meanwhile.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().unwrap().port()
}

/// Start a real Alertmanager (Debian's, or `ALERTGATE_TEST_ALERTMANAGER`)
/// with `config` and its storage in `dir`, without a cluster; its address.
pub async fn start_alertmanager(dir: &Path, name: &str, config: &str) -> (Proc, String) {
    let bin =
        std::env::var("ALERTGATE_TEST_ALERTMANAGER").unwrap_or_else(|_| "/usr/bin/prometheus-alertmanager".into());
    assert!(Path::new(&bin).exists(), "{bin} is missing: install Debian's prometheus-alertmanager");
    let cfg = dir.join(format!("{name}.yml"));
    std::fs::write(&cfg, config).unwrap();
    let storage = dir.join(format!("{name}-data"));
    std::fs::create_dir_all(&storage).unwrap();
    let (proc, addr, _log) = start_peer(&bin, dir, name, Duration::from_secs(60), |addr, _| {
        vec![
            format!("--config.file={}", cfg.display()),
            format!("--web.listen-address={addr}"),
            "--cluster.listen-address=".into(),
            format!("--storage.path={}", storage.display()),
        ]
    })
    .await;
    (proc, addr)
}

/// Start a real peer (`bin` with `args(addr, attempt)`) on a free loopback
/// port, its stderr in `dir/NAME-ATTEMPT.log`, and wait until it is ready.
/// If another process takes the port between probing and binding, the peer
/// exits and is started again on another port, five times at most.
pub async fn start_peer(
    bin: &str,
    dir: &Path,
    name: &str,
    timeout: Duration,
    args: impl Fn(&str, usize) -> Vec<String>,
) -> (Proc, String, PathBuf) {
    let mut logs = String::new();
    for attempt in 1..=5 {
        let log = dir.join(format!("{name}-{attempt}.log"));
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(bin)
            .args(args(&addr, attempt))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let mut proc = Proc(child);
        if wait_ready(&mut proc, &addr, &log, timeout).await {
            return (proc, addr, log);
        }
        drop(proc);
        logs.push_str(&format!(
            "--- attempt {attempt} on {addr}:\n{}\n",
            std::fs::read_to_string(&log).unwrap_or_default()
        ));
    }
    panic!("{name} exited at start five times:\n{logs}");
}
