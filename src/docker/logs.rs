//! `GET /containers/{id}/logs?follow=1&timestamps=1`: a container's output
//! as a body stream read from a non-blocking socket.
//!
//! It owns opening the call (blocking, within the client's budget, so the
//! caller learns at once of a missing container or a driver that cannot be
//! read) and then undoing the HTTP framing of the body as bytes arrive,
//! without ever blocking. It does not demultiplex stdout from stderr or
//! parse the timestamps: the body is handed over as it is, for `logs` to
//! turn into CRI log lines.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::client::error_message;
use super::connection::{Connection, Deadline, Pumped, Wait};
use super::request::{path_with_query, RequestHead};
use super::response::{Progress, ResponseParser};
use super::{DockerClient, DockerError};

/// Largest error body read when dockerd refuses the call.
const MAX_LOGS_ERROR_BODY: u64 = 64 * 1024;

/// Budget for connecting, sending the request and reading the response
/// head. dockerd answers the logs call at once (before any output exists),
/// so this only bounds a stuck daemon; it is shorter than a CRI call's own
/// budget so the caller still has time to report the failure.
const LOGS_HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Size of the socket read buffer. dockerd writes one log message (at most
/// 16 KiB of output plus its timestamp and frame header) per chunk.
const LOGS_READ_BUFFER: usize = 64 * 1024;

/// A following log stream never ends on its own while the container runs,
/// so its body has no size limit; chunk sizes are still checked against
/// this one (dockerd's chunks hold one message).
const MAX_LOGS_BODY: u64 = u64::MAX;

/// Where a follow starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogsSince {
    /// Everything the log driver still holds.
    Beginning,
    /// Messages at or after this many nanoseconds since the Unix epoch
    /// (dockerd's `since` is inclusive).
    UnixNanos(i128),
}

/// What one [`LogStream::read_some`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogRead {
    /// Some bytes were read (body bytes, if any, were appended); read again.
    Progress,
    /// Nothing to read now; wait for the socket to become readable.
    WouldBlock,
    /// The body ended: the container stopped (or dockerd went away cleanly).
    Ended,
}

/// The body of a following logs call, on a non-blocking socket of its own.
/// Dropping it closes the connection, which is how dockerd learns to stop.
#[derive(Debug)]
pub struct LogStream {
    stream: UnixStream,
    parser: ResponseParser,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    ended: bool,
}

impl DockerClient {
    /// Starts following container `id`'s stdout and stderr with timestamps.
    /// The response head is read within the client's timeout; the returned
    /// stream's socket is non-blocking. `tty` is not sent: it only says how
    /// the caller must read the body (raw for a TTY container, otherwise
    /// 8-byte multiplexing frames).
    pub fn follow_logs(&self, id: &str, since: LogsSince) -> Result<LogStream, DockerError> {
        let name_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
        if id.is_empty() || !id.bytes().all(name_byte) {
            return Err(DockerError::InvalidRequest(format!(
                "{id:?} is not a container ID or name"
            )));
        }
        let since_text = match since {
            LogsSince::Beginning => None,
            LogsSince::UnixNanos(nanos) => Some(unix_nanos_text(nanos)),
        };
        let mut params = vec![
            ("follow", "1"),
            ("stdout", "1"),
            ("stderr", "1"),
            ("timestamps", "1"),
        ];
        if let Some(since) = &since_text {
            params.push(("since", since));
        }
        let path = path_with_query(&format!("/containers/{id}/logs"), &params);
        self.open_logs(&path)
            .map_err(|err| err.in_call("GET", &path))
    }

    fn open_logs(&self, path: &str) -> Result<LogStream, DockerError> {
        let target = match self.api_version() {
            Some(version) => format!("/v{version}{path}"),
            None => path.to_owned(),
        };
        let deadline = Deadline::after(LOGS_HEAD_TIMEOUT);
        let mut conn = Connection::open(self.socket_path(), &deadline)?;
        let head = RequestHead {
            method: "GET",
            target: &target,
            headers: &[],
            body_len: None,
            upgrade: false,
        };
        conn.send(&head, None, &deadline)?;
        let mut parser = ResponseParser::new(false, MAX_LOGS_BODY);
        let mut body = Vec::new();
        if conn.pump(&mut parser, Wait::Until(&deadline), &mut body)? != Pumped::Head {
            return Err(DockerError::Protocol("response without a head".to_owned()));
        }
        let status = parser.status();
        if status >= 400 {
            parser.limit_body(MAX_LOGS_ERROR_BODY)?;
            conn.read_to_end(&mut parser, Wait::Until(&deadline), &mut body)?;
            return Err(logs_api_error(status, &body));
        }
        if status != 200 {
            return Err(DockerError::Protocol(format!(
                "status {status} to a logs request"
            )));
        }
        let (stream, early) = conn.into_parts();
        stream.set_read_timeout(None).map_err(DockerError::Io)?;
        stream.set_nonblocking(true).map_err(DockerError::Io)?;
        let mut buf = vec![0; LOGS_READ_BUFFER.max(early.len())];
        buf[..early.len()].copy_from_slice(&early);
        Ok(LogStream {
            stream,
            parser,
            buf,
            start: 0,
            end: early.len(),
            ended: false,
        })
    }
}

impl LogStream {
    /// Decodes what is buffered and, if that yields nothing, reads the
    /// socket once; body bytes are appended to `body`. Never blocks.
    pub fn read_some(&mut self, body: &mut Vec<u8>) -> Result<LogRead, DockerError> {
        if self.ended {
            return Ok(LogRead::Ended);
        }
        let before = body.len();
        self.decode(body)?;
        if self.ended {
            return Ok(LogRead::Ended);
        }
        if body.len() > before {
            return Ok(LogRead::Progress);
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            // The parser left an incomplete chunk-size line; move it to the
            // front (it is bounded by the parser's chunk-line limit).
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            // The parser consumes every data byte it is offered, so only an
            // incomplete chunk-size line (at most 4 KiB) is ever left over.
            return Err(DockerError::Protocol(format!(
                "{LOGS_READ_BUFFER} bytes of logs body framing without progress"
            )));
        }
        loop {
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.parser.eof(self.end - self.start)?;
                    self.ended = true;
                    return Ok(LogRead::Ended);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(LogRead::Progress);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(LogRead::WouldBlock)
                }
                Err(err) => return Err(DockerError::Io(err)),
            }
        }
    }

    /// Runs the parser over the buffered bytes.
    fn decode(&mut self, body: &mut Vec<u8>) -> Result<(), DockerError> {
        loop {
            let input = &self.buf[self.start..self.end];
            match self.parser.feed(input)? {
                Progress::NeedMore { consumed } => {
                    self.start += consumed;
                    return Ok(());
                }
                Progress::Data { start, end } => {
                    body.extend_from_slice(&input[start..end]);
                    self.start += end;
                }
                Progress::Done { consumed } => {
                    self.start += consumed;
                    self.ended = true;
                    return Ok(());
                }
                // The head was read before the stream was handed out.
                Progress::Head { consumed } => self.start += consumed,
            }
        }
    }
}

impl AsFd for LogStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

impl AsRawFd for LogStream {
    fn as_raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }
}

/// `seconds.nanoseconds` since the epoch, the form `since` takes; times
/// before the epoch are clamped to it.
fn unix_nanos_text(nanos: i128) -> String {
    let nanos = nanos.max(0);
    // Written as u64 seconds and u32 nanoseconds, so no 128-bit formatting
    // is linked: times come from four-digit years, whose seconds fit a u64
    // many times over.
    let seconds = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    let fraction = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
    format!("{seconds}.{fraction:09}")
}

fn logs_api_error(status: u16, body: &[u8]) -> DockerError {
    let message =
        error_message(body).unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    DockerError::Api { status, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_seconds_dot_nine_digit_nanoseconds() {
        assert_eq!(
            unix_nanos_text(1_700_000_000_000_000_007),
            "1700000000.000000007"
        );
        assert_eq!(unix_nanos_text(-5), "0.000000000");
    }
}
