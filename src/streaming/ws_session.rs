//! A WebSocket server session carrying Kubernetes channels, as the kubelet's
//! streaming server runs one for exec, attach and port-forward clients that
//! speak WebSocket instead of SPDY.
//!
//! It owns the upgrade (through `websocket::accept`, with the subprotocols
//! the caller supports), a reader thread that answers pings and the closing
//! handshake and demultiplexes client messages into one [`pipe`] per
//! channel the caller reads (a v5 close signal ends that channel's pipe),
//! and [`WsOutbound`], the mutex-guarded writer every thread of the session
//! sends channel data and statuses through. It must not decide what the
//! channels carry (exec, attach and port-forward choose the channel codec
//! and which channels they read) and knows nothing of dockerd or the CRI.
//!
//! As in the kubelet, messages on channels the caller does not read are
//! dropped, and malformed messages are skipped unless the channel codec says
//! they end the session.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::channel::{ChannelCodec, ChannelProtocol, Received, StreamStatus};
use super::session::Handoff;
use super::session_io::{pipe, Activity, Hangup, IdleReader, PipeReader, PipeWriter};
use super::websocket::{self, CloseCode, Incoming, WsReader, WsWriter};
use super::{ChannelError, WebSocketError, WsSessionError};
use crate::mailbox::{self, Receiver};
use crate::supervisor;

/// Bytes queued per channel for a consumer that has not read them yet; a
/// full queue stops the reader thread, and TCP stops the client.
const INBOUND_PIPE_BYTES: usize = 256 * 1024;

/// Largest piece of data sent in one message.
const MAX_OUTBOUND_DATA: usize = 32 * 1024;

/// How long closing waits for the client to answer the close frame before
/// the socket is shut down regardless.
const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// An upgraded connection: the reader thread and the shared writer, until
/// [`WsSession::close`] (or drop) ends it and joins the reader.
#[derive(Debug)]
pub struct WsSession {
    outbound: Arc<WsOutbound>,
    reader: Option<JoinHandle<()>>,
    /// Disconnected once the reader thread has ended.
    reader_done: Receiver<()>,
    conn: TcpStream,
    hangup: Hangup,
}

impl WsSession {
    /// Accepts the upgrade with a subprotocol from `supported` (which must
    /// name framings `channel` knows), builds the session's channel codec
    /// with `codec`, answers the upgrade and starts the reader. Returns the
    /// session and a pipe for each channel of `inbound`, in that order.
    /// A refusal is answered with its HTTP error here, and the connection
    /// closed.
    pub fn accept(
        handoff: Handoff,
        supported: &'static [&'static str],
        codec: impl FnOnce(ChannelProtocol) -> Result<ChannelCodec, ChannelError>,
        inbound: &[u8],
    ) -> Result<(WsSession, Vec<PipeReader>), WsSessionError> {
        let Handoff {
            method,
            headers,
            mut conn,
            leftover,
            idle_timeout,
            ..
        } = handoff;
        let accepted = websocket::accept(&method, &headers, supported)
            .map_err(WsSessionError::Handshake)
            .and_then(|handshake| {
                let protocol = ChannelProtocol::from_negotiated(handshake.protocol()).ok_or(
                    WsSessionError::UnknownProtocol(handshake.protocol().unwrap_or_default()),
                )?;
                let codec = codec(protocol).map_err(WsSessionError::Channels)?;
                Ok((handshake, codec))
            });
        let (handshake, codec) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                if let Some(response) = err.http_response() {
                    // The refusal is best effort: the client may be gone.
                    let _ = conn.write_all(&response);
                }
                let _ = conn.shutdown(Shutdown::Both);
                return Err(err);
            }
        };
        let idle_timeout = idle_timeout.filter(|t| !t.is_zero());
        // A client that stops reading for as long as the idle timeout
        // moved no data either way: the write fails and the session ends.
        conn.set_write_timeout(idle_timeout)
            .map_err(WsSessionError::Io)?;
        conn.write_all(&handshake.response())
            .map_err(WsSessionError::Io)?;

        let activity = Activity::new();
        let clone = || conn.try_clone().map_err(WsSessionError::Io);
        let outbound = Arc::new(WsOutbound {
            state: Mutex::new(WriterState {
                writer: WsWriter::new(clone()?),
                failed: false,
            }),
            codec,
            activity: activity.clone(),
        });
        let hangup = Hangup::new();
        let mut pipes = HashMap::new();
        let mut readers = Vec::with_capacity(inbound.len());
        for &channel in inbound {
            let (writer, reader) = pipe(INBOUND_PIPE_BYTES);
            let closer = writer.closer();
            hangup.on_hang_up(move || closer.close());
            pipes.insert(channel, writer);
            readers.push(reader);
        }
        let reader = MessageReader {
            messages: WsReader::new(IdleReader::new(leftover, clone()?, idle_timeout, activity)),
            codec,
            outbound: Arc::clone(&outbound),
            pipes,
            hangup: hangup.clone(),
            conn: clone()?,
        };
        let (done_tx, done_rx) = mailbox::channel::<()>();
        let handle = supervisor::spawn_named(
            "ws-reader".to_owned(),
            Box::new(move || {
                let _done = done_tx;
                reader.run();
            }),
        )
        .map_err(WsSessionError::Io)?;
        let session = WsSession {
            outbound,
            reader: Some(handle),
            reader_done: done_rx,
            conn,
            hangup,
        };
        Ok((session, readers))
    }

    /// The writer shared by everyone sending on this session.
    pub fn outbound(&self) -> &Arc<WsOutbound> {
        &self.outbound
    }

    /// Signalled when the client goes; also when the session closes.
    pub fn hangup(&self) -> &Hangup {
        &self.hangup
    }

    /// Ends the session gracefully: a normal close frame, then the
    /// connection is closed once the client has answered it (or after a
    /// short linger).
    pub fn close(self) {
        self.outbound.close(CloseCode::NORMAL, "");
        // Either the reader ended (the client answered) or the linger passed.
        let _ = self.reader_done.recv_timeout(CLOSE_LINGER);
    }
}

impl Drop for WsSession {
    /// Whatever state the session is in, no thread it started outlives it:
    /// the pipes are severed and the socket shut down, which ends the
    /// reader wherever it blocks.
    fn drop(&mut self) {
        self.hangup.hang_up();
        let _ = self.conn.shutdown(Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            if reader.join().is_err() {
                log::error!("the WebSocket reader thread panicked");
            }
        }
    }
}

/// The session's writer and channel codec, behind one mutex so messages
/// never interleave.
#[derive(Debug)]
pub struct WsOutbound {
    state: Mutex<WriterState>,
    codec: ChannelCodec,
    activity: Activity,
}

#[derive(Debug)]
struct WriterState {
    writer: WsWriter<TcpStream>,
    /// A write failed, possibly inside a frame: nothing more may be sent.
    failed: bool,
}

impl WriterState {
    fn write(
        &mut self,
        message: impl FnOnce(&mut WsWriter<TcpStream>) -> Result<(), WebSocketError>,
    ) -> Result<(), WsSessionError> {
        if self.failed || self.writer.is_closed() {
            return Err(WsSessionError::Closed);
        }
        message(&mut self.writer).map_err(|err| {
            self.failed = true;
            WsSessionError::Send(err)
        })
    }
}

impl WsOutbound {
    /// A panic while writing leaves at worst a half-written frame, which
    /// `failed` already guards against; the state stays usable.
    fn lock(&self) -> MutexGuard<'_, WriterState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The framing of this session.
    pub fn protocol(&self) -> ChannelProtocol {
        self.codec.protocol()
    }

    /// Sends `data` on `channel` (one of the codec's), in messages of at
    /// most 32 KiB; empty `data` sends one empty message.
    pub fn send(&self, channel: u8, data: &[u8]) -> Result<(), WsSessionError> {
        if data.is_empty() {
            return self.lock().write(|w| self.codec.send(w, channel, &[]));
        }
        for chunk in data.chunks(MAX_OUTBOUND_DATA) {
            self.lock().write(|w| self.codec.send(w, channel, chunk))?;
            self.activity.touch();
        }
        Ok(())
    }

    /// Sends how an exec or attach ended on the error channel, in the
    /// format the subprotocol calls for.
    pub fn send_status(&self, status: &StreamStatus) -> Result<(), WsSessionError> {
        self.lock().write(|w| self.codec.send_status(w, status))
    }

    /// Sends each forwarded port's number on its two channels, as a
    /// port-forward session must before anything else.
    pub fn announce_ports(&self, ports: &[u16]) -> Result<(), WsSessionError> {
        self.lock().write(|w| self.codec.announce_ports(w, ports))
    }

    fn pong(&self, payload: &[u8]) {
        let _ = self.lock().write(|w| w.pong(payload));
    }

    /// Sends a close frame unless one was sent; failures are ignored, as
    /// the client may be gone.
    fn close(&self, code: CloseCode, reason: &str) {
        let _ = self.lock().write(|w| w.close(code, reason));
    }
}

/// The reader thread's state.
struct MessageReader {
    messages: WsReader<IdleReader>,
    codec: ChannelCodec,
    outbound: Arc<WsOutbound>,
    /// The channels still read, each with its consumer's pipe.
    pipes: HashMap<u8, PipeWriter>,
    hangup: Hangup,
    /// For shutting the connection down once reading ends.
    conn: TcpStream,
}

/// Why reading ended.
#[derive(Debug)]
enum ReadEnd {
    /// The closing handshake, a disconnect, or a shutdown here.
    Closed,
    /// No data moved for the idle timeout.
    Idle,
    Failed(WebSocketError),
    BadChannelMessage(ChannelError),
}

impl MessageReader {
    fn run(mut self) {
        match self.read_messages() {
            ReadEnd::Closed => log::debug!("WebSocket session: connection closed"),
            ReadEnd::Idle => {
                log::info!("WebSocket session: idle timeout, closing the connection");
                self.outbound.close(CloseCode::GOING_AWAY, "idle timeout");
            }
            ReadEnd::Failed(err) => log::debug!("WebSocket session ended: {err}"),
            ReadEnd::BadChannelMessage(err) => log::info!("WebSocket session ended: {err}"),
        }
        // End-of-stream for every consumer, then everyone else learns the
        // client is gone; nothing can be sent or received any more.
        self.pipes.clear();
        self.hangup.hang_up();
        let _ = self.conn.shutdown(Shutdown::Both);
    }

    fn read_messages(&mut self) -> ReadEnd {
        loop {
            let incoming = match self.messages.read() {
                Ok(incoming) => incoming,
                Err(err) => {
                    if let Some(code) = err.close_code() {
                        self.outbound.close(code, &err.to_string());
                    }
                    return match err {
                        WebSocketError::Disconnected { .. } => ReadEnd::Closed,
                        WebSocketError::Io(io) if IdleReader::is_idle_error(&io) => ReadEnd::Idle,
                        WebSocketError::Io(io)
                            if matches!(
                                io.kind(),
                                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                            ) =>
                        {
                            ReadEnd::Closed
                        }
                        err => ReadEnd::Failed(err),
                    };
                }
            };
            let message = match incoming {
                Incoming::Text(text) => text.as_bytes(),
                Incoming::Binary(bytes) => bytes,
                Incoming::Ping(payload) => {
                    self.outbound.pong(payload);
                    continue;
                }
                Incoming::Pong(_) => continue,
                Incoming::Close(frame) => {
                    self.outbound
                        .close(frame.map_or(CloseCode::NORMAL, |f| f.code), "");
                    return ReadEnd::Closed;
                }
            };
            if let Err(err) = route(&self.codec, &mut self.pipes, message) {
                self.outbound
                    .close(CloseCode::PROTOCOL_ERROR, &err.to_string());
                return ReadEnd::BadChannelMessage(err);
            }
        }
    }
}

/// Delivers one client message to its channel's pipe; an error means the
/// session must end.
fn route(
    codec: &ChannelCodec,
    pipes: &mut HashMap<u8, PipeWriter>,
    message: &[u8],
) -> Result<(), ChannelError> {
    match codec.decode(message) {
        Ok(Received::Data { channel, payload }) => {
            if let Some(pipe) = pipes.get(&channel) {
                if !payload.is_empty() {
                    // A consumer that went away drops what it would have read.
                    pipe.send(&payload);
                }
            }
            Ok(())
        }
        Ok(Received::Close { channel }) => {
            pipes.remove(&channel);
            Ok(())
        }
        Err(err) if err.ends_session() => Err(err),
        Err(err) => {
            log::debug!("WebSocket session: skipping a message: {err}");
            Ok(())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::channel::{REMOTE_COMMAND_PROTOCOLS, V1_BASE64, V4_BINARY, V5_BINARY};
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;
    use std::thread;
    use std::time::Instant;
    use tungstenite::client::IntoClientRequest;
    use tungstenite::protocol::frame::coding::CloseCode as TgCloseCode;
    use tungstenite::{Bytes, Message, WebSocket};

    const TIMEOUT: Duration = Duration::from_secs(10);

    /// Reads the request head with the server's own reader and hands the
    /// connection over as the streaming server would.
    fn handoff(mut conn: TcpStream) -> Handoff {
        let (head, leftover) = crate::codec::http_head::read_request(&mut conn, TIMEOUT).unwrap();
        Handoff::new(head, conn, leftover, None)
    }

    /// A remote-command session reading stdin (0) and resize (4), with a
    /// tungstenite client offering `protocols`.
    fn start(protocols: &str) -> (WebSocket<TcpStream>, WsSession, Vec<PipeReader>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            WsSession::accept(
                handoff(conn),
                REMOTE_COMMAND_PROTOCOLS,
                |p| Ok(ChannelCodec::remote_command(p)),
                &[0, 4],
            )
        });
        let stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut request = format!("ws://{address}/cri/exec/token")
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", protocols.parse().unwrap());
        let (client, _) = tungstenite::client(request, stream).unwrap();
        let (session, pipes) = server.join().unwrap().unwrap();
        (client, session, pipes)
    }

    fn read_data(client: &mut WebSocket<TcpStream>) -> Vec<u8> {
        loop {
            match client.read().unwrap() {
                Message::Binary(bytes) => return bytes.to_vec(),
                Message::Text(text) => return text.as_bytes().to_vec(),
                _ => {}
            }
        }
    }

    #[test]
    fn channel_messages_reach_their_pipes_and_output_carries_its_channel() {
        let (mut client, session, mut pipes) = start(V4_BINARY);
        assert_eq!(session.outbound().protocol(), ChannelProtocol::V4);
        client
            .send(Message::Binary(Bytes::from_static(b"\x00hello")))
            .unwrap();
        client
            .send(Message::Binary(Bytes::from_static(b"\x04{\"Width\":1}")))
            .unwrap();
        // Data on a channel nobody reads is dropped.
        client
            .send(Message::Binary(Bytes::from_static(b"\x01ignored")))
            .unwrap();
        let mut stdin = [0u8; 5];
        pipes[0].read_exact(&mut stdin).unwrap();
        assert_eq!(&stdin, b"hello");
        let mut resize = [0u8; 11];
        pipes[1].read_exact(&mut resize).unwrap();
        assert_eq!(&resize, b"{\"Width\":1}");

        session.outbound().send(1, b"out").unwrap();
        assert_eq!(read_data(&mut client), b"\x01out");
        session
            .outbound()
            .send_status(&StreamStatus::exited(0))
            .unwrap();
        assert_eq!(
            read_data(&mut client),
            b"\x03{\"metadata\":{},\"status\":\"Success\"}"
        );
    }

    #[test]
    fn base64_sessions_encode_output_as_text() {
        let (mut client, session, _pipes) = start(V1_BASE64);
        session.outbound().send(2, b"err").unwrap();
        assert_eq!(read_data(&mut client), b"2ZXJy");
        // The text status format sends nothing for a success.
        session
            .outbound()
            .send_status(&StreamStatus::Success)
            .unwrap();
        session
            .outbound()
            .send_status(&StreamStatus::exited(3))
            .unwrap();
        let text = String::from_utf8(read_data(&mut client)).unwrap();
        assert!(text.starts_with('3'), "{text}");
    }

    #[test]
    fn a_v5_close_signal_ends_only_that_channel() {
        let (mut client, _session, mut pipes) = start(V5_BINARY);
        client
            .send(Message::Binary(Bytes::from_static(b"\x00last")))
            .unwrap();
        client
            .send(Message::Binary(Bytes::from_static(&[255, 0])))
            .unwrap();
        let mut stdin = String::new();
        pipes[0].read_to_string(&mut stdin).unwrap();
        assert_eq!(stdin, "last");
        client
            .send(Message::Binary(Bytes::from_static(b"\x04{}")))
            .unwrap();
        let mut resize = [0u8; 2];
        pipes[1].read_exact(&mut resize).unwrap();
    }

    #[test]
    fn pings_are_answered() {
        let (mut client, _session, _pipes) = start(V4_BINARY);
        client
            .send(Message::Ping(Bytes::from_static(b"are you there")))
            .unwrap();
        loop {
            if let Message::Pong(payload) = client.read().unwrap() {
                assert_eq!(&payload[..], b"are you there");
                break;
            }
        }
    }

    #[test]
    fn the_client_closing_hangs_up_and_ends_every_pipe() {
        let (mut client, session, mut pipes) = start(V4_BINARY);
        client.close(None).unwrap();
        // The server answers the close frame.
        loop {
            match client.read() {
                Ok(Message::Close(_)) => continue,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        assert_eq!(pipes[0].read(&mut [0; 4]).unwrap(), 0);
        let started = Instant::now();
        while !session.hangup().is_hung_up() {
            assert!(started.elapsed() < TIMEOUT, "no hang-up");
            thread::sleep(Duration::from_millis(5));
        }
        assert!(matches!(
            session.outbound().send(1, b"late"),
            Err(WsSessionError::Closed)
        ));
    }

    #[test]
    fn close_sends_a_normal_close_frame() {
        let (mut client, session, _pipes) = start(V4_BINARY);
        let closing = thread::spawn(move || session.close());
        loop {
            match client.read().unwrap() {
                Message::Close(Some(frame)) => {
                    assert_eq!(frame.code, TgCloseCode::Normal);
                    break;
                }
                Message::Close(None) => panic!("close frame without a code"),
                _ => {}
            }
        }
        // tungstenite answers the close; the server then ends.
        let _ = client.flush();
        closing.join().unwrap();
    }

    #[test]
    fn an_unsupported_subprotocol_is_refused_with_403() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            WsSession::accept(
                handoff(conn),
                REMOTE_COMMAND_PROTOCOLS,
                |p| Ok(ChannelCodec::remote_command(p)),
                &[],
            )
            .map(|_| ())
        });
        let stream = TcpStream::connect(address).unwrap();
        let mut request = format!("ws://{address}/cri/exec/token")
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "v9.channel.k8s.io".parse().unwrap(),
        );
        match tungstenite::client(request, stream) {
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
                assert_eq!(response.status(), 403)
            }
            other => panic!("expected a 403 refusal, got {other:?}"),
        }
        assert!(matches!(
            server.join().unwrap(),
            Err(WsSessionError::Handshake(
                WebSocketError::NoCommonSubprotocol { .. }
            ))
        ));
    }
}
