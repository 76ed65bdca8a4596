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
        line: e.location().map(|l| l.line() as usize),
        message: e.to_string(),
    })
}

/// A value with the line it was written on.
pub use serde_saphyr::Spanned;

/// The line a spanned value starts on (1-based; 0 when unknown).
pub fn line_of<T>(s: &Spanned<T>) -> usize {
    s.referenced.line() as usize
}
