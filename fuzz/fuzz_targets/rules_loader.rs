//! A rule file: the input is written as the only `*.yaml` file of a rules
//! directory and loaded with `RuleSet::load_dir` (src has no in-memory
//! entry point). Loading must answer Ok or a list of errors, never panic
//! and never overflow the stack. A loaded set is also exercised: every rule
//! routes and titles a sample alert, as the engine does when an alert fires.
//!
//! The load runs on a thread with a tokio worker's stack (2 MiB), where the
//! gateway runs `POST /-/reload`: libFuzzer's main thread has 8 MiB and
//! would hide an overflow that takes a running gateway down.
#![no_main]

use std::sync::OnceLock;

use alertgate::model::{Annotations, LabelSet};
use alertgate::rules::RuleSet;
use libfuzzer_sys::fuzz_target;

/// tokio's default worker thread stack.
const WORKER_STACK: usize = 2 << 20;

fn dir() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"))
}

fn load_and_use(data: &[u8]) {
    let d = dir().path();
    std::fs::write(d.join("rules.yaml"), data).expect("write rule file");
    let Ok(set) = RuleSet::load_dir(d) else { return };
    let labels: LabelSet = [
        ("alertname", "KubePodCrashLooping"),
        ("namespace", "prod-eu"),
        ("severity", "critical"),
        ("service", "payments"),
        ("instance", "10.0.0.1:9100"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let annotations: Annotations = [("summary".to_owned(), "{{ 7*7 }}".to_owned())].into();
    for rule in set.route(&labels) {
        let _ = rule.group_key(&labels);
        let _ = rule.priority(&set.priority_matrix, &labels);
        let _ = set.templates.render(&rule.title_template, &labels, &annotations);
        if let Some(t) = &rule.service_template {
            let _ = set.templates.render(t, &labels, &annotations);
        }
    }
    for rule in &set.incident_rules {
        let _ = rule.matches(&labels);
    }
    for inhibit in &set.inhibit_rules {
        let _ = inhibit.mutes(&labels, &labels);
    }
}

fuzz_target!(|data: &[u8]| {
    let data = data.to_vec();
    let worker = std::thread::Builder::new()
        .stack_size(WORKER_STACK)
        .spawn(move || load_and_use(&data))
        .expect("spawn a loader thread");
    if let Err(panic) = worker.join() {
        std::panic::resume_unwind(panic);
    }
});
