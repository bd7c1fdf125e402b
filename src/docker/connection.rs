//! One connection to dockerd's unix socket, with its reused buffers.
//!
//! It owns connecting within a deadline, writing a request, and moving bytes
//! from the socket through a [`ResponseParser`] with every read bounded by a
//! deadline or an idle timeout. It does not decide whether a connection is
//! pooled or a request retried; that is the client's job.

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};

use super::request::{write_head, RequestHead};
use super::response::{Progress, ResponseParser, MAX_HEAD_BYTES};
use super::DockerError;

/// Initial size of a connection's read buffer; dockerd's answers to most
/// calls fit in one read.
const READ_BUFFER_INITIAL: usize = 16 * 1024;

/// The read buffer grows only while an incomplete line fills it, and the
/// parser refuses lines longer than the head limit, so twice that limit is
/// always enough.
const READ_BUFFER_MAX: usize = 2 * MAX_HEAD_BYTES;

/// A point in time a whole call must finish by, and the budget it came
/// from (for the error message).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    /// `None` when the budget reaches past what `Instant` can represent,
    /// which is the same as no deadline.
    at: Option<Instant>,
    budget: Duration,
}

impl Deadline {
    pub(crate) fn after(budget: Duration) -> Deadline {
        Deadline {
            at: Instant::now().checked_add(budget),
            budget,
        }
    }

    /// The time left, or a timeout naming `what` was being waited for.
    /// Never zero: a zero socket timeout would mean "block forever".
    pub(crate) fn remaining(&self, what: &'static str) -> Result<Duration, DockerError> {
        let Some(at) = self.at else {
            return Ok(self.budget);
        };
        let left = at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(DockerError::Timeout {
                what,
                after: self.budget,
            });
        }
        Ok(left)
    }
}

/// How long a read may wait.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait<'a> {
    /// Until the call's deadline.
    Until(&'a Deadline),
    /// At most this long for each read (a stream's idle timeout).
    Idle(Duration),
    /// As long as it takes (an event stream nobody set a timeout on).
    Forever,
}

/// What [`Connection::pump`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pumped {
    /// The status line and headers are in the parser.
    Head,
    /// Body bytes were appended to the caller's buffer.
    Body,
    /// The response is complete (possibly ended by the peer closing).
    Done,
}

/// A connected socket plus its read buffer (bytes `start..end` are received
/// but not yet consumed by a parser) and its request-head buffer.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: UnixStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    head: Vec<u8>,
    received_any: bool,
}

impl Connection {
    /// Connects to the socket at `path` before `deadline`.
    pub(crate) fn open(path: &Path, deadline: &Deadline) -> Result<Connection, DockerError> {
        let connect_error = |errno: Errno| DockerError::Connect {
            path: path.to_owned(),
            source: io::Error::from(errno),
        };
        let fd = socket::socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(connect_error)?;
        let stream = UnixStream::from(fd);
        // connect(2) on a unix socket whose listener's backlog is full waits
        // for room, bounded on Linux by the send timeout (SO_SNDTIMEO).
        stream
            .set_write_timeout(Some(deadline.remaining("connecting")?))
            .map_err(DockerError::Io)?;
        let addr = UnixAddr::new(path).map_err(connect_error)?;
        loop {
            match socket::connect(stream.as_raw_fd(), &addr) {
                Ok(()) => break,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => {
                    return Err(DockerError::Timeout {
                        what: "connecting",
                        after: deadline.budget,
                    })
                }
                Err(errno) => return Err(connect_error(errno)),
            }
        }
        Ok(Connection {
            stream,
            buf: vec![0; READ_BUFFER_INITIAL],
            start: 0,
            end: 0,
            head: Vec::with_capacity(512),
            received_any: false,
        })
    }

    /// True if the idle connection has neither been closed by dockerd nor
    /// received bytes nobody asked for; checked before reusing it.
    pub(crate) fn looks_alive(&self) -> bool {
        let mut probe = [0u8; 1];
        let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
        self.start == self.end
            && socket::recv(self.stream.as_raw_fd(), &mut probe, flags) == Err(Errno::EAGAIN)
    }

    /// True if any byte arrived since the last request was sent: a failure
    /// before that means dockerd never started answering it.
    pub(crate) fn received_any(&self) -> bool {
        self.received_any
    }

    /// True if no received byte is left unconsumed.
    pub(crate) fn is_drained(&self) -> bool {
        self.start == self.end
    }

    /// Writes the request head and body before `deadline`.
    pub(crate) fn send(
        &mut self,
        head: &RequestHead<'_>,
        body: Option<&[u8]>,
        deadline: &Deadline,
    ) -> Result<(), DockerError> {
        self.received_any = false;
        write_head(&mut self.head, head)?;
        write_all(&self.stream, &self.head, deadline)?;
        if let Some(body) = body {
            write_all(&self.stream, body, deadline)?;
        }
        Ok(())
    }

    /// Feeds received bytes to `parser`, reading more as needed, until it
    /// reports the head, some body bytes (appended to `body`) or the end.
    pub(crate) fn pump(
        &mut self,
        parser: &mut ResponseParser,
        wait: Wait<'_>,
        body: &mut Vec<u8>,
    ) -> Result<Pumped, DockerError> {
        loop {
            let input = &self.buf[self.start..self.end];
            match parser.feed(input)? {
                Progress::NeedMore { consumed } => {
                    self.start += consumed;
                    if self.fill(wait)? == 0 {
                        parser.eof(self.end - self.start)?;
                        return Ok(Pumped::Done);
                    }
                }
                Progress::Head { consumed } => {
                    self.start += consumed;
                    return Ok(Pumped::Head);
                }
                Progress::Data { start, end } => {
                    body.extend_from_slice(&input[start..end]);
                    self.start += end;
                    return Ok(Pumped::Body);
                }
                Progress::Done { consumed } => {
                    self.start += consumed;
                    return Ok(Pumped::Done);
                }
            }
        }
    }

    /// Reads the rest of the response into `body`.
    pub(crate) fn read_to_end(
        &mut self,
        parser: &mut ResponseParser,
        wait: Wait<'_>,
        body: &mut Vec<u8>,
    ) -> Result<(), DockerError> {
        while self.pump(parser, wait, body)? != Pumped::Done {}
        Ok(())
    }

    /// The socket and the bytes received past what the parser consumed: the
    /// start of a hijacked stream.
    pub(crate) fn into_parts(self) -> (UnixStream, Vec<u8>) {
        let leftover = self.buf[self.start..self.end].to_vec();
        (self.stream, leftover)
    }

    /// Reads once into the free end of the buffer; `Ok(0)` is end of stream.
    fn fill(&mut self, wait: Wait<'_>) -> Result<usize, DockerError> {
        const WHAT: &str = "waiting for dockerd's answer";
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.buf.len() < READ_BUFFER_MAX {
                let grown = (self.buf.len() * 2).min(READ_BUFFER_MAX);
                self.buf.resize(grown, 0);
            } else {
                return Err(DockerError::Protocol(format!(
                    "a line longer than the {READ_BUFFER_MAX}-byte read buffer"
                )));
            }
        }
        let (timeout, after) = match wait {
            Wait::Until(deadline) => (Some(deadline.remaining(WHAT)?), deadline.budget),
            Wait::Idle(idle) => (Some(idle), idle),
            Wait::Forever => (None, Duration::ZERO),
        };
        self.stream
            .set_read_timeout(timeout)
            .map_err(DockerError::Io)?;
        loop {
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    self.received_any |= n > 0;
                    return Ok(n);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) if is_timeout(&err) => {
                    return Err(DockerError::Timeout { what: WHAT, after })
                }
                Err(err) => return Err(DockerError::Io(err)),
            }
        }
    }
}

fn write_all(stream: &UnixStream, bytes: &[u8], deadline: &Deadline) -> Result<(), DockerError> {
    const WHAT: &str = "sending the request";
    stream
        .set_write_timeout(Some(deadline.remaining(WHAT)?))
        .map_err(DockerError::Io)?;
    let mut written = 0;
    while written < bytes.len() {
        match send_no_signal(stream, &bytes[written..]) {
            Ok(0) => return Err(DockerError::Io(io::ErrorKind::WriteZero.into())),
            Ok(n) => written += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) if is_timeout(&err) => {
                return Err(DockerError::Timeout {
                    what: WHAT,
                    after: deadline.budget,
                })
            }
            Err(err) => return Err(DockerError::Io(err)),
        }
    }
    Ok(())
}

/// `send(2)` with `MSG_NOSIGNAL`: writing to a socket dockerd closed must
/// fail with `EPIPE`, not raise `SIGPIPE`, whatever the process does with
/// that signal (std's `UnixStream::write` is a plain `write(2)`).
pub(crate) fn send_no_signal(stream: &UnixStream, bytes: &[u8]) -> io::Result<usize> {
    socket::send(stream.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL).map_err(io::Error::from)
}

/// Socket timeouts surface as `EAGAIN` (`WouldBlock`) on Linux.
fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
