//! Prometheus durations (`30s`, `1h30m`, `7d`): `Duration::from_str` must
//! answer Ok or Err, never panic, and what it accepts prints back to text
//! that parses to the same duration.
#![no_main]

use alertgate::model::Duration;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(d) = text.parse::<Duration>() {
        let printed = d.to_string();
        let again: Duration =
            printed.parse().unwrap_or_else(|e| panic!("{text:?} parsed, but its display {printed:?} does not: {e}"));
        assert_eq!(again, d, "{text:?} -> {printed:?}");
    }
});
