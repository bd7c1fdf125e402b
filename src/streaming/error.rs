//! The streaming errors, each in the wire form its protocol speaks:
//! `StreamingError`, a request the server refuses before any upgrade (an
//! HTTP status), and `TokenError`, why no URL could be issued;
//! `WebSocketError` (an HTTP status in the handshake, a close code after
//! it), `ChannelError` (a malformed channel message) and `WsSessionError`;
//! `SpdyError` (a RST_STREAM or GOAWAY status) and `SpdySessionError` (an
//! HTTP status while upgrading); `RemoteCommandError` and
//! `PortForwardError`, a session that could not be set up or a port that
//! could not be forwarded. None of them is a gRPC status.
//!
//! The mappings that need a protocol's own types stay beside them:
//! `WebSocketError::close_code` in `websocket`, `SpdyError::reaction` in
//! `spdy`. Limits named in messages travel in the variants, and SPDY
//! stream ids are the plain `u32`s that `spdy::StreamId` names.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use crate::codec::http_head::error_response;
use crate::codec::{Base64Error, HttpError, ZlibError};

/// The response header listing the supported subprotocols when a SPDY
/// upgrade is refused for want of a common one.
const ACCEPTED_PROTOCOLS_HEADER: &str = "X-Accepted-Stream-Protocol-Versions";

/// Why no token could be issued.
#[derive(Debug)]
pub enum TokenError {
    /// `limit` unexpired tokens are waiting
    /// ([`MAX_PENDING_TOKENS`](super::tokens::MAX_PENDING_TOKENS)).
    Exhausted { limit: usize },
    /// The random source (its path first) could not be opened or read.
    Random(&'static str, io::Error),
    /// The random source at this path repeated a pending token, which a
    /// working one does not do with 128-bit values.
    Repeated(&'static str),
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Exhausted { limit } => write!(
                f,
                "{limit} streaming URLs are waiting to be used; try again when some have been \
                 used or have expired"
            ),
            TokenError::Random(path, err) => write!(f, "cannot read {path}: {err}"),
            TokenError::Repeated(path) => write!(f, "{path} repeated a 128-bit value"),
        }
    }
}

impl std::error::Error for TokenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TokenError::Random(_, err) => Some(err),
            _ => None,
        }
    }
}

/// Why the server could not start, or serve a request.
#[derive(Debug)]
pub enum StreamingError {
    /// The listening socket could not be bound.
    Bind { addr: SocketAddr, source: io::Error },
    /// The accept thread could not be started.
    Spawn(io::Error),
    /// The token cache could not be set up.
    Tokens(TokenError),
    /// The request head could not be read.
    Http(HttpError),
    /// No route has this path, or the token is unknown, used, expired or
    /// for another route.
    NotFound,
    /// A route exists but not for this method.
    MethodNotAllowed,
    /// The accepted connection could not be set up.
    Socket(io::Error),
    /// As many sessions as [`MAX_SESSIONS`](super::server::MAX_SESSIONS)
    /// are being served.
    Busy,
}

impl StreamingError {
    /// The HTTP response refusing a request, if one can be sent.
    pub(super) fn response(&self) -> Option<Vec<u8>> {
        let (status, extra): (u16, &[(&str, &str)]) = match self {
            StreamingError::Http(err) => return err.response(),
            StreamingError::NotFound => (404, &[]),
            StreamingError::MethodNotAllowed => (405, &[("Allow", "GET, POST")]),
            StreamingError::Busy => (503, &[]),
            _ => return None,
        };
        Some(error_response(status, &self.to_string(), extra))
    }
}

impl fmt::Display for StreamingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamingError::Bind { addr, source } => {
                write!(f, "cannot listen on {addr}: {source}")
            }
            StreamingError::Spawn(err) => {
                write!(f, "cannot start the streaming server's thread: {err}")
            }
            StreamingError::Tokens(err) => write!(f, "cannot issue streaming URLs: {err}"),
            StreamingError::Http(err) => write!(f, "{err}"),
            StreamingError::NotFound => {
                f.write_str("no such streaming URL, or it was already used or has expired")
            }
            StreamingError::MethodNotAllowed => {
                write!(f, "streaming URLs take GET or POST requests")
            }
            StreamingError::Socket(err) => write!(f, "cannot set up the connection: {err}"),
            StreamingError::Busy => write!(f, "too many streaming sessions"),
        }
    }
}

impl std::error::Error for StreamingError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StreamingError::Bind { source, .. } => Some(source),
            StreamingError::Spawn(err) | StreamingError::Socket(err) => Some(err),
            StreamingError::Tokens(err) => Some(err),
            StreamingError::Http(err) => Some(err),
            StreamingError::NotFound | StreamingError::MethodNotAllowed | StreamingError::Busy => {
                None
            }
        }
    }
}

/// Everything that can go wrong in the handshake or on an established
/// connection. Handshake failures say which HTTP status to answer
/// ([`WebSocketError::http_status`], [`WebSocketError::http_response`]);
/// frame failures say which close code to send
/// ([`WebSocketError::close_code`]).
#[derive(Debug)]
pub enum WebSocketError {
    /// The upgrade request's method is not GET (section 4.1).
    MethodNotGet,
    /// `Upgrade` does not list `websocket`.
    NotWebSocketUpgrade,
    /// `Connection` does not list `upgrade`.
    ConnectionNotUpgrade,
    /// `Sec-WebSocket-Key` is missing, repeated, or not the base64 of 16
    /// bytes.
    BadKey,
    /// `Sec-WebSocket-Version` is missing or not the one `supported`.
    UnsupportedVersion { supported: &'static str },
    /// The client offered subprotocols and none of them is supported.
    NoCommonSubprotocol { supported: &'static [&'static str] },
    /// Reading or writing the socket failed. `WouldBlock` and `TimedOut`
    /// from a read leave the reader able to continue where it stopped.
    Io(io::Error),
    /// The client closed the connection without a close frame; `mid_message`
    /// if it did so inside a frame or a fragmented message.
    Disconnected { mid_message: bool },
    /// A client frame was not masked (section 5.1).
    Unmasked,
    /// A reserved bit was set, and no extension defines it.
    ReservedBits { bits: u8 },
    /// An opcode RFC 6455 does not define.
    UnknownOpcode { opcode: u8 },
    /// A control frame without FIN (control frames cannot be fragmented).
    FragmentedControl,
    /// A control frame longer than the limit.
    ControlTooLong { length: u64, limit: usize },
    /// A continuation frame with no fragmented message to continue.
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is unfinished.
    InterleavedMessage,
    /// A 64-bit payload length with its most significant bit set.
    BadLength,
    /// A close frame with a 1-byte payload (a code needs two).
    BadClosePayload,
    /// A close frame with a code that may not be sent.
    InvalidCloseCode { code: u16 },
    /// A text message or close reason that is not UTF-8.
    InvalidUtf8,
    /// A data message longer than the limit, refused before it is read.
    MessageTooBig { length: u64, limit: usize },
    /// A read after the connection closed or failed, or a send after a
    /// close frame was sent.
    Closed,
}

impl WebSocketError {
    /// The HTTP status to answer a refused upgrade with; `None` for errors
    /// on an established connection.
    ///
    /// A subprotocol mismatch is 403, as the kubelet's own streaming server
    /// answers; a version mismatch is 426 with the version we speak
    /// (section 4.4).
    pub fn http_status(&self) -> Option<u16> {
        match self {
            WebSocketError::MethodNotGet => Some(405),
            WebSocketError::NotWebSocketUpgrade
            | WebSocketError::ConnectionNotUpgrade
            | WebSocketError::BadKey => Some(400),
            WebSocketError::UnsupportedVersion { .. } => Some(426),
            WebSocketError::NoCommonSubprotocol { .. } => Some(403),
            _ => None,
        }
    }

    /// A complete HTTP/1.1 response refusing the upgrade, closing the
    /// connection, with this error as a plain-text body; `None` for errors
    /// on an established connection.
    pub fn http_response(&self) -> Option<Vec<u8>> {
        let status = self.http_status()?;
        let extra: &[(&str, &str)] = match self {
            WebSocketError::MethodNotGet => &[("Allow", "GET")],
            WebSocketError::UnsupportedVersion { supported } => {
                &[("Sec-WebSocket-Version", supported)]
            }
            _ => &[],
        };
        Some(error_response(status, &self.to_string(), extra))
    }
}

impl fmt::Display for WebSocketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebSocketError::MethodNotGet => write!(f, "a WebSocket upgrade must be a GET request"),
            WebSocketError::NotWebSocketUpgrade => {
                write!(f, "the Upgrade header field does not ask for websocket")
            }
            WebSocketError::ConnectionNotUpgrade => {
                write!(f, "the Connection header field does not list upgrade")
            }
            WebSocketError::BadKey => {
                f.write_str("Sec-WebSocket-Key must appear once, as the base64 of 16 bytes")
            }
            WebSocketError::UnsupportedVersion { supported } => {
                write!(f, "Sec-WebSocket-Version must be {supported}")
            }
            WebSocketError::NoCommonSubprotocol { supported } => write!(
                f,
                "none of the requested subprotocols is supported; supported: {}",
                supported.join(", ")
            ),
            WebSocketError::Io(source) => write!(f, "WebSocket connection failed: {source}"),
            WebSocketError::Disconnected { mid_message: true } => {
                write!(f, "the client disconnected in the middle of a message")
            }
            WebSocketError::Disconnected { mid_message: false } => {
                write!(f, "the client disconnected without a close frame")
            }
            WebSocketError::Unmasked => write!(f, "a client frame was not masked"),
            WebSocketError::ReservedBits { bits } => {
                write!(
                    f,
                    "reserved frame bits {bits:#05b} are set and no extension was agreed"
                )
            }
            WebSocketError::UnknownOpcode { opcode } => {
                write!(f, "unknown frame opcode {opcode:#x}")
            }
            WebSocketError::FragmentedControl => write!(f, "a control frame was fragmented"),
            WebSocketError::ControlTooLong { length, limit } => {
                write!(f, "a control frame of {length} bytes exceeds {limit} bytes")
            }
            WebSocketError::UnexpectedContinuation => {
                write!(f, "a continuation frame continues no message")
            }
            WebSocketError::InterleavedMessage => {
                write!(f, "a new message started before the fragmented one ended")
            }
            WebSocketError::BadLength => write!(f, "a 64-bit frame length has its top bit set"),
            WebSocketError::BadClosePayload => write!(f, "a close frame carries a 1-byte payload"),
            WebSocketError::InvalidCloseCode { code } => {
                write!(f, "close code {code} may not be sent")
            }
            WebSocketError::InvalidUtf8 => write!(f, "text is not valid UTF-8"),
            WebSocketError::MessageTooBig { length, limit } => write!(
                f,
                "a message of {length} bytes exceeds the limit of {limit} bytes"
            ),
            WebSocketError::Closed => write!(f, "the WebSocket connection is closed"),
        }
    }
}

impl std::error::Error for WebSocketError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WebSocketError::Io(source) => Some(source),
            _ => None,
        }
    }
}

impl From<io::Error> for WebSocketError {
    fn from(err: io::Error) -> WebSocketError {
        WebSocketError::Io(err)
    }
}

/// A malformed channel message or port-forward request.
#[derive(Debug)]
pub enum ChannelError {
    /// A message with no channel byte.
    EmptyMessage,
    /// Data for a channel the session does not have.
    UnknownChannel { channel: u8, channels: u8 },
    /// A v5 close signal not followed by exactly one channel byte.
    MalformedCloseSignal { length: usize },
    /// A v5 close signal for a channel the session does not have.
    CloseOfUnknownChannel { channel: u8, channels: u8 },
    /// The data of a base64 message is not base64.
    BadBase64 { channel: u8, source: Base64Error },
    /// A resize message longer than the limit.
    ResizeTooLong { length: usize, limit: usize },
    /// A resize message that is not JSON.
    ResizeJson(serde_json::Error),
    /// A resize message that is JSON but not a terminal size.
    BadResize(&'static str),
    /// A port-forward request without a port.
    NoPorts,
    /// A `port` value that is not a list of port numbers from 1 to 65535.
    BadPort { value: String, reason: &'static str },
    /// More ports than one session can carry.
    TooManyPorts { limit: usize },
}

impl ChannelError {
    /// Whether the kubelet's own server ends the session on this error in
    /// an incoming message. It logs and skips a message that is empty, for
    /// an unknown channel or not base64; it stops reading resize messages
    /// after a bad one but carries on with the session; it drops the
    /// connection on a malformed close signal.
    pub fn ends_session(&self) -> bool {
        matches!(
            self,
            ChannelError::MalformedCloseSignal { .. } | ChannelError::CloseOfUnknownChannel { .. }
        )
    }
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelError::EmptyMessage => write!(f, "a message carries no channel"),
            ChannelError::UnknownChannel { channel, channels } => write!(
                f,
                "a message for channel {channel}, but the session has channels 0 to {}",
                channels.saturating_sub(1)
            ),
            ChannelError::MalformedCloseSignal { length } => write!(
                f,
                "a close signal must be followed by one channel byte, not {length}"
            ),
            ChannelError::CloseOfUnknownChannel { channel, channels } => write!(
                f,
                "a close signal for channel {channel}, but the session has channels 0 to {}",
                channels.saturating_sub(1)
            ),
            ChannelError::BadBase64 { channel, source } => {
                write!(f, "the data for channel {channel} is {source}")
            }
            ChannelError::ResizeTooLong { length, limit } => write!(
                f,
                "a resize message of {length} bytes exceeds {limit} bytes"
            ),
            ChannelError::ResizeJson(source) => write!(f, "a resize message is not JSON: {source}"),
            ChannelError::BadResize(why) => write!(f, "bad resize message: {why}"),
            ChannelError::NoPorts => write!(f, "query parameter \"port\" is required"),
            ChannelError::BadPort { value, reason } => write!(f, "port {value:?} {reason}"),
            ChannelError::TooManyPorts { limit } => {
                write!(f, "at most {limit} ports can be forwarded in one session")
            }
        }
    }
}

impl std::error::Error for ChannelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ChannelError::BadBase64 { source, .. } => Some(source),
            ChannelError::ResizeJson(source) => Some(source),
            _ => None,
        }
    }
}

/// A failed WebSocket session, from the upgrade on.
#[derive(Debug)]
pub enum WsSessionError {
    /// The upgrade request was refused; the HTTP answer was sent.
    Handshake(WebSocketError),
    /// The negotiated subprotocol has no channel framing.
    UnknownProtocol(&'static str),
    /// The request does not fit the channel framing (for example too many
    /// forwarded ports); refused with 400.
    Channels(ChannelError),
    /// Answering the upgrade or starting the reader thread failed.
    Io(io::Error),
    /// A message could not be sent; nothing more can be.
    Send(WebSocketError),
    /// The connection is closed or closing.
    Closed,
}

impl WsSessionError {
    /// A complete HTTP/1.1 response refusing the upgrade: the handshake's
    /// own answer, 400 for a request the channel framing cannot carry, 500
    /// for the rest.
    pub fn http_response(&self) -> Option<Vec<u8>> {
        let (status, reason) = match self {
            WsSessionError::Handshake(refusal) => return refusal.http_response(),
            WsSessionError::Channels(_) => (400, "Bad Request"),
            _ => (500, "Internal Server Error"),
        };
        Some(plain_text_response(status, reason, "", &self.to_string()))
    }
}

impl fmt::Display for WsSessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsSessionError::Handshake(source) => write!(f, "WebSocket upgrade refused: {source}"),
            WsSessionError::UnknownProtocol(protocol) => {
                write!(f, "subprotocol {protocol:?} has no channel framing")
            }
            WsSessionError::Channels(source) => write!(f, "{source}"),
            WsSessionError::Io(source) => write!(f, "WebSocket session failed: {source}"),
            WsSessionError::Send(source) => write!(f, "{source}"),
            WsSessionError::Closed => write!(f, "the WebSocket connection is closed"),
        }
    }
}

impl std::error::Error for WsSessionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WsSessionError::Handshake(source) | WsSessionError::Send(source) => Some(source),
            WsSessionError::Channels(source) => Some(source),
            WsSessionError::Io(source) => Some(source),
            WsSessionError::UnknownProtocol(_) | WsSessionError::Closed => None,
        }
    }
}

/// A failure reading or writing SPDY frames.
#[derive(Debug)]
pub enum SpdyError {
    /// The peer closed the connection between two frames.
    Closed,
    /// The connection failed, or ended inside a frame.
    Io(io::Error),
    /// A control frame of a version other than 3.
    UnsupportedVersion(u16),
    /// A frame longer than we accept. A DATA frame's payload was read and
    /// dropped, so the session stays in step; a control frame's was not.
    FrameTooLarge {
        stream: Option<u32>,
        length: usize,
        limit: usize,
    },
    /// A frame whose fixed fields break the protocol.
    InvalidFrame {
        frame: &'static str,
        reason: &'static str,
    },
    /// A header block that does not decompress; the compression context,
    /// and with it the session, is lost.
    Compression(ZlibError),
    /// A header block that decompressed but breaks the name/value rules.
    /// The compression context is intact, so only the stream fails.
    InvalidHeaders { stream: u32, reason: &'static str },
    /// A frame the caller asked to write breaks the protocol; nothing was
    /// written.
    Unwritable(&'static str),
}

impl fmt::Display for SpdyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpdyError::Closed => write!(f, "SPDY peer closed the connection"),
            SpdyError::Io(source) => write!(f, "SPDY connection failed: {source}"),
            SpdyError::UnsupportedVersion(version) => {
                write!(f, "SPDY version {version} frame; only version 3 is spoken")
            }
            SpdyError::FrameTooLarge {
                stream: Some(stream),
                length,
                limit,
            } => write!(
                f,
                "SPDY DATA frame of {length} bytes on stream {stream} exceeds {limit}"
            ),
            SpdyError::FrameTooLarge {
                stream: None,
                length,
                limit,
            } => write!(f, "SPDY control frame of {length} bytes exceeds {limit}"),
            SpdyError::InvalidFrame { frame, reason } => {
                write!(f, "invalid SPDY {frame} frame: {reason}")
            }
            SpdyError::Compression(source) => {
                write!(f, "SPDY header block does not decompress: {source}")
            }
            SpdyError::InvalidHeaders { stream, reason } => {
                write!(f, "invalid SPDY header block on stream {stream}: {reason}")
            }
            SpdyError::Unwritable(reason) => write!(f, "refusing to write SPDY frame: {reason}"),
        }
    }
}

impl std::error::Error for SpdyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpdyError::Io(source) => Some(source),
            SpdyError::Compression(source) => Some(source),
            _ => None,
        }
    }
}

impl From<io::Error> for SpdyError {
    fn from(source: io::Error) -> SpdyError {
        SpdyError::Io(source)
    }
}

/// A failed SPDY session, from the upgrade on.
#[derive(Debug)]
pub enum SpdySessionError {
    /// The request names no subprotocol.
    MissingProtocol,
    /// None of the client's subprotocols is supported.
    NoCommonProtocol {
        offered: Vec<String>,
        supported: &'static [&'static str],
    },
    /// `Connection` and `Upgrade` do not ask for SPDY/3.1.
    NotSpdyUpgrade,
    /// Answering the upgrade or starting the reader thread failed.
    Io(io::Error),
    /// The client did not open the streams the session needs in time.
    StreamTimeout,
    /// The connection ended: the client closed or broke it, it was idle too
    /// long, or the session is closing.
    Closed,
    /// A frame could not be written; nothing more can be.
    Spdy(SpdyError),
    /// A write to a stream the client reset or that was already closed.
    StreamClosed { stream: u32 },
}

impl SpdySessionError {
    /// A complete HTTP/1.1 response refusing the upgrade, as the kubelet
    /// words it; `None` for failures after the upgrade.
    pub fn http_response(&self) -> Option<Vec<u8>> {
        let (status, reason, accepted): (u16, &str, &[&str]) = match self {
            SpdySessionError::MissingProtocol | SpdySessionError::NotSpdyUpgrade => {
                (400, "Bad Request", &[])
            }
            SpdySessionError::NoCommonProtocol { supported, .. } => (403, "Forbidden", supported),
            _ => return None,
        };
        let extra: String = accepted
            .iter()
            .map(|protocol| format!("{ACCEPTED_PROTOCOLS_HEADER}: {protocol}\r\n"))
            .collect();
        let message = self.to_string();
        Some(plain_text_response(status, reason, &extra, &message))
    }
}

impl fmt::Display for SpdySessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpdySessionError::MissingProtocol => {
                f.write_str("unable to upgrade: X-Stream-Protocol-Version is required")
            }
            SpdySessionError::NoCommonProtocol { offered, supported } => write!(
                f,
                "unable to upgrade: unable to negotiate protocol: client supports [{}], \
                 server accepts [{}]",
                offered.join(" "),
                supported.join(" ")
            ),
            SpdySessionError::NotSpdyUpgrade => f.write_str(
                "unable to upgrade: missing upgrade headers in request \
                 (Connection: Upgrade and Upgrade: SPDY/3.1 are required)",
            ),
            SpdySessionError::Io(source) => write!(f, "SPDY session failed: {source}"),
            SpdySessionError::StreamTimeout => {
                write!(f, "timed out waiting for client to create streams")
            }
            SpdySessionError::Closed => write!(f, "the SPDY connection is closed"),
            SpdySessionError::Spdy(source) => write!(f, "{source}"),
            SpdySessionError::StreamClosed { stream } => {
                write!(
                    f,
                    "SPDY stream {stream} is closed or was reset by the client"
                )
            }
        }
    }
}

impl std::error::Error for SpdySessionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpdySessionError::Io(source) => Some(source),
            SpdySessionError::Spdy(source) => Some(source),
            _ => None,
        }
    }
}

/// A session that could not be set up.
#[derive(Debug)]
pub enum RemoteCommandError {
    Spdy(SpdySessionError),
    WebSocket(WsSessionError),
}

impl fmt::Display for RemoteCommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteCommandError::Spdy(source) => write!(f, "{source}"),
            RemoteCommandError::WebSocket(source) => write!(f, "{source}"),
        }
    }
}

impl std::error::Error for RemoteCommandError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RemoteCommandError::Spdy(source) => Some(source),
            RemoteCommandError::WebSocket(source) => Some(source),
        }
    }
}

/// Why a port could not be forwarded, or a session not set up.
#[derive(Debug)]
pub enum PortForwardError {
    /// The dialer could not reach the pod at all (it is gone, or its
    /// network namespace cannot be entered); says why in its own words.
    Dial(Box<dyn std::error::Error + Send + Sync>),
    /// Nothing accepted a connection to the port on the pod's loopback
    /// interface, on either address family.
    Connect {
        port: u16,
        ipv4: io::Error,
        ipv6: io::Error,
    },
    /// The request named ports and this is not one of them.
    PortNotRequested { port: u16 },
    /// A SPDY stream's headers do not describe a port-forward stream.
    BadStream { stream: u32, problem: String },
    /// Reading or writing the pod's socket failed.
    Socket(io::Error),
    /// A thread for the connection could not be started.
    Thread(io::Error),
    /// The client went away before the connection was made.
    ClientGone,
    /// The client reset the connection's data stream.
    StreamReset { stream: u32 },
    /// As many connections as the limits allow, `per_session` and `total`,
    /// are being forwarded.
    TooManyConnections { per_session: usize, total: usize },
    /// The SPDY session could not be set up or written to.
    Spdy(SpdySessionError),
    /// The WebSocket session could not be set up or written to.
    WebSocket(WsSessionError),
}

impl fmt::Display for PortForwardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortForwardError::Dial(source) => write!(f, "{source}"),
            PortForwardError::Connect { port, ipv4, ipv6 } => write!(
                f,
                "failed to connect to localhost:{port} inside the pod's network namespace, \
                 IPv4: {ipv4}, IPv6: {ipv6}"
            ),
            PortForwardError::PortNotRequested { port } => write!(
                f,
                "port {port} is not one of the ports the port-forward request named"
            ),
            PortForwardError::BadStream { stream, problem } => {
                write!(f, "port-forward stream {stream}: {problem}")
            }
            PortForwardError::Socket(source) => {
                write!(f, "copying between the client and the pod failed: {source}")
            }
            PortForwardError::Thread(source) => {
                write!(f, "cannot start a thread for the connection: {source}")
            }
            PortForwardError::ClientGone => write!(f, "the client went away"),
            PortForwardError::StreamReset { stream } => {
                write!(f, "the client reset data stream {stream}")
            }
            PortForwardError::TooManyConnections { per_session, total } => write!(
                f,
                "too many forwarded connections (at most {per_session} per session \
                 and {total} in all)"
            ),
            PortForwardError::Spdy(source) => write!(f, "{source}"),
            PortForwardError::WebSocket(source) => write!(f, "{source}"),
        }
    }
}

impl std::error::Error for PortForwardError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PortForwardError::Dial(source) => Some(source.as_ref()),
            PortForwardError::Connect { ipv4, .. } => Some(ipv4),
            PortForwardError::Socket(source) | PortForwardError::Thread(source) => Some(source),
            PortForwardError::Spdy(source) => Some(source),
            PortForwardError::WebSocket(source) => Some(source),
            PortForwardError::PortNotRequested { .. }
            | PortForwardError::BadStream { .. }
            | PortForwardError::ClientGone
            | PortForwardError::StreamReset { .. }
            | PortForwardError::TooManyConnections { .. } => None,
        }
    }
}

/// A complete `text/plain` HTTP/1.1 response that closes the connection,
/// laid out as Go's `http.Error` writes them (the kubelet's refusals);
/// `extra` is header lines, each ending in CRLF.
fn plain_text_response(status: u16, reason: &str, extra: &str, message: &str) -> Vec<u8> {
    let body = format!("{message}\n");
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\n{extra}Content-Type: text/plain; charset=utf-8\r\n\
         X-Content-Type-Options: nosniff\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    [head.into_bytes(), body.into_bytes()].concat()
}
