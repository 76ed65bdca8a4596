//! Durations as Prometheus users write them: `30s`, `5m`, `1h30m`, `7d`, `500ms`.
use std::fmt;
use std::str::FromStr;

use jiff::SignedDuration;
use serde::{Deserialize, Deserializer};

/// A non-negative duration parsed from Prometheus' duration syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Duration(SignedDuration);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (use units ms, s, m, h, d, w, y, e.g. \"1h30m\")")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

impl Duration {
    pub const ZERO: Duration = Duration(SignedDuration::ZERO);

    pub const fn from_mins(m: i64) -> Self {
        Duration(SignedDuration::from_secs(m * 60))
    }

    pub const fn from_secs_const(s: i64) -> Self {
        Duration(SignedDuration::from_secs(s))
    }

    pub fn from_millis(ms: i64) -> Self {
        Duration(SignedDuration::from_millis(ms))
    }

    pub fn from_secs(s: i64) -> Self {
        Duration(SignedDuration::from_secs(s))
    }

    pub fn signed(self) -> SignedDuration {
        self.0
    }

    /// As a standard duration, for timers and timeouts.
    pub fn std(self) -> std::time::Duration {
        self.0.unsigned_abs()
    }

    pub fn as_millis(self) -> i64 {
        self.0.as_millis() as i64
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| DurationError { input: s.to_owned(), reason };
        if s == "0" {
            return Ok(Duration::ZERO);
        }
        if s.is_empty() {
            return Err(err("empty"));
        }
        let units: [(&str, i64); 7] = [
            ("ms", 1),
            ("s", 1_000),
            ("m", 60_000),
            ("h", 3_600_000),
            ("d", 86_400_000),
            ("w", 604_800_000),
            ("y", 31_536_000_000),
        ];
        let mut rest = s;
        let mut total: i64 = 0;
        // Units must appear largest first, each at most once, as in Prometheus.
        let mut last_unit: Option<usize> = None;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(err("expected a number"));
            }
            let n: i64 = rest[..digits].parse().map_err(|_| err("number too large"))?;
            rest = &rest[digits..];
            // Try "ms" before "m".
            let (idx, (unit, ms)) = units
                .iter()
                .enumerate()
                .find(|(_, (u, _))| rest.starts_with(u) && !(*u == "m" && rest.starts_with("ms")))
                .ok_or_else(|| err("missing or unknown unit"))?;
            if last_unit.is_some_and(|last| idx >= last) {
                return Err(err("units must go from largest to smallest, each once"));
            }
            last_unit = Some(idx);
            rest = &rest[unit.len()..];
            total = n.checked_mul(*ms).and_then(|v| total.checked_add(v)).ok_or_else(|| err("too large"))?;
        }
        Ok(Duration(SignedDuration::from_millis(total)))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis() as i64;
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
            if ms >= size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_durations() {
        for (s, ms) in [
            ("0", 0),
            ("0s", 0),
            ("500ms", 500),
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("7d", 604_800_000),
            ("1w2d", 777_600_000),
            ("1m30s500ms", 90_500),
        ] {
            assert_eq!(s.parse::<Duration>().unwrap().as_millis(), ms, "{s}");
        }
    }

    #[test]
    fn refuses_what_prometheus_refuses() {
        for s in ["", "5", "m", "5x", "-5m", "30m1h", "1h1h", "1.5h", "5 m"] {
            assert!(s.parse::<Duration>().is_err(), "{s} should fail");
        }
    }

    #[test]
    fn displays_compactly() {
        assert_eq!("90m".parse::<Duration>().unwrap().to_string(), "1h30m");
        assert_eq!("0s".parse::<Duration>().unwrap().to_string(), "0s");
    }
}
