//! The pool of worker threads that run handlers.
//!
//! A job is queued; a new thread (`worker-N`) is started when the queued
//! jobs outnumber the idle workers and the pool is below its cap, so a slow
//! call never holds up the calls behind it until the cap is reached. Idle
//! workers exit after [`IDLE_WORKER_TIMEOUT`]. Each worker keeps one
//! `BytesMut` that every job it runs encodes its reply into, so steady
//! traffic allocates no new reply buffers. The pool knows nothing of gRPC:
//! jobs answer their calls themselves (see `dispatch`).

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use bytes::BytesMut;

/// How long a worker waits for a job before its thread exits.
pub(super) const IDLE_WORKER_TIMEOUT: Duration = Duration::from_secs(30);

/// A unit of work; it gets the worker's reusable reply buffer.
pub(super) type Job = Box<dyn FnOnce(&mut BytesMut) + Send>;

#[derive(Debug, Clone)]
pub(super) struct WorkerPool {
    shared: Arc<PoolShared>,
}

#[derive(Debug)]
struct PoolShared {
    state: Mutex<PoolState>,
    job_ready: Condvar,
    max_workers: usize,
    idle_timeout: Duration,
}

struct PoolState {
    queue: VecDeque<Job>,
    /// Workers waiting for a job.
    idle: usize,
    /// Worker threads alive.
    total: usize,
    /// Workers ever started; names the next thread.
    started: u64,
    /// Set at shutdown: idle workers exit instead of waiting.
    closing: bool,
}

impl std::fmt::Debug for PoolState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolState")
            .field("queued", &self.queue.len())
            .field("idle", &self.idle)
            .field("total", &self.total)
            .field("closing", &self.closing)
            .finish()
    }
}

impl PoolShared {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // Jobs run outside the lock, so a panic cannot leave the state
        // half-updated; a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl WorkerPool {
    /// A pool of at most `max_workers` threads (at least one).
    pub(super) fn new(max_workers: usize) -> WorkerPool {
        WorkerPool::with_idle_timeout(max_workers, IDLE_WORKER_TIMEOUT)
    }

    fn with_idle_timeout(max_workers: usize, idle_timeout: Duration) -> WorkerPool {
        let state = PoolState {
            queue: VecDeque::new(),
            idle: 0,
            total: 0,
            started: 0,
            closing: false,
        };
        WorkerPool {
            shared: Arc::new(PoolShared {
                state: Mutex::new(state),
                job_ready: Condvar::new(),
                max_workers: max_workers.max(1),
                idle_timeout,
            }),
        }
    }

    /// Queues `job`. Fails only when no worker exists and none can be
    /// started; the job is then handed back unrun.
    pub(super) fn submit(&self, job: Job) -> Result<(), (Job, io::Error)> {
        let mut state = self.shared.lock();
        state.queue.push_back(job);
        if state.queue.len() > state.idle && state.total < self.shared.max_workers {
            let name = format!("worker-{}", state.started);
            let shared = Arc::clone(&self.shared);
            match thread::Builder::new()
                .name(name)
                .spawn(move || work(&shared))
            {
                Ok(_) => {
                    state.total += 1;
                    state.started += 1;
                }
                Err(err) if state.total == 0 => {
                    // No worker exists to have taken it: the job pushed
                    // above is still the last one in the queue.
                    let job = state.queue.pop_back();
                    drop(state);
                    return match job {
                        Some(job) => Err((job, err)),
                        None => Ok(()),
                    };
                }
                Err(err) => log::warn!("cannot start another worker thread: {err}"),
            }
        }
        drop(state);
        self.shared.job_ready.notify_one();
        Ok(())
    }

    /// Lets idle workers exit once the queue is empty. Jobs already queued,
    /// or submitted later, still run.
    pub(super) fn close(&self) {
        self.shared.lock().closing = true;
        self.shared.job_ready.notify_all();
    }

    #[cfg(test)]
    fn threads(&self) -> usize {
        self.shared.lock().total
    }
}

/// Keeps the worker count right however the worker ends.
struct Exit<'a>(&'a PoolShared);

impl Drop for Exit<'_> {
    fn drop(&mut self) {
        self.0.lock().total -= 1;
    }
}

fn work(shared: &PoolShared) {
    let _exit = Exit(shared);
    let mut reply_buffer = BytesMut::new();
    let mut state = shared.lock();
    loop {
        if let Some(job) = state.queue.pop_front() {
            drop(state);
            job(&mut reply_buffer);
            state = shared.lock();
            continue;
        }
        if state.closing {
            return;
        }
        state.idle += 1;
        let (guard, wait) = shared
            .job_ready
            .wait_timeout(state, shared.idle_timeout)
            .unwrap_or_else(PoisonError::into_inner);
        state = guard;
        state.idle -= 1;
        if wait.timed_out() && state.queue.is_empty() {
            return;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

    fn wait_until(mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(Instant::now() < deadline, "condition not reached in time");
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_blocked_job_does_not_hold_up_the_next_one() {
        let pool = WorkerPool::new(4);
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel();
        pool.submit(Box::new(move |_| release_rx.recv().unwrap()))
            .map_err(|(_, e)| e)
            .unwrap();
        let done = done_tx.clone();
        pool.submit(Box::new(move |_| done.send("second").unwrap()))
            .map_err(|(_, e)| e)
            .unwrap();
        assert_eq!(
            done_rx.recv_timeout(Duration::from_secs(10)).unwrap(),
            "second"
        );
        release_tx.send(()).unwrap();
    }

    #[test]
    fn threads_never_exceed_the_cap_and_every_job_runs() {
        let pool = WorkerPool::new(3);
        let (done_tx, done_rx) = mpsc::channel();
        for n in 0..50 {
            let done = done_tx.clone();
            pool.submit(Box::new(move |_| {
                thread::sleep(Duration::from_millis(1));
                done.send(n).unwrap();
            }))
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
        let pool = WorkerPool::new(1);
        let (tx, rx) = mpsc::channel();
        for _ in 0..2 {
            let tx = tx.clone();
            pool.submit(Box::new(move |buffer: &mut BytesMut| {
                let name = thread::current().name().map(str::to_owned);
                let grown = buffer.capacity();
                buffer.reserve(4096);
                tx.send((name, grown)).unwrap();
            }))
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
        let pool = WorkerPool::with_idle_timeout(2, Duration::from_millis(20));
        let (tx, rx) = mpsc::channel();
        pool.submit(Box::new(move |_| tx.send(()).unwrap()))
            .map_err(|(_, e)| e)
            .unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        wait_until(|| pool.threads() == 0);
    }

    #[test]
    fn a_panicking_job_does_not_leak_its_worker() {
        let pool = WorkerPool::with_idle_timeout(1, Duration::from_secs(60));
        pool.submit(Box::new(|_| panic!("job bug")))
            .map_err(|(_, e)| e)
            .unwrap();
        wait_until(|| pool.threads() == 0);
        let (tx, rx) = mpsc::channel();
        pool.submit(Box::new(move |_| tx.send(()).unwrap()))
            .map_err(|(_, e)| e)
            .unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
    }

    #[test]
    fn closing_lets_idle_workers_exit_but_still_runs_queued_jobs() {
        let pool = WorkerPool::new(2);
        let (tx, rx) = mpsc::channel();
        let first = tx.clone();
        pool.submit(Box::new(move |_| first.send(1).unwrap()))
            .map_err(|(_, e)| e)
            .unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        pool.close();
        wait_until(|| pool.threads() == 0);
        pool.submit(Box::new(move |_| tx.send(2).unwrap()))
            .map_err(|(_, e)| e)
            .unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 2);
    }
}
