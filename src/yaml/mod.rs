//! The one module that knows which YAML crate we use. Documents are read
//! into a tree of nodes that know where they were written (`tree`), and
//! typed values are read from the tree (`de`), so every error names its
//! line and column, and a document's errors can be reported all at once.
mod de;
pub mod tree;

use serde::de::DeserializeOwned;

pub use tree::{Mark, Node};

/// A YAML error, with where it was found when known.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    pub at: Option<Mark>,
    pub message: String,
}

impl YamlError {
    pub fn at(at: Mark, message: impl Into<String>) -> YamlError {
        YamlError { at: Some(at), message: message.into() }
    }

    pub fn line(&self) -> Option<usize> {
        self.at.map(|m| m.line)
    }

    /// `:LINE:COLUMN` to follow a file name, or nothing.
    pub fn location(&self) -> String {
        self.at.map(|m| format!(":{}:{}", m.line, m.column)).unwrap_or_default()
    }
}

/// Read a document into its tree (syntax errors and duplicate keys).
pub fn parse(text: &str) -> Result<Node, Vec<YamlError>> {
    tree::parse(text)
}

/// A typed value from a document; the first error.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    let node = parse(text).map_err(|mut errs| errs.remove(0))?;
    from_node(&node)
}

/// A typed value from a node.
pub fn from_node<T: DeserializeOwned>(node: &Node) -> Result<T, YamlError> {
    T::deserialize(de::De(node))
}

/// Most errors one value reports before giving up.
const MAX_ERRORS: usize = 50;

/// A typed value and every error on the way to it: after each error the
/// mapping entry where it happened is dropped and reading starts again, so
/// one typo does not hide the next. The value (without the dropped
/// entries) comes back when what is left reads; `None` when it does not.
pub fn from_node_all<T: DeserializeOwned>(node: &Node) -> (Option<T>, Vec<YamlError>) {
    let mut work = node.clone();
    let mut errors: Vec<YamlError> = Vec::new();
    while errors.len() < MAX_ERRORS {
        match from_node::<T>(&work) {
            Ok(v) => return (Some(v), errors),
            Err(e) => {
                // A missing field cannot be dropped; and after a drop it
                // may be the drop's own doing.
                let missing = e.message.starts_with("missing field");
                if missing && !errors.is_empty() {
                    return (None, errors);
                }
                let at = e.at;
                errors.push(e);
                if missing || !at.is_some_and(|at| work.remove_entry_at(at)) {
                    return (None, errors);
                }
            }
        }
    }
    (None, errors)
}

/// YAML text of a value (for documents alertgate writes, such as the
/// Alertmanager-style config of `GET /api/v2/status`).
pub fn to_string<T: serde::Serialize>(value: &T) -> Result<String, YamlError> {
    serde_saphyr::to_string(value).map_err(|e| YamlError { at: None, message: e.to_string() })
}

#[cfg(test)]
mod tests {
    #[test]
    fn messages_carry_no_location_or_snippet() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct S {
            a: u32,
        }
        let e = super::from_str::<S>("a: 1\nb: 2\n").unwrap_err();
        assert_eq!(e.line(), Some(2));
        assert_eq!(e.location(), ":2:1");
        assert!(!e.message.contains('\n'), "{}", e.message);
        assert!(!e.message.contains("line 2"), "{}", e.message);
        assert!(e.message.contains("unknown field `b`"), "{}", e.message);
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Rule {
        name: String,
        #[serde(default)]
        count: u32,
        #[serde(default)]
        ratio: Option<f64>,
        #[serde(default)]
        tags: Vec<String>,
        #[serde(default)]
        mode: Option<Mode>,
        #[serde(default)]
        nested: Option<Nested>,
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Fast,
        Slow,
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Nested {
        label: String,
    }

    #[test]
    fn values_read_as_the_core_schema_says() {
        let r: Rule = super::from_str(
            "name: 1000\ncount: 0x10\nratio: 1.5e2\ntags: [a, 'b', \"c\", 3, true]\nmode: slow\nnested: {label: x}\n",
        )
        .unwrap();
        assert_eq!(r.name, "1000", "a plain number is text where text is wanted");
        assert_eq!((r.count, r.ratio), (16, Some(150.0)));
        assert_eq!(r.tags, ["a", "b", "c", "3", "true"]);
        assert_eq!(r.mode, Some(Mode::Slow));
        let e = super::from_str::<Rule>("name: ~\n").unwrap_err();
        assert!(e.message.contains("invalid type"), "{}", e.message);
        let e = super::from_str::<Rule>("name: x\ncount: -1\n").unwrap_err();
        assert_eq!(e.location(), ":2:8");
    }

    #[test]
    fn every_error_of_a_value_at_once_each_where_it_is() {
        let text = "name: x\ncount: many\nlabl: 1\nnested:\n  label: y\n  extra: 2\nmode: medium\n";
        let node = super::parse(text).unwrap();
        let (value, errors) = super::from_node_all::<Rule>(&node);
        let found: Vec<(String, String)> =
            errors.iter().map(|e| (e.location(), e.message.split(',').next().unwrap().to_string())).collect();
        assert_eq!(
            found,
            [
                (":2:8".to_string(), "expected a non-negative number".to_string()),
                (":3:1".to_string(), "unknown field `labl`".to_string()),
                (":6:3".to_string(), "unknown field `extra`".to_string()),
                (":7:7".to_string(), "unknown variant `medium`".to_string()),
            ]
            .map(|(a, b)| (a, b)),
            "{errors:#?}"
        );
        let value = value.expect("what is left reads");
        assert_eq!(value.nested, Some(Nested { label: "y".into() }));
    }
}
