//! `alertgate::ingest::alertmanager::parse` must answer Ok or Err for any body, never panic.
#![no_main]

use alertgate::ingest::IngestContext;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The HTTP layer refuses invalid UTF-8 before any parser runs; lossy
    // decoding keeps the mutated bytes useful instead of discarding them.
    let body = String::from_utf8_lossy(data);
    let ctx = IngestContext {
        now: jiff::Timestamp::from_second(1_795_000_000).unwrap(),
        resolve_timeout: jiff::SignedDuration::from_mins(5),
    };
    let _ = alertgate::ingest::alertmanager::parse(&body, &ctx);
});
