//! Hijacked connections (`POST /exec/{id}/start`, `POST /containers/{id}/attach`)
//! and the 8-byte multiplexing header dockerd puts on them.
//!
//! After dockerd answers `101 UPGRADED` (or `200 OK` on engines that ignore
//! the upgrade headers) the socket carries raw bytes both ways: stdin from
//! us, and from dockerd either the raw terminal output (TTY sessions) or
//! frames of `[stream, 0, 0, 0, len_be32...]` followed by `len` payload bytes.
//! This module owns that socket and the frame parser; it knows nothing of
//! the kubelet's streaming protocols.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;

use super::connection::send_no_signal;
use super::DockerError;

/// Length of a frame header.
const FRAME_HEADER_LEN: usize = 8;

/// Largest frame payload accepted. dockerd copies process output in pieces
/// of at most 32 KiB, so a header announcing more than this means the bytes
/// are not multiplexed (a TTY session read as if it were not) or corrupt.
pub const MAX_FRAME_SIZE: u32 = 1024 * 1024;

/// A connection dockerd has handed over to the process's stdio.
///
/// Reading yields what dockerd sent after its response head (including
/// bytes that arrived together with the head); writing sends stdin.
#[derive(Debug)]
pub struct Hijacked {
    stream: UnixStream,
    early: Vec<u8>,
    early_pos: usize,
}

impl Hijacked {
    pub(crate) fn new(stream: UnixStream, early: Vec<u8>) -> Hijacked {
        Hijacked {
            stream,
            early,
            early_pos: 0,
        }
    }

    /// Signals end of stdin to the process while output keeps flowing.
    pub fn close_write(&self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }

    /// The socket and the received bytes not yet read, for callers that read
    /// and write from different threads (`UnixStream::try_clone`).
    pub fn into_parts(self) -> (UnixStream, Vec<u8>) {
        let Hijacked {
            stream,
            mut early,
            early_pos,
        } = self;
        early.drain(..early_pos);
        (stream, early)
    }
}

impl Read for Hijacked {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.early_pos < self.early.len() {
            let early = &self.early[self.early_pos..];
            let n = early.len().min(out.len());
            out[..n].copy_from_slice(&early[..n]);
            self.early_pos += n;
            return Ok(n);
        }
        self.stream.read(out)
    }
}

impl Write for Hijacked {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        send_no_signal(&self.stream, bytes)
    }

    /// A socket has no user-space buffer to flush.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Which of the process's streams a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdStream {
    /// Type 0: input echoed back; dockerd's own client prints it as stdout.
    Stdin,
    /// Type 1.
    Stdout,
    /// Type 2.
    Stderr,
    /// Type 3: an error dockerd itself reports in the stream (for example
    /// that the exec'd process could not be started).
    DaemonError,
}

/// A run of payload bytes of one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece<'a> {
    pub stream: StdStream,
    pub data: &'a [u8],
}

#[derive(Debug, Clone, Copy)]
enum DemuxState {
    Header {
        bytes: [u8; FRAME_HEADER_LEN],
        filled: usize,
    },
    Payload {
        stream: StdStream,
        remaining: u32,
    },
}

/// Splits a multiplexed stream into (stream, payload) pieces. Fed bytes in
/// any split, it buffers at most one partial header and yields payload
/// pieces as they arrive, without waiting for a whole frame.
#[derive(Debug, Clone)]
pub struct Demux {
    state: DemuxState,
}

impl Default for Demux {
    fn default() -> Demux {
        Demux::new()
    }
}

impl Demux {
    pub fn new() -> Demux {
        Demux {
            state: DemuxState::Header {
                bytes: [0; FRAME_HEADER_LEN],
                filled: 0,
            },
        }
    }

    /// Consumes a prefix of `input`; returns its length and, if the prefix
    /// ended in payload, that payload and the stream it belongs to. Call again
    /// with the rest until everything is consumed. Consumes at least one
    /// byte of a non-empty input.
    pub fn feed<'a>(&mut self, input: &'a [u8]) -> Result<(usize, Option<Piece<'a>>), DockerError> {
        let mut pos = 0;
        while pos < input.len() {
            match &mut self.state {
                DemuxState::Header { bytes, filled } => {
                    let take = (FRAME_HEADER_LEN - *filled).min(input.len() - pos);
                    bytes[*filled..*filled + take].copy_from_slice(&input[pos..pos + take]);
                    *filled += take;
                    pos += take;
                    if *filled == FRAME_HEADER_LEN {
                        let header = *bytes;
                        self.state = parse_header(header)?;
                    }
                }
                DemuxState::Payload { stream, remaining } => {
                    // `remaining` is at most MAX_FRAME_SIZE, which fits in usize.
                    let take = (*remaining as usize).min(input.len() - pos);
                    let piece = Piece {
                        stream: *stream,
                        data: &input[pos..pos + take],
                    };
                    // `take <= remaining`, so the difference fits in u32.
                    *remaining -= take as u32;
                    if *remaining == 0 {
                        self.state = DemuxState::Header {
                            bytes: [0; FRAME_HEADER_LEN],
                            filled: 0,
                        };
                    }
                    return Ok((pos + take, Some(piece)));
                }
            }
        }
        Ok((pos, None))
    }

    /// True between frames: the only place a multiplexed stream may end.
    pub fn at_frame_boundary(&self) -> bool {
        matches!(self.state, DemuxState::Header { filled: 0, .. })
    }
}

/// The state after a complete header: payload to read, or back to headers
/// for an empty frame.
fn parse_header(header: [u8; FRAME_HEADER_LEN]) -> Result<DemuxState, DockerError> {
    let stream = match header[0] {
        0 => StdStream::Stdin,
        1 => StdStream::Stdout,
        2 => StdStream::Stderr,
        3 => StdStream::DaemonError,
        other => {
            return Err(DockerError::Protocol(format!(
                "stream type {other} in a multiplexed stream (is it a TTY session?)"
            )))
        }
    };
    if header[1..4] != [0, 0, 0] {
        return Err(DockerError::Protocol(
            "non-zero padding in a multiplexed stream header (is it a TTY session?)".to_owned(),
        ));
    }
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_FRAME_SIZE {
        return Err(DockerError::Protocol(format!(
            "multiplexed frame of {len} bytes exceeds the limit of {MAX_FRAME_SIZE}"
        )));
    }
    Ok(if len == 0 {
        DemuxState::Header {
            bytes: [0; FRAME_HEADER_LEN],
            filled: 0,
        }
    } else {
        DemuxState::Payload {
            stream,
            remaining: len,
        }
    })
}

/// The stream a container's output piece goes to, as Docker's own client
/// shows it: echoed stdin is stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Stdout,
    Stderr,
}

/// Why [`OutputDemux::feed`] stopped: the stream from dockerd, or the sink
/// its output went to.
#[derive(Debug)]
pub enum FeedError<E> {
    Stream(DockerError),
    Sink(E),
}

/// A container's multiplexed output, split for the callers that copy,
/// collect or log it: payload goes to a sink by [`Output`], and an error
/// frame dockerd writes ends the stream as [`DockerError::Stream`] once the
/// frame is whole (at most [`MAX_FRAME_SIZE`] bytes are held for it).
#[derive(Debug, Clone, Default)]
pub struct OutputDemux {
    demux: Demux,
    daemon_error: Vec<u8>,
}

impl OutputDemux {
    /// Consumes `input`, in any split, handing each payload piece to `sink`
    /// with its stream and whether it ends its frame.
    pub fn feed<E>(
        &mut self,
        mut input: &[u8],
        mut sink: impl FnMut(Output, &[u8], bool) -> Result<(), E>,
    ) -> Result<(), FeedError<E>> {
        while !input.is_empty() {
            let (used, piece) = self.demux.feed(input).map_err(FeedError::Stream)?;
            input = &input[used..];
            let ended = self.demux.at_frame_boundary();
            let output = match piece {
                Some(Piece { stream, data }) => match stream {
                    StdStream::Stdout | StdStream::Stdin => Some((Output::Stdout, data)),
                    StdStream::Stderr => Some((Output::Stderr, data)),
                    StdStream::DaemonError => {
                        self.daemon_error.extend_from_slice(data);
                        None
                    }
                },
                None => None,
            };
            if let Some((output, data)) = output {
                sink(output, data, ended).map_err(FeedError::Sink)?;
            }
            if ended && !self.daemon_error.is_empty() {
                return Err(FeedError::Stream(DockerError::Stream(
                    String::from_utf8_lossy(&self.daemon_error).into_owned(),
                )));
            }
        }
        Ok(())
    }

    /// Whether the stream may end here: only between frames.
    pub fn finish(&self) -> Result<(), DockerError> {
        if self.demux.at_frame_boundary() {
            Ok(())
        } else {
            Err(DockerError::Protocol(
                "multiplexed stream ended inside a frame".to_owned(),
            ))
        }
    }
}

/// Copies a multiplexed stream to `stdout` and `stderr` until it ends (see
/// [`OutputDemux`]).
pub fn demux_copy(
    mut source: impl Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<(), DockerError> {
    let mut demux = OutputDemux::default();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match source.read(&mut buf) {
            Ok(0) => return demux.finish(),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(DockerError::Io(err)),
        };
        demux
            .feed(&buf[..n], |output, data, _| match output {
                Output::Stdout => stdout.write_all(data),
                Output::Stderr => stderr.write_all(data),
            })
            .map_err(|err| match err {
                FeedError::Stream(err) => err,
                FeedError::Sink(err) => DockerError::Io(err),
            })?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![stream, 0, 0, 0];
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// Payload per stream, adjacent pieces of one stream merged.
    type Demuxed = Vec<(StdStream, Vec<u8>)>;

    /// Feeds `pieces` in order; also says whether it ended between frames.
    fn demux_pieces(pieces: &[&[u8]]) -> Result<(Demuxed, bool), DockerError> {
        let mut demux = Demux::new();
        let mut out: Vec<(StdStream, Vec<u8>)> = Vec::new();
        for piece in pieces {
            let mut input = *piece;
            while !input.is_empty() {
                let (used, payload) = demux.feed(input)?;
                assert!(used > 0, "no progress");
                input = &input[used..];
                if let Some(Piece { stream, data }) = payload {
                    match out.last_mut() {
                        Some((last, bytes)) if *last == stream => bytes.extend_from_slice(data),
                        _ => out.push((stream, data.to_vec())),
                    }
                }
            }
        }
        Ok((out, demux.at_frame_boundary()))
    }

    #[test]
    fn frames_split_at_every_offset_demux_identically() -> Result<(), DockerError> {
        let mut transcript = frame(1, b"hello\n");
        transcript.extend(frame(2, b"oops\n"));
        transcript.extend(frame(1, b""));
        transcript.extend(frame(1, b"bye\n"));
        let expected = vec![
            (StdStream::Stdout, b"hello\n".to_vec()),
            (StdStream::Stderr, b"oops\n".to_vec()),
            (StdStream::Stdout, b"bye\n".to_vec()),
        ];
        for at in 0..=transcript.len() {
            let (a, b) = transcript.split_at(at);
            assert_eq!(
                demux_pieces(&[a, b])?,
                (expected.clone(), true),
                "split at {at}"
            );
        }
        let bytes: Vec<&[u8]> = transcript.chunks(1).collect();
        assert_eq!(demux_pieces(&bytes)?, (expected, true));
        Ok(())
    }

    #[test]
    fn ending_inside_a_frame_is_not_a_boundary() -> Result<(), DockerError> {
        let transcript = frame(1, b"hello");
        assert!(!demux_pieces(&[&transcript[..3]])?.1);
        assert!(!demux_pieces(&[&transcript[..10]])?.1);
        Ok(())
    }

    #[test]
    fn oversize_frames_and_unknown_types_are_refused() {
        let mut big = vec![1, 0, 0, 0];
        big.extend_from_slice(&(MAX_FRAME_SIZE + 1).to_be_bytes());
        assert!(demux_pieces(&[&big]).is_err());
        assert!(demux_pieces(&[&frame(4, b"x")]).is_err());
        // Raw TTY output read as if multiplexed.
        assert!(demux_pieces(&[b"hello world\n"]).is_err());
    }

    #[test]
    fn demux_copy_routes_streams_and_echoed_stdin_to_stdout() -> Result<(), DockerError> {
        let mut transcript = frame(1, b"out ");
        transcript.extend(frame(0, b"echo "));
        transcript.extend(frame(2, b"err"));
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        demux_copy(transcript.as_slice(), &mut stdout, &mut stderr)?;
        assert_eq!(stdout, b"out echo ");
        assert_eq!(stderr, b"err");
        Ok(())
    }

    #[test]
    fn demux_copy_reports_daemon_errors_and_truncation() {
        let transcript = frame(3, b"exec failed: no such file");
        let err = demux_copy(transcript.as_slice(), &mut Vec::new(), &mut Vec::new());
        assert!(matches!(err, Err(DockerError::Stream(m)) if m == "exec failed: no such file"));
        let truncated = &frame(1, b"hello")[..10];
        let err = demux_copy(truncated, &mut Vec::new(), &mut Vec::new());
        assert!(matches!(err, Err(DockerError::Protocol(_))));
    }

    #[test]
    fn hijacked_reads_early_bytes_first() -> io::Result<()> {
        let (ours, mut theirs) = UnixStream::pair()?;
        theirs.write_all(b" world")?;
        drop(theirs);
        let mut hijacked = Hijacked::new(ours, b"hello".to_vec());
        let mut all = String::new();
        hijacked.read_to_string(&mut all)?;
        assert_eq!(all, "hello world");
        Ok(())
    }
}
