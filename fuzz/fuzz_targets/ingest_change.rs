//! Change events: `parse_api` (`POST /api/v1/changes`) and `parse_pagerduty`
//! (`POST /v2/change/enqueue`) must answer Ok or Err, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data);
    let now = jiff::Timestamp::from_second(1_795_000_000).unwrap();
    let _ = alertgate::ingest::change::parse_api(&body, now);
    let _ = alertgate::ingest::change::parse_pagerduty(&body, now);
});
