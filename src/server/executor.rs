//! The executor that drives one connection on its own thread, and the
//! `AsyncRead`/`AsyncWrite` adapter h2 reads and writes through.
//!
//! The whole connection is one task: [`Executor::run`] polls it, then sleeps in
//! `mio::Poll` until the socket changes readiness, a waker fires or the
//! task's next deadline passes, and polls it again. A wake that arrives
//! while the task is being polled makes the next poll happen at once.
//!
//! The socket adapter returns `Pending` on `EWOULDBLOCK` without keeping the
//! waker it was given. That is sound only because of the rule above: the
//! socket is registered with this thread's `mio::Poll`, and every readiness
//! event re-polls the one task that owns the socket. This module must not
//! be used to run more than one future per socket.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, ThreadId};
use std::time::Instant;

use mio::net::UnixStream;
use mio::{Events, Interest, Token};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);

/// Readiness events taken per `mio::Poll` call; there are only two sources.
const EVENT_CAPACITY: usize = 8;

/// What a task reports after being polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Progress {
    /// The task is over; the thread may exit.
    Done,
    /// Poll again on the next event or wake, or at this instant at the
    /// latest.
    Waiting(Option<Instant>),
}

/// The one task of a connection thread.
pub(super) trait Task {
    fn poll(&mut self, cx: &mut Context<'_>) -> Progress;
}

/// The waker handed to h2 and to worker threads: it records that a poll is
/// due and interrupts this thread's `mio::Poll`.
#[derive(Debug)]
struct ThreadWake {
    woken: AtomicBool,
    waker: mio::Waker,
    /// The connection thread. It can only wake itself from inside a poll of
    /// its task, and [`Executor::run`] checks the flag right after that
    /// poll, so its own wakes need no syscall.
    owner: ThreadId,
}

impl Wake for ThreadWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Only the first wake since the last poll needs the syscall; later
        // ones find the flag set and the poll already due.
        if !self.woken.swap(true, Ordering::SeqCst) && thread::current().id() != self.owner {
            if let Err(err) = self.waker.wake() {
                log::warn!("cannot wake connection thread: {err}");
            }
        }
    }
}

/// A `mio::Poll` watching one socket, and the waker that interrupts it.
#[derive(Debug)]
pub(super) struct Executor {
    poll: mio::Poll,
    wake: Arc<ThreadWake>,
}

impl Executor {
    /// Registers `socket` for readiness on a new `mio::Poll`; the socket is
    /// then moved into the task that [`Executor::run`] drives. Call it on
    /// the thread that will call `run`.
    pub(super) fn new(socket: &mut UnixStream) -> io::Result<Executor> {
        let poll = mio::Poll::new()?;
        poll.registry()
            .register(socket, SOCKET, Interest::READABLE | Interest::WRITABLE)?;
        let waker = mio::Waker::new(poll.registry(), WAKER)?;
        Ok(Executor {
            poll,
            wake: Arc::new(ThreadWake {
                woken: AtomicBool::new(false),
                waker,
                owner: thread::current().id(),
            }),
        })
    }

    pub(super) fn waker(&self) -> Waker {
        Waker::from(Arc::clone(&self.wake))
    }

    /// Polls `task` until it is done.
    pub(super) fn run(&mut self, task: &mut impl Task) -> io::Result<()> {
        let waker = self.waker();
        let mut cx = Context::from_waker(&waker);
        let mut events = Events::with_capacity(EVENT_CAPACITY);
        loop {
            self.wake.woken.store(false, Ordering::SeqCst);
            let deadline = match task.poll(&mut cx) {
                Progress::Done => return Ok(()),
                Progress::Waiting(deadline) => deadline,
            };
            if self.wake.woken.load(Ordering::SeqCst) {
                continue;
            }
            let timeout = deadline.map(|at| at.saturating_duration_since(Instant::now()));
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
    }
}

/// The connection's socket as h2 sees it.
#[derive(Debug)]
pub(super) struct Socket(UnixStream);

impl Socket {
    pub(super) fn new(stream: UnixStream) -> Socket {
        Socket(stream)
    }
}

/// Runs a non-blocking socket call, turning `EWOULDBLOCK` into `Pending`
/// (see the module comment for why the waker is not kept) and retrying
/// `EINTR`.
fn nonblocking<T>(mut call: impl FnMut() -> io::Result<T>) -> Poll<io::Result<T>> {
    loop {
        match call() {
            Ok(value) => return Poll::Ready(Ok(value)),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Poll::Ready(Err(err)),
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let stream = &mut self.get_mut().0;
        let read = nonblocking(|| stream.read(buf.initialize_unfilled()));
        read.map_ok(|n| buf.advance(n))
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let stream = &mut self.get_mut().0;
        nonblocking(|| stream.write(data))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let stream = &mut self.get_mut().0;
        nonblocking(|| stream.write_vectored(data))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Writes go straight to the kernel: there is nothing buffered here.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.0.shutdown(std::net::Shutdown::Write) {
            Err(err) if err.kind() != io::ErrorKind::NotConnected => Poll::Ready(Err(err)),
            _ => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// What a test task does on each poll; returns its next deadline.
    type OnPoll = Box<dyn FnMut(&mut Context<'_>) -> Option<Instant>>;

    /// Counts its polls and finishes after a fixed number.
    struct CountingTask {
        polls: usize,
        finish_after: usize,
        on_poll: OnPoll,
    }

    impl Task for CountingTask {
        fn poll(&mut self, cx: &mut Context<'_>) -> Progress {
            self.polls += 1;
            if self.polls >= self.finish_after {
                return Progress::Done;
            }
            Progress::Waiting((self.on_poll)(cx))
        }
    }

    fn executor() -> (Executor, UnixStream) {
        let (mut ours, theirs) = UnixStream::pair().unwrap();
        (Executor::new(&mut ours).unwrap(), theirs)
    }

    #[test]
    fn a_wake_during_the_poll_polls_again_without_waiting() {
        let (mut executor, _peer) = executor();
        let mut task = CountingTask {
            polls: 0,
            finish_after: 3,
            on_poll: Box::new(|cx| {
                cx.waker().wake_by_ref();
                None
            }),
        };
        executor.run(&mut task).unwrap();
        assert_eq!(task.polls, 3);
    }

    #[test]
    fn a_deadline_ends_the_wait() {
        let (mut executor, _peer) = executor();
        let started = Instant::now();
        let mut task = CountingTask {
            polls: 0,
            finish_after: 2,
            on_poll: Box::new(move |_| Some(started + Duration::from_millis(20))),
        };
        executor.run(&mut task).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn a_wake_from_another_thread_ends_the_wait() {
        let (mut executor, _peer) = executor();
        let waker = executor.waker();
        let wakes = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&wakes);
        let thread = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            counter.fetch_add(1, Ordering::SeqCst);
            waker.wake();
        });
        let seen = Arc::clone(&wakes);
        let mut task = CountingTask {
            polls: 0,
            finish_after: 2,
            on_poll: Box::new(move |_| {
                assert_eq!(
                    seen.load(Ordering::SeqCst),
                    0,
                    "polled again before the wake"
                );
                None
            }),
        };
        executor.run(&mut task).unwrap();
        assert_eq!(wakes.load(Ordering::SeqCst), 1);
        thread.join().unwrap();
    }

    /// Finishes once a byte can be read from its socket.
    struct ReadOneByte(UnixStream);

    impl Task for ReadOneByte {
        fn poll(&mut self, _cx: &mut Context<'_>) -> Progress {
            match self.0.read(&mut [0u8; 1]) {
                Ok(1) => Progress::Done,
                _ => Progress::Waiting(Some(Instant::now() + Duration::from_secs(30))),
            }
        }
    }

    #[test]
    fn socket_readiness_polls_the_task_again() {
        let (mut ours, mut peer) = UnixStream::pair().unwrap();
        let mut executor = Executor::new(&mut ours).unwrap();
        let writer = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            peer.write_all(b"x").unwrap();
            peer
        });
        let started = Instant::now();
        executor.run(&mut ReadOneByte(ours)).unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "woke by timeout, not readiness"
        );
        writer.join().unwrap();
    }
}
