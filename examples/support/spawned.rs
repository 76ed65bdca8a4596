//! A gateway a benchmark starts: `serve` on 127.0.0.1:0 with its own
//! temporary data directory, and its CPU time. Shared by the examples
//! through `#[path]`.
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result};

pub struct Gateway {
    pub child: Child,
    pub base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `bin serve` on an ephemeral port; `setup` writes what it needs
/// into the temporary directory and returns the further arguments.
pub fn start(bin: &str, setup: impl FnOnce(&Path) -> Result<Vec<OsString>>) -> Result<Gateway> {
    let dir = tempfile::tempdir()?;
    let extra = setup(dir.path())?;
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(extra)
        .env("ALERTGATE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("start {bin}"))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let addr = line.trim().strip_prefix("alertgate listening on ").context("no listening line")?.to_owned();
    Ok(Gateway { child, base: format!("http://{addr}"), _dir: dir })
}

/// A process's CPU time so far (user + system), from /proc.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is field 3.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
