//! "Something changed": a version the writer bumps after each batch that
//! modified rows, for live views (the console's Server-Sent Events). It
//! says nothing about what changed; a view reads again what it shows.
use std::sync::Arc;

use tokio::sync::watch;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedState {
    /// Grows by one per batch of commits that changed the database.
    pub version: u64,
    /// The gateway is shutting down: live views should end, so a graceful
    /// shutdown does not wait on them.
    pub closing: bool,
}

#[derive(Clone)]
pub struct ChangeFeed(Arc<watch::Sender<FeedState>>);

impl Default for ChangeFeed {
    fn default() -> Self {
        ChangeFeed(Arc::new(watch::Sender::new(FeedState::default())))
    }
}

impl ChangeFeed {
    /// Called by the writer after a commit; wakes every subscriber once,
    /// however many bumps happen before it looks.
    pub(super) fn bump(&self) {
        self.0.send_modify(|s| s.version += 1);
    }

    pub fn close(&self) {
        self.0.send_modify(|s| s.closing = true);
    }

    pub fn subscribe(&self) -> watch::Receiver<FeedState> {
        self.0.subscribe()
    }

    pub fn current(&self) -> FeedState {
        *self.0.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bumps_coalesce_for_a_slow_subscriber() {
        let feed = ChangeFeed::default();
        let mut rx = feed.subscribe();
        feed.bump();
        feed.bump();
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().version, 2);
        assert!(!rx.has_changed().unwrap());
        feed.close();
        assert!(rx.borrow_and_update().closing);
    }
}
