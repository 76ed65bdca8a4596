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
        let (url, query) = (self.url.clone(), query.to_owned());
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
