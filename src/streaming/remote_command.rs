//! The client side of an exec or attach (the Kubernetes "remotecommand"
//! protocol), whichever transport carries it: [`RemoteCommand::open`] takes
//! the upgrade (SPDY or WebSocket), waits for the streams the request
//! needs, and presents them as stdin to read, stdout and stderr to write,
//! terminal sizes to iterate, and a status to finish with.
//!
//! It owns the remotecommand rules of the kubelet's streaming server
//! (`pkg/kubelet/cri/streaming/remotecommand/{httpstream,websocket}.go`):
//! the SPDY subprotocols and the streams each version has (an error
//! stream always; stdin, stdout and stderr as requested; resize with a TTY
//! from v3 on), the stream-creation timeout, the empty "ready" message
//! WebSocket clients wait for, the resize messages (JSON objects, one after
//! another on one stream), and the error-stream status format of each
//! version. It must not talk to dockerd or decide what the streams are
//! connected to: that is the backend's (`super::session::Sessions`).

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::channel::{
    parse_resize, ChannelCodec, StatusFormat, StreamId, StreamStatus, TerminalSize,
    MAX_RESIZE_MESSAGE_BYTES, REMOTE_COMMAND_PROTOCOLS,
};
use super::session::Handoff;
use super::session_io::{Hangup, PipeReader};
use super::spdy::StreamId as SpdyStreamId;
use super::spdy_session::{NewStream, SpdyOutbound, SpdySession, STREAM_TYPE_HEADER};
use super::websocket;
use super::ws_session::{WsOutbound, WsSession};
use super::{ChannelError, RemoteCommandError};

pub const SPDY_V4: &str = "v4.channel.k8s.io";
pub const SPDY_V3: &str = "v3.channel.k8s.io";
pub const SPDY_V2: &str = "v2.channel.k8s.io";
pub const SPDY_V1: &str = "channel.k8s.io";

/// The SPDY subprotocols exec and attach accept, as the kubelet's server
/// lists them (newest first; the client's order decides).
pub const SPDY_PROTOCOLS: &[&str] = &[SPDY_V4, SPDY_V3, SPDY_V2, SPDY_V1];

/// Bytes read from the resize stream at a time.
const RESIZE_READ_BYTES: usize = 1024;

/// Which streams the request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// A client stream the session writes to: stdout or stderr.
#[derive(Debug)]
pub struct OutputStream {
    target: Output,
}

#[derive(Debug)]
enum Output {
    Spdy(Arc<SpdyOutbound>, SpdyStreamId),
    WebSocket(Arc<WsOutbound>, u8),
}

impl Write for OutputStream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        let sent = match &self.target {
            Output::Spdy(outbound, stream) => outbound
                .send(*stream, data)
                .map_err(|err| io::Error::new(io::ErrorKind::BrokenPipe, err)),
            Output::WebSocket(outbound, channel) => outbound
                .send(*channel, data)
                .map_err(|err| io::Error::new(io::ErrorKind::BrokenPipe, err)),
        };
        sent.map(|()| data.len())
    }

    /// Every write is sent whole before it returns.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The terminal sizes a client sends, in order: JSON objects, back to back
/// on the resize stream, possibly split anywhere. Ends with the stream, or
/// at the first malformed object, after which the kubelet ignores the
/// stream too.
#[derive(Debug)]
pub struct ResizeEvents {
    source: PipeReader,
    buffer: Vec<u8>,
    ended: bool,
}

impl ResizeEvents {
    /// The sizes sent on `source`, the bytes of a resize stream.
    pub fn from_pipe(source: PipeReader) -> ResizeEvents {
        ResizeEvents {
            source,
            buffer: Vec::new(),
            ended: false,
        }
    }

    /// The first complete JSON value in the buffer and its length; `None`
    /// when the buffer holds only part of one.
    fn next_value(&self) -> Result<Option<usize>, ChannelError> {
        // Read as `Value`, which the resize parser reads anyway, so no
        // second JSON skipper is compiled.
        let mut values = serde_json::Deserializer::from_slice(&self.buffer).into_iter::<Value>();
        match values.next() {
            Some(Ok(_)) => Ok(Some(values.byte_offset())),
            Some(Err(err)) if err.is_eof() => Ok(None),
            Some(Err(err)) => Err(ChannelError::ResizeJson(err)),
            None => Ok(None),
        }
    }
}

impl Iterator for ResizeEvents {
    type Item = TerminalSize;

    fn next(&mut self) -> Option<TerminalSize> {
        let mut chunk = [0u8; RESIZE_READ_BYTES];
        while !self.ended {
            match self.next_value() {
                Ok(Some(end)) => {
                    let parsed = parse_resize(&self.buffer[..end]);
                    self.buffer.drain(..end);
                    match parsed {
                        Ok(size) => return Some(size),
                        Err(err) => {
                            log::debug!("ignoring the resize stream from now on: {err}");
                            self.ended = true;
                        }
                    }
                }
                Ok(None) if self.buffer.len() > MAX_RESIZE_MESSAGE_BYTES => {
                    log::debug!(
                        "ignoring the resize stream from now on: a message exceeds \
                         {MAX_RESIZE_MESSAGE_BYTES} bytes"
                    );
                    self.ended = true;
                }
                Ok(None) => match self.source.read(&mut chunk) {
                    Ok(0) | Err(_) => self.ended = true,
                    Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                },
                Err(err) => {
                    log::debug!("ignoring the resize stream from now on: {err}");
                    self.ended = true;
                }
            }
        }
        None
    }
}

/// An exec or attach client, set up and ready: take the streams out of the
/// public fields, then [`RemoteCommand::close`] it.
#[derive(Debug)]
pub struct RemoteCommand {
    /// What the client types; end-of-stream when it closes stdin or goes.
    pub stdin: Option<PipeReader>,
    pub stdout: Option<OutputStream>,
    pub stderr: Option<OutputStream>,
    /// Present when the request has a TTY and the protocol can resize.
    pub resize: Option<ResizeEvents>,
    transport: Transport,
}

#[derive(Debug)]
enum Transport {
    Spdy {
        session: SpdySession,
        error: Option<SpdyStreamId>,
        format: StatusFormat,
    },
    WebSocket(WsSession),
}

/// The streams of a SPDY session, by type.
#[derive(Debug, Default)]
struct SpdyStreams {
    error: Option<NewStream>,
    stdin: Option<NewStream>,
    stdout: Option<NewStream>,
    stderr: Option<NewStream>,
    resize: Option<NewStream>,
}

impl RemoteCommand {
    /// Takes the upgrade (WebSocket if the request asks for it, SPDY
    /// otherwise) and waits up to `stream_creation_timeout` for the
    /// streams `options` call for. Refusals are answered with their HTTP
    /// error; a session that cannot be set up is closed. Either way the
    /// error says why, for the log.
    pub fn open(
        handoff: Handoff,
        options: StreamOptions,
        stream_creation_timeout: Duration,
    ) -> Result<RemoteCommand, RemoteCommandError> {
        if websocket::is_upgrade_request(&handoff.headers) {
            RemoteCommand::open_websocket(handoff, options)
        } else {
            RemoteCommand::open_spdy(handoff, options, stream_creation_timeout)
        }
    }

    fn open_spdy(
        handoff: Handoff,
        options: StreamOptions,
        stream_creation_timeout: Duration,
    ) -> Result<RemoteCommand, RemoteCommandError> {
        let mut session =
            SpdySession::accept(handoff, SPDY_PROTOCOLS).map_err(RemoteCommandError::Spdy)?;
        let protocol = session.protocol();
        let resizable = protocol == SPDY_V4 || protocol == SPDY_V3;
        let expected = 1
            + usize::from(options.stdin)
            + usize::from(options.stdout)
            + usize::from(options.stderr)
            + usize::from(options.tty && resizable);
        let deadline = Instant::now() + stream_creation_timeout;
        let mut streams = SpdyStreams::default();
        let mut received = 0;
        while received < expected {
            let stream = match session.next_stream(deadline) {
                Ok(stream) => stream,
                Err(err) => {
                    session.close();
                    return Err(RemoteCommandError::Spdy(err));
                }
            };
            // A repeated type replaces the earlier stream and still counts,
            // as in the kubelet; a type the request did not ask for is
            // dropped, and its data with it.
            let slot = match stream.headers.get(STREAM_TYPE_HEADER) {
                Some("error") => &mut streams.error,
                Some("stdin") if options.stdin => &mut streams.stdin,
                Some("stdout") if options.stdout => &mut streams.stdout,
                Some("stderr") if options.stderr => &mut streams.stderr,
                Some("resize") if options.tty && resizable => &mut streams.resize,
                other => {
                    log::debug!("ignoring stream {} of type {other:?}", stream.id);
                    continue;
                }
            };
            *slot = Some(stream);
            received += 1;
        }
        session.stop_accepting();
        let output = |stream: Option<NewStream>| {
            stream.map(|stream| OutputStream {
                target: Output::Spdy(Arc::clone(session.outbound()), stream.id),
            })
        };
        let stdout = output(streams.stdout);
        let stderr = output(streams.stderr);
        let format = if protocol == SPDY_V4 {
            StatusFormat::Json
        } else {
            StatusFormat::Text
        };
        Ok(RemoteCommand {
            stdin: streams.stdin.map(|stream| stream.inbound),
            stdout,
            stderr,
            resize: streams
                .resize
                .map(|stream| ResizeEvents::from_pipe(stream.inbound)),
            transport: Transport::Spdy {
                error: streams.error.map(|stream| stream.id),
                session,
                format,
            },
        })
    }

    fn open_websocket(
        handoff: Handoff,
        options: StreamOptions,
    ) -> Result<RemoteCommand, RemoteCommandError> {
        let (session, pipes) = WsSession::accept(
            handoff,
            REMOTE_COMMAND_PROTOCOLS,
            |protocol| Ok(ChannelCodec::remote_command(protocol)),
            &[StreamId::Stdin.channel(), StreamId::Resize.channel()],
        )
        .map_err(RemoteCommandError::WebSocket)?;
        let mut pipes = pipes.into_iter();
        let (stdin, resize) = (pipes.next(), pipes.next());
        let output = |requested: bool, id: StreamId| {
            requested.then(|| OutputStream {
                target: Output::WebSocket(Arc::clone(session.outbound()), id.channel()),
            })
        };
        let stdout = output(options.stdout, StreamId::Stdout);
        let stderr = output(options.stderr, StreamId::Stderr);
        // Clients wait for this before they send anything.
        let ready = StreamId::ready_channel(options.stdout, options.stderr);
        if let Err(err) = session.outbound().send(ready.channel(), &[]) {
            session.close();
            return Err(RemoteCommandError::WebSocket(err));
        }
        Ok(RemoteCommand {
            stdin: stdin.filter(|_| options.stdin),
            stdout,
            stderr,
            resize: resize.filter(|_| options.tty).map(ResizeEvents::from_pipe),
            transport: Transport::WebSocket(session),
        })
    }

    /// Signalled when the client goes (it closed or broke the connection,
    /// or it was idle too long), and when the session closes.
    pub fn hangup(&self) -> &Hangup {
        match &self.transport {
            Transport::Spdy { session, .. } => session.hangup(),
            Transport::WebSocket(session) => session.hangup(),
        }
    }

    /// Sends `status` on the error stream in the negotiated format (if the
    /// client is still there to read it), then closes every stream and the
    /// connection. The streams taken out of this value must no longer be
    /// in use.
    pub fn close(self, status: Option<&StreamStatus>) {
        let gone = self.hangup().is_hung_up();
        let RemoteCommand {
            stdin,
            stdout,
            stderr,
            resize,
            transport,
        } = self;
        drop((stdin, stdout, stderr, resize));
        match transport {
            Transport::Spdy {
                session,
                error,
                format,
            } => {
                if let (Some(status), Some(error), false) = (status, error, gone) {
                    let body = match format {
                        StatusFormat::Json => Some(status.to_json()),
                        StatusFormat::Text => status.to_text(),
                    };
                    if let Some(body) = body {
                        if let Err(err) = session.outbound().send(error, body.as_bytes()) {
                            log::debug!("cannot send the session's status: {err}");
                        }
                    }
                }
                session.close();
            }
            Transport::WebSocket(session) => {
                if let (Some(status), false) = (status, gone) {
                    if let Err(err) = session.outbound().send_status(status) {
                        log::debug!("cannot send the session's status: {err}");
                    }
                }
                session.close();
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::session_io::pipe;
    use super::*;

    fn sizes(pieces: &[&[u8]]) -> Vec<(u16, u16)> {
        let (writer, reader) = pipe(64 * 1024);
        for piece in pieces {
            assert!(writer.send(piece));
        }
        drop(writer);
        ResizeEvents::from_pipe(reader)
            .map(|size| (size.width, size.height))
            .collect()
    }

    #[test]
    fn resize_objects_back_to_back_and_split_anywhere_are_all_read() {
        let stream = br#"{"Width":80,"Height":24} {"width":100,"height":30}{"Width":1,"Height":2}"#;
        let expected = vec![(80, 24), (100, 30), (1, 2)];
        assert_eq!(sizes(&[stream]), expected);
        for at in 0..stream.len() {
            let (a, b) = stream.split_at(at);
            assert_eq!(sizes(&[a, b]), expected, "split at {at}");
        }
    }

    #[test]
    fn a_malformed_resize_message_ends_the_sizes() {
        assert_eq!(
            sizes(&[
                br#"{"Width":80,"Height":24}"#,
                b"[1,2]",
                br#"{"Width":1,"Height":2}"#
            ]),
            vec![(80, 24)]
        );
        assert_eq!(
            sizes(&[br#"{"Width":80,"Height":24}"#, b"{not json"]),
            vec![(80, 24)]
        );
        assert_eq!(sizes(&[br#"{"Width":-1}"#]), vec![]);
    }

    #[test]
    fn an_endless_resize_message_is_given_up_on() {
        let mut endless = br#"{"Width":"#.to_vec();
        endless.resize(MAX_RESIZE_MESSAGE_BYTES + 10, b' ');
        assert_eq!(sizes(&[&endless, br#"1}"#]), vec![]);
    }
}
