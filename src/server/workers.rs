//! The pool of worker threads that run handlers, in two lanes.
//!
//! A job is queued in its [`Lane`]. Regular workers (`worker-N`, at most
//! `max_workers`) take quick jobs first and then regular ones; a few
//! reserved workers (`quick-N`, at most `quick_workers`) take quick jobs
//! only. So a flood of slow calls (ExecSync, PullImage) can occupy every
//! regular worker, but never the reserved ones: the short calls the
//! kubelet polls (Status, the lists) still start at once, and a backlog of
//! regular jobs does not hold them up either. The thread count stays
//! bounded by `max_workers + quick_workers`.
//!
//! A thread is started when a lane's queued jobs outnumber the idle
//! workers that may take them and that kind of worker is below its cap; a
//! quick job starts a regular worker while there is room for one, and a
//! reserved worker only when the regular workers are all there and busy.
//! Idle workers exit after [`IDLE_WORKER_TIMEOUT`]. Each worker keeps one
//! `BytesMut` that every job it runs encodes its reply into, so steady
//! traffic allocates no new reply buffers. The pool knows nothing of gRPC:
//! jobs answer their calls themselves (see `dispatch`), and which calls are
//! quick is the caller's choice (see `ServerOptions::quick_methods`).

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::BytesMut;

use crate::supervisor;

/// How long a worker waits for a job before its thread exits.
pub(super) const IDLE_WORKER_TIMEOUT: Duration = Duration::from_secs(30);

/// Reserved workers for quick jobs: enough for the kubelet's periodic
/// Status, relist and stats calls to overlap, few enough to cost nothing
/// while idle (they exit like any other worker).
pub(super) const QUICK_WORKERS: usize = 4;

/// A unit of work; it gets the worker's reusable reply buffer.
pub(super) type Job = Box<dyn FnOnce(&mut BytesMut) + Send>;

/// Which workers may run a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lane {
    /// Regular workers only.
    Regular,
    /// Any worker, before every queued regular job.
    Quick,
}

/// The two kinds of worker thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Takes quick jobs, then regular ones.
    Regular,
    /// Takes quick jobs only.
    Reserved,
}

#[derive(Debug, Clone)]
pub(super) struct WorkerPool {
    shared: Arc<PoolShared>,
}

#[derive(Debug)]
struct PoolShared {
    state: Mutex<PoolState>,
    /// Regular workers wait on this one.
    job_ready: Condvar,
    /// Reserved workers wait on this one.
    quick_job_ready: Condvar,
    max_workers: usize,
    quick_workers: usize,
    idle_timeout: Duration,
}

/// How many workers of one kind there are.
#[derive(Debug, Default)]
struct Crew {
    /// Waiting for a job.
    idle: usize,
    /// Alive.
    total: usize,
    /// Ever started; names the next thread.
    started: u64,
}

struct PoolState {
    regular: VecDeque<Job>,
    quick: VecDeque<Job>,
    workers: Crew,
    reserved: Crew,
    /// Set at shutdown: idle workers exit instead of waiting.
    closing: bool,
}

impl std::fmt::Debug for PoolState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolState")
            .field("regular", &self.regular.len())
            .field("quick", &self.quick.len())
            .field("workers", &self.workers)
            .field("reserved", &self.reserved)
            .field("closing", &self.closing)
            .finish()
    }
}

impl PoolState {
    fn crew(&mut self, kind: Kind) -> &mut Crew {
        match kind {
            Kind::Regular => &mut self.workers,
            Kind::Reserved => &mut self.reserved,
        }
    }

    fn next_job(&mut self, kind: Kind) -> Option<Job> {
        match kind {
            Kind::Regular => self.quick.pop_front().or_else(|| self.regular.pop_front()),
            Kind::Reserved => self.quick.pop_front(),
        }
    }

    /// Whether some worker alive may run a job of `lane`.
    fn has_runner(&self, lane: Lane) -> bool {
        match lane {
            Lane::Regular => self.workers.total > 0,
            Lane::Quick => self.workers.total + self.reserved.total > 0,
        }
    }

    fn has_job_for(&self, kind: Kind) -> bool {
        match kind {
            Kind::Regular => !self.quick.is_empty() || !self.regular.is_empty(),
            Kind::Reserved => !self.quick.is_empty(),
        }
    }

    /// Which kinds of idle worker to wake, one each, after a job was queued
    /// in `lane`: (regular, reserved). A quick job wakes a reserved worker
    /// if one is idle, and a regular one too while the quick jobs queued
    /// outnumber the idle reserved workers. A worker stays counted idle
    /// until it wakes and takes a job, so each wake finds a waiter of its
    /// own, and none is sent to a kind with no one waiting: a worker that
    /// is not idle looks at the queues before it waits again.
    fn to_wake(&self, lane: Lane) -> (bool, bool) {
        let regular_idle = self.workers.idle > 0;
        match lane {
            Lane::Regular => (regular_idle, false),
            Lane::Quick => {
                let reserved = self.reserved.idle > 0;
                let overflow = self.quick.len() > self.reserved.idle;
                (regular_idle && overflow, reserved)
            }
        }
    }

    /// The worker to start after a job was queued in `lane`, if one is
    /// needed and allowed.
    fn worker_to_start(
        &self,
        lane: Lane,
        max_workers: usize,
        quick_workers: usize,
    ) -> Option<Kind> {
        // Quick jobs beyond the idle reserved workers fall to regular ones.
        let regular_demand =
            self.regular.len() + self.quick.len().saturating_sub(self.reserved.idle);
        if regular_demand > self.workers.idle && self.workers.total < max_workers {
            return Some(Kind::Regular);
        }
        // Idle regular workers are spoken for by queued regular jobs first.
        let free_regular = self.workers.idle.saturating_sub(self.regular.len());
        let quick_unserved = self.quick.len() > self.reserved.idle + free_regular;
        if lane == Lane::Quick && quick_unserved && self.reserved.total < quick_workers {
            return Some(Kind::Reserved);
        }
        None
    }
}

impl PoolShared {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // Jobs run outside the lock, so a panic cannot leave the state
        // half-updated; a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn ready(&self, kind: Kind) -> &Condvar {
        match kind {
            Kind::Regular => &self.job_ready,
            Kind::Reserved => &self.quick_job_ready,
        }
    }
}

impl WorkerPool {
    /// A pool of at most `max_workers` regular threads (at least one) and
    /// `quick_workers` reserved for quick jobs.
    pub(super) fn new(max_workers: usize, quick_workers: usize) -> WorkerPool {
        WorkerPool::with_idle_timeout(max_workers, quick_workers, IDLE_WORKER_TIMEOUT)
    }

    fn with_idle_timeout(
        max_workers: usize,
        quick_workers: usize,
        idle_timeout: Duration,
    ) -> WorkerPool {
        let state = PoolState {
            regular: VecDeque::new(),
            quick: VecDeque::new(),
            workers: Crew::default(),
            reserved: Crew::default(),
            closing: false,
        };
        WorkerPool {
            shared: Arc::new(PoolShared {
                state: Mutex::new(state),
                job_ready: Condvar::new(),
                quick_job_ready: Condvar::new(),
                max_workers: max_workers.max(1),
                quick_workers,
                idle_timeout,
            }),
        }
    }

    /// Queues `job` in `lane`. Fails only when no worker that could run it
    /// exists and none can be started; the job is then handed back unrun.
    pub(super) fn submit(&self, lane: Lane, job: Job) -> Result<(), (Job, io::Error)> {
        let mut state = self.shared.lock();
        match lane {
            Lane::Regular => state.regular.push_back(job),
            Lane::Quick => state.quick.push_back(job),
        }
        let start = state.worker_to_start(lane, self.shared.max_workers, self.shared.quick_workers);
        if let Some(kind) = start {
            let crew = state.crew(kind);
            let name = match kind {
                Kind::Regular => format!("worker-{}", crew.started),
                Kind::Reserved => format!("quick-{}", crew.started),
            };
            let shared = Arc::clone(&self.shared);
            match supervisor::spawn_named(name, Box::new(move || work(&shared, kind))) {
                Ok(_) => {
                    crew.total += 1;
                    crew.started += 1;
                }
                Err(err) if !state.has_runner(lane) => {
                    // No worker exists to have taken it: the job pushed
                    // above is still the last one in its queue.
                    let job = match lane {
                        Lane::Regular => state.regular.pop_back(),
                        Lane::Quick => state.quick.pop_back(),
                    };
                    drop(state);
                    return match job {
                        Some(job) => Err((job, err)),
                        None => Ok(()),
                    };
                }
                Err(err) => log::warn!("cannot start another worker thread: {err}"),
            }
        }
        let (wake_regular, wake_reserved) = state.to_wake(lane);
        drop(state);
        if wake_regular {
            self.shared.job_ready.notify_one();
        }
        if wake_reserved {
            self.shared.quick_job_ready.notify_one();
        }
        Ok(())
    }

    /// Lets idle workers exit once the queues are empty. Jobs already
    /// queued, or submitted later, still run.
    pub(super) fn close(&self) {
        self.shared.lock().closing = true;
        self.shared.job_ready.notify_all();
        self.shared.quick_job_ready.notify_all();
    }

    #[cfg(test)]
    fn threads(&self) -> usize {
        let state = self.shared.lock();
        state.workers.total + state.reserved.total
    }
}

/// Keeps the worker count right however the worker ends.
struct Exit<'a>(&'a PoolShared, Kind);

impl Drop for Exit<'_> {
    fn drop(&mut self) {
        self.0.lock().crew(self.1).total -= 1;
    }
}

fn work(shared: &PoolShared, kind: Kind) {
    let _exit = Exit(shared, kind);
    let mut reply_buffer = BytesMut::new();
    let mut state = shared.lock();
    loop {
        if let Some(job) = state.next_job(kind) {
            drop(state);
            job(&mut reply_buffer);
            state = shared.lock();
            continue;
        }
        if state.closing {
            return;
        }
        state.crew(kind).idle += 1;
        let (guard, wait) = shared
            .ready(kind)
            .wait_timeout(state, shared.idle_timeout)
            .unwrap_or_else(PoisonError::into_inner);
        state = guard;
        state.crew(kind).idle -= 1;
        if wait.timed_out() && !state.has_job_for(kind) {
            return;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::thread;
    use std::time::Instant;

    /// A pool state with these idle workers and `quick` quick jobs queued.
    fn idle(regular: usize, reserved: usize, quick: usize) -> PoolState {
        let job = || -> Job { Box::new(|_| {}) };
        PoolState {
            regular: VecDeque::new(),
            quick: (0..quick).map(|_| job()).collect(),
            workers: Crew {
                idle: regular,
                total: regular,
                started: 0,
            },
            reserved: Crew {
                idle: reserved,
                total: reserved,
                started: 0,
            },
            closing: false,
        }
    }

    #[test]
    fn a_job_wakes_one_idle_worker_that_may_take_it_and_no_kind_without_one() {
        assert_eq!(idle(1, 1, 1).to_wake(Lane::Quick), (false, true));
        assert_eq!(idle(1, 0, 1).to_wake(Lane::Quick), (true, false));
        assert_eq!(idle(0, 0, 1).to_wake(Lane::Quick), (false, false));
        assert_eq!(idle(1, 1, 0).to_wake(Lane::Regular), (true, false));
        assert_eq!(idle(0, 1, 0).to_wake(Lane::Regular), (false, false));
    }

    #[test]
    fn quick_jobs_beyond_the_idle_reserved_workers_wake_a_regular_one_too() {
        assert_eq!(idle(1, 1, 2).to_wake(Lane::Quick), (true, true));
        assert_eq!(idle(1, 2, 2).to_wake(Lane::Quick), (false, true));
    }

    fn wait_until(mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(Instant::now() < deadline, "condition not reached in time");
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Submits `count` regular jobs that block until `release` is dropped
    /// and waits until they all run.
    fn occupy(pool: &WorkerPool, count: usize) -> mpsc::Sender<()> {
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let (running_tx, running_rx) = mpsc::channel();
        for _ in 0..count {
            let release = Arc::clone(&release_rx);
            let running = running_tx.clone();
            pool.submit(
                Lane::Regular,
                Box::new(move |_| {
                    running.send(()).unwrap();
                    // Err once the sender is dropped: every job ends then.
                    let _ = release.lock().unwrap().recv();
                }),
            )
            .map_err(|(_, e)| e)
            .unwrap();
        }
        for _ in 0..count {
            running_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        release_tx
    }

    fn current_thread_name() -> String {
        thread::current().name().unwrap_or_default().to_owned()
    }

    #[test]
    fn a_quick_job_runs_while_every_regular_worker_is_busy() {
        let pool = WorkerPool::new(3, 1);
        let release = occupy(&pool, 3);
        let (done_tx, done_rx) = mpsc::channel();
        let waiting = done_tx.clone();
        pool.submit(
            Lane::Regular,
            Box::new(move |_| waiting.send("regular".to_owned()).unwrap()),
        )
        .map_err(|(_, e)| e)
        .unwrap();
        pool.submit(
            Lane::Quick,
            Box::new(move |_| done_tx.send(current_thread_name()).unwrap()),
        )
        .map_err(|(_, e)| e)
        .unwrap();
        assert_eq!(
            done_rx.recv_timeout(Duration::from_secs(10)).unwrap(),
            "quick-0"
        );
        assert!(
            done_rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "the queued regular job waits for a regular worker"
        );
        assert_eq!(pool.threads(), 4);
        drop(release);
        assert_eq!(
            done_rx.recv_timeout(Duration::from_secs(10)).unwrap(),
            "regular"
        );
    }

    #[test]
    fn quick_jobs_never_start_more_than_the_reserved_workers() {
        let pool = WorkerPool::new(1, 2);
        let release = occupy(&pool, 1);
        let (done_tx, done_rx) = mpsc::channel();
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        for _ in 0..10 {
            let done = done_tx.clone();
            let gate = Arc::clone(&gate);
            pool.submit(
                Lane::Quick,
                Box::new(move |_| {
                    drop(gate.lock().unwrap());
                    done.send(()).unwrap();
                }),
            )
            .map_err(|(_, e)| e)
            .unwrap();
            assert!(pool.threads() <= 3);
        }
        drop(held);
        for _ in 0..10 {
            done_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        drop(release);
    }

    #[test]
    fn a_quick_job_uses_a_regular_worker_while_there_is_room_for_one() {
        let pool = WorkerPool::new(2, 1);
        let (tx, rx) = mpsc::channel();
        pool.submit(
            Lane::Quick,
            Box::new(move |_| tx.send(current_thread_name()).unwrap()),
        )
        .map_err(|(_, e)| e)
        .unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)).unwrap(),
            "worker-0"
        );
    }

    #[test]
    fn queued_quick_jobs_go_before_queued_regular_ones() {
        let pool = WorkerPool::new(1, 0);
        let release = occupy(&pool, 1);
        let (order_tx, order_rx) = mpsc::channel();
        for (lane, name) in [
            (Lane::Regular, "regular 1"),
            (Lane::Quick, "quick"),
            (Lane::Regular, "regular 2"),
        ] {
            let order = order_tx.clone();
            pool.submit(lane, Box::new(move |_| order.send(name).unwrap()))
                .map_err(|(_, e)| e)
                .unwrap();
        }
        drop(release);
        let order: Vec<_> = (0..3)
            .map(|_| order_rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        assert_eq!(order, ["quick", "regular 1", "regular 2"]);
    }

    #[test]
    fn reserved_workers_exit_when_idle() {
        let pool = WorkerPool::with_idle_timeout(1, 1, Duration::from_millis(20));
        let release = occupy(&pool, 1);
        let (tx, rx) = mpsc::channel();
        pool.submit(Lane::Quick, Box::new(move |_| tx.send(()).unwrap()))
            .map_err(|(_, e)| e)
            .unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        wait_until(|| pool.threads() == 1);
        drop(release);
        wait_until(|| pool.threads() == 0);
    }

    #[test]
    fn a_blocked_job_does_not_hold_up_the_next_one() {
        let pool = WorkerPool::new(4, QUICK_WORKERS);
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel();
        pool.submit(Lane::Regular, Box::new(move |_| release_rx.recv().unwrap()))
            .map_err(|(_, e)| e)
            .unwrap();
        let done = done_tx.clone();
        pool.submit(
            Lane::Regular,
            Box::new(move |_| done.send("second").unwrap()),
        )
        .map_err(|(_, e)| e)
        .unwrap();
        assert_eq!(
            done_rx.recv_timeout(Duration::from_secs(10)).unwrap(),
            "second"
        );
        release_tx.send(()).unwrap();
    }

    #[test]
    fn regular_jobs_never_exceed_the_regular_cap_and_every_job_runs() {
        let pool = WorkerPool::new(3, 2);
        let (done_tx, done_rx) = mpsc::channel();
        for n in 0..50 {
            let done = done_tx.clone();
            pool.submit(
                Lane::Regular,
                Box::new(move |_| {
                    thread::sleep(Duration::from_millis(1));
                    done.send(n).unwrap();
                }),
            )
            .map_err(|(_, e)| e)
            .unwrap();
            assert!(pool.threads() <= 3);
        }
        let mut seen: Vec<i32> = (0..50)
            .map(|_| done_rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn workers_are_named_and_reuse_their_reply_buffer() {
        let pool = WorkerPool::new(1, QUICK_WORKERS);
        let (tx, rx) = mpsc::channel();
        for _ in 0..2 {
            let tx = tx.clone();
            pool.submit(
                Lane::Regular,
                Box::new(move |buffer: &mut BytesMut| {
                    let name = thread::current().name().map(str::to_owned);
                    let grown = buffer.capacity();
                    buffer.reserve(4096);
                    tx.send((name, grown)).unwrap();
                }),
            )
            .map_err(|(_, e)| e)
            .unwrap();
        }
        let (first_name, first_capacity) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let (_, second_capacity) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(first_name.as_deref(), Some("worker-0"));
        assert_eq!(first_capacity, 0);
        assert!(second_capacity >= 4096);
    }

    #[test]
    fn idle_workers_exit() {
        let pool = WorkerPool::with_idle_timeout(2, 1, Duration::from_millis(20));
        let (tx, rx) = mpsc::channel();
        pool.submit(Lane::Regular, Box::new(move |_| tx.send(()).unwrap()))
            .map_err(|(_, e)| e)
            .unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        wait_until(|| pool.threads() == 0);
    }

    #[test]
    fn a_panicking_job_does_not_leak_its_worker() {
        let pool = WorkerPool::with_idle_timeout(1, 1, Duration::from_secs(60));
        pool.submit(Lane::Regular, Box::new(|_| panic!("job bug")))
            .map_err(|(_, e)| e)
            .unwrap();
        wait_until(|| pool.threads() == 0);
        let (tx, rx) = mpsc::channel();
        pool.submit(Lane::Regular, Box::new(move |_| tx.send(()).unwrap()))
            .map_err(|(_, e)| e)
            .unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
    }

    #[test]
    fn closing_lets_idle_workers_exit_but_still_runs_queued_jobs() {
        let pool = WorkerPool::new(2, QUICK_WORKERS);
        let (tx, rx) = mpsc::channel();
        let first = tx.clone();
        pool.submit(Lane::Regular, Box::new(move |_| first.send(1).unwrap()))
            .map_err(|(_, e)| e)
            .unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        pool.close();
        wait_until(|| pool.threads() == 0);
        pool.submit(Lane::Regular, Box::new(move |_| tx.send(2).unwrap()))
            .map_err(|(_, e)| e)
            .unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 2);
    }
}
