//! The one place that reads the wall clock.
//!
//! Everything else takes `now` as an argument, so decisions can be tested at
//! any instant without sleeping.
use jiff::Timestamp;

/// The current time, truncated to milliseconds (the store's resolution), so
/// a value read back from the store compares equal to the one written.
pub fn now() -> Timestamp {
    let ms = Timestamp::now().as_millisecond();
    Timestamp::from_millisecond(ms).expect("current time is in range")
}
