//! Alert identity.
//!
//! A fingerprint is the sender's (Alertmanager's `fingerprint`, a PagerDuty
//! `dedup_key`, a mapped field) or, when the sender gives none, the hash of
//! the label set computed exactly as Prometheus and Alertmanager compute it
//! (`model.LabelSet.Fingerprint`: FNV-1a 64 over the sorted names and values,
//! each followed by the 0xff separator). An alert that Prometheus pushes here
//! directly and the same alert relayed by Alertmanager therefore fold into one.
use std::fmt;

use serde::{Deserialize, Serialize};

use super::alert::LabelSet;

const FNV_OFFSET: u64 = 0xcbf29ce484222325;
const FNV_PRIME: u64 = 0x100000001b3;
const SEPARATOR: u8 = 0xff;

/// Longest accepted sender fingerprint (PagerDuty allows 255 characters).
pub const MAX_LEN: usize = 255;

/// The sender's key for an alert (Alertmanager's fingerprint, a PagerDuty
/// `dedup_key`), or the 16 hex digits of its label set's hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, examples("3fa9c1e0b2d4a5f6"))]
pub struct Fingerprint(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintError {
    #[error("fingerprint is empty")]
    Empty,
    #[error("fingerprint is longer than {MAX_LEN} bytes")]
    TooLong,
    #[error("fingerprint contains a control character")]
    ControlCharacter,
}

impl Fingerprint {
    /// A sender-supplied fingerprint, checked.
    pub fn parse(s: &str) -> Result<Self, FingerprintError> {
        if s.is_empty() {
            return Err(FingerprintError::Empty);
        }
        if s.len() > MAX_LEN {
            return Err(FingerprintError::TooLong);
        }
        if s.chars().any(char::is_control) {
            return Err(FingerprintError::ControlCharacter);
        }
        Ok(Fingerprint(s.to_owned()))
    }

    /// The Prometheus fingerprint of a label set.
    pub fn of_labels(labels: &LabelSet) -> Self {
        // BTreeMap iterates in sorted key order, as Prometheus sorts names.
        let mut hash = FNV_OFFSET;
        for (name, value) in labels {
            hash = fnv_add(hash, name.as_bytes());
            hash = fnv_add(hash, &[SEPARATOR]);
            hash = fnv_add(hash, value.as_bytes());
            hash = fnv_add(hash, &[SEPARATOR]);
        }
        Fingerprint(format!("{hash:016x}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn fnv_add(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn empty_label_set_hashes_to_the_fnv_offset() {
        assert_eq!(Fingerprint::of_labels(&LabelSet::new()).as_str(), "cbf29ce484222325");
    }

    #[test]
    fn matches_prometheus_for_known_label_sets() {
        // Values from Prometheus' model/signature_test.go (TestLabelsToSignature
        // uses the same hash as LabelSet.Fingerprint).
        assert_eq!(
            Fingerprint::of_labels(&labels(&[("name", "garland, briggs"), ("fear", "love is not enough")])).as_str(),
            format!("{:016x}", 5799056148416392346u64)
        );
    }

    #[test]
    fn matches_fingerprints_alertmanager_computed() {
        // From tests/fixtures/README.md: read back from a real Alertmanager 0.25.
        let cases = [
            (
                &[
                    ("alertname", "HighLatency"),
                    ("instance", "10.0.0.1:9100"),
                    ("job", "api"),
                    ("severity", "critical"),
                ][..],
                "6b094fb1f4f1ca1e",
            ),
            (&[("alertname", "AlwaysFiring"), ("severity", "warning")][..], "15a37193dce72bab"),
            (&[("alertname", "High memory usage"), ("team", "blue"), ("zone", "us-1")][..], "b4ab7c4e8d6676fb"),
            (
                &[("alertname", "DiskFull"), ("instance", "db-1"), ("mountpoint", "/var/lib/données")][..],
                "76c08bc5e18f559a",
            ),
        ];
        for (pairs, want) in cases {
            assert_eq!(Fingerprint::of_labels(&labels(pairs)).as_str(), want, "{pairs:?}");
        }
    }

    #[test]
    fn label_order_does_not_matter_but_values_do() {
        let a = Fingerprint::of_labels(&labels(&[("a", "1"), ("b", "2")]));
        let b = Fingerprint::of_labels(&labels(&[("b", "2"), ("a", "1")]));
        let c = Fingerprint::of_labels(&labels(&[("a", "1"), ("b", "3")]));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn separator_keeps_names_and_values_apart() {
        let a = Fingerprint::of_labels(&labels(&[("ab", "c")]));
        let b = Fingerprint::of_labels(&labels(&[("a", "bc")]));
        assert_ne!(a, b);
    }

    #[test]
    fn sender_fingerprints_are_checked() {
        assert_eq!(Fingerprint::parse(""), Err(FingerprintError::Empty));
        assert_eq!(Fingerprint::parse(&"x".repeat(256)), Err(FingerprintError::TooLong));
        assert_eq!(Fingerprint::parse("a\nb"), Err(FingerprintError::ControlCharacter));
        assert_eq!(Fingerprint::parse("srv01/disk").unwrap().as_str(), "srv01/disk");
    }
}
