//! SLAs: business calendars, the clocks that measure incidents against
//! their policy's targets, and the one timer structure that says when a
//! clock or an escalation next needs attention. Pure arithmetic: the
//! decisions that use them are `engine::sla`; the store persists them.
pub mod calendar;
pub mod clock;
pub mod timers;
