//! The one module that knows which YAML crate we use.
use serde::de::DeserializeOwned;

/// A YAML error with the line it was found on, when known.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    pub line: Option<usize>,
    pub message: String,
}

pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    serde_saphyr::from_str(text).map_err(|e| YamlError {
        line: e.location().map(|l| l.line() as usize).filter(|l| *l > 0),
        message: plain_message(&e.without_snippet().to_string()),
    })
}

/// YAML text of a value (for documents alertgate writes, such as the
/// Alertmanager-style config of `GET /api/v2/status`).
pub fn to_string<T: serde::Serialize>(value: &T) -> Result<String, YamlError> {
    serde_saphyr::to_string(value).map_err(|e| YamlError { line: None, message: e.to_string() })
}

/// The message without the crate's own location prefix: callers print
/// `file:line:` themselves.
fn plain_message(rendered: &str) -> String {
    let mut m = rendered.lines().next().unwrap_or_default().trim();
    m = m.strip_prefix("error: ").unwrap_or(m);
    if let Some(rest) = m.strip_prefix("line ")
        && let Some((_, after)) = rest.split_once(": ")
        && rest.split(':').next().is_some_and(|loc| loc.contains("column"))
    {
        m = after;
    }
    if let Some(i) = m.rfind(" at line ")
        && m[i..].contains("column")
    {
        m = &m[..i];
    }
    m.to_owned()
}

/// A value with the line it was written on.
pub use serde_saphyr::Spanned;

/// The line a spanned value starts on (1-based; 0 when unknown).
pub fn line_of<T>(s: &Spanned<T>) -> usize {
    s.referenced.line() as usize
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
        assert_eq!(e.line, Some(2));
        assert!(!e.message.contains('\n'), "{}", e.message);
        assert!(!e.message.contains("line 2"), "{}", e.message);
        assert!(e.message.contains("unknown field `b`"), "{}", e.message);
    }
}
