//! Alertmanager-style matchers as the API takes them (`?filter=`, silence
//! matchers, rule files): `parse_matchers` and `Matcher::from_str` must
//! answer Ok or Err, never panic; a parsed matcher must evaluate.
#![no_main]

use alertgate::model::LabelSet;
use alertgate::rules::matcher::{Matcher, parse_matchers};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let labels: LabelSet = [("alertname", "X"), ("severity", "critical"), ("", ""), ("team", "a\nb")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    if let Ok(ms) = parse_matchers(&text) {
        for m in &ms {
            let _ = m.matches(&labels);
            let _ = m.to_string();
        }
    }
    if let Ok(m) = text.parse::<Matcher>() {
        let _ = m.matches(&labels);
    }
});
