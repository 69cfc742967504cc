//! Who gets a place: separate budgets for connections that have not authenticated yet
//! and for debugging sessions.
//!
//! An unauthenticated connection is cheap to open and costs the sidecar a task, a
//! buffer and a file descriptor, so the number of them is capped
//! (`limits.max_unauthenticated`), and when the cap is reached the **oldest** one is
//! shed to make room for the newest: a flood of idle or slow connections only ever
//! holds the slots for as long as it keeps opening new ones, and an honest client, whose
//! handshake takes milliseconds, gets through. Connections that have sent a complete
//! message are shed only after every one that has not (a flood of idle or half-sent
//! connections never pushes out a client in the middle of its handshake). Authenticated sessions have their own
//! budget (`limits.max_connections`) that no unauthenticated connection can take.
//!
//! The same queue, with its own cap, sheds the oldest HTTP connection when the HTTP
//! port is full.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// A capped set of connections in arrival order; admitting one beyond the cap sheds
/// the oldest.
pub struct Queue {
    /// Most entries at once.
    cap: usize,
    /// Entries by arrival number (so the first is the oldest), with their shed signal:
    /// `[0]` those that have not sent a complete message yet, `[1]` those that have.
    entries: Mutex<[BTreeMap<u64, CancellationToken>; 2]>,
    /// Arrival numbers.
    next: std::sync::atomic::AtomicU64,
}

/// One admitted connection's place in a [`Queue`]; leaving drops it.
pub struct Place {
    /// Its arrival number.
    id: u64,
    /// Fires when the connection is shed.
    shed: CancellationToken,
    /// The queue it is in.
    queue: Arc<Queue>,
}

impl Queue {
    /// A queue of at most `cap` entries (at least one).
    pub fn new(cap: usize) -> Arc<Queue> {
        Arc::new(Queue {
            cap: cap.max(1),
            entries: Mutex::new([BTreeMap::new(), BTreeMap::new()]),
            next: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut [BTreeMap<u64, CancellationToken>; 2]) -> T) -> T {
        // A poisoned lock only means another thread panicked mid-update of plain data.
        let mut guard = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// Admits a connection; returns its place and whether an older one was shed for it.
    pub fn admit(self: &Arc<Self>) -> (Place, bool) {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let shed = CancellationToken::new();
        let shed_one = self.with(|entries| {
            let full = entries[0].len() + entries[1].len() >= self.cap;
            // The oldest of those that have sent nothing yet goes first; only when every
            // place is held by a connection that has, the oldest of those.
            let oldest = full
                .then(|| entries[0].pop_first().or_else(|| entries[1].pop_first()))
                .flatten();
            entries[0].insert(id, shed.clone());
            oldest
        });
        if let Some((_, token)) = &shed_one {
            token.cancel();
        }
        let place = Place {
            id,
            shed,
            queue: self.clone(),
        };
        (place, shed_one.is_some())
    }

    /// How many connections hold a place now.
    pub fn len(&self) -> usize {
        self.with(|entries| entries[0].len() + entries[1].len())
    }

    /// Whether nobody holds a place.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Place {
    /// Completes when this connection is shed for a newer one.
    pub fn shed(&self) -> WaitForCancellationFutureOwned {
        self.shed.clone().cancelled_owned()
    }

    /// Records that this connection has sent a complete message (seen waiting at accept,
    /// or read): it is shed only after every connection that has not.
    pub fn progressed(&self) {
        self.queue.with(|entries| {
            if let Some(token) = entries[0].remove(&self.id) {
                entries[1].insert(self.id, token);
            }
        });
    }

    /// Whether this connection has been shed.
    pub fn is_shed(&self) -> bool {
        self.shed.is_cancelled()
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.queue.with(|entries| {
            for class in entries.iter_mut() {
                class.remove(&self.id);
            }
        });
    }
}

/// The DAP listener's two budgets.
pub struct Admission {
    /// Connections that have not authenticated yet.
    pub unauthenticated: Arc<Queue>,
    /// Authenticated sessions.
    sessions: Arc<Semaphore>,
}

impl Admission {
    /// Budgets of `max_unauthenticated` pending connections and `max_sessions` sessions.
    pub fn new(max_unauthenticated: usize, max_sessions: usize) -> Admission {
        Admission {
            unauthenticated: Queue::new(max_unauthenticated),
            sessions: Arc::new(Semaphore::new(max_sessions)),
        }
    }

    /// A session slot for a connection that just authenticated, if one is free.
    pub fn session(&self) -> Option<OwnedSemaphorePermit> {
        self.sessions.clone().try_acquire_owned().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_is_shed_for_the_newest() {
        let queue = Queue::new(2);
        let (a, shed) = queue.admit();
        assert!(!shed);
        let (b, _) = queue.admit();
        let (c, shed) = queue.admit();
        assert!(shed, "the third exceeds the cap");
        assert!(a.is_shed() && !b.is_shed() && !c.is_shed());
        assert_eq!(queue.len(), 2);
        drop(b);
        assert_eq!(queue.len(), 1);
        let (_d, shed) = queue.admit();
        assert!(!shed, "b left, so there was room");
        assert!(!c.is_shed());
        drop(a); // already shed: leaving changes nothing
        assert_eq!(queue.len(), 2);
    }

    #[test]
    fn connections_that_sent_something_are_shed_last() {
        let queue = Queue::new(2);
        let (talker, _) = queue.admit();
        talker.progressed();
        let (idle, _) = queue.admit();
        let (newest, shed) = queue.admit();
        assert!(shed);
        assert!(idle.is_shed(), "the idle one goes first, though newer");
        assert!(!talker.is_shed());
        newest.progressed();
        let (_another, _) = queue.admit();
        assert!(talker.is_shed(), "with nobody idle, the oldest of all");
        assert!(!newest.is_shed());
    }

    #[test]
    fn sessions_have_their_own_budget() {
        let admission = Admission::new(1, 1);
        let (_pending, _) = admission.unauthenticated.admit();
        let first = admission.session();
        assert!(first.is_some());
        assert!(admission.session().is_none(), "one session slot only");
        drop(first);
        assert!(admission.session().is_some());
    }
}
