//! The index's contents and the rule that keeps them from going backwards
//! when observations race.
//!
//! Inspects run concurrently (the event thread, handlers calling
//! `refresh`, a reconcile), so their answers can arrive out of order. Every
//! observation takes a ticket from a counter before it asks dockerd, and
//! an answer is applied only if no observation that started later has been
//! applied already. Container IDs are never reused, so a removal is final:
//! a tombstone keeps an older answer that still shows the container from
//! bringing it back, for as long as such an answer can still be in flight.
//! This module does no I/O and never blocks on anything but its callers'
//! locks.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::entry::Entry;
use super::subscribe::{transitions, IndexEvent, Subscribers};

/// Issues tickets and knows which are still in flight.
#[derive(Debug, Default)]
pub(super) struct TicketBook {
    next: u64,
    /// Ascending, since tickets are issued in ascending order; a few at a
    /// time, one per observation under way.
    in_flight: Vec<u64>,
}

impl TicketBook {
    /// A new ticket, in flight until [`TicketBook::finish`].
    pub(super) fn issue(&mut self) -> u64 {
        let ticket = self.next;
        self.next += 1;
        self.in_flight.push(ticket);
        ticket
    }

    pub(super) fn finish(&mut self, ticket: u64) {
        if let Ok(at) = self.in_flight.binary_search(&ticket) {
            self.in_flight.remove(at);
        }
    }

    /// The next ticket to be issued: every observation with a smaller
    /// ticket started before now.
    pub(super) fn horizon(&self) -> u64 {
        self.next
    }

    /// The oldest ticket still in flight.
    pub(super) fn oldest_in_flight(&self) -> Option<u64> {
        self.in_flight.first().copied()
    }
}

/// What is known about one container, and from which observation.
#[derive(Debug, Clone)]
struct Slot {
    entry: Arc<Entry>,
    ticket: u64,
}

/// Why an entry goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Removal {
    /// dockerd said so: a `destroy` event, a 404, or a caller that saw the
    /// removal succeed.
    Confirmed,
    /// The list with this ticket did not have it; entries applied from a
    /// later observation survive (they were created after the list).
    Unlisted(u64),
}

#[derive(Debug, Default)]
pub(super) struct State {
    entries: BTreeMap<String, Slot>,
    /// Removed IDs and the ticket horizon at removal.
    tombstones: HashMap<String, u64>,
    pub(super) subscribers: Subscribers,
    /// Whether a full reconcile has succeeded; until then changes are the
    /// index filling up, not news, and publish nothing.
    pub(super) filled: bool,
    /// Subscribers cut off for lagging, ever.
    pub(super) lagged_subscribers: u64,
    /// Moves on every change to what the entries say.
    pub(super) generation: u64,
}

impl State {
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn get(&self, id: &str) -> Option<&Arc<Entry>> {
        self.entries.get(id).map(|slot| &slot.entry)
    }

    /// Entries whose ID starts with `prefix`, in ID order.
    pub(super) fn with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Entry>> + 'a {
        self.entries
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(move |(id, _)| id.starts_with(prefix))
            .map(|(_, slot)| &slot.entry)
    }

    /// IDs of every entry; for a reconcile to find the unlisted ones.
    pub(super) fn ids(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// Applies an inspect answer taken with `ticket`. Returns false when a
    /// later observation already won.
    pub(super) fn upsert(&mut self, entry: Entry, ticket: u64, now_ns: i64) -> bool {
        if self
            .tombstones
            .get(&entry.id)
            .is_some_and(|&horizon| ticket < horizon)
        {
            return false;
        }
        if self
            .entries
            .get(&entry.id)
            .is_some_and(|slot| slot.ticket > ticket)
        {
            return false;
        }
        let new = Arc::new(entry);
        let old = self.entries.insert(
            new.id.clone(),
            Slot {
                entry: Arc::clone(&new),
                ticket,
            },
        );
        if old.as_ref().is_none_or(|slot| *slot.entry != *new) {
            self.generation += 1;
            self.publish(old.map(|slot| slot.entry).as_ref(), Some(&new), now_ns);
        }
        true
    }

    /// Removes `id` unless `removal` no longer holds. `horizon` and
    /// `oldest_in_flight` come from the [`TicketBook`]; a tombstone is kept
    /// only if an observation older than the removal is still in flight.
    pub(super) fn remove(
        &mut self,
        id: &str,
        removal: Removal,
        horizon: u64,
        oldest_in_flight: Option<u64>,
        now_ns: i64,
    ) -> bool {
        if let Removal::Unlisted(list_ticket) = removal {
            if self
                .entries
                .get(id)
                .is_none_or(|slot| slot.ticket > list_ticket)
            {
                return false;
            }
        }
        if oldest_in_flight.is_some_and(|oldest| oldest < horizon) {
            self.tombstones.insert(id.to_owned(), horizon);
        }
        match self.entries.remove(id) {
            Some(old) => {
                self.generation += 1;
                self.publish(Some(&old.entry), None, now_ns);
                true
            }
            None => false,
        }
    }

    /// Drops tombstones no observation in flight can contradict.
    pub(super) fn prune_tombstones(&mut self, oldest_in_flight: Option<u64>) {
        match oldest_in_flight {
            None => self.tombstones.clear(),
            Some(oldest) => self.tombstones.retain(|_, horizon| oldest < *horizon),
        }
    }

    fn publish(&mut self, old: Option<&Arc<Entry>>, new: Option<&Arc<Entry>>, now_ns: i64) {
        if !self.filled || self.subscribers.is_empty() {
            return;
        }
        for (kind, entry, timestamp_ns) in transitions(old, new, now_ns) {
            let sandbox = if entry.sandbox_id == entry.id {
                Some(Arc::clone(&entry))
            } else {
                self.get(&entry.sandbox_id).cloned()
            };
            let event = IndexEvent {
                kind,
                entry,
                sandbox,
                timestamp_ns,
            };
            let lagged = self.subscribers.publish(&event);
            self.lagged_subscribers += lagged as u64;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::entry::State as DockerState;
    use super::super::subscribe::{EventKind, Received};
    use super::super::testing::entry;
    use super::*;

    fn filled() -> State {
        State {
            filled: true,
            ..State::default()
        }
    }

    #[test]
    fn an_older_answer_does_not_overwrite_a_newer_one() {
        let mut state = filled();
        let mut book = TicketBook::default();
        let (older, newer) = (book.issue(), book.issue());
        assert!(state.upsert(entry("c1", DockerState::Exited), newer, 0));
        assert!(!state.upsert(entry("c1", DockerState::Running), older, 0));
        assert_eq!(state.get("c1").unwrap().state, DockerState::Exited);
    }

    #[test]
    fn an_answer_older_than_a_removal_does_not_bring_the_container_back() {
        let mut state = filled();
        let mut book = TicketBook::default();
        let stale = book.issue();
        let first = book.issue();
        assert!(state.upsert(entry("c1", DockerState::Running), first, 0));
        book.finish(first);
        assert!(state.remove(
            "c1",
            Removal::Confirmed,
            book.horizon(),
            book.oldest_in_flight(),
            0
        ));
        assert!(!state.upsert(entry("c1", DockerState::Running), stale, 0));
        assert!(state.get("c1").is_none());
        book.finish(stale);
        state.prune_tombstones(book.oldest_in_flight());
        assert!(state.tombstones.is_empty());
    }

    #[test]
    fn no_tombstone_is_kept_when_nothing_older_is_in_flight() {
        let mut state = filled();
        let mut book = TicketBook::default();
        let ticket = book.issue();
        state.upsert(entry("c1", DockerState::Running), ticket, 0);
        book.finish(ticket);
        state.remove("c1", Removal::Confirmed, book.horizon(), None, 0);
        assert!(state.tombstones.is_empty());
    }

    #[test]
    fn a_list_does_not_remove_what_a_later_inspect_found() {
        let mut state = filled();
        let mut book = TicketBook::default();
        let list = book.issue();
        let inspect = book.issue();
        state.upsert(entry("new", DockerState::Created), inspect, 0);
        let old = book.issue();
        state.upsert(entry("old", DockerState::Exited), old, 0);
        let list_later = book.issue();
        let (horizon, oldest) = (book.horizon(), book.oldest_in_flight());
        assert!(!state.remove("new", Removal::Unlisted(list), horizon, oldest, 0));
        assert!(state.remove("old", Removal::Unlisted(list_later), horizon, oldest, 0));
        assert_eq!(state.ids(), ["new"]);
    }

    #[test]
    fn prefix_lookup_is_a_range_scan_in_id_order() {
        let mut state = filled();
        for (i, id) in ["ab1", "ab2", "abc", "b"].into_iter().enumerate() {
            state.upsert(entry(id, DockerState::Running), i as u64, 0);
        }
        let ids: Vec<_> = state.with_prefix("ab").map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["ab1", "ab2", "abc"]);
        assert_eq!(state.with_prefix("abc").count(), 1);
        assert_eq!(state.with_prefix("c").count(), 0);
        assert_eq!(state.with_prefix("").count(), 4);
    }

    #[test]
    fn changes_publish_only_after_the_first_fill_and_only_when_something_changed() {
        let mut state = State::default();
        let sub = state.subscribers.subscribe(8);
        state.upsert(entry("c1", DockerState::Created), 0, 0);
        assert!(matches!(sub.try_recv(), Received::Empty));
        state.filled = true;
        state.upsert(entry("c1", DockerState::Created), 1, 0);
        assert!(matches!(sub.try_recv(), Received::Empty));
        let mut running = entry("c1", DockerState::Running);
        running.started_ns = 5;
        state.upsert(running, 2, 0);
        assert!(matches!(sub.try_recv(), Received::Event(e) if e.kind == EventKind::Started));
    }

    #[test]
    fn events_carry_the_sandbox_entry() {
        let mut state = filled();
        let sub = state.subscribers.subscribe(8);
        let mut sandbox = entry("s1", DockerState::Running);
        sandbox.kind = super::super::entry::Kind::Sandbox;
        sandbox.sandbox_id = "s1".to_owned();
        state.upsert(sandbox, 0, 0);
        let mut container = entry("c1", DockerState::Created);
        container.sandbox_id = "s1".to_owned();
        state.upsert(container, 1, 0);
        let Received::Event(for_sandbox) = sub.try_recv() else {
            panic!("no sandbox event")
        };
        assert_eq!(for_sandbox.sandbox.unwrap().id, "s1");
        let Received::Event(for_container) = sub.try_recv() else {
            panic!("no container event")
        };
        assert_eq!(for_container.entry.id, "c1");
        assert_eq!(for_container.sandbox.unwrap().id, "s1");
    }
}
