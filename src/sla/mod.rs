//! SLAs: business calendars, the clocks that measure incidents against
//! their policy's targets, escalation schedules, and the one timer structure
//! that says when any of them next needs attention. Pure code: the store
//! persists clocks and runs the timers inside its transactions.
pub mod calendar;
pub mod clock;
pub mod escalation;
pub mod timers;
