//! The suite on PostgreSQL: `ALERTGATE_TEST_BACKEND=postgres` runs every
//! gateway the tests start on a database of its own on the server at
//! `ALERTGATE_TEST_POSTGRES` (default: the local one, user postgres),
//! dropped when the test ends.

/// The server the tests make their databases on.
pub fn server() -> String {
    std::env::var("ALERTGATE_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// True when the suite runs its gateways on PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var("ALERTGATE_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// A database of its own, dropped (with its connections) on drop.
pub struct Database {
    pub url: String,
    name: String,
}

/// The synchronous client runs a runtime of its own, which may not start
/// on a thread that drives async tests: it runs on a thread of its own.
fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().unwrap_or_else(|e| std::panic::resume_unwind(e))
}

impl Database {
    pub fn create() -> Database {
        off_runtime(Database::create_here)
    }

    fn create_here() -> Database {
        let base = server();
        let mut admin = postgres::Client::connect(&base, postgres::NoTls)
            .unwrap_or_else(|e| panic!("the PostgreSQL tests need a server at {base}: {e}"));
        let mut suffix = [0u8; 6];
        getrandom::fill(&mut suffix).unwrap();
        let name = format!("alertgate_it_{}", hex::encode(suffix));
        admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let url = format!("{}/{name}", base.rsplit_once('/').map_or(base.as_str(), |(b, _)| b));
        Database { url, name }
    }

    /// The rows of one query's first column, as text (run off the runtime).
    pub fn column(&self, query: &str) -> Vec<Option<String>> {
        column_at(&self.url, query)
    }
}

/// The rows of one query's first column at `url`, as text.
pub fn column_at(url: &str, query: &str) -> Vec<Option<String>> {
    let (url, query) = (url.to_owned(), query.to_owned());
    off_runtime(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect to the test database");
        c.simple_query(&query)
            .expect("query the test database")
            .into_iter()
            .filter_map(|m| match m {
                postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_owned)),
                _ => None,
            })
            .collect()
    })
}

/// A PostgreSQL server of the test's own (Debian's `postgresql` binaries,
/// a fresh cluster in a temporary directory, an ephemeral port on
/// 127.0.0.1), so the test may stop and start it; stopped on drop. Run
/// as the `postgres` user when the test runs as root (the server refuses
/// root).
pub struct PrivateServer {
    pub url: String,
    bin: std::path::PathBuf,
    data: std::path::PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PrivateServer {
    pub fn start() -> PrivateServer {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("Debian's postgresql package (/usr/lib/postgresql)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").exists())
            .max()
            .expect("initdb under /usr/lib/postgresql/*/bin");
        let dir = tempfile::tempdir().unwrap();
        if as_root() {
            let owned = std::process::Command::new("chown").arg("postgres:postgres").arg(dir.path()).status();
            assert!(owned.is_ok_and(|s| s.success()), "chown the server's directory to postgres");
        }
        let port = super::free_port();
        let server = PrivateServer {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            bin,
            data: dir.path().join("data"),
            port,
            _dir: dir,
        };
        let data = server.data.display().to_string();
        server.run("initdb", &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
        server.start_again();
        server
    }

    /// Start the stopped server, waiting until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c max_connections=50",
            self.port,
            self._dir.path().display()
        );
        let log = self._dir.path().join("server.log").display().to_string();
        self.run("pg_ctl", &["-D", &self.data.display().to_string(), "-o", &options, "-l", &log, "-w", "start"]);
    }

    /// Stop the server (fast: clients are disconnected, as a restart does).
    pub fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data.display().to_string(), "-m", "fast", "-w", "stop"]);
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self.command(program).args(args).output().expect("run a PostgreSQL program");
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn command(&self, program: &str) -> std::process::Command {
        let path = self.bin.join(program);
        let mut cmd = if as_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            std::process::Command::new(&path)
        };
        cmd.current_dir(self._dir.path());
        cmd
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let _ = self.command("pg_ctl").args(["-D", &data, "-m", "immediate", "-w", "stop"]).output();
    }
}

fn as_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Drop for Database {
    fn drop(&mut self) {
        let name = self.name.clone();
        off_runtime(move || {
            if let Ok(mut admin) = postgres::Client::connect(&server(), postgres::NoTls) {
                let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        });
    }
}
