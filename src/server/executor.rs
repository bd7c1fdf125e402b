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
//!
//! After a read found nothing, further reads answer `Pending` without a
//! syscall until the executor sees the socket readable again: h2 reads on
//! every poll, and most polls follow a worker's wake, not new bytes. The
//! socket is watched for writability only once a write would have blocked:
//! otherwise every reply the client reads would wake the thread again.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, ThreadId};
use std::time::Instant;

use mio::net::UnixStream;
use mio::unix::SourceFd;
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
    /// Whether a read may find bytes: cleared by the [`Socket`] when a read
    /// would block, set by every readable event. Shared only by this
    /// thread's executor and socket.
    readable: Arc<AtomicBool>,
    /// Set by the [`Socket`] when a write would block; the executor then
    /// watches the socket for writability from its next wait on.
    write_blocked: Arc<AtomicBool>,
    /// The socket, to watch it for writability too once a write blocked.
    fd: RawFd,
    watching_writes: bool,
}

impl Executor {
    /// Registers `socket` for readiness on a new `mio::Poll`; the socket is
    /// then moved into the task that [`Executor::run`] drives. Call it on
    /// the thread that will call `run`.
    pub(super) fn new(socket: &mut UnixStream) -> io::Result<Executor> {
        let poll = mio::Poll::new()?;
        poll.registry()
            .register(socket, SOCKET, Interest::READABLE)?;
        let waker = mio::Waker::new(poll.registry(), WAKER)?;
        Ok(Executor {
            poll,
            wake: Arc::new(ThreadWake {
                woken: AtomicBool::new(false),
                waker,
                owner: thread::current().id(),
            }),
            readable: Arc::new(AtomicBool::new(true)),
            write_blocked: Arc::new(AtomicBool::new(false)),
            fd: socket.as_raw_fd(),
            watching_writes: false,
        })
    }

    /// The task's view of the socket registered in [`Executor::new`].
    pub(super) fn socket(&self, stream: UnixStream) -> Socket {
        Socket {
            stream,
            readable: Arc::clone(&self.readable),
            write_blocked: Arc::clone(&self.write_blocked),
        }
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
            if !self.watching_writes && self.write_blocked.load(Ordering::Relaxed) {
                // Re-arming reports a socket that is writable already.
                self.poll.registry().reregister(
                    &mut SourceFd(&self.fd),
                    SOCKET,
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                self.watching_writes = true;
            }
            let timeout = deadline.map(|at| at.saturating_duration_since(Instant::now()));
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
            let readable = events.iter().any(|event| {
                event.token() == SOCKET
                    && (event.is_readable() || event.is_read_closed() || event.is_error())
            });
            if readable {
                self.readable.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// The connection's socket as h2 sees it; made by [`Executor::socket`].
#[derive(Debug)]
pub(super) struct Socket {
    stream: UnixStream,
    readable: Arc<AtomicBool>,
    write_blocked: Arc<AtomicBool>,
}

impl Socket {
    /// Runs a write, noting one that would block (see [`Executor`]).
    fn write_with(
        &mut self,
        mut write: impl FnMut(&mut UnixStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let stream = &mut self.stream;
        let written = nonblocking(|| write(stream));
        if written.is_pending() {
            self.write_blocked.store(true, Ordering::Relaxed);
        }
        written
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
        let socket = self.get_mut();
        if !socket.readable.load(Ordering::Relaxed) {
            return Poll::Pending;
        }
        let stream = &mut socket.stream;
        let read = nonblocking(|| stream.read(buf.initialize_unfilled()));
        if read.is_pending() {
            socket.readable.store(false, Ordering::Relaxed);
        }
        read.map_ok(|n| buf.advance(n))
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().write_with(|stream| stream.write(data))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .write_with(|stream| stream.write_vectored(data))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Writes go straight to the kernel: there is nothing buffered here.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stream.shutdown(std::net::Shutdown::Write) {
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

    /// Reads through the socket adapter until a byte comes.
    struct ReadThroughSocket(Socket);

    impl Task for ReadThroughSocket {
        fn poll(&mut self, cx: &mut Context<'_>) -> Progress {
            let mut byte = [0u8; 1];
            let mut buf = ReadBuf::new(&mut byte);
            match Pin::new(&mut self.0).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().len() == 1 => Progress::Done,
                _ => Progress::Waiting(Some(Instant::now() + Duration::from_secs(30))),
            }
        }
    }

    #[test]
    fn a_read_that_would_block_asks_the_kernel_again_only_after_a_readable_event() {
        let (mut ours, mut peer) = UnixStream::pair().unwrap();
        let executor = Executor::new(&mut ours).unwrap();
        let mut socket = executor.socket(ours);
        let waker = executor.waker();
        let mut cx = Context::from_waker(&waker);
        let mut byte = [0u8; 1];
        let mut read = |socket: &mut Socket| {
            let mut buf = ReadBuf::new(&mut byte);
            let polled = Pin::new(socket).poll_read(&mut cx, &mut buf);
            polled.map(|result| result.map(|()| buf.filled().len()))
        };
        assert!(read(&mut socket).is_pending());
        peer.write_all(b"x").unwrap();
        // The byte is there, but no readable event has been seen since.
        assert!(read(&mut socket).is_pending());
        executor.readable.store(true, Ordering::Relaxed);
        assert!(matches!(read(&mut socket), Poll::Ready(Ok(1))));
    }

    #[test]
    fn bytes_arriving_after_a_read_found_nothing_are_read_on_their_event() {
        let (mut ours, mut peer) = UnixStream::pair().unwrap();
        let mut executor = Executor::new(&mut ours).unwrap();
        let mut task = ReadThroughSocket(executor.socket(ours));
        let writer = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            peer.write_all(b"x").unwrap();
            peer
        });
        let started = Instant::now();
        executor.run(&mut task).unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "woke by timeout, not readiness"
        );
        writer.join().unwrap();
    }

    /// Writes `left` bytes through the socket adapter.
    struct WriteThroughSocket {
        socket: Socket,
        left: usize,
    }

    impl Task for WriteThroughSocket {
        fn poll(&mut self, cx: &mut Context<'_>) -> Progress {
            let chunk = [0u8; 64 * 1024];
            while self.left > 0 {
                let size = self.left.min(chunk.len());
                match Pin::new(&mut self.socket).poll_write(cx, &chunk[..size]) {
                    Poll::Ready(Ok(written)) => self.left -= written,
                    Poll::Ready(Err(err)) => panic!("write failed: {err}"),
                    Poll::Pending => {
                        return Progress::Waiting(Some(Instant::now() + Duration::from_secs(30)))
                    }
                }
            }
            Progress::Done
        }
    }

    #[test]
    fn a_write_that_would_block_goes_on_when_the_peer_drains_the_socket() {
        let (mut ours, mut peer) = UnixStream::pair().unwrap();
        let mut executor = Executor::new(&mut ours).unwrap();
        let total = 8 * 1024 * 1024;
        let mut task = WriteThroughSocket {
            socket: executor.socket(ours),
            left: total,
        };
        let reader = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            let mut drained = 0;
            let mut buf = vec![0u8; 64 * 1024];
            while drained < total {
                match peer.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => drained += n,
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(1));
                    }
                    Err(err) => panic!("read failed: {err}"),
                }
            }
            drained
        });
        let started = Instant::now();
        executor.run(&mut task).unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "woke by timeout, not writability"
        );
        assert!(executor.watching_writes);
        assert_eq!(reader.join().unwrap(), total);
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
