//! Change events for GetContainerEvents: what changed between two versions
//! of an entry, and the bounded per-subscriber queues that carry it.
//!
//! It owns the transition rules and the promise that publishing never
//! blocks: a subscriber whose queue is full is cut off and told it lagged,
//! and the index goes on. It must not look at Docker's event actions; the
//! events come from comparing what the index knew with what it knows now.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{mpsc, Arc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::entry::{CriState, Entry};

/// The smallest queue a subscriber gets: a zero-length channel would make
/// every event a rendezvous and every subscriber lag at once.
const MIN_CAPACITY: usize = 1;

/// What happened to a sandbox or container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Created,
    Started,
    Stopped,
    Deleted,
}

/// One change, as a subscriber receives it.
#[derive(Debug, Clone)]
pub struct IndexEvent {
    pub kind: EventKind,
    /// The entry after the change; for `Deleted`, the last one known.
    pub entry: Arc<Entry>,
    /// The entry's sandbox as the index knows it at that moment (a sandbox
    /// is its own sandbox); `None` when it is not, or no longer, known.
    pub sandbox: Option<Arc<Entry>>,
    /// When it happened, nanoseconds since the Unix epoch: dockerd's
    /// created/started/finished time, or the time the index saw it.
    pub timestamp_ns: i64,
}

/// What [`Subscription::recv_timeout`] and [`Subscription::try_recv`] give.
#[derive(Debug, Clone)]
pub enum Received {
    Event(IndexEvent),
    /// Nothing arrived in time (or nothing is queued).
    Empty,
    /// No more events will come: the subscriber fell behind and was cut
    /// off (`lagged`), or the index is gone.
    Closed {
        lagged: bool,
    },
}

/// A subscriber's end of its queue. Events already queued when it was cut
/// off are still delivered before [`Received::Closed`].
#[derive(Debug)]
pub struct Subscription {
    events: Receiver<IndexEvent>,
    lagged: Arc<AtomicBool>,
}

impl Subscription {
    /// Waits up to `timeout` for the next event.
    pub fn recv_timeout(&self, timeout: Duration) -> Received {
        match self.events.recv_timeout(timeout) {
            Ok(event) => Received::Event(event),
            Err(RecvTimeoutError::Timeout) => Received::Empty,
            Err(RecvTimeoutError::Disconnected) => self.closed(),
        }
    }

    /// The next event if one is queued.
    pub fn try_recv(&self) -> Received {
        match self.events.try_recv() {
            Ok(event) => Received::Event(event),
            Err(TryRecvError::Empty) => Received::Empty,
            Err(TryRecvError::Disconnected) => self.closed(),
        }
    }

    /// Whether the index cut this subscriber off for falling behind.
    pub fn is_lagged(&self) -> bool {
        self.lagged.load(Ordering::Acquire)
    }

    fn closed(&self) -> Received {
        Received::Closed {
            lagged: self.is_lagged(),
        }
    }
}

/// The index's end of every subscriber's queue.
#[derive(Debug, Default)]
pub(super) struct Subscribers {
    senders: Vec<Sender>,
}

#[derive(Debug)]
struct Sender {
    events: SyncSender<IndexEvent>,
    lagged: Arc<AtomicBool>,
}

impl Subscribers {
    pub(super) fn subscribe(&mut self, capacity: usize) -> Subscription {
        let (events, receiver) = mpsc::sync_channel(capacity.max(MIN_CAPACITY));
        let lagged = Arc::new(AtomicBool::new(false));
        self.senders.push(Sender {
            events,
            lagged: Arc::clone(&lagged),
        });
        Subscription {
            events: receiver,
            lagged,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }

    /// Queues `event` for every subscriber without waiting. Returns how
    /// many subscribers were cut off for lagging.
    pub(super) fn publish(&mut self, event: &IndexEvent) -> usize {
        let mut lagged = 0;
        self.senders
            .retain(|sender| match sender.events.try_send(event.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    sender.lagged.store(true, Ordering::Release);
                    lagged += 1;
                    false
                }
                Err(TrySendError::Disconnected(_)) => false,
            });
        lagged
    }
}

/// The events that turn `old` into `new` (`None`: not known / gone), in
/// the order they happened, with the entry each is about and its time.
///
/// Several can come at once when the index missed intermediate states
/// (a container created and started before the index looked, or restarted
/// while the event stream was down); a container removed while running is
/// stopped first, then deleted. Changes the CRI has no event for (pause,
/// rename, resources) give none.
pub(super) fn transitions(
    old: Option<&Arc<Entry>>,
    new: Option<&Arc<Entry>>,
    now_ns: i64,
) -> Vec<(EventKind, Arc<Entry>, i64)> {
    let mut out = Vec::new();
    let stopped_at = |e: &Entry| {
        if e.finished_ns != 0 {
            e.finished_ns
        } else {
            now_ns
        }
    };
    match (old, new) {
        (None, None) => {}
        (None, Some(new)) => {
            out.push((EventKind::Created, Arc::clone(new), new.created_ns));
            if new.started_ns != 0 {
                out.push((EventKind::Started, Arc::clone(new), new.started_ns));
            }
            if new.cri_state() == CriState::Exited {
                out.push((EventKind::Stopped, Arc::clone(new), stopped_at(new)));
            }
        }
        (Some(old), None) => {
            if old.is_running() {
                out.push((EventKind::Stopped, Arc::clone(old), now_ns));
            }
            out.push((EventKind::Deleted, Arc::clone(old), now_ns));
        }
        (Some(old), Some(new)) => {
            let started_again = new.started_ns != old.started_ns && new.started_ns != 0;
            if started_again {
                if old.is_running() {
                    out.push((EventKind::Stopped, Arc::clone(new), stopped_at(new)));
                }
                out.push((EventKind::Started, Arc::clone(new), new.started_ns));
                if new.cri_state() == CriState::Exited {
                    out.push((EventKind::Stopped, Arc::clone(new), stopped_at(new)));
                }
            } else if old.cri_state() != CriState::Exited && new.cri_state() == CriState::Exited {
                out.push((EventKind::Stopped, Arc::clone(new), stopped_at(new)));
            } else if old.cri_state() != CriState::Running && new.cri_state() == CriState::Running {
                out.push((EventKind::Started, Arc::clone(new), now_ns));
            }
        }
    }
    out
}

/// Now, in nanoseconds since the Unix epoch (0 if the clock is before it).
pub(super) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::entry::State;
    use super::super::testing::entry;
    use super::*;

    const NOW: i64 = 9_000;

    fn kinds(events: &[(EventKind, Arc<Entry>, i64)]) -> Vec<(EventKind, i64)> {
        events.iter().map(|(k, _, t)| (*k, *t)).collect()
    }

    fn at(state: State, started_ns: i64, finished_ns: i64) -> Arc<Entry> {
        let mut e = entry("c1", state);
        e.created_ns = 100;
        e.started_ns = started_ns;
        e.finished_ns = finished_ns;
        Arc::new(e)
    }

    #[test]
    fn a_lifecycle_seen_step_by_step_gives_one_event_per_step() {
        let created = at(State::Created, 0, 0);
        let running = at(State::Running, 200, 0);
        let exited = at(State::Exited, 200, 300);
        let steps = [
            (None, Some(&created), vec![(EventKind::Created, 100)]),
            (
                Some(&created),
                Some(&running),
                vec![(EventKind::Started, 200)],
            ),
            (
                Some(&running),
                Some(&exited),
                vec![(EventKind::Stopped, 300)],
            ),
            (Some(&exited), None, vec![(EventKind::Deleted, NOW)]),
        ];
        for (old, new, expected) in steps {
            assert_eq!(kinds(&transitions(old, new, NOW)), expected);
        }
    }

    #[test]
    fn missed_steps_are_filled_in_order() {
        let exited = at(State::Exited, 200, 300);
        assert_eq!(
            kinds(&transitions(None, Some(&exited), NOW)),
            [
                (EventKind::Created, 100),
                (EventKind::Started, 200),
                (EventKind::Stopped, 300)
            ]
        );
        let running = at(State::Running, 200, 0);
        assert_eq!(
            kinds(&transitions(Some(&running), None, NOW)),
            [(EventKind::Stopped, NOW), (EventKind::Deleted, NOW)]
        );
    }

    #[test]
    fn a_restart_seen_only_by_its_new_start_time_stops_then_starts() {
        let first_run = at(State::Running, 200, 0);
        let second_run = at(State::Running, 500, 400);
        assert_eq!(
            kinds(&transitions(Some(&first_run), Some(&second_run), NOW)),
            [(EventKind::Stopped, 400), (EventKind::Started, 500)]
        );
    }

    #[test]
    fn a_failed_start_is_a_stop_without_a_start() {
        let created = at(State::Created, 0, 0);
        let mut failed = (*created).clone();
        failed.exit_code = 127;
        let failed = Arc::new(failed);
        assert_eq!(
            kinds(&transitions(Some(&created), Some(&failed), NOW)),
            [(EventKind::Stopped, NOW)]
        );
    }

    #[test]
    fn pause_unpause_and_unchanged_entries_give_nothing() {
        let running = at(State::Running, 200, 0);
        let paused = at(State::Paused, 200, 0);
        assert!(transitions(Some(&running), Some(&paused), NOW).is_empty());
        assert!(transitions(Some(&paused), Some(&running), NOW).is_empty());
        assert!(transitions(Some(&running), Some(&running), NOW).is_empty());
    }

    fn event(kind: EventKind) -> IndexEvent {
        IndexEvent {
            kind,
            entry: at(State::Running, 1, 0),
            sandbox: None,
            timestamp_ns: 1,
        }
    }

    #[test]
    fn a_full_subscriber_is_cut_off_without_blocking_and_keeps_what_was_queued() {
        let mut subscribers = Subscribers::default();
        let slow = subscribers.subscribe(2);
        let fast = subscribers.subscribe(8);
        for _ in 0..2 {
            assert_eq!(subscribers.publish(&event(EventKind::Started)), 0);
        }
        assert_eq!(subscribers.publish(&event(EventKind::Stopped)), 1);
        assert!(slow.is_lagged());
        assert!(matches!(slow.try_recv(), Received::Event(e) if e.kind == EventKind::Started));
        assert!(matches!(slow.try_recv(), Received::Event(e) if e.kind == EventKind::Started));
        assert!(matches!(slow.try_recv(), Received::Closed { lagged: true }));
        let kinds: Vec<_> = std::iter::from_fn(|| match fast.try_recv() {
            Received::Event(e) => Some(e.kind),
            _ => None,
        })
        .collect();
        assert_eq!(
            kinds,
            [EventKind::Started, EventKind::Started, EventKind::Stopped]
        );
        assert!(!fast.is_lagged());
    }

    #[test]
    fn a_dropped_subscription_is_forgotten() {
        let mut subscribers = Subscribers::default();
        drop(subscribers.subscribe(1));
        assert_eq!(subscribers.publish(&event(EventKind::Created)), 0);
        assert!(subscribers.is_empty());
    }

    #[test]
    fn zero_capacity_is_raised_to_one() {
        let mut subscribers = Subscribers::default();
        let sub = subscribers.subscribe(0);
        assert_eq!(subscribers.publish(&event(EventKind::Created)), 0);
        assert!(matches!(sub.try_recv(), Received::Event(_)));
    }
}
