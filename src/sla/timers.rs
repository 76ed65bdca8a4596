//! One timer structure for everything that happens at an instant: SLA
//! warnings and breaches, escalation steps, heartbeat deadlines. Ordered by due time, so a tick
//! takes what is due without looking at anything else, and keyed, so
//! rescheduling or cancelling a timer is a lookup, not a scan.
use std::collections::{BTreeSet, HashMap};

use jiff::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKey {
    /// An SLA clock's next milestone, by clock id.
    Clock(i64),
    /// An incident's next escalation step, by incident id.
    Escalation(i64),
    /// A heartbeat's deadline (or a change its rules made), by the id of
    /// its stored row.
    Heartbeat(i64),
    /// A schedule's next handoff, by the id of its handoff row.
    Handoff(i64),
}

#[derive(Debug, Default, Clone)]
pub struct Timers {
    by_due: BTreeSet<(Timestamp, TimerKey)>,
    due_of: HashMap<TimerKey, Timestamp>,
    /// Set by every change, so a gateway can tell others sharing its
    /// database that its timers moved (see [`Timers::take_changed`]).
    changed: bool,
}

impl Timers {
    /// Schedule `key` at `due`, replacing its previous time; `None` cancels it.
    pub fn set(&mut self, key: TimerKey, due: Option<Timestamp>) {
        if self.due_of.get(&key).copied() == due {
            return;
        }
        self.changed = true;
        if let Some(old) = self.due_of.remove(&key) {
            self.by_due.remove(&(old, key));
        }
        if let Some(due) = due {
            self.due_of.insert(key, due);
            self.by_due.insert((due, key));
        }
    }

    /// Take every timer due by `now`, earliest first.
    pub fn take_due(&mut self, now: Timestamp) -> Vec<TimerKey> {
        let mut out = Vec::new();
        while let Some(&(due, key)) = self.by_due.first() {
            if due > now {
                break;
            }
            self.by_due.pop_first();
            self.due_of.remove(&key);
            self.changed = true;
            out.push(key);
        }
        out
    }

    /// Whether any timer changed since the last call.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    pub fn next_due(&self) -> Option<Timestamp> {
        self.by_due.first().map(|(due, _)| *due)
    }

    pub fn due_of(&self, key: TimerKey) -> Option<Timestamp> {
        self.due_of.get(&key).copied()
    }

    pub fn len(&self) -> usize {
        self.due_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.due_of.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn due_timers_come_out_in_order_once() {
        let mut t = Timers::default();
        t.set(TimerKey::Clock(1), Some(at(30)));
        t.set(TimerKey::Escalation(7), Some(at(10)));
        t.set(TimerKey::Clock(2), Some(at(20)));
        assert_eq!(t.next_due(), Some(at(10)));
        assert_eq!(t.take_due(at(20)), vec![TimerKey::Escalation(7), TimerKey::Clock(2)]);
        assert!(t.take_due(at(20)).is_empty());
        assert_eq!(t.len(), 1);
        assert_eq!(t.take_due(at(100)), vec![TimerKey::Clock(1)]);
        assert!(t.is_empty());
    }

    #[test]
    fn rescheduling_and_cancelling_replace_the_old_time() {
        let mut t = Timers::default();
        t.set(TimerKey::Clock(1), Some(at(10)));
        t.set(TimerKey::Clock(1), Some(at(50)));
        assert!(t.take_due(at(20)).is_empty(), "the old time is gone");
        assert_eq!(t.due_of(TimerKey::Clock(1)), Some(at(50)));
        t.set(TimerKey::Clock(1), None);
        assert!(t.take_due(at(100)).is_empty());
        assert_eq!(t.next_due(), None);
    }
}
