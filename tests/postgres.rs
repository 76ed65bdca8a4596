//! The PostgreSQL store's first pieces, against the local PostgreSQL
//! server (`ALERTGATE_TEST_POSTGRES`, default the local server as user
//! postgres), each test in a database of its own: `alertgate migrate`
//! applies the schema once, also from several processes at once, and
//! never shows a password.
mod common;

use std::process::Command;
use std::time::Duration;

use common::{BIN, run_to_exit};

fn base_url() -> String {
    std::env::var("ALERTGATE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A fresh database, dropped when the test ends.
struct Database {
    admin: postgres::Client,
    name: String,
    url: String,
}

impl Database {
    fn create() -> Database {
        let base = base_url();
        let mut admin = postgres::Client::connect(&base, postgres::NoTls)
            .unwrap_or_else(|e| panic!("these tests need a PostgreSQL server at {base}: {e}"));
        let mut suffix = [0u8; 6];
        getrandom::fill(&mut suffix).unwrap();
        let name = format!("alertgate_test_{}", hex::encode(suffix));
        admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
        Database { admin, name, url }
    }

    fn query_one(&self, sql: &str) -> i64 {
        let mut c = postgres::Client::connect(&self.url, postgres::NoTls).unwrap();
        c.query_one(sql, &[]).unwrap().get(0)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = self.admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

fn migrate(url: &str) -> (bool, String, String) {
    let (status, out, err) =
        run_to_exit(Command::new(BIN).args(["migrate", "--database-url", url]), Duration::from_secs(60));
    (status.success(), out, err)
}

#[test]
fn migrate_applies_the_schema_once() {
    let db = Database::create();
    let (ok, out, err) = migrate(&db.url);
    assert!(ok, "{err}");
    let version = alertgate::store::SCHEMA_VERSION;
    assert!(out.contains(&format!("schema version {version} ({version} migration(s) applied)")), "{out}");
    let (ok, out, err) = migrate(&db.url);
    assert!(ok, "{err}");
    assert!(out.contains("(0 migration(s) applied)"), "{out}");
    assert_eq!(db.query_one("SELECT max(version) FROM schema_version"), version as i64);
    assert_eq!(db.query_one("SELECT count(*) FROM information_schema.tables WHERE table_name = 'incidents'"), 1);
}

#[test]
fn gateways_migrating_at_once_apply_each_migration_once() {
    let db = Database::create();
    let runs: Vec<_> = (0..3)
        .map(|_| {
            Command::new(BIN)
                .args(["migrate", "--database-url", &db.url])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut applied = 0;
    for run in runs {
        let out = run.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        let n: usize = stdout.split('(').nth(1).and_then(|s| s.split(' ').next()).unwrap().parse().unwrap();
        applied += n;
    }
    assert_eq!(applied, alertgate::store::SCHEMA_VERSION, "each migration exactly once across the three");
    assert_eq!(db.query_one("SELECT count(*) FROM schema_version"), 1);
}

#[test]
fn a_database_url_never_shows_its_password() {
    // Nothing listens on port 1: the connection is refused.
    let (ok, out, err) = migrate("postgres://alertgate:s3cret-pw@127.0.0.1:1/alertgate");
    assert!(!ok, "{out}");
    assert!(err.contains("cannot connect to postgres://alertgate:***@127.0.0.1:1/alertgate"), "{err}");
    assert!(!err.contains("s3cret-pw") && !out.contains("s3cret-pw"), "{err}");
}
