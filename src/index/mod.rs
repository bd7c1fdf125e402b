//! The state index: every sandbox and container of dockshim's, in memory,
//! kept current from dockerd's event stream so that ListPodSandbox,
//! PodSandboxStatus, ListContainers and ContainerStatus answer without a
//! Docker call, and GetContainerEvents has something to stream.
//!
//! One thread (`docker-events`) subscribes to `/events` first, then lists
//! and inspects every labelled container, and from then on re-inspects a
//! container whenever an event says it changed. If the stream breaks, the
//! index turns cold, the thread reconnects with backoff and reconciles
//! (list and inspect everything again, dropping what vanished). A query
//! that finds the index cold catches up itself, within a budget, before
//! answering, so answers are never staler than dockerd's stream. Handlers
//! call [`Index::refresh`] right after they change a container so their
//! own change shows at once.
//!
//! It also keeps when dockerd last answered (an event, a list, an inspect,
//! or a call made elsewhere and reported here), so that Status can vouch
//! for dockerd without asking it while the stream is up and that answer
//! is recent.
//!
//! This module owns the entries, the change events, and the Docker calls
//! behind them (counted, for the metrics and for tests that demand zero per
//! warm query). It must not translate to CRI messages, create or change
//! containers, or block on a slow subscriber.

mod entry;
mod error;
mod filter;
mod source;
mod state;
mod subscribe;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
mod time;
mod watch;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::RwLockWriteGuard;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use crate::docker::{DockerError, DEFAULT_REQUEST_TIMEOUT};

pub use entry::{CriState, Entry, Kind, Mount, Resources, State, ANNOTATION_PREFIX};
pub use error::IndexError;
pub use filter::{ContainerFilter, SandboxFilter};
pub use source::{EventFeed, IndexSource, Polled};
pub use subscribe::{EventKind, IndexEvent, Received, Subscription};
pub use time::parse_rfc3339_nanos;

use state::{Removal, TicketBook};
use subscribe::now_ns;

/// How long the event thread blocks on a silent stream before it checks
/// whether the index is still wanted and whether a periodic reconcile is
/// due. A timed-out read costs no Docker call.
pub const IDLE_TICK: Duration = Duration::from_secs(5);

/// How often the index re-reads everything although the stream is up.
/// The stream is the source of truth; this pass only repairs what a
/// dockerd that drops events without closing the stream would leave
/// wrong. Each pass is one list plus one inspect per container, so the
/// period is long enough that an idle node makes almost no Docker calls
/// (a 100-container node: about one call every 6 s on average).
pub const RECONCILE_PERIOD: Duration = Duration::from_secs(10 * 60);

/// First delay before reconnecting to a broken event stream; doubled on
/// every failed attempt up to [`BACKOFF_MAX`].
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(100);

/// Longest delay between reconnection attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Docker event actions after which a container is re-inspected: those
/// that change what an entry holds. `destroy` removes the entry instead;
/// `kill`, `stop` and `oom` are always followed by `die`, and `exec_*`,
/// `attach`, `resize`, `top` and the rest change nothing the index keeps.
const REFRESH_ACTIONS: [&str; 8] = [
    "create", "start", "restart", "die", "pause", "unpause", "rename", "update",
];

/// Timing of the index; [`IndexConfig::default`] uses the constants above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexConfig {
    pub idle_tick: Duration,
    pub reconcile_period: Duration,
    /// Longest time a query on a cold index spends catching up: the
    /// runtime request timeout.
    pub catch_up_budget: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl IndexConfig {
    /// The delay before the next attempt to follow a stream: the initial
    /// one after a first failure, doubled after each further failure,
    /// capped.
    pub fn next_backoff(&self, previous: Option<Duration>) -> Duration {
        match previous {
            None => self.backoff_initial,
            Some(previous) => (previous * 2).min(self.backoff_max),
        }
    }
}

impl Default for IndexConfig {
    fn default() -> IndexConfig {
        IndexConfig {
            idle_tick: IDLE_TICK,
            reconcile_period: RECONCILE_PERIOD,
            catch_up_budget: DEFAULT_REQUEST_TIMEOUT,
            backoff_initial: BACKOFF_INITIAL,
            backoff_max: BACKOFF_MAX,
        }
    }
}

/// The index. Share it as `Arc<Index>`; the event thread holds only a weak
/// reference and ends within an idle tick once the last `Arc` is gone.
pub struct Index {
    source: Box<dyn IndexSource>,
    config: IndexConfig,
    state: RwLock<state::State>,
    tickets: Mutex<TicketBook>,
    reconciles: Mutex<Reconciles>,
    reconcile_done: Condvar,
    warm: AtomicBool,
    warm_lock: Mutex<()>,
    warm_changed: Condvar,
    /// When dockerd last answered; see [`Index::dockerd_alive_within`].
    heard: Mutex<Option<Instant>>,
    counters: Counters,
}

/// Who asks for a reconcile.
#[derive(Debug, Clone, Copy)]
enum Caller {
    /// A query on a cold index, which must answer by `deadline`; the event
    /// thread turning the index warm meanwhile satisfies it too.
    Query { deadline: Instant },
    /// The event thread, right after (re)subscribing: success makes the
    /// index warm before anyone waiting for the pass is woken.
    Subscribed,
    /// The event thread's periodic pass.
    Periodic,
}

/// A reconcile pass in progress. Dropping it, also by a panic or an early
/// return, lets the next pass run and wakes whoever waits.
struct ReconcileRun<'a> {
    index: &'a Index,
    started: Instant,
    succeeded: bool,
    then_warm: bool,
}

impl Drop for ReconcileRun<'_> {
    fn drop(&mut self) {
        let index = self.index;
        let mut reconciles = lock(&index.reconciles);
        reconciles.running = false;
        if self.succeeded {
            reconciles.last_success_start = Some(self.started);
            index.counters.reconciles.fetch_add(1, Ordering::Relaxed);
            if self.then_warm {
                index.set_warm(true);
            }
        }
        index.reconcile_done.notify_all();
    }
}

/// Who is reconciling, and when the last successful pass began.
#[derive(Debug, Default)]
struct Reconciles {
    running: bool,
    last_success_start: Option<Instant>,
}

#[derive(Debug, Default)]
struct Counters {
    events_received: AtomicU64,
    reconnects: AtomicU64,
    docker_calls: AtomicU64,
    reconciles: AtomicU64,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("warm", &self.is_warm())
            .field("len", &self.len())
            .field("config", &self.config)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

/// An observation's ticket; finished when applied or dropped.
struct Ticket<'a> {
    number: u64,
    book: &'a Mutex<TicketBook>,
    finished: bool,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.finished {
            lock(self.book).finish(self.number);
        }
    }
}

impl Ticket<'_> {
    /// Finishes the ticket in a book the caller has already locked.
    fn finish_in(&mut self, book: &mut TicketBook) -> u64 {
        self.finished = true;
        book.finish(self.number);
        self.number
    }
}

impl Index {
    /// A cold index on `source`, its thread not started (see
    /// [`Index::start_with`]).
    fn new(source: Box<dyn IndexSource>, config: IndexConfig) -> Arc<Index> {
        Arc::new(Index {
            source,
            config,
            state: RwLock::new(state::State::default()),
            tickets: Mutex::new(TicketBook::default()),
            reconciles: Mutex::new(Reconciles::default()),
            reconcile_done: Condvar::new(),
            warm: AtomicBool::new(false),
            warm_lock: Mutex::new(()),
            warm_changed: Condvar::new(),
            heard: Mutex::new(None),
            counters: Counters::default(),
        })
    }

    /// Whether the index is filled and following dockerd's event stream:
    /// queries then make no Docker call.
    pub fn is_warm(&self) -> bool {
        self.warm.load(Ordering::Acquire)
    }

    /// Waits up to `timeout` for the index to be warm; returns whether it is.
    pub fn wait_warm(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut guard = lock(&self.warm_lock);
        while !self.is_warm() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            guard = self
                .warm_changed
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Whether dockerd has shown itself alive within `bound` while the index
    /// follows its event stream. A dockerd that exits closes the stream, and
    /// the index turns cold at once; one that hangs keeps the stream open
    /// but answers nothing more, so its last answer ages past any bound.
    pub fn dockerd_alive_within(&self, bound: Duration) -> bool {
        self.is_warm() && lock(&self.heard).is_some_and(|at| at.elapsed() < bound)
    }

    /// Notes that dockerd has just answered a call made outside the index.
    pub fn heard_from_dockerd(&self) {
        *lock(&self.heard) = Some(Instant::now());
    }

    /// Sandboxes matching `filter`, in ID order.
    pub fn sandboxes(&self, filter: &SandboxFilter) -> Result<Vec<Arc<Entry>>, IndexError> {
        self.select(filter.id_prefix.as_deref(), |e| filter.matches(e))
    }

    /// Containers matching `filter`, in ID order.
    pub fn containers(&self, filter: &ContainerFilter) -> Result<Vec<Arc<Entry>>, IndexError> {
        self.select(filter.id_prefix.as_deref(), |e| filter.matches(e))
    }

    /// The containers of the sandbox with exactly this ID.
    pub fn containers_of(&self, sandbox_id: &str) -> Result<Vec<Arc<Entry>>, IndexError> {
        if sandbox_id.is_empty() {
            return Err(IndexError::EmptyId);
        }
        self.select(None, |e| {
            e.kind == Kind::Container && e.sandbox_id == sandbox_id
        })
    }

    /// The sandbox or container with this ID, or the only one whose ID
    /// starts with it. An ambiguous prefix or an empty ID is an error
    /// (`INVALID_ARGUMENT`, as dockerd answers ambiguous prefixes); no
    /// match is `Ok(None)`, for the caller to turn into `NOT_FOUND`.
    pub fn get(&self, id_or_prefix: &str) -> Result<Option<Arc<Entry>>, IndexError> {
        self.lookup(id_or_prefix, None)
    }

    /// Like [`Index::get`], among sandboxes only.
    pub fn sandbox(&self, id_or_prefix: &str) -> Result<Option<Arc<Entry>>, IndexError> {
        self.lookup(id_or_prefix, Some(Kind::Sandbox))
    }

    /// Like [`Index::get`], among containers only.
    pub fn container(&self, id_or_prefix: &str) -> Result<Option<Arc<Entry>>, IndexError> {
        self.lookup(id_or_prefix, Some(Kind::Container))
    }

    /// Re-inspects one container now (one Docker call) and returns what the
    /// index holds for it afterwards: `None` if it is gone or not
    /// dockshim's. Handlers call it right after changing a container, and
    /// must after a failed start: dockerd emits no event for that.
    pub fn refresh(&self, id: &str) -> Result<Option<Arc<Entry>>, IndexError> {
        if id.is_empty() {
            return Err(IndexError::EmptyId);
        }
        self.observe(id)
    }

    /// Drops a container the caller has just seen dockerd remove (or say
    /// does not exist), without a Docker call.
    pub fn forget(&self, id: &str) {
        self.remove(id, Removal::Confirmed, now_ns());
    }

    /// A new subscriber to change events, with a queue of `capacity`
    /// events. A subscriber that lets its queue fill up is cut off.
    pub fn subscribe(&self, capacity: usize) -> Subscription {
        self.write().subscribers.subscribe(capacity)
    }

    /// A number that moves whenever an entry is added, changed or
    /// removed; `None` while the index is cold, when a query may first
    /// have to catch up. What was built from the index's answers still
    /// holds while this reads the same.
    pub fn generation(&self) -> Option<u64> {
        if !self.is_warm() {
            return None;
        }
        Some(self.read().generation)
    }

    /// [`Index::generation`] for a caller that must not wait: `None` also
    /// while an entry is being changed.
    pub fn generation_at_hand(&self) -> Option<u64> {
        if !self.is_warm() {
            return None;
        }
        self.state.try_read().ok().map(|state| state.generation)
    }

    /// Sandboxes plus containers held.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Docker events read from the stream.
    pub fn events_received(&self) -> u64 {
        self.counters.events_received.load(Ordering::Relaxed)
    }

    /// Times the event stream was opened again after being lost.
    pub fn reconnects(&self) -> u64 {
        self.counters.reconnects.load(Ordering::Relaxed)
    }

    /// Docker API calls made by the index (lists, inspects, event
    /// subscriptions).
    pub fn docker_calls(&self) -> u64 {
        self.counters.docker_calls.load(Ordering::Relaxed)
    }

    /// Full reconcile passes completed.
    pub fn reconciles(&self) -> u64 {
        self.counters.reconciles.load(Ordering::Relaxed)
    }

    /// Subscribers cut off for falling behind.
    pub fn lagged_subscribers(&self) -> u64 {
        self.read().lagged_subscribers
    }

    fn select(
        &self,
        prefix: Option<&str>,
        keep: impl Fn(&Entry) -> bool,
    ) -> Result<Vec<Arc<Entry>>, IndexError> {
        self.catch_up()?;
        let state = self.read();
        let found = state
            .with_prefix(prefix.unwrap_or_default())
            .filter(|e| keep(e))
            .cloned()
            .collect();
        Ok(found)
    }

    fn lookup(
        &self,
        id_or_prefix: &str,
        kind: Option<Kind>,
    ) -> Result<Option<Arc<Entry>>, IndexError> {
        if id_or_prefix.is_empty() {
            return Err(IndexError::EmptyId);
        }
        self.catch_up()?;
        let state = self.read();
        let of_kind = |e: &&Arc<Entry>| kind.is_none_or(|k| e.kind == k);
        if let Some(exact) = state.get(id_or_prefix).filter(of_kind) {
            return Ok(Some(Arc::clone(exact)));
        }
        let mut matches = state.with_prefix(id_or_prefix).filter(of_kind);
        let first = matches.next().cloned();
        let more = matches.count();
        if more > 0 {
            return Err(IndexError::AmbiguousId {
                prefix: id_or_prefix.to_owned(),
                matches: more + 1,
            });
        }
        Ok(first)
    }

    /// On a cold index, reconciles before a query answers, unless a
    /// reconcile that began after the query arrived has succeeded.
    fn catch_up(&self) -> Result<(), IndexError> {
        if self.is_warm() {
            return Ok(());
        }
        let deadline = Instant::now() + self.config.catch_up_budget;
        self.reconcile(Caller::Query { deadline })
    }

    /// One reconcile pass at a time: waits for a running one (a query only
    /// up to its deadline), and skips the pass if one that began after the
    /// caller asked has succeeded meanwhile.
    fn reconcile(&self, caller: Caller) -> Result<(), IndexError> {
        let asked = Instant::now();
        let mut reconciles = lock(&self.reconciles);
        loop {
            let fresh = reconciles
                .last_success_start
                .is_some_and(|start| start >= asked);
            if fresh && matches!(caller, Caller::Subscribed) {
                self.set_warm(true);
            }
            let query_satisfied = matches!(caller, Caller::Query { .. }) && self.is_warm();
            if fresh || query_satisfied {
                return Ok(());
            }
            if !reconciles.running {
                break;
            }
            reconciles = match caller {
                Caller::Query { deadline } => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(self.catch_up_timeout());
                    }
                    self.reconcile_done
                        .wait_timeout(reconciles, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                Caller::Subscribed | Caller::Periodic => self
                    .reconcile_done
                    .wait(reconciles)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
        reconciles.running = true;
        drop(reconciles);
        let mut run = ReconcileRun {
            index: self,
            started: Instant::now(),
            succeeded: false,
            then_warm: matches!(caller, Caller::Subscribed),
        };
        let deadline = match caller {
            Caller::Query { deadline } => Some(deadline),
            Caller::Subscribed | Caller::Periodic => None,
        };
        self.reconcile_pass(deadline)?;
        run.succeeded = true;
        Ok(())
    }

    /// Lists, drops what is no longer listed, inspects everything listed.
    fn reconcile_pass(&self, deadline: Option<Instant>) -> Result<(), IndexError> {
        let list_ticket = self.ticket();
        let listed = self.call(|source| source.list())?;
        let listed_set: HashSet<&str> = listed.iter().map(String::as_str).collect();
        let now = now_ns();
        let known = self.read().ids();
        for id in known {
            if !listed_set.contains(id.as_str()) {
                self.remove(&id, Removal::Unlisted(list_ticket.number), now);
            }
        }
        drop(list_ticket);
        for id in &listed {
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Err(self.catch_up_timeout());
            }
            self.observe(id)?;
        }
        self.write().filled = true;
        Ok(())
    }

    /// Is it time for the periodic reconcile?
    fn reconcile_due(&self) -> bool {
        lock(&self.reconciles)
            .last_success_start
            .is_none_or(|start| start.elapsed() >= self.config.reconcile_period)
    }

    /// Inspects `id` and applies the answer.
    fn observe(&self, id: &str) -> Result<Option<Arc<Entry>>, IndexError> {
        let ticket = self.ticket();
        let answer = self.call(|source| source.inspect(id))?;
        let now = now_ns();
        let Some(inspect) = answer else {
            self.apply_removal(id, Removal::Confirmed, Some(ticket), now);
            return Ok(None);
        };
        let Some(entry) = Entry::from_inspect(&inspect) else {
            return Ok(None);
        };
        let id = entry.id.clone();
        self.apply_found(entry, ticket, now);
        Ok(self.read().get(&id).cloned())
    }

    fn remove(&self, id: &str, removal: Removal, now: i64) {
        self.apply_removal(id, removal, None, now);
    }

    // Both `apply_` functions hold the ticket book's lock, then the state's,
    // so that no removal can slip between finishing an observation's ticket
    // and applying what it saw.

    fn apply_found(&self, entry: Entry, mut ticket: Ticket<'_>, now: i64) {
        let mut book = lock(&self.tickets);
        let number = ticket.finish_in(&mut book);
        let oldest = book.oldest_in_flight();
        let mut state = self.write();
        state.upsert(entry, number, now);
        state.prune_tombstones(oldest);
    }

    fn apply_removal(&self, id: &str, removal: Removal, ticket: Option<Ticket<'_>>, now: i64) {
        let mut book = lock(&self.tickets);
        if let Some(mut ticket) = ticket {
            ticket.finish_in(&mut book);
        }
        let (horizon, oldest) = (book.horizon(), book.oldest_in_flight());
        let mut state = self.write();
        state.remove(id, removal, horizon, oldest, now);
        state.prune_tombstones(oldest);
    }

    /// Handles one Docker event.
    fn on_event(&self, event: &crate::docker::Event) -> Result<(), IndexError> {
        self.counters
            .events_received
            .fetch_add(1, Ordering::Relaxed);
        self.heard_from_dockerd();
        let id = event.actor.id.as_str();
        if event.kind != "container" || id.is_empty() {
            return Ok(());
        }
        match event.action.as_str() {
            "destroy" => {
                let when = if event.time_nano > 0 {
                    event.time_nano
                } else {
                    now_ns()
                };
                self.remove(id, Removal::Confirmed, when);
            }
            action if REFRESH_ACTIONS.contains(&action) => {
                self.observe(id)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn set_warm(&self, warm: bool) {
        let _guard = lock(&self.warm_lock);
        self.warm.store(warm, Ordering::Release);
        self.warm_changed.notify_all();
    }

    fn ticket(&self) -> Ticket<'_> {
        Ticket {
            number: lock(&self.tickets).issue(),
            book: &self.tickets,
            finished: false,
        }
    }

    /// Makes one call to the source, counted.
    fn call<T>(
        &self,
        call: impl FnOnce(&dyn IndexSource) -> Result<T, DockerError>,
    ) -> Result<T, IndexError> {
        self.counters.docker_calls.fetch_add(1, Ordering::Relaxed);
        let answer = call(self.source.as_ref()).map_err(IndexError::Docker)?;
        self.heard_from_dockerd();
        Ok(answer)
    }

    fn catch_up_timeout(&self) -> IndexError {
        IndexError::CatchUpTimeout {
            after: self.config.catch_up_budget,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, state::State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, state::State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked
/// (every critical section here is a few plain assignments).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
