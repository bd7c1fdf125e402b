//! The plumbing both session transports share: the bounded in-memory
//! [`pipe`] that carries a client stream's bytes from the session's reader
//! thread to whoever consumes them, the [`IdleReader`] that ends a session
//! which carried no data for too long, and the [`Hangup`] signal that
//! tells the consumers the client has gone.
//!
//! It owns blocking, wake-ups and the idle clock. It must not know the
//! protocols spoken after an upgrade (SPDY, WebSocket), stream numbering,
//! dockerd or the CRI.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Cursor, Read};
use std::net::TcpStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Creates a pipe that holds about `capacity` bytes: a write waits while
/// that many are queued, so a consumer that falls behind stops the session's
/// reader and, through TCP, the client. One write of any size is accepted
/// into an empty pipe; callers bound their writes by their frame limits.
pub fn pipe(capacity: usize) -> (PipeWriter, PipeReader) {
    let shared = Arc::new(PipeShared {
        state: Mutex::new(PipeState {
            bytes: VecDeque::new(),
            writer_open: true,
            reader_open: true,
        }),
        changed: Condvar::new(),
        capacity,
    });
    (
        PipeWriter {
            shared: Arc::clone(&shared),
        },
        PipeReader { shared },
    )
}

#[derive(Debug)]
struct PipeShared {
    state: Mutex<PipeState>,
    changed: Condvar,
    capacity: usize,
}

#[derive(Debug)]
struct PipeState {
    bytes: VecDeque<u8>,
    writer_open: bool,
    reader_open: bool,
}

impl PipeShared {
    /// A panic while the lock was held cannot leave the byte queue in a
    /// state worse than "some bytes missing", so a poisoned lock is used.
    fn lock(&self) -> MutexGuard<'_, PipeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, PipeState>) -> MutexGuard<'a, PipeState> {
        self.changed
            .wait(guard)
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The sending end of a [`pipe`]; dropping it is end-of-stream.
#[derive(Debug)]
pub struct PipeWriter {
    shared: Arc<PipeShared>,
}

impl PipeWriter {
    /// Queues `data`, waiting while the pipe is full. Returns false, with
    /// the data dropped, once the reading end is gone.
    pub fn send(&self, data: &[u8]) -> bool {
        let mut state = self.shared.lock();
        while state.reader_open && state.bytes.len() >= self.shared.capacity {
            state = self.shared.wait(state);
        }
        if !state.reader_open {
            return false;
        }
        state.bytes.extend(data);
        self.shared.changed.notify_all();
        true
    }
}

impl PipeWriter {
    /// A handle that can end the pipe from a third thread.
    pub fn closer(&self) -> PipeCloser {
        PipeCloser {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl PipeReader {
    /// A handle that can end the pipe from a third thread, for instance to
    /// release a thread blocked reading it.
    pub fn closer(&self) -> PipeCloser {
        PipeCloser {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// Ends a [`pipe`] from outside, whoever holds its ends: the reader sees
/// end-of-stream at once (queued bytes are dropped) and a writer, also one
/// waiting for room, has its data dropped. A session uses it so that no
/// thread can stay blocked on a pipe after the session ended.
#[derive(Debug, Clone)]
pub struct PipeCloser {
    shared: Arc<PipeShared>,
}

impl PipeCloser {
    pub fn close(&self) {
        let mut state = self.shared.lock();
        state.writer_open = false;
        state.reader_open = false;
        state.bytes = VecDeque::new();
        drop(state);
        self.shared.changed.notify_all();
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        self.shared.lock().writer_open = false;
        self.shared.changed.notify_all();
    }
}

/// The receiving end of a [`pipe`]: reads block until bytes arrive and
/// return 0 once the writer is gone and everything was read. Dropping it
/// makes later writes drop their data instead of waiting.
#[derive(Debug)]
pub struct PipeReader {
    shared: Arc<PipeShared>,
}

impl Read for PipeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let mut state = self.shared.lock();
        while state.bytes.is_empty() && state.writer_open {
            state = self.shared.wait(state);
        }
        let n = out.len().min(state.bytes.len());
        for (slot, byte) in out.iter_mut().zip(state.bytes.drain(..n)) {
            *slot = byte;
        }
        self.shared.changed.notify_all();
        Ok(n)
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.reader_open = false;
        state.bytes = VecDeque::new();
        drop(state);
        self.shared.changed.notify_all();
    }
}

/// When data last moved on a connection, in either direction.
#[derive(Debug, Clone)]
pub struct Activity {
    last: Arc<Mutex<Instant>>,
}

impl Default for Activity {
    fn default() -> Activity {
        Activity::new()
    }
}

impl Activity {
    /// A clock that starts now.
    pub fn new() -> Activity {
        Activity {
            last: Arc::new(Mutex::new(Instant::now())),
        }
    }

    /// Records that data moved.
    pub fn touch(&self) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    /// How long ago data last moved.
    pub fn idle_for(&self) -> Duration {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
    }
}

/// Reads a client connection: first the bytes the HTTP server read past the
/// request head, then the socket. With an idle timeout, a read fails with
/// [`io::ErrorKind::TimedOut`] once no data has moved either way (see
/// [`Activity`]) for that long; no other path returns that kind, so it
/// always means "idle". Bytes read count as activity.
#[derive(Debug)]
pub struct IdleReader {
    leftover: Cursor<Vec<u8>>,
    stream: TcpStream,
    idle_timeout: Option<Duration>,
    activity: Activity,
}

impl IdleReader {
    pub fn new(
        leftover: Vec<u8>,
        stream: TcpStream,
        idle_timeout: Option<Duration>,
        activity: Activity,
    ) -> IdleReader {
        IdleReader {
            leftover: Cursor::new(leftover),
            stream,
            idle_timeout,
            activity,
        }
    }

    /// True for the error a read returns when the connection was idle.
    pub fn is_idle_error(err: &io::Error) -> bool {
        err.kind() == io::ErrorKind::TimedOut
    }
}

impl Read for IdleReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.leftover.read(out)?;
        if n > 0 {
            return Ok(n);
        }
        loop {
            if let Some(limit) = self.idle_timeout {
                let idle = self.activity.idle_for();
                let Some(left) = limit.checked_sub(idle).filter(|left| !left.is_zero()) else {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no data moved for {limit:?}"),
                    ));
                };
                self.stream.set_read_timeout(Some(left))?;
            }
            match self.stream.read(out) {
                Ok(n) => {
                    if n > 0 {
                        self.activity.touch();
                    }
                    return Ok(n);
                }
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(err) => return Err(err),
            }
        }
    }
}

type HangupAction = Box<dyn FnOnce() + Send>;

/// Names one action registered with [`Hangup::on_hang_up`], to cancel it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HangupActionId(u64);

/// Tells everyone working for a session that the client is gone (it closed
/// or broke the connection, or the session was idle too long), by running
/// the actions they registered (typically shutting down a socket they are
/// blocked on). Clones share the signal. Work that ends before the session
/// cancels its action, so a long session holds only the actions of work
/// still going on.
#[derive(Clone, Default)]
pub struct Hangup {
    state: Arc<Mutex<HangupState>>,
}

#[derive(Default)]
struct HangupState {
    hung_up: bool,
    next_id: u64,
    actions: Vec<(HangupActionId, HangupAction)>,
}

impl fmt::Debug for Hangup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hangup")
            .field("hung_up", &self.is_hung_up())
            .finish_non_exhaustive()
    }
}

impl Hangup {
    pub fn new() -> Hangup {
        Hangup::default()
    }

    /// Runs `action` when the client goes, or now if it already has.
    pub fn on_hang_up(&self, action: impl FnOnce() + Send + 'static) -> HangupActionId {
        let mut state = self.lock();
        let id = HangupActionId(state.next_id);
        // 2^64 registrations cannot happen in the life of a process.
        state.next_id = state.next_id.wrapping_add(1);
        if state.hung_up {
            drop(state);
            action();
        } else {
            state.actions.push((id, Box::new(action)));
        }
        id
    }

    /// Drops an action that is no longer needed without running it; one
    /// that already ran, or was cancelled, is ignored.
    pub fn cancel(&self, id: HangupActionId) {
        let cancelled = {
            let mut state = self.lock();
            let position = state.actions.iter().position(|(each, _)| *each == id);
            position.map(|at| state.actions.swap_remove(at))
        };
        // Dropped outside the lock: an action may own what it would close.
        drop(cancelled);
    }

    /// Marks the client gone and runs the registered actions, once.
    pub fn hang_up(&self) {
        let actions = {
            let mut state = self.lock();
            state.hung_up = true;
            std::mem::take(&mut state.actions)
        };
        for (_, action) in actions {
            action();
        }
    }

    pub fn is_hung_up(&self) -> bool {
        self.lock().hung_up
    }

    /// Actions registered and neither run nor cancelled.
    #[cfg(test)]
    pub fn pending_actions(&self) -> usize {
        self.lock().actions.len()
    }

    /// The actions run outside the lock, so a panic inside the lock is
    /// impossible and poisoning cannot leave it inconsistent.
    fn lock(&self) -> MutexGuard<'_, HangupState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::thread;

    #[test]
    fn pipe_delivers_bytes_in_order_then_end_of_stream() {
        let (writer, mut reader) = pipe(1024);
        assert!(writer.send(b"hello "));
        assert!(writer.send(b"world"));
        drop(writer);
        let mut all = String::new();
        reader.read_to_string(&mut all).unwrap();
        assert_eq!(all, "hello world");
        assert_eq!(reader.read(&mut [0; 8]).unwrap(), 0);
    }

    #[test]
    fn a_full_pipe_holds_the_writer_until_the_reader_catches_up() {
        let (writer, mut reader) = pipe(4);
        assert!(writer.send(b"1234"));
        let (sent_tx, sent_rx) = mpsc::channel();
        let sender = thread::spawn(move || {
            let delivered = writer.send(b"5678");
            sent_tx.send(delivered).unwrap();
        });
        assert!(
            sent_rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "a write into a full pipe must wait"
        );
        let mut first = [0u8; 4];
        reader.read_exact(&mut first).unwrap();
        assert!(sent_rx.recv_timeout(Duration::from_secs(5)).unwrap());
        sender.join().unwrap();
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert_eq!((&first[..], &rest[..]), (&b"1234"[..], &b"5678"[..]));
    }

    #[test]
    fn dropping_the_reader_releases_a_waiting_writer_and_later_writes_are_dropped() {
        let (writer, reader) = pipe(2);
        assert!(writer.send(b"ab"));
        let sender = thread::spawn(move || (writer.send(b"cd"), writer));
        thread::sleep(Duration::from_millis(50));
        drop(reader);
        let (delivered, writer) = sender.join().unwrap();
        assert!(!delivered);
        assert!(!writer.send(b"ef"));
    }

    #[test]
    fn closing_a_pipe_ends_a_waiting_reader() {
        let (writer, mut reader) = pipe(16);
        let closer = writer.closer();
        let waiting = thread::spawn(move || reader.read(&mut [0u8; 4]));
        thread::sleep(Duration::from_millis(50));
        closer.close();
        assert_eq!(waiting.join().unwrap().unwrap(), 0);
        assert!(!writer.send(b"late"));
    }

    #[test]
    fn closing_a_pipe_releases_a_waiting_writer() {
        let (writer, reader) = pipe(2);
        let closer = writer.closer();
        assert!(writer.send(b"ab"));
        let waiting = thread::spawn(move || writer.send(b"cd"));
        thread::sleep(Duration::from_millis(50));
        closer.close();
        assert!(!waiting.join().unwrap());
        drop(reader);
    }

    #[test]
    fn hang_up_runs_every_action_once_and_late_ones_at_once() {
        let hangup = Hangup::new();
        let runs = Arc::new(AtomicUsize::new(0));
        for _ in 0..2 {
            let runs = Arc::clone(&runs);
            hangup.on_hang_up(move || {
                runs.fetch_add(1, Ordering::SeqCst);
            });
        }
        assert_eq!(runs.load(Ordering::SeqCst), 0);
        assert!(!hangup.is_hung_up());
        hangup.clone().hang_up();
        hangup.hang_up();
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        let late = Arc::clone(&runs);
        hangup.on_hang_up(move || {
            late.fetch_add(10, Ordering::SeqCst);
        });
        assert_eq!(runs.load(Ordering::SeqCst), 12);
        assert!(hangup.is_hung_up());
    }

    #[test]
    fn a_cancelled_action_never_runs_and_is_released_at_once() {
        let hangup = Hangup::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let kept = {
            let runs = Arc::clone(&runs);
            hangup.on_hang_up(move || {
                runs.fetch_add(1, Ordering::SeqCst);
            })
        };
        let cancelled = {
            let runs = Arc::clone(&runs);
            hangup.on_hang_up(move || {
                runs.fetch_add(10, Ordering::SeqCst);
            })
        };
        assert_ne!(kept, cancelled);
        hangup.cancel(cancelled);
        hangup.cancel(cancelled);
        assert_eq!(hangup.pending_actions(), 1);
        // The cancelled closure, and what it owned, is gone already.
        assert_eq!(Arc::strong_count(&runs), 2);
        hangup.hang_up();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(hangup.pending_actions(), 0);
        hangup.cancel(kept);
    }

    fn tcp_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    #[test]
    fn idle_reader_reads_leftover_first_then_the_socket() {
        let (mut client, server) = tcp_pair();
        client.write_all(b" world").unwrap();
        drop(client);
        let mut reader = IdleReader::new(b"hello".to_vec(), server, None, Activity::new());
        let mut all = String::new();
        reader.read_to_string(&mut all).unwrap();
        assert_eq!(all, "hello world");
    }

    #[test]
    fn idle_reader_times_out_only_after_no_data_moved_either_way() {
        let (mut client, server) = tcp_pair();
        let activity = Activity::new();
        let limit = Duration::from_millis(300);
        let mut reader = IdleReader::new(Vec::new(), server, Some(limit), activity.clone());
        // Outbound activity keeps the session alive although nothing arrives.
        let toucher = {
            let activity = activity.clone();
            thread::spawn(move || {
                for _ in 0..6 {
                    thread::sleep(Duration::from_millis(100));
                    activity.touch();
                }
            })
        };
        let started = Instant::now();
        client.write_all(b"x").unwrap();
        let mut byte = [0u8; 1];
        assert_eq!(reader.read(&mut byte).unwrap(), 1);
        let err = reader.read(&mut byte).unwrap_err();
        assert!(IdleReader::is_idle_error(&err), "{err}");
        toucher.join().unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(600) + limit,
            "timed out after {:?} despite activity",
            started.elapsed()
        );
    }
}
