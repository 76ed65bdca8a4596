//! Rule files: `rules/*.yaml`, all files in the directory merged.
//!
//! This module loads the directory and checks each file's structure: valid
//! YAML, a mapping whose top-level keys are the known sections, each section
//! of the right shape. The sections' contents (incident rules, inhibition,
//! SLA policies, ...) compile into typed rules as the engine that uses them
//! lands; `matcher` holds the label matchers they share.
pub mod matcher;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// The top level of one rule file. Unknown keys are errors: a typo in a
/// section name must not silently disable it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // sections are read once their engines land; today their shape is checked
struct RuleFile {
    #[serde(default)]
    incident_rules: Vec<Value>,
    priority_matrix: Option<Value>,
    #[serde(default)]
    inhibit_rules: Vec<Value>,
    #[serde(default)]
    calendars: serde_json::Map<String, Value>,
    #[serde(default)]
    sla_policies: Vec<Value>,
    #[serde(default)]
    escalation_policies: Vec<Value>,
    #[serde(default)]
    problem_rules: Vec<Value>,
}

/// All rule files of a directory, loaded.
#[derive(Debug, Default, Clone)]
pub struct RuleSet {
    pub files: Vec<PathBuf>,
    pub incident_rules: usize,
    pub inhibit_rules: usize,
}

/// One problem in a rule file, located as precisely as known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub rule: Option<String>,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(r) = &self.rule {
            write!(f, ": rule {r}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl RuleSet {
    /// Load every `*.yaml` / `*.yml` file of `dir`, in name order, and
    /// report every error of every file.
    pub fn load_dir(dir: &Path) -> Result<RuleSet, Vec<RuleError>> {
        let err = |file: &Path, message: String| RuleError {
            file: file.to_path_buf(),
            line: None,
            rule: None,
            message,
        };
        let entries = std::fs::read_dir(dir)
            .map_err(|e| vec![err(dir, format!("cannot read rules directory: {e}"))])?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        let mut set = RuleSet::default();
        let mut errors = Vec::new();
        for file in &files {
            let text = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(err(file, format!("cannot read: {e}")));
                    continue;
                }
            };
            if text.trim().is_empty() {
                continue;
            }
            match crate::yaml::from_str::<RuleFile>(&text) {
                Ok(rf) => {
                    set.incident_rules += rf.incident_rules.len();
                    set.inhibit_rules += rf.inhibit_rules.len();
                }
                Err(e) => errors.push(RuleError {
                    file: file.clone(),
                    line: e.line,
                    rule: None,
                    message: e.message,
                }),
            }
        }
        set.files = files;
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_rules_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let set = RuleSet::load_dir(&dir).unwrap();
        assert!(!set.files.is_empty());
        assert!(set.incident_rules > 0);
    }

    #[test]
    fn errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "incident_rules: []\n").unwrap();
        std::fs::write(
            dir.path().join("b.yaml"),
            "incident_rules: []\ninhibit_rulez: []\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("c.yml"), "incident_rules: [\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a rule file").unwrap();
        let errs = RuleSet::load_dir(dir.path()).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        let first = errs[0].to_string();
        assert!(first.contains("b.yaml:2"), "{first}");
        assert!(first.contains("inhibit_rulez"), "{first}");
        assert!(errs[1].to_string().contains("c.yml"));
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let errs = RuleSet::load_dir(Path::new("/nonexistent/rules")).unwrap_err();
        assert!(errs[0].message.contains("cannot read rules directory"));
    }
}
